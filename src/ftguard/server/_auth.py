"""Who is calling: API tokens, OIDC bearer tokens and console sessions, checked per request.

Every credential is checked against the verified audit chain (tokens) or the policy's
issuers (OIDC), never against a table alone. Failures are counted per client address and
answered with 429 past the settings' limit, so guessing is slow. No credential is logged.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ftguard.control import chain_state, chain_view
from ftguard.control.service import (
    ServerCaller,
    authenticate_token,
    check_sso_binding,
    oidc_user_is_synced,
    sync_oidc_user,
)
from ftguard.errors import AuthenticationError, FtguardError

if TYPE_CHECKING:
    from ftguard.server._context import ServerContext

__all__ = ["ConsoleSession", "RateLimiter", "SessionStore", "TooManyFailures", "caller_for"]


class TooManyFailures(FtguardError):
    """A client address failed to authenticate too often (HTTP 429)."""


class RateLimiter:
    """Failed authentications per client address over a sliding minute."""

    def __init__(self, per_minute: int) -> None:
        self._per_minute = per_minute
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        """Refuse a client that already failed too often in the last minute."""
        with self._lock:
            recent = self._recent(client)
            if len(recent) >= self._per_minute:
                raise TooManyFailures(
                    "too many failed authentications from this address; wait a minute"
                )

    def failed(self, client: str) -> None:
        with self._lock:
            self._recent(client).append(time.monotonic())

    def _recent(self, client: str) -> deque[float]:
        window = self._failures.setdefault(client, deque())
        cutoff = time.monotonic() - 60.0
        while window and window[0] < cutoff:
            window.popleft()
        return window


@dataclass
class ConsoleSession:
    """A signed-in console user: who, how they signed in, the CSRF token of their forms."""

    user: str
    via: dict[str, str]
    csrf: str
    expires: float
    pending: dict[str, Any] = field(default_factory=dict)


class SessionStore:
    """Console sessions, in the server's memory (a restart signs everyone out)."""

    def __init__(self, lifetime_s: float = 8 * 3600) -> None:
        self._sessions: dict[str, ConsoleSession] = {}
        self._lifetime_s = lifetime_s
        self._lock = threading.Lock()

    def open(self, user: str, via: dict[str, str]) -> tuple[str, ConsoleSession]:
        sid = secrets.token_urlsafe(32)
        session = ConsoleSession(
            user=user,
            via=via,
            csrf=secrets.token_urlsafe(32),
            expires=time.time() + self._lifetime_s,
        )
        with self._lock:
            self._sessions[sid] = session
        return sid, session

    def get(self, sid: str | None) -> ConsoleSession | None:
        if not sid:
            return None
        with self._lock:
            session = self._sessions.get(sid)
            if session is not None and session.expires < time.time():
                del self._sessions[sid]
                return None
            return session

    def close(self, sid: str | None) -> None:
        with self._lock:
            self._sessions.pop(sid or "", None)


def caller_for(ctx: ServerContext, *, authorization: str | None, client: str) -> ServerCaller:
    """The caller a request's ``Authorization: Bearer`` header authenticates.

    ``ftg_...`` is an API token (checked against the chain); anything else is taken as an
    OIDC JWT from an issuer the policy names, whose user's roles are synced into the chain.

    Raises:
        AuthenticationError: No or an invalid credential (HTTP 401).
        TooManyFailures: The client failed too often (HTTP 429).

    """
    ctx.limiter.check(client)
    try:
        if not authorization:
            raise AuthenticationError("authentication required: send 'Authorization: Bearer TOKEN'")
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise AuthenticationError("authentication required: send 'Authorization: Bearer TOKEN'")
        if credential.startswith("ftg_"):
            return _token_caller(ctx, credential)
        return oidc_caller(ctx, credential)
    except AuthenticationError:
        ctx.limiter.failed(client)
        raise


def _token_caller(ctx: ServerContext, credential: str) -> ServerCaller:
    with ctx.ws.store.read() as session:
        caller = authenticate_token(chain_view(ctx.ws, session), ctx.server_key, credential)
    ctx.note_token_use(caller.via["token_id"])
    return caller


def oidc_caller(ctx: ServerContext, credential: str) -> ServerCaller:
    """The caller an OIDC token authenticates (roles synced into the chain when changed)."""
    with ctx.ws.store.read() as session:
        verifier = ctx.oidc(chain_view(ctx.ws, session))
    identity = verifier.verify(credential)
    with ctx.ws.store.read() as session:
        state = chain_view(ctx.ws, session)
        check_sso_binding(state, identity.user, identity.issuer, identity.subject)
        synced = oidc_user_is_synced(
            state, identity.user, identity.issuer, identity.subject, list(identity.roles)
        )
    if synced:
        return ServerCaller(
            name=identity.user,
            server_key=ctx.server_key,
            via={"method": "oidc", "issuer": identity.issuer, "subject": identity.subject},
        )
    with ctx.ws.store.write() as session:
        state = chain_state(ctx.ws, session)
        return sync_oidc_user(
            ctx.ws,
            session,
            state,
            server_key=ctx.server_key,
            user=identity.user,
            issuer=identity.issuer,
            subject=identity.subject,
            roles=list(identity.roles),
        )
