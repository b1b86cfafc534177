"""Attestation primitives: Ed25519 keys, in-toto Statements, DSSE envelopes."""

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

__all__ = [
    "INTOTO_PAYLOAD_TYPE",
    "STATEMENT_TYPE",
    "Envelope",
    "PrivateKey",
    "PublicKey",
    "Signature",
    "canonical_json",
    "generate_key",
    "load_private_key",
    "load_public_key_file",
    "pae",
    "sign_statement",
    "statement",
    "verify_envelope",
]
