"""CLI: ``ftguard server``, ``ftguard token``, ``ftguard login``, ``logout``, ``whoami``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ftguard._files import expand_user
from ftguard._objects import ObjectRoot, is_object_uri, parse_root
from ftguard.attest import load_public_key_file
from ftguard.cli._app import app
from ftguard.cli._common import (
    ActorOption,
    JsonOption,
    actor_or_default,
    console,
    print_json,
    remote_client,
    user_text,
    workspace,
)
from ftguard.control import find_workspace, service
from ftguard.errors import BadInputError, MissingDependencyError, VerificationError

server_app = typer.Typer(
    help="Run the team server (the control plane over HTTP, and the approvers' console).",
    invoke_without_command=True,
)
token_app = typer.Typer(help="API tokens for the team server.", no_args_is_help=True)
app.add_typer(server_app, name="server")
app.add_typer(token_app, name="token")


def storage_roots(values: list[str]) -> dict[str, Path | ObjectRoot]:
    """``NAME=FOLDER`` or ``NAME=s3://bucket/prefix`` options as a mapping of storage roots."""
    roots: dict[str, Path | ObjectRoot] = {}
    for value in values:
        name, sep, folder = value.partition("=")
        if not sep or not name or not folder:
            raise BadInputError(f"--storage-root takes NAME=FOLDER or NAME=URI, not {value!r}")
        if is_object_uri(folder):
            try:
                roots[name] = parse_root(folder)
            except BadInputError as exc:
                raise BadInputError(f"--storage-root {name}: {exc}") from None
        else:
            roots[name] = expand_user(folder, what=f"--storage-root {name}").resolve()
    return roots


@server_app.callback()
def server(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8750,
    db: Annotated[
        str | None, typer.Option("--db", help="Database URL (default: the workspace's).")
    ] = None,
    storage_root: Annotated[
        list[str] | None,
        typer.Option(
            "--storage-root",
            help="NAME=FOLDER or NAME=s3://bucket/prefix job inputs may be read from (repeat).",
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Settings file (YAML; see docs/server.md).")
    ] = None,
    ssl_certfile: Annotated[
        Path | None, typer.Option("--ssl-certfile", help="TLS certificate (PEM).")
    ] = None,
    ssl_keyfile: Annotated[
        Path | None, typer.Option("--ssl-keyfile", help="TLS private key (PEM).")
    ] = None,
    analysis_workers: Annotated[
        int | None,
        typer.Option(
            "--analysis-workers",
            min=0,
            help="Processes for reviews, weight diffs and evaluations (default 1; 0: in-thread).",
        ),
    ] = None,
) -> None:
    """Serve the workspace's control plane over HTTP (needs ftguard[server])."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingDependencyError("uvicorn", "server") from exc
    from ftguard.policy import read_yaml
    from ftguard.server import ServerSettings, create_app, settle_heap

    values: dict[str, object] = {}
    if config is not None:
        from ftguard._files import read_text_file

        loaded = read_yaml(read_text_file(config, what="server settings"), source=str(config))
        if not isinstance(loaded, dict):
            raise BadInputError(f"{config}: the settings must be a mapping")
        values.update(loaded)
    values.setdefault("workspace", str(find_workspace().root))
    if db:
        values["database_url"] = db
    if storage_root:
        values["storage_roots"] = storage_roots(storage_root)
    if ssl_certfile is not None:
        values["secure_cookies"] = True
    if analysis_workers is not None:
        values["analysis_workers"] = analysis_workers
    try:
        settings = ServerSettings.model_validate(values)
    except ValueError as exc:
        raise BadInputError(f"invalid server settings: {exc}") from exc
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("ftguard.server")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    application = create_app(settings)
    settle_heap()
    console.print(
        f"ftguard server on {'https' if ssl_certfile else 'http'}://{host}:{port}/", style="bold"
    )
    uvicorn.run(
        application,
        host=host,
        port=port,
        access_log=False,
        log_level="warning",
        ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
        ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
        timeout_graceful_shutdown=30,
    )


@server_app.command("init")
def server_init(actor: ActorOption = None, as_json: JsonOption = False) -> None:
    """An admin registers the team server's key in the audit chain (made if missing)."""
    keyid = service.register_server(workspace(), actor=actor_or_default(actor))
    if as_json:
        print_json({"server_keyid": keyid})
        return
    console.print(f"team server key registered: {keyid[:16]}")


@token_app.command("create")
def token_create(
    user: Annotated[str, typer.Option("--user", help="Whose token.")],
    expires: Annotated[str, typer.Option("--expires", help="Lifetime: 30d, 12h or 90m.")] = "90d",
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="Limit the token to a scope (repeatable): read, submit, analyze, approve, run, "
            "keys, admin. Default: everything the user's roles allow.",
        ),
    ] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Issue an API token for a user (admins); it is shown only this once."""
    scopes = list(scope) if scope else None
    client = remote_client(actor)
    if client is not None:
        body = {"user": user, "expires": expires, "scopes": scopes}
        result = client.call("POST", "/tokens", body)
    else:
        result = service.create_token(
            workspace(), actor=actor_or_default(actor), user=user, expires=expires, scopes=scopes
        )
    if as_json:
        print_json(result)
        return
    console.print(
        user_text(
            f"token {result['token_id']} for {result['user']}, expires {result['expires_at']}"
            + (f", limited to {', '.join(result['scopes'])}" if result.get("scopes") else "")
        )
    )
    console.print("copy it now, it is not shown again:")
    console.print(user_text(result["token"]), soft_wrap=True)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (not the token).")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke an API token (its owner or an admin)."""
    client = remote_client(actor)
    if client is not None:
        result = client.call("DELETE", f"/tokens/{token_id}")
    else:
        result = service.revoke_token(workspace(), actor=actor_or_default(actor), token_id=token_id)
    if as_json:
        print_json(result)
        return
    console.print(user_text(f"token {result['token_id']} of {result['user']} revoked"))


