"""The audit log: a SHA-256 hash chain over canonical JSON, with signed head and checkpoints.

Each event stores the hash of the event before it and is signed by its actor's own registered
key. The chain's head (last sequence number and hash) is signed with the workspace's audit key
on every append, and a signed checkpoint is kept every :data:`CHECKPOINT_EVERY` events, so that
editing, deleting, inserting, reordering or truncating events is detected by
:func:`verify_chain` even by someone who can write to the database but does not hold the audit
key; and since every event carries its actor's signature over its hash (which covers the hash
before it), whoever holds the audit key still cannot forge or re-link another user's decision.
Verifying replays the chain into a :class:`~ftguard.control._chain.ChainState`: what is in force.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from ftguard.attest import PrivateKey, PublicKey, canonical_json
from ftguard.control._chain import (
    ACTION_SCOPES,
    Actor,
    ChainProblem,
    ChainState,
    event_signature_message,
    parse_payload,
)
from ftguard.digests import sha256_bytes
from ftguard.errors import FtguardError, PermissionDeniedError, VerificationError
from ftguard.store import AuditCheckpointRow, AuditEventRow, AuditHeadRow

__all__ = [
    "CHECKPOINT_EVERY",
    "GENESIS_HASH",
    "AuditEvent",
    "ACTION_SCOPES",
    "AuditVerification",
    "ChainCache",
    "ReplayPoint",
    "append_event",
    "event_hash",
    "head_signature_ok",
    "init_chain",
    "replay_chain",
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
    via: dict[str, Any] | None = None
    """How the team server authenticated the actor (API token id, or OIDC issuer and
    subject); None for an event the actor signed with their own key."""


class AuditVerification(BaseModel):
    """Result of verifying the audit chain."""

    ok: bool
    events: int
    first_bad_seq: int | None = None
    problem: str | None = None
    head_seq: int = 0
    head_hash: str = GENESIS_HASH


def event_hash(
    *,
    seq: int,
    ts: str,
    actor: str,
    action: str,
    job_id: str | None,
    payload: str,
    prev_hash: str,
    keyid: str | None,
    via: str | None = None,
) -> str:
    """Hash of one event over its canonical JSON (the payload enters as its stored text).

    ``via`` (how the team server authenticated the caller of an event it signed) enters the
    hash only where it is set, so events written before the server existed keep their hashes.
    """
    body: dict[str, Any] = {
        "seq": seq,
        "ts": ts,
        "actor": actor,
        "keyid": keyid,
        "action": action,
        "job_id": job_id,
        "payload": payload,
        "prev_hash": prev_hash,
    }
    if via is not None:
        body["via"] = via
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


def head_signature_ok(key: PublicKey, signature: str, seq: int, digest: str) -> bool:
    """Whether ``signature`` is the audit key's signature of head ``(seq, digest)``."""
    return _sig_ok(key, signature, "head", seq, digest)


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
    actor: Actor,
    action: str,
    job_id: str | None = None,
    payload: dict[str, Any] | None = None,
) -> AuditEventRow:
    """Append one event signed by ``actor`` in the caller's (write-locked) transaction.

    ``key`` is the workspace's audit key: it re-signs the head. Every signed head is kept in
    ``session.info["audit_heads"]`` for the witness, published once the transaction commits.

    Raises:
        PermissionDeniedError: ``actor`` acts with an API token whose scopes do not cover
            ``action`` (the routes check first; this is the last line, at the one write).

    """
    needed = ACTION_SCOPES.get(action)
    if needed is not None and actor.scopes is not None and needed not in actor.scopes:
        raise PermissionDeniedError(
            f"this API token is limited to {', '.join(sorted(actor.scopes))}: {action} needs "
            f"the {needed} scope"
        )
    head = session.get(AuditHeadRow, 1)
    if head is None:
        raise VerificationError("the audit chain has no head: the database is not initialised")
    seq = head.seq + 1
    text = canonical_json(payload or {}).decode()
    via = canonical_json(actor.via).decode() if actor.via is not None else None
    digest = event_hash(
        seq=seq,
        ts=ts,
        actor=actor.name,
        action=action,
        job_id=job_id,
        payload=text,
        prev_hash=head.hash,
        keyid=actor.keyid,
        via=via,
    )
    row = AuditEventRow(
        seq=seq,
        ts=ts,
        actor=actor.name,
        action=action,
        job_id=job_id,
        payload=text,
        prev_hash=head.hash,
        hash=digest,
        keyid=actor.keyid,
        signature=base64.b64encode(actor.key.sign(event_signature_message(digest))).decode(),
        via=via,
    )
    session.add(row)
    head.seq = seq
    head.hash = digest
    head.signature = _sign(key, "head", seq, digest)
    session.info.setdefault("audit_heads", []).append(
        {"seq": seq, "hash": digest, "signature": head.signature}
    )
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


