"""Creating a workspace."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ftguard.attest import PrivateKey, generate_key, load_private_key
from ftguard.control._audit import append_event, init_chain
from ftguard.control._chain import Actor
from ftguard.control._identities import check_name, private_key_path
from ftguard.control._workspace import WORKSPACE_DIRNAME, Workspace, now_iso
from ftguard.errors import BadInputError, ConflictError
from ftguard.policy import default_policy_yaml, parse_policy
from ftguard.store import KeyRow, MetaRow, UserRow

__all__ = ["init_workspace"]


def _new_key(path: Path) -> PrivateKey:
    if not path.exists():
        generate_key().save(path)
    return load_private_key(path)


def _admin_key(admin: str) -> PrivateKey:
    """The first admin's own key: the one in their key folder, or a new one written there."""
    return _new_key(private_key_path(admin))


def init_workspace(folder: Path, *, admin: str) -> Workspace:
    """Create ``folder/.ftguard`` with its database, policy, keys and first admin.

    The workspace gets two owner-only keys (audit head, attestations). The first admin's own
    key (from the caller's key folder, created there when missing) signs the first event,
    which registers it: every later admin action is signed with it.

    Raises:
        ConflictError: A workspace already exists there.

    """
    check_name(admin)
    path = folder.resolve() / WORKSPACE_DIRNAME
    if (path / "config.json").exists():
        raise ConflictError(f"{path} is already an ftguard workspace")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (path / "keys").mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise BadInputError(f"cannot create the workspace in {folder}: {exc.strerror}") from exc
    ws = Workspace(path)
    postgres = bool(os.environ.get("FTGUARD_DATABASE_URL"))
    audit_key = _new_key(ws.audit_key_path)
    attestation_key = _new_key(ws.attestation_key_path)
    admin_actor = Actor(name=admin, key=_admin_key(admin))
    text = default_policy_yaml()
    parse_policy(text)  # the default must always be valid
    config = {"database": "postgresql" if postgres else "sqlite", "created_at": now_iso()}
    try:
        ws.audit_pub_path.write_text(audit_key.public.b64 + "\n")
        ws.attestation_pub_path.write_text(attestation_key.public.b64 + "\n")
        ws.policy_path.write_text(text)
        (path / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    except OSError as exc:
        raise BadInputError(f"cannot write the workspace in {path}: {exc.strerror}") from exc
    store = ws.store
    store.migrate()
    with store.write() as session:
        if session.get(MetaRow, "audit_key") is not None:
            raise ConflictError("the database already holds a workspace; use a fresh database")
        session.add(MetaRow(key="audit_key", value=audit_key.public.b64))
        session.add(MetaRow(key="attestation_key", value=attestation_key.public.b64))
        init_chain(session, audit_key)
        session.flush()
        ts = now_iso()
        admin_public = admin_actor.key.public
        session.add(
            UserRow(name=admin, roles=json.dumps(["admin"]), created_at=ts, created_by=admin)
        )
        session.flush()
        session.add(
            KeyRow(
                keyid=admin_public.keyid,
                user_name=admin,
                public_key=admin_public.b64,
                created_at=ts,
            )
        )
        session.flush()
        append_event(
            session,
            audit_key,
            ts=ts,
            actor=admin_actor,
            action="workspace.init",
            payload={
                "admin": admin,
                "admin_key": admin_public.b64,
                "audit_key": audit_key.public.keyid,
                "attestation_key": attestation_key.public.keyid,
                "policy": ws.policy_digest(),
            },
        )
    return ws
