"""The use cases of the control plane, written once for the CLI and the HTTP API.

Each function opens its own transaction; a state change and its audit event commit together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from ftguard._files import read_text_file
from ftguard.attest import Envelope, PublicKey
from ftguard.control._approvals import approval_statement as _approval_statement
from ftguard.control._approvals import approve as _approve
from ftguard.control._approvals import confirm_prepared as _confirm_prepared
from ftguard.control._approvals import record_approval
from ftguard.control._approvals import reject as _reject
from ftguard.control._audit import (
    AuditEvent,
    AuditVerification,
    append_event,
    iter_events,
    replay_chain,
)
from ftguard.control._baselines import (
    MAX_EXPORT_BYTES,
    BaselineExport,
    BaselineRecord,
    BaselineView,
    export_baselines,
    import_baselines,
    list_baselines,
    parse_baseline_export,
    register_baseline,
    revoke_baseline,
)
from ftguard.control._bom import job_bom
from ftguard.control._chain import Actor, ChainState
from ftguard.control._delegation import (
    authenticate_token,
    check_scopes,
    check_sso_binding,
    oidc_user_is_synced,
    parse_lifetime,
    sync_oidc_user,
)
from ftguard.control._delegation import bind_user as _bind_user
from ftguard.control._delegation import create_token as _create_token
from ftguard.control._delegation import list_tokens as _list_tokens
from ftguard.control._delegation import register_server as _register_server
from ftguard.control._delegation import revoke_token as _revoke_token
from ftguard.control._delegation import unbind_user as _unbind_user
from ftguard.control._evidence import evaluate_job, review_job, review_triggers, weights_for_job
from ftguard.control._gate import (
    GateOutcome,
    decide_gate,
    deploy_job,
    hash_recorded_output,
    override_blocked,
    override_gate,
    revocation_list,
    revocations_in_force,
    revoke_pass,
)
from ftguard.control._identities import (
    TOKEN_SCOPES,
    Caller,
    ServerCaller,
    acting,
    authenticate,
    chain_state,
    name_of,
    policy_in_force,
    require_admin_scope,
    require_role,
)
from ftguard.control._identities import add_user as _add_user
from ftguard.control._identities import confirm_key as _confirm_key
from ftguard.control._identities import list_users as _list_users
from ftguard.control._identities import register_key as _register_key
from ftguard.control._identities import request_key as _request_key
from ftguard.control._identities import revoke_key as _revoke_key
from ftguard.control._init import init_workspace
from ftguard.control._jobs import (
    JobView,
    checked_job,
    compute_manifests,
    get_job_row,
    job_view,
    job_views,
    new_job_row,
    require_not_party,
    transition,
    unknown_job,
)
from ftguard.control._readers import READS_EVERY_JOB, JobReader
from ftguard.control._runs import abort_run, finish_run, launch, start_run, verify_running
from ftguard.control._states import JobState
from ftguard.control._witness import check_witnessed, open_witness
from ftguard.control._workspace import Workspace, now_iso
from ftguard.errors import BadInputError, ConflictError, VerificationError
from ftguard.policy import Policy, parse_policy, policy_digest
from ftguard.store import JobRow, MetaRow

__all__ = [
    "MAX_EXPORT_BYTES",
    "READS_EVERY_JOB",
    "JobReader",
    "BaselineExport",
    "BaselineRecord",
    "BaselineView",
    "TOKEN_SCOPES",
    "Caller",
    "ServerCaller",
    "approval_statement",
    "approve_signed",
    "authenticate_token",
    "create_token",
    "list_tokens",
    "register_key",
    "register_server",
    "revoke_token",
    "check_sso_binding",
    "oidc_user_is_synced",
    "sync_oidc_user",
    "unbind_user",
    "bind_user",
    "GateOutcome",
    "add_user",
    "approve",
    "cancel_job",
    "confirm_key",
    "confirm_prepared",
    "create_key",
    "decide_gate",
    "revocation_list",
    "revocations_in_force",
    "revoke_pass",
    "deploy_job",
    "evaluate_job",
    "abort_run",
    "finish_run",
    "get_job",
    "init_workspace",
    "iter_audit",
    "job_bom",
    "launch",
    "export_baselines",
    "import_baselines",
    "list_baselines",
    "list_jobs",
    "list_users",
    "override",
    "override_gate",
    "override_review",
    "parse_baseline_export",
    "register_baseline",
    "reject",
    "review_job",
    "review_triggers",
    "revoke_baseline",
    "revoke_key",
    "set_policy",
    "start_run",
    "submit_job",
    "verify_audit",
    "verify_running",
    "weights_for_job",
]


def add_user(ws: Workspace, *, actor: Caller, name: str, roles: list[str]) -> dict[str, Any]:
    """Register a user with roles (an admin, signing with the admin's own key)."""
    with ws.store.write() as session:
        state = chain_state(ws, session)
        granted = _add_user(
            ws, session, state, actor=authenticate(state, actor), name=name, roles=roles
        )
        return {"name": name, "roles": granted}


def bind_user(
    ws: Workspace, *, actor: Caller, name: str, issuer: str, subject: str
) -> dict[str, Any]:
    """Bind a user to one OIDC identity before their first sign-in (an admin)."""
    with ws.store.write() as session:
        state = chain_state(ws, session)
        _bind_user(
            ws,
            session,
            state,
            actor=authenticate(state, actor),
            name=name,
            issuer=issuer,
            subject=subject,
        )
        return {"name": name, "issuer": issuer, "subject": subject}


def unbind_user(ws: Workspace, *, actor: Caller, name: str) -> dict[str, Any]:
    """Release a user from the OIDC identity their sign-ins are bound to (an admin)."""
    with ws.store.write() as session:
        state = chain_state(ws, session)
        issuer, subject = _unbind_user(
            ws, session, state, actor=authenticate(state, actor), name=name
        )
        return {"name": name, "issuer": issuer, "subject": subject}


def list_users(ws: Workspace) -> list[dict[str, object]]:
    """Every user, their roles and keys, as the verified chain has them."""
    with ws.store.read() as session:
        state = chain_state(ws, session)
        return _list_users(state, ws.policy())


def create_key(ws: Workspace, *, user: str) -> PublicKey:
    """Create ``user``'s key in the caller's key folder and request its registration.

    The key counts once an admin confirms it (:func:`confirm_key`).
    """
    with ws.store.write() as session:
        return _request_key(ws, session, chain_state(ws, session), user=user)


def confirm_key(ws: Workspace, *, actor: Caller, keyid: str) -> dict[str, str]:
    """An admin confirms a requested key; returns its user and id."""
    with ws.store.write() as session:
        state = chain_state(ws, session)
        record = _confirm_key(ws, session, state, actor=authenticate(state, actor), keyid=keyid)
        return {"user": record.user, "keyid": record.keyid, "status": record.status}


def revoke_key(ws: Workspace, *, actor: Caller, keyid: str, reason: str = "") -> dict[str, str]:
    """Revoke a key (its owner or an admin); later verifications refuse it."""
    with ws.store.write() as session:
        state = chain_state(ws, session)
        record = _revoke_key(
            ws, session, state, actor=authenticate(state, actor), keyid=keyid, reason=reason
        )
        return {"user": record.user, "keyid": record.keyid, "status": record.status}


def set_policy(ws: Workspace, *, actor: Caller, path: Path) -> str:
    """An admin puts a new policy in force: validated, signed into the chain, then written.

    Works also when the policy file was edited in place (every other decision refuses then):
    setting a policy is how an admin repairs it. Returns the new policy's digest. Jobs approved
    under the previous policy must be approved again before they run or pass the gate.
    """
    text = read_text_file(path, what="policy file")
    digest = policy_digest(parse_policy(text, source=str(path)))
    with ws.store.write() as session:
        state = chain_state(ws, session)
        who = authenticate(state, actor)
        require_role(state, None, name_of(actor), "admin", to="change the policy")
        append_event(
            session,
            ws.audit_key(),
            ts=now_iso(),
            actor=who,
            action="policy.set",
            payload={"digest": digest, "previous": state.policy_digest},
        )
        scratch = ws.policy_path.with_suffix(".yaml.new")
        scratch.write_text(text, encoding="utf-8")
        scratch.replace(ws.policy_path)
    return digest


def submit_job(
    ws: Workspace,
    *,
    actor: Caller,
    base_model: Path,
    dataset: Path,
    config: Path,
    purpose: str,
    prepared_by: str,
) -> JobView:
    """Record a fine-tuning request with the digests of its inputs."""
    with ws.store.read() as session:
        acting(ws, session, actor)  # fail early: before the inputs are hashed
    manifests = compute_manifests(base_model, dataset, config)
    with ws.store.write() as session:
        state, policy, who = acting(ws, session, actor)
        row = new_job_row(
            ws,
            session,
            state,
            policy,
            actor=who,
            base_model=base_model,
            dataset=dataset,
            config=config,
            purpose=purpose,
            prepared_by=prepared_by,
            manifests=manifests,
        )
        return job_view(session, row)


def get_job(ws: Workspace, job_id: str, *, reader: JobReader | None = None) -> JobView:
    """One job with its approvals and evidence.

    ``reader``: the team server's signed-in user; a job they may not read is not found.
    """
    with ws.store.read() as session:
        row = get_job_row(session, job_id)
        if reader is not None and not reader.may_read(row.requester, row.preparer, row.state):
            raise unknown_job(job_id)
        return job_view(session, row)


def list_jobs(
    ws: Workspace,
    *,
    state: str | None = None,
    limit: int | None = None,
    offset: int = 0,
    reader: JobReader | None = None,
) -> list[JobView]:
    """Jobs, newest first (optionally in one state; a page of ``limit`` from ``offset``).

    ``reader``: the team server's signed-in user; only the jobs they may read.
    """
    from sqlalchemy import select

    if state is not None and state not in {s.value for s in JobState}:
        raise BadInputError(f"unknown state {state!r}")
    with ws.store.read() as session:
        query = select(JobRow).order_by(JobRow.created_at.desc(), JobRow.id)
        if state:
            query = query.where(JobRow.state == state)
        readable = None if reader is None else reader.jobs_filter()
        if readable is not None:
            query = query.where(readable)
        query = query.offset(offset)
        if limit is not None:
            query = query.limit(limit)
        return job_views(session, list(session.scalars(query)))


def approve(ws: Workspace, *, actor: Caller, job_id: str) -> JobView:
    """Sign ``actor``'s approval of a job."""
    with ws.store.write() as session:
        state, policy, who = acting(ws, session, actor)
        _approve(ws, session, state, policy, actor=who, job_id=job_id)
        return job_view(session, get_job_row(session, job_id))


def confirm_prepared(
    ws: Workspace, *, actor: Caller, job_id: str, dataset_digest: str | None = None
) -> JobView:
    """The job's named data preparer signs that its dataset is the one they prepared.

    ``dataset_digest`` (of the preparer's own copy, as ``manifest_of(path).root``) is
    checked against the submitted one first.
    """
    with ws.store.write() as session:
        state, _, who = acting(ws, session, actor)
        _confirm_prepared(
            ws, session, state, actor=who, job_id=job_id, dataset_digest=dataset_digest
        )
        return job_view(session, get_job_row(session, job_id))


def reject(ws: Workspace, *, actor: Caller, job_id: str, reason: str) -> JobView:
    """Reject a job with a reason."""
    with ws.store.write() as session:
        state, policy, who = acting(ws, session, actor)
        _reject(ws, session, state, policy, actor=who, job_id=job_id, reason=reason)
        return job_view(session, get_job_row(session, job_id))


def cancel_job(ws: Workspace, *, actor: Caller, job_id: str) -> JobView:
    """Cancel a job (its requester or an admin)."""
    with ws.store.write() as session:
        state = chain_state(ws, session)
        who = authenticate(state, actor)
        row = checked_job(session, state, job_id, lock=True)
        if name_of(actor) != row.requester:
            require_admin_scope(who, to="cancel others' jobs")
            require_role(
                state, policy_in_force(ws, state), name_of(actor), "admin", to="cancel others' jobs"
            )
        transition(ws, session, row, JobState.CANCELLED, actor=who, action="job.cancel", payload={})
        return job_view(session, row)


def override_review(ws: Workspace, *, actor: Caller, job_id: str, justification: str) -> JobView:
    """A security reviewer's recorded override: the job goes to approval without a passed review."""
    if not justification.strip():
        raise BadInputError("--justification must say why the review is overridden")
    with ws.store.write() as session:
        state, policy, who = acting(ws, session, actor)
        row = checked_job(session, state, job_id, lock=True)
        _override_review(ws, session, state, policy, row, actor=who, justification=justification)
        return job_view(session, row)


def _override_review(
    ws: Workspace,
    session: Session,
    state: ChainState,
    policy: Policy,
    row: JobRow,
    *,
    actor: Actor,
    justification: str,
) -> None:
    require_role(state, policy, actor.name, "security_reviewer", to="override reviews")
    require_not_party(row, actor.name, to="override the review of")
    # who rejected it is read from the chain: the table's column is an index a database
    # editor could set to "review"
    if row.state == JobState.REJECTED.value and state.job(row.id).rejected_by != "review":
        raise ConflictError(
            f"job {row.id} was rejected by an approver; only a review's block can be overridden"
        )
    if row.state not in (
        JobState.SUBMITTED.value,
        JobState.IN_REVIEW.value,
        JobState.REJECTED.value,
    ):
        raise ConflictError(f"job {row.id} is {row.state}: there is no review to override")
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


def trusted_audit_key(ws: Workspace, trusted_key: PublicKey | None = None) -> PublicKey:
    """The audit key to verify with: the pinned one, checked against the store's record."""
    key = trusted_key or ws.audit_public_key()
    with ws.store.read() as session:
        meta = session.get(MetaRow, "audit_key")
    if meta is None or meta.value != key.b64:
        raise VerificationError("the database's audit key is not the trusted audit key")
    return key


def verify_audit(
    ws: Workspace, *, trusted_key: PublicKey | None = None, witness: str | None = None
) -> AuditVerification:
    """Verify the whole audit chain against the trusted audit key.

    ``witness``: also check that the log extends every head a witness saw (``"default"`` for
    the workspace's own, or a witness URI such as ``file:/path/witness.jsonl``).
    """
    key = trusted_audit_key(ws, trusted_key)
    with ws.store.read() as session:
        result, _ = replay_chain(session, key)
        if result.ok and witness is not None:
            sink = ws.witness() if witness == "default" else open_witness(witness)
            problem = check_witnessed(session, key, sink.heads(), chain_seq=result.head_seq)
            if problem:
                return result.model_copy(
                    update={"ok": False, "problem": problem, "first_bad_seq": result.head_seq}
                )
        return result


def iter_audit(
    ws: Workspace,
    *,
    job_id: str | None = None,
    after: int = 0,
    limit: int | None = None,
    reader: JobReader | None = None,
) -> list[AuditEvent]:
    """Audit events in order (optionally of one job; those after ``after``, at most ``limit``).

    ``reader``: only the events of jobs they may read and the events they made (a job they may
    not read is not found).
    """
    if job_id is not None and reader is not None:
        get_job(ws, job_id, reader=reader)
    where = None if reader is None else reader.events_filter()
    with ws.store.read() as session:
        return list(iter_events(session, job_id=job_id, after=after, limit=limit, where=where))


def override(ws: Workspace, *, actor: Caller, job_id: str, justification: str) -> JobView:
    """A security reviewer's override: of the gate's block, or of the dataset review.

    Which one is decided, and done, in one write transaction on the job as it is then; a
    blocked job's output is hashed before (that reads every byte), and re-checked under it.
    """
    if not justification.strip():
        raise BadInputError("--justification must say why the block is overridden")
    output = hash_recorded_output(ws, job_id) if get_job(ws, job_id).state == "blocked" else None
    with ws.store.write() as session:
        state, policy, who = acting(ws, session, actor)
        row = checked_job(session, state, job_id, lock=True)
        if row.state == JobState.BLOCKED.value:
            if output is None:  # it became blocked since: hash what is there now
                raise ConflictError(f"job {job_id} was blocked meanwhile: run the override again")
            override_blocked(
                ws,
                session,
                state,
                policy,
                row,
                actor=who,
                justification=justification,
                output=output,
            )
        else:
            _override_review(
                ws, session, state, policy, row, actor=who, justification=justification
            )
        return job_view(session, row)


def register_server(ws: Workspace, *, actor: Caller) -> str:
    """An admin registers the team server's key (made if missing); returns its key id."""
    with ws.store.write() as session:
        state = chain_state(ws, session)
        return _register_server(ws, session, state, actor=authenticate(state, actor))


def create_token(
    ws: Workspace,
    *,
    actor: Caller,
    user: str,
    expires: str = "90d",
    scopes: list[str] | None = None,
) -> dict[str, Any]:
    """An admin issues an API token for ``user``; the token is in the result, shown once.

    ``scopes`` limits it (see :data:`TOKEN_SCOPES`); None: all its user's roles allow.
    """
    lifetime = parse_lifetime(expires)
    limited = check_scopes(scopes)
    with ws.store.write() as session:
        state = chain_state(ws, session)
        token, row = _create_token(
            ws,
            session,
            state,
            actor=authenticate(state, actor),
            user=user,
            lifetime=lifetime,
            scopes=scopes,
        )
        return {
            "token": token,
            "token_id": row.token_id,
            "user": row.user_name,
            "expires_at": str(row.expires_at),
            "scopes": None if limited is None else list(limited),
        }


def revoke_token(ws: Workspace, *, actor: Caller, token_id: str) -> dict[str, str]:
    """Revoke an API token (its owner or an admin)."""
    with ws.store.write() as session:
        state = chain_state(ws, session)
        row = _revoke_token(ws, session, state, actor=authenticate(state, actor), token_id=token_id)
        return {"token_id": row.token_id, "user": row.user_name, "status": "revoked"}


def list_tokens(ws: Workspace, *, user: str | None = None) -> list[dict[str, object]]:
    """The API tokens the chain issued, with status and last use (never their secrets)."""
    with ws.store.read() as session:
        return _list_tokens(session, chain_state(ws, session), user=user)


def register_key(ws: Workspace, *, actor: Caller, public_key: str, proof: str) -> dict[str, str]:
    """Request registration of a public key whose private half stays with its holder.

    ``proof`` is the key's signature of :func:`~ftguard.control._chain.key_request_message`
    (base64): how a browser's or a remote CLI's key proves possession. An admin confirms it.
    """
    with ws.store.write() as session:
        state = chain_state(ws, session)
        public = _register_key(
            ws, session, state, actor=authenticate(state, actor), public_key=public_key, proof=proof
        )
        return {"user": name_of(actor), "keyid": public.keyid, "status": "pending"}


def approval_statement(ws: Workspace, *, actor: Caller, job_id: str) -> dict[str, Any]:
    """The statement ``actor`` would sign to approve a job (checked: they may approve it)."""
    with ws.store.read() as session:
        state, policy, who = acting(ws, session, actor)
        return _approval_statement(session, state, policy, approver=who.name, job_id=job_id)


def approve_signed(ws: Workspace, *, actor: Caller, job_id: str, envelope: Envelope) -> JobView:
    """Record an approval that ``actor`` signed elsewhere with their own key."""
    with ws.store.write() as session:
        state, policy, who = acting(ws, session, actor)
        record_approval(ws, session, state, policy, actor=who, job_id=job_id, envelope=envelope)
        return job_view(session, get_job_row(session, job_id))
