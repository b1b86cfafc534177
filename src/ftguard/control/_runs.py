"""Training runs: the launcher's verified start, the run's end, and the launcher itself."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sqlalchemy import select

from ftguard.control._approvals import verify_job_approvals
from ftguard.control._audit import append_event
from ftguard.control._jobs import get_job_row, transition
from ftguard.control._states import JobState
from ftguard.control._workspace import Workspace, now_iso
from ftguard.digests import sha256_bytes
from ftguard.errors import BadInputError, ConflictError, VerificationError
from ftguard.store import ApprovalRow

__all__ = ["RunTicket", "finish_run", "launch", "start_run", "verify_running"]


@dataclass(frozen=True)
class RunTicket:
    """What a started run hands to the training command."""

    job_id: str
    run_number: int
    token: str
    run_dir: Path
    bundle_path: Path
    drift_log: Path

    def environment(self, ws: Workspace) -> dict[str, str]:
        """Environment variables the training command receives."""
        return {
            "FTGUARD_JOB": self.job_id,
            "FTGUARD_RUN_TOKEN": self.token,
            "FTGUARD_APPROVAL_BUNDLE": str(self.bundle_path),
            "FTGUARD_DRIFT_LOG": str(self.drift_log),
            "FTGUARD_POLICY": str(ws.policy_path),
            "FTGUARD_HOME": str(ws.path),
        }


def start_run(
    ws: Workspace, *, actor: str, job_id: str, command: list[str] | None = None
) -> RunTicket:
    """Verify the job's approvals and inputs, then mark it running and consume its approvals.

    Verification reads the inputs outside the write lock; the state is then re-checked under
    the lock, so of two launchers started at once exactly one runs.
    """
    with ws.store.read() as session:
        row = get_job_row(session, job_id)
        if row.state != JobState.APPROVED.value:
            raise VerificationError(
                f"job {job_id} is {row.state}, not approved: it may not be trained"
            )
        check = verify_job_approvals(ws, session, job_id)
    token = secrets.token_urlsafe(24)
    with ws.store.write() as session:
        row = get_job_row(session, job_id, lock=True)
        if row.state != JobState.APPROVED.value:
            raise ConflictError(f"job {job_id} is {row.state}: another run took its approval")
        used = session.scalars(
            select(ApprovalRow).where(ApprovalRow.id.in_(check.approval_ids))
        ).all()
        if len(used) != len(check.approval_ids) or any(a.status != "active" for a in used):
            raise ConflictError(f"the approvals of job {job_id} changed while verifying")
        row.run_count += 1
        run_number = row.run_count
        for a in used:
            a.status = "consumed"
            a.consumed_by_run = run_number
        row.run_token_hash = sha256_bytes(token.encode())
        transition(
            ws,
            session,
            row,
            JobState.RUNNING,
            actor=actor,
            action="run.start",
            payload={
                "run": run_number,
                "approvers": [v["approver"] for v in check.valid],
                "command": command or [],
            },
        )
    run_dir = ws.runs_dir / job_id / str(run_number)
    run_dir.mkdir(parents=True, exist_ok=True)
    bundle = run_dir / "approval-bundle.json"
    bundle.write_text(json.dumps(check.bundle(), indent=2))
    return RunTicket(
        job_id=job_id,
        run_number=run_number,
        token=token,
        run_dir=run_dir,
        bundle_path=bundle,
        drift_log=run_dir / "drift.jsonl",
    )


def verify_running(ws: Workspace, *, job_id: str, token: str) -> None:
    """Check that ``token`` belongs to the job's current run and re-verify its approvals.

    Used by the trainer-side guard when the launcher started the run.
    """
    with ws.store.read() as session:
        row = get_job_row(session, job_id)
        if row.state != JobState.RUNNING.value:
            raise VerificationError(f"job {job_id} is {row.state}, not running under ftguard run")
        if row.run_token_hash != sha256_bytes(token.encode()):
            raise VerificationError(f"the run token does not belong to job {job_id}'s current run")
        used = session.scalars(
            select(ApprovalRow).where(
                ApprovalRow.job_id == job_id, ApprovalRow.consumed_by_run == row.run_count
            )
        ).all()
        verify_job_approvals(ws, session, job_id, approvals=list(used))


def finish_run(
    ws: Workspace,
    *,
    actor: str,
    job_id: str,
    token: str,
    exit_code: int,
    output_path: str | None = None,
) -> JobState:
    """Record the end of a run: ``trained`` on exit code 0, else ``failed``."""
    target = JobState.TRAINED if exit_code == 0 else JobState.FAILED
    with ws.store.write() as session:
        row = get_job_row(session, job_id, lock=True)
        if row.run_token_hash != sha256_bytes(token.encode()):
            raise VerificationError(f"the run token does not belong to job {job_id}'s current run")
        if output_path:
            row.output_path = output_path
        row.run_token_hash = None
        transition(
            ws,
            session,
            row,
            target,
            actor=actor,
            action="run.end",
            payload={"run": row.run_count, "exit_code": exit_code, "output": output_path},
        )
    return target


def launch(
    ws: Workspace,
    *,
    actor: str,
    job_id: str,
    command: list[str],
    output: str | None = None,
    stdout: IO[str] | None = None,
) -> int:
    """``ftguard run``: verify, start ``command`` with the run's environment, record its end.

    Args:
        ws: The workspace.
        actor: Who starts the run.
        job_id: The approved job.
        command: The training command and its arguments.
        output: Where the command writes the model or adapter (recorded on the job).
        stdout: Where the command's standard output goes (default: inherited).

    Returns:
        The command's own exit code (127 when it cannot be started).

    """
    if not command:
        raise BadInputError(
            "give the training command after '--', e.g. ftguard run JOB -- python train.py"
        )
    ticket = start_run(ws, actor=actor, job_id=job_id, command=command)
    env = {**os.environ, **ticket.environment(ws)}
    if output:
        env["FTGUARD_OUTPUT"] = output
    code = 127
    try:
        proc = subprocess.Popen(command, env=env, stdout=stdout)  # noqa: S603 - the user's own command
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            code = proc.wait()
    except OSError as exc:
        with ws.store.write() as session:
            append_event(
                session,
                ws.workspace_key(),
                ts=now_iso(),
                actor=actor,
                action="run.error",
                job_id=job_id,
                payload={"error": f"cannot start {command[0]}: {exc.strerror or exc}"},
            )
        code = 127
    finally:
        finish_run(
            ws, actor=actor, job_id=job_id, token=ticket.token, exit_code=code, output_path=output
        )
    return code
