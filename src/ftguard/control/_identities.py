"""Identities, roles and keys, as the verified audit chain puts them in force.

In local mode a user *is* the holder of their private key: acting as ``--as NAME`` loads
NAME's private key from the caller's own key folder, and the chain must say that key is an
active key of NAME; every event the action writes is signed with it. A key enters the chain in
two steps: its holder requests it with a signature made by the key itself (proof of
possession), and an admin confirms it with the admin's own key. Keys can be revoked by their
owner or an admin; verifications after the revocation refuse them. The ``users`` and ``keys``
tables are an index for listing; nothing is decided from them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from ftguard.attest import PrivateKey, PublicKey, generate_key, load_private_key
from ftguard.control._audit import append_event, replay_chain
from ftguard.control._chain import Actor, ChainState, KeyRecord, key_request_message
from ftguard.control._witness import check_witnessed, newest_witnessed
from ftguard.control._workspace import Workspace, now_iso, user_keys_dir
from ftguard.errors import (
    BadInputError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    VerificationError,
)
from ftguard.policy import ROLES, Policy
from ftguard.store import KeyRow, MetaRow, UserRow, in_write_transaction

__all__ = [
    "Caller",
    "ServerCaller",
    "acting",
    "add_user",
    "authenticate",
    "chain_state",
    "chain_view",
    "check_name",
    "confirm_key",
    "find_key",
    "list_users",
    "name_of",
    "policy_in_force",
    "private_key_path",
    "register_key",
    "request_key",
    "require_admin_scope",
    "require_role",
    "require_user",
    "revoke_key",
    "server_actor",
]


@dataclass(frozen=True)
class ServerCaller:
    """A user the team server authenticated: the server signs their events with its own key.

    ``via`` is how: ``{"method": "token", "token_id": ...}`` or ``{"method": "oidc",
    "issuer": ..., "subject": ...}``; it is recorded in each event.
    """

    name: str
    server_key: PrivateKey
    via: dict[str, str]
    scopes: frozenset[str] | None = None
    """What the caller's API token may do (:data:`TOKEN_SCOPES`); None: all the user may."""


TOKEN_SCOPES = ("read", "submit", "analyze", "approve", "run", "keys", "admin")
"""What an API token can be limited to; the team server checks each route's scope:

- ``read``: every read and ``POST /verify`` (every scoped token has it);
- ``submit``: submit and cancel jobs;
- ``analyze``: run a job's review, weight report and behaviour comparison, and ask for its gate;
- ``approve``: fetch approval statements, post approvals, reject, override;
- ``run``: start a run of an approved job and report its end;
- ``keys``: register and revoke the user's own keys and tokens;
- ``admin``: add and unbind users, confirm keys, issue tokens.

A scope never grants a role: a token does what both its scopes and its user's roles allow.
"""


Caller = str | ServerCaller
"""Who acts: a user name (local mode: the caller holds that user's key) or a server caller."""


def name_of(caller: Caller) -> str:
    """The user name of a caller."""
    return caller.name if isinstance(caller, ServerCaller) else caller


_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")


def check_name(name: str) -> str:
    """``name`` if it is a valid user name.

    Raises:
        BadInputError: It is not.

    """
    if not name or len(name) > 128 or not set(name) <= _NAME_CHARS:
        raise BadInputError(
            f"invalid user name {name!r}: use 1-128 letters, digits, '.', '_', '-' or '@'"
        )
    return name


