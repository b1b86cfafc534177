"""The ``ftguard`` command line: a thin face over the service layer.

Each command group lives in its own module and registers itself on the root app. Errors
raised as :class:`ftguard.errors.FtguardError` end in one line on stderr and the error's
documented exit code, never a traceback.
"""

from __future__ import annotations

import sys

import click
import typer

from ftguard._progress import quiet_third_party
from ftguard.cli import (  # noqa: F401  (importing a module registers its commands)
    audit,
    demo,
    eval,
    gate,
    jobs,
    review,
    run,
    users,
    weights,
    workspace,
)
from ftguard.cli._app import app
from ftguard.errors import FtguardError

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (the console script's entry point)."""
    quiet_third_party()
    try:
        result = app(args=argv, standalone_mode=False)
    except FtguardError as exc:
        typer.echo(f"ftguard: error: {exc.message}", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return 2
    except click.exceptions.Abort:
        typer.echo("ftguard: aborted", err=True)
        return 130
    return result if isinstance(result, int) else 0


def _entry() -> None:
    sys.exit(main())
