"""CLI: ``ftguard user`` and ``ftguard keys``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ftguard.cli._app import app
from ftguard.cli._common import (
    ActorOption,
    JsonOption,
    actor_or_default,
    console,
    print_json,
    remote_client,
    workspace,
)
from ftguard.control import private_key_path, service

if TYPE_CHECKING:
    from ftguard.attest import PublicKey
    from ftguard.cli._remote import RemoteClient

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
    """Admin: add a user with roles; signed with your own key."""
    client = remote_client(actor)
    if client is not None:
        result = client.call("POST", "/users", {"name": name, "roles": role})
    else:
        result = service.add_user(workspace(), actor=actor_or_default(actor), name=name, roles=role)
    if as_json:
        print_json(result)
    else:
        console.print(
            f"added user {escape(name)} with roles {escape(', '.join(result['roles']))}",
            highlight=False,
        )


@user_app.command("bind")
def user_bind(
    name: Annotated[str, typer.Argument(help="User name.")],
    issuer: Annotated[str, typer.Option("--issuer", help="An issuer the policy names.")],
    subject: Annotated[str, typer.Option("--subject", help="The identity's 'sub' claim.")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Admin: bind a user to one OIDC identity before their first sign-in.

    Without it, the first sign-in with the user's name binds it, whoever makes it.
    """
    client = remote_client(actor)
    body = {"issuer": issuer, "subject": subject}
    if client is not None:
        result = client.call("POST", f"/users/{name}/bind", body)
    else:
        result = service.bind_user(workspace(), actor=actor_or_default(actor), name=name, **body)
    if as_json:
        print_json(result)
    else:
        console.print(
            f"bound {escape(name)} to {escape(result['issuer'])} (subject "
            f"{escape(result['subject'])}): only that identity signs in as {escape(name)}",
            highlight=False,
        )


@user_app.command("unbind")
def user_unbind(
    name: Annotated[str, typer.Argument(help="User name.")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Admin: release a user from the OIDC identity their sign-ins are bound to.

    The first sign-in as a user binds the name to that issuer and subject; another identity
    with the same name is refused. Unbind when the same person's account really moved (a new
    identity provider, a recreated account): the next sign-in binds the name again.
    """
    client = remote_client(actor)
    if client is not None:
        result = client.call("POST", f"/users/{name}/unbind")
    else:
        result = service.unbind_user(workspace(), actor=actor_or_default(actor), name=name)
    if as_json:
        print_json(result)
    else:
        console.print(
            f"unbound {escape(name)} from {escape(result['issuer'])} "
            f"(subject {escape(result['subject'])}); the next sign-in binds it again",
            highlight=False,
        )


@user_app.command("list")
def user_list(as_json: JsonOption = False) -> None:
    """List users, their roles and keys."""
    users = _users()
    if as_json:
        print_json(users)
        return
    table = Table("user", "roles", "keys")
    for u in users:
        keys = u["keys"]
        assert isinstance(keys, list)
        table.add_row(
            escape(str(u["name"])),
            ", ".join(map(str, u["roles"])),  # type: ignore[call-overload]
            ", ".join(k[:12] for k in keys),
        )
    console.print(table)


@keys_app.command("create")
def keys_create(
    user: Annotated[
        str | None,
        typer.Option("--user", help="Whose key (default: --as, FTGUARD_USER or the OS user)."),
    ] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create your Ed25519 key and request its registration; an admin confirms it.

    The private key is written to your key folder (0600) and signs the request itself (proof
    that you hold it). Tell the admin the key id out of band: they run 'ftguard keys confirm'.
    """
    client = remote_client(actor)
    if client is not None:
        name, public = _create_key_remote(client, user)
    else:
        name = user or actor_or_default(actor)
        public = service.create_key(workspace(), user=name)
    path = private_key_path(name)
    if as_json:
        print_json(
            {
                "user": name,
                "keyid": public.keyid,
                "public_key": public.b64,
                "private_key_path": str(path),
                "status": "pending",
            }
        )
    else:
        console.print(
            f"created key {public.keyid} for {escape(name)}; private key: {escape(str(path))}\n"
            f"pending: an admin confirms it with 'ftguard keys confirm {public.keyid[:16]}' "
            "after checking this key id with you",
            highlight=False,
        )


@keys_app.command("confirm")
def keys_confirm(
    keyid: Annotated[
        str, typer.Argument(help="The requested key's id (or its first 8+ hex digits).")
    ],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Admin: confirm a requested key (check its id with its holder first); signed by you."""
    client = remote_client(actor)
    if client is not None:
        result = client.call("POST", f"/keys/{keyid.strip().lower()}/confirm")
    else:
        result = service.confirm_key(workspace(), actor=actor_or_default(actor), keyid=keyid)
    if as_json:
        print_json(result)
    else:
        console.print(
            f"confirmed key {result['keyid'][:16]} of {escape(result['user'])}", highlight=False
        )


@keys_app.command("revoke")
def keys_revoke(
    keyid: Annotated[str, typer.Argument(help="The key's id (or its first 8+ hex digits).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")] = "",
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a key (its owner or an admin): no signature by it counts from now on."""
    client = remote_client(actor)
    if client is not None:
        result = client.call("POST", f"/keys/{keyid.strip().lower()}/revoke", {"reason": reason})
    else:
        result = service.revoke_key(
            workspace(), actor=actor_or_default(actor), keyid=keyid, reason=reason
        )
    if as_json:
        print_json(result)
    else:
        console.print(
            f"revoked key {result['keyid'][:16]} of {escape(result['user'])}", highlight=False
        )


@keys_app.command("list")
def keys_list(as_json: JsonOption = False) -> None:
    """List every key with its user and status, as the verified audit chain has them."""
    users = _users()
    rows = [
        {"user": u["name"], "keyid": k, "status": status}
        for u in users
        for status, field in (
            ("active", "keys"),
            ("pending", "pending_keys"),
            ("revoked", "revoked_keys"),
        )
        for k in u[field]  # type: ignore[attr-defined]
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("user", "key id", "status")
    for r in rows:
        table.add_row(escape(str(r["user"])), str(r["keyid"]), str(r["status"]))
    console.print(table)


def _users() -> list[dict[str, object]]:
    client = remote_client()
    if client is not None:
        return list(client.call("GET", "/users"))
    return service.list_users(workspace())


def _create_key_remote(client: RemoteClient, user: str | None) -> tuple[str, PublicKey]:
    """Make your key here and register its public half with the server (proof of possession)."""
    import base64

    from ftguard.attest import generate_key
    from ftguard.control import key_request_message
    from ftguard.errors import BadInputError, ConflictError

    me = str(client.call("GET", "/whoami")["user"])
    if user is not None and user != me:
        raise BadInputError(f"against a server you create your own key ({me}), not {user}'s")
    path = private_key_path(me)
    if path.exists():
        raise ConflictError(f"{path} already holds a key of {me}; revoke it and move it away first")
    key = generate_key()
    proof = base64.b64encode(key.sign(key_request_message(me, key.public.keyid))).decode()
    client.call("POST", "/keys", {"public_key": key.public.b64, "proof": proof})
    key.save(path)
    return me, key.public
