"""The SLSA VSA and in-toto Test Result builders, against the published schemas."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
from cryptography.exceptions import InvalidSignature

from ftguard.attest import (
    TEST_RESULT_PREDICATE,
    VSA_PREDICATE,
    generate_key,
    in_toto_test_result,
    resource_descriptor,
    sign_statement,
    verification_summary,
)
from tests.attest._formats import open_envelope, parse_test_result, parse_vsa, validator

SUBJECT = [{"name": "model/weights.safetensors", "digest": {"sha256": "a" * 64}}]


def _vsa(
    passed: bool = True, levels: tuple[str, ...] = ("FTGUARD_APPROVAL_VERIFIED",)
) -> dict[str, Any]:
    return verification_summary(
        subjects=SUBJECT,
        verifier_id="https://ftguard.dev/gate/v1",
        time_verified="2026-03-01T12:00:00.123456+00:00",
        resource_uri="ftguard:job/j-1/output",
        policy=resource_descriptor(uri="ftguard:workspace/policy", sha256="b" * 64),
        input_attestations=[
            resource_descriptor(uri="ftguard:job/j-1/evidence/review", sha256="c" * 64)
        ],
        passed=passed,
        verified_levels=levels,
    )


def test_signed_vsa_reads_with_independent_tools() -> None:
    key = generate_key()
    statement = open_envelope(sign_statement(_vsa(), key).model_dump(), key.public.raw)
    assert statement["predicateType"] == VSA_PREDICATE
    summary = parse_vsa(statement["predicate"])
    assert summary.time_verified.ToJsonString() == "2026-03-01T12:00:00.123456Z"
    assert summary.verification_result == "PASSED"
    failed = _vsa(passed=False)["predicate"]
    parse_vsa(failed)
    assert failed["verifiedLevels"] == ["FAILED"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("verificationResult", "OK"),
        ("verifiedLevels", ["SLSA_FTGUARD_APPROVAL"]),  # SLSA_ is reserved
        ("verifiedLevels", ["FAILED"]),  # a pass cannot record FAILED
        ("policy", {"digest": {"sha256": "b" * 64}}),  # the policy needs a uri
        ("timeVerified", "yesterday"),
        ("inputAttestations", [{"uri": "ftguard:x"}]),  # an input attestation needs a digest
    ],
)
def test_vsa_schema_rejects_what_the_spec_forbids(field: str, value: object) -> None:
    predicate = copy.deepcopy(_vsa()["predicate"])
    predicate[field] = value
    with pytest.raises(jsonschema.ValidationError):
        validator("slsa-verification-summary-v1").validate(predicate)


def test_builders_refuse_malformed_input() -> None:
    with pytest.raises(ValueError, match="SLSA"):
        _vsa(levels=("SLSA_CUSTOM",))
    with pytest.raises(ValueError, match="digest"):
        in_toto_test_result(
            subjects=[{"name": "x"}], configuration=[{"uri": "a:b"}], passed_tests=[]
        )
    with pytest.raises(ValueError, match="configuration"):
        in_toto_test_result(subjects=SUBJECT, configuration=[], passed_tests=[])


@pytest.mark.parametrize(
    ("warned", "failed", "expected"),
    [((), (), "PASSED"), (("t2",), (), "WARNED"), (("t2",), ("t3",), "FAILED")],
)
def test_test_result_reads_with_independent_tools(
    warned: tuple[str, ...], failed: tuple[str, ...], expected: str
) -> None:
    key = generate_key()
    stmt = in_toto_test_result(
        subjects=SUBJECT,
        configuration=[resource_descriptor(name="suite/refusal", sha256="d" * 64)],
        passed_tests=["t1"],
        warned_tests=warned,
        failed_tests=failed,
    )
    statement = open_envelope(sign_statement(stmt, key).model_dump(), key.public.raw)
    assert statement["predicateType"] == TEST_RESULT_PREDICATE
    result = parse_test_result(statement["predicate"])
    assert result.result == expected and list(result.failed_tests) == list(failed)


def test_test_result_schema_rejects_a_pass_with_failures() -> None:
    predicate = in_toto_test_result(
        subjects=SUBJECT, configuration=[{"uri": "ftguard:x"}], passed_tests=["t1"]
    )["predicate"]
    predicate["failedTests"] = ["t9"]
    with pytest.raises(jsonschema.ValidationError):
        validator("in-toto-test-result-v0.1").validate(predicate)
    predicate.update(result="maybe", failedTests=[])
    with pytest.raises(jsonschema.ValidationError):
        validator("in-toto-test-result-v0.1").validate(predicate)


def test_a_forged_signature_is_refused_by_the_independent_reader() -> None:
    key = generate_key()
    envelope = sign_statement(_vsa(), key).model_dump()
    with pytest.raises(InvalidSignature):
        open_envelope(envelope, generate_key().public.raw)
