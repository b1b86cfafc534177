"""What an insider with ordinary access, a database-only attacker and a key thief can't do.

Each test reproduces a finding of the insider review (issue 20) with the CLI or the service
layer, and checks it is now refused, with the honest path still working beside it.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from ftguard.attest import sign_statement, statement
from ftguard.cli import main
from ftguard.control import service
from ftguard.control._identities import authenticate, chain_state
from ftguard.control._jobs import store_evidence
from ftguard.errors import BadInputError, PermissionDeniedError, VerificationError
from ftguard.gate import verify_deployment
from ftguard.gate._attestation import ATTESTATION_PREDICATE

from .conftest import Env

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _as_insider(cp: Env, monkeypatch: pytest.MonkeyPatch, name: str = "mallory") -> Path:
    """A workspace user with their own key folder (they cannot read the others' keys)."""
    service.add_user(cp.ws, actor="root", name=name, roles=["requester"])
    own = cp.root / f"{name}-keys"
    monkeypatch.setenv("FTGUARD_KEYS_DIR", str(own))
    key = service.create_key(cp.ws, user=name)
    monkeypatch.setenv("FTGUARD_KEYS_DIR", cp.env["FTGUARD_KEYS_DIR"])
    service.confirm_key(cp.ws, actor="root", keyid=key.keyid)
    monkeypatch.setenv("FTGUARD_KEYS_DIR", str(own))
    return own


def test_admin_actions_need_the_admins_own_key(
    cp: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _as_insider(cp, monkeypatch)
    assert main(["user", "add", "puppet", "--role", "approver", "--as", "root"]) == 4
    assert "no private key of root" in capsys.readouterr().err
    assert main(["user", "add", "puppet", "--role", "approver", "--as", "mallory"]) == 4
    assert "puppet" not in {u["name"] for u in service.list_users(cp.ws)}


def test_a_key_in_someone_elses_name_needs_an_admins_confirmation(
    cp: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    job = cp.submit()
    _as_insider(cp, monkeypatch)
    # mallory creates keys in bob's and erin's names: they stay pending and sign nothing.
    (Path(os.environ["FTGUARD_KEYS_DIR"])).mkdir(exist_ok=True)
    assert main(["keys", "create", "--user", "bob", "--json"]) == 0
    pending = json.loads(capsys.readouterr().out)
    assert pending["status"] == "pending"
    assert main(["approve", job, "--as", "bob"]) == 4
    assert "not confirmed yet" in capsys.readouterr().err
    # mallory cannot confirm it either.
    assert main(["keys", "confirm", pending["keyid"][:16], "--as", "mallory"]) == 4
    assert service.get_job(cp.ws, job).approvals == []
    # The honest path: bob (own key folder) approves with his confirmed key.
    monkeypatch.setenv("FTGUARD_KEYS_DIR", cp.env["FTGUARD_KEYS_DIR"])
    assert main(["approve", job, "--as", "bob"]) == 0
    assert service.verify_audit(cp.ws).ok


def test_revoked_key_no_longer_counts(cp: Env) -> None:
    job = cp.submit()
    service.approve(cp.ws, actor="bob", job_id=job)
    service.approve(cp.ws, actor="carol", job_id=job)
    carol = [u for u in service.list_users(cp.ws) if u["name"] == "carol"][0]
    keyid = str(carol["keys"][0])  # type: ignore[index]
    with pytest.raises(PermissionDeniedError, match="admin"):
        service.revoke_key(cp.ws, actor="bob", keyid=keyid)
    service.revoke_key(cp.ws, actor="carol", keyid=keyid, reason="laptop lost")
    with pytest.raises(VerificationError, match="1 of 2"):
        service.start_run(cp.ws, actor="alice", job_id=job)
    with pytest.raises(PermissionDeniedError, match="revoked"):
        service.approve(cp.ws, actor="carol", job_id=job)
    # carol gets a new key; the admin confirms it; her new approval counts.
    key = service.create_key(cp.ws, user="carol")
    service.confirm_key(cp.ws, actor="root", keyid=key.keyid)
    revoke = [e for e in service.iter_audit(cp.ws) if e.action == "key.revoke"][0]
    assert revoke.actor == "carol" and revoke.payload["reason"] == "laptop lost"
    assert service.verify_audit(cp.ws).ok


def test_roles_edited_in_the_table_do_not_count(cp: Env) -> None:
    job = cp.submit()
    with cp.ws.store.engine.begin() as conn:
        conn.execute(text("UPDATE users SET roles='[\"approver\"]' WHERE name='alice'"))
        conn.execute(text("UPDATE users SET roles='[]' WHERE name='bob'"))
    with pytest.raises(PermissionDeniedError, match="approver role"):
        service.approve(cp.ws, actor="dan", job_id=job)
    # bob's role comes from the chain, not the table.
    assert service.approve(cp.ws, actor="bob", job_id=job).approvals[0]["approver"] == "bob"
    assert (
        "approver" not in [u for u in service.list_users(cp.ws) if u["name"] == "alice"][0]["roles"]
    )  # type: ignore[operator]


def test_a_jobs_review_always_runs_the_policys_review(cp: Env) -> None:
    job = cp.submit(review=True)
    for options in ({"scanners": ["duplicates"]}, {"embeddings": False}):
        with pytest.raises(BadInputError, match="policy's full review"):
            service.review_job(cp.ws, actor="alice", job_id=job, **options)  # type: ignore[arg-type]
    with pytest.raises(BadInputError, match="purpose"):
        service.review_job(cp.ws, actor="alice", job_id=job, purpose="anything")
    assert service.get_job(cp.ws, job).state == "submitted"


def _trained(cp: Env) -> tuple[str, Path]:
    job = cp.approved()
    assert service.launch(cp.ws, actor="alice", job_id=job) == 0
    view = service.get_job(cp.ws, job)
    assert view.state == "trained"
    return job, Path(view.output_path or "")


def test_database_only_attacker_cannot_fake_evidence_state_or_approvals(cp: Env) -> None:
    job, _ = _trained(cp)
    passing = json.dumps({"verdict": "pass"}, sort_keys=True, separators=(",", ":"))
    import hashlib

    with cp.ws.store.engine.begin() as conn:
        for kind in ("review", "weights", "behavior"):
            conn.execute(
                text(
                    "INSERT INTO evidence (job_id, kind, digest, body, created_at) "
                    "VALUES (:j, :k, :d, :b, '2026-01-01')"
                ),
                {
                    "j": job,
                    "k": kind,
                    "d": hashlib.sha256(passing.encode()).hexdigest(),
                    "b": passing,
                },
            )
    decision = service.decide_gate(cp.ws, actor="sec", job_id=job).decision
    assert decision.decision == "block"
    assert "the weight report is missing" in decision.reasons
    # Resetting a state, or setting a consumed approval back to active, is caught.
    with cp.ws.store.engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET state='approved' WHERE id=:j"), {"j": job})
        conn.execute(text("UPDATE approvals SET status='active' WHERE job_id=:j"), {"j": job})
    with pytest.raises(VerificationError, match="disagrees with the audit chain on state"):
        service.start_run(cp.ws, actor="alice", job_id=job)


def test_evidence_must_be_computed_on_the_recorded_files(cp: Env, tmp_path: Path) -> None:
    job, output = _trained(cp)
    other = tmp_path / "other"
    shutil.copytree(output, other)
    (other / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      x")
    with pytest.raises(VerificationError, match="not the recorded one"):
        service.weights_for_job(cp.ws, actor="alice", job_id=job, tuned=other)
    # Evidence an insider signs on other files does not count at the gate.
    with cp.ws.store.write() as session:
        state = chain_state(cp.ws, session)
        for kind in ("weights", "behavior"):
            store_evidence(
                cp.ws,
                session,
                job_id=job,
                kind=kind,
                body={"verdict": "pass"},
                actor=authenticate(state, "alice"),
                payload={"subjects": {"base_model": "0" * 64, "output": "1" * 64}},
            )
    decision = service.decide_gate(cp.ws, actor="sec", job_id=job).decision
    assert decision.decision == "block"
    assert {"weights.subjects", "behavior.subjects"} <= {
        r.rule for r in decision.rules if not r.passed
    }


def test_output_swapped_after_the_run_is_not_attested(cp: Env) -> None:
    job, output = _trained(cp)
    _pass_all(cp, job)
    (output / "model.safetensors").write_bytes(b"swapped")
    decision = service.decide_gate(cp.ws, actor="sec", job_id=job).decision
    assert decision.decision == "block"
    assert any("output changed since the run recorded it" in r for r in decision.reasons)


def _pass_all(cp: Env, job: str) -> None:
    with cp.ws.store.write() as session:
        state = chain_state(cp.ws, session)
        record = state.job(job)
        both = {"base_model": record.digests["base_model"], "output": (record.output or {})["root"]}
        for kind in ("weights", "behavior"):
            store_evidence(
                cp.ws,
                session,
                job_id=job,
                kind=kind,
                body={"verdict": "pass"},
                actor=authenticate(state, "alice"),
                payload={"subjects": both},
            )


def test_policy_changed_between_approval_and_gate_blocks(cp: Env) -> None:
    job, _ = _trained(cp)
    _pass_all(cp, job)
    cp.set_policy(cp.ws.policy_path.read_text().replace("lifetime_hours: 72", "lifetime_hours: 1"))
    decision = service.decide_gate(cp.ws, actor="sec", job_id=job).decision
    assert decision.decision == "block"
    assert any("another policy" in r for r in decision.reasons)


def test_separate_owner_only_keys_and_no_attestation_forged_with_the_audit_key(cp: Env) -> None:
    job, output = _trained(cp)
    _pass_all(cp, job)
    outcome = service.decide_gate(cp.ws, actor="sec", job_id=job)
    assert outcome.decision.decision == "pass" and outcome.attestation_path
    for path in (cp.ws.audit_key_path, cp.ws.attestation_key_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert cp.ws.audit_public_key() != cp.ws.attestation_public_key()
    trusted = cp.ws.attestation_pub_path
    result = verify_deployment(output, outcome.attestation_path, trusted)
    assert result.audit_head and result.audit_head["seq"] > 0
    # Whoever holds the audit key (it signs the log) still cannot sign a deployment.
    forged = sign_statement(
        statement(
            [{"name": "x", "digest": {"sha256": result.digest}}],
            ATTESTATION_PREDICATE,
            {"decision": {"decision": "pass"}, "files": []},
        ),
        cp.ws.audit_key(),
    )
    with pytest.raises(VerificationError, match="no valid signature"):
        verify_deployment(output, forged, trusted)
    # The witness holds the decision's head.
    assert (
        main(
            [
                "verify-deployment",
                str(output),
                "--attestation",
                str(outcome.attestation_path),
                "--trusted-key",
                str(trusted),
                "--witness",
                str(cp.ws.witness_path),
            ]
        )
        == 0
    )


def test_rolled_back_log_is_caught_by_the_witness(
    cp: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    job = cp.submit()
    with cp.ws.store.engine.begin() as conn:
        saved = conn.execute(text("SELECT seq, hash, signature FROM audit_head")).one()
    service.approve(cp.ws, actor="bob", job_id=job)
    service.approve(cp.ws, actor="carol", job_id=job)
    assert main(["audit", "verify", "--witness"]) == 0
    assert service.verify_audit(cp.ws, witness="default").ok
    # Roll back: delete the newer events and restore the saved, validly signed head.
    with cp.ws.store.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq > :s"), {"s": saved.seq})
        conn.execute(text("DELETE FROM audit_checkpoints WHERE seq > :s"), {"s": saved.seq})
        conn.execute(
            text("UPDATE audit_head SET seq=:s, hash=:h, signature=:g"),
            {"s": saved.seq, "h": saved.hash, "g": saved.signature},
        )
    assert service.verify_audit(cp.ws).ok  # the chain alone cannot tell
    assert main(["audit", "verify", "--witness"]) == 6
    assert "rolled back" in capsys.readouterr().err


def test_rewritten_log_that_keeps_its_length_is_caught_by_the_witness(cp: Env) -> None:
    cp.submit()
    with cp.ws.store.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET hash=:h WHERE seq=2"), {"h": "f" * 64})
    from ftguard.control._witness import check_witnessed

    with cp.ws.store.read() as session:
        heads = cp.ws.witness().heads()
        problem = check_witnessed(session, cp.ws.audit_public_key(), heads, chain_seq=heads[-1].seq)
    assert problem is not None and "#2" in problem


def test_a_policy_edited_in_place_stops_decisions_until_an_admin_sets_one(cp: Env) -> None:
    job = cp.submit()
    original = cp.ws.policy_path.read_text()
    cp.ws.policy_path.write_text(original.replace("quorum: 2", "quorum: 1"))
    with pytest.raises(VerificationError, match="without 'ftguard policy set'"):
        service.approve(cp.ws, actor="bob", job_id=job)
    repaired = cp.root / "repaired.yaml"
    repaired.write_text(original)
    with pytest.raises(PermissionDeniedError, match="admin"):
        service.set_policy(cp.ws, actor="bob", path=repaired)
    service.set_policy(cp.ws, actor="root", path=repaired)
    assert cp.ws.policy_path.read_text() == original
    assert service.approve(cp.ws, actor="bob", job_id=job).state == "awaiting_approval"
    event = [e for e in service.iter_audit(cp.ws) if e.action == "policy.set"][-1]
    assert event.actor == "root" and service.verify_audit(cp.ws).ok
