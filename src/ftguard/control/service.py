"""The use cases of the control plane, written once for the CLI and the HTTP API.

Each function opens its own transaction; a state change and its audit event commit together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftguard.attest import PublicKey
from ftguard.control._approvals import approve as _approve
from ftguard.control._approvals import reject as _reject
from ftguard.control._audit import AuditEvent, AuditVerification, iter_events, verify_chain
from ftguard.control._baselines import (
    BaselineView,
    list_baselines,
    register_baseline,
    revoke_baseline,
)
from ftguard.control._evidence import evaluate_job, review_job, review_triggers, weights_for_job
from ftguard.control._gate import GateOutcome, decide_gate, deploy_job, override_gate
from ftguard.control._identities import add_user as _add_user
from ftguard.control._identities import create_key as _create_key
from ftguard.control._identities import list_users as _list_users
from ftguard.control._identities import require_role
from ftguard.control._init import init_workspace
from ftguard.control._jobs import (
    JobView,
    compute_manifests,
    get_job_row,
    job_view,
    new_job_row,
    transition,
)
from ftguard.control._runs import finish_run, launch, start_run, verify_running
from ftguard.control._states import JobState
from ftguard.control._workspace import Workspace
from ftguard.errors import BadInputError, ConflictError, VerificationError
from ftguard.store import JobRow, MetaRow

__all__ = [
    "BaselineView",
    "GateOutcome",
    "add_user",
    "approve",
    "cancel_job",
    "create_key",
    "decide_gate",
    "deploy_job",
    "evaluate_job",
    "finish_run",
    "get_job",
    "init_workspace",
    "iter_audit",
    "launch",
    "list_baselines",
    "list_jobs",
    "list_users",
    "override",
    "override_gate",
    "override_review",
    "register_baseline",
    "reject",
    "review_job",
    "review_triggers",
    "revoke_baseline",
    "start_run",
    "submit_job",
    "verify_audit",
    "verify_running",
    "weights_for_job",
]


def add_user(ws: Workspace, *, actor: str, name: str, roles: list[str]) -> dict[str, Any]:
    """Register a user with roles (admin only)."""
    with ws.store.write() as session:
        row = _add_user(ws, session, actor=actor, name=name, roles=roles)
        return {"name": row.name, "roles": roles}


def list_users(ws: Workspace) -> list[dict[str, object]]:
    """Every user, their roles and key ids."""
    with ws.store.read() as session:
        return _list_users(session, ws.policy())


def create_key(ws: Workspace, *, actor: str, user: str) -> PublicKey:
    """Create and register ``user``'s signing key."""
    with ws.store.write() as session:
        return _create_key(ws, session, actor=actor, user=user)


def submit_job(
    ws: Workspace,
    *,
    actor: str,
    base_model: Path,
    dataset: Path,
    config: Path,
    purpose: str,
    prepared_by: str,
) -> JobView:
    """Record a fine-tuning request with the digests of its inputs."""
    ws.policy()  # fail early on an invalid policy
    manifests = compute_manifests(base_model, dataset, config)
    with ws.store.write() as session:
        row = new_job_row(
            ws,
            session,
            actor=actor,
            base_model=base_model,
            dataset=dataset,
            config=config,
            purpose=purpose,
            prepared_by=prepared_by,
            manifests=manifests,
        )
        return job_view(session, row)


def get_job(ws: Workspace, job_id: str) -> JobView:
    """One job with its approvals and evidence."""
    with ws.store.read() as session:
        return job_view(session, get_job_row(session, job_id))


def list_jobs(ws: Workspace, *, state: str | None = None) -> list[JobView]:
    """Every job, newest first (optionally in one state)."""
    from sqlalchemy import select

    if state is not None and state not in {s.value for s in JobState}:
        raise BadInputError(f"unknown state {state!r}")
    with ws.store.read() as session:
        query = select(JobRow).order_by(JobRow.created_at.desc())
        if state:
            query = query.where(JobRow.state == state)
        return [job_view(session, r) for r in session.scalars(query)]


def approve(ws: Workspace, *, actor: str, job_id: str) -> JobView:
    """Sign ``actor``'s approval of a job."""
    with ws.store.write() as session:
        _approve(ws, session, actor=actor, job_id=job_id)
        return job_view(session, get_job_row(session, job_id))


def reject(ws: Workspace, *, actor: str, job_id: str, reason: str) -> JobView:
    """Reject a job with a reason."""
    with ws.store.write() as session:
        _reject(ws, session, actor=actor, job_id=job_id, reason=reason)
        return job_view(session, get_job_row(session, job_id))


def cancel_job(ws: Workspace, *, actor: str, job_id: str) -> JobView:
    """Cancel a job (its requester or an admin)."""
    with ws.store.write() as session:
        row = get_job_row(session, job_id, lock=True)
        if actor != row.requester:
            require_role(session, ws.policy(), actor, "admin", to="cancel others' jobs")
        transition(
            ws, session, row, JobState.CANCELLED, actor=actor, action="job.cancel", payload={}
        )
        return job_view(session, row)


def override_review(ws: Workspace, *, actor: str, job_id: str, justification: str) -> JobView:
    """A security reviewer's recorded override: the job goes to approval without a passed review."""
    if not justification.strip():
        raise BadInputError("--justification must say why the review is overridden")
    with ws.store.write() as session:
        require_role(session, ws.policy(), actor, "security_reviewer", to="override reviews")
        row = get_job_row(session, job_id, lock=True)
        if row.state == JobState.REJECTED.value and row.rejected_by != "review":
            raise ConflictError(
                f"job {job_id} was rejected by an approver; only a review's block can be overridden"
            )
        if row.state not in (
            JobState.SUBMITTED.value,
            JobState.IN_REVIEW.value,
            JobState.REJECTED.value,
        ):
            raise ConflictError(f"job {job_id} is {row.state}: there is no review to override")
        row.rejected_by = None
        transition(
            ws,
            session,
            row,
            JobState.AWAITING_APPROVAL,
            actor=actor,
            action="review.override",
            payload={"justification": justification.strip()},
        )
        return job_view(session, row)


def trusted_workspace_key(ws: Workspace, trusted_key: PublicKey | None = None) -> PublicKey:
    """The workspace key to verify with: the pinned one, checked against the store's record."""
    key = trusted_key or ws.workspace_public_key()
    with ws.store.read() as session:
        meta = session.get(MetaRow, "workspace_key")
    if meta is None or meta.value != key.b64:
        raise VerificationError("the database's workspace key is not the trusted workspace key")
    return key


def verify_audit(ws: Workspace, *, trusted_key: PublicKey | None = None) -> AuditVerification:
    """Verify the whole audit chain against the trusted workspace key."""
    key = trusted_workspace_key(ws, trusted_key)
    with ws.store.read() as session:
        return verify_chain(session, key)


def iter_audit(ws: Workspace, *, job_id: str | None = None) -> list[AuditEvent]:
    """Every audit event (optionally of one job), in order."""
    with ws.store.read() as session:
        return list(iter_events(session, job_id=job_id))


def override(ws: Workspace, *, actor: str, job_id: str, justification: str) -> JobView:
    """A security reviewer's override: of the gate's block, or of the dataset review."""
    if get_job(ws, job_id).state == JobState.BLOCKED.value:
        override_gate(ws, actor=actor, job_id=job_id, justification=justification)
        return get_job(ws, job_id)
    return override_review(ws, actor=actor, job_id=job_id, justification=justification)