def iter_events(
    session: Session,
    *,
    job_id: str | None = None,
    after: int = 0,
    limit: int | None = None,
    where: ColumnElement[bool] | None = None,
) -> Iterator[AuditEvent]:
    """Events in sequence order: of one job, after ``after``, at most ``limit``, as asked.

    ``where``: only the events it selects.
    """
    query = select(AuditEventRow).where(AuditEventRow.seq > after).order_by(AuditEventRow.seq)
    if job_id is not None:
        query = query.where(AuditEventRow.job_id == job_id)
    if where is not None:
        query = query.where(where)
    if limit is not None:
        query = query.limit(limit)
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
            via=parse_payload(row.via) if row.via is not None else None,
        )


def _bad(count: int, seq: int, problem: str) -> tuple[AuditVerification, None]:
    return AuditVerification(ok=False, events=count, first_bad_seq=seq, problem=problem), None


def verify_chain(session: Session, key: PublicKey) -> AuditVerification:
    """Walk the whole chain and report the first inconsistency.

    Checks the links, every event's hash and its actor's signature, that each identity and
    policy event was allowed to its actor when it was made, the signed checkpoints and head.

    Args:
        session: A session on the store.
        key: The trusted audit public key of the workspace.

    """
    verification, _ = replay_chain(session, key)
    return verification


def replay_chain(
    session: Session, key: PublicKey, *, since: ReplayPoint | None = None
) -> tuple[AuditVerification, ChainState | None]:
    """Verify the chain and, when it holds, the state it puts in force.

    ``since``: continue from a state verified earlier (a copy is taken) and check only the
    events after it, their checkpoints and the head: what a long-running server does on each
    request. Events before that point are not read again; :func:`verify_chain` reads all.
    """
    if since is None:
        state, prev, expected = ChainState(), GENESIS_HASH, 1
    else:
        state, prev, expected = since.state.copy(), since.hash, since.seq + 1
    checkpoints = {
        c.seq: c
        for c in session.scalars(
            select(AuditCheckpointRow).where(AuditCheckpointRow.seq >= expected)
        )
    }
    head = session.get(AuditHeadRow, 1)
    count = expected - 1
    for row in session.scalars(
        select(AuditEventRow)
        .where(AuditEventRow.seq >= expected)
        .order_by(AuditEventRow.seq)
        .execution_options(yield_per=500)
    ):
        count += 1
        if row.seq != expected:
            if row.seq > expected:
                return _bad(count, expected, f"event #{expected} is missing (deleted)")
            return _bad(count, row.seq, f"event #{row.seq} is out of order")
        problem = _check_event(row, prev, state, checkpoints.pop(row.seq, None), key)
        if problem:
            return _bad(count, row.seq, problem)
        prev = row.hash
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
    return AuditVerification(ok=True, events=count, head_seq=last, head_hash=prev), state


@dataclass(frozen=True)
class ReplayPoint:
    """A verified chain state and the event it was verified up to."""

    state: ChainState
    seq: int
    hash: str


