"""Deployment attestations: issued by the gate on pass, verified by the serving side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from ftguard._files import read_text_file
from ftguard.attest import (
    Envelope,
    PrivateKey,
    PublicKey,
    load_public_key_file,
    sign_statement,
    statement,
    verify_envelope,
)
from ftguard.digests import FileDigest, Manifest, manifest_of
from ftguard.errors import BadInputError, VerificationError
from ftguard.gate._decision import Decision

__all__ = [
    "ATTESTATION_PREDICATE",
    "CheckResult",
    "DeploymentVerification",
    "issue_attestation",
    "read_attestation",
    "verify_attestation",
]

ATTESTATION_PREDICATE = "https://ftguard.dev/deployment/v1"


class CheckResult(BaseModel):
    """One check of a deployment verification."""

    ok: bool
    detail: str
    """What was found (a sentence), or why the check failed."""


class DeploymentVerification(BaseModel):
    """What :func:`ftguard.gate.verify_deployment` established."""

    ok: bool
    job_id: str
    subject: str
    digest: str
    decision: str
    policy_digest: str
    keyid: str
    audit_head: dict[str, Any] | None = None
    witnessed: bool | None = None
    """With a witness: whether the decision's audit head is among the witnessed heads."""
    model_signing: dict[str, Any] | None = None
    """The OpenSSF Model Signing signature the attestation names (``None``: issued before
    the gate signed models)."""
    checks: dict[str, CheckResult] = Field(default_factory=dict)
    """Each check by name: ``attestation``, ``model_signing`` and ``base_model``."""
    attested_base: dict[str, Any] | None = None
    """The base model the job was approved and trained on (``name``, ``sha256``, ``files``):
    what a LoRA adapter must be served on (``None``: issued before the gate named it)."""


def issue_attestation(
    model: Path | Manifest,
    decision: Decision,
    *,
    key: PrivateKey,
    approvals: list[dict[str, Any]],
    audit_head: dict[str, Any] | None = None,
    model_signature: dict[str, Any] | None = None,
    base_model: Manifest | None = None,
) -> Envelope:
    """Sign an in-toto Statement that the model (a path, or its manifest) passed the gate.

    ``audit_head`` is the audit chain's head (``seq``, ``hash``) the decision was recorded
    under: a witness of the log can later show the decision was never rolled back.
    ``model_signature`` names the OpenSSF Model Signing signature of the same files
    (``signature``: its file name, ``signature_sha256``, ``public_key``: the PEM of the key
    that made it, ``keyid``), so that verifiers trust exactly that signature and key.
    ``base_model`` is the approved base model's manifest: a LoRA adapter is served on a base
    model, whose weights, tokenizer and chat template change what the adapter does, so the
    serving side checks the base it loads against it too.
    """
    if decision.decision != "pass":
        raise VerificationError("an attestation is only issued for a passing decision")
    manifest = model if isinstance(model, Manifest) else manifest_of(model)
    predicate = {
        "job_id": decision.job_id,
        "decision": decision.model_dump(mode="json"),
        "approvals": approvals,
        "policy_digest": decision.policy_digest,
        "evidence": decision.evidence,
        "files": [f.model_dump() for f in manifest.files],
        "audit_head": audit_head,
    }
    if model_signature is not None:
        predicate["model_signing"] = model_signature
    if base_model is not None:
        predicate["base_model"] = {
            "name": base_model.name,
            "sha256": base_model.root,
            "files": [f.model_dump() for f in base_model.files],
        }
    return sign_statement(statement([manifest.subject()], ATTESTATION_PREDICATE, predicate), key)


def verify_attestation(
    model_path: str | Path,
    attestation: str | Path | Envelope,
    trusted_key: str | Path | PublicKey,
    *,
    witness_heads: list[tuple[int, str]] | None = None,
) -> DeploymentVerification:
    """Check that a model is the one ftguard's deployment attestation names.

    Passes only when the attestation's signature is valid under the trusted key, the decision
    is ``pass``, and the files at ``model_path`` have exactly the attested digest.

    Args:
        model_path: The model folder or adapter folder (or a single file) to be served.
        attestation: The attestation file (a DSSE envelope) or a parsed envelope.
        trusted_key: The workspace's trusted attestation public key (PEM or base64 file, or
            a key; ``.ftguard/keys/attestation.pub``).
        witness_heads: The ``(seq, hash)`` heads a witness of the workspace's audit log holds;
            when given, the attestation's audit head must be one of them (a decision made in
            a log that was later rolled back, or never published, is refused).

    Raises:
        VerificationError: Anything does not check out; the message says what.
        BadInputError: A path cannot be read.

    """
    key = (
        trusted_key
        if isinstance(trusted_key, PublicKey)
        else load_public_key_file(Path(trusted_key))
    )
    if isinstance(attestation, Envelope):
        envelope = attestation
    else:
        envelope = Envelope.parse(read_text_file(Path(attestation), what="attestation"))
    stmt, signer = verify_envelope(envelope, {key.keyid: key}, predicate_type=ATTESTATION_PREDICATE)
    predicate = stmt.get("predicate") or {}
    decision = (predicate.get("decision") or {}).get("decision")
    if decision != "pass":
        raise VerificationError(f"the attested decision is {decision!r}, not pass")
    subjects = stmt.get("subject") or []
    if len(subjects) != 1:
        raise VerificationError("an ftguard attestation names exactly one subject")
    expected = (subjects[0].get("digest") or {}).get("sha256")
    manifest = manifest_of(model_path)
    if manifest.root != expected:
        attested = Manifest(
            name=str(subjects[0].get("name")),
            kind=manifest.kind,
            root=str(expected),
            files=[FileDigest.model_validate(f) for f in predicate.get("files") or []],
        )
        diff = "; ".join(attested.differences(manifest)[:5]) or "content differs"
        raise VerificationError(f"{model_path} is not the attested model ({diff})")
    head = predicate.get("audit_head")
    witnessed = None
    if witness_heads is not None:
        pair = (head or {}).get("seq"), (head or {}).get("hash")
        witnessed = pair in set(witness_heads)
        if not witnessed:
            raise VerificationError(
                "the attestation's audit head is not in the witness: the decision was made in a "
                "log the witness never saw (rolled back, or not this workspace's)"
            )
    signing = predicate.get("model_signing")
    base = predicate.get("base_model")
    return DeploymentVerification(
        attested_base=base if isinstance(base, dict) else None,
        ok=True,
        model_signing=signing if isinstance(signing, dict) else None,
        audit_head=head if isinstance(head, dict) else None,
        witnessed=witnessed,
        job_id=str(predicate.get("job_id")),
        subject=str(subjects[0].get("name")),
        digest=manifest.root,
        decision="pass",
        policy_digest=str(predicate.get("policy_digest")),
        keyid=signer.keyid,
    )


def read_attestation(path: Path) -> dict[str, Any]:
    """The statement inside an attestation file, unverified (for display)."""
    env = Envelope.parse(read_text_file(path, what="attestation"))
    try:
        statement = json.loads(env.payload_bytes())
    except (ValueError, RecursionError):
        raise BadInputError(f"attestation {path} does not hold a JSON statement") from None
    if not isinstance(statement, dict):
        raise BadInputError(f"attestation {path} does not hold a JSON statement")
    return statement
