"""Sending job events to webhooks: captured as audit events are written, sent after commit.

Every audit event that moves a job (:func:`event_type_of`) is noted on its session as it is
inserted; once that transaction commits, the events go to the workspace's
:class:`WebhookDispatcher`, a background thread that writes one delivery-log row per event and
subscribed endpoint, then sends it, retrying with exponential backoff. A rolled-back
transaction sends nothing. Nothing here runs inside the use case's transaction or can raise
into it: a failed delivery is a row of the log (and a warning naming the endpoint, never its
secret).

A command-line process waits at most :data:`EXIT_GRACE_S` at exit for its deliveries; what
is left is ``pending`` in the log and is sent again by ``ftguard webhooks redeliver``.
"""

from __future__ import annotations

import atexit
import heapq
import json
import logging
import secrets
import threading
import time
import urllib.error
import urllib.request
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, object_session

from ftguard import __version__
from ftguard.control import Workspace, now_iso, parse_payload
from ftguard.integrations._webhooks import (
    SIGNATURE_HEADER,
    event_type_of,
    safe_url,
    sign_webhook,
)
from ftguard.store import AuditEventRow, Store, WebhookDeliveryRow, WebhookEndpointRow

__all__ = [
    "EXIT_GRACE_S",
    "JobEvent",
    "WebhookDispatcher",
    "attach_webhooks",
    "redeliver_webhooks",
    "webhook_dispatcher",
]

EXIT_GRACE_S = 5.0
"""How long a process waits at exit for its deliveries in flight."""
_IDLE_EXIT_S = 2.0
_CAPTURED = "ftguard_webhook_events"
_log = logging.getLogger("ftguard.webhooks")


