"""Ed25519 keys: creation, private-key files (0600), public-key encoding and key ids."""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ftguard._files import read_regular_file
from ftguard.errors import BadInputError, NotFoundError, PermissionDeniedError

__all__ = ["PrivateKey", "PublicKey", "generate_key", "load_private_key", "load_public_key_file"]


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key; :attr:`keyid` is the SHA-256 of its raw 32 bytes."""

    raw: bytes

    @property
    def keyid(self) -> str:
        """Stable identifier of the key (hex SHA-256 of the raw public key)."""
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def b64(self) -> str:
        """The raw key in standard base64 (how it is stored and exchanged)."""
        return base64.b64encode(self.raw).decode()

    @classmethod
    def from_b64(cls, text: str) -> PublicKey:
        """Decode a base64 raw public key.

        Raises:
            BadInputError: Not a 32-byte base64 key.

        """
        try:
            raw = base64.b64decode(text, validate=True)
        except ValueError as exc:
            raise BadInputError("public key is not valid base64") from exc
        if len(raw) != 32:
            raise BadInputError("an Ed25519 public key has 32 bytes")
        return cls(raw)

    def pem(self) -> str:
        """The key as a PEM ``PUBLIC KEY`` block (SubjectPublicKeyInfo)."""
        key = Ed25519PublicKey.from_public_bytes(self.raw)
        return key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def verify(self, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` is this key's signature over ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
        except InvalidSignature:
            return False
        return True


class PrivateKey:
    """An Ed25519 private key held in memory."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @property
    def public(self) -> PublicKey:
        """The matching public key."""
        raw = self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return PublicKey(raw)

    def sign(self, message: bytes) -> bytes:
        """Sign ``message``."""
        return self._key.sign(message)

    def save(self, path: Path) -> None:
        """Write the key as unencrypted PKCS#8 PEM, readable by its owner only (0600).

        Refuses to overwrite an existing file.
        """
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError as exc:
            raise BadInputError(f"key file already exists: {path}") from exc
        except OSError as exc:
            raise BadInputError(f"cannot write the key {path}: {exc.strerror or exc}") from exc
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        os.chmod(path, 0o600)


def generate_key() -> PrivateKey:
    """A fresh random Ed25519 key."""
    return PrivateKey(Ed25519PrivateKey.generate())


def load_private_key(path: Path) -> PrivateKey:
    """Load a private key file written by :meth:`PrivateKey.save`.

    Raises:
        NotFoundError: No key file at ``path``.
        PermissionDeniedError: The file is readable by others than its owner.
        BadInputError: The file is not an Ed25519 private key.

    """
    if not path.is_file():
        raise NotFoundError(f"no private key at {path}")
    mode = path.stat().st_mode & 0o077
    if mode:
        raise PermissionDeniedError(
            f"private key {path} is readable by others (mode {oct(path.stat().st_mode & 0o777)}); "
            f"run: chmod 600 {path}"
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise BadInputError(f"{path} is not a PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise BadInputError(f"{path} is not an Ed25519 private key")
    return PrivateKey(key)


def load_public_key_file(path: Path) -> PublicKey:
    """Load a PEM public key or a base64 raw key from a file.

    Raises:
        NotFoundError: No such file.
        BadInputError: Not an Ed25519 public key.

    """
    if not path.exists():
        raise NotFoundError(f"no public key file at {path}")
    data = read_regular_file(path, what="public key file", max_bytes=1 << 16)
    if b"BEGIN PUBLIC KEY" in data:
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise BadInputError(f"{path} is not a PEM public key") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise BadInputError(f"{path} is not an Ed25519 public key")
        return PublicKey(
            key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )
    return PublicKey.from_b64(data.decode("ascii", "replace").strip())
