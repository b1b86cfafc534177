"""Signed webhooks on job state changes: endpoints, signatures, the receiver's check.

An admin registers an endpoint (``ftguard webhooks add URL``); the registration is an audit
event and the endpoint's secret is a file readable by the workspace owner only
(``keys/webhooks/ID.secret``), never stored in the database, written to the audit log or
logged. Whenever a transaction that moves a job commits, each event of the types below goes
to every endpoint subscribed to it, in the background (:mod:`._webhook_delivery`): JSON body,
an ``Ftguard-Signature: t=TIMESTAMP,v1=HEX`` header with the HMAC-SHA256 of
``TIMESTAMP.BODY`` under the endpoint's secret (Stripe's scheme), retries with exponential
backoff, and every attempt in the delivery log (``webhook_deliveries``). A delivery never
blocks, fails or rolls back the state change that caused it.

Receivers check the signature with :func:`verify_webhook` (or the ten lines of the recipe in
``docs/integrations.md``), refusing stale timestamps.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel
from sqlalchemy import select

from ftguard.control import (
    Caller,
    Workspace,
    acting,
    append_event,
    name_of,
    now_iso,
    require_role,
)
from ftguard.errors import BadInputError, NotFoundError, VerificationError
from ftguard.store import WebhookDeliveryRow, WebhookEndpointRow

__all__ = [
    "EVENT_TYPES",
    "SIGNATURE_HEADER",
    "WebhookDelivery",
    "WebhookEndpoint",
    "add_webhook",
    "event_type_of",
    "list_deliveries",
    "list_webhooks",
    "remove_webhook",
    "sign_webhook",
    "verify_webhook",
    "webhook_secret_path",
]

EVENT_TYPES = (
    "job.submitted",
    "job.approved",
    "job.blocked",
    "job.passed",
    "job.deployed",
    "job.revoked",
)
"""The job events sent to webhooks."""
SIGNATURE_HEADER = "Ftguard-Signature"
"""``t=UNIX_SECONDS,v1=HEX``: HMAC-SHA256 over ``t + "." + body`` with the endpoint's secret."""
DEFAULT_TOLERANCE_S = 300
"""How old (or how far in the future) a signature's timestamp may be for a receiver."""
_STATES = {"approved", "blocked", "passed", "deployed", "revoked"}


class WebhookEndpoint(BaseModel):
    """A registered receiver of job events (its secret is never part of it)."""

    id: str
    url: str
    events: list[str]
    created_at: str
    created_by: str
    removed_at: str | None = None


class WebhookDelivery(BaseModel):
    """One event sent (or being sent) to one endpoint: a row of the delivery log."""

    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    job_id: str | None
    audit_seq: int
    status: str
    """``pending`` (attempts left), ``delivered`` (a 2xx answer) or ``failed`` (gave up)."""
    attempts: int
    http_status: int | None
    error: str | None
    created_at: str
    last_attempt_at: str | None
    delivered_at: str | None


def event_type_of(action: str, payload: dict[str, Any]) -> str | None:
    """The webhook event type of an audit event, or None when it is not sent."""
    if action == "job.submit":
        return "job.submitted"
    target = payload.get("to")
    return f"job.{target}" if target in _STATES else None


