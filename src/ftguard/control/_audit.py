"""The audit log: a SHA-256 hash chain over canonical JSON, with signed head and checkpoints.

Each event stores the hash of the event before it. The chain's head (last sequence number and
hash) is signed with the workspace key on every append, and a signed checkpoint is kept every
:data:`CHECKPOINT_EVERY` events, so that editing, deleting, inserting, reordering or
truncating events is detected by :func:`verify_chain` even by someone who can write to the
database but does not hold the workspace key.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ftguard.attest import PrivateKey, PublicKey, canonical_json
from ftguard.digests import sha256_bytes
from ftguard.errors import VerificationError
from ftguard.store import AuditCheckpointRow, AuditEventRow, AuditHeadRow

__all__ = [
    "CHECKPOINT_EVERY",
    "GENESIS_HASH",
    "AuditEvent",
    "AuditVerification",
    "append_event",
    "event_hash",
    "init_chain",
    "iter_events",
    "verify_chain",
]

GENESIS_HASH = "0" * 64
CHECKPOINT_EVERY = 10


class AuditEvent(BaseModel):
    """One audit event as exported."""

    seq: int
    ts: str
    actor: str
    action: str
    job_id: str | None
    payload: dict[str, Any]
    prev_hash: str
    hash: str


class AuditVerification(BaseModel):
    """Result of verifying the audit chain."""

    ok: bool
    events: int
    first_bad_seq: int | None = None
    problem: str | None = None


def event_hash(
    *, seq: int, ts: str, actor: str, action: str, job_id: str | None, payload: str, prev_hash: str
) -> str:
    """Hash of one event over its canonical JSON (the payload enters as its stored text)."""
    body = {
        "seq": seq,
        "ts": ts,
        "actor": actor,
        "action": action,
        "job_id": job_id,
        "payload": payload,
        "prev_hash": prev_hash,
    }
    return sha256_bytes(canonical_json(body))


def _head_message(kind: str, seq: int, digest: str) -> bytes:
    return f"ftguard-audit-{kind}:v1:{seq}:{digest}".encode()


def _sign(key: PrivateKey, kind: str, seq: int, digest: str) -> str:
    return base64.b64encode(key.sign(_head_message(kind, seq, digest))).decode()


def _sig_ok(key: PublicKey, sig: str, kind: str, seq: int, digest: str) -> bool:
    try:
        raw = base64.b64decode(sig, validate=True)
    except (binascii.Error, ValueError):
        return False
    return key.verify(raw, _head_message(kind, seq, digest))


def init_chain(session: Session, key: PrivateKey) -> None:
    """Create the signed genesis head of an empty chain."""
    session.add(
        AuditHeadRow(id=1, seq=0, hash=GENESIS_HASH, signature=_sign(key, "head", 0, GENESIS_HASH))
    )


def append_event(
    session: Session,
    key: PrivateKey,
    *,
    ts: str,
    actor: str,
    action: str,
    job_id: str | None = None,
    payload: dict[str, Any] | None = None,
) -> AuditEventRow:
    """Append one event in the caller's (write-locked) transaction and re-sign the head."""
    head = session.get(AuditHeadRow, 1)
    if head is None:
        raise VerificationError("the audit chain has no head: the database is not initialised")
    seq = head.seq + 1
    text = canonical_json(payload or {}).decode()
    digest = event_hash(
        seq=seq, ts=ts, actor=actor, action=action, job_id=job_id, payload=text, prev_hash=head.hash
    )
    row = AuditEventRow(
        seq=seq,
        ts=ts,
        actor=actor,
        action=action,
        job_id=job_id,
        payload=text,
        prev_hash=head.hash,
        hash=digest,
    )
    session.add(row)
    head.seq = seq
    head.hash = digest
    head.signature = _sign(key, "head", seq, digest)
    if seq % CHECKPOINT_EVERY == 0:
        session.add(
            AuditCheckpointRow(
                seq=seq,
                hash=digest,
                signature=_sign(key, "checkpoint", seq, digest),
                keyid=key.public.keyid,
            )
        )
    session.flush()
    return row


