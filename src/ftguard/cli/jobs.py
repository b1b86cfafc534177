"""CLI: ``ftguard job``, ``ftguard approve``, ``ftguard reject``, ``ftguard override``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
    remote_client,
    user_text,
    workspace,
)
from ftguard.control import JobView, service

if TYPE_CHECKING:
    from ftguard.cli._remote import RemoteClient

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
            " (has not confirmed the dataset: no approval counts yet)"
            if job.awaits_preparer
            else "",
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
            Text.assemble(
                "  evidence:   ", user_text(f"{e['kind']} sha256:{str(e['digest'])[:16]}")
            )
        )


@job_app.command("submit")
def job_submit(
    base_model: Annotated[
        str,
        typer.Option(
            "--base-model", help="Base model folder or file (on a server: ROOT/relative/path)."
        ),
    ],
    dataset: Annotated[str, typer.Option("--dataset", help="Training dataset file or folder.")],
    config: Annotated[
        str,
        typer.Option(
            "--config",
            help="Training config: a YAML file, or a folder with config.yaml and the training code its command names (hashed and staged with the job).",
        ),
    ],
    purpose: Annotated[str, typer.Option("--purpose", help="What the fine-tune is for.")],
    prepared_by: Annotated[str, typer.Option("--prepared-by", help="Who prepared the dataset.")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Request a fine-tuning job; records content digests of its inputs."""
    client = remote_client(actor)
    if client is not None:
        body = {"base_model": base_model, "dataset": dataset, "config": config}
        body |= {"purpose": purpose, "prepared_by": prepared_by}
        _show(client.job("POST", "/jobs", body), as_json, headline="submitted")
        return
    job = service.submit_job(
        workspace(),
        actor=actor_or_default(actor),
        base_model=Path(base_model),
        dataset=Path(dataset),
        config=Path(config),
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
    client = remote_client()
    if client is not None:
        jobs: list[JobView] = []
        while True:
            page = client.call("GET", "/jobs", state=state, limit=1000, offset=len(jobs))
            jobs += [JobView.model_validate(j) for j in page]
            if len(page) < 1000:
                break
    else:
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
    client = remote_client()
    if client is not None:
        _show(client.job("GET", f"/jobs/{job_id}"), as_json)
        return
    _show(service.get_job(workspace(), job_id), as_json)


@job_app.command("abort-run")
def job_abort_run(
    job_id: Annotated[str, typer.Argument(help="Job id (running).")],
    reason: Annotated[str, typer.Option("--reason", help="Why the run is aborted.")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Admin: end a run whose launcher is gone (killed, machine lost); the job fails, audited.

    Only the run's starter records its end, with the run's token; a killed launcher leaves the
    job running until an admin aborts it. No output is recorded; the job can be approved again.
    """
    client = remote_client(actor)
    if client is not None:
        _show(client.job("POST", f"/jobs/{job_id}/abort", {"reason": reason}), as_json)
        return
    ws = workspace()
    service.abort_run(ws, actor=actor_or_default(actor), job_id=job_id, reason=reason)
    _show(service.get_job(ws, job_id), as_json, headline="run aborted")


@job_app.command("cancel")
def job_cancel(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a job (its requester or an admin)."""
    client = remote_client(actor)
    if client is not None:
        _show(client.job("POST", f"/jobs/{job_id}/cancel"), as_json)
        return
    _show(service.cancel_job(workspace(), actor=actor_or_default(actor), job_id=job_id), as_json)


@job_app.command("confirm-data")
def job_confirm_data(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    dataset: Annotated[
        Path | None,
        typer.Option(
            "--dataset",
            help="Your copy of the dataset: its digest must be the submitted one (recommended).",
        ),
    ] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Data preparer: sign that the job's dataset is the one you prepared.

    The requester names you as the job's preparer; until you confirm, no approval counts (the
    policy's approval.preparer_confirms). With --dataset your own copy is hashed here first and
    a different dataset is refused (exit 6), so you never vouch for data you did not prepare.
    """
    from ftguard.digests import manifest_of

    digest = manifest_of(dataset).root if dataset is not None else None
    client = remote_client(actor)
    if client is not None:
        body = {"dataset_digest": digest}
        _show(client.job("POST", f"/jobs/{job_id}/prepared", body), as_json, headline="confirmed")
        return
    job = service.confirm_prepared(
        workspace(), actor=actor_or_default(actor), job_id=job_id, dataset_digest=digest
    )
    _show(job, as_json, headline="confirmed")


@app.command("approve")
def approve(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sign your approval of a job with your own key."""
    client = remote_client(actor)
    if client is not None:
        job = _approve_remote(client, job_id, quiet=as_json)
        _show(job, as_json, headline=f"approved by {job.approvals[-1]['approver']}")
        return
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
    client = remote_client(actor)
    if client is not None:
        job = client.job("POST", f"/jobs/{job_id}/reject", {"reason": reason})
        _show(job, as_json, headline="rejected")
        return
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
    client = remote_client(actor)
    if client is not None:
        body = {"justification": justification}
        _show(client.job("POST", f"/jobs/{job_id}/override", body), as_json, headline="overridden")
        return
    job = service.override(
        workspace(), actor=actor_or_default(actor), job_id=job_id, justification=justification
    )
    _show(job, as_json, headline="overridden")


def _approve_remote(client: RemoteClient, job_id: str, *, quiet: bool) -> JobView:
    """Fetch the statement, show what it binds, sign it here with your own key, post it."""
    from ftguard.attest import load_private_key, sign_statement
    from ftguard.control import private_key_path

    me = client.call("GET", "/whoami")["user"]
    statement = client.call("GET", f"/jobs/{job_id}/approval-statement")
    if not quiet:
        predicate = statement.get("predicate") or {}
        console.print(user_text(f"{me} signs the approval of {job_id}, binding:"))
        for subject in statement.get("subject") or []:
            digest = str((subject.get("digest") or {}).get("sha256"))
            console.print(user_text(f"  {subject.get('name')}  sha256:{digest}"))
        console.print(user_text(f"  review sha256:{predicate.get('review_digest')}"))
        console.print(user_text(f"  policy sha256:{predicate.get('policy_digest')}"))
        console.print(user_text(f"  expires {predicate.get('expires_at')}"))
    key = load_private_key(private_key_path(me))
    envelope = sign_statement(statement, key)
    return client.job(
        "POST", f"/jobs/{job_id}/approvals", {"envelope": envelope.model_dump(mode="json")}
    )
