"""CLI: ``ftguard run JOB -- CMD ARGS...``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ftguard.cli._app import app
from ftguard.cli._common import (
    ActorOption,
    actor_or_default,
    err_console,
    remote_client,
    workspace,
)
from ftguard.control import service
from ftguard.errors import BadInputError


@app.command(
    "run",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def run(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="Approved job id.")],
    output: Annotated[
        str | None, typer.Option("--output", help="Where the command writes the model/adapter.")
    ] = None,
    storage_root: Annotated[
        list[str] | None,
        typer.Option(
            "--storage-root",
            help="Against a server: NAME=FOLDER where this machine mounts the server's storage root NAME, or NAME=s3://bucket/prefix (repeat).",
        ),
    ] = None,
    work_dir: Annotated[
        Path | None,
        typer.Option(
            "--work-dir", help="Against a server: where inputs are staged (default ~/.ftguard)."
        ),
    ] = None,
    actor: ActorOption = None,
) -> int:
    """Verify the approvals, stage the approved inputs read-only, run the approved command.

    Runs the command the job's approved config names ('command:'), with its placeholders
    replaced by the staged inputs and the output folder, then records the output's digest.
    'ftguard run JOB -- CMD' runs a free-form command instead, only where the policy allows it
    (recorded as an unbound run, which the gate blocks unless the policy allows it). Only the
    requester or a runner starts a run. Exits with the command's own exit code when it runs;
    refuses with exit 6 (verification), 4 (permission), 5 (conflict) or 3 (unknown job) and
    one line saying why.
    """
    command = list(ctx.args)
    if command and command[0] == "--":
        command = command[1:]
    client = remote_client(actor)
    if client is not None:
        if command or output:
            raise BadInputError(
                "against a server a run runs the approved command into the output the server "
                "names; -- CMD and --output are for a local workspace"
            )
        from ftguard.cli._remote_run import run_remote
        from ftguard.cli.server import storage_roots

        code = run_remote(
            client,
            job_id,
            roots=storage_roots(storage_root or []),
            work_dir=work_dir or Path.home() / ".ftguard",
        )
        if code != 0:
            err_console.print(
                f"ftguard: the training command exited with {code}; job marked failed"
            )
        raise typer.Exit(code)
    code = service.launch(
        workspace(), actor=actor_or_default(actor), job_id=job_id, command=command, output=output
    )
    if code != 0:
        err_console.print(f"ftguard: the training command exited with {code}; job marked failed")
    raise typer.Exit(code)
