"""CLI: ``ftguard demo`` and ``ftguard report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ftguard.cli._app import app
from ftguard.cli._common import JsonOption, console, print_json, user_text, workspace


@app.command("demo")
def demo(
    fast: Annotated[
        bool, typer.Option("--fast", help="A tiny model; the same story in under a minute.")
    ] = False,
    workdir: Annotated[
        Path | None, typer.Option("--workdir", help="Keep the demo workspace here.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run the end-to-end story offline: a benign job passes, a poisoned one is blocked."""
    from ftguard.demo import run_demo

    code = run_demo(fast=fast, workdir=workdir, as_json=as_json)
    raise typer.Exit(code)


@app.command("report")
def report(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    out: Annotated[Path | None, typer.Option("--out", help="Folder for the HTML files.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Write a job's HTML report (job, gate decision, evidence, audit trail)."""
    from ftguard.report import write_job_report

    path = write_job_report(workspace(), job_id, out)
    if as_json:
        print_json({"job": job_id, "report": str(path)})
    else:
        console.print("report: ", user_text(path), sep="")
