"""Engines, migrations and transactions.

Every write runs in :meth:`Store.write`, a transaction that first takes the store-wide
write lock: ``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE`` of the audit head row
on PostgreSQL. A state change and its audit event therefore commit together or not at all,
and concurrent writers (two approvers, two launchers) are serialised. Within one process
(the team server's threads) SQLite writers also queue on a lock, in order, instead of
polling SQLite's busy handler; reads begin a plain snapshot (WAL lets them run beside the
writer).
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, select, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ftguard.errors import BadInputError, DatabaseError, MissingDependencyError
from ftguard.store._tables import AuditHeadRow

__all__ = [
    "Store",
    "describe_url",
    "in_write_transaction",
    "pending_path",
    "publish_on_commit",
    "sqlite_url",
]

_MIGRATIONS = Path(__file__).with_name("migrations")
_READING: ContextVar[bool] = ContextVar("ftguard_store_reading", default=False)
_WRITING: ContextVar[bool] = ContextVar("ftguard_store_writing", default=False)


_PENDING_FILES = "pending_files"


def pending_path(final: Path) -> Path:
    """Where to write a file that :func:`publish_on_commit` moves to ``final`` later."""
    return final.with_name(f".{final.name}.pending-{secrets.token_hex(6)}")


def publish_on_commit(session: Session, written: Path, final: Path) -> None:
    """Move ``written`` to ``final`` when ``session``'s transaction commits; delete it on rollback.

    For files that state a decision the transaction records (an attestation, a signature): a
    transaction that fails after writing them must not leave them where a verifier looks.
    """
    session.info.setdefault(_PENDING_FILES, []).append((written, final))


def in_write_transaction() -> bool:
    """Whether the calling code runs inside :meth:`Store.write` (a serialised writer)."""
    return _WRITING.get()


POOL_SIZE = 20
"""Pooled connections (a server's worker threads each hold one per transaction)."""


def sqlite_url(path: Path) -> str:
    """SQLAlchemy URL of a SQLite database file."""
    return f"sqlite:///{path}"


def describe_url(url: str) -> str:
    """A database URL fit for a message: scheme and host (SQLite: the file), never a password."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        scheme = url.split(":", 1)[0] if ":" in url else ""
        return f"a URL of scheme {scheme!r}" if scheme.isidentifier() else "an unparsable URL"
    if parsed.get_backend_name() == "sqlite":
        return f"sqlite:///{parsed.database or ':memory:'}"
    host = parsed.host or "localhost"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.get_backend_name()}://{host}{port}"


def _reason(exc: BaseException, url: str) -> str:
    """The driver's first line of complaint, with the URL's password (if any) blanked."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    reason = lines[0] if lines else type(orig).__name__
    try:
        password = make_url(url).password
    except (ArgumentError, ValueError):
        password = None
    if password:
        reason = reason.replace(str(password), "***")
    return reason[:300]


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except (ArgumentError, ValueError):
        raise BadInputError(
            f"the database URL is not valid ({describe_url(url)}); "
            "use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
        ) from None


def _make_engine(url: str) -> Engine:
    parsed = _parse(url)
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise BadInputError(
            f"unsupported database URL ({describe_url(url)}): use sqlite:/// or "
            "postgresql+psycopg://"
        )
    try:
        if backend == "sqlite":
            return _sqlite_engine(url)
        connect_args = {} if "connect_timeout" in parsed.query else {"connect_timeout": 10}
        return create_engine(
            url,
            pool_pre_ping=True,
            connect_args=connect_args,
            pool_size=POOL_SIZE,
            max_overflow=POOL_SIZE,
        )
    except ImportError as exc:  # the URL names a driver that is not installed
        raise MissingDependencyError(exc.name or "psycopg", "postgres") from None
    except (ArgumentError, ValueError, TypeError) as exc:
        raise BadInputError(
            f"the database URL is not valid ({describe_url(url)}): {_reason(exc, url)}"
        ) from None


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(
        url,
        connect_args={"timeout": 60, "check_same_thread": False},
        pool_size=POOL_SIZE,
        max_overflow=POOL_SIZE,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN" if _READING.get() else "BEGIN IMMEDIATE")

    return engine


class Store:
    """The control plane's database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.on_commit: Callable[[dict[str, Any]], None] | None = None
        """Called with each signed audit head a committed transaction made (the witness)."""
        event.listen(self._sessions, "after_commit", self._after_commit)
        event.listen(self._sessions, "after_soft_rollback", self._after_rollback)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        # PostgreSQL's default (READ COMMITTED) lets each statement see what committed since
        # the last one; a reader that reads the audit head and then the events could see an
        # event newer than its head. REPEATABLE READ gives reads one snapshot, as SQLite does.
        self._reading = (
            self.engine.execution_options(isolation_level="REPEATABLE READ")
            if self.is_postgres
            else self.engine
        )
        self._writer = threading.Lock()

    def _after_commit(self, session: Session) -> None:
        heads = session.info.pop("audit_heads", None) or []
        pending = session.info.pop(_PENDING_FILES, None) or []
        # The witness first: the decision is committed whatever happens to its files
        if self.on_commit is not None:
            for head in heads:
                self.on_commit(head)
        for written, final in pending:
            os.replace(written, final)

    @staticmethod
    def _after_rollback(session: Session, _previous: Any) -> None:
        session.info.pop("audit_heads", None)
        for written, _ in session.info.pop(_PENDING_FILES, None) or []:
            Path(written).unlink(missing_ok=True)

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        with self.usable(), self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def schema_revision(self) -> str | None:
        """The applied Alembic revision, or None for an empty database."""
        with self.usable(), self.engine.connect() as conn:
            try:
                row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
            except Exception:
                return None
            return None if row is None else str(row[0])

    @contextmanager
    def usable(self) -> Iterator[None]:
        """Turn the driver's errors (unreachable, unopenable, corrupted) into DatabaseError.

        A constraint violation (IntegrityError) is left alone: it is no fault of the database.

        Raises:
            DatabaseError: The database cannot be reached or used; the message names the
                scheme and host (SQLite: the file) and never the password.

        """
        try:
            yield
        except IntegrityError:
            raise
        except DBAPIError as exc:
            raise DatabaseError(
                f"cannot use the database {describe_url(self.url)}: {_reason(exc, self.url)}"
            ) from None

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading: a consistent snapshot that takes no write lock."""
        token = _READING.set(True)
        try:
            with self.usable(), self._sessions(bind=self._reading) as session, session.begin():
                yield session
        finally:
            _READING.reset(token)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A serialised write transaction (committed on success, rolled back on error)."""
        token = _READING.set(False)
        writing = _WRITING.set(True)
        try:
            if self.is_postgres:
                with self.usable(), self._sessions() as session, session.begin():
                    # The whole head row, locked and held (the session's identity map holds
                    # rows weakly): later reads of it in this transaction (the chain's
                    # catch-up, each append) come from the session, not from the server.
                    session.info["locked_audit_head"] = session.scalars(
                        select(AuditHeadRow).where(AuditHeadRow.id == 1).with_for_update()
                    ).first()
                    yield session
            else:
                with self._writer, self.usable(), self._sessions() as session, session.begin():
                    yield session
        finally:
            _WRITING.reset(writing)
            _READING.reset(token)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
