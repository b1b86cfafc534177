"""Fine-tuning jobs: submission, reading, state changes, evidence."""

from __future__ import annotations

import json
import secrets
import unicodedata
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from ftguard.attest import canonical_json
from ftguard.control._audit import append_event
from ftguard.control._chain import Actor, ChainState, EvidenceRecord, JobRecord, parse_payload
from ftguard.control._identities import require_role
from ftguard.control._states import APPROVED_ONWARD, JobState, check_transition
from ftguard.control._workspace import Workspace, now_iso
from ftguard.digests import Manifest, listing_digest, manifest_of, sha256_bytes
from ftguard.errors import BadInputError, NotFoundError, PermissionDeniedError, VerificationError
from ftguard.policy import Policy
from ftguard.store import ApprovalRow, AuditEventRow, EvidenceRow, JobRow

__all__ = [
    "ANALYSTS",
    "require_job_analyst",
    "require_not_party",
    "unknown_job",
    "PICKLE_SUFFIXES",
    "JobView",
    "chain_evidence",
    "checked_job",
    "get_job_row",
    "job_manifests",
    "job_view",
    "job_views",
    "new_job_row",
    "store_evidence",
    "transition",
]

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


class JobView(BaseModel):
    """A job as shown by ``ftguard job show --json`` and the API."""

    id: str
    state: str
    purpose: str
    requester: str
    preparer: str
    base_model: dict[str, str]
    dataset: dict[str, str]
    config: dict[str, str]
    policy_digest: str
    review_digest: str | None
    run_count: int
    output_path: str | None
    approvals: list[dict[str, Any]]
    evidence: list[dict[str, Any]]
    created_at: str
    updated_at: str
    awaits_preparer: bool = False
    """The named data preparer has not confirmed the dataset yet: no approval counts."""


def get_job_row(session: Session, job_id: str, *, lock: bool = False) -> JobRow:
    """The job ``job_id``.

    Raises:
        NotFoundError: No such job.

    """
    query = select(JobRow).where(JobRow.id == job_id)
    if lock:
        query = query.with_for_update()
    row = session.scalars(query).first()
    if row is None:
        raise unknown_job(job_id)
    return row


def unknown_job(job_id: str) -> NotFoundError:
    """The one answer for a job that does not exist, or that the caller may not read."""
    return NotFoundError(f"unknown job {job_id!r} (see 'ftguard job list')")


def job_manifests(row: JobRow) -> dict[str, Manifest]:
    """The manifests recorded at submission, by subject kind."""
    data = json.loads(row.manifests)
    return {k: Manifest.model_validate(v) for k, v in data.items()}


def job_view(session: Session, row: JobRow) -> JobView:
    """One job as shown by the CLI and the API."""
    return job_views(session, [row])[0]


def job_views(session: Session, rows: list[JobRow]) -> list[JobView]:
    """Jobs as shown by the CLI and the API: two queries for a whole page of jobs."""
    ids = [r.id for r in rows]
    approvals: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    evidence: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        for a in session.execute(
            select(
                ApprovalRow.job_id,
                ApprovalRow.approver,
                ApprovalRow.keyid,
                ApprovalRow.issued_at,
                ApprovalRow.expires_at,
                ApprovalRow.status,
            )
            .where(ApprovalRow.job_id.in_(ids))
            .order_by(ApprovalRow.id)
        ):
            approvals[a.job_id].append(
                {
                    "approver": a.approver,
                    "keyid": a.keyid,
                    "issued_at": a.issued_at,
                    "expires_at": a.expires_at,
                    "status": a.status,
                }
            )
        for e in session.execute(
            select(EvidenceRow.job_id, EvidenceRow.kind, EvidenceRow.digest, EvidenceRow.created_at)
            .where(EvidenceRow.job_id.in_(ids))
            .order_by(EvidenceRow.id)
        ):
            evidence[str(e.job_id)].append(
                {"kind": e.kind, "digest": e.digest, "created_at": e.created_at}
            )
    waiting = _awaiting_preparer(session, ids)
    return [
        JobView(
            id=row.id,
            state=row.state,
            purpose=row.purpose,
            requester=row.requester,
            preparer=row.preparer,
            base_model={"path": row.base_model_path, "sha256": row.base_model_digest},
            dataset={"path": row.dataset_path, "sha256": row.dataset_digest},
            config={"path": row.config_path, "sha256": row.config_digest},
            policy_digest=row.policy_digest,
            review_digest=row.review_digest,
            run_count=row.run_count,
            output_path=row.output_path,
            approvals=approvals[row.id],
            evidence=evidence[row.id],
            created_at=row.created_at,
            updated_at=row.updated_at,
            awaits_preparer=row.id in waiting,
        )
        for row in rows
    ]


