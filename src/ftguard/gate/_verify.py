"""The serving side's check: the attestation, the OpenSSF Model Signing signature, the base.

A model may be served only when all of these hold:

- ``attestation``: ftguard's deployment attestation is signed by the trusted attestation key,
  records a pass, and names exactly the files being served (and, with a witness, an audit head
  the witness holds);
- ``model_signing``: the ``model_signing`` signature the attestation names verifies with
  ``model_signing`` itself, by the EC key the attestation names, over the same files; the
  signature file is the very one the gate issued (its SHA-256 is in the attestation);
- ``base_model``: for a LoRA adapter, the base model it is served on (the folder given, or
  the one its ``adapter_config.json`` names) is the approved one the attestation names,
  tokenizer and chat template included; a folder the adapter's config names must be it too;
- ``servable``: nothing in the files makes a server load more than the gate evaluated
  (:func:`ftguard.gate.serving_hazards`: custom code, an adapter's own tokenizer, a base named
  by hub id, hard links).

Any of them missing, malformed or signed by another key fails closed. :func:`check_deployment`
reports every check; :func:`verify_deployment` raises on the first failure.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ftguard._files import read_regular_file
from ftguard.attest import (
    Envelope,
    PublicKey,
    read_model_signing_public_key,
    verify_model_signature,
)
from ftguard.digests import FileDigest, Manifest, manifest_of
from ftguard.errors import BadInputError, VerificationError
from ftguard.gate._attestation import CheckResult, DeploymentVerification, verify_attestation
from ftguard.gate._hazards import ADAPTER_CONFIG, adapter_base_problem, serving_hazards
from ftguard.gate._revocations import Revocations

__all__ = [
    "MODEL_SIGNATURE_FILENAME",
    "DeploymentReport",
    "check_deployment",
    "verify_deployment",
]

MODEL_SIGNATURE_FILENAME = "model.sig"
"""The gate writes the model's signature beside the attestation under this name."""


class DeploymentReport(BaseModel):
    """Every check of a deployment verification; ``ok`` only when all of them passed."""

    ok: bool
    model: str
    checks: dict[str, CheckResult]
    reasons: list[str]
    """The failed checks' details, in check order."""
    verification: DeploymentVerification | None = None
    """What the attestation established (``None`` when it did not verify)."""


def _default_signature(attestation: str | Path | Envelope) -> Path | None:
    if isinstance(attestation, Envelope):
        return None
    return Path(attestation).parent / MODEL_SIGNATURE_FILENAME


def _model_signing_check(
    model_path: str | Path,
    attested: dict[str, Any] | None,
    signature: Path | None,
    given_key: Path | None,
    *,
    require: bool,
) -> CheckResult:
    """Verify the model signature against what the (verified) attestation names.

    Raises:
        VerificationError: Anything does not check out.

    """
    if attested is None:
        return _legacy(
            require,
            "the attestation names no model_signing signature (issued before the gate signed "
            "models)",
            "a legacy attestation names no signature",
        )
    attested_pem = read_model_signing_public_key(
        str(attested.get("public_key") or "").encode(), where="key in the attestation"
    )
    if given_key is not None:
        given = read_model_signing_public_key(
            read_regular_file(given_key, what="model-signing public key", max_bytes=1 << 16)
        )
        if given != attested_pem:
            raise VerificationError(
                "the model-signing key given is not the one the attestation names"
            )
    if signature is None:
        raise VerificationError("no model signature given (--model-signature)")
    if not signature.is_file():
        raise VerificationError(f"no model signature at {signature}")
    data = read_regular_file(signature, what="model signature", max_bytes=64 << 20)
    if hashlib.sha256(data).hexdigest() != attested.get("signature_sha256"):
        raise VerificationError(
            f"{signature} is not the model signature the gate issued with this attestation"
        )
    check = verify_model_signature(model_path, signature, attested_pem)
    return CheckResult(
        ok=True,
        detail=f"model_signing signature over {check.files} file(s) verifies with the "
        f"attested EC key {check.keyid[:12]}",
    )


def _legacy(require: bool, missing: str, skipped: str) -> CheckResult:
    """A check an attestation issued before it existed cannot make: refused unless allowed.

    Raises:
        VerificationError: ``require`` (no --allow-legacy-attestation).

    """
    if require:
        raise VerificationError(f"{missing}; refusing without --allow-legacy-attestation")
    return CheckResult(ok=True, detail=f"skipped: {skipped}")


