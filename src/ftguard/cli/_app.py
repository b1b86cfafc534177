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
