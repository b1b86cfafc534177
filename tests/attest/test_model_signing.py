"""OpenSSF Model Signing with the workspace's EC key: real ``model_signing`` both ways."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from model_signing import verifying

from ftguard.attest import (
    ensure_model_signing_key,
    generate_key,
    model_signing_keyid,
    sign_model,
    signed_files,
    verify_model_signature,
)
from ftguard.digests import manifest_of
from ftguard.errors import BadInputError, PermissionDeniedError, VerificationError


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path, bytes]:
    private, public = (
        tmp_path / "keys" / "model-signing.key",
        tmp_path / "keys" / "model-signing.pub",
    )
    return private, public, ensure_model_signing_key(private, public)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "sub" / "model.safetensors").write_bytes(os.urandom(4096))
    (folder / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    return folder


def test_key_is_p256_owner_only_stable_and_published(
    keys: tuple[Path, Path, bytes], tmp_path: Path
) -> None:
    private, public, pem = keys
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(private.parent.stat().st_mode) == 0o700
    assert public.read_bytes() == pem
    loaded = serialization.load_pem_public_key(pem)
    assert isinstance(loaded, ec.EllipticCurvePublicKey) and loaded.curve.name == "secp256r1"
    assert ensure_model_signing_key(private, public) == pem  # never replaced
    os.chmod(private, 0o640)
    with pytest.raises(PermissionDeniedError, match="chmod 600"):
        ensure_model_signing_key(private, public)
    # model_signing has no Ed25519: an Ed25519 key in its place is refused, not used.
    ed = tmp_path / "ed.key"
    generate_key().save(ed)
    with pytest.raises(BadInputError, match="not an EC"):
        ensure_model_signing_key(ed, tmp_path / "ed.pub")


def test_folder_signature_verifies_with_model_signing_and_catches_tampering(
    keys: tuple[Path, Path, bytes], model: Path, tmp_path: Path
) -> None:
    private, public, pem = keys
    sig = tmp_path / "out" / "model.sig"
    digest = sign_model(model, sig, private_key=private, expected=manifest_of(model))
    assert set(signed_files(sig.read_bytes())) == {"config.json", "sub/model.safetensors"}
    # The stock verifier, with the published key file.
    verifying.Config().use_elliptic_key_verifier(public_key=public).verify(model, sig)
    check = verify_model_signature(model, sig, pem)
    assert check.keyid == model_signing_keyid(pem) and check.files == 2
    assert check.signature_sha256 == digest
    # Another EC key: refused.
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    other_pem = other.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(VerificationError, match="does not verify"):
        verify_model_signature(model, sig, other_pem)
    # An added file, then a changed byte: refused.
    (model / "extra.bin").write_bytes(b"x")
    with pytest.raises(VerificationError, match="does not verify"):
        verify_model_signature(model, sig, pem)
    (model / "extra.bin").unlink()
    data = bytearray((model / "sub" / "model.safetensors").read_bytes())
    data[100] ^= 1
    (model / "sub" / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(VerificationError, match="does not verify"):
        verify_model_signature(model, sig, pem)
    # A garbled signature file: refused with one message.
    sig.write_text('{"dsseEnvelope": {"payload": "!!"}}')
    with pytest.raises(VerificationError, match="not a model_signing bundle"):
        verify_model_signature(model, sig, pem)


def test_single_file_model(keys: tuple[Path, Path, bytes], tmp_path: Path) -> None:
    private, _, pem = keys
    weights = tmp_path / "adapter.safetensors"
    weights.write_bytes(os.urandom(1000))
    sig = tmp_path / "adapter.sig"
    sign_model(weights, sig, private_key=private, expected=manifest_of(weights))
    assert verify_model_signature(weights, sig, pem).files == 1


def test_no_signature_when_the_files_are_not_the_attested_ones(
    keys: tuple[Path, Path, bytes], model: Path, tmp_path: Path
) -> None:
    private, _, _ = keys
    attested = manifest_of(model)
    (model / "config.json").write_text('{"model_type": "swapped"}')
    sig = tmp_path / "model.sig"
    with pytest.raises(VerificationError, match=r"changed while it was signed \(config.json\)"):
        sign_model(model, sig, private_key=private, expected=attested)
    assert not sig.exists() and not list(tmp_path.glob("*.tmp"))
