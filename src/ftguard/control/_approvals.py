"""Approvals as signed in-toto Statements, and their offline verification.

An approval is a DSSE envelope signed with the approver's own Ed25519 key. Its subjects are
the dataset, base-model and config digests; its predicate names the job, the approver, the
requester and preparer, the policy digest, the review evidence digest and the expiry.
:func:`verify_job_approvals` re-checks everything from the signed envelopes, the registered
keys (cross-checked with the verified audit chain) and the files on disk: an approval copied
from another job, signed by an unregistered key, edited, expired, or made by someone separation
of duties excludes does not count, and one changed byte in the inputs blocks the run.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ftguard.attest import Envelope, PublicKey, sign_statement, statement, verify_envelope
from ftguard.control._audit import append_event, verify_chain
from ftguard.control._identities import registered_keys, require_role, roles_of, signing_key_of
from ftguard.control._jobs import compute_manifests, get_job_row, job_manifests, transition
from ftguard.control._states import JobState
from ftguard.control._workspace import Workspace
from ftguard.errors import (
    BadInputError,
    ConflictError,
    FtguardError,
    PermissionDeniedError,
    VerificationError,
)
from ftguard.store import ApprovalRow, AuditEventRow, JobRow

__all__ = [
    "APPROVAL_PREDICATE",
    "ApprovalCheck",
    "approve",
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


def approve(ws: Workspace, session: Session, *, actor: str, job_id: str) -> ApprovalRow:
    """Sign and record ``actor``'s approval of a job; reaching quorum approves the job."""
    policy = ws.policy()
    row = get_job_row(session, job_id, lock=True)
    require_role(session, policy, actor, "approver", to="approve jobs")
    if actor == row.requester:
        raise PermissionDeniedError(f"{actor} requested job {job_id} and cannot approve it")
    if actor == row.preparer:
        raise PermissionDeniedError(
            f"{actor} prepared the dataset of job {job_id} and cannot approve it"
        )
    if row.state == JobState.APPROVED.value:
        raise ConflictError(f"job {job_id} is already approved")
    if row.state != JobState.AWAITING_APPROVAL.value:
        raise ConflictError(f"job {job_id} is {row.state}, not awaiting approval")
    now = datetime.now(UTC)
    active = _active_approvals(session, job_id, now)
    if any(a.approver == actor for a in active):
        raise ConflictError(f"{actor} has already approved job {job_id}; one person counts once")
    key = signing_key_of(session, actor)
    issued = now.isoformat(timespec="microseconds")
    expires = (now + timedelta(hours=policy.approval.lifetime_hours)).isoformat(
        timespec="microseconds"
    )
    predicate = {
        "job_id": job_id,
        "approver": actor,
        "requester": row.requester,
        "preparer": row.preparer,
        "purpose": row.purpose,
        "policy_digest": ws.policy_digest(),
        "review_digest": row.review_digest,
        "issued_at": issued,
        "expires_at": expires,
        "nonce": secrets.token_hex(8),
    }
    envelope = sign_statement(statement(_subjects(row), APPROVAL_PREDICATE, predicate), key)
    approval = ApprovalRow(
        job_id=job_id,
        approver=actor,
        keyid=key.public.keyid,
        envelope=envelope.model_dump_json(),
        issued_at=issued,
        expires_at=expires,
        status="active",
    )
    session.add(approval)
    append_event(
        session,
        ws.workspace_key(),
        ts=issued,
        actor=actor,
        action="job.approve",
        job_id=job_id,
        payload={"keyid": key.public.keyid, "expires_at": expires, "nonce": predicate["nonce"]},
    )
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


def reject(ws: Workspace, session: Session, *, actor: str, job_id: str, reason: str) -> None:
    """Reject a job (approvers and security reviewers); its approvals become void."""
    policy = ws.policy()
    if not reason.strip():
        raise BadInputError("--reason must say why the job is rejected")
    roles = roles_of(session, policy, actor)
    require_role(
        session,
        policy,
        actor,
        "approver" if "approver" in roles else "security_reviewer",
        to="reject jobs",
    )
    row = get_job_row(session, job_id, lock=True)
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


def _active_approvals(session: Session, job_id: str, now: datetime) -> list[ApprovalRow]:
    rows = session.scalars(
        select(ApprovalRow).where(ApprovalRow.job_id == job_id, ApprovalRow.status == "active")
    ).all()
    return [r for r in rows if datetime.fromisoformat(r.expires_at) > now]


