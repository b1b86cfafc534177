"""OpenSSF Model Signing (sigstore's ``model_signing``) with a workspace EC P-256 key.

The gate signs the output model in the format of the OpenSSF Model Signing project, so a serving
stack that already checks ``model_signing`` signatures checks ftguard's output unchanged::

    model_signing verify key MODEL --signature model.sig --public_key model-signing.pub

``model_signing`` signs with elliptic-curve keys only (P-256, P-384, P-521: the curves of
Sigstore's protobuf specs); ftguard's own keys are Ed25519, which it refuses. The gate therefore
holds a second key, EC P-256, beside the attestation key (``keys/model-signing.key``, a PKCS#8
PEM file readable by its owner only, created on the first passing gate) and publishes its public
half (``keys/model-signing.pub``, PEM). The Ed25519-signed deployment attestation names that
public key and the SHA-256 of the signature file, so a verifier who trusts the attestation key
trusts exactly this signature and this key, and nothing an attacker substitutes.

``model_signing`` hashes per file with SHA-256 and ignores the git files (``.git/``,
``.gitattributes``, ``.gitignore``, ``.github/``) as its verifier does; ftguard's attestation
covers those files too. After signing, the signed file list is compared with the manifest the
gate attests: a file that changed between the two hashes voids the signature.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel

from ftguard._files import read_regular_file
from ftguard.digests import Manifest, sha256_bytes
from ftguard.errors import (
    BadInputError,
    PermissionDeniedError,
    VerificationError,
)

__all__ = [
    "MODEL_SIGNATURE_PREDICATE",
    "MODEL_SIGNING_IGNORED",
    "ModelSignatureCheck",
    "ensure_model_signing_key",
    "model_signing_keyid",
    "read_model_signing_public_key",
    "sign_model",
    "signed_files",
    "verify_model_signature",
]

MODEL_SIGNATURE_PREDICATE = "https://model_signing/signature/v1.0"
"""The predicate type inside a ``model_signing`` v1.0 signature bundle."""
MODEL_SIGNING_IGNORED = (".git", ".gitattributes", ".github", ".gitignore")
"""Top-level paths that ``model_signing`` leaves out of a folder's signature by default."""
_MAX_SIGNATURE_BYTES = 64 << 20


def _import_model_signing() -> Any:
    """``model_signing`` (imported when used: it pulls in sigstore and protobuf)."""
    import model_signing.hashing
    import model_signing.signing
    import model_signing.verifying

    return model_signing


def model_signing_keyid(public_pem: bytes) -> str:
    """The key hint ``model_signing`` records: the SHA-256 (hex) of the public key's PEM."""
    return hashlib.sha256(public_pem).hexdigest()


def _public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_owner_only(path: Path) -> None:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise PermissionDeniedError(
            f"private key {path} is readable by others (mode {oct(mode)}); run: chmod 600 {path}"
        )


def ensure_model_signing_key(private_path: Path, public_path: Path) -> bytes:
    """Create the workspace's EC P-256 model-signing key where it is missing; its public PEM.

    The private key is written once, owner-only (0600, in a 0700 folder, never overwritten),
    complete or not at all; two processes creating it at once agree on the first one linked.

    Raises:
        PermissionDeniedError: The private key file is readable by others.
        BadInputError: The file is not an EC private key on a curve ``model_signing`` accepts.

    """
    if not private_path.exists():
        fresh = ec.generate_private_key(ec.SECP256R1())
        pem = fresh.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        private_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = private_path.with_name(f".{private_path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        try:
            os.link(tmp, private_path)  # atomic, and never over an existing key
        except FileExistsError:
            pass  # another process won the race: use its key
        finally:
            tmp.unlink(missing_ok=True)
    _check_owner_only(private_path)
    try:
        key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise BadInputError(f"{private_path} is not a PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in (
        "secp256r1",
        "secp384r1",
        "secp521r1",
    ):
        raise BadInputError(f"{private_path} is not an EC P-256/P-384/P-521 private key")
    public = _public_pem(key.public_key())
    if not public_path.exists() or public_path.read_bytes() != public:
        tmp = public_path.with_name(public_path.name + f".{os.getpid()}.tmp")
        tmp.write_bytes(public)
        os.replace(tmp, public_path)
    return public


def read_model_signing_public_key(data: bytes, *, where: str = "public key") -> bytes:
    """Check that ``data`` is a PEM EC public key ``model_signing`` accepts; its canonical PEM.

    Raises:
        VerificationError: Not such a key.

    """
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise VerificationError(f"the model-signing {where} is not a PEM public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in (
        "secp256r1",
        "secp384r1",
        "secp521r1",
    ):
        raise VerificationError(f"the model-signing {where} is not an EC P-256/384/521 key")
    return _public_pem(key)


def _bundle_statement(data: bytes) -> dict[str, Any]:
    """The (unverified) in-toto statement inside a ``model_signing`` Sigstore bundle."""
    try:
        bundle = json.loads(data)
        payload = base64.b64decode(bundle["dsseEnvelope"]["payload"], validate=True)
        stmt = json.loads(payload)
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError) as exc:
        raise VerificationError("the model signature is not a model_signing bundle") from exc
    if not isinstance(stmt, dict) or stmt.get("predicateType") != MODEL_SIGNATURE_PREDICATE:
        raise VerificationError(
            f"the model signature's predicate is not {MODEL_SIGNATURE_PREDICATE!r}"
        )
    return stmt


