"""The control plane's store: SQLAlchemy tables, Alembic migrations, transactions."""

from __future__ import annotations

from ftguard.store._db import (
    Store,
    describe_url,
    in_write_transaction,
    pending_path,
    publish_on_commit,
    sqlite_url,
)
from ftguard.store._tables import (
    ApiTokenRow,
    ApprovalRow,
    AuditCheckpointRow,
    AuditEventRow,
    AuditHeadRow,
    Base,
    EvidenceRow,
    JobRow,
    KeyRow,
    MetaRow,
    UserRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
)

__all__ = [
    "ApiTokenRow",
    "ApprovalRow",
    "AuditCheckpointRow",
    "AuditEventRow",
    "AuditHeadRow",
    "Base",
    "EvidenceRow",
    "JobRow",
    "KeyRow",
    "MetaRow",
    "Store",
    "UserRow",
    "WebhookDeliveryRow",
    "WebhookEndpointRow",
    "describe_url",
    "in_write_transaction",
    "pending_path",
    "publish_on_commit",
    "sqlite_url",
]
