"""``POST /api/v1/verify``: the serving side's check as allow or deny, for authenticated callers."""

from __future__ import annotations

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