@dataclass(frozen=True)
class JobEvent:
    """A job state change as sent: the audit event it comes from."""

    type: str
    seq: int
    hash: str
    ts: str
    actor: str
    job_id: str | None
    payload: dict[str, Any]

    def body(self) -> bytes:
        """The JSON body sent to every endpoint (identical on every attempt)."""
        job_state = "submitted" if self.type == "job.submitted" else self.payload.get("to")
        document = {
            "id": f"evt_{self.hash[:24]}",
            "type": self.type,
            "created": self.ts,
            "job": {"id": self.job_id, "state": job_state, "from": self.payload.get("from")},
            "actor": self.actor,
            "audit": {"seq": self.seq, "hash": self.hash},
            "data": self.payload,
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _on_audit_insert(_mapper: Any, _connection: Any, target: AuditEventRow) -> None:
    session = object_session(target)
    if session is None:
        return
    payload = parse_payload(target.payload)
    kind = event_type_of(target.action, payload)
    if kind is None:
        return
    session.info.setdefault(_CAPTURED, []).append(
        JobEvent(
            type=kind,
            seq=target.seq,
            hash=target.hash,
            ts=target.ts,
            actor=target.actor,
            job_id=target.job_id,
            payload=payload,
        )
    )


def _on_commit(session: Session) -> None:
    events = session.info.pop(_CAPTURED, None)
    if not events:
        return
    dispatcher = _DISPATCHERS.get(session.bind) if isinstance(session.bind, Engine) else None
    if dispatcher is not None:
        dispatcher.enqueue(events)


def _on_rollback(session: Session, _previous: Any) -> None:
    session.info.pop(_CAPTURED, None)


event.listen(AuditEventRow, "after_insert", _on_audit_insert)
event.listen(Session, "after_commit", _on_commit)
event.listen(Session, "after_soft_rollback", _on_rollback)

_DISPATCHERS: weakref.WeakKeyDictionary[Engine, WebhookDispatcher] = weakref.WeakKeyDictionary()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None  # a redirect is an answer like any other non-2xx: not delivered


_OPENER = urllib.request.build_opener(_NoRedirects())


class WebhookDispatcher:
    """One workspace's deliveries: a background thread, a retry schedule, the log.

    Attributes:
        backoff_s: The wait before the first retry; it doubles after every failed attempt.
        max_attempts: Attempts before a delivery is ``failed``.
        timeout_s: How long one attempt waits for the receiver.

    """

    def __init__(self, store: Store, secrets_dir: Path) -> None:
        self._store_ref = weakref.ref(store)
        self._held: Store | None = None
        self.secrets_dir = secrets_dir
        self.backoff_s = 1.0
        self.max_attempts = 6
        self.timeout_s = 5.0
        self._cond = threading.Condition()
        self._incoming: list[JobEvent] = []
        self._due: list[tuple[float, int, str]] = []
        self._counter = 0
        self._busy = False
        self._thread: threading.Thread | None = None

    def enqueue(self, events: list[JobEvent]) -> None:
        """Queue committed job events (returns at once; never raises)."""
        with self._cond:
            self._incoming.extend(events)
            self._wake()

    def redeliver(self, delivery_ids: list[str]) -> None:
        """Send these logged deliveries again now, with a fresh retry schedule."""
        with self._cond:
            for delivery_id in delivery_ids:
                self._schedule(time.monotonic(), delivery_id)
            self._wake()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or being sent; False when ``timeout`` ran out first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._incoming or self._due or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def _wake(self) -> None:
        if self._held is None:
            self._held = self._store_ref()  # keep the store while there is work
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="ftguard-webhooks", daemon=True)
            self._thread.start()
        self._cond.notify_all()

    def _schedule(self, when: float, delivery_id: str) -> None:
        self._counter += 1
        heapq.heappush(self._due, (when, self._counter, delivery_id))

    def _next_work(self) -> tuple[list[JobEvent], str | None] | None:
        """Under the lock: new events and/or one due delivery; None to stop the thread."""
        idle_since = time.monotonic()
        while True:
            now = time.monotonic()
            due = self._due[0][2] if self._due and self._due[0][0] <= now else None
            if self._incoming or due is not None:
                events, self._incoming = self._incoming, []
                if due is not None:
                    heapq.heappop(self._due)
                self._busy = True
                return events, due
            if not self._due and now - idle_since > _IDLE_EXIT_S:
                self._thread = None
                self._held = None
                return None
            wait = self._due[0][0] - now if self._due else _IDLE_EXIT_S
            self._cond.wait(max(0.01, min(wait, _IDLE_EXIT_S)))

    def _run(self) -> None:
        while True:
            with self._cond:
                work = self._next_work()
            if work is None:
                return
            events, due = work
            try:
                for delivery_id in self._record(events):
                    self._attempt_and_schedule(delivery_id)
                if due is not None:
                    self._attempt_and_schedule(due)
            except Exception as exc:  # never let the thread die on a database error
                _log.warning("webhook deliveries could not be processed: %s", type(exc).__name__)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _attempt_and_schedule(self, delivery_id: str) -> None:
        retry_in = self._attempt(delivery_id)
        if retry_in is not None:
            with self._cond:
                self._schedule(time.monotonic() + retry_in, delivery_id)

    def _record(self, events: list[JobEvent]) -> list[str]:
        """One pending log row per event and subscribed endpoint; their ids."""
        store = self._held
        if store is None or not events:
            return []
        with store.read() as session:  # no write lock unless something is to be sent
            endpoints = [
                (row.id, set(json.loads(row.events)))
                for row in session.scalars(
                    select(WebhookEndpointRow).where(WebhookEndpointRow.removed_at.is_(None))
                )
            ]
        wanted = [(e, endpoint) for e in events for endpoint, types in endpoints if e.type in types]
        if not wanted:
            return []
        created: list[str] = []
        with store.write() as session:
            for job_event, endpoint_id in wanted:
                body = job_event.body().decode()
                delivery_id = f"dlv_{secrets.token_hex(12)}"
                session.add(
                    WebhookDeliveryRow(
                        id=delivery_id,
                        endpoint_id=endpoint_id,
                        event_id=f"evt_{job_event.hash[:24]}",
                        event_type=job_event.type,
                        job_id=job_event.job_id,
                        audit_seq=job_event.seq,
                        body=body,
                        status="pending",
                        attempts=0,
                        created_at=now_iso(),
                    )
                )
                created.append(delivery_id)
        return created

    def _attempt(self, delivery_id: str) -> float | None:
        """Send one delivery once and log it; the delay before the next try, or None."""
        store = self._held
        if store is None:
            return None
        with store.read() as session:
            row = session.get(WebhookDeliveryRow, delivery_id)
            endpoint = session.get(WebhookEndpointRow, row.endpoint_id) if row else None
            if row is None or row.status == "delivered":
                return None
            body, event_type, attempts = row.body.encode(), row.event_type, row.attempts
        status: int | None = None
        error: str | None = "the endpoint was removed"
        if endpoint is None or endpoint.removed_at is not None:
            attempts = self.max_attempts - 1  # give up now
        else:
            status, error = self._send(endpoint.id, endpoint.url, body, event_type, delivery_id)
        attempts += 1
        delivered = error is None
        final = delivered or attempts >= self.max_attempts
        with store.write() as session:
            row = session.get(WebhookDeliveryRow, delivery_id)
            if row is None:
                return None
            ts = now_iso()
            row.attempts = attempts
            row.http_status = status
            row.error = error
            row.last_attempt_at = ts
            row.status = "delivered" if delivered else ("failed" if final else "pending")
            row.delivered_at = ts if delivered else None
        if final and not delivered:
            where = safe_url(endpoint.url) if endpoint is not None else "a removed endpoint"
            _log.warning(
                "webhook %s (%s) to %s failed after %d attempt(s): %s",
                delivery_id,
                event_type,
                where,
                attempts,
                error,
            )
        return None if final else self.backoff_s * 2 ** (attempts - 1)

    def _send(
        self, endpoint_id: str, url: str, body: bytes, event_type: str, delivery_id: str
    ) -> tuple[int | None, str | None]:
        """POST once: (HTTP status, None when delivered else why not)."""
        try:
            secret = (self.secrets_dir / f"{endpoint_id}.secret").read_text("ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None, "the endpoint's secret file cannot be read"
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": f"ftguard-webhooks/{__version__}",
                "Ftguard-Event": event_type,
                "Ftguard-Delivery": delivery_id,
                SIGNATURE_HEADER: sign_webhook(body, secret),
            },
        )
        try:
            with _OPENER.open(request, timeout=self.timeout_s) as answer:
                code = int(answer.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code), f"the receiver answered HTTP {exc.code}"
        except urllib.error.URLError as exc:
            return None, f"cannot reach the receiver: {_reason(exc.reason)}"
        except (OSError, ValueError) as exc:
            return None, f"cannot reach the receiver: {_reason(exc)}"
        if 200 <= code < 300:
            return code, None
        return code, f"the receiver answered HTTP {code}"


