"""``ftguard run JOB`` on a training machine that is a client of a team server.

The server starts the run and signs a run ticket; this side checks the ticket and every
approval in it offline against the server key pinned at ``ftguard login``, stages the inputs
from its own mount of the storage (``--storage-root NAME=FOLDER``, as the server names them)
read-only and checked against the approved digests, runs the approved command, and reports
the end with the run token. The server then hashes the output on its storage itself.

A root given as ``NAME=s3://bucket/prefix`` is read from object storage instead: each input is
downloaded into the run's folder, then staged and checked like one from a mount; an output
there is written locally and uploaded after the command succeeds.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from ftguard._objects import ObjectRoot, fetch, upload
from ftguard.attest import Envelope, PublicKey
from ftguard.cli._remote import RemoteClient, pinned_server_key
from ftguard.control import (
    INPUT_KINDS,
    check_command_files,
    fill_command,
    fresh_run_folder,
    python_isolation,
    stage_into,
    verify_run_ticket,
)
from ftguard.errors import BadInputError, FtguardError, PermissionDeniedError

__all__ = ["local_path", "run_remote"]


Roots = Mapping[str, Path | ObjectRoot]


def _split(roots: Roots, reference: str) -> tuple[Path | ObjectRoot, tuple[str, ...]]:
    parts = PurePosixPath(reference).parts
    if len(parts) < 2 or reference.startswith("/") or ".." in parts or "\\" in reference:
        raise PermissionDeniedError(f"the ticket names a path outside the storage: {reference}")
    root = roots.get(parts[0])
    if root is None:
        raise BadInputError(
            f"storage root {parts[0]!r} is not mounted here: give --storage-root {parts[0]}=FOLDER"
        )
    return root, tuple(parts[1:])


def local_path(roots: Roots, reference: str, *, downloads: Path | None = None) -> Path:
    """The path on this machine of a storage reference ``ROOT/relative/path``.

    In an object-storage root it is downloaded now into a new folder under ``downloads``.

    Raises:
        BadInputError: The root is not mounted here (no ``--storage-root`` for it), or an
            object-storage input cannot be downloaded.
        PermissionDeniedError: The reference leaves its root.

    """
    root, relative = _split(roots, reference)
    if isinstance(root, ObjectRoot):
        if downloads is None:
            raise BadInputError(f"{reference} is in object storage: it has no local path here")
        folder = downloads / secrets.token_hex(8)
        folder.mkdir(parents=True, mode=0o700)
        return fetch(root, relative, folder, label=f"the approved {reference}")
    return root.joinpath(*relative)


def run_remote(
    client: RemoteClient,
    job_id: str,
    *,
    roots: Roots,
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
        run_dir = fresh_run_folder(work_dir / "runs" / job_id / str(run))
        ticket_path = run_dir / "run-ticket.json"
        ticket_path.write_text(ticket.model_dump_json(), encoding="utf-8")
        key_path = run_dir / "server.pub"
        key_path.write_text(key.b64, encoding="ascii")
        downloads = run_dir / "downloads"
        try:
            staged = {
                kind: stage_into(
                    work_dir / "staged",
                    kind,
                    local_path(roots, check.inputs[kind]["reference"], downloads=downloads),
                    check.inputs[kind]["digest"],
                )
                for kind in INPUT_KINDS
            }
        finally:
            shutil.rmtree(downloads, ignore_errors=True)
        output_root, output_relative = _split(roots, check.output)
        if isinstance(output_root, ObjectRoot):
            output = run_dir / "output" / output_relative[-1]  # uploaded after the run
        else:
            output = output_root.joinpath(*output_relative)
        output.parent.mkdir(parents=True, exist_ok=True)
        argv = fill_command(check.command, {**staged, "output": output})
        check_command_files(argv, staged, run_dir, output)
        env = {
            **os.environ,
            "FTGUARD_JOB": job_id,
            "FTGUARD_RUN_TOKEN": token,
            "FTGUARD_RUN_TICKET": str(ticket_path),
            "FTGUARD_SERVER_KEY": str(key_path),
            "FTGUARD_OUTPUT": str(output),
            "FTGUARD_DRIFT_LOG": str(run_dir / "drift.jsonl"),
            **{f"FTGUARD_STAGED_{k.upper()}": str(p) for k, p in staged.items()},
            **python_isolation(staged.get("config")),
        }
        try:
            code = subprocess.run(  # noqa: S603 - the approved command, in the run's folder
                argv, env=env, check=False, cwd=run_dir
            ).returncode
        except OSError:
            code = 127
        if code == 0 and isinstance(output_root, ObjectRoot) and output.exists():
            try:
                upload(output_root, output_relative, output)
            except FtguardError as exc:
                code = exc.exit_code  # a partial upload must not pass for the output
                raise
    finally:
        client.call("POST", f"/jobs/{job_id}/runs/{run}/end", {"token": token, "exit_code": code})
    return code
