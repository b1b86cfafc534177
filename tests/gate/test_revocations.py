"""Withdrawing a pass: the job is revoked, and the serving side stops accepting its model.

Review of 2026-12-08 (serving side): an attestation stayed valid forever; a pass found wrong
after the gate could not be withdrawn short of rotating the attestation key.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftguard.attest import generate_key, load_public_key_file
from ftguard.cli import main
from ftguard.control import service
from ftguard.errors import BadInputError, ConflictError, PermissionDeniedError, VerificationError
from ftguard.gate import check_deployment, issue_revocations, read_revocations
from tests.control.conftest import Env
from tests.integrations._jobs import passed_job

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@SQLITE
def test_a_revoked_pass_no_longer_verifies_and_nothing_brings_it_back(
    cp: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job, adapter, attestation = passed_job(cp)
    base = adapter.parent / "model"
    key = cp.ws.attestation_pub_path
    trusted = load_public_key_file(key)
    before = read_revocations(service.revocation_list(cp.ws), trusted)
    assert before.revoked == {}
    assert check_deployment(adapter, attestation, key, base_model=base, revocations=before).ok

    with pytest.raises(BadInputError, match="reason"):
        service.revoke_pass(cp.ws, actor="sec", job_id=job, reason="  ")
    with pytest.raises(PermissionDeniedError):
        service.revoke_pass(cp.ws, actor="bob", job_id=job, reason="an approver may not")
    service.revoke_pass(cp.ws, actor="sec", job_id=job, reason="answers leak customer data")
    assert service.get_job(cp.ws, job).state == "revoked"
    assert service.verify_audit(cp.ws).ok

    listed = tmp_path / "revocations.json"
    assert main(["revocations", "--out", str(listed)]) == 0
    revoked = read_revocations(listed, trusted)
    assert revoked.revoked[job]["revoked_by"] == "sec"
    report = check_deployment(adapter, attestation, key, base_model=base, revocations=revoked)
    assert not report.ok and "revoked" in report.checks["attestation"].detail
    assert "answers leak customer data" in report.reasons[0]
    capsys.readouterr()
    args = ["verify-deployment", str(adapter), "--attestation", str(attestation)]
    args += ["--trusted-key", str(key), "--base-model", str(base)]
    assert main(args) == 0  # without the list, the attestation alone still verifies
    assert main([*args, "--revocations", str(listed)]) == 6
    assert "revoked" in capsys.readouterr().err

    # Final: no decision, override or deployment brings the job back.
    with pytest.raises(ConflictError):
        service.decide_gate(cp.ws, actor="sec", job_id=job)
    with pytest.raises(ConflictError):
        service.deploy_job(cp.ws, actor="alice", job_id=job)
    with pytest.raises(ConflictError):
        service.revoke_pass(cp.ws, actor="sec", job_id=job, reason="twice")
    assert service.get_job(cp.ws, job).state == "revoked"


def test_a_revocation_list_must_be_signed_by_the_trusted_key_over_its_own_content(
    tmp_path: Path,
) -> None:
    trusted, other = generate_key(), generate_key()
    entries = [{"job_id": "job-0123456789", "revoked_at": "t", "revoked_by": "sec", "reason": "r"}]
    signed = issue_revocations(entries, key=trusted, audit_head={"seq": 3, "hash": "0" * 64})
    assert read_revocations(signed, trusted.public).reason_for("job-0123456789")
    assert read_revocations(signed, trusted.public).reason_for("job-9999999999") is None
    with pytest.raises(VerificationError):
        read_revocations(issue_revocations(entries, key=other, audit_head=None), trusted.public)
    # An entry dropped from a signed list no longer matches its signature.
    document = json.loads(signed.model_dump_json())
    import base64

    statement = json.loads(base64.b64decode(document["payload"]))
    statement["predicate"]["revoked"] = []
    document["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(document))
    with pytest.raises(VerificationError):
        read_revocations(forged, trusted.public)
    (tmp_path / "junk.json").write_text("not json")
    with pytest.raises(VerificationError):
        read_revocations(tmp_path / "junk.json", trusted.public)