def chain_state(ws: Workspace, session: Session) -> ChainState:
    """Verify the audit chain against the workspace's audit key and replay it.

    Raises:
        VerificationError: The chain does not verify, or the database was made under
            another audit key.

    """
    key = ws.audit_public_key()
    cache = ws.chain_cache
    # A long-running process checks this once: the chain itself is verified against the
    # workspace's key on every call, so a database swapped later fails that check instead.
    if cache is None or cache.database_audit_key != key.b64:
        meta = session.get(MetaRow, "audit_key")
        if meta is None or meta.value != key.b64:
            raise VerificationError("the database's audit key is not this workspace's audit key")
        if cache is not None:
            cache.database_audit_key = key.b64
    if cache is not None:
        verification, state = cache.replay(session, key)
    else:
        verification, state = replay_chain(session, key)
    if state is None:
        raise VerificationError(
            f"the audit log does not verify ({verification.problem}); refusing to act"
        )
    if in_write_transaction():
        _check_not_rolled_back(ws, session, key, state)
    else:
        _check_witness_for_reads(ws, session, key, state)
    return state


def _check_witness_for_reads(
    ws: Workspace, session: Session, key: PublicKey, state: ChainState
) -> None:
    """Refuse, for a read, a log rolled back behind the witness.

    Otherwise a restored snapshot would bring back revoked tokens and show retired state. A
    long-running server asks the witness again when its verified state moves, and at least
    every :data:`WITNESS_RECHECK_S` seconds (in between it serves the state it last found
    witnessed, never an older one).
    """
    cache = ws.chain_cache
    if cache is None:
        _check_not_rolled_back(ws, session, key, state)
        return
    point = (state.seq, state.head_hash)
    now = time.monotonic()
    if cache.witnessed_point != point or now - cache.witnessed_at > WITNESS_RECHECK_S:
        _check_not_rolled_back(ws, session, key, state)
        cache.witnessed_point, cache.witnessed_at = point, now


def _check_not_rolled_back(
    ws: Workspace, session: Session, key: PublicKey, state: ChainState
) -> None:
    """Refuse to decide on a log that no longer extends the witness's newest head.

    A database restored from an older snapshot verifies on its own (every head in it was
    validly signed) and would bring back revoked keys and tokens and consumed approvals.
    Every decision runs in a write transaction, whose view of the log is the newest committed
    one, and a head is published to the witness only after its transaction commits: a
    witness ahead of the log, or a log whose event at the witnessed sequence number has
    another hash, was rolled back or rewritten.

    Raises:
        VerificationError: The log is behind or beside the witness's newest head.

    """
    newest = newest_witnessed(ws.witness())
    if newest is None:
        return
    problem = check_witnessed(session, key, [newest], chain_seq=state.seq)
    if problem is not None:
        raise VerificationError(
            f"{problem}; refusing to act (see 'ftguard audit verify --witness')"
        )


def check_witness(ws: Workspace, session: Session, state: ChainState) -> None:
    """Refuse a verified log that no longer extends the witness's newest head.

    Raises:
        VerificationError: The log was rolled back or rewritten behind the witness.

    """
    _check_not_rolled_back(ws, session, ws.audit_public_key(), state)


def chain_view(ws: Workspace, session: Session) -> ChainState:
    """Like :func:`chain_state`, for callers that only read the state (never mutate it).

    A long-running server then shares its last verified state instead of copying it.
    """
    if ws.chain_cache is None:
        return chain_state(ws, session)
    key = ws.audit_public_key()
    cache = ws.chain_cache
    verification, state = cache.view(session, key)
    if state is None:
        raise VerificationError(
            f"the audit log does not verify ({verification.problem}); refusing to act"
        )
    _check_witness_for_reads(ws, session, key, state)
    return state


WITNESS_RECHECK_S = 10.0
"""How long a long-running server's readers trust their last look at the witness."""


def policy_in_force(ws: Workspace, state: ChainState) -> Policy:
    """The workspace policy, if it is the one the chain's last ``policy.set`` recorded.

    Raises:
        VerificationError: The policy file was changed without ``ftguard policy set``.

    """
    policy, digest = ws.policy_with_digest()
    if digest != state.policy_digest:
        raise VerificationError(
            f"the policy file {ws.policy_path} is not the policy in force (its digest "
            f"{digest[:12]}, recorded {str(state.policy_digest)[:12]}): it was changed without "
            "'ftguard policy set', which an admin signs"
        )
    return policy