def _reason(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return type(reason).__name__ if isinstance(reason, BaseException) else str(reason)[:200]


def attach_webhooks(ws: Workspace, store: Store) -> WebhookDispatcher:
    """Send the job events that ``store``'s transactions commit to ``ws``'s webhooks."""
    dispatcher = _DISPATCHERS.get(store.engine)
    if dispatcher is None:
        dispatcher = WebhookDispatcher(store, ws.path / "keys" / "webhooks")
        _DISPATCHERS[store.engine] = dispatcher
    return dispatcher


def webhook_dispatcher(ws: Workspace) -> WebhookDispatcher:
    """The dispatcher of a workspace's store (to wait for it, or tune its retries)."""
    return attach_webhooks(ws, ws.store)


@atexit.register
def _drain_at_exit() -> None:
    deadline = time.monotonic() + EXIT_GRACE_S
    for dispatcher in list(_DISPATCHERS.values()):
        dispatcher.wait_idle(max(0.0, deadline - time.monotonic()))


def redeliver_webhooks(
    ws: Workspace, *, delivery_ids: list[str] | None = None, wait_s: float = 60.0
) -> list[str]:
    """Send logged deliveries again (default: every ``pending`` or ``failed`` one).

    Each restarts its retry schedule; waits up to ``wait_s`` for them. Returns their ids.

    Raises:
        NotFoundError: A named delivery is not in the log.

    """
    from ftguard.errors import NotFoundError

    with ws.store.write() as session:
        if delivery_ids:
            rows = [session.get(WebhookDeliveryRow, i) for i in delivery_ids]
            missing = [i for i, r in zip(delivery_ids, rows, strict=True) if r is None]
            if missing:
                raise NotFoundError(f"no webhook delivery {missing[0]!r} in the log")
        else:
            rows = list(
                session.scalars(
                    select(WebhookDeliveryRow).where(
                        WebhookDeliveryRow.status.in_(("pending", "failed"))
                    )
                )
            )
        chosen = []
        for row in rows:
            if row is not None and row.status != "delivered":
                row.status, row.attempts = "pending", 0
                chosen.append(row.id)
    dispatcher = webhook_dispatcher(ws)
    dispatcher.redeliver(chosen)
    dispatcher.wait_idle(wait_s)
    return chosen
