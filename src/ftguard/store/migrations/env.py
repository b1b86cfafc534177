"""Alembic environment: migrations run on the connection ftguard hands over."""

from __future__ import annotations

from alembic import context

from ftguard.store._tables import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - ftguard always passes a connection
    raise RuntimeError("ftguard migrations run through ftguard.store.migrate()")
context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
