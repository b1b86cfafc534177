"""Training runs: the launcher's verified start, the run's end, and the launcher itself.

``ftguard run JOB`` runs exactly the command the approved config names (``command:``, a list
whose ``{dataset}``, ``{base_model}``, ``{config}`` and ``{output}`` are replaced by the staged
inputs and the output folder; a leading ``python`` is this interpreter). Only the requester or
a holder of the ``runner`` role may start it. The launcher stages the approved inputs
read-only (:mod:`ftguard.control._staging`), records the start in the audit chain, runs the
command, then digests the output folder itself and records its manifest with the run's end.
A free-form command (``ftguard run JOB -- CMD``) runs only where the policy allows it, and is
recorded as an *unbound* run, which the gate blocks unless the policy says otherwise.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ftguard._files import read_text_file
from ftguard.control._approvals import ApprovalCheck, approvals_of_run, verify_job_approvals
from ftguard.control._audit import append_event
from ftguard.control._chain import Actor, ChainState, JobRecord, parse_payload
from ftguard.control._identities import (
    Caller,
    acting,
    authenticate,
    chain_state,
    policy_in_force,
    require_admin_scope,
    require_role,
)
from ftguard.control._jobs import checked_job, transition
from ftguard.control._staging import INPUT_KINDS, stage_inputs, staged_path
from ftguard.control._states import JobState
from ftguard.control._workspace import Workspace, now_iso
from ftguard.digests import manifest_of, sha256_bytes
from ftguard.errors import (
    BadInputError,
    ConflictError,
    FtguardError,
    PermissionDeniedError,
    VerificationError,
)
from ftguard.policy import Policy, read_yaml
from ftguard.store import ApprovalRow, AuditEventRow, JobRow

__all__ = [
    "RunTicket",
    "abort_run",
    "approved_command",
    "command_template",
    "check_command_files",
    "fill_command",
    "fresh_run_folder",
    "may_start",
    "python_isolation",
    "finish_run",
    "launch",
    "record_start",
    "run_output_reference",
    "start_run",
    "startable_job",
    "verify_running",
]

_PLACEHOLDERS = ("dataset", "base_model", "config", "output")


@dataclass(frozen=True)
class RunTicket:
    """What a started run hands to the training command."""

    job_id: str
    run_number: int
    token: str
    run_dir: Path
    bundle_path: Path
    drift_log: Path
    command: list[str]
    output: Path
    bound: bool
    staged: dict[str, Path] = field(default_factory=dict)

    def environment(self, ws: Workspace) -> dict[str, str]:
        """Environment variables the training command receives."""
        env = {
            "FTGUARD_JOB": self.job_id,
            "FTGUARD_RUN_TOKEN": self.token,
            "FTGUARD_APPROVAL_BUNDLE": str(self.bundle_path),
            "FTGUARD_DRIFT_LOG": str(self.drift_log),
            "FTGUARD_POLICY": str(ws.policy_path),
            "FTGUARD_HOME": str(ws.path),
            "FTGUARD_OUTPUT": str(self.output),
        }
        for kind, path in self.staged.items():
            env[f"FTGUARD_STAGED_{kind.upper()}"] = str(path)
        return {**env, **python_isolation(self.staged.get("config"))}


def python_isolation(config: Path | None) -> dict[str, str]:
    """Environment that keeps a Python command to approved code (merged over the runner's).

    ``PYTHONSAFEPATH`` stops Python putting the working folder (for ``-m`` and ``-c``) or the
    script's folder first on ``sys.path``, so a module planted beside the command cannot stand
    in for the trainer; a staged config *folder* (approved, read-only) is put on
    ``PYTHONPATH`` instead, so that training code there imports its own modules.
    """
    env = {"PYTHONSAFEPATH": "1"}
    if config is not None and config.is_dir():
        inherited = os.environ.get("PYTHONPATH")
        env["PYTHONPATH"] = os.pathsep.join([str(config), *([inherited] if inherited else [])])
    return env


def fresh_run_folder(path: Path) -> Path:
    """Create the run's folder, private to this account: where the command runs.

    A folder that already exists is taken only when it is empty, this account's and not
    writable by others (a launcher that stopped before its command ran): one prepared by
    someone else could hold a module the command would import, or be swapped under it.

    Raises:
        BadInputError: The folder exists and is not such a one.

    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        _check_run_folder(path)
    path.chmod(0o700)
    return path


def _check_run_folder(path: Path) -> None:
    """Refuse a run folder that exists and is not an empty, private folder of this account.

    Raises:
        BadInputError: It is a link, a file, another account's, writable by others or not
            empty.

    """
    if not (path.exists() or path.is_symlink()):
        return
    info = path.lstat()
    if (
        path.is_symlink()
        or not path.is_dir()
        or info.st_uid != os.geteuid()
        or info.st_mode & 0o022
        or any(path.iterdir())
    ):
        raise BadInputError(
            f"the run folder {path} already exists and is not an empty folder of this "
            "account's: a run starts in a new, private folder (remove it, or ask who made it)"
        )


CONFIG_FILE = "config.yaml"
"""The file a config *folder* holds its settings and ``command`` in (the rest of the folder
is the training code that command names, hashed and staged with the job)."""


def command_template(config: Path) -> list[str] | None:
    """The ``command`` an approved config names, placeholders as written; None if none.

    ``config`` is a YAML file, or a folder holding :data:`CONFIG_FILE` and the code it runs.

    Raises:
        BadInputError: The config is not readable YAML (duplicate keys included), or
            ``command`` is not a non-empty list of strings.

    """
    if config.is_dir():  # a config folder: its config.yaml, beside the code its command names
        config = config / CONFIG_FILE
    data = read_yaml(read_text_file(config, what="approved config"), source=str(config))
    if not isinstance(data, dict) or "command" not in data:
        return None
    raw = data["command"]
    if not isinstance(raw, list) or not raw or not all(isinstance(a, str) for a in raw):
        raise BadInputError("the approved config's 'command' must be a non-empty list of strings")
    return list(raw)


def fill_command(template: list[str], values: dict[str, Path]) -> list[str]:
    """A command template with its placeholders filled (a leading ``python`` is this one)."""
    raw = template
    filled: list[str] = []
    for arg in raw:
        for name in _PLACEHOLDERS:
            if name in values:
                arg = arg.replace("{" + name + "}", str(values[name]))
        filled.append(arg)
    if filled[0] in ("python", "python3"):
        filled[0] = sys.executable
    return filled


def approved_command(config: Path, values: dict[str, Path]) -> list[str] | None:
    """The command an approved config names, with its placeholders filled; None if it names none.

    Raises:
        BadInputError: As :func:`command_template`.

    """
    template = command_template(config)
    return None if template is None else fill_command(template, values)


def may_start(state: ChainState, policy: Policy, row: JobRow, actor: Actor) -> None:
    if actor.name == row.requester and not policy.run.requester_may_run:
        raise PermissionDeniedError(
            f"{actor.name} requested job {row.id} and may not run it: the policy asks for a "
            "runner other than the requester (run.requester_may_run: false)"
        )
    if actor.name != row.requester and "runner" not in state.roles_of(actor.name, policy.roles):
        raise PermissionDeniedError(
            f"{actor.name} may not run job {row.id}: only its requester ({row.requester}) or a "
            "holder of the runner role starts a run"
        )


def startable_job(ws: Workspace, *, actor: Caller, job_id: str) -> tuple[Policy, JobRow]:
    """The policy in force and the job, once the caller may start it and its approvals hold.

    Raises:
        PermissionDeniedError: The caller is neither the requester nor a runner.
        VerificationError: The job is not approved, or its approvals do not verify.

    """
    with ws.store.read() as session:
        state, policy, who = acting(ws, session, actor)
        row = checked_job(session, state, job_id)
        may_start(state, policy, row, who)
        if row.state != JobState.APPROVED.value:
            raise VerificationError(
                f"job {job_id} is {row.state}, not approved: it may not be trained"
            )
        verify_job_approvals(ws, session, state, policy, job_id)
        return policy, row


def start_run(
    ws: Workspace,
    *,
    actor: Caller,
    job_id: str,
    command: list[str] | None = None,
    output: Path | None = None,
) -> RunTicket:
    """Verify, stage the approved inputs, then mark the job running and consume its approvals.

    ``command`` is a free-form command (an unbound run, only where the policy allows it);
    without it the approved config's command runs. Verification and staging read the inputs
    outside the write lock; the state is then re-checked under it, so of two launchers started
    at once exactly one runs.
    """
    policy, row = startable_job(ws, actor=actor, job_id=job_id)
    if command and not policy.run.allow_free_command:
        raise PermissionDeniedError(
            "the policy does not allow free-form run commands (run.allow_free_command): "
            f"run 'ftguard run {job_id}' to run the command the approved config names"
        )
    run_number = row.run_count + 1
    run_dir = ws.runs_dir / job_id / str(run_number)
    out = (output or run_dir / "output").resolve()
    try:
        _check_output_is_new(out)
    except BadInputError:
        # A launcher started at the same moment may be writing there already: then the job is
        # no longer approved, and the caller is told so (as a later launcher is), not "bad
        # input". A folder filled by anyone else stays bad input.
        startable_job(ws, actor=actor, job_id=job_id)
        raise
    staged = stage_inputs(ws, row)
    try:
        _check_run_folder(run_dir)
    except BadInputError:
        startable_job(ws, actor=actor, job_id=job_id)  # as for the output: a late launcher?
        raise
    argv = command or approved_command(staged["config"], {**staged, "output": out})
    if argv is None:
        raise BadInputError(
            f"the approved config of job {job_id} names no command: add "
            '\'command: [python, -m, ftguard.training, --base, "{base_model}", --dataset, '
            '"{dataset}", --out, "{output}"]\' to it and submit the job again'
        )
    if not command:
        check_command_files(argv, staged, run_dir, out)
    started = record_start(
        ws,
        job_id=job_id,
        policy=policy,
        actor=actor,
        run_number=run_number,
        details={
            "bound": not command,
            "command": argv,
            "output": str(out),
            "staged": {kind: staged[kind].name for kind in INPUT_KINDS},
        },
    )
    check, token = started.check, started.token
    try:
        fresh_run_folder(run_dir)  # made now, by the one launcher that started the run
    except BadInputError:
        finish_run(ws, actor=actor, job_id=job_id, token=token, exit_code=127)
        raise
    bundle = run_dir / "approval-bundle.json"
    bundle.write_text(json.dumps(check.bundle(), indent=2))
    return RunTicket(
        job_id=job_id,
        run_number=run_number,
        token=token,
        run_dir=run_dir,
        bundle_path=bundle,
        drift_log=run_dir / "drift.jsonl",
        command=argv,
        output=out,
        bound=not command,
        staged=staged,
    )


_ABSOLUTE_PATH = re.compile(r"(?<![\w.)\]])(/[\w.\-+@%]+(?:/[\w.\-+@%]*)*)")
"""An absolute path written inside a longer argument (code for ``-c``, a shell line)."""


def check_command_files(
    argv: list[str], staged: dict[str, Path], run_dir: Path, output: Path
) -> None:
    """Refuse an approved command that names a path outside the staged inputs and its output.

    The config's ``command`` is approved as text; a file or folder it names (``train.py``, a
    package, a shell script, a ``PYTHONPATH=...`` entry) would be read or run as it is at run
    time, whoever wrote it since the approval. Training code belongs in the config folder,
    which is hashed, approved and staged with the job.

    Checked: each argument, the value after an ``=`` in it and each ``os.pathsep`` part of
    that value, as a path (relative ones in the run's new, private folder). Such a path must
    lie in a staged input, the output or the run folder; one that does not exist yet is
    refused too where it is absolute or leaves the run folder (something could be put there
    before the command reads it). Absolute paths written inside a longer argument (code given
    to ``python -c`` or ``sh -c``) are refused when they exist outside those folders and this
    Python's own installation. The interpreter ``fill_command`` put first and programs found
    on ``PATH`` are the runner's own environment and are not checked.

    Raises:
        VerificationError: The command names a path outside the approved inputs.

    """
    allowed = [p.resolve() for p in [*staged.values(), output, run_dir]]
    environment = [Path(p).resolve() for p in {sys.prefix, sys.base_prefix, sys.exec_prefix}]
    for position, arg in enumerate(argv):
        if position == 0 and ("/" not in arg or arg == sys.executable):
            continue
        value = arg.partition("=")[2]
        for candidate in {arg, value, *value.split(os.pathsep)} - {""}:
            if _names_outside(candidate, run_dir, allowed):
                _refuse_named(candidate)
        for embedded in _ABSOLUTE_PATH.findall(arg):
            if _exists(Path(embedded)) and not _inside(Path(embedded), [*allowed, *environment]):
                _refuse_named(embedded)


def _names_outside(candidate: str, run_dir: Path, allowed: list[Path]) -> bool:
    """Whether a path an argument names lies outside ``allowed``.

    A relative name is taken in the run's folder; where nothing is there yet and it stays in
    that new, private folder, it names nothing anyone else could have put there.
    """
    absolute = Path(candidate).is_absolute()
    path = Path(candidate) if absolute else run_dir / candidate
    try:
        resolved = path.resolve()
        missing = not (path.exists() or path.is_symlink())
    except OSError:  # not a name a file could have (too long): code or text, not a path
        return False
    if missing and not absolute and _inside(resolved, [run_dir.resolve()]):
        return False
    return not _inside(resolved, allowed)


def _exists(path: Path) -> bool:
    try:
        return path.exists() or path.is_symlink()
    except OSError:
        return False


def _refuse_named(name: str) -> None:
    raise VerificationError(
        f"the approved command names {name}, which is not part of the job's approved inputs: "
        "what it holds was never approved and could change before the run; put it in the "
        "config folder (hashed and staged with the job) and name it there with '{config}'"
    )


def _check_output_is_new(out: Path) -> None:
    """Refuse an output folder that already holds something.

    The run's end records whatever is in the folder as the model it trained: files put there
    before the run (or left by another) would be recorded, weighed and attested as if the
    approved command had written them.

    Raises:
        BadInputError: ``out`` is a file, or a folder that is not empty.

    """
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise BadInputError(f"--output {out} is not a folder: a run writes into a new folder")
    if out.is_dir() and any(out.iterdir()):
        raise BadInputError(
            f"--output {out} already holds files: a run writes into a new or empty folder, so "
            "that what it records is what the approved command wrote"
        )


@dataclass(frozen=True)
class StartedRun:
    """A run the chain recorded as started: its approvals and its (secret) token."""

    check: ApprovalCheck
    token: str


def record_start(
    ws: Workspace,
    *,
    job_id: str,
    policy: Policy,
    actor: Caller,
    run_number: int,
    details: dict[str, Any],
) -> StartedRun:
    """Under the write lock: re-check the job, consume its approvals, record ``run.start``.

    ``details``: ``bound``, ``command``, ``output`` and ``staged`` (input kind -> file name;
    the digests are the job's). Of two launchers started at once exactly one gets here.

    Raises:
        ConflictError: Another run took the job's approvals first.

    """
    token = secrets.token_urlsafe(24)
    with ws.store.write() as session:
        state, current, who = acting(ws, session, actor)
        row = checked_job(session, state, job_id, lock=True)
        may_start(state, current, row, who)  # roles may have changed while the inputs staged
        if row.state != JobState.APPROVED.value or row.run_count + 1 != run_number:
            raise ConflictError(f"job {job_id} is {row.state}: another run took its approval")
        check = verify_job_approvals(ws, session, state, policy, job_id)
        used = session.scalars(
            select(ApprovalRow).where(ApprovalRow.id.in_(check.approval_ids))
        ).all()
        row.run_count = run_number
        for a in used:
            a.status = "consumed"
            a.consumed_by_run = run_number
        token_sha256 = sha256_bytes(token.encode())
        row.run_token_hash = token_sha256
        row.output_path = None
        staged = {
            kind: {"digest": getattr(row, f"{kind}_digest"), "name": name}
            for kind, name in details["staged"].items()
        }
        transition(
            ws,
            session,
            row,
            JobState.RUNNING,
            actor=who,
            action="run.start",
            payload={
                "run": run_number,
                "approvers": [v["approver"] for v in check.valid],
                "approvals": check.nonces,
                **details,
                "staged": staged,
                # the chain holds the token's hash (never the token): the table's copy is an
                # index a database editor could point at a token of their own
                "token_sha256": token_sha256,
            },
        )
    return StartedRun(check=check, token=token)


def _run_start_payload(session: Session, job_id: str) -> dict[str, Any]:
    text = session.scalars(
        select(AuditEventRow.payload)
        .where(AuditEventRow.job_id == job_id, AuditEventRow.action == "run.start")
        .order_by(AuditEventRow.seq.desc())
    ).first()
    return parse_payload(text or "{}")


def run_output_reference(ws: Workspace, job_id: str, run: int) -> str:
    """Where run ``run`` of a job writes its output, as its ``run.start`` recorded it.

    Raises:
        ConflictError: ``run`` is not the job's current run.

    """
    with ws.store.read() as session:
        state = chain_state(ws, session)
        row = checked_job(session, state, job_id)
        if row.run_count != run or row.state != JobState.RUNNING.value:
            raise ConflictError(f"run {run} of job {job_id} is not running")
        return str(_run_start_payload(session, job_id).get("output"))


def verify_running(
    ws: Workspace, *, job_id: str, token: str, inputs: dict[str, Path] | None = None
) -> None:
    """Check the run token, re-verify the run's approvals, and confine ``inputs``.

    Every path in ``inputs`` (``dataset``/``base_model``) must lie in the run's staged copy.
    Used by the trainer-side guard when the launcher started the run.
    """
    with ws.store.read() as session:
        state = chain_state(ws, session)
        policy = policy_in_force(ws, state)
        row = checked_job(session, state, job_id)
        if row.state != JobState.RUNNING.value:
            raise VerificationError(f"job {job_id} is {row.state}, not running under ftguard run")
        _check_run_token(state.job(job_id), row, token)
        if not approvals_of_run(session, state, job_id, row.run_count):
            raise VerificationError(f"the current run of job {job_id} consumed no approval")
        verify_job_approvals(ws, session, state, policy, job_id, run=row.run_count)
        staged = _run_start_payload(session, job_id).get("staged") or {}
    for kind, path in (inputs or {}).items():
        entry = staged.get(kind) or {}
        allowed = staged_path(ws, str(entry.get("digest")), str(entry.get("name")))
        if not _inside(Path(path), allowed):
            raise VerificationError(
                f"training refused: the {kind.replace('_', ' ')} {path} is not the approved, "
                f"staged copy ({allowed})"
            )


def _check_run_token(record: JobRecord, row: JobRow, token: str) -> None:
    """Refuse a token that is not the current run's, by the hash its ``run.start`` recorded.

    Raises:
        VerificationError: The token is another's, or no run is on.

    """
    expected = record.run_token_sha256
    if expected is None and record.state == JobState.RUNNING.value:
        expected = row.run_token_hash  # a run started before the chain recorded the hash
    if expected is None or not hmac.compare_digest(expected, sha256_bytes(token.encode())):
        raise VerificationError(f"the run token does not belong to job {row.id}'s current run")


def _inside(path: Path, allowed: Path | list[Path]) -> bool:
    """Whether ``path`` is one of ``allowed`` or lies in one (both resolved first)."""
    p = path.resolve()
    roots = allowed if isinstance(allowed, list) else [allowed]
    return any(p == a.resolve() or a.resolve() in p.parents for a in roots)


def finish_run(
    ws: Workspace,
    *,
    actor: Caller,
    job_id: str,
    token: str,
    exit_code: int,
    output_path: str | None = None,
) -> JobState:
    """Record the end of a run: ``trained`` with the output's manifest on success, else ``failed``.

    The launcher digests the output itself; an exit code 0 without a readable output folder
    (or with links, FIFOs or devices in it) ends the run as failed.
    """
    output: dict[str, Any] | None = None
    problem = None
    if exit_code == 0 and output_path:
        try:
            manifest = manifest_of(output_path)
        except BadInputError as exc:
            problem = f"the output cannot be recorded: {exc}"
        else:
            output = {
                "path": str(Path(output_path).resolve()),
                "root": manifest.root,
                "kind": manifest.kind,
                "files": [f.model_dump() for f in manifest.files],
            }
    elif exit_code == 0:
        problem = "the run named no output folder"
    target = JobState.TRAINED if exit_code == 0 and output is not None else JobState.FAILED
    with ws.store.write() as session:
        state = chain_state(ws, session)
        who = authenticate(state, actor)
        row = checked_job(session, state, job_id, lock=True)
        # Only whoever started the run records its end (who may start one was checked then;
        # a policy changed since does not strand the run)
        record = state.job(job_id)
        if record.run_started_by not in (None, who.name):
            raise PermissionDeniedError(
                f"{who.name} did not start the current run of job {job_id} "
                f"({record.run_started_by} did) and may not record its end"
            )
        _check_run_token(record, row, token)
        row.output_path = output["path"] if output else None
        row.run_token_hash = None
        payload: dict[str, Any] = {"run": row.run_count, "exit_code": exit_code, "output": output}
        if problem:
            payload["problem"] = problem
        transition(ws, session, row, target, actor=who, action="run.end", payload=payload)
    return target


def abort_run(ws: Workspace, *, actor: Caller, job_id: str, reason: str) -> JobState:
    """An admin ends a run whose launcher is gone (killed, its machine lost): ``failed``.

    Only whoever started a run records its end, with the run's token; a launcher killed
    before it could would leave the job running for good. The abort records no output, is
    audited with its reason as ``run.abort``, and the job can be approved again.

    Raises:
        BadInputError: No reason given.
        PermissionDeniedError: The caller is not an admin (or uses a token without the admin
            scope).
        ConflictError: The job is not running.

    """
    if not reason.strip():
        raise BadInputError("--reason must say why the run is aborted")
    with ws.store.write() as session:
        state, policy, who = acting(ws, session, actor)
        require_admin_scope(who, to="abort a run")
        require_role(state, policy, who.name, "admin", to="abort a run")
        row = checked_job(session, state, job_id, lock=True)
        if row.state != JobState.RUNNING.value:
            raise ConflictError(f"job {job_id} is {row.state}: only a running job is aborted")
        row.run_token_hash = None
        row.output_path = None
        transition(
            ws,
            session,
            row,
            JobState.FAILED,
            actor=who,
            action="run.abort",
            payload={"run": row.run_count, "reason": reason.strip()},
        )
    return JobState.FAILED


def launch(
    ws: Workspace,
    *,
    actor: Caller,
    job_id: str,
    command: list[str] | None = None,
    output: str | None = None,
    stdout: IO[str] | None = None,
) -> int:
    """``ftguard run``: verify, stage, run the approved command, record its end and output.

    Args:
        ws: The workspace.
        actor: Who starts the run (the requester or a runner).
        job_id: The approved job.
        command: A free-form command instead of the approved one (unbound; policy permitting).
        output: Where the command writes the model or adapter (default: in the run's folder).
        stdout: Where the command's standard output goes (default: inherited).

    Returns:
        The command's own exit code (127 when it cannot be started).

    """
    ticket = start_run(
        ws,
        actor=actor,
        job_id=job_id,
        command=command or None,
        output=Path(output) if output else None,
    )
    env = {**os.environ, **ticket.environment(ws)}
    code = 127
    try:
        # In the run's own folder: a module or file the command names relatively is looked up
        # there, not in whatever folder the launcher was started from
        proc = subprocess.Popen(  # noqa: S603 - the approved command
            ticket.command, env=env, stdout=stdout, cwd=ticket.run_dir
        )
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            code = proc.wait()
    except OSError as exc:
        _record_error(ws, actor, job_id, f"cannot start {ticket.command[0]}: {exc.strerror or exc}")
        code = 127
    finally:
        finish_run(
            ws,
            actor=actor,
            job_id=job_id,
            token=ticket.token,
            exit_code=code,
            output_path=str(ticket.output),
        )
    return code


def _record_error(ws: Workspace, actor: Caller, job_id: str, error: str) -> None:
    try:
        with ws.store.write() as session:
            state = chain_state(ws, session)
            append_event(
                session,
                ws.audit_key(),
                ts=now_iso(),
                actor=authenticate(state, actor),
                action="run.error",
                job_id=job_id,
                payload={"error": error},
            )
    except FtguardError:
        pass  # the run's end is still recorded by finish_run
