"""CLI: ``ftguard user`` and ``ftguard keys``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ftguard.cli._app import app
from ftguard.cli._common import (
    ActorOption,
    JsonOption,
    actor_or_default,
    console,
    print_json,
    workspace,
)
from ftguard.control import service
from ftguard.control._identities import private_key_path

user_app = typer.Typer(help="Manage users and their roles.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage signing keys.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(keys_app, name="keys")


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="User name.")],
    role: Annotated[list[str], typer.Option("--role", help="Role to grant (repeatable).")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a user with roles (admins only)."""
    result = service.add_user(workspace(), actor=actor_or_default(actor), name=name, roles=role)
    if as_json:
        print_json(result)
    else:
        console.print(f"added user {name} with roles {', '.join(sorted(set(role)))}")


@user_app.command("list")
def user_list(as_json: JsonOption = False) -> None:
    """List users, their roles and keys."""
    users = service.list_users(workspace())
    if as_json:
        print_json(users)
        return
    table = Table("user", "roles", "keys")
    for u in users:
        keys = u["keys"]
        assert isinstance(keys, list)
        table.add_row(
            str(u["name"]),
            ", ".join(map(str, u["roles"])),  # type: ignore[call-overload]
            ", ".join(k[:12] for k in keys),
        )
    console.print(table)


@keys_app.command("create")
def keys_create(
    user: Annotated[str, typer.Option("--user", help="Whose key to create.")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an Ed25519 key: the private key stays in your key folder (0600), the public is registered."""
    public = service.create_key(
        workspace(), actor=actor_or_default(actor) if actor else user, user=user
    )
    path = private_key_path(user)
    if as_json:
        print_json(
            {
                "user": user,
                "keyid": public.keyid,
                "public_key": public.b64,
                "private_key_path": str(path),
            }
        )
    else:
        console.print(f"created key {public.keyid[:16]} for {user}; private key: {path}")