def signed_files(signature: bytes) -> dict[str, str]:
    """The files a signature names, path -> SHA-256 (unverified; ``.`` for a single file).

    Raises:
        VerificationError: Not a ``model_signing`` v1.0 bundle hashed with SHA-256.

    """
    stmt = _bundle_statement(signature)
    out: dict[str, str] = {}
    for resource in (stmt.get("predicate") or {}).get("resources") or []:
        if not isinstance(resource, dict) or resource.get("algorithm") != "sha256":
            raise VerificationError("the model signature holds a resource not hashed with sha256")
        out[str(resource.get("name"))] = str(resource.get("digest"))
    return out


def _expected_files(manifest: Manifest) -> dict[str, str]:
    """What ``model_signing`` signs of a manifest's files (git files left out, as it does)."""
    if manifest.kind == "file":
        return {".": manifest.root}
    return {
        f.path: f.sha256
        for f in manifest.files
        if f.path.split("/", 1)[0] not in MODEL_SIGNING_IGNORED
    }


def sign_model(
    model_path: Path, signature_path: Path, *, private_key: Path, expected: Manifest
) -> str:
    """Sign a model with ``model_signing`` (key-based, SHA-256 per file); the signature's SHA-256.

    The signature is written next to, not inside, the model (a file inside would change the
    model's digest). It is kept only if it names exactly the files and digests of ``expected``.

    Raises:
        VerificationError: The model changed while it was signed.
        PermissionDeniedError: The key file is readable by others.

    """
    ms = _import_model_signing()
    _check_owner_only(private_key)
    tmp = signature_path.with_name(signature_path.name + f".{os.getpid()}.tmp")
    signature_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        hashing_config = ms.hashing.Config().use_file_serialization(hashing_algorithm="sha256")
        config = ms.signing.Config().set_hashing_config(hashing_config)
        config.use_elliptic_key_signer(private_key=private_key).sign(model_path, tmp)
        data = tmp.read_bytes()
        signed = signed_files(data)
        wanted = _expected_files(expected)
        if signed != wanted:
            changed = sorted(set(signed.items()) ^ set(wanted.items()))
            names = ", ".join(sorted({name for name, _ in changed})[:5])
            raise VerificationError(
                f"{model_path} changed while it was signed ({names}): no signature issued"
            )
        os.replace(tmp, signature_path)
    finally:
        tmp.unlink(missing_ok=True)
    return sha256_bytes(data)


class ModelSignatureCheck(BaseModel):
    """What :func:`verify_model_signature` established."""

    ok: bool
    keyid: str
    """The SHA-256 of the public key's PEM (``model_signing``'s key hint)."""
    signature_sha256: str
    files: int
    """Files the signature covers."""


def verify_model_signature(
    model_path: str | Path, signature: str | Path, public_key_pem: bytes
) -> ModelSignatureCheck:
    """Verify a ``model_signing`` signature of a model with ``model_signing`` itself.

    Raises:
        VerificationError: The signature is missing, malformed, by another key, or the files
            differ from the signed ones.

    """
    ms = _import_model_signing()
    sig_path = Path(signature)
    if not sig_path.is_file():
        raise VerificationError(f"no model signature at {sig_path}")
    data = read_regular_file(sig_path, what="model signature", max_bytes=_MAX_SIGNATURE_BYTES)
    pem = read_model_signing_public_key(public_key_pem)
    files = signed_files(data)
    model = Path(model_path)
    if not model.exists():
        raise BadInputError(f"no such file or folder: {model}")
    # model_signing prints warnings on stdout; keep stdout for ftguard's own (JSON) output.
    noise = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="ftguard-ms-") as folder:
        key_file = Path(folder) / "model-signing.pub"
        key_file.write_bytes(pem)
        try:
            with contextlib.redirect_stdout(noise):
                ms.verifying.Config().use_elliptic_key_verifier(public_key=key_file).verify(
                    model, sig_path
                )
        except Exception as exc:  # any failure of the verifier fails the check
            detail = str(exc).split("\n", 1)[0][:300] or type(exc).__name__
            raise VerificationError(f"the model signature does not verify: {detail}") from exc
    return ModelSignatureCheck(
        ok=True,
        keyid=model_signing_keyid(pem),
        signature_sha256=sha256_bytes(data),
        files=len(files),
    )
