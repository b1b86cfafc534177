"""What the team server signs for: its registered key, API tokens and OIDC role syncs.

The server authenticates callers (an API token or an OIDC bearer token) and signs their
events with its own key, which an admin registered in the chain (``server.register``). Every
such event records how its caller was authenticated (``via``). API tokens are issued in the
chain (``token.create``, by an admin): the chain holds the SHA-256 of each token's secret, so
a token row inserted in the database authenticates nobody. The ``api_tokens`` table is an
index and the place of each token's last-use time. An OIDC sign-in whose groups map to roles
other than the chain has for that user is recorded as a ``user.sync`` event first (never
``admin``): the team's identity provider decides who approves, and the chain says so.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ftguard.attest import PrivateKey, generate_key, load_private_key
from ftguard.control._audit import append_event
from ftguard.control._chain import Actor, ChainState
from ftguard.control._identities import (
    TOKEN_SCOPES,
    ServerCaller,
    check_name,
    policy_in_force,
    require_admin_scope,
    require_role,
    require_user,
    server_actor,
)
from ftguard.control._workspace import Workspace, now_iso
from ftguard.digests import sha256_bytes
from ftguard.errors import (
    AuthenticationError,
    BadInputError,
    ConflictError,
    NotFoundError,
)
from ftguard.policy import ROLES
from ftguard.store import ApiTokenRow, UserRow

__all__ = [
    "TOKEN_PREFIX",
    "authenticate_token",
    "bind_user",
    "check_scopes",
    "create_token",
    "list_tokens",
    "note_token_use",
    "parse_lifetime",
    "register_server",
    "revoke_token",
    "check_sso_binding",
    "oidc_user_is_synced",
    "sync_oidc_user",
    "unbind_user",
]

TOKEN_PREFIX = "ftg_"
_TOKEN_RE = re.compile(r"^ftg_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_LIFETIME_RE = re.compile(r"^(\d{1,4})([mhd])$")
MAX_TOKEN_LIFETIME = timedelta(days=366)


def _now() -> datetime:
    return datetime.now(UTC)


def parse_lifetime(text: str) -> timedelta:
    """``30d``, ``12h`` or ``90m`` as a duration (at most a year).

    Raises:
        BadInputError: Not such a duration.

    """
    match = _LIFETIME_RE.match(text.strip())
    if not match:
        raise BadInputError(f"--expires must look like 30d, 12h or 90m, not {text!r}")
    amount, unit = int(match.group(1)), match.group(2)
    lifetime = {"m": timedelta(minutes=amount), "h": timedelta(hours=amount)}.get(
        unit, timedelta(days=amount)
    )
    if not timedelta(minutes=1) <= lifetime <= MAX_TOKEN_LIFETIME:
        raise BadInputError("--expires must be between 1 minute and 366 days")
    return lifetime


def register_server(ws: Workspace, session: Session, state: ChainState, *, actor: Actor) -> str:
    """Create the workspace's server key (if missing) and register it, signed by an admin.

    Returns the key id. Registering twice is a no-op for a key already in force.
    """
    require_role(state, None, actor.name, "admin", to="register the team server")
    path = ws.server_key_path
    key = load_private_key(path) if path.exists() else generate_key()
    record = state.servers.get(key.public.keyid)
    if record is not None and record.status == "active":
        return key.public.keyid
    if record is not None:
        raise ConflictError(
            f"the server key {key.public.keyid[:16]} was revoked; move {path} away to make a new one"
        )
    append_event(
        session,
        ws.audit_key(),
        ts=now_iso(),
        actor=actor,
        action="server.register",
        payload={"keyid": key.public.keyid, "public_key": key.public.b64},
    )
    session.flush()
    if not path.exists():
        key.save(path)
    return key.public.keyid


def create_token(
    ws: Workspace,
    session: Session,
    state: ChainState,
    *,
    actor: Actor,
    user: str,
    lifetime: timedelta,
    scopes: Sequence[str] | None = None,
) -> tuple[str, ApiTokenRow]:
    """Issue an API token for ``user`` (admins only). Returns the token, shown only this once.

    ``scopes`` limits what the token may do on the team server (:data:`TOKEN_SCOPES`; ``read``
    is always among them); None issues a token for everything its user's roles allow.
    """
    require_role(state, policy_in_force(ws, state), actor.name, "admin", to="issue API tokens")
    require_user(state, check_name(user))
    limited = check_scopes(scopes)
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    ts = now_iso()
    expires = (datetime.now(UTC) + lifetime).isoformat(timespec="microseconds")
    secret_hash = sha256_bytes(secret.encode())
    row = ApiTokenRow(
        token_id=token_id,
        user_name=user,
        secret_hash=secret_hash,
        created_at=ts,
        expires_at=expires,
    )
    session.add(row)
    append_event(
        session,
        ws.audit_key(),
        ts=ts,
        actor=actor,
        action="token.create",
        payload={
            "token_id": token_id,
            "user": user,
            "secret_hash": secret_hash,
            "expires_at": expires,
            **({} if limited is None else {"scopes": list(limited)}),
        },
    )
    return f"{TOKEN_PREFIX}{token_id}_{secret}", row


def check_scopes(scopes: Sequence[str] | None) -> tuple[str, ...] | None:
    """``scopes`` as a token records them: known, sorted, with ``read`` (None stays None).

    Raises:
        BadInputError: An unknown scope, or an empty list.

    """
    if scopes is None:
        return None
    wanted = {s.strip().lower() for s in scopes}
    unknown = sorted(wanted - set(TOKEN_SCOPES))
    if unknown:
        raise BadInputError(
            f"unknown token scope {unknown[0]!r}; scopes are: {', '.join(TOKEN_SCOPES)}"
        )
    if not wanted:
        raise BadInputError("name at least one scope (or none at all for an unlimited token)")
    return tuple(s for s in TOKEN_SCOPES if s in wanted | {"read"})


def revoke_token(
    ws: Workspace, session: Session, state: ChainState, *, actor: Actor, token_id: str
) -> ApiTokenRow:
    """Revoke an API token (its owner or an admin)."""
    record = state.tokens.get(token_id.strip())
    if record is None:
        raise NotFoundError(f"no API token has id {token_id}")
    if record.user != actor.name:
        require_admin_scope(actor, to=f"revoke {record.user}'s tokens")
        require_role(
            state,
            policy_in_force(ws, state),
            actor.name,
            "admin",
            to=f"revoke {record.user}'s tokens",
        )
    if record.revoked:
        raise ConflictError(f"API token {record.token_id} is already revoked")
    ts = now_iso()
    append_event(
        session,
        ws.audit_key(),
        ts=ts,
        actor=actor,
        action="token.revoke",
        payload={"token_id": record.token_id, "user": record.user},
    )
    record.revoked = True
    row = session.get(ApiTokenRow, record.token_id)
    if row is None:  # the index lost it; the chain is what counts
        row = ApiTokenRow(
            token_id=record.token_id,
            user_name=record.user,
            secret_hash=record.secret_hash,
            created_at=ts,
            expires_at=record.expires_at,
        )
        session.add(row)
    row.revoked_at = ts
    return row


def list_tokens(
    session: Session, state: ChainState, *, user: str | None = None
) -> list[dict[str, object]]:
    """Every token the chain issued (optionally one user's), with its last use; no secrets."""
    rows = {r.token_id: r for r in session.scalars(select(ApiTokenRow))}
    out: list[dict[str, object]] = []
    now = _now()
    for record in state.tokens.values():
        if user is not None and record.user != user:
            continue
        row = rows.get(record.token_id)
        expired = record.expires_at is not None and datetime.fromisoformat(record.expires_at) <= now
        out.append(
            {
                "token_id": record.token_id,
                "user": record.user,
                "issued_by": record.issued_by,
                "expires_at": record.expires_at,
                "status": "revoked" if record.revoked else "expired" if expired else "active",
                "scopes": list(record.scopes) if record.scopes is not None else None,
                "last_used_at": row.last_used_at if row is not None else None,
            }
        )
    return out


def note_token_use(session: Session, token_id: str, used_at: str | None = None) -> None:
    """Record a token's last use (``used_at``, ISO 8601; now by default) in its index row.

    An earlier time than the one stored is ignored: uses recorded out of order never move
    the last use back.
    """
    row = session.get(ApiTokenRow, token_id)
    when = used_at or now_iso()
    if row is not None and (row.last_used_at is None or row.last_used_at < when):
        row.last_used_at = when


def authenticate_token(state: ChainState, server_key: PrivateKey, presented: str) -> ServerCaller:
    """The caller a presented API token authenticates, checked against the chain.

    The secret's hash is compared in constant time; the token must be in force (issued in
    the chain, not revoked, not expired) and its user known. (The last-use time is the
    caller's to record: :func:`note_token_use`.)

    Raises:
        AuthenticationError: The token is malformed, unknown, wrong, revoked or expired (one
            message for all, never naming the token).

    """
    refused = AuthenticationError("invalid, expired or revoked API token")
    match = _TOKEN_RE.match(presented.strip())
    if not match:
        raise refused
    token_id, secret = match.groups()
    record = state.tokens.get(token_id)
    digest = sha256_bytes(secret.encode())
    expected = record.secret_hash if record is not None else "0" * 64
    if not hmac.compare_digest(digest, expected) or record is None or record.revoked:
        raise refused
    if record.expires_at is not None and datetime.fromisoformat(record.expires_at) <= _now():
        raise refused
    if record.user not in state.users:
        raise refused
    return ServerCaller(
        name=record.user,
        server_key=server_key,
        via={"method": "token", "token_id": token_id},
        scopes=None if record.scopes is None else frozenset(record.scopes),
    )


def sync_oidc_user(
    ws: Workspace,
    session: Session,
    state: ChainState,
    *,
    server_key: PrivateKey,
    user: str,
    issuer: str,
    subject: str,
    roles: list[str],
) -> ServerCaller:
    """The caller an OIDC identity authenticates; its roles are synced into the chain first.

    Roles come from the policy's mapping of the issuer's groups; ``admin`` is never among
    them. A ``user.sync`` event is written only when they differ from the chain's record.
    """
    check_name(user)
    wanted = sorted(set(roles))
    bad = [r for r in wanted if r not in ROLES or r == "admin"]
    if bad:
        raise BadInputError(f"an OIDC sign-in cannot grant the role {bad[0]!r}")
    caller = ServerCaller(
        name=user,
        server_key=server_key,
        via={"method": "oidc", "issuer": issuer, "subject": subject},
    )
    check_sso_binding(state, user, issuer, subject)
    if oidc_user_is_synced(state, user, issuer, subject, wanted):
        return caller
    actor = server_actor(state, caller, syncing=True)
    ts = now_iso()
    if session.get(UserRow, user) is None:  # the index row keys and listings refer to
        session.add(UserRow(name=user, roles="[]", created_at=ts, created_by=f"oidc:{issuer}"))
    append_event(
        session,
        ws.audit_key(),
        ts=ts,
        actor=actor,
        action="user.sync",
        payload={"name": user, "roles": wanted, "issuer": issuer, "subject": subject},
    )
    state.users.setdefault(user, set())
    state.sso_roles[user] = set(wanted)
    state.sso_identities[user] = (issuer, subject)
    return caller


def bind_user(
    ws: Workspace,
    session: Session,
    state: ChainState,
    *,
    actor: Actor,
    name: str,
    issuer: str,
    subject: str,
) -> None:
    """Bind ``name`` to one OIDC identity before anyone signs in with it (admins only).

    Without it the first sign-in with the name binds it, whoever makes it; with it, only
    this (issuer, subject) ever signs in as ``name`` (until ``unbind``).

    Raises:
        PermissionDeniedError: ``actor`` is not an admin.
        NotFoundError: No such user.
        BadInputError: The policy names no such issuer, or the subject is empty.
        ConflictError: ``name`` is already bound.

    """
    require_admin_scope(actor, to="bind users")
    policy = policy_in_force(ws, state)
    require_role(state, policy, actor.name, "admin", to="bind users")
    require_user(state, name)
    issuers = [i.issuer for i in policy.server.oidc]
    if issuer not in issuers:
        raise BadInputError(
            f"the policy names no OIDC issuer {issuer!r} (server.oidc: "
            f"{', '.join(issuers) or 'none'})"
        )
    if not subject.strip() or len(subject) > 255:
        raise BadInputError("--subject must be the identity's 'sub' claim (1-255 characters)")
    bound = state.sso_identities.get(name)
    if bound is not None:
        raise ConflictError(
            f"user {name!r} is already bound to {bound[0]}; an admin unbinds it first"
        )
    append_event(
        session,
        ws.audit_key(),
        ts=now_iso(),
        actor=actor,
        action="user.bind",
        payload={"name": name, "issuer": issuer, "subject": subject},
    )
    state.sso_identities[name] = (issuer, subject)


def unbind_user(
    ws: Workspace, session: Session, state: ChainState, *, actor: Actor, name: str
) -> tuple[str, str]:
    """Release ``name`` from the OIDC identity it is bound to (admins only), audited.

    The next sign-in as ``name`` binds it again, to whichever identity signs in first. The
    roles its issuer's groups gave are dropped with the binding; roles an admin granted stay.

    Raises:
        PermissionDeniedError: ``actor`` is not an admin.
        NotFoundError: No such user.
        ConflictError: ``name`` is bound to no OIDC identity.

    """
    require_admin_scope(actor, to="unbind users")
    require_role(state, policy_in_force(ws, state), actor.name, "admin", to="unbind users")
    require_user(state, name)
    bound = state.sso_identities.get(name)
    if bound is None:
        raise ConflictError(f"user {name!r} is bound to no OIDC identity")
    append_event(
        session,
        ws.audit_key(),
        ts=now_iso(),
        actor=actor,
        action="user.unbind",
        payload={"name": name, "issuer": bound[0], "subject": bound[1]},
    )
    del state.sso_identities[name]
    state.sso_roles.pop(name, None)
    return bound


def check_sso_binding(state: ChainState, user: str, issuer: str, subject: str) -> None:
    """Refuse an OIDC identity other than the one ``user``'s sign-ins are bound to.

    The first sign-in as a user binds the name to that (issuer, subject): an account that a
    second issuer, or a recycled address at the same issuer, gives the same name is refused
    until an admin runs ``ftguard user unbind``.

    Raises:
        AuthenticationError: ``user`` is bound to another identity.

    """
    bound = state.sso_identities.get(user)
    if bound is None and "admin" in state.users.get(user, set()):
        raise AuthenticationError(
            f"the ftguard user {user!r} is an admin, whom a sign-in at an identity provider "
            "never binds: admins use their own key or an API token"
        )
    if bound is not None and bound != (issuer, subject):
        raise AuthenticationError(
            f"the ftguard user {user!r} signs in as another identity than this token's "
            f"(issuer {issuer}); if it is the same person, an admin runs "
            f"'ftguard user unbind {user}' first"
        )


def oidc_user_is_synced(
    state: ChainState, user: str, issuer: str, subject: str, roles: list[str]
) -> bool:
    """Whether the chain already binds ``user`` to this identity with exactly these roles."""
    return (
        user in state.users
        and state.sso_identities.get(user) == (issuer, subject)
        and sorted(state.sso_roles.get(user, set())) == sorted(roles)
    )
