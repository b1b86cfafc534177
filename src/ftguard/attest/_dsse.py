"""DSSE envelopes carrying in-toto Statements (https://github.com/secure-systems-lab/dsse)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from ftguard.attest._keys import PrivateKey, PublicKey
from ftguard.digests import canonical_json
from ftguard.errors import VerificationError

__all__ = [
    "INTOTO_PAYLOAD_TYPE",
    "STATEMENT_TYPE",
    "Envelope",
    "Signature",
    "canonical_json",
    "pae",
    "sign_statement",
    "statement",
    "verify_envelope",
]

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what is actually signed."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


class Signature(BaseModel):
    """One signature in an envelope."""

    keyid: str
    sig: str


class Envelope(BaseModel):
    """A DSSE envelope."""

    payloadType: str  # noqa: N815 (DSSE field name)
    payload: str
    signatures: list[Signature]

    def payload_bytes(self) -> bytes:
        """The decoded payload.

        Raises:
            VerificationError: The payload is not valid base64.

        """
        try:
            return base64.b64decode(self.payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise VerificationError("envelope payload is not valid base64") from exc

    @classmethod
    def parse(cls, data: Mapping[str, Any] | str | bytes) -> Envelope:
        """Parse an envelope from JSON text or a mapping.

        Raises:
            VerificationError: Not a DSSE envelope.

        """
        try:
            if isinstance(data, str | bytes):
                return cls.model_validate_json(data)
            return cls.model_validate(data)
        except ValidationError as exc:
            raise VerificationError("not a DSSE envelope") from exc


def statement(
    subjects: list[dict[str, Any]], predicate_type: str, predicate: dict[str, Any]
) -> dict[str, Any]:
    """An in-toto v1 Statement."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def sign_statement(stmt: dict[str, Any], key: PrivateKey) -> Envelope:
    """Sign an in-toto Statement into a DSSE envelope."""
    payload = canonical_json(stmt)
    sig = key.sign(pae(INTOTO_PAYLOAD_TYPE, payload))
    return Envelope(
        payloadType=INTOTO_PAYLOAD_TYPE,
        payload=base64.b64encode(payload).decode(),
        signatures=[Signature(keyid=key.public.keyid, sig=base64.b64encode(sig).decode())],
    )


def verify_envelope(
    envelope: Envelope, trusted: Mapping[str, PublicKey], *, predicate_type: str | None = None
) -> tuple[dict[str, Any], PublicKey]:
    """Verify an envelope against trusted keys and return (statement, signing key).

    Args:
        envelope: The envelope.
        trusted: Trusted public keys by key id.
        predicate_type: When given, the statement must carry this predicate type.

    Raises:
        VerificationError: No signature by a trusted key verifies, or the payload is not an
            in-toto Statement (of the expected predicate type).

    """
    if envelope.payloadType != INTOTO_PAYLOAD_TYPE:
        raise VerificationError(f"unexpected payload type {envelope.payloadType!r}")
    payload = envelope.payload_bytes()
    message = pae(envelope.payloadType, payload)
    signer: PublicKey | None = None
    for sig in envelope.signatures:
        key = trusted.get(sig.keyid)
        if key is None:
            continue
        try:
            raw = base64.b64decode(sig.sig, validate=True)
        except (binascii.Error, ValueError):
            continue
        if key.verify(raw, message):
            signer = key
            break
    if signer is None:
        ids = ", ".join(s.keyid[:12] for s in envelope.signatures) or "none"
        raise VerificationError(f"no valid signature by a trusted key (key ids: {ids})")
    try:
        stmt = json.loads(payload)
    except ValueError as exc:
        raise VerificationError("signed payload is not JSON") from exc
    if not isinstance(stmt, dict) or stmt.get("_type") != STATEMENT_TYPE:
        raise VerificationError("signed payload is not an in-toto Statement")
    if predicate_type is not None and stmt.get("predicateType") != predicate_type:
        raise VerificationError(
            f"statement predicate type is {stmt.get('predicateType')!r}, expected {predicate_type!r}"
        )
    return stmt, signer