def _awaiting_preparer(session: Session, ids: list[str]) -> set[str]:
    """Jobs whose preparer was asked to confirm the dataset and has not yet.

    For display only (read from the table): approvals check the verified chain.
    """
    if not ids:
        return set()
    asked: set[str] = set()
    confirmed: set[str] = set()
    for event in session.execute(
        select(AuditEventRow.job_id, AuditEventRow.action, AuditEventRow.payload).where(
            AuditEventRow.job_id.in_(ids),
            AuditEventRow.action.in_(("job.submit", "job.prepared")),
        )
    ):
        if event.action == "job.prepared":
            confirmed.add(str(event.job_id))
        elif parse_payload(event.payload).get("preparer_confirms") is True:
            asked.add(str(event.job_id))
    return asked - confirmed


def _refuse_pickles(manifest: Manifest, path: Path) -> None:
    bad = [f.path for f in manifest.files if f.path.lower().endswith(PICKLE_SUFFIXES)]
    if bad:
        raise BadInputError(
            f"{path} contains pickle-based weights ({bad[0]}), which ftguard never loads: "
            "convert them to safetensors (e.g. model.save_pretrained(dir, safe_serialization=True))"
        )


def _manifests_match(row: JobRow, digests: dict[str, str]) -> bool:
    """Whether the row's stored manifests are the chain's inputs, file lists included.

    Approval statements, remote-run tickets and staging read the manifests (names, roots and
    per-file digests), so a manifest edited in the database would have approvers sign, and a
    runner train on, other bytes than the job submitted: each manifest's root must be the
    chain's digest and must follow from its own file list.
    """
    try:
        manifests = job_manifests(row)
    except ValueError:  # not JSON, or not manifests (pydantic's error is a ValueError)
        return False
    if set(manifests) != set(digests):
        return False
    for kind, m in manifests.items():
        if m.root != digests[kind]:
            return False
        if m.kind == "file":
            own = m.files[0].sha256 if len(m.files) == 1 else None
        else:
            own = listing_digest(m.files)
        if own != m.root:
            return False
    return True


def checked_job(session: Session, state: ChainState, job_id: str, *, lock: bool = False) -> JobRow:
    """The job's row, after checking it says what the verified chain says.

    Raises:
        NotFoundError: No such job.
        VerificationError: The row and the chain disagree (the database was edited).

    """
    row = get_job_row(session, job_id, lock=lock)
    record = state.job(job_id)
    mismatches = []
    if row.state != record.state:
        mismatches.append(f"state {row.state!r} (chain: {record.state!r})")
    if row.run_count != record.run_count:
        mismatches.append(f"run count {row.run_count} (chain: {record.run_count})")
    if row.requester != record.requester or row.preparer != record.preparer:
        mismatches.append("requester or preparer")
    recorded = {
        "dataset": row.dataset_digest,
        "base_model": row.base_model_digest,
        "config": row.config_digest,
    }
    if recorded != record.digests:
        mismatches.append("input digests")
    elif not _manifests_match(row, record.digests):
        mismatches.append("input manifests")
    if row.review_digest != record.review_digest:
        mismatches.append("review digest")
    if record.purpose is not None and row.purpose != record.purpose:
        mismatches.append("purpose")
    if row.policy_digest != record.policy_digest:
        mismatches.append("policy digest")
    if mismatches:
        raise VerificationError(
            f"job {job_id} in the database disagrees with the audit chain on "
            f"{', '.join(mismatches)}: the database was edited outside ftguard; refusing to act"
        )
    return row


def chain_evidence(
    session: Session, record: JobRecord | None, kind: str
) -> tuple[EvidenceRecord, dict[str, Any]] | None:
    """The newest evidence of ``kind`` the chain holds for a job, with its verified body.

    Raises:
        VerificationError: The stored body is missing or does not hash to the chain's digest.

    """
    found = record.latest_evidence(kind) if record is not None else None
    if found is None:
        return None
    return found, evidence_body(session, found.digest)


