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
    """Create a workspace: database, default policy, workspace key and the first admin."""
    from ftguard.control import default_actor

    ws = init_workspace(folder, admin=admin or default_actor())
    if as_json:
        print_json(
            {
                "workspace": str(ws.path),
                "database": ws.config["database"],
                "policy_digest": ws.policy_digest(),
            }
        )
        return
    console.print(f"initialised ftguard workspace in [bold]{ws.path}[/]")
    console.print(f"policy: {ws.policy_path} (digest {ws.policy_digest()[:12]})")


@policy_app.command("show")
def policy_show(as_json: JsonOption = False) -> None:
    """Print the workspace policy with its digest."""
    ws = workspace()
    policy = ws.policy()
    if as_json:
        print_json({"digest": policy_digest(policy), "policy": policy})
        return
    console.print(ws.policy_path.read_text())
    console.print(f"digest: {policy_digest(policy)}")


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