def _base_model_check(
    model_path: str | Path,
    attested: dict[str, Any] | None,
    base_model: Path | None,
    *,
    require: bool,
    follow_adapter_config: bool,
) -> CheckResult:
    """Check the base model a LoRA adapter is served on against the attested one.

    A full model folder carries its own tokenizer and chat template, all attested with it; an
    adapter does not, so the base it runs on is checked too: the folder given, else the one
    its ``adapter_config.json`` names when that is a folder here.

    Raises:
        VerificationError: The base is missing, another one, or not attested.

    """
    adapter_config = Path(model_path) / ADAPTER_CONFIG
    if not adapter_config.is_file():
        return CheckResult(ok=True, detail="not needed: a full model, attested whole")
    if attested is None:
        return _legacy(
            require,
            "the model is a LoRA adapter and the attestation names no base model (issued "
            "before the gate named it)",
            "a legacy attestation names no base model",
        )
    named = _named_base(adapter_config)
    base = base_model or (named if follow_adapter_config else None)
    expected = str(attested.get("sha256"))
    if base is None:
        raise VerificationError(
            f"the model is a LoRA adapter, served on a base model (approved: sha256:"
            f"{expected[:16]}) that is not a folder here: name the folder the server loads "
            "with --base-model, so that its weights, tokenizer and chat template are checked"
        )
    if follow_adapter_config and named is not None:
        if named.resolve() != base.resolve():
            # A loader that follows the adapter's config loads this one, whatever was given.
            _check_base(named, attested, expected)
    elif not _names_given_base(adapter_config, base):
        problem = adapter_base_problem(Path(model_path), expected, read_named=False)
        if problem:
            raise VerificationError(problem)
    return _check_base(base, attested, expected)


def _names_given_base(adapter_config: Path, base: Path) -> bool:
    """Whether the adapter's config names the very folder given as its base."""
    named = _named_text(adapter_config)
    return named is not None and os.path.normpath(named) in (
        os.path.normpath(str(base)),
        str(base.resolve()),
    )


def _check_base(base: Path, attested: dict[str, Any], expected: str) -> CheckResult:
    """The base folder ``base`` is the attested one.

    Raises:
        VerificationError: It is not.

    """
    manifest = manifest_of(base)
    if manifest.root != expected:
        approved = Manifest(
            name=str(attested.get("name")),
            kind=manifest.kind,
            root=expected,
            files=[FileDigest.model_validate(f) for f in attested.get("files") or []],
        )
        diff = "; ".join(approved.differences(manifest)[:5]) or "content differs"
        raise VerificationError(f"the base model at {base} is not the approved one ({diff})")
    return CheckResult(
        ok=True, detail=f"the base model at {base} is the approved one (sha256:{expected[:16]})"
    )


def _servable_check(model_path: str | Path) -> CheckResult:
    try:
        hazards = serving_hazards(model_path)
    except BadInputError as exc:
        return CheckResult(ok=False, detail=f"not checked: {exc.message}")
    if hazards:
        return CheckResult(ok=False, detail="; ".join(hazards))
    return CheckResult(
        ok=True,
        detail="no custom code, own tokenizer of an adapter, base named by hub id or hard link",
    )


def _named_text(adapter_config: Path) -> str | None:
    """The base an adapter's config names, as written (None: none)."""
    try:
        config = json.loads(
            read_regular_file(adapter_config, what="adapter config", max_bytes=1 << 20)
        )
    except ValueError:
        return None
    named = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    return named if isinstance(named, str) and named else None


def _named_base(adapter_config: Path) -> Path | None:
    """The local folder an adapter's config names as its base, if it is one."""
    named = _named_text(adapter_config)
    path = Path(named) if named else None
    return path if path is not None and path.is_absolute() and path.is_dir() else None