ANALYSTS = ("approver", "security_reviewer", "runner", "admin")
"""Roles that may analyse any job and ask for its gate (its requester may too); a ``runner``
only from the job's approval on (:data:`APPROVED_ONWARD`)."""


def require_not_party(row: JobRow, name: str, *, to: str) -> None:
    """Refuse ``name`` if they requested the job or prepared its data (separation of duties).

    Approving, overriding a review's block and overriding the gate each vouch for a job to
    someone else; whoever asked for it or made its data may do none of them.

    Raises:
        PermissionDeniedError: ``name`` is the job's requester or data preparer.

    """
    if name in (row.requester, row.preparer):
        raise PermissionDeniedError(
            f"{name} may not {to} job {row.id}: they requested it or prepared its data "
            "(separation of duties); another holder of the role must"
        )


def require_job_analyst(
    state: ChainState, policy: Policy, who: Actor, row: JobRow, *, to: str
) -> None:
    """Refuse unless ``who`` requested the job or holds one of :data:`ANALYSTS`.

    The analyses are computed honestly whoever asks, but they cost minutes to hours of the
    machine and each one is recorded on the job: another team's requester or a data preparer
    has no business starting them. An API token without the ``admin`` scope does not use
    its user's admin role here either.

    Raises:
        PermissionDeniedError: ``who`` is neither the job's requester nor an analyst.

    """
    name = who.name
    roles = state.roles_of(name, policy.roles) & set(ANALYSTS)
    if not who.may_administer():
        roles = roles - {"admin"}
    if roles == {"runner"} and row.state not in APPROVED_ONWARD:
        roles = set()  # a training service analyses what it may run, not the queue before
    if name == row.requester or roles:
        return
    raise PermissionDeniedError(
        f"{name} may not {to} job {row.id}: only its requester ({row.requester}) or a holder "
        f"of the {', '.join(ANALYSTS[:-1])} or {ANALYSTS[-1]} role does"
    )


def awaits_evidence(session: Session, state: ChainState, row: JobRow) -> bool:
    """Whether the job is trained and still open to evidence and a gate decision.

    True for a trained or evaluating job, and for one the gate blocked only because a weight
    report or a behaviour comparison was missing (a decision asked for before they were
    recorded, by whoever asked): such a job takes that evidence and is decided again. A block
    on evidence that failed, or on anything a trained job can no longer get (a dataset
    review), stands; only an override changes it.
    """
    if row.state in (JobState.TRAINED.value, JobState.EVALUATING.value):
        return True
    if row.state != JobState.BLOCKED.value:
        return False
    found = chain_evidence(session, state.job(row.id), "gate")
    rules = found[1].get("rules") if found else None
    failed = [r for r in rules or [] if isinstance(r, dict) and not r.get("passed")]
    return bool(failed) and all(r.get("rule") in _AWAITABLE for r in failed)


_AWAITABLE = frozenset({"weights.present", "behavior.present"})
"""Gate rules a blocked job can still meet: evidence computed on its recorded output."""


def evidence_body(session: Session, digest: str) -> dict[str, Any]:
    """The stored evidence with this digest, checked against it.

    Raises:
        VerificationError: Missing, or its body does not hash to ``digest``.

    """
    for row in session.scalars(select(EvidenceRow).where(EvidenceRow.digest == digest)):
        if sha256_bytes(row.body.encode()) == digest:
            data = json.loads(row.body)
            if isinstance(data, dict):
                return data
    raise VerificationError(
        f"the evidence {digest[:16]} the audit chain records is missing or altered in the database"
    )