def iter_events(session: Session, *, job_id: str | None = None) -> Iterator[AuditEvent]:
    """Events in sequence order (optionally those of one job)."""
    query = select(AuditEventRow).order_by(AuditEventRow.seq)
    if job_id is not None:
        query = query.where(AuditEventRow.job_id == job_id)
    for row in session.scalars(query.execution_options(yield_per=500)):
        try:
            payload = json.loads(row.payload)
        except ValueError:
            payload = {"unparseable": row.payload}
        yield AuditEvent(
            seq=row.seq,
            ts=row.ts,
            actor=row.actor,
            action=row.action,
            job_id=row.job_id,
            payload=payload if isinstance(payload, dict) else {"value": payload},
            prev_hash=row.prev_hash,
            hash=row.hash,
        )


def _bad(count: int, seq: int, problem: str) -> AuditVerification:
    return AuditVerification(ok=False, events=count, first_bad_seq=seq, problem=problem)


def verify_chain(session: Session, key: PublicKey) -> AuditVerification:
    """Walk the whole chain and report the first inconsistency.

    Args:
        session: A session on the store.
        key: The trusted workspace public key.

    """
    checkpoints = {c.seq: c for c in session.scalars(select(AuditCheckpointRow))}
    head = session.get(AuditHeadRow, 1)
    count = 0
    prev = GENESIS_HASH
    expected = 1
    for row in session.scalars(
        select(AuditEventRow).order_by(AuditEventRow.seq).execution_options(yield_per=500)
    ):
        count += 1
        if row.seq != expected:
            if row.seq > expected:
                return _bad(count, expected, f"event #{expected} is missing (deleted)")
            return _bad(count, row.seq, f"event #{row.seq} is out of order")
        if row.prev_hash != prev:
            return _bad(
                count,
                row.seq,
                f"event #{row.seq} does not link to event #{row.seq - 1} "
                "(an event was inserted, deleted, replaced or reordered)",
            )
        digest = event_hash(
            seq=row.seq,
            ts=row.ts,
            actor=row.actor,
            action=row.action,
            job_id=row.job_id,
            payload=row.payload,
            prev_hash=row.prev_hash,
        )
        if digest != row.hash:
            return _bad(
                count,
                row.seq,
                f"event #{row.seq} was modified: its content does not match its hash",
            )
        cp = checkpoints.pop(row.seq, None)
        if cp is not None:
            if not _sig_ok(key, cp.signature, "checkpoint", cp.seq, cp.hash):
                return _bad(
                    count, row.seq, f"the checkpoint at event #{row.seq} has an invalid signature"
                )
            if cp.hash != digest:
                return _bad(
                    count,
                    row.seq,
                    f"event #{row.seq} does not match the signed checkpoint "
                    "(the chain was rewritten)",
                )
        prev = digest
        expected += 1
    last = expected - 1
    if head is None:
        return _bad(count, last + 1, "the signed audit head is missing")
    if not _sig_ok(key, head.signature, "head", head.seq, head.hash):
        return _bad(count, min(head.seq, last) + 1, "the audit head's signature is invalid")
    if head.seq > last:
        return _bad(
            count,
            last + 1,
            f"the log is truncated: events #{last + 1} to #{head.seq} are missing",
        )
    if head.seq < last:
        return _bad(
            count,
            head.seq + 1,
            f"events #{head.seq + 1} to #{last} were added without the workspace key",
        )
    if head.hash != prev:
        return _bad(count, last, f"event #{last} does not match the signed audit head")
    if checkpoints:
        first = min(checkpoints)
        return _bad(count, first, f"event #{first} is missing but a signed checkpoint names it")
    return AuditVerification(ok=True, events=count)


def event_count(session: Session) -> int:
    """Number of stored events."""
    return int(session.scalar(select(func.count()).select_from(AuditEventRow)) or 0)
