"""SQLAlchemy tables of the control plane.

Timestamps are ISO-8601 UTC text and structured values canonical JSON text, so that what
the audit chain hashes reads back byte for byte on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ApprovalRow",
    "AuditCheckpointRow",
    "AuditEventRow",
    "AuditHeadRow",
    "Base",
    "EvidenceRow",
    "JobRow",
    "KeyRow",
    "MetaRow",
    "UserRow",
    "WebhookDeliveryRow",
    "WebhookEndpointRow",
]


class Base(DeclarativeBase):
    """Declarative base of every table."""


class MetaRow(Base):
    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class UserRow(Base):
    __tablename__ = "users"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    roles: Mapped[str] = mapped_column(Text)  # JSON list
    created_at: Mapped[str] = mapped_column(String(40))
    created_by: Mapped[str] = mapped_column(String(128))


class KeyRow(Base):
    __tablename__ = "keys"
    keyid: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(ForeignKey("users.name"), index=True)
    public_key: Mapped[str] = mapped_column(Text)  # base64 raw Ed25519
    created_at: Mapped[str] = mapped_column(String(40))
    revoked_at: Mapped[str | None] = mapped_column(String(40), nullable=True)


class JobRow(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    state: Mapped[str] = mapped_column(String(32), index=True)
    purpose: Mapped[str] = mapped_column(Text)
    requester: Mapped[str] = mapped_column(String(128))
    preparer: Mapped[str] = mapped_column(String(128))
    base_model_path: Mapped[str] = mapped_column(Text)
    dataset_path: Mapped[str] = mapped_column(Text)
    config_path: Mapped[str] = mapped_column(Text)
    base_model_digest: Mapped[str] = mapped_column(String(64), index=True)
    dataset_digest: Mapped[str] = mapped_column(String(64))
    config_digest: Mapped[str] = mapped_column(String(64))
    manifests: Mapped[str] = mapped_column(Text)  # JSON {dataset, base_model, config}
    policy_digest: Mapped[str] = mapped_column(String(64))
    review_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    rejected_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    run_token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    run_count: Mapped[int] = mapped_column(Integer, default=0)
    output_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[str] = mapped_column(String(40))
    updated_at: Mapped[str] = mapped_column(String(40))


class ApprovalRow(Base):
    __tablename__ = "approvals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    approver: Mapped[str] = mapped_column(String(128))
    keyid: Mapped[str] = mapped_column(String(64))
    envelope: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[str] = mapped_column(String(40))
    expires_at: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active|consumed|void
    consumed_by_run: Mapped[int | None] = mapped_column(Integer, nullable=True)


class EvidenceRow(Base):
    __tablename__ = "evidence"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    digest: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(String(40))


class AuditEventRow(Base):
    __tablename__ = "audit_events"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ts: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    payload: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    keyid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The actor's key that signed the event."""
    signature: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The actor's Ed25519 signature over the event's hash (base64)."""
    via: Mapped[str | None] = mapped_column(Text, nullable=True)
    """For an event the team server signed on its caller's behalf: how the caller was
    authenticated (canonical JSON: the API token's id, or the OIDC issuer and subject)."""


class ApiTokenRow(Base):
    """An API token's index row; the token counts only if the audit chain issued it."""

    __tablename__ = "api_tokens"
    token_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(128), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[str] = mapped_column(String(40))
    expires_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
    revoked_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
    last_used_at: Mapped[str | None] = mapped_column(String(40), nullable=True)


class AuditHeadRow(Base):
    """The signed head of the audit chain; its single row is also the write lock."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(Text)


class AuditCheckpointRow(Base):
    __tablename__ = "audit_checkpoints"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(Text)
    keyid: Mapped[str] = mapped_column(String(64))


class WebhookEndpointRow(Base):
    """A receiver of job events (``ftguard webhooks add``); its secret is a file, never here."""

    __tablename__ = "webhook_endpoints"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[str] = mapped_column(Text)  # JSON list of event types
    created_at: Mapped[str] = mapped_column(String(40))
    created_by: Mapped[str] = mapped_column(String(128))
    removed_at: Mapped[str | None] = mapped_column(String(40), nullable=True)


class WebhookDeliveryRow(Base):
    """The delivery log: one row per event and endpoint, updated after every attempt."""

    __tablename__ = "webhook_deliveries"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(String(32), index=True)
    event_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    audit_seq: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)  # the JSON sent (no secret)
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending|delivered|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    http_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[str] = mapped_column(String(40))
    last_attempt_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
    delivered_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