def new_job_row(
    ws: Workspace,
    session: Session,
    state: ChainState,
    policy: Policy,
    *,
    actor: Actor,
    base_model: Path,
    dataset: Path,
    config: Path,
    purpose: str,
    prepared_by: str,
    manifests: dict[str, Manifest],
) -> JobRow:
    """Record a new job (state ``submitted``) and its audit event."""
    if not purpose.strip():
        raise BadInputError("--purpose must say what the fine-tune is for")
    if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in purpose):
        # shown in terminals and stored as text: no escape sequences, no NUL
        raise BadInputError("--purpose may not contain control characters")
    require_role(state, policy, actor.name, "requester", to="submit fine-tuning jobs")
    require_role(state, policy, prepared_by, "data_preparer", to="be named as data preparer")
    if prepared_by == actor.name and not policy.approval.requester_may_prepare:
        raise PermissionDeniedError("the policy forbids the requester to be the data preparer")
    _refuse_pickles(manifests["base_model"], base_model)
    awaits_preparer = policy.approval.preparer_confirms and prepared_by != actor.name
    ts = now_iso()
    row = JobRow(
        id=f"job-{secrets.token_hex(5)}",
        state=JobState.SUBMITTED.value,
        purpose=purpose.strip(),
        requester=actor.name,
        preparer=prepared_by,
        base_model_path=str(base_model.resolve()),
        dataset_path=str(dataset.resolve()),
        config_path=str(config.resolve()),
        base_model_digest=manifests["base_model"].root,
        dataset_digest=manifests["dataset"].root,
        config_digest=manifests["config"].root,
        manifests=json.dumps({k: m.model_dump() for k, m in manifests.items()}),
        policy_digest=str(state.policy_digest),
        run_count=0,
        created_at=ts,
        updated_at=ts,
    )
    session.add(row)
    session.flush()
    append_event(
        session,
        ws.audit_key(),
        ts=ts,
        actor=actor,
        action="job.submit",
        job_id=row.id,
        payload={
            "purpose": row.purpose,
            "preparer": prepared_by,
            "base_model": row.base_model_digest,
            "dataset": row.dataset_digest,
            "config": row.config_digest,
            "policy": row.policy_digest,
            **({"preparer_confirms": True} if awaits_preparer else {}),
        },
    )
    if not policy.review.required:
        transition(
            ws,
            session,
            row,
            JobState.AWAITING_APPROVAL,
            actor=actor,
            action="review.not_required",
            payload={},
        )
    return row


def compute_manifests(base_model: Path, dataset: Path, config: Path) -> dict[str, Manifest]:
    """Manifests of a job's three inputs (done before the write transaction: it reads files)."""
    if not (config.is_file() or (config.is_dir() and (config / "config.yaml").is_file())):
        raise BadInputError(
            f"--config must be a YAML file, or a folder holding config.yaml and the training "
            f"code its command names: {config}"
        )
    if not dataset.exists():
        raise BadInputError(f"no such dataset: {dataset}")
    if not base_model.exists():
        raise BadInputError(f"no such base model: {base_model}")
    return {
        "dataset": manifest_of(dataset),
        "base_model": manifest_of(base_model),
        "config": manifest_of(config),
    }


def transition(
    ws: Workspace,
    session: Session,
    row: JobRow,
    target: JobState,
    *,
    actor: Actor,
    action: str,
    payload: dict[str, Any],
) -> None:
    """Move a job to ``target`` and append its audit event, in the caller's transaction."""
    check_transition(row.id, row.state, target)
    ts = now_iso()
    previous = row.state
    row.state = target.value
    row.updated_at = ts
    append_event(
        session,
        ws.audit_key(),
        ts=ts,
        actor=actor,
        action=action,
        job_id=row.id,
        payload={"from": previous, "to": target.value, **payload},
    )


def store_evidence(
    ws: Workspace,
    session: Session,
    *,
    job_id: str | None,
    kind: str,
    body: dict[str, Any],
    actor: Actor,
    payload: dict[str, Any] | None = None,
) -> str:
    """Store typed evidence (canonical JSON) with its audit event; returns its digest.

    The event, signed by ``actor`` (who computed it), holds the digest plus ``payload`` when
    given (``subjects``: the digests the evidence was computed on).
    """
    text = canonical_json(body)
    digest = sha256_bytes(text)
    ts = now_iso()
    session.add(
        EvidenceRow(job_id=job_id, kind=kind, digest=digest, body=text.decode(), created_at=ts)
    )
    append_event(
        session,
        ws.audit_key(),
        ts=ts,
        actor=actor,
        action=f"evidence.{kind}",
        job_id=job_id,
        payload={"digest": digest, **(payload or {})},
    )
    return digest
