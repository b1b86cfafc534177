"""Runs on a training machine that is not the server: a signed run ticket, checked offline.

The server verifies the job's approvals, checks that the approved inputs on its storage still
have their approved digests, consumes the approvals and records ``run.start``, then hands the
runner a *run ticket*: an in-toto Statement signed with the server's registered key whose
subjects are the three inputs and whose predicate carries the approval envelopes with their
signers' public keys, the quorum, the command template and where the output goes. The
training machine pins the server's public key (``ftguard login`` shows and saves it) and
checks the ticket and every approval in it offline (:func:`verify_run_ticket`) before it
stages the inputs from its own mount of the storage and runs the command; its trainer-side
guard checks the same ticket again. The run's end is reported with the run token, and the
server hashes the output on its own storage before it records the manifest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ftguard.attest import Envelope, PublicKey, sign_statement, statement, verify_envelope
from ftguard.control._approvals import APPROVAL_PREDICATE
from ftguard.control._identities import Caller
from ftguard.control._jobs import job_manifests
from ftguard.control._runs import command_template, record_start, startable_job
from ftguard.control._staging import INPUT_KINDS
from ftguard.control._workspace import Workspace, now_iso
from ftguard.digests import manifest_of, sha256_bytes
from ftguard.errors import BadInputError, VerificationError

__all__ = [
    "RUN_TICKET_PREDICATE",
    "RemoteRun",
    "TicketCheck",
    "start_remote_run",
    "verify_run_ticket",
]

RUN_TICKET_PREDICATE = "https://ftguard.dev/run-ticket/v1"


@dataclass(frozen=True)
class RemoteRun:
    """What the server hands a remote runner: the run number, its token and the ticket."""

    run: int
    token: str
    ticket: Envelope


def start_remote_run(
    ws: Workspace,
    *,
    actor: Caller,
    job_id: str,
    references: Mapping[str, str],
    output_reference: str,
) -> RemoteRun:
    """Start a run of an approved job on another machine (the server's side).

    ``references``: each input's ``ROOT/relative/path`` in the storage the runner mounts too;
    ``output_reference``: where the runner writes the output, in that storage.

    Raises:
        VerificationError: Not approved, approvals invalid, or an input changed on storage.
        PermissionDeniedError: The caller is neither the requester nor a runner.
        ConflictError: Another run took the approvals first.

    """
    policy, row = startable_job(ws, actor=actor, job_id=job_id)
    manifests = job_manifests(row)
    paths = {
        "dataset": row.dataset_path,
        "base_model": row.base_model_path,
        "config": row.config_path,
    }
    for kind in INPUT_KINDS:
        try:
            now = manifest_of(paths[kind]).root
        except BadInputError as exc:
            raise VerificationError(f"the approved {kind} can no longer be read: {exc}") from exc
        if now != manifests[kind].root:
            raise VerificationError(
                f"the {kind.replace('_', ' ')} changed on storage after approval"
            )
    template = command_template(Path(row.config_path))
    if template is None:
        raise BadInputError(f"the approved config of job {job_id} names no command")
    run_number = row.run_count + 1
    started = record_start(
        ws,
        job_id=job_id,
        policy=policy,
        actor=actor,
        run_number=run_number,
        details={
            "bound": True,
            "command": template,
            "output": output_reference,
            "staged": {kind: manifests[kind].name for kind in INPUT_KINDS},
            "remote": True,
        },
    )
    subjects = [
        {"name": f"{kind}:{manifests[kind].name}", "digest": {"sha256": manifests[kind].root}}
        for kind in INPUT_KINDS
    ]
    predicate = {
        "job_id": job_id,
        "run": run_number,
        "requester": row.requester,
        "preparer": row.preparer,
        "quorum": policy.approval.quorum,
        "approvals": started.check.valid,
        "command": template,
        "inputs": {
            kind: {"reference": references[kind], "name": manifests[kind].name}
            for kind in INPUT_KINDS
        },
        "output": output_reference,
        "token_sha256": sha256_bytes(started.token.encode()),
        "issued_at": now_iso(),
    }
    ticket = sign_statement(statement(subjects, RUN_TICKET_PREDICATE, predicate), ws.server_key())
    return RemoteRun(run=run_number, token=started.token, ticket=ticket)


@dataclass(frozen=True)
class TicketCheck:
    """A verified run ticket: the job, run, inputs (kind -> reference, name, digest), command."""

    job_id: str
    run: int
    inputs: dict[str, dict[str, str]]
    command: list[str]
    output: str
    approvers: list[str]


def verify_run_ticket(
    ticket: Envelope, server_key: PublicKey, *, token: str | None = None
) -> TicketCheck:
    """Check a run ticket offline, against the pinned server key alone.

    The ticket must be signed by ``server_key``; each approval in it must be an approval
    envelope signed by the public key listed with it, for the ticket's three input digests and
    job, by distinct approvers who are neither requester nor preparer, unexpired; at least the
    quorum of them. With ``token``, the run token must be the ticket's.

    Raises:
        VerificationError: Any of it does not hold (the message says which).

    """
    stmt, _ = verify_envelope(
        ticket, {server_key.keyid: server_key}, predicate_type=RUN_TICKET_PREDICATE
    )
    pred: dict[str, Any] = stmt.get("predicate") or {}
    digests = {
        str(s.get("name", "")).split(":", 1)[0]: str((s.get("digest") or {}).get("sha256"))
        for s in stmt.get("subject") or []
    }
    if set(digests) != set(INPUT_KINDS):
        raise VerificationError("the run ticket does not name the three inputs")
    if token is not None and sha256_bytes(token.encode()) != pred.get("token_sha256"):
        raise VerificationError("the run token is not this ticket's")
    job_id = str(pred.get("job_id"))
    approvers: list[str] = []
    now = datetime.now(UTC)
    for item in pred.get("approvals") or []:
        key = PublicKey.from_b64(str(item.get("public_key")))
        approval, _ = verify_envelope(
            Envelope.model_validate(item.get("envelope")),
            {key.keyid: key},
            predicate_type=APPROVAL_PREDICATE,
        )
        ap = approval.get("predicate") or {}
        signed = {
            str(s.get("name", "")).split(":", 1)[0]: str((s.get("digest") or {}).get("sha256"))
            for s in approval.get("subject") or []
        }
        who = str(ap.get("approver"))
        if ap.get("job_id") != job_id or signed != digests:
            raise VerificationError(f"{who}'s approval in the ticket is not for these inputs")
        if who in (pred.get("requester"), pred.get("preparer")) or who in approvers:
            raise VerificationError(f"{who}'s approval in the ticket breaks separation of duties")
        if item.get("approver") != who:
            raise VerificationError("the ticket names another approver than the signed approval")
        if datetime.fromisoformat(str(ap.get("expires_at"))) <= now:
            raise VerificationError(f"{who}'s approval in the ticket has expired")
        approvers.append(who)
    if len(approvers) < int(pred.get("quorum") or 1):
        raise VerificationError(
            f"the ticket carries {len(approvers)} approvals, fewer than the quorum"
        )
    inputs = {
        kind: {
            "reference": str((pred.get("inputs") or {}).get(kind, {}).get("reference")),
            "name": str((pred.get("inputs") or {}).get(kind, {}).get("name")),
            "digest": digests[kind],
        }
        for kind in INPUT_KINDS
    }
    command = pred.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
        raise VerificationError("the run ticket names no command")
    return TicketCheck(
        job_id=job_id,
        run=int(pred.get("run") or 0),
        inputs=inputs,
        command=list(command),
        output=str(pred.get("output")),
        approvers=approvers,
    )


def verify_ticket_run(
    ticket_file: Path,
    server_key: PublicKey,
    *,
    token: str,
    staged: Mapping[str, Path],
    inputs: Mapping[str, Path],
) -> TicketCheck:
    """The trainer-side check of a remote run: the ticket, the token and the inputs read.

    ``staged``: where the launcher staged each input (``<folder>/<digest>/<name>``); each must
    be the ticket's digest and name. ``inputs``: what the trainer reads, which must lie inside
    those staged copies.

    Raises:
        VerificationError: The ticket, the token or an input does not hold.

    """
    from ftguard._files import read_text_file

    check = verify_run_ticket(
        Envelope.model_validate_json(read_text_file(ticket_file, what="run ticket")),
        server_key,
        token=token,
    )
    for kind, path in inputs.items():
        entry = check.inputs.get(kind)
        copy = staged.get(kind)
        if entry is None or copy is None:
            raise VerificationError(f"training refused: no staged copy of the {kind} for this run")
        copy = copy.resolve()
        if copy.name != entry["name"] or copy.parent.name != entry["digest"]:
            raise VerificationError(f"training refused: {copy} is not the approved {kind}")
        target = Path(path).resolve()
        if target != copy and copy not in target.parents:
            raise VerificationError(
                f"training refused: the {kind.replace('_', ' ')} {path} is not the approved, "
                f"staged copy ({copy})"
            )
    return check