class ChainCache:
    """The last verified chain state of a long-running process (the team server).

    Each call checks only the events appended since the last one, and the signed head; the
    whole chain is verified again at least every ``full_every_s`` seconds (and at start).

    Catching up is done by one thread at a time: requests that find the head moved wait for
    the thread already replaying the new events and share its result, instead of each
    verifying the same signatures again. The periodic full verification runs in the one
    request that finds it due, while the others go on from the last verified state.
    """

    def __init__(self, full_every_s: float = 300.0) -> None:
        self._point: ReplayPoint | None = None
        self._full_at = float("-inf")
        self._full_every_s = full_every_s
        self._lock = threading.Lock()  # guards _point and _full_at (held briefly)
        self._catching_up = threading.Lock()  # one incremental replay at a time
        self._full_check = threading.Lock()  # one full verification at a time
        self.database_audit_key: str | None = None
        """The audit key the database was found to be made under (checked once)."""
        self.witnessed_point: tuple[int, str] | None = None
        """The verified (seq, head hash) last found to extend the witness's newest head."""
        self.witnessed_at = float("-inf")
        """When (``time.monotonic``) that was found."""

    def view(self, session: Session, key: PublicKey) -> tuple[AuditVerification, ChainState | None]:
        """The verified state, shared and not copied: for callers that only read it.

        When the signed head is still the one last verified, no event is read at all. A read
        whose snapshot predates the last verified point (another request caught up after this
        one began) gets that newer verified state.
        """
        head = session.get(AuditHeadRow, 1)
        with self._lock:
            point, due = self._point, self._due()
        if point is not None and not due and head is not None:
            if head.seq < point.seq:
                return _verified(point), point.state
            if (
                head.seq == point.seq
                and head.hash == point.hash
                and _sig_ok(key, head.signature, "head", head.seq, head.hash)
            ):
                return _verified(point), point.state
        return self._advance(session, key, head, older_snapshot_ok=True)

    def replay(
        self, session: Session, key: PublicKey
    ) -> tuple[AuditVerification, ChainState | None]:
        """Like :func:`replay_chain`: the verified state, as a copy the caller may change.

        For writers, whose transaction sees the newest head: a head older than the point this
        process verified is not taken on trust but verified from the start.
        """
        head = session.get(AuditHeadRow, 1)
        verification, state = self._advance(session, key, head, older_snapshot_ok=False)
        return verification, None if state is None else state.copy()

    def _due(self) -> bool:
        """Whether the periodic full verification is due (call with ``_lock`` held)."""
        return self._point is None or time.monotonic() - self._full_at > self._full_every_s

    def _advance(
        self,
        session: Session,
        key: PublicKey,
        head: AuditHeadRow | None,
        *,
        older_snapshot_ok: bool,
    ) -> tuple[AuditVerification, ChainState | None]:
        """Bring the shared point up to ``head`` (this session's view of it) and return it."""
        with self._lock:
            due, first = self._due(), self._point is None
        # Before the first verification every request waits for it; later, the request that
        # finds the full verification due runs it and the others go on incrementally.
        if due and self._full_check.acquire(blocking=first):
            try:
                with self._lock:
                    still_due = self._due()
                if still_due:  # not done by the request this one waited for
                    return self._full(session, key)
            finally:
                self._full_check.release()
        with self._catching_up:
            with self._lock:
                point = self._point
            if point is None:  # the last full verification failed: there is nothing to go on
                return self._full(session, key)
            if head is not None and head.seq <= point.seq:
                if head.seq == point.seq and head.hash == point.hash:
                    return _verified(point), point.state  # another request caught up to it
                if head.seq < point.seq and older_snapshot_ok:
                    return _verified(point), point.state
                return self._full(session, key)  # a head behind or beside the verified one
            verification, state = replay_chain(session, key, since=point)
            if state is None:  # perhaps rewritten before the point: verify it all again
                return self._full(session, key)
            with self._lock:
                if verification.head_seq >= (self._point.seq if self._point else -1):
                    self._point = ReplayPoint(state, verification.head_seq, verification.head_hash)
            return verification, state

    def _full(
        self, session: Session, key: PublicKey
    ) -> tuple[AuditVerification, ChainState | None]:
        """Verify the whole chain; keep its state as the point, or drop the point if it fails.

        Dropping it makes every later request verify the chain again (and refuse to act)
        until it holds, rather than go on from a state the chain no longer supports.
        """
        verification, state = replay_chain(session, key)
        with self._lock:
            if state is None:
                self._point = None
            else:
                if self._point is None or verification.head_seq >= self._point.seq:
                    self._point = ReplayPoint(state, verification.head_seq, verification.head_hash)
                self._full_at = time.monotonic()
        return verification, state


def _verified(point: ReplayPoint) -> AuditVerification:
    return AuditVerification(ok=True, events=point.seq, head_seq=point.seq, head_hash=point.hash)


def _check_event(
    row: AuditEventRow,
    prev: str,
    state: ChainState,
    checkpoint: AuditCheckpointRow | None,
    key: PublicKey,
) -> str | None:
    """Check one event's link, hash, signature, authority and checkpoint; apply it."""
    if row.prev_hash != prev:
        return (
            f"event #{row.seq} does not link to event #{row.seq - 1} "
            "(an event was inserted, deleted, replaced or reordered)"
        )
    digest = event_hash(
        seq=row.seq,
        ts=row.ts,
        actor=row.actor,
        action=row.action,
        job_id=row.job_id,
        payload=row.payload,
        prev_hash=row.prev_hash,
        keyid=row.keyid,
        via=row.via,
    )
    if digest != row.hash:
        return f"event #{row.seq} was modified: its content does not match its hash"
    try:
        state.apply(
            seq=row.seq,
            actor=row.actor,
            action=row.action,
            job_id=row.job_id,
            payload=parse_payload(row.payload),
            keyid=row.keyid,
            signature=_b64(row.signature),
            event_hash=digest,
            via=parse_payload(row.via) if row.via is not None else None,
        )
    except (ChainProblem, KeyError, ValueError, TypeError, FtguardError) as exc:
        return str(exc) or f"event #{row.seq} cannot be applied"
    if checkpoint is not None:
        if not _sig_ok(key, checkpoint.signature, "checkpoint", checkpoint.seq, checkpoint.hash):
            return f"the checkpoint at event #{row.seq} has an invalid signature"
        if checkpoint.hash != digest:
            return (
                f"event #{row.seq} does not match the signed checkpoint (the chain was rewritten)"
            )
    return None


def _b64(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return b""


def event_count(session: Session) -> int:
    """Number of stored events."""
    return int(session.scalar(select(func.count()).select_from(AuditEventRow)) or 0)
