"""Approvals as signed in-toto Statements, and their offline verification.

An approval is a DSSE envelope signed with the approver's own Ed25519 key. Its subjects are
the dataset, base-model and config digests; its predicate names the job, the approver, the
requester and preparer, the policy digest, the review evidence digest and the expiry.
:func:`verify_job_approvals` re-checks everything from the signed envelopes, the registered
keys and records of the verified audit chain: an approval copied from another job, signed by
an unconfirmed or revoked key, edited, expired, given under another policy, or made by someone
separation of duties excludes does not count. One changed byte in the inputs blocks the run
when the launcher stages them.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ftguard.attest import Envelope, sign_statement, statement, verify_envelope
from ftguard.control._audit import append_event
from ftguard.control._chain import Actor, ApprovalRecord, ChainState
from ftguard.control._identities import require_role
from ftguard.control._jobs import checked_job, job_manifests, transition
from ftguard.control._states import JobState
from ftguard.control._workspace import Workspace, now_iso
from ftguard.digests import sha256_bytes
from ftguard.errors import (
    BadInputError,
    ConflictError,
    PermissionDeniedError,
    VerificationError,
)
from ftguard.policy import Policy
from ftguard.store import ApprovalRow, JobRow

__all__ = [
    "APPROVAL_PREDICATE",
    "ApprovalCheck",
    "STATEMENT_VALID_FOR",
    "approval_statement",
    "approve",
    "confirm_prepared",
    "record_approval",
    "reject",
    "verify_job_approvals",
]

APPROVAL_PREDICATE = "https://ftguard.dev/approval/v1"


def _subjects(row: JobRow) -> list[dict[str, Any]]:
    m = job_manifests(row)
    return [
        {"name": f"{kind}:{m[kind].name}", "digest": {"sha256": m[kind].root}}
        for kind in ("dataset", "base_model", "config")
    ]


def _check_may_approve(
    session: Session, state: ChainState, policy: Policy, approver: str, job_id: str
) -> JobRow:
    row = checked_job(session, state, job_id, lock=True)
    require_role(state, policy, approver, "approver", to="approve jobs")
    if approver == row.requester:
        raise PermissionDeniedError(f"{approver} requested job {job_id} and cannot approve it")
    if approver == row.preparer:
        raise PermissionDeniedError(
            f"{approver} prepared the dataset of job {job_id} and cannot approve it"
        )
    if state.job(job_id).awaits_preparer:
        raise ConflictError(
            f"job {job_id} waits for its data preparer {row.preparer} to confirm the dataset "
            f"('ftguard job confirm-data {job_id}' as {row.preparer}) before anyone approves it"
        )
    if row.state == JobState.APPROVED.value:
        raise ConflictError(f"job {job_id} is already approved")
    if row.state != JobState.AWAITING_APPROVAL.value:
        raise ConflictError(f"job {job_id} is {row.state}, not awaiting approval")
    active = _active_approvals(session, state, job_id, datetime.now(UTC))
    if any(a.approver == approver for a in active):
        raise ConflictError(f"{approver} has already approved job {job_id}; one person counts once")
    return row


def approval_statement(
    session: Session, state: ChainState, policy: Policy, *, approver: str, job_id: str
) -> dict[str, Any]:
    """The in-toto Statement ``approver`` signs to approve a job (checked: they may).

    Its subjects are the job's dataset, base-model and config digests; its predicate binds
    the job, the people, the policy and review digests, a fresh nonce and the expiry.
    """
    row = _check_may_approve(session, state, policy, approver, job_id)
    now = datetime.now(UTC)
    predicate = {
        "job_id": job_id,
        "approver": approver,
        "requester": row.requester,
        "preparer": row.preparer,
        "purpose": row.purpose,
        "policy_digest": state.policy_digest,
        "review_digest": row.review_digest,
        "issued_at": now.isoformat(timespec="microseconds"),
        "expires_at": (now + timedelta(hours=policy.approval.lifetime_hours)).isoformat(
            timespec="microseconds"
        ),
        "nonce": secrets.token_hex(8),
    }
    return statement(_subjects(row), APPROVAL_PREDICATE, predicate)


STATEMENT_VALID_FOR = timedelta(minutes=15)
"""How long after it was issued a statement fetched from the server may be signed and sent."""


def approve(
    ws: Workspace, session: Session, state: ChainState, policy: Policy, *, actor: Actor, job_id: str
) -> ApprovalRow:
    """Sign (with ``actor``'s own key) and record an approval; quorum approves the job."""
    stmt = approval_statement(session, state, policy, approver=actor.name, job_id=job_id)
    return record_approval(
        ws,
        session,
        state,
        policy,
        actor=actor,
        job_id=job_id,
        envelope=sign_statement(stmt, actor.key),
    )


def record_approval(
    ws: Workspace,
    session: Session,
    state: ChainState,
    policy: Policy,
    *,
    actor: Actor,
    job_id: str,
    envelope: Envelope,
) -> ApprovalRow:
    """Record an approval envelope ``actor.name`` signed with one of their own active keys.

    The envelope is checked as strictly as the offline verification will: signed by an active
    key of the approver, for this job's digests, people, policy and review, issued within
    :data:`STATEMENT_VALID_FOR`, expiring no later than the policy allows, with a fresh nonce.

    Raises:
        VerificationError: The envelope does not verify or does not bind what it must.
        PermissionDeniedError: The approver may not approve this job.
        ConflictError: The job is not awaiting approval, or they already approved it.

    """
    row = _check_may_approve(session, state, policy, actor.name, job_id)
    stmt, key = verify_envelope(
        envelope,
        {k: r.public for k, r in state.active_keys(actor.name).items()},
        predicate_type=APPROVAL_PREDICATE,
    )
    pred = stmt.get("predicate") or {}
    expected = approval_statement(session, state, policy, approver=actor.name, job_id=job_id)
    fixed = (
        "job_id",
        "approver",
        "requester",
        "preparer",
        "purpose",
        "policy_digest",
        "review_digest",
    )
    for name in fixed:
        if pred.get(name) != expected["predicate"][name]:
            raise VerificationError(f"the signed approval's {name} is not this job's")
    if stmt.get("subject") != expected["subject"]:
        raise VerificationError(
            "the signed approval's subjects are not this job's dataset, base model and config"
        )
    now = datetime.now(UTC)
    try:
        issued = datetime.fromisoformat(str(pred.get("issued_at")))
        expires = datetime.fromisoformat(str(pred.get("expires_at")))
    except ValueError as exc:
        raise VerificationError("the signed approval's times are unreadable") from exc
    if issued.tzinfo is None or expires.tzinfo is None:
        raise VerificationError("the signed approval's times carry no time zone")
    if not now - STATEMENT_VALID_FOR <= issued <= now + timedelta(seconds=5):
        raise VerificationError(
            "the signed approval was issued too long ago: fetch a new statement"
        )
    if not issued < expires <= issued + timedelta(hours=policy.approval.lifetime_hours):
        raise VerificationError("the signed approval's expiry is outside the policy's lifetime")
    nonce = str(pred.get("nonce") or "")
    if len(nonce) < 16 or nonce in state.job(job_id).approvals:
        raise VerificationError("the signed approval's nonce is missing or was used before")
    text = envelope.model_dump_json()
    approval = ApprovalRow(
        job_id=job_id,
        approver=actor.name,
        keyid=key.keyid,
        envelope=text,
        issued_at=str(pred["issued_at"]),
        expires_at=str(pred["expires_at"]),
        status="active",
    )
    session.add(approval)
    append_event(
        session,
        ws.audit_key(),
        ts=now.isoformat(timespec="microseconds"),
        actor=actor,
        action="job.approve",
        job_id=job_id,
        payload={
            "keyid": key.keyid,
            "expires_at": str(pred["expires_at"]),
            "nonce": nonce,
            "envelope": sha256_bytes(text.encode()),
            "policy": state.policy_digest,
        },
    )
    active = _active_approvals(session, state, job_id, now)
    if len(active) + 1 >= policy.approval.quorum:
        transition(
            ws,
            session,
            row,
            JobState.APPROVED,
            actor=actor,
            action="job.approved",
            payload={"quorum": policy.approval.quorum},
        )
    return approval


def confirm_prepared(
    ws: Workspace,
    session: Session,
    state: ChainState,
    *,
    actor: Actor,
    job_id: str,
    dataset_digest: str | None = None,
) -> None:
    """The named data preparer signs that the job's dataset is the one they prepared.

    ``dataset_digest``: the digest of the preparer's own copy; it must be the submitted one.

    Raises:
        PermissionDeniedError: ``actor`` is not the job's named preparer.
        ConflictError: Nothing to confirm, or the job is past approval.
        VerificationError: ``dataset_digest`` is not the submitted dataset's.

    """
    row = checked_job(session, state, job_id, lock=True)
    if actor.name != row.preparer:
        raise PermissionDeniedError(
            f"{actor.name} may not confirm the dataset of job {job_id}: {row.requester} named "
            f"{row.preparer} as its preparer"
        )
    if not state.job(job_id).awaits_preparer:
        raise ConflictError(f"job {job_id} awaits no confirmation of its dataset")
    if row.state not in _CONFIRMABLE:
        raise ConflictError(f"job {job_id} is {row.state}: its dataset is no longer confirmed")
    if dataset_digest is not None and dataset_digest != row.dataset_digest:
        raise VerificationError(
            f"your dataset (digest {dataset_digest[:16]}) is not the one job {job_id} submitted "
            f"(digest {row.dataset_digest[:16]}): do not confirm it"
        )
    append_event(
        session,
        ws.audit_key(),
        ts=now_iso(),
        actor=actor,
        action="job.prepared",
        job_id=job_id,
        payload={"dataset": row.dataset_digest},
    )


_CONFIRMABLE = frozenset(
    {JobState.SUBMITTED.value, JobState.IN_REVIEW.value, JobState.AWAITING_APPROVAL.value}
)


def reject(
    ws: Workspace,
    session: Session,
    state: ChainState,
    policy: Policy,
    *,
    actor: Actor,
    job_id: str,
    reason: str,
) -> None:
    """Reject a job (approvers and security reviewers); its approvals become void."""
    if not reason.strip():
        raise BadInputError("--reason must say why the job is rejected")
    roles = state.roles_of(actor.name, policy.roles)
    require_role(
        state,
        policy,
        actor.name,
        "approver" if "approver" in roles else "security_reviewer",
        to="reject jobs",
    )
    row = checked_job(session, state, job_id, lock=True)
    transition(
        ws,
        session,
        row,
        JobState.REJECTED,
        actor=actor,
        action="job.reject",
        payload={"reason": reason.strip()},
    )
    row.rejected_by = "approver"
    for a in session.scalars(
        select(ApprovalRow).where(ApprovalRow.job_id == job_id, ApprovalRow.status == "active")
    ):
        a.status = "void"


def _chain_matches(
    session: Session, state: ChainState, job_id: str, keep: Callable[[ApprovalRecord], bool]
) -> list[ApprovalRow]:
    """The job's approval rows whose envelope the chain records with a status ``keep`` wants.

    A row the chain does not know (inserted in the database), or one whose status was reset
    there, does not match: the chain's record decides.
    """
    wanted = {a.envelope_digest: a for a in state.job(job_id).approvals.values() if keep(a)}
    rows = session.scalars(select(ApprovalRow).where(ApprovalRow.job_id == job_id)).all()
    return [r for r in rows if sha256_bytes(r.envelope.encode()) in wanted]


def _active_approvals(
    session: Session, state: ChainState, job_id: str, now: datetime
) -> list[ApprovalRow]:
    rows = _chain_matches(session, state, job_id, lambda a: a.status == "active")
    return [r for r in rows if datetime.fromisoformat(r.expires_at) > now]


def approvals_of_run(
    session: Session, state: ChainState, job_id: str, run: int
) -> list[ApprovalRow]:
    """The approvals the chain says run ``run`` of the job consumed."""
    return _chain_matches(session, state, job_id, lambda a: a.consumed_by_run == run)


@dataclass
class ApprovalCheck:
    """What :func:`verify_job_approvals` found."""

    job_id: str
    valid: list[dict[str, Any]] = field(default_factory=list)
    """Verified approvals: approver, keyid, expires_at, envelope."""
    problems: list[str] = field(default_factory=list)
    approval_ids: list[int] = field(default_factory=list)
    nonces: list[str] = field(default_factory=list)
    """The approvals' nonces: how the chain names what a run consumes."""

    def bundle(self) -> dict[str, Any]:
        """The approval bundle handed to the training command."""
        return {"job_id": self.job_id, "approvals": self.valid}


def verify_job_approvals(
    ws: Workspace,
    session: Session,
    state: ChainState,
    policy: Policy,
    job_id: str,
    *,
    run: int | None = None,
) -> ApprovalCheck:
    """Verify a job's approvals offline, against the chain's keys, roles and records.

    The inputs on disk are checked when a run stages them (:mod:`ftguard.control._staging`).

    Args:
        ws: The workspace.
        session: A session on the store.
        state: The verified chain's state (keys, roles, approvals in force).
        policy: The policy in force.
        job_id: The job.
        run: Verify the approvals that run consumed (default: the job's active ones).

    Raises:
        VerificationError: Fewer valid approvals than the quorum; the message says why
            each approval that does not count fails.

    """
    row = checked_job(session, state, job_id)
    rows = (
        approvals_of_run(session, state, job_id, run)
        if run is not None
        else _chain_matches(session, state, job_id, lambda a: a.status == "active")
    )
    active = state.active_keys()
    trusted = {keyid: record.public for keyid, record in active.items()}
    check = ApprovalCheck(job_id=job_id)
    seen: set[str] = set()
    for a in rows:
        try:
            stmt, key = verify_envelope(
                Envelope.parse(a.envelope), trusted, predicate_type=APPROVAL_PREDICATE
            )
        except VerificationError as exc:
            revoked = [
                r for r in state.keys.values() if r.user == a.approver and r.status == "revoked"
            ]
            hint = " (a key of theirs was revoked)" if revoked else ""
            check.problems.append(f"{a.approver}'s approval: {exc}{hint}")
            continue
        pred = stmt.get("predicate") or {}
        signer = active[key.keyid].user
        reason = _why_it_does_not_count(
            stmt, signer, row, state, policy, claimed_by=a.approver, seen=seen
        )
        if reason:
            check.problems.append(f"{a.approver}'s approval does not count: {reason}")
            continue
        seen.add(signer)
        check.approval_ids.append(a.id)
        check.nonces.append(str(pred.get("nonce")))
        check.valid.append(
            {
                "approver": signer,
                "keyid": key.keyid,
                "public_key": key.b64,
                "expires_at": pred.get("expires_at"),
                "envelope": json.loads(a.envelope),
            }
        )
    quorum = policy.approval.quorum
    if len(check.valid) < quorum:
        detail = "; ".join(check.problems) if check.problems else "no approvals recorded"
        raise VerificationError(
            f"job {job_id} has {len(check.valid)} of {quorum} required valid approvals ({detail})"
        )
    return check


def _why_it_does_not_count(
    stmt: dict[str, Any],
    signer: str,
    row: JobRow,
    state: ChainState,
    policy: Policy,
    *,
    claimed_by: str,
    seen: set[str],
) -> str | None:
    """Why a verified approval statement does not count for this job now (None: it counts).

    Checked in order: the job, who signed, the subjects, the review, the policy in force,
    separation of duties, the approver role, one vote per person, expiry.
    """
    pred = stmt.get("predicate") or {}
    subjects = {(s.get("name"), (s.get("digest") or {}).get("sha256")) for s in stmt["subject"]}
    if pred.get("job_id") != row.id:
        return f"it was signed for job {pred.get('job_id')}, not {row.id}"
    if signer != pred.get("approver") or signer != claimed_by:
        return f"it is signed by {signer}'s key but claims approver {pred.get('approver')}"
    if subjects != {(s["name"], s["digest"]["sha256"]) for s in _subjects(row)}:
        return "its subjects are not this job's dataset, base model and config digests"
    if pred.get("review_digest") != row.review_digest:
        return "it approves a different dataset review than the job's"
    if pred.get("policy_digest") != state.policy_digest:
        return (
            "it was given under another policy than the one in force now "
            "(the policy changed since: the job must be approved again)"
        )
    if signer in (row.requester, pred.get("requester")):
        return f"{signer} requested the job (separation of duties)"
    if signer in (row.preparer, pred.get("preparer")):
        return f"{signer} prepared the dataset (separation of duties)"
    if "approver" not in state.roles_of(signer, policy.roles):
        return f"{signer} does not hold the approver role"
    if signer in seen:
        return f"{signer} already counted once"
    try:
        expires = datetime.fromisoformat(str(pred.get("expires_at")))
    except ValueError:
        return "its expiry is unreadable"
    if expires <= datetime.now(UTC):
        return f"it expired at {pred.get('expires_at')}"
    return None
