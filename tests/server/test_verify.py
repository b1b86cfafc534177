"""``POST /api/v1/verify``: the serving side's check as allow or deny, for authenticated callers."""

from __future__ import annotations

from ftguard.attest import Envelope
from ftguard.control import service
from tests.integrations._jobs import passed_job
from tests.server.conftest import Server


def test_verify_allows_the_attested_model_and_denies_it_once_changed(server: Server) -> None:
    cp = server.cp
    job, adapter, attestation = passed_job(cp)
    model = f"data/{adapter.relative_to(cp.root).as_posix()}"
    base = f"data/{(adapter.parent / 'model').relative_to(cp.root).as_posix()}"
    for reference in (job, f"data/{attestation.relative_to(cp.root).as_posix()}"):
        answer = server.post(
            "/api/v1/verify",
            "erin",
            json={"model": model, "attestation": reference, "base_model": base},
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["allowed"] is True and body["reasons"] == [] and body["job_id"] == job
        assert set(body["checks"]) == {"attestation", "model_signing", "base_model", "servable"}
    # An adapter without the base it is served on is denied: the server does not follow the
    # path in its adapter_config.json.
    answer = server.post("/api/v1/verify", "erin", json={"model": model, "attestation": job})
    assert answer.json()["allowed"] is False and "base" in answer.json()["reasons"][0]
    before = server.head_seq()
    (adapter / "adapter_model.safetensors").write_bytes(b"weights" * 9 + b"weightz")
    answer = server.post(
        "/api/v1/verify", "erin", json={"model": model, "attestation": job, "base_model": base}
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["allowed"] is False and body["job_id"] is None
    assert "not the attested model (changed: adapter_model.safetensors)" in body["reasons"][0]
    assert server.head_seq() == before  # a read: nothing is appended


def test_verify_needs_a_caller_and_reads_only_storage_roots(server: Server) -> None:
    cp = server.cp
    job = cp.approved()
    body = {"model": "data/job/model", "attestation": job}
    assert server.post("/api/v1/verify", json=body).status_code == 401
    answer = server.post("/api/v1/verify", "bob", json=body)
    assert answer.status_code == 200
    assert answer.json()["allowed"] is False
    assert "has not passed the gate" in answer.json()["reasons"][0]
    outside = server.post("/api/v1/verify", "bob", json={"model": "/etc", "attestation": job})
    assert outside.status_code == 403
    unknown = server.post(
        "/api/v1/verify", "bob", json={"model": "data/job/model", "attestation": "job-0000000000"}
    )
    assert unknown.status_code == 404
    extra = server.post("/api/v1/verify", "bob", json={**body, "trusted_key": "mine"})
    assert extra.status_code == 422
    assert service.verify_audit(cp.ws).ok


def test_a_revoked_pass_is_refused_by_the_server_at_once(server: Server) -> None:
    """A security reviewer revokes a pass over the API: the server's /verify denies the model
    and its attestation route withdraws the file at once; its signed list names the job."""
    from ftguard.gate import read_revocations

    cp = server.cp
    job, adapter, attestation = passed_job(cp)
    model = f"data/{adapter.relative_to(cp.root).as_posix()}"
    base = f"data/{(adapter.parent / 'model').relative_to(cp.root).as_posix()}"
    body = {"model": model, "attestation": job, "base_model": base}
    assert server.post("/api/v1/verify", "erin", json=body).json()["allowed"] is True
    refused = server.post(f"/api/v1/jobs/{job}/revoke", "alice", json={"reason": "mine"})
    assert refused.status_code == 403
    revoked = server.post(f"/api/v1/jobs/{job}/revoke", "sec", json={"reason": "leaks data"})
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    for reference in (job, f"data/{attestation.relative_to(cp.root).as_posix()}"):
        answer = server.post("/api/v1/verify", "erin", json=body | {"attestation": reference})
        assert answer.json()["allowed"] is False and "revoked" in answer.json()["reasons"][0]
    assert server.get(f"/api/v1/jobs/{job}/attestation", "alice").status_code == 404
    listed = server.get("/api/v1/revocations", "erin")
    assert listed.status_code == 200
    signed = read_revocations(
        Envelope.model_validate(listed.json()), cp.ws.attestation_public_key()
    )
    assert "leaks data" in (signed.reason_for(job) or "")