def acting(ws: Workspace, session: Session, actor: Caller) -> tuple[ChainState, Policy, Actor]:
    """What every decision starts from: the verified chain, the policy in force, the actor.

    Raises:
        VerificationError: The chain does not verify, or the policy file is not the one in force.
        NotFoundError: ``actor`` is no user.
        PermissionDeniedError: The caller does not hold an active key of ``actor``.

    """
    state = chain_state(ws, session)
    return state, policy_in_force(ws, state), authenticate(state, actor)


def private_key_path(name: str) -> Path:
    """Where ``name``'s private key lives in the current OS user's key folder."""
    return user_keys_dir() / f"{check_name(name)}.key"


def authenticate(state: ChainState, caller: Caller) -> Actor:
    """Act as ``caller``: in local mode, load their private key from the caller's key folder.

    A :class:`ServerCaller` signs with the team server's key, which must be registered and in
    force, as must the API token it was authenticated with.

    Raises:
        NotFoundError: The caller is no user.
        PermissionDeniedError: The caller does not hold an active key of the user (local
            mode), or the server's key or the caller's token is not in force.

    """
    if isinstance(caller, ServerCaller):
        return server_actor(state, caller)
    name = caller
    require_user(state, name)
    path = private_key_path(name)
    if not path.exists():
        raise PermissionDeniedError(
            f"cannot act as {name}: no private key of {name} in {path.parent} "
            f"(only {name} holds it; {name} creates one with 'ftguard keys create')"
        )
    return state.authenticate(name, load_private_key(path))


def server_actor(state: ChainState, caller: ServerCaller, *, syncing: bool = False) -> Actor:
    """The :class:`Actor` the server signs as for ``caller`` (its key and token in force).

    ``syncing``: the caller's own ``user.sync`` (an OIDC user not yet in the chain); any other
    act by an unknown user is refused here, before an event the replay would reject is written.
    """
    if not syncing:
        require_user(state, caller.name)
    server = state.servers.get(caller.server_key.public.keyid)
    if server is None or server.status != "active":
        raise PermissionDeniedError(
            "this server's key is not registered in the audit chain (an admin registers it "
            "with 'ftguard server init')"
        )
    if caller.via.get("method") == "token":
        token = state.tokens.get(caller.via.get("token_id", ""))
        if token is None or token.revoked or token.user != caller.name:
            raise PermissionDeniedError("the API token is not in force")
        if token.expires_at and datetime.fromisoformat(token.expires_at) <= datetime.now(UTC):
            raise PermissionDeniedError("the API token has expired")
    elif not syncing and not state.still_bound(caller.name, caller.via):
        raise PermissionDeniedError(
            f"{caller.name} is no longer bound to this sign-in: sign in again"
        )
    return Actor(
        name=caller.name, key=caller.server_key, via=dict(caller.via), scopes=caller.scopes
    )


def require_admin_scope(actor: Actor, *, to: str) -> None:
    """Refuse an act that needs the admin role when the caller's token lacks the admin scope.

    Raises:
        PermissionDeniedError: The token is limited to other scopes.

    """
    if not actor.may_administer():
        raise PermissionDeniedError(
            f"this API token is limited to {', '.join(sorted(actor.scopes or ()))}: "
            f"to {to} it needs the admin scope"
        )


def require_user(state: ChainState, name: str) -> None:
    """Refuse unless ``name`` is a user the chain knows.

    Raises:
        NotFoundError: Unknown user.

    """
    if name not in state.users:
        raise NotFoundError(f"unknown user {name!r} (an admin adds users with 'ftguard user add')")


def require_role(
    state: ChainState, policy: Policy | None, name: str, role: str, *, to: str
) -> None:
    """Refuse unless ``name`` is a user holding ``role`` in the chain (or by the policy).

    ``policy`` is None where only the chain's grants count (``admin`` is never granted by a
    policy, so an admin can repair a policy file that is not the one in force).

    Raises:
        NotFoundError: Unknown user.
        PermissionDeniedError: The user lacks the role.

    """
    require_user(state, name)
    if role not in state.roles_of(name, policy.roles if policy is not None else None):
        raise PermissionDeniedError(f"{name} may not {to}: this needs the {role} role")