def check_deployment(
    model_path: str | Path,
    attestation: str | Path | Envelope,
    trusted_key: str | Path | PublicKey,
    *,
    witness_heads: list[tuple[int, str]] | None = None,
    model_signature: str | Path | None = None,
    model_signing_key: str | Path | None = None,
    allow_legacy_attestation: bool = False,
    base_model: str | Path | None = None,
    follow_adapter_config: bool = True,
    revocations: Revocations | None = None,
) -> DeploymentReport:
    """Run every check of a deployment and report each; never raises for a failed check.

    Args:
        model_path: The model folder or adapter folder (or a single file) to be served.
        attestation: ftguard's attestation file (a DSSE envelope), or a parsed envelope.
        trusted_key: The workspace's attestation public key (``keys/attestation.pub``).
        witness_heads: A witness's ``(seq, hash)`` heads; the decision's head must be one.
        model_signature: The ``model_signing`` signature (default: ``model.sig`` beside the
            attestation file).
        model_signing_key: The published model-signing public key (``keys/model-signing.pub``);
            optional, since the trusted attestation names it; when given it must be that key.
        allow_legacy_attestation: Accept an attestation issued before the gate signed models
            (it names no signature) or named the base model; one that names them always
            needs them.
        base_model: The base model folder a LoRA adapter is served on (default: the folder
            its ``adapter_config.json`` names, when it is one here); checked against the
            attested base model. Not used for a full model.
        follow_adapter_config: Without ``base_model``, check the folder the adapter's config
            names (False: a service that reads only inside its storage roots requires
            ``base_model``).
        revocations: A verified revocation list (:func:`ftguard.gate.read_revocations`); an
            attestation of a job it names fails.

    Raises:
        BadInputError: A given file cannot be read (not a failed check: bad input).

    """
    checks: dict[str, CheckResult] = {}
    verification: DeploymentVerification | None = None
    try:
        verified = verify_attestation(
            model_path, attestation, trusted_key, witness_heads=witness_heads
        )
        revoked = revocations.reason_for(verified.job_id) if revocations else None
        if revoked:
            raise VerificationError(revoked)
        verification = verified
        checks["attestation"] = CheckResult(
            ok=True,
            detail=f"job {verification.job_id} passed the gate for sha256:"
            f"{verification.digest[:16]} (key {verification.keyid[:12]})",
        )
    except VerificationError as exc:
        checks["attestation"] = CheckResult(ok=False, detail=exc.message)
    signature = Path(model_signature) if model_signature else _default_signature(attestation)
    if verification is None:
        checks["model_signing"] = CheckResult(
            ok=False,
            detail="not checked: the attestation, which names the trusted signature and key, "
            "did not verify",
        )
    else:
        try:
            checks["model_signing"] = _model_signing_check(
                model_path,
                verification.model_signing,
                signature,
                Path(model_signing_key) if model_signing_key else None,
                require=not allow_legacy_attestation,
            )
        except VerificationError as exc:
            checks["model_signing"] = CheckResult(ok=False, detail=exc.message)
        try:
            checks["base_model"] = _base_model_check(
                model_path,
                verification.attested_base,
                Path(base_model) if base_model else None,
                require=not allow_legacy_attestation,
                follow_adapter_config=follow_adapter_config,
            )
        except VerificationError as exc:
            checks["base_model"] = CheckResult(ok=False, detail=exc.message)
    checks["servable"] = _servable_check(model_path)
    if verification is not None:
        verification.checks = dict(checks)
        verification.ok = all(c.ok for c in checks.values())
    reasons = [c.detail for c in checks.values() if not c.ok]
    return DeploymentReport(
        ok=not reasons,
        model=str(model_path),
        checks=checks,
        reasons=reasons,
        verification=verification,
    )


def verify_deployment(
    model_path: str | Path,
    attestation: str | Path | Envelope,
    trusted_key: str | Path | PublicKey,
    *,
    witness_heads: list[tuple[int, str]] | None = None,
    model_signature: str | Path | None = None,
    model_signing_key: str | Path | None = None,
    allow_legacy_attestation: bool = False,
    base_model: str | Path | None = None,
    revocations: Revocations | None = None,
) -> DeploymentVerification:
    """Check, before serving, that a model is the one the gate attested and signed.

    The arguments are those of :func:`check_deployment`.

    Raises:
        VerificationError: A check failed; the message is the first failed check's.
        BadInputError: A path cannot be read.

    """
    report = check_deployment(
        model_path,
        attestation,
        trusted_key,
        witness_heads=witness_heads,
        model_signature=model_signature,
        model_signing_key=model_signing_key,
        allow_legacy_attestation=allow_legacy_attestation,
        base_model=base_model,
        revocations=revocations,
    )
    if not report.ok or report.verification is None:
        raise VerificationError(report.reasons[0])
    return report.verification
