"""Every way around the approval control is refused."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import text

from ftguard.attest import generate_key, sign_statement, statement
from ftguard.control import service
from ftguard.control._approvals import APPROVAL_PREDICATE
from ftguard.errors import ConflictError, PermissionDeniedError, VerificationError

from .conftest import Env


def _force_approved(cp: Env, job_id: str, envelope: str, approver: str, keyid: str) -> None:
    """What a database-level attacker does: plant an approval row and flip the state."""
    with cp.ws.store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO approvals (job_id, approver, keyid, envelope, issued_at, expires_at, status) "
                "VALUES (:j, :a, :k, :e, '2026-01-01T00:00:00+00:00', '2999-01-01T00:00:00+00:00', 'active')"
            ),
            {"j": job_id, "a": approver, "k": keyid, "e": envelope},
        )
        conn.execute(text("UPDATE jobs SET state='approved' WHERE id=:j"), {"j": job_id})


def test_quorum_of_two_distinct_approvers(cp: Env) -> None:
    job = cp.submit()
    view = service.approve(cp.ws, actor="bob", job_id=job)
    assert view.state == "awaiting_approval"
    with pytest.raises(ConflictError, match="one person counts once"):
        service.approve(cp.ws, actor="bob", job_id=job)
    with pytest.raises(VerificationError, match="1 of 2"):
        _verify(cp, job)
    assert service.approve(cp.ws, actor="carol", job_id=job).state == "approved"


def _verify(cp: Env, job: str) -> None:
    from ftguard.control._approvals import verify_job_approvals
    from ftguard.control._identities import chain_state, policy_in_force

    with cp.ws.store.read() as session:
        state = chain_state(cp.ws, session)
        verify_job_approvals(cp.ws, session, state, policy_in_force(cp.ws, state), job)


def test_requester_preparer_and_non_approvers_cannot_approve(cp: Env) -> None:
    job = cp.submit()
    service.add_user(
        cp.ws, actor="root", name="frank", roles=["approver", "requester", "data_preparer"]
    )
    key = service.create_key(cp.ws, user="frank")
    service.confirm_key(cp.ws, actor="root", keyid=key.keyid)
    own = cp.submit("own", requester="frank")
    with pytest.raises(PermissionDeniedError, match="requested job"):
        service.approve(cp.ws, actor="frank", job_id=own)
    prep = cp.submit("prep", preparer="frank")
    with pytest.raises(PermissionDeniedError, match="prepared the dataset"):
        service.approve(cp.ws, actor="frank", job_id=prep)
    for who in ("alice", "dan", "sec", "root"):
        with pytest.raises(PermissionDeniedError, match="approver role"):
            service.approve(cp.ws, actor=who, job_id=job)
    assert service.get_job(cp.ws, job).approvals == []
    assert service.verify_audit(cp.ws).ok


def test_expired_approval_does_not_count(cp: Env) -> None:
    cp.set_policy("approval:\n  quorum: 1\n  lifetime_hours: 0.0003\n")
    job = cp.submit()
    assert service.approve(cp.ws, actor="bob", job_id=job).state == "approved"
    time.sleep(1.3)
    with pytest.raises(VerificationError, match="expired"):
        service.start_run(cp.ws, actor="alice", job_id=job)
    assert service.get_job(cp.ws, job).state == "approved"


def test_approval_copied_from_another_job(cp: Env) -> None:
    donor = cp.approved("donor")
    target = cp.submit("target")
    with cp.ws.store.engine.begin() as conn:
        rows = conn.execute(
            text("SELECT approver, keyid, envelope FROM approvals WHERE job_id=:j"), {"j": donor}
        ).all()
    for approver, keyid, envelope in rows:
        _force_approved(cp, target, envelope, approver, keyid)
    # The job's state comes from the audit chain: the flipped row is caught at once.
    with pytest.raises(VerificationError, match="disagrees with the audit chain on state"):
        service.start_run(cp.ws, actor="alice", job_id=target)
    # Even with the state left alone, rows the chain does not record do not count.
    with cp.ws.store.engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET state='awaiting_approval' WHERE id=:j"), {"j": target})
    from ftguard.control._approvals import verify_job_approvals
    from ftguard.control._identities import chain_state, policy_in_force

    with cp.ws.store.read() as session, pytest.raises(VerificationError, match="0 of 2"):
        state = chain_state(cp.ws, session)
        verify_job_approvals(cp.ws, session, state, policy_in_force(cp.ws, state), target)


def test_signature_by_unregistered_key(cp: Env) -> None:
    job = cp.submit()
    from ftguard.control._approvals import _subjects
    from ftguard.control._jobs import get_job_row

    with cp.ws.store.read() as session:
        subjects = _subjects(get_job_row(session, job))
    rogue = generate_key()
    for approver in ("bob", "carol"):
        pred = {
            "job_id": job,
            "approver": approver,
            "requester": "alice",
            "preparer": "dan",
            "review_digest": None,
            "expires_at": "2999-01-01T00:00:00+00:00",
        }
        env = sign_statement(statement(subjects, APPROVAL_PREDICATE, pred), rogue)
        _force_approved(cp, job, env.model_dump_json(), approver, rogue.public.keyid)
    with pytest.raises(VerificationError, match="disagrees with the audit chain"):
        service.start_run(cp.ws, actor="alice", job_id=job)
    # Registering the rogue key straight in the database (not through the audited path) is not enough.
    with cp.ws.store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO keys (keyid, user_name, public_key, created_at) "
                "VALUES (:k, 'bob', :p, '2026-01-01')"
            ),
            {"k": rogue.public.keyid, "p": rogue.public.b64},
        )
    with pytest.raises(VerificationError, match="disagrees with the audit chain"):
        service.start_run(cp.ws, actor="alice", job_id=job)
    assert service.verify_audit(cp.ws).ok  # the chain itself was never touched


def test_tampered_envelope(cp: Env) -> None:
    job = cp.approved()
    with cp.ws.store.engine.begin() as conn:
        row_id, envelope = conn.execute(
            text("SELECT id, envelope FROM approvals WHERE job_id=:j AND approver='bob'"),
            {"j": job},
        ).one()
        env = json.loads(envelope)
        import base64

        stmt = json.loads(base64.b64decode(env["payload"]))
        stmt["predicate"]["expires_at"] = "2999-01-01T00:00:00+00:00"
        env["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()
        conn.execute(
            text("UPDATE approvals SET envelope=:e WHERE id=:i"),
            {"e": json.dumps(env), "i": row_id},
        )
    # The chain records each envelope's digest: an edited envelope is no approval at all.
    with pytest.raises(VerificationError, match="1 of 2 required valid approvals"):
        service.start_run(cp.ws, actor="alice", job_id=job)


def test_rejected_job_cannot_be_approved_or_run(cp: Env) -> None:
    job = cp.submit()
    service.approve(cp.ws, actor="bob", job_id=job)
    service.reject(cp.ws, actor="carol", job_id=job, reason="dataset not licensed")
    with pytest.raises(ConflictError):
        service.approve(cp.ws, actor="erin", job_id=job)
    with pytest.raises(ConflictError, match="rejected by an approver"):
        service.override_review(cp.ws, actor="sec", job_id=job, justification="x")
    assert [a["status"] for a in service.get_job(cp.ws, job).approvals] == ["void"]