def list_users(state: ChainState, policy: Policy) -> list[dict[str, object]]:
    """Every user with their roles and keys as the chain has them."""
    out: list[dict[str, object]] = []
    for name in sorted(state.users):
        keys = [r for r in state.keys.values() if r.user == name]
        out.append(
            {
                "name": name,
                "roles": sorted(state.roles_of(name, policy.roles)),
                "keys": [r.keyid for r in keys if r.status == "active"],
                "pending_keys": [r.keyid for r in keys if r.status == "pending"],
                "revoked_keys": [r.keyid for r in keys if r.status == "revoked"],
                "sso": _sso_binding(state, name),
            }
        )
    return out


def _sso_binding(state: ChainState, name: str) -> dict[str, str] | None:
    bound = state.sso_identities.get(name)
    return None if bound is None else {"issuer": bound[0], "subject": bound[1]}


def add_user(
    ws: Workspace,
    session: Session,
    state: ChainState,
    *,
    actor: Actor,
    name: str,
    roles: Iterable[str],
) -> list[str]:
    """Register a user with roles (admins only), signed by the admin, audited."""
    check_name(name)
    wanted = sorted(set(roles))
    if not wanted:
        raise BadInputError("give at least one --role")
    unknown = [r for r in wanted if r not in ROLES]
    if unknown:
        raise BadInputError(f"unknown role {unknown[0]!r}; roles are: {', '.join(ROLES)}")
    require_role(state, policy_in_force(ws, state), actor.name, "admin", to="add users")
    if name in state.users:
        raise ConflictError(f"user {name!r} already exists")
    ts = now_iso()
    if session.get(UserRow, name) is None:
        session.add(
            UserRow(name=name, roles=json.dumps(wanted), created_at=ts, created_by=actor.name)
        )
    append_event(
        session,
        ws.audit_key(),
        ts=ts,
        actor=actor,
        action="user.add",
        payload={"name": name, "roles": wanted},
    )
    return wanted


def _set_aside_revoked(state: ChainState, user: str, path: Path) -> None:
    """Move an earlier, revoked private key of ``user`` out of the way of a new one."""
    if not path.exists():
        return
    old = load_private_key(path)
    record = state.keys.get(old.public.keyid)
    if record is not None and record.status == "revoked":
        path.rename(path.with_name(f"{user}.{record.keyid[:12]}.revoked.key"))
        return
    status = "pending confirmation" if record and record.status == "pending" else "in force"
    raise ConflictError(
        f"{path} already holds a key of {user} ({status}); revoke it first "
        "('ftguard keys revoke KEYID') to replace it"
    )


def request_key(ws: Workspace, session: Session, state: ChainState, *, user: str) -> PublicKey:
    """Create a key for ``user`` in the caller's key folder and request its registration.

    The request is signed with the new key itself (proof of possession); the key counts
    only once an admin confirms it (:func:`confirm_key`).
    """
    require_user(state, user)
    path = private_key_path(user)
    _set_aside_revoked(state, user, path)
    key = generate_key()
    public = key.public
    ts = now_iso()
    if session.get(KeyRow, public.keyid) is None:
        session.add(
            KeyRow(keyid=public.keyid, user_name=user, public_key=public.b64, created_at=ts)
        )
    append_event(
        session,
        ws.audit_key(),
        ts=ts,
        actor=Actor(name=user, key=key),
        action="key.request",
        payload={"user": user, "keyid": public.keyid, "public_key": public.b64},
    )
    session.flush()
    key.save(path)  # last: if the transaction fails before, nothing is left behind
    return public