@dataclass
class ApprovalCheck:
    """What :func:`verify_job_approvals` found."""

    job_id: str
    valid: list[dict[str, Any]] = field(default_factory=list)
    """Verified approvals: approver, keyid, expires_at, envelope."""
    problems: list[str] = field(default_factory=list)
    approval_ids: list[int] = field(default_factory=list)

    def bundle(self) -> dict[str, Any]:
        """The approval bundle handed to the training command."""
        return {"job_id": self.job_id, "approvals": self.valid}


def _registered_in_audit(session: Session) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for payload in session.scalars(
        select(AuditEventRow.payload).where(AuditEventRow.action == "key.register")
    ):
        data = json.loads(payload)
        out.add((str(data.get("user")), str(data.get("keyid"))))
    return out


def verify_job_approvals(
    ws: Workspace,
    session: Session,
    job_id: str,
    *,
    approvals: list[ApprovalRow] | None = None,
    check_disk: bool = True,
) -> ApprovalCheck:
    """Verify a job's approvals offline and that its inputs on disk are the approved ones.

    Args:
        ws: The workspace.
        session: A session on the store.
        job_id: The job.
        approvals: The approval rows to verify (default: the job's active ones).
        check_disk: Recompute the digests of dataset, base model and config.

    Raises:
        VerificationError: Fewer valid approvals than the quorum, the audit chain is broken,
            or an input changed since approval; the message says which and why.

    """
    policy = ws.policy()
    row = get_job_row(session, job_id)
    audit = verify_chain(session, ws.workspace_public_key())
    if not audit.ok:
        raise VerificationError(f"the audit log does not verify ({audit.problem}); refusing to run")
    rows = (
        approvals
        if approvals is not None
        else session.scalars(
            select(ApprovalRow).where(ApprovalRow.job_id == job_id, ApprovalRow.status == "active")
        ).all()
    )
    audited_keys = _registered_in_audit(session)
    trusted: dict[str, PublicKey] = {}
    owners: dict[str, str] = {}
    for keyid, (user, key) in registered_keys(session).items():
        if (user, keyid) in audited_keys:
            trusted[keyid] = key
            owners[keyid] = user
    check = ApprovalCheck(job_id=job_id)
    expected_subjects = {(s["name"], s["digest"]["sha256"]) for s in _subjects(row)}
    now = datetime.now(UTC)
    seen: set[str] = set()
    for a in rows:
        who = a.approver
        try:
            stmt, key = verify_envelope(
                Envelope.parse(a.envelope), trusted, predicate_type=APPROVAL_PREDICATE
            )
        except VerificationError as exc:
            check.problems.append(f"{who}'s approval: {exc}")
            continue
        pred = stmt.get("predicate") or {}
        signer = owners[key.keyid]
        subjects = {(s.get("name"), (s.get("digest") or {}).get("sha256")) for s in stmt["subject"]}
        reason = None
        if pred.get("job_id") != job_id:
            reason = f"it was signed for job {pred.get('job_id')}, not {job_id}"
        elif signer != pred.get("approver") or signer != who:
            reason = f"it is signed by {signer}'s key but claims approver {pred.get('approver')}"
        elif subjects != expected_subjects:
            reason = "its subjects are not this job's dataset, base model and config digests"
        elif pred.get("review_digest") != row.review_digest:
            reason = "it approves a different dataset review than the job's"
        elif signer in (row.requester, pred.get("requester")):
            reason = f"{signer} requested the job (separation of duties)"
        elif signer in (row.preparer, pred.get("preparer")):
            reason = f"{signer} prepared the dataset (separation of duties)"
        elif "approver" not in roles_of(session, policy, signer):
            reason = f"{signer} does not hold the approver role"
        elif signer in seen:
            reason = f"{signer} already counted once"
        else:
            try:
                expires = datetime.fromisoformat(str(pred.get("expires_at")))
            except ValueError:
                reason = "its expiry is unreadable"
            else:
                if expires <= now:
                    reason = f"it expired at {pred.get('expires_at')}"
        if reason:
            check.problems.append(f"{who}'s approval does not count: {reason}")
            continue
        seen.add(signer)
        check.approval_ids.append(a.id)
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
    if check_disk:
        _check_inputs_unchanged(row)
    return check


def _check_inputs_unchanged(row: JobRow) -> None:
    from pathlib import Path

    approved = job_manifests(row)
    try:
        current = compute_manifests(
            Path(row.base_model_path), Path(row.dataset_path), Path(row.config_path)
        )
    except FtguardError as exc:
        raise VerificationError(f"the approved inputs are no longer readable: {exc}") from exc
    for kind in ("dataset", "base_model", "config"):
        if current[kind].root != approved[kind].root:
            diff = "; ".join(approved[kind].differences(current[kind])[:5]) or "content differs"
            label = kind.replace("_", " ")
            raise VerificationError(f"the {label} changed after approval ({diff})")
