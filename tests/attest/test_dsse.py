from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from ftguard.attest import (
    Envelope,
    generate_key,
    load_private_key,
    load_public_key_file,
    sign_statement,
    statement,
    verify_envelope,
)
from ftguard.errors import PermissionDeniedError, VerificationError

STMT = statement([{"name": "x", "digest": {"sha256": "ab" * 32}}], "https://t/v1", {"k": 1})


def test_sign_and_verify_roundtrip() -> None:
    key = generate_key()
    env = sign_statement(STMT, key)
    stmt, signer = verify_envelope(
        env, {key.public.keyid: key.public}, predicate_type="https://t/v1"
    )
    assert stmt == STMT and signer == key.public


def test_untrusted_key_and_tampered_payload_fail() -> None:
    key, other = generate_key(), generate_key()
    env = sign_statement(STMT, key)
    with pytest.raises(VerificationError, match="no valid signature"):
        verify_envelope(env, {other.public.keyid: other.public})
    tampered = dict(STMT, predicate={"k": 2})
    forged = env.model_copy(
        update={"payload": base64.b64encode(json.dumps(tampered).encode()).decode()}
    )
    with pytest.raises(VerificationError, match="no valid signature"):
        verify_envelope(forged, {key.public.keyid: key.public})
    with pytest.raises(VerificationError, match="predicate type"):
        verify_envelope(env, {key.public.keyid: key.public}, predicate_type="https://other")
    with pytest.raises(VerificationError, match="not a DSSE envelope"):
        Envelope.parse('{"payload": 1}')


def test_private_key_file_mode(tmp_path: Path) -> None:
    key = generate_key()
    path = tmp_path / "k" / "me.key"
    key.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_private_key(path).public == key.public
    path.chmod(0o644)
    with pytest.raises(PermissionDeniedError, match="chmod 600"):
        load_private_key(path)
    pub = tmp_path / "me.pub"
    pub.write_text(key.public.pem())
    assert load_public_key_file(pub) == key.public