def register_key(
    ws: Workspace,
    session: Session,
    state: ChainState,
    *,
    actor: Actor,
    public_key: str,
    proof: str,
) -> PublicKey:
    """Request registration of ``actor``'s key made elsewhere (a browser, a remote CLI).

    ``proof`` is the new key's signature of :func:`key_request_message` (base64); it is
    recorded, so the chain's replay checks the proof of possession again. The key counts
    once an admin confirms it.

    Raises:
        BadInputError: Not an Ed25519 public key.
        VerificationError: The proof does not verify.
        ConflictError: The key is registered already.

    """
    import base64
    import binascii

    if actor.via is None:
        raise BadInputError("in local mode a key is made and requested with 'ftguard keys create'")
    try:
        public = PublicKey.from_b64(public_key.strip())
        signature = base64.b64decode(proof.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadInputError("not a base64 Ed25519 public key and signature") from exc
    if not public.verify(signature, key_request_message(actor.name, public.keyid)):
        raise VerificationError("the key's proof of possession does not verify")
    if public.keyid in state.keys or public.keyid in state.servers:
        raise ConflictError(f"key {public.keyid[:16]} is registered already")
    ts = now_iso()
    if session.get(KeyRow, public.keyid) is None:
        session.add(
            KeyRow(keyid=public.keyid, user_name=actor.name, public_key=public.b64, created_at=ts)
        )
    append_event(
        session,
        ws.audit_key(),
        ts=ts,
        actor=actor,
        action="key.request",
        payload={
            "user": actor.name,
            "keyid": public.keyid,
            "public_key": public.b64,
            "proof": base64.b64encode(signature).decode(),
        },
    )
    return public


def find_key(state: ChainState, keyid: str) -> KeyRecord:
    """The key whose id is ``keyid`` or starts with it (at least 8 hex digits).

    Raises:
        BadInputError: Too short a prefix.
        NotFoundError: No such key.
        ConflictError: The prefix names several keys.

    """
    prefix = keyid.strip().lower()
    if len(prefix) < 8:
        raise BadInputError("give at least the first 8 hex digits of the key id")
    matches = [r for k, r in state.keys.items() if k.startswith(prefix)]
    if not matches:
        raise NotFoundError(f"no registered or requested key has id {keyid}")
    if len(matches) > 1:
        raise ConflictError(f"{len(matches)} keys start with {keyid}: give more digits")
    return matches[0]


def confirm_key(
    ws: Workspace, session: Session, state: ChainState, *, actor: Actor, keyid: str
) -> KeyRecord:
    """An admin confirms a requested key (after checking its id with its holder)."""
    require_role(state, policy_in_force(ws, state), actor.name, "admin", to="confirm keys")
    record = find_key(state, keyid)
    if record.status != "pending":
        raise ConflictError(
            f"key {record.keyid[:16]} of {record.user} is {record.status}, not pending"
        )
    append_event(
        session,
        ws.audit_key(),
        ts=now_iso(),
        actor=actor,
        action="key.confirm",
        payload={"user": record.user, "keyid": record.keyid},
    )
    record.status = "active"
    return record


def revoke_key(
    ws: Workspace,
    session: Session,
    state: ChainState,
    *,
    actor: Actor,
    keyid: str,
    reason: str,
) -> KeyRecord:
    """Revoke a key (its owner or an admin); no verification after this accepts it."""
    record = find_key(state, keyid)
    if record.user != actor.name:
        require_admin_scope(actor, to=f"revoke {record.user}'s keys")
        require_role(
            state,
            policy_in_force(ws, state),
            actor.name,
            "admin",
            to=f"revoke {record.user}'s keys",
        )
    if record.status == "revoked":
        raise ConflictError(f"key {record.keyid[:16]} of {record.user} is already revoked")
    ts = now_iso()
    append_event(
        session,
        ws.audit_key(),
        ts=ts,
        actor=actor,
        action="key.revoke",
        payload={"user": record.user, "keyid": record.keyid, "reason": reason.strip()},
    )
    row = session.get(KeyRow, record.keyid)
    if row is not None:
        row.revoked_at = ts
    record.status = "revoked"
    return record
