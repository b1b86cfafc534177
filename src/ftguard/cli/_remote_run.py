"""``ftguard run JOB`` on a training machine that is a client of a team server.

The server starts the run and signs a run ticket; this side checks the ticket and every
approval in it offline against the server key pinned at ``ftguard login``, stages the inputs
from its own mount of the storage (``--storage-root NAME=FOLDER``, as the server names them)
read-only and checked against the approved digests, runs the approved command, and reports
the end with the run token. The server then hashes the output on its storage itself.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path, PurePosixPath

from ftguard.attest import Envelope, PublicKey
from ftguard.cli._remote import RemoteClient, pinned_server_key
from ftguard.control._remote_runs import verify_run_ticket
from ftguard.control._runs import fill_command
from ftguard.control._staging import INPUT_KINDS, stage_into
from ftguard.errors import BadInputError, PermissionDeniedError

__all__ = ["local_path", "run_remote"]


def local_path(roots: dict[str, Path], reference: str) -> Path:
    """The path on this machine of a storage reference ``ROOT/relative/path``.

    Raises:
        BadInputError: The root is not mounted here (no ``--storage-root`` for it).
        PermissionDeniedError: The reference leaves its root.

    """
    parts = PurePosixPath(reference).parts
    if len(parts) < 2 or reference.startswith("/") or ".." in parts:
        raise PermissionDeniedError(f"the ticket names a path outside the storage: {reference}")
    root = roots.get(parts[0])
    if root is None:
        raise BadInputError(
            f"storage root {parts[0]!r} is not mounted here: give --storage-root {parts[0]}=FOLDER"
        )
    return root.joinpath(*parts[1:])


def run_remote(
    client: RemoteClient,
    job_id: str,
    *,
    roots: dict[str, Path],
    work_dir: Path,
    server_key: PublicKey | None = None,
) -> int:
    """Start, verify, stage, run and report one run; returns the command's exit code."""
    key = server_key or pinned_server_key()
    answer = client.call("POST", f"/jobs/{job_id}/runs", {})
    ticket = Envelope.model_validate(answer["ticket"])
    token = str(answer["token"])
    run = int(answer["run"])
    code = 127
    try:
        check = verify_run_ticket(ticket, key, token=token)
        run_dir = work_dir / "runs" / job_id / str(run)
        run_dir.mkdir(parents=True, exist_ok=True)
        ticket_path = run_dir / "run-ticket.json"
        ticket_path.write_text(ticket.model_dump_json(), encoding="utf-8")
        key_path = run_dir / "server.pub"
        key_path.write_text(key.b64, encoding="ascii")
        staged = {
            kind: stage_into(
                work_dir / "staged",
                kind,
                local_path(roots, check.inputs[kind]["reference"]),
                check.inputs[kind]["digest"],
            )
            for kind in INPUT_KINDS
        }
        output = local_path(roots, check.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        argv = fill_command(check.command, {**staged, "output": output})
        env = {
            **os.environ,
            "FTGUARD_JOB": job_id,
            "FTGUARD_RUN_TOKEN": token,
            "FTGUARD_RUN_TICKET": str(ticket_path),
            "FTGUARD_SERVER_KEY": str(key_path),
            "FTGUARD_OUTPUT": str(output),
            "FTGUARD_DRIFT_LOG": str(run_dir / "drift.jsonl"),
            **{f"FTGUARD_STAGED_{k.upper()}": str(p) for k, p in staged.items()},
        }
        try:
            code = subprocess.run(argv, env=env, check=False).returncode  # noqa: S603 - approved
        except OSError:
            code = 127
    finally:
        client.call("POST", f"/jobs/{job_id}/runs/{run}/end", {"token": token, "exit_code": code})
    return code
