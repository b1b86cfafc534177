"""The root Typer application; command groups register themselves on it."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="ftguard",
    help="Access controls around the fine-tuning of language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from ftguard import __version__

        typer.echo(f"ftguard {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        callback=_print_version,
        is_eager=True,
    ),
) -> None:
    """Access controls around the fine-tuning of language models."""
