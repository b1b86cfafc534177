"""CLI: ``ftguard doctor``."""

from __future__ import annotations

import typer

from ftguard.cli._app import app
from ftguard.cli._common import JsonOption, console, print_json, user_text

_STYLES = {
    "ok": "green",
    "missing": "yellow",
    "todo": "cyan",
    "warn": "yellow",
    "error": "bold red",
    "info": "dim",
}


@app.command("doctor")
def doctor(as_json: JsonOption = False) -> None:
    """Show what is installed, what this CLI would use, and what is still to be built.

    Reports ftguard and its core dependencies, each extra, torch's build, the weight diff's
    kernel, the embedded models, the workspace, database and team server this CLI would use,
    the cache and the one-time builds still to come, each with a one-line fix. It downloads
    nothing and contacts nothing. Exit 0 when the core works, 7 when a core dependency is
    missing.
    """
    from rich.table import Table
    from rich.text import Text

    from ftguard.cli._doctor import diagnose
    from ftguard.errors import EXIT_DEPENDENCY

    report = diagnose()
    if as_json:
        print_json(report)
    else:
        table = Table(
            title=f"ftguard {report.ftguard} - Python {report.python}", title_justify="left"
        )
        table.add_column("check", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("details", overflow="fold")
        section = ""
        for check in report.checks:
            if check.section != section and section:
                table.add_section()
            section = check.section
            details = user_text(check.detail)
            if check.fix:
                details.append("\n")
                details.append_text(user_text(f"fix: {check.fix}", style="italic"))
            table.add_row(
                user_text(check.name),
                Text(check.status, style=_STYLES.get(check.status, "")),
                details,
            )
        console.print(table)
        if not report.core_ok:
            console.print("[bold red]the core does not work[/]: see the errors above")
    if not report.core_ok:
        raise typer.Exit(EXIT_DEPENDENCY)
