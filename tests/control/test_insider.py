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
from ftguard.digests import sha256_bytes
from ftguard.errors import (
    BadInputError,
    ConflictError,
    PermissionDeniedError,
    VerificationError,
)
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


def test_the_review_reads_a_copy_made_while_hashing(
    cp: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dataset swapped while the scanners run (finding 3 of the 2026-12-07 review).

    The scanners read the file in several passes and the digest used to be taken afterwards:
    a writer who put a benign file in place for the scanners and the submitted one back before
    the hash got a pass for data nobody reviewed. The review now reads a read-only copy made
    while hashing, checked against the submitted digest.
    """
    job = cp.submit("swapped", review=True)
    submitted = Path(service.get_job(cp.ws, job).dataset["path"])
    original = submitted.read_bytes()
    import ftguard.review

    real = ftguard.review.review_dataset
    seen: dict[str, object] = {}

    def swapped_while_scanning(path: Path, **options: object) -> object:
        submitted.write_text('{"messages": [{"role": "user", "content": "benign"}]}\n')
        try:
            seen["path"], seen["bytes"] = Path(path), Path(path).read_bytes()
            return real(path, **options)  # type: ignore[arg-type]
        finally:
            submitted.write_bytes(original)

    monkeypatch.setattr(ftguard.review, "review_dataset", swapped_while_scanning)
    review, view = service.review_job(cp.ws, actor="alice", job_id=job)
    assert isinstance(seen["path"], Path) and seen["path"].is_relative_to(cp.ws.staged_dir)
    assert seen["bytes"] == original  # what was submitted, not what the writer put in place
    assert review.dataset_path == str(submitted) and view.state == "awaiting_approval"
    # Changed before the review, the dataset is refused, the job left as it was.
    model, data, config = cp.inputs("changed")
    data.write_text(data.read_text() * 2)  # other content than the first job's (not staged)
    other = service.submit_job(
        cp.ws,
        actor="alice",
        base_model=model,
        dataset=data,
        config=config,
        purpose="customer support answers",
        prepared_by="dan",
    ).id
    data.write_text("{}\n")
    monkeypatch.setattr(ftguard.review, "review_dataset", real)
    with pytest.raises(ConflictError, match="changed since it was submitted"):
        service.review_job(cp.ws, actor="alice", job_id=other)
    assert service.get_job(cp.ws, other).state == "submitted"


def _forge(cp: Env, actor: str, action: str, job: str | None, payload: dict[str, object]) -> None:
    """Append an event signed by ``actor``'s own key, past the service layer's checks (what a
    workspace user holding the audit key could write with the Python API)."""
    from ftguard.control._audit import append_event
    from ftguard.control._workspace import now_iso

    with cp.ws.store.write() as session:
        state = chain_state(cp.ws, session)
        append_event(
            session,
            cp.ws.audit_key(),
            ts=now_iso(),
            actor=authenticate(state, actor),
            action=action,
            job_id=job,
            payload=payload,
        )


@pytest.mark.parametrize(
    ("actor", "action", "payload", "problem"),
    [
        ("alice", "job.approve", {"nonce": "n1"}, "which they requested or prepared"),
        ("dan", "job.approve", {"nonce": "n1"}, "which they requested or prepared"),
        ("alice", "review.override", {"justification": "x"}, "which they requested or prepared"),
        ("dan", "gate.override", {"justification": "x"}, "which they requested or prepared"),
        (
            "alice",
            "job.approved",
            {"from": "awaiting_approval", "to": "approved"},
            "without an approval in force",
        ),
        (
            "alice",
            "review.pass",
            {"from": "awaiting_approval", "to": "approved"},
            "review.pass cannot move job",
        ),
        ("alice", "job.cancel", {"from": "awaiting_approval", "to": "passed"}, "cannot move"),
    ],
)
def test_replay_refuses_job_events_their_author_could_not_make(
    cp: Env, actor: str, action: str, payload: dict[str, object], problem: str
) -> None:
    """Job events signed past the service layer (finding 5 of the 2026-12-07 review)."""
    job = cp.submit()
    assert service.get_job(cp.ws, job).state == "awaiting_approval"
    _forge(cp, actor, action, job, payload)
    with pytest.raises(VerificationError, match=problem), cp.ws.store.read() as session:
        chain_state(cp.ws, session)


def test_a_run_does_not_record_files_placed_in_its_output_before_it(cp: Env) -> None:
    """Finding 1 (in part) of the 2026-12-07 review: the run's end records whatever is in the
    output folder, so a folder prepared beforehand would be attested as what was trained."""
    job = cp.approved()
    planted = cp.root / "planted"
    planted.mkdir()
    (planted / "model.safetensors").write_bytes(b"not what the approved command wrote")
    with pytest.raises(BadInputError, match="already holds files"):
        service.launch(cp.ws, actor="alice", job_id=job, output=str(planted))
    a_file = cp.root / "a-file"
    a_file.write_text("x")
    with pytest.raises(BadInputError, match="not a folder"):
        service.launch(cp.ws, actor="alice", job_id=job, output=str(a_file))
    view = service.get_job(cp.ws, job)
    assert view.state == "approved" and view.run_count == 0  # nothing consumed
    new = cp.root / "new-output"  # the test's command copies the base model there
    assert service.launch(cp.ws, actor="alice", job_id=job, output=str(new)) == 0
    assert service.get_job(cp.ws, job).state == "trained"


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


def test_database_only_attacker_cannot_redirect_a_job_to_other_inputs(cp: Env) -> None:
    """Editing a job's stored manifests and paths (finding 2 of the 2026-12-07 review).

    Approval statements and remote-run tickets are built from the stored manifests and
    paths: pointed at another file with that file's digest, approvers would sign it and a
    runner would train on it. The manifests must be the chain's inputs.
    """
    job = cp.submit("job")
    other = cp.root / "unreviewed.jsonl"
    other.write_text('{"messages": [{"role": "user", "content": "x"}]}\n')
    from ftguard.digests import manifest_of

    forged = manifest_of(other).model_dump(mode="json")
    with cp.ws.store.engine.begin() as conn:
        row = conn.execute(
            text("SELECT manifests, dataset_path FROM jobs WHERE id=:j"), {"j": job}
        ).one()
        stored, path = json.loads(row[0]), row[1]
        conn.execute(
            text("UPDATE jobs SET manifests=:m, dataset_path=:p WHERE id=:j"),
            {"m": json.dumps({**stored, "dataset": forged}), "p": str(other), "j": job},
        )
    for attempt in (
        lambda: service.approval_statement(cp.ws, actor="bob", job_id=job),
        lambda: service.approve(cp.ws, actor="bob", job_id=job),
    ):
        with pytest.raises(VerificationError, match="input manifests"):
            attempt()
    # Keeping the root but changing the file list (what staging copies and checks) is caught
    # too, as is a manifest that is not JSON.
    listed = json.loads(json.dumps(stored))
    listed["dataset"]["files"][0]["sha256"] = "0" * 64
    for manifests in (json.dumps(listed), "not json"):
        with cp.ws.store.engine.begin() as conn:
            conn.execute(
                text("UPDATE jobs SET manifests=:m, dataset_path=:p WHERE id=:j"),
                {"m": manifests, "p": str(other), "j": job},
            )
        with pytest.raises(VerificationError, match="input manifests"):
            service.approve(cp.ws, actor="bob", job_id=job)
    # Put back as submitted, the honest path works.
    with cp.ws.store.engine.begin() as conn:
        conn.execute(
            text("UPDATE jobs SET manifests=:m, dataset_path=:p WHERE id=:j"),
            {"m": json.dumps(stored), "p": path, "j": job},
        )
    service.approve(cp.ws, actor="bob", job_id=job)
    assert [a["approver"] for a in service.get_job(cp.ws, job).approvals] == ["bob"]


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
        subjects = {
            "review": {"dataset": record.digests["dataset"]},
            "weights": both,
            "behavior": both,
        }
        for kind, bound in subjects.items():
            store_evidence(
                cp.ws,
                session,
                job_id=job,
                kind=kind,
                body={"verdict": "pass"},
                actor=authenticate(state, "alice"),
                payload={"subjects": bound},
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
    # Every decision checks the witness's newest head itself (finding 4 of the 2026-12-07
    # review): the approvals the rollback removed cannot be given again, nor anything else.
    for decide in (
        lambda: service.approve(cp.ws, actor="bob", job_id=job),
        lambda: service.cancel_job(cp.ws, actor="alice", job_id=job),
    ):
        with pytest.raises(VerificationError, match="rolled back"):
            decide()


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


def test_the_job_report_shows_only_evidence_the_chain_records(cp: Env) -> None:
    """Finding 10 of the 2026-12-07 review: the HTML job report listed every evidence row."""
    from ftguard.report import write_job_report

    job = cp.submit()
    forged = json.dumps({"verdict": "pass"}, sort_keys=True, separators=(",", ":"))
    import hashlib

    digest = hashlib.sha256(forged.encode()).hexdigest()
    with cp.ws.store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO evidence (job_id, kind, digest, body, created_at) "
                "VALUES (:j, 'weights', :d, :b, '2026-01-01')"
            ),
            {"j": job, "d": digest, "b": forged},
        )
    html = write_job_report(cp.ws, job, cp.root / "report").read_text(encoding="utf-8")
    assert digest[:12] not in html and not (cp.root / "report" / "weights.html").exists()
    assert f"<code>{job}</code>" in html


def test_only_the_requester_or_an_analyst_starts_a_jobs_analyses_and_gate(cp: Env) -> None:
    """Open finding of the 2026-12-07 review: every user could start the analyses (minutes to
    hours of the machine, each recorded on the job) and ask for the gate of any job."""
    service.add_user(cp.ws, actor="root", name="zoe", roles=["requester"])
    key = service.create_key(cp.ws, user="zoe")
    service.confirm_key(cp.ws, actor="root", keyid=key.keyid)
    service.add_user(cp.ws, actor="root", name="rita", roles=["runner"])
    key = service.create_key(cp.ws, user="rita")
    service.confirm_key(cp.ws, actor="root", keyid=key.keyid)

    reviewable = cp.submit("reviewable", review=True)
    trained, _ = _trained(cp)
    head = service.verify_audit(cp.ws).head_seq
    for outsider in ("zoe", "dan"):  # another team's requester; the job's data preparer
        with pytest.raises(PermissionDeniedError, match="only its requester"):
            service.review_job(cp.ws, actor=outsider, job_id=reviewable)
        with pytest.raises(PermissionDeniedError, match="only its requester"):
            service.weights_for_job(cp.ws, actor=outsider, job_id=trained)
        with pytest.raises(PermissionDeniedError, match="only its requester"):
            service.decide_gate(cp.ws, actor=outsider, job_id=trained)
    assert service.verify_audit(cp.ws).head_seq == head
    assert service.get_job(cp.ws, reviewable).state == "submitted"
    # A runner, who trains the jobs of others, may analyse them and ask for their gate.
    outcome = service.decide_gate(cp.ws, actor="rita", job_id=trained)
    assert outcome.decision.decision == "block"  # no weight report or behaviour yet


def test_no_approval_counts_until_the_named_preparer_confirms_the_dataset(cp: Env) -> None:
    """Open finding of the 2026-12-07 review: the requester names the preparer, who never
    signed anything, so "the preparer may not approve" rested on the requester's word."""
    from ftguard.digests import manifest_of

    job = cp.submit(confirm=False)
    view = service.get_job(cp.ws, job)
    assert view.state == "awaiting_approval" and view.awaits_preparer
    with pytest.raises(ConflictError, match="waits for its data preparer dan"):
        service.approve(cp.ws, actor="bob", job_id=job)
    with pytest.raises(ConflictError, match="waits for its data preparer"):
        service.approval_statement(cp.ws, actor="bob", job_id=job)
    # Nobody confirms for dan: not the requester, not an approver.
    for impostor in ("alice", "bob"):
        with pytest.raises(PermissionDeniedError, match="named dan as its preparer"):
            service.confirm_prepared(cp.ws, actor=impostor, job_id=job)
    # dan's own copy differs from what was submitted: he is told, and nothing is recorded.
    mine = cp.root / "dans-copy.jsonl"
    mine.write_text('{"messages": [{"role": "user", "content": "other"}]}\n')
    head = service.verify_audit(cp.ws).head_seq
    with pytest.raises(VerificationError, match="do not confirm it"):
        service.confirm_prepared(
            cp.ws, actor="dan", job_id=job, dataset_digest=manifest_of(mine).root
        )
    assert service.verify_audit(cp.ws).head_seq == head
    submitted = Path(view.dataset["path"])
    service.confirm_prepared(
        cp.ws, actor="dan", job_id=job, dataset_digest=manifest_of(submitted).root
    )
    assert not service.get_job(cp.ws, job).awaits_preparer
    with pytest.raises(ConflictError, match="awaits no confirmation"):
        service.confirm_prepared(cp.ws, actor="dan", job_id=job)
    service.approve(cp.ws, actor="bob", job_id=job)
    service.approve(cp.ws, actor="carol", job_id=job)
    assert service.get_job(cp.ws, job).state == "approved"
    actions = [e.action for e in service.iter_audit(cp.ws, job_id=job)]
    assert actions.index("job.prepared") < actions.index("job.approve")


def test_a_requester_who_prepares_confirms_by_submitting_and_the_policy_can_waive_it(
    cp: Env,
) -> None:
    service.add_user(cp.ws, actor="root", name="pat", roles=["requester", "data_preparer"])
    key = service.create_key(cp.ws, user="pat")
    service.confirm_key(cp.ws, actor="root", keyid=key.keyid)
    own = cp.submit("own", requester="pat", preparer="pat", confirm=False)
    service.approve(cp.ws, actor="bob", job_id=own)  # pat's submission is pat's signature
    cp.set_policy(
        cp.ws.policy_path.read_text().replace("preparer_confirms: true", "preparer_confirms: false")
    )
    waived = cp.submit("waived", confirm=False)
    assert not service.get_job(cp.ws, waived).awaits_preparer
    approved = service.approve(cp.ws, actor="bob", job_id=waived)
    assert [a["approver"] for a in approved.approvals if a["status"] == "active"] == ["bob"]


@pytest.mark.parametrize(
    ("actor", "action", "payload", "problem"),
    [
        ("bob", "job.approve", {"nonce": "n1"}, "before its data preparer confirmed"),
        ("alice", "job.prepared", {"dataset": "x"}, "which dan was named to prepare"),
        ("dan", "job.prepared", {"dataset": "0" * 64}, "confirms another dataset"),
    ],
)
def test_replay_refuses_a_preparation_or_approval_out_of_turn(
    cp: Env, actor: str, action: str, payload: dict[str, object], problem: str
) -> None:
    job = cp.submit(confirm=False)
    _forge(cp, actor, action, job, payload)
    with pytest.raises(VerificationError, match=problem), cp.ws.store.read() as session:
        chain_state(cp.ws, session)


def test_the_policy_can_require_a_runner_other_than_the_requester(cp: Env) -> None:
    """The open finding "run output not bound to the training": with
    ``run.requester_may_run: false`` the run's start and its recorded output are signed by a
    runner, never by the requester who asked for the model."""
    service.add_user(cp.ws, actor="root", name="rita", roles=["runner"])
    key = service.create_key(cp.ws, user="rita")
    service.confirm_key(cp.ws, actor="root", keyid=key.keyid)
    cp.set_policy(cp.ws.policy_path.read_text() + "run:\n  requester_may_run: false\n")
    job = cp.approved()
    with pytest.raises(PermissionDeniedError, match="runner other than the requester"):
        service.launch(cp.ws, actor="alice", job_id=job)
    assert service.get_job(cp.ws, job).state == "approved"  # nothing consumed
    # alice cannot record the end of rita's run either, even holding its token
    ticket = service.start_run(cp.ws, actor="rita", job_id=job)
    with pytest.raises(PermissionDeniedError, match="did not start the current run"):
        service.finish_run(cp.ws, actor="alice", job_id=job, token=ticket.token, exit_code=1)
    service.finish_run(cp.ws, actor="rita", job_id=job, token=ticket.token, exit_code=1)
    ends = [e for e in service.iter_audit(cp.ws, job_id=job) if e.action == "run.end"]
    assert [e.actor for e in ends] == ["rita"]


def test_replay_refuses_a_binding_made_by_a_non_admin(cp: Env) -> None:
    _forge(
        cp, "alice", "user.bind", None, {"name": "bob", "issuer": "https://idp", "subject": "me"}
    )
    with pytest.raises(VerificationError, match="without the admin role"), cp.ws.store.read() as s:
        chain_state(cp.ws, s)


def test_database_only_attacker_cannot_rewrite_a_jobs_purpose(cp: Env) -> None:
    """Review of 2026-12-08: the purpose approvers sign and the review checks the data against
    was read from the table alone, so an edited purpose was signed and reviewed against."""
    job = cp.submit("job", review=False)
    reviewable = cp.submit("second", review=False)
    with cp.ws.store.engine.begin() as conn:
        for edited in (job, reviewable):
            conn.execute(
                text("UPDATE jobs SET purpose='a purpose nobody stated' WHERE id=:j"), {"j": edited}
            )
    with pytest.raises(VerificationError, match="disagrees with the audit chain on purpose"):
        service.approve(cp.ws, actor="bob", job_id=job)
    with pytest.raises(VerificationError, match="on purpose"):
        service.review_job(cp.ws, actor="alice", job_id=reviewable)
    chain = [e for e in service.iter_audit(cp.ws, job_id=job) if e.action.startswith("job.appr")]
    assert chain == []


def test_an_approvers_rejection_is_never_overridden_as_a_reviews(cp: Env) -> None:
    """Who rejected a job came from a table column a database editor could set to "review"."""
    job = cp.submit()
    service.reject(cp.ws, actor="bob", job_id=job, reason="not this data")
    with pytest.raises(ConflictError, match="rejected by an approver"):
        service.override_review(cp.ws, actor="sec", job_id=job, justification="x")
    with cp.ws.store.engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET rejected_by='review' WHERE id=:j"), {"j": job})
    with pytest.raises(ConflictError, match="rejected by an approver"):
        service.override_review(cp.ws, actor="sec", job_id=job, justification="x")
    assert service.get_job(cp.ws, job).state == "rejected"
    # nor by an event signed past the service layer
    _forge(cp, "sec", "review.override", job, {"from": "rejected", "to": "awaiting_approval"})
    with pytest.raises(VerificationError, match="an approver rejected"), cp.ws.store.read() as s:
        chain_state(cp.ws, s)


def _runner_and_run(cp: Env) -> tuple[str, str]:
    service.add_user(cp.ws, actor="root", name="rita", roles=["runner"])
    key = service.create_key(cp.ws, user="rita")
    service.confirm_key(cp.ws, actor="root", keyid=key.keyid)
    cp.set_policy(cp.ws.policy_path.read_text() + "run:\n  requester_may_run: false\n")
    job = cp.approved()
    return job, service.start_run(cp.ws, actor="rita", job_id=job).token


def test_only_the_runs_starter_ends_it_with_the_token_the_chain_recorded(cp: Env) -> None:
    """Review of 2026-12-08: the run token's hash lived only in the table, so a database
    editor set it to a token of their own and a data preparer recorded the run's end (with
    planted output); nothing checked who ended a run."""
    job, token = _runner_and_run(cp)
    mine = "a-token-the-attacker-chose"
    with cp.ws.store.engine.begin() as conn:
        conn.execute(
            text("UPDATE jobs SET run_token_hash=:h WHERE id=:j"),
            {"h": sha256_bytes(mine.encode()), "j": job},
        )
    with pytest.raises(PermissionDeniedError, match="did not start the current run"):
        service.finish_run(cp.ws, actor="dan", job_id=job, token=mine, exit_code=1)
    with pytest.raises(VerificationError, match="does not belong"):
        service.finish_run(cp.ws, actor="rita", job_id=job, token=mine, exit_code=1)
    with pytest.raises(VerificationError, match="does not belong"):
        service.verify_running(cp.ws, job_id=job, token=mine)
    assert service.get_job(cp.ws, job).state == "running"
    service.verify_running(cp.ws, job_id=job, token=token)
    service.finish_run(cp.ws, actor="rita", job_id=job, token=token, exit_code=1)
    assert service.get_job(cp.ws, job).state == "failed"


def test_replay_refuses_a_runs_end_by_anyone_but_its_starter(cp: Env) -> None:
    job, _ = _runner_and_run(cp)
    _forge(cp, "dan", "run.end", job, {"run": 1, "exit_code": 1, "from": "running", "to": "failed"})
    with pytest.raises(VerificationError, match="that rita started"), cp.ws.store.read() as s:
        chain_state(cp.ws, s)


def test_an_analysis_reads_a_copy_made_while_hashing_not_the_submitted_base(
    cp: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review of 2026-12-08: the weight and behaviour analyses read the requester's own base
    folder, hashed before and after; swapping its bytes in between (with inotify) made a
    security reviewer sign a passing report computed on a decoy."""
    from ftguard.control import _evidence

    job, _ = _trained(cp)
    submitted = cp.root / "job" / "model" / "model.safetensors"  # as Env.inputs wrote it
    original = submitted.read_bytes()
    real = _evidence.workspace_weight_report
    seen: list[Path] = []

    def swapped_during_the_analysis(ws: object, base: Path, tuned: Path, **kw: object) -> object:
        submitted.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}   decoy")  # the attacker
        seen.append(base)
        try:
            return real(ws, base, tuned, **kw)  # type: ignore[arg-type]
        finally:
            submitted.write_bytes(original)  # and back, before the digest is checked again

    monkeypatch.setattr(_evidence, "workspace_weight_report", swapped_during_the_analysis)
    service.weights_for_job(cp.ws, actor="sec", job_id=job)
    assert cp.ws.staged_dir in seen[0].parents
    assert (seen[0] / "model.safetensors").read_bytes() == original
    assert stat.S_IMODE((seen[0] / "model.safetensors").stat().st_mode) & 0o222 == 0  # read-only


def _submitted_with_config_folder(cp: Env, script: str, command: list[str]) -> str:
    """An approved job whose config is a folder: config.yaml plus the script its command runs."""
    model, data, cfg = cp.inputs("folder-job")
    folder = cp.root / "folder-job" / "config"
    folder.mkdir()
    cfg.rename(folder / "config.yaml")
    (folder / "config.yaml").write_text("steps: 10\ncommand: " + json.dumps(command) + "\n")
    (folder / "train.py").write_text(script)
    job = service.submit_job(
        cp.ws,
        actor="alice",
        base_model=model,
        dataset=data,
        config=folder,
        purpose="customer support answers",
        prepared_by="dan",
    ).id
    service.confirm_prepared(cp.ws, actor="dan", job_id=job)
    service.override_review(cp.ws, actor="sec", job_id=job, justification="test")
    for approver in ("bob", "carol"):
        service.approve(cp.ws, actor=approver, job_id=job)
    return job


COPIES = "import shutil, sys; shutil.copytree(sys.argv[1], sys.argv[2])\n"


def test_the_approved_command_runs_no_file_outside_the_approved_inputs(cp: Env) -> None:
    """Review of 2026-12-08: the config's command was approved as text, and the script it
    named was read at run time from the requester's folder, rewritten after approval."""
    script = cp.root / "alice-code" / "train.py"
    script.parent.mkdir()
    script.write_text(COPIES)
    job = cp.approved("job", command=["python", str(script), "{base_model}", "{output}"])
    with pytest.raises(VerificationError, match="not part of the job's approved inputs"):
        service.launch(cp.ws, actor="alice", job_id=job)
    view = service.get_job(cp.ws, job)
    assert view.state == "approved" and view.run_count == 0  # nothing consumed
    # The same script in the config folder is hashed, approved and staged with the job.
    folder_job = _submitted_with_config_folder(
        cp, COPIES, ["python", "{config}/train.py", "{base_model}", "{output}"]
    )
    assert service.launch(cp.ws, actor="alice", job_id=folder_job) == 0
    assert service.get_job(cp.ws, folder_job).state == "trained"
    start = [e for e in service.iter_audit(cp.ws, job_id=folder_job) if e.action == "run.start"]
    assert start[0].payload["command"][1].startswith(str(cp.ws.staged_dir))


def test_the_approved_command_runs_in_the_runs_folder(
    cp: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review of 2026-12-08: `python -m ftguard.training` put the launcher's working folder
    first on sys.path, so a module planted there replaced the trainer."""
    planted = cp.root / "where-rita-runs"
    planted.mkdir()
    (planted / "planted_by_alice.py").write_text("raise SystemExit('planted code ran')\n")
    monkeypatch.chdir(planted)
    check = (
        "import importlib.util, os, shutil, sys; shutil.copytree(sys.argv[1], sys.argv[2]); "
        "assert importlib.util.find_spec('planted_by_alice') is None; "
        "open(os.path.join(sys.argv[2], 'cwd.txt'), 'w').write(os.getcwd())"
    )
    job = cp.approved("job", command=["python", "-c", check, "{base_model}", "{output}"])
    assert service.launch(cp.ws, actor="alice", job_id=job) == 0
    output = Path(service.get_job(cp.ws, job).output_path or "")
    assert Path((output / "cwd.txt").read_text()) == cp.ws.runs_dir / job / "1"


def test_the_gate_refuses_a_run_started_by_someone_who_may_not_run_the_job(cp: Env) -> None:
    """Review of 2026-12-08: whoever can append to the log (in local mode, every user holding
    the audit key) recorded a "bound" run of their own, with their own output, and the gate
    attested it; no check looked at who started the run."""
    from ftguard.digests import manifest_of

    cp.set_policy(cp.ws.policy_path.read_text() + "run:\n  requester_may_run: false\n")
    job = cp.approved()
    mine = cp.root / "dans-model"
    shutil.copytree(cp.root / "job" / "model", mine)
    with cp.ws.store.read() as session:
        nonces = list(chain_state(cp.ws, session).job(job).approvals)
    manifest = manifest_of(mine)
    _forge(
        cp,
        "dan",
        "run.start",
        job,
        {"from": "approved", "to": "running", "run": 1, "bound": True, "approvals": nonces},
    )
    output = {"path": str(mine), "root": manifest.root, "kind": manifest.kind}
    output["files"] = [f.model_dump() for f in manifest.files]  # type: ignore[assignment]
    _forge(
        cp,
        "dan",
        "run.end",
        job,
        {"from": "running", "to": "trained", "run": 1, "exit_code": 0, "output": output},
    )
    with cp.ws.store.engine.begin() as conn:  # the index rows, to match
        conn.execute(
            text("UPDATE jobs SET state='trained', run_count=1, output_path=:o WHERE id=:j"),
            {"o": str(mine), "j": job},
        )
        conn.execute(
            text("UPDATE approvals SET status='consumed', consumed_by_run=1 WHERE job_id=:j"),
            {"j": job},
        )
    decision = service.decide_gate(cp.ws, actor="sec", job_id=job).decision
    assert decision.decision == "block"
    runner = next(r for r in decision.rules if r.rule == "run.runner")
    assert not runner.passed and "dan, who neither requested the job" in runner.reason


def test_the_run_folder_is_new_and_private_and_code_beside_the_command_is_not_imported(
    cp: Env,
) -> None:
    """Second review of 2026-12-08: the run folder (`runs/JOB/N`, predictable) was taken as it
    was, and `python -m` / `-c` put it first on sys.path: a module planted there replaced the
    trainer (here: `shutil`, which the test command imports)."""
    job = cp.approved()
    planted = cp.ws.runs_dir / job / "1"
    planted.mkdir(parents=True)
    (planted / "shutil.py").write_text("raise SystemExit('planted code ran')\n")
    with pytest.raises(BadInputError, match="already exists and is not an empty folder"):
        service.launch(cp.ws, actor="alice", job_id=job)
    assert service.get_job(cp.ws, job).run_count == 0  # nothing consumed
    (planted / "shutil.py").unlink()
    planted.rmdir()
    assert service.launch(cp.ws, actor="alice", job_id=job) == 0
    assert (planted.stat().st_mode & 0o777) == 0o700


@pytest.mark.parametrize(
    "named",
    [
        ["{folder}"],  # a package folder run with `python FOLDER` (its __main__.py)
        ["PYTHONPATH={folder}"],  # through `env NAME=VALUE`
        ["PYTHONPATH=lib:{folder}"],  # one entry of a path list
        ["{missing}"],  # an absolute path that does not exist yet, to be created in time
        ["{escaping}"],  # a relative path that leaves the run folder, missing at the check
        ["-c", "import runpy; runpy.run_path('{folder}/__main__.py')"],  # inside code
    ],
)
def test_the_approved_command_names_no_folder_or_future_file_outside_its_inputs(
    cp: Env, named: list[str]
) -> None:
    """Reviews of 2026-12-08: each of these ran code written after the approval."""
    folder = cp.root / "alice-code"
    folder.mkdir()
    (folder / "__main__.py").write_text(COPIES)
    escaping = os.path.relpath(cp.root / "later.py", cp.ws.runs_dir / "job" / "1")
    arguments = [
        a.format(folder=folder, missing=cp.root / "later.py", escaping="../" * 8 + escaping)
        for a in named
    ]
    job = cp.approved("job", command=["python", *arguments, "{base_model}", "{output}"])
    with pytest.raises(VerificationError, match="not part of the job's approved inputs"):
        service.launch(cp.ws, actor="alice", job_id=job)


def test_an_analysis_reads_a_copy_of_the_output_made_while_hashing(
    cp: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Second review of 2026-12-08: the trained output, owned by whoever ran the job, was read
    in place; swapped while the analysis read it, the report described a decoy."""
    from ftguard.control import _evidence

    job, output = _trained(cp)
    trained = output / "model.safetensors"
    original = trained.read_bytes()
    real = _evidence.workspace_weight_report
    seen: list[Path] = []

    def swapped_during_the_analysis(ws: object, base: Path, tuned: Path, **kw: object) -> object:
        trained.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}   decoy")
        seen.append(tuned)
        try:
            return real(ws, base, tuned, **kw)  # type: ignore[arg-type]
        finally:
            trained.write_bytes(original)

    monkeypatch.setattr(_evidence, "workspace_weight_report", swapped_during_the_analysis)
    service.weights_for_job(cp.ws, actor="sec", job_id=job)
    assert cp.ws.staged_dir in seen[0].parents
    assert (seen[0] / "model.safetensors").read_bytes() == original


def test_an_admin_aborts_a_run_whose_launcher_is_gone(
    cp: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """Second review of 2026-12-08: only a run's starter ends it, with its token; a launcher
    killed before it could left the job running for good."""
    job = cp.approved()
    service.start_run(cp.ws, actor="alice", job_id=job)  # its launcher is then killed
    for who, refused in (("alice", PermissionDeniedError), ("sec", PermissionDeniedError)):
        with pytest.raises(refused, match="admin"):
            service.abort_run(cp.ws, actor=who, job_id=job, reason="launcher gone")
    assert main(["job", "abort-run", job, "--reason", "the training machine was lost"]) == 0
    assert "run aborted" in capsys.readouterr().out
    view = service.get_job(cp.ws, job)
    assert view.state == "failed" and view.output_path is None
    aborted = [e for e in service.iter_audit(cp.ws, job_id=job) if e.action == "run.abort"]
    assert aborted[0].actor == "root" and aborted[0].payload["reason"].startswith("the training")
    with pytest.raises(ConflictError, match="only a running job"):
        service.abort_run(cp.ws, actor="root", job_id=job, reason="again")
    # nor can anyone else record one past the service layer
    other = cp.approved("other")
    service.start_run(cp.ws, actor="alice", job_id=other)
    _forge(cp, "alice", "run.abort", other, {"run": 1, "from": "running", "to": "failed"})
    with pytest.raises(VerificationError, match="without the admin role"), cp.ws.store.read() as s:
        chain_state(cp.ws, s)


def test_a_security_reviewer_cannot_override_the_review_or_the_gate_of_their_own_job(
    cp: Env,
) -> None:
    """Review of 2026-12-08: the overrides checked the role only, so a user holding both the
    requester and the security reviewer roles cleared the review's block of their own job,
    and could clear its gate block too: the same separation of duties as approvals now holds,
    in the use case and on replay."""
    service.add_user(cp.ws, actor="root", name="sara", roles=["requester", "security_reviewer"])
    key = service.create_key(cp.ws, user="sara")
    service.confirm_key(cp.ws, actor="root", keyid=key.keyid)
    job = cp.submit(review=True, requester="sara")
    assert service.get_job(cp.ws, job).state == "submitted"
    with pytest.raises(PermissionDeniedError, match="separation of duties"):
        service.override_review(cp.ws, actor="sara", job_id=job, justification="mine, trust me")
    assert service.get_job(cp.ws, job).state == "submitted"
    service.override_review(cp.ws, actor="sec", job_id=job, justification="reviewed by sec")
    service.approve(cp.ws, actor="bob", job_id=job)
    service.approve(cp.ws, actor="carol", job_id=job)
    assert service.launch(cp.ws, actor="sara", job_id=job) == 0
    assert service.decide_gate(cp.ws, actor="sec", job_id=job).decision.decision == "block"
    head = service.verify_audit(cp.ws).head_seq
    with pytest.raises(PermissionDeniedError, match="separation of duties"):
        service.override(cp.ws, actor="sara", job_id=job, justification="mine, trust me")
    assert service.get_job(cp.ws, job).state == "blocked"
    assert service.verify_audit(cp.ws).head_seq == head


def test_whoever_started_the_run_cannot_override_the_gate_that_judged_its_output(cp: Env) -> None:
    """Review of 2026-12-08: with a separate runner required, a user holding the runner and
    the security reviewer roles started the run, recorded its output and then overrode the
    gate's block of that output; the overrides now exclude the run's starter too (replay)."""
    service.add_user(cp.ws, actor="root", name="rex", roles=["runner", "security_reviewer"])
    service.confirm_key(cp.ws, actor="root", keyid=service.create_key(cp.ws, user="rex").keyid)
    cp.set_policy(cp.ws.policy_path.read_text() + "run:\n  requester_may_run: false\n")
    job = cp.approved()
    ticket = service.start_run(cp.ws, actor="rex", job_id=job)
    output = cp.root / "rex-output"
    shutil.copytree(cp.root / "job" / "model", output)
    service.finish_run(
        cp.ws, actor="rex", job_id=job, token=ticket.token, exit_code=0, output_path=str(output)
    )
    assert service.decide_gate(cp.ws, actor="sec", job_id=job).decision.decision == "block"
    with pytest.raises(PermissionDeniedError, match="started the run"):
        service.override(cp.ws, actor="rex", job_id=job, justification="my run is fine")
    assert service.get_job(cp.ws, job).state == "blocked"
    _forge(cp, "rex", "gate.override", job, {"justification": "x"})
    with pytest.raises(VerificationError, match="whose run they started"), cp.ws.store.read() as s:
        chain_state(cp.ws, s)