def sign_webhook(body: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """The :data:`SIGNATURE_HEADER` value of ``body``: ``t=TIMESTAMP,v1=HEX``."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def verify_webhook(
    body: bytes,
    signature_header: str | None,
    secret: str,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> dict[str, Any]:
    """The receiver's check: the event, if the signature is valid and recent.

    Args:
        body: The request body exactly as received (before any JSON parsing).
        signature_header: The ``Ftguard-Signature`` header.
        secret: The endpoint's secret (``whsec_...``, shown once by ``ftguard webhooks add``).
        tolerance_s: The largest accepted age of the timestamp, in seconds (replays older
            than this are refused).
        now: The current time (seconds since the epoch; for tests).

    Raises:
        VerificationError: No header, malformed, a stale timestamp or no matching signature.

    """
    if not signature_header:
        raise VerificationError(f"no {SIGNATURE_HEADER} header")
    ts: int | None = None
    candidates: list[str] = []
    for part in signature_header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            ts = int(value)
        elif key == "v1":
            candidates.append(value)
    if ts is None or not candidates:
        raise VerificationError(f"malformed {SIGNATURE_HEADER} header")
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        raise VerificationError("the webhook's timestamp is outside the tolerance (a replay?)")
    expected = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise VerificationError("the webhook's signature does not match its body and secret")
    try:
        event = json.loads(body)
    except ValueError:
        raise VerificationError("the webhook's body is not JSON") from None
    if not isinstance(event, dict):
        raise VerificationError("the webhook's body is not a JSON object")
    return event


def webhook_secret_path(ws: Workspace, endpoint_id: str) -> Path:
    """Where an endpoint's secret is kept: beside the workspace keys, owner-only."""
    return ws.path / "keys" / "webhooks" / f"{endpoint_id}.secret"


def safe_url(url: str) -> str:
    """``url`` without credentials, query or fragment: what messages and logs show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _checked_url(url: str) -> str:
    text = url.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise BadInputError("the webhook URL is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInputError("the webhook URL must be http:// or https:// with a host")
    if parts.username or parts.password:
        raise BadInputError(
            "the webhook URL may not carry credentials: the receiver checks the signature"
        )
    if any(c.isspace() or ord(c) < 32 for c in text) or len(text) > 2048:
        raise BadInputError("the webhook URL may not contain spaces or control characters")
    return text


def _checked_events(events: list[str] | None) -> list[str]:
    if not events:
        return list(EVENT_TYPES)
    chosen = [e if e.startswith("job.") else f"job.{e}" for e in events]
    unknown = sorted(set(chosen) - set(EVENT_TYPES))
    if unknown:
        raise BadInputError(
            f"unknown webhook event {unknown[0]!r} (events: {', '.join(EVENT_TYPES)})"
        )
    return [e for e in EVENT_TYPES if e in chosen]


def _write_secret(path: Path, secret: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secret + "\n")


def add_webhook(
    ws: Workspace,
    *,
    actor: Caller,
    url: str,
    events: list[str] | None = None,
    secret: str | None = None,
) -> tuple[WebhookEndpoint, str]:
    """An admin registers an endpoint; returns it and its secret (shown once).

    Args:
        ws: The workspace.
        actor: Who acts (an admin).
        url: The receiver (``http://`` or ``https://``; no credentials in it).
        events: Event types (``job.passed`` or ``passed``); default: all of
            :data:`EVENT_TYPES`.
        secret: The shared secret (at least 24 characters); default: a new random one.

    Raises:
        PermissionDeniedError: The actor is not an admin.
        BadInputError: A bad URL, event or secret.

    """
    target = _checked_url(url)
    chosen = _checked_events(events)
    if secret is not None and (len(secret) < 24 or any(c.isspace() for c in secret)):
        raise BadInputError("a webhook secret has at least 24 characters and no spaces")
    with ws.store.read() as session:
        state, policy, _ = acting(ws, session, actor)
        require_role(state, policy, name_of(actor), "admin", to="manage webhooks")
    endpoint_id = f"wh_{secrets.token_hex(8)}"
    chosen_secret = secret or f"whsec_{secrets.token_urlsafe(32)}"
    path = webhook_secret_path(ws, endpoint_id)
    _write_secret(path, chosen_secret)
    try:
        with ws.store.write() as session:
            state, policy, who = acting(ws, session, actor)
            require_role(state, policy, who.name, "admin", to="manage webhooks")
            ts = now_iso()
            row = WebhookEndpointRow(
                id=endpoint_id,
                url=target,
                events=json.dumps(chosen),
                created_at=ts,
                created_by=who.name,
            )
            session.add(row)
            append_event(
                session,
                ws.audit_key(),
                ts=ts,
                actor=who,
                action="webhook.add",
                payload={"id": endpoint_id, "url": safe_url(target), "events": chosen},
            )
            endpoint = _endpoint(row)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return endpoint, chosen_secret


def remove_webhook(ws: Workspace, *, actor: Caller, endpoint_id: str) -> WebhookEndpoint:
    """An admin removes an endpoint: nothing more is sent to it and its secret is deleted.

    Raises:
        NotFoundError: No such (active) endpoint.
        PermissionDeniedError: The actor is not an admin.

    """
    with ws.store.write() as session:
        state, policy, who = acting(ws, session, actor)
        require_role(state, policy, who.name, "admin", to="manage webhooks")
        row = session.get(WebhookEndpointRow, endpoint_id)
        if row is None or row.removed_at is not None:
            raise NotFoundError(
                f"no webhook endpoint {endpoint_id!r} (see 'ftguard webhooks list')"
            )
        row.removed_at = now_iso()
        append_event(
            session,
            ws.audit_key(),
            ts=row.removed_at,
            actor=who,
            action="webhook.remove",
            payload={"id": endpoint_id},
        )
        endpoint = _endpoint(row)
    webhook_secret_path(ws, endpoint_id).unlink(missing_ok=True)
    return endpoint


def _endpoint(row: WebhookEndpointRow) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row.id,
        url=safe_url(row.url),
        events=list(json.loads(row.events)),
        created_at=row.created_at,
        created_by=row.created_by,
        removed_at=row.removed_at,
    )


def list_webhooks(ws: Workspace, *, include_removed: bool = False) -> list[WebhookEndpoint]:
    """The registered endpoints, oldest first (their URLs without query or credentials)."""
    with ws.store.read() as session:
        query = select(WebhookEndpointRow).order_by(WebhookEndpointRow.created_at)
        if not include_removed:
            query = query.where(WebhookEndpointRow.removed_at.is_(None))
        return [_endpoint(r) for r in session.scalars(query)]


def list_deliveries(
    ws: Workspace,
    *,
    job_id: str | None = None,
    endpoint_id: str | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[WebhookDelivery]:
    """The delivery log, newest first (optionally of one job, endpoint or status)."""
    if status is not None and status not in ("pending", "delivered", "failed"):
        raise BadInputError("--status is one of pending, delivered, failed")
    with ws.store.read() as session:
        query = select(WebhookDeliveryRow).order_by(
            WebhookDeliveryRow.created_at.desc(), WebhookDeliveryRow.id
        )
        if job_id is not None:
            query = query.where(WebhookDeliveryRow.job_id == job_id)
        if endpoint_id is not None:
            query = query.where(WebhookDeliveryRow.endpoint_id == endpoint_id)
        if status is not None:
            query = query.where(WebhookDeliveryRow.status == status)
        rows = session.scalars(query.limit(limit))
        return [
            WebhookDelivery.model_validate({k: getattr(r, k) for k in WebhookDelivery.model_fields})
            for r in rows
        ]
