"""Identities, roles and their public keys."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ftguard.attest import PrivateKey, PublicKey, generate_key, load_private_key
from ftguard.control._audit import append_event
from ftguard.control._workspace import Workspace, now_iso, user_keys_dir
from ftguard.errors import BadInputError, ConflictError, NotFoundError, PermissionDeniedError
from ftguard.policy import ROLES, Policy
from ftguard.store import KeyRow, UserRow

__all__ = [
    "add_user",
    "create_key",
    "get_user",
    "list_users",
    "private_key_path",
    "registered_keys",
    "require_role",
    "roles_of",
    "signing_key_of",
]

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")


def _check_name(name: str) -> str:
    if not name or len(name) > 128 or not set(name) <= _NAME_CHARS:
        raise BadInputError(
            f"invalid user name {name!r}: use 1-128 letters, digits, '.', '_', '-' or '@'"
        )
    return name


def get_user(session: Session, name: str) -> UserRow:
    """The registered user ``name``.

    Raises:
        NotFoundError: No such user.

    """
    row = session.get(UserRow, name)
    if row is None:
        raise NotFoundError(f"unknown user {name!r} (an admin adds users with 'ftguard user add')")
    return row


def roles_of(session: Session, policy: Policy, name: str) -> set[str]:
    """Roles held by ``name``: those recorded in the store plus the policy's static grants."""
    row = session.get(UserRow, name)
    held = set(json.loads(row.roles)) if row is not None else set()
    held |= {role for role, names in policy.roles.items() if name in names}
    return held


def require_role(session: Session, policy: Policy, name: str, role: str, *, to: str) -> None:
    """Refuse unless ``name`` is a registered user holding ``role``.

    Raises:
        NotFoundError: Unknown user.
        PermissionDeniedError: The user lacks the role.

    """
    get_user(session, name)
    if role not in roles_of(session, policy, name):
        raise PermissionDeniedError(f"{name} may not {to}: this needs the {role} role")


def list_users(session: Session, policy: Policy) -> list[dict[str, object]]:
    """Every user with their roles and active key ids."""
    out: list[dict[str, object]] = []
    for row in session.scalars(select(UserRow).order_by(UserRow.name)):
        keys = session.scalars(
            select(KeyRow.keyid).where(KeyRow.user_name == row.name, KeyRow.revoked_at.is_(None))
        ).all()
        out.append(
            {
                "name": row.name,
                "roles": sorted(roles_of(session, policy, row.name)),
                "keys": list(keys),
                "created_at": row.created_at,
            }
        )
    return out


def add_user(
    ws: Workspace, session: Session, *, actor: str, name: str, roles: Iterable[str]
) -> UserRow:
    """Register a user with roles (admins only), audited in the same transaction."""
    _check_name(name)
    wanted = sorted(set(roles))
    if not wanted:
        raise BadInputError("give at least one --role")
    unknown = [r for r in wanted if r not in ROLES]
    if unknown:
        raise BadInputError(f"unknown role {unknown[0]!r}; roles are: {', '.join(ROLES)}")
    require_role(session, ws.policy(), actor, "admin", to="add users")
    if session.get(UserRow, name) is not None:
        raise ConflictError(f"user {name!r} already exists")
    ts = now_iso()
    row = UserRow(name=name, roles=json.dumps(wanted), created_at=ts, created_by=actor)
    session.add(row)
    append_event(
        session,
        ws.workspace_key(),
        ts=ts,
        actor=actor,
        action="user.add",
        payload={"name": name, "roles": wanted},
    )
    return row


def private_key_path(name: str) -> Path:
    """Where ``name``'s private key lives in the current OS user's key folder."""
    return user_keys_dir() / f"{_check_name(name)}.key"


def create_key(ws: Workspace, session: Session, *, actor: str, user: str) -> PublicKey:
    """Create an Ed25519 key for ``user``: private part to their key folder, public part registered.

    Only the user themself (or an admin, for bootstrapping) may create it.
    """
    get_user(session, user)
    if actor != user:
        require_role(session, ws.policy(), actor, "admin", to=f"create keys for {user}")
    path = private_key_path(user)
    if path.exists():
        raise ConflictError(f"{path} already exists: {user} already has a key in this key folder")
    key = generate_key()
    public = key.public
    ts = now_iso()
    session.add(KeyRow(keyid=public.keyid, user_name=user, public_key=public.b64, created_at=ts))
    append_event(
        session,
        ws.workspace_key(),
        ts=ts,
        actor=actor,
        action="key.register",
        payload={"user": user, "keyid": public.keyid, "public_key": public.b64},
    )
    session.flush()
    key.save(path)  # last: if the transaction fails before, nothing is left behind
    return public


def registered_keys(session: Session) -> dict[str, tuple[str, PublicKey]]:
    """Active keys by key id: (user, public key)."""
    rows = session.scalars(select(KeyRow).where(KeyRow.revoked_at.is_(None)))
    return {r.keyid: (r.user_name, PublicKey.from_b64(r.public_key)) for r in rows}


def signing_key_of(session: Session, name: str) -> PrivateKey:
    """Load ``name``'s private key from the key folder and check that it is registered to them.

    Raises:
        NotFoundError: No private key for ``name`` in the key folder.
        PermissionDeniedError: The key is not registered to ``name`` (or revoked).

    """
    path = private_key_path(name)
    if not path.exists():
        raise NotFoundError(
            f"no private key for {name} at {path}: create one with 'ftguard keys create --user {name}'"
        )
    key = load_private_key(path)
    row = session.get(KeyRow, key.public.keyid)
    if row is None or row.user_name != name or row.revoked_at is not None:
        raise PermissionDeniedError(f"the key at {path} is not a registered key of {name}")
    return key
