"""Witnesses: every signed audit head, published outside the database.

The audit head is signed with the audit key, but whoever can write the database can still
roll the log back: delete the newest events and put an older signed head back. A witness keeps
every signed head somewhere the database's writer cannot rewrite; :func:`check_witnessed`
then finds a log that no longer extends a head it once had. The built-in witness is an
append-only JSON-lines file (``.ftguard/witness.jsonl``; put it on storage that only appends,
e.g. ``chattr +a`` or an object-storage bucket with retention); other sinks register with
:func:`witness_sink` under a URI scheme and are named in the workspace's ``config.json``
(``"witness": "SCHEME:..."``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from ftguard.attest import PublicKey
from ftguard.control._audit import head_signature_ok
from ftguard.errors import BadInputError
from ftguard.store import AuditEventRow

__all__ = [
    "FileWitness",
    "SignedHead",
    "Witness",
    "check_witnessed",
    "newest_witnessed",
    "open_witness",
    "witness_sink",
]


class SignedHead(BaseModel):
    """One published head: sequence number, hash and the audit key's signature."""

    seq: int
    hash: str
    signature: str


@runtime_checkable
class Witness(Protocol):
    """Where signed heads go, and where they are read back from."""

    def publish(self, head: SignedHead) -> None:
        """Record a head (called after the transaction that made it commits)."""

    def heads(self) -> list[SignedHead]:
        """Every recorded head, oldest first."""


_SINKS: dict[str, Callable[[str], Witness]] = {}


def witness_sink(scheme: str) -> Callable[[Callable[[str], Witness]], Callable[[str], Witness]]:
    """Register a witness factory for URIs ``SCHEME:REST`` (the factory gets ``REST``)."""

    def register(factory: Callable[[str], Witness]) -> Callable[[str], Witness]:
        _SINKS[scheme] = factory
        return factory

    return register


@witness_sink("file")
class FileWitness:
    """An append-only JSON-lines file of signed heads (opened ``O_APPEND``, fsynced)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def publish(self, head: SignedHead) -> None:
        line = (head.model_dump_json() + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def latest(self) -> SignedHead | None:
        """The newest recorded head (the file's last line), read from its end."""
        try:
            with open(self.path, "rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                fh.seek(max(0, size - 4096))
                tail = fh.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BadInputError(f"cannot read the witness {self.path}: {exc}") from exc
        lines = [line for line in tail.splitlines() if line.strip()]
        if not lines:
            return None
        try:
            return SignedHead.model_validate_json(lines[-1])
        except ValidationError as exc:
            raise BadInputError(f"the last line of {self.path} is not a signed head") from exc

    def heads(self) -> list[SignedHead]:
        if not self.path.exists():
            return []
        if not self.path.is_file():
            raise BadInputError(f"the witness {self.path} is not a regular file")
        out: list[SignedHead] = []
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInputError(f"cannot read the witness {self.path}: {exc}") from exc
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                out.append(SignedHead.model_validate_json(line))
            except ValidationError as exc:
                raise BadInputError(f"{self.path}:{number} is not a signed head") from exc
        return out


def newest_witnessed(witness: Witness) -> SignedHead | None:
    """The witness's newest head, where the witness can tell it cheaply.

    That is a witness with a ``latest()`` method, as the file witness has; None for one that
    can only list every head (decisions then leave the check to ``audit verify --witness``).
    """
    latest = getattr(witness, "latest", None)
    return latest() if callable(latest) else None


def open_witness(uri: str) -> Witness:
    """The witness a URI names: ``file:PATH`` or a registered ``SCHEME:...``.

    Raises:
        BadInputError: Unknown scheme.

    """
    scheme, sep, rest = uri.partition(":")
    if not sep or scheme not in _SINKS:
        known = ", ".join(sorted(_SINKS))
        raise BadInputError(f"unknown witness {uri!r}: use SCHEME:... with a scheme of {known}")
    return _SINKS[scheme](rest)


def check_witnessed(
    session: Session, key: PublicKey, heads: list[SignedHead], *, chain_seq: int
) -> str | None:
    """Why the stored chain does not extend every witnessed head, or None when it does.

    ``chain_seq`` is the last sequence number of the (already verified) chain.
    """
    if not heads:
        return None
    for head in heads:
        if not head_signature_ok(key, head.signature, head.seq, head.hash):
            return f"the witness holds a head #{head.seq} not signed by the audit key"
    newest = max(heads, key=lambda h: h.seq)
    if newest.seq > chain_seq:
        return (
            f"the log was rolled back: the witness saw head #{newest.seq}, the database ends "
            f"at #{chain_seq}"
        )
    wanted = {h.seq: h.hash for h in heads if h.seq > 0}
    rows = session.execute(
        select(AuditEventRow.seq, AuditEventRow.hash).where(AuditEventRow.seq.in_(list(wanted)))
    ).all()
    stored = {int(seq): str(digest) for seq, digest in rows}
    for seq in sorted(wanted):
        if stored.get(seq) != wanted[seq]:
            return f"the log no longer extends the witnessed head #{seq} (it was rewritten)"
    return None
