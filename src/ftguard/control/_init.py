"""Creating a workspace."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ftguard.attest import generate_key
from ftguard.control._audit import append_event, init_chain
from ftguard.control._identities import _check_name
from ftguard.control._workspace import WORKSPACE_DIRNAME, Workspace, now_iso
from ftguard.errors import ConflictError
from ftguard.policy import default_policy_yaml, parse_policy
from ftguard.store import MetaRow, UserRow

__all__ = ["init_workspace"]


def init_workspace(folder: Path, *, admin: str) -> Workspace:
    """Create ``folder/.ftguard`` with its database, default policy, workspace key and first admin.

    Raises:
        ConflictError: A workspace already exists there.

    """
    _check_name(admin)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder.resolve() / WORKSPACE_DIRNAME
    if (path / "config.json").exists():
        raise ConflictError(f"{path} is already an ftguard workspace")
    (path / "keys").mkdir(parents=True, exist_ok=True, mode=0o700)
    ws = Workspace(path)
    postgres = bool(os.environ.get("FTGUARD_DATABASE_URL"))
    key_path = ws.workspace_key_path
    if not key_path.exists():
        generate_key().save(key_path)
    key = ws.workspace_key()
    ws.workspace_pub_path.write_text(key.public.b64 + "\n")
    text = default_policy_yaml()
    parse_policy(text)  # the default must always be valid
    ws.policy_path.write_text(text)
    config = {"database": "postgresql" if postgres else "sqlite", "created_at": now_iso()}
    (path / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    store = ws.store
    store.migrate()
    with store.write() as session:
        if session.get(MetaRow, "workspace_key") is not None:
            raise ConflictError("the database already holds a workspace; use a fresh database")
        session.add(MetaRow(key="workspace_key", value=key.public.b64))
        init_chain(session, key)
        session.flush()
        ts = now_iso()
        session.add(
            UserRow(name=admin, roles=json.dumps(["admin"]), created_at=ts, created_by=admin)
        )
        append_event(
            session,
            key,
            ts=ts,
            actor=admin,
            action="workspace.init",
            payload={
                "admin": admin,
                "workspace_key": key.public.keyid,
                "policy": ws.policy_digest(),
            },
        )
    return ws
