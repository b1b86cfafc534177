"""CLI: ``ftguard init``, ``ftguard policy``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ftguard.cli._app import app
from ftguard.cli._common import JsonOption, console, print_json, workspace
from ftguard.control.service import init_workspace
from ftguard.policy import load_policy, policy_digest

policy_app = typer.Typer(help="Show and check the workspace policy.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")


@app.command("init")
def init(
    folder: Annotated[Path, typer.Argument(help="Folder to hold .ftguard/.")] = Path("."),
    admin: Annotated[str, typer.Option("--admin", help="Name of the first admin.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Create a workspace: database, default policy, audit and attestation keys, first admin.

    The first admin's own key (from your key folder, created there if missing) signs the
    first audit event; every later admin action is signed with it.
    """
    from rich.markup import escape

    from ftguard.control import default_actor, private_key_path

    name = admin or default_actor()
    ws = init_workspace(folder, admin=name)
    info = {
        "workspace": str(ws.path),
        "database": ws.config["database"],
        "policy_digest": ws.policy_digest(),
        "admin": name,
        "admin_key": str(private_key_path(name)),
        "audit_public_key": str(ws.audit_pub_path),
        "attestation_public_key": str(ws.attestation_pub_path),
    }
    if as_json:
        print_json(info)
        return
    console.print(f"initialised ftguard workspace in [bold]{escape(str(ws.path))}[/]")
    console.print(f"policy: {escape(str(ws.policy_path))} (digest {ws.policy_digest()[:12]})")
    console.print(
        f"admin {escape(name)}, key {escape(info['admin_key'])}; the serving side trusts "
        f"{escape(info['attestation_public_key'])}",
        highlight=False,
    )


@policy_app.command("set")
def policy_set(
    file: Annotated[Path, typer.Argument(help="The new policy YAML.")],
    actor: Annotated[
        str | None, typer.Option("--as", help="The admin making the change (signs it).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Admin: validate a policy and put it in force, signed into the audit log.

    Edit a copy, then set it: a policy file changed in place is refused by every decision.
    Jobs approved under the previous policy must be approved again.
    """
    from ftguard.cli._common import actor_or_default
    from ftguard.control.service import set_policy

    digest = set_policy(workspace(), actor=actor_or_default(actor), path=file)
    if as_json:
        print_json({"digest": digest})
    else:
        console.print(f"policy in force: digest {digest}")


@policy_app.command("show")
def policy_show(as_json: JsonOption = False) -> None:
    """Print the workspace policy with its digest."""
    ws = workspace()
    policy = ws.policy()
    if as_json:
        print_json({"digest": policy_digest(policy), "policy": policy})
        return
    # The file as written, comments included: plain text, never Rich markup.
    typer.echo(ws.policy_path.read_text(encoding="utf-8").rstrip("\n"))
    typer.echo(f"digest: {policy_digest(policy)}")


@policy_app.command("check")
def policy_check(
    file: Annotated[Path, typer.Argument(help="Policy YAML to validate.")],
    as_json: JsonOption = False,
) -> None:
    """Validate a policy file (exit 2 with the invalid field named)."""
    policy = load_policy(file)
    if as_json:
        print_json({"valid": True, "digest": policy_digest(policy)})
    else:
        console.print(f"valid policy, digest {policy_digest(policy)}")
