"""Read attestations without ftguard: published JSON Schemas, sigstore's and in-toto's models.

Each attestation is checked layer by layer by code that is not ftguard's: the DSSE envelope by
its schema and ``sigstore_models``' Envelope model, the signature by ``cryptography`` over the
DSSE pre-authentication encoding built here, the Statement by its schema and by
``in_toto_attestation``'s Statement v1 protobuf (and its ``validate()``), each predicate by its
schema and its ``in_toto_attestation`` protobuf.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jsonschema
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf import json_format
from in_toto_attestation.predicates.test_result.v0 import test_result_pb2
from in_toto_attestation.predicates.vsa.v1 import vsa_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from sigstore_models.intoto import Envelope as SigstoreEnvelope

SCHEMAS = Path(__file__).parent / "schemas"
VSA = "https://slsa.dev/verification_summary/v1"
TEST_RESULT = "https://in-toto.io/attestation/test-result/v0.1"


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 PAE, from the DSSE protocol document (not ftguard's implementation)."""
    kind = payload_type.encode()
    return b" ".join(
        [b"DSSEv1", str(len(kind)).encode(), kind, str(len(payload)).encode(), payload]
    )


def open_envelope(document: dict[str, Any], trusted_raw_ed25519: bytes) -> dict[str, Any]:
    """The Statement inside a DSSE envelope, after checking every layer independently."""
    validator("dsse-envelope").validate(document)
    envelope = SigstoreEnvelope.from_dict(document)
    Ed25519PublicKey.from_public_bytes(trusted_raw_ed25519).verify(
        envelope.signatures[0].sig, _pae(envelope.payload_type, envelope.payload)
    )
    statement = json.loads(envelope.payload)
    validator("in-toto-statement-v1").validate(statement)
    proto = json_format.ParseDict(statement, statement_pb2.Statement())
    Statement.copy_from_pb(proto).validate()
    assert proto.type == "https://in-toto.io/Statement/v1"
    return statement


def parse_vsa(predicate: dict[str, Any]) -> vsa_pb2.VerificationSummary:
    """Schema-check a VSA predicate and parse it strictly with in-toto's protobuf.

    in_toto_attestation 0.9.3 declares ``verifiedLevels`` a single string although the SLSA
    specification makes it an array (in-toto/attestation issue 425, fix in PR 429): the field
    is checked by the schema and left out of the protobuf parse; every other field must parse.
    """
    validator("slsa-verification-summary-v1").validate(predicate)
    rest = {k: v for k, v in predicate.items() if k != "verifiedLevels"}
    return json_format.ParseDict(rest, vsa_pb2.VerificationSummary())


def parse_test_result(predicate: dict[str, Any]) -> test_result_pb2.TestResult:
    """Schema-check a Test Result predicate and parse it strictly with in-toto's protobuf."""
    validator("in-toto-test-result-v0.1").validate(predicate)
    return json_format.ParseDict(predicate, test_result_pb2.TestResult())


def raw_key(public_key_b64_file: Path) -> bytes:
    return base64.b64decode(public_key_b64_file.read_text().strip())
