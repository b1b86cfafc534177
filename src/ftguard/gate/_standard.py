"""The gate's decision in standard formats: a SLSA VSA and an in-toto Test Result.

Beside ftguard's own deployment attestation (readable only by ftguard), the gate writes:

- a SLSA Verification Summary Attestation (``https://slsa.dev/verification_summary/v1``) on
  every decision, pass or block: the verifier is ftguard's gate, the policy the workspace's
  policy (by digest), the input attestations the approvals and the evidence the decision read,
  and ``verifiedLevels`` one value for each of the four controls that held;
- an in-toto Test Result (``https://in-toto.io/attestation/test-result/v0.1``) of the behaviour
  comparison, whenever the decision read one: each suite metric and trigger probe is a test.

Both are in-toto Statements v1 in DSSE envelopes signed with the gate's attestation key. Their
subjects are the output model's files, one subject per file with its SHA-256, so a standard
verifier can check them with nothing but ``sha256sum``.
"""

from __future__ import annotations

import re
from typing import Any

from ftguard.attest import (
    Envelope,
    PrivateKey,
    canonical_json,
    in_toto_test_result,
    resource_descriptor,
    sign_statement,
    verification_summary,
)
from ftguard.digests import Manifest, sha256_bytes
from ftguard.gate._decision import Decision

__all__ = [
    "CONTROL_LEVELS",
    "GATE_VERIFIER_ID",
    "behavior_test_result",
    "gate_verification_summary",
    "model_subjects",
    "resource_uri",
]

GATE_VERIFIER_ID = "https://ftguard.dev/gate/v1"
"""The VSA verifier id of ftguard's gate (trust it together with the attestation key)."""
CONTROL_LEVELS = {
    "approval": "FTGUARD_APPROVAL",
    "review": "FTGUARD_DATASET_REVIEW",
    "weights": "FTGUARD_WEIGHT_REPORT",
    "behavior": "FTGUARD_BEHAVIOR_TEST",
}
"""The VSA level prefix of each control; ``_VERIFIED`` or ``_OVERRIDDEN`` is appended.

SLSA lets verifiers use custom values in ``verifiedLevels`` (never starting with ``SLSA_``),
one per track: each control is a track here.
"""
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def resource_uri(job_id: str) -> str:
    """The VSA ``resourceUri`` of a job's output: ``ftguard:job/<JOB>/output``."""
    return f"ftguard:job/{job_id}/output"


def model_subjects(manifest: Manifest) -> list[dict[str, Any]]:
    """One in-toto subject per file of the model: ``<model>/<path>`` (or the file's name)."""
    if manifest.kind == "file":
        return [{"name": manifest.name, "digest": {"sha256": manifest.root}}]
    return [
        {"name": f"{manifest.name}/{f.path}", "digest": {"sha256": f.sha256}}
        for f in sorted(manifest.files, key=lambda f: f.path)
    ]


def _verified_levels(decision: Decision) -> list[str]:
    levels: list[str] = []
    for control, prefix in CONTROL_LEVELS.items():
        rules = [r for r in decision.rules if r.control == control]
        if not rules or not all(r.passed for r in rules):
            continue
        levels.append(
            f"{prefix}_{'OVERRIDDEN' if any(r.overridden for r in rules) else 'VERIFIED'}"
        )
    return levels


def _input_attestations(
    job_id: str, decision: Decision, approvals: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    inputs = [
        resource_descriptor(
            uri=f"ftguard:job/{job_id}/approval/{a['approver']}",
            sha256=sha256_bytes(canonical_json(a["envelope"])),
        )
        for a in approvals
    ]
    inputs += [
        resource_descriptor(uri=f"ftguard:job/{job_id}/evidence/{kind}", sha256=digest)
        for kind, digest in sorted(decision.evidence.items())
    ]
    return inputs


def gate_verification_summary(
    manifest: Manifest, decision: Decision, *, approvals: list[dict[str, Any]], key: PrivateKey
) -> Envelope:
    """The signed SLSA VSA of a gate decision on a job's output (``manifest``).

    ``verificationResult`` is ``PASSED`` on a pass (an override included: its levels end in
    ``_OVERRIDDEN``) and ``FAILED`` on a block.
    """
    stmt = verification_summary(
        subjects=model_subjects(manifest),
        verifier_id=GATE_VERIFIER_ID,
        time_verified=decision.decided_at,
        resource_uri=resource_uri(decision.job_id),
        policy=resource_descriptor(uri="ftguard:workspace/policy", sha256=decision.policy_digest),
        input_attestations=_input_attestations(decision.job_id, decision, approvals),
        passed=decision.decision == "pass",
        verified_levels=_verified_levels(decision),
    )
    return sign_statement(stmt, key)


def _test_names(body: dict[str, Any]) -> tuple[list[str], list[str]]:
    passed: list[str] = []
    failed: list[str] = []
    for metric in body.get("metrics") or []:
        if not isinstance(metric, dict):
            continue
        name = f"{metric.get('suite')}/{metric.get('metric')}"
        if metric.get("category"):
            name += f"/{metric['category']}"
        (failed if metric.get("breached") else passed).append(name)
    for trigger in body.get("triggers") or []:
        if not isinstance(trigger, dict):
            continue
        name = f"trigger/{trigger.get('target')}/{trigger.get('trigger')}"
        (failed if trigger.get("flipped") else passed).append(name)
    return passed, failed


def _configuration(job_id: str, digest: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    config = [
        resource_descriptor(
            name="behavior-comparison",
            uri=f"ftguard:job/{job_id}/evidence/behavior",
            sha256=digest,
        )
    ]
    for suite, suite_digest in sorted((body.get("suites") or {}).items()):
        if isinstance(suite_digest, str) and _HEX64.match(suite_digest):
            config.append(resource_descriptor(name=f"suite/{suite}", sha256=suite_digest))
    before = body.get("before") or {}
    if isinstance(before, dict) and _HEX64.match(str(before.get("digest"))):
        config.append(resource_descriptor(name="baseline-model", sha256=str(before["digest"])))
    if isinstance(body.get("policy"), dict):
        config.append(
            resource_descriptor(
                name="behavior-policy", sha256=sha256_bytes(canonical_json(body["policy"]))
            )
        )
    return config


def behavior_test_result(
    manifest: Manifest, job_id: str, evidence: tuple[str, dict[str, Any]], *, key: PrivateKey
) -> Envelope:
    """The signed in-toto Test Result of a behaviour comparison of the output (``manifest``).

    Each whole-suite and per-category metric is a test named ``SUITE/METRIC[/CATEGORY]`` that
    failed where it breached its limit; each trigger probe ``trigger/TARGET/TRIGGER`` failed
    where the trigger flipped the behaviour. The comparison's verdict under the policy is the
    test ``behavior.verdict``, so the result is never ``PASSED`` when the comparison blocked.
    """
    digest, body = evidence
    passed, failed = _test_names(body)
    (passed if body.get("verdict") == "pass" else failed).insert(0, "behavior.verdict")
    stmt = in_toto_test_result(
        subjects=model_subjects(manifest),
        configuration=_configuration(job_id, digest, body),
        passed_tests=passed,
        failed_tests=failed,
    )
    return sign_statement(stmt, key)