@token_app.command("list")
def token_list(as_json: JsonOption = False) -> None:
    """API tokens: owner, status, expiry and last use (never the secrets)."""
    client = remote_client()
    rows = client.call("GET", "/tokens") if client is not None else service.list_tokens(workspace())
    if as_json:
        print_json(rows)
        return
    table = Table("token id", "user", "status", "scopes", "expires", "last used")
    for r in rows:
        limited = r.get("scopes")
        scopes = ", ".join(map(str, limited)) if isinstance(limited, list) else "all"
        table.add_row(
            *(user_text(str(r.get(k) or "-"))[:32] for k in ("token_id", "user", "status")),
            user_text(scopes),
            *(user_text(str(r.get(k) or "-"))[:32] for k in ("expires_at", "last_used_at")),
        )
    console.print(table)


@app.command("login")
def login(
    server_url: Annotated[str, typer.Option("--server", help="The team server's URL.")],
    token: Annotated[
        str | None,
        typer.Option("--token", help="Your API token (default: FTGUARD_TOKEN, else asked)."),
    ] = None,
    server_key: Annotated[
        Path | None,
        typer.Option("--server-key", help="The server's public key file, to pin (recommended)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Make every command a client of a team server (checks the token, pins the server key)."""
    import os

    from ftguard.cli._remote import RemoteClient, save_login

    secret = token or os.environ.get("FTGUARD_TOKEN") or typer.prompt("API token", hide_input=True)
    client = RemoteClient(server_url, secret)
    me = client.call("GET", "/whoami")
    keys = client.call("GET", "/server-key")
    if server_key is not None and load_public_key_file(server_key).b64 != keys["server_key"]:
        raise VerificationError(
            f"the server's key {keys['server_keyid'][:16]} is not the key in {server_key}"
        )
    path = save_login(server_url, secret, str(keys["server_key"]))
    if as_json:
        print_json(
            {
                "server": server_url,
                "user": me["user"],
                "roles": me["roles"],
                "server_keyid": keys["server_keyid"],
                "saved": str(path),
            }
        )
        return
    roles = ", ".join(me["roles"]) or "no roles"
    console.print(user_text(f"signed in to {server_url} as {me['user']} ({roles})"))
    console.print(
        user_text(
            f"pinned the server key {keys['server_keyid']}: check it with your admin "
            "(or pass --server-key FILE to pin a key you were given)"
        )
    )


@app.command("logout")
def logout() -> None:
    """Forget the team server: commands use the local workspace again."""
    from ftguard.cli._remote import client_config_path

    path = client_config_path()
    path.unlink(missing_ok=True)
    console.print("signed out: commands use the local workspace")


@app.command("whoami")
def whoami(as_json: JsonOption = False) -> None:
    """Who the team server takes you for, and your roles."""
    client = remote_client()
    if client is None:
        raise BadInputError("not signed in to a team server ('ftguard login --server URL')")
    me = client.call("GET", "/whoami")
    if as_json:
        print_json(me)
        return
    scopes = me.get("scopes")
    limited = f"; this token is limited to {', '.join(scopes)}" if scopes else ""
    console.print(
        user_text(
            f"{me['user']} ({', '.join(me['roles']) or 'no roles'}) at {client.server}{limited}"
        )
    )
