"""What one server process holds: its workspace and keys, sessions, limits, OIDC verifier."""

from __future__ import annotations

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
    policy_in_force,
)
from ftguard.policy import policy_digest
from ftguard.server._auth import RateLimiter, SessionStore
from ftguard.server._settings import ServerSettings

if TYPE_CHECKING:
    from ftguard.server._oidc import OidcVerifier

__all__ = ["ServerContext"]

_TOKEN_USE_EVERY_S = 60.0
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
        self._lock = threading.Lock()

    def analysis_threads(self) -> anyio.CapacityLimiter:
        """The threads that wait on analyses, apart from those that answer other requests.

        Created on first use, in the server's event loop.
        """
        if self._analysis_threads is None:
            self._analysis_threads = anyio.CapacityLimiter(_ANALYSIS_THREADS)
        return self._analysis_threads

    def close(self) -> None:
        """Stop the analysis workers and close the database's pooled connections."""
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
        """Record a token's last use, at most once a minute per token."""
        now = time.monotonic()
        with self._lock:
            if now - self._token_used.get(token_id, float("-inf")) < _TOKEN_USE_EVERY_S:
                return
            self._token_used[token_id] = now
        with self.ws.store.write() as session:
            note_token_use(session, token_id)
