"""CLI: ``ftguard job``, ``ftguard approve``, ``ftguard reject``, ``ftguard override``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from ftguard.cli._app import app
from ftguard.cli._common import (
    ActorOption,
    JsonOption,
    actor_or_default,
    console,
    print_json,
    user_text,
    workspace,
)
from ftguard.control import service
from ftguard.control._jobs import JobView

job_app = typer.Typer(help="Submit and inspect fine-tuning jobs.", no_args_is_help=True)
app.add_typer(job_app, name="job")


def _show(job: JobView, as_json: bool, headline: str | None = None) -> None:
    # Every value a user chose (purpose, names, paths) goes through user_text: Rich must never
    # read it as markup, and a newline in it must not print a line of its own.
    if as_json:
        print_json(job)
        return
    if headline:
        console.print(user_text(headline))
    console.print(
        Text.assemble(user_text(job.id, "bold"), "  state: ", user_text(job.state, "bold"))
    )
    console.print(Text.assemble("  purpose:    ", user_text(job.purpose)))
    console.print(
        Text.assemble(
            "  requester:  ",
            user_text(job.requester),
            "   data preparer: ",
            user_text(job.preparer),
        )
    )
    for label, ref in (
        ("dataset", job.dataset),
        ("base model", job.base_model),
        ("config", job.config),
    ):
        console.print(
            Text.assemble(
                f"  {label + ':':<11} ",
                user_text(ref["path"]),
                "  sha256:",
                user_text(str(ref["sha256"])[:16]),
            )
        )
    for a in job.approvals:
        console.print(
            Text.assemble(
                "  approval:   ",
                user_text(a["approver"]),
                user_text(f" ({a['status']}, expires {a['expires_at']})"),
            )
        )
    for e in job.evidence:
        console.print(
            Text.assemble("  evidence:   ", user_text(f"{e['kind']} sha256:{str(e['digest'])[:16]}"))
        )


@job_app.command("submit")
def job_submit(
    base_model: Annotated[Path, typer.Option("--base-model", help="Base model folder or file.")],
    dataset: Annotated[Path, typer.Option("--dataset", help="Training dataset file or folder.")],
    config: Annotated[Path, typer.Option("--config", help="Training config file.")],
    purpose: Annotated[str, typer.Option("--purpose", help="What the fine-tune is for.")],
    prepared_by: Annotated[str, typer.Option("--prepared-by", help="Who prepared the dataset.")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Request a fine-tuning job; records content digests of its inputs."""
    job = service.submit_job(
        workspace(),
        actor=actor_or_default(actor),
        base_model=base_model,
        dataset=dataset,
        config=config,
        purpose=purpose,
        prepared_by=prepared_by,
    )
    _show(job, as_json, headline="submitted")


@job_app.command("list")
def job_list(
    state: Annotated[str | None, typer.Option("--state", help="Only jobs in this state.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List jobs, newest first."""
    jobs = service.list_jobs(workspace(), state=state)
    if as_json:
        print_json(jobs)
        return
    table = Table("job", "state", "requester", "purpose", "created")
    for j in jobs:
        table.add_row(
            user_text(j.id),
            user_text(j.state),
            user_text(j.requester),
            user_text(j.purpose[:50]),
            user_text(j.created_at[:19]),
        )
    console.print(table)


@job_app.command("show")
def job_show(
    job_id: Annotated[str, typer.Argument(help="Job id.")], as_json: JsonOption = False
) -> None:
    """Show one job with its approvals and evidence."""
    _show(service.get_job(workspace(), job_id), as_json)


@job_app.command("cancel")
def job_cancel(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a job (its requester or an admin)."""
    _show(service.cancel_job(workspace(), actor=actor_or_default(actor), job_id=job_id), as_json)


@app.command("approve")
def approve(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sign your approval of a job with your own key."""
    job = service.approve(workspace(), actor=actor_or_default(actor), job_id=job_id)
    _show(job, as_json, headline=f"approved by {actor_or_default(actor)}")


@app.command("reject")
def reject(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why the job is rejected.")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Reject a job."""
    job = service.reject(workspace(), actor=actor_or_default(actor), job_id=job_id, reason=reason)
    _show(job, as_json, headline="rejected")


@app.command("override")
def override(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    justification: Annotated[str, typer.Option("--justification", help="Why.")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Security reviewer: override a dataset review's or the gate's block (audited, justified)."""
    job = service.override(
        workspace(), actor=actor_or_default(actor), job_id=job_id, justification=justification
    )
    _show(job, as_json, headline="overridden")
