"""Withdrawn passes: the signed list a serving side checks attestations against.

A security reviewer revokes a job's pass (``ftguard revoke``) when something learned after the
gate (a report from production, a trigger found later, a base model withdrawn upstream) means
its model must no longer be served. The team server refuses a revoked job's attestation at
once; a serving side that verifies offline reads the list :func:`issue_revocations` signs
with the same attestation key as the attestations (``ftguard revocations --out FILE``), and
``verify-deployment --revocations FILE`` refuses an attestation of a job it names.

The list names the audit head it was made at; publish a new one after every revocation. A
verifier given an older list does not know of later revocations, as with any revocation list:
refresh it as often as the serving side re-verifies.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ftguard._files import read_regular_file
from ftguard.attest import (
    Envelope,
    PrivateKey,
    PublicKey,
    canonical_json,
    sign_statement,
    statement,
    verify_envelope,
)
from ftguard.errors import VerificationError

__all__ = ["REVOCATIONS_PREDICATE", "Revocations", "issue_revocations", "read_revocations"]

REVOCATIONS_PREDICATE = "https://ftguard.dev/revocations/v1"
SUBJECT_NAME = "ftguard-revocations"


class Revocations(BaseModel):
    """A verified revocation list: the revoked job ids, each with when, by whom and why."""

    revoked: dict[str, dict[str, str]]
    audit_head: dict[str, Any] | None = None
    keyid: str

    @classmethod
    def of(cls, entries: list[Any], *, audit_head: Any = None, keyid: str) -> Revocations:
        """The list's entries by job id.

        Raises:
            VerificationError: An entry without a job id.

        """
        revoked: dict[str, dict[str, str]] = {}
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("job_id"), str):
                raise VerificationError("the revocation list holds an entry without a job id")
            revoked[entry["job_id"]] = {k: str(v) for k, v in entry.items()}
        head = audit_head if isinstance(audit_head, dict) else None
        return cls(revoked=revoked, audit_head=head, keyid=keyid)

    def reason_for(self, job_id: str | None) -> str | None:
        """Why ``job_id``'s pass was revoked (None: it was not)."""
        entry = self.revoked.get(job_id or "")
        if entry is None:
            return None
        return (
            f"job {job_id}'s pass was revoked at {entry.get('revoked_at')} by "
            f"{entry.get('revoked_by')}: {entry.get('reason')}"
        )


def issue_revocations(
    revoked: list[dict[str, Any]], *, key: PrivateKey, audit_head: dict[str, Any] | None
) -> Envelope:
    """Sign the list of revoked passes (a DSSE envelope over an in-toto Statement)."""
    predicate = {"revoked": revoked, "audit_head": audit_head}
    digest = hashlib.sha256(canonical_json(predicate)).hexdigest()
    subject = [{"name": SUBJECT_NAME, "digest": {"sha256": digest}}]
    return sign_statement(statement(subject, REVOCATIONS_PREDICATE, predicate), key)


def read_revocations(source: str | Path | Envelope, trusted_key: PublicKey) -> Revocations:
    """A revocation list, verified against the trusted attestation key.

    Raises:
        VerificationError: Not signed by that key, not a revocation list, or malformed.
        BadInputError: The file cannot be read.

    """
    if isinstance(source, Envelope):
        envelope = source
    else:
        data = read_regular_file(Path(source), what="revocation list", max_bytes=64 << 20)
        try:
            envelope = Envelope.model_validate_json(data)
        except ValueError as exc:
            raise VerificationError(f"{source} is not a signed revocation list") from exc
    stmt, signer = verify_envelope(
        envelope, {trusted_key.keyid: trusted_key}, predicate_type=REVOCATIONS_PREDICATE
    )
    predicate = stmt.get("predicate") or {}
    subject = stmt.get("subject") or []
    digest = hashlib.sha256(canonical_json(predicate)).hexdigest()
    if len(subject) != 1 or (subject[0].get("digest") or {}).get("sha256") != digest:
        raise VerificationError("the revocation list's subject is not its own content")
    return Revocations.of(
        list(predicate.get("revoked") or []),
        audit_head=predicate.get("audit_head"),
        keyid=signer.keyid,
    )
