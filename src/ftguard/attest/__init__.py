"""Attestation primitives: keys, in-toto Statements, DSSE envelopes, standard predicates.

ftguard's own keys are Ed25519 (:mod:`ftguard.attest._keys`); the standard predicates are the
SLSA Verification Summary (:func:`verification_summary`) and the in-toto Test Result
(:func:`in_toto_test_result`); models are signed in the OpenSSF Model Signing format with an EC P-256
key (:func:`sign_model`, :func:`verify_model_signature`).
"""

from __future__ import annotations

from ftguard.attest._dsse import (
    INTOTO_PAYLOAD_TYPE,
    STATEMENT_TYPE,
    Envelope,
    Signature,
    canonical_json,
    pae,
    sign_statement,
    statement,
    verify_envelope,
)
from ftguard.attest._keys import (
    PrivateKey,
    PublicKey,
    generate_key,
    load_private_key,
    load_public_key_file,
)
from ftguard.attest._model_signing import (
    MODEL_SIGNATURE_PREDICATE,
    MODEL_SIGNING_IGNORED,
    ModelSignatureCheck,
    ensure_model_signing_key,
    model_signing_keyid,
    read_model_signing_public_key,
    sign_model,
    signed_files,
    verify_model_signature,
)
from ftguard.attest._slsa import VSA_PREDICATE, resource_descriptor, rfc3339, verification_summary
from ftguard.attest._testresult import TEST_RESULT_PREDICATE, in_toto_test_result

__all__ = [
    "INTOTO_PAYLOAD_TYPE",
    "MODEL_SIGNATURE_PREDICATE",
    "MODEL_SIGNING_IGNORED",
    "STATEMENT_TYPE",
    "TEST_RESULT_PREDICATE",
    "VSA_PREDICATE",
    "Envelope",
    "ModelSignatureCheck",
    "PrivateKey",
    "PublicKey",
    "Signature",
    "canonical_json",
    "ensure_model_signing_key",
    "generate_key",
    "load_private_key",
    "load_public_key_file",
    "model_signing_keyid",
    "pae",
    "read_model_signing_public_key",
    "resource_descriptor",
    "rfc3339",
    "sign_model",
    "sign_statement",
    "signed_files",
    "statement",
    "in_toto_test_result",
    "verification_summary",
    "verify_envelope",
    "verify_model_signature",
]
