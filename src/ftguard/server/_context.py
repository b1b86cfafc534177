"""What one server process holds: its workspace and keys, sessions, limits, OIDC verifier."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

import anyio

from ftguard.control import (
    AnalysisPool,
    ChainCache,
    ChainState,
    Workspace,
    find_workspace,
    note_token_use,
    now_iso,
    policy_in_force,
)
from ftguard.policy import policy_digest
from ftguard.server._auth import RateLimiter, SessionStore
from ftguard.server._settings import ServerSettings

if TYPE_CHECKING:
    from ftguard.server._oidc import OidcVerifier

__all__ = ["ServerContext"]

_log = logging.getLogger("ftguard.server")

_TOKEN_USE_EVERY_S = 60.0
"""A token's last use is noted at most this often."""
_TOKEN_USE_FLUSH_S = 5.0
"""Noted uses wait this long at most before a background thread writes them, so that no
request waits in the writer queue to record its own token's use."""
_ANALYSIS_THREADS = 64
"""Analyses in progress at once (more wait without holding a thread); the analysis workers
run as many of them at a time as there are workers."""


class ServerContext:
    """The server's state: loaded once at start, shared by every request."""

    def __init__(self, settings: ServerSettings) -> None:
        found = find_workspace(settings.workspace)
        self.settings = settings
        self.ws = Workspace(
            found.path,
            database_url_override=settings.database_url,
            chain_cache=ChainCache(full_every_s=settings.full_verify_seconds),
        )
        self.analyses = (
            AnalysisPool(settings.analysis_workers) if settings.analysis_workers else None
        )
        if self.analyses is not None:
            self.ws.offload = self.analyses
        # Load every key now: a server that cannot sign fails at start, not on a request.
        self.server_key = self.ws.server_key()
        self.ws.audit_key()
        self.ws.attestation_key()
        self.limiter = RateLimiter(settings.auth_failures_per_minute)
        self.sessions = SessionStore()
        self._analysis_threads: anyio.CapacityLimiter | None = None
        self._oidc: tuple[str, OidcVerifier] | None = None
        self._token_used: dict[str, float] = {}
        self._token_uses_to_write: dict[str, str] = {}
        self._token_use_writer: threading.Thread | None = None
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._writing_token_uses = threading.Lock()

    def analysis_threads(self) -> anyio.CapacityLimiter:
        """The threads that wait on analyses, apart from those that answer other requests.

        Created on first use, in the server's event loop.
        """
        if self._analysis_threads is None:
            self._analysis_threads = anyio.CapacityLimiter(_ANALYSIS_THREADS)
        return self._analysis_threads

    def close(self) -> None:
        """Write the noted token uses, stop the workers, close the pooled connections."""
        self._closing.set()
        if self._token_use_writer is not None:
            self._token_use_writer.join()
        try:
            self.write_token_uses()
        except Exception:  # shutting down goes on; a last use is a convenience, not a record
            _log.warning("token uses not written at shutdown", exc_info=True)
        if self.analyses is not None:
            self.analyses.shutdown()
        self.ws.store.dispose()

    def oidc(self, state: ChainState) -> OidcVerifier:
        """The OIDC verifier for the issuers the policy in force names (rebuilt on change).

        Raises:
            VerificationError: The policy file is not the one the chain put in force.

        """
        from ftguard.server._oidc import OidcIssuerConfig, OidcVerifier

        policy = policy_in_force(self.ws, state)
        digest = policy_digest(policy)
        with self._lock:
            if self._oidc is None or self._oidc[0] != digest:
                issuers = [
                    OidcIssuerConfig.model_validate(i.model_dump()) for i in policy.server.oidc
                ]
                self._oidc = (digest, OidcVerifier(issuers))
            return self._oidc[1]

    def note_token_use(self, token_id: str) -> None:
        """Note a token's use (at most once a minute per token); written in the background.

        The request goes on at once: a thread writes the noted uses every few seconds, and
        :meth:`write_token_uses` writes them now (before they are listed, and at close).
        """
        now = time.monotonic()
        with self._lock:
            if now - self._token_used.get(token_id, float("-inf")) < _TOKEN_USE_EVERY_S:
                return
            self._token_used[token_id] = now
            self._token_uses_to_write[token_id] = now_iso()
            if self._token_use_writer is None and not self._closing.is_set():
                self._token_use_writer = threading.Thread(
                    target=self._write_token_uses_until_closed,
                    name="ftguard-token-uses",
                    daemon=True,
                )
                self._token_use_writer.start()

    def write_token_uses(self) -> None:
        """Write every noted token use now, in one transaction.

        A use that cannot be written (the database is down) stays noted for the next try.
        """
        with self._writing_token_uses:
            with self._lock:
                noted, self._token_uses_to_write = self._token_uses_to_write, {}
            if not noted:
                return
            try:
                with self.ws.store.write() as session:
                    for token_id, used_at in noted.items():
                        note_token_use(session, token_id, used_at)
            except Exception:
                with self._lock:
                    self._token_uses_to_write = noted | self._token_uses_to_write
                raise

    def _write_token_uses_until_closed(self) -> None:
        while not self._closing.wait(_TOKEN_USE_FLUSH_S):
            try:
                self.write_token_uses()
            except Exception:  # the next round retries; the requests go on
                _log.warning("token uses not written; retrying", exc_info=True)
