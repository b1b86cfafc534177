"""Helpers shared by the command modules: options, JSON output, tables."""

from __future__ import annotations

import json
import re
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.text import Text

from ftguard.control import Workspace, default_actor, find_workspace
from ftguard.errors import BadInputError

if TYPE_CHECKING:
    from ftguard.cli._remote import RemoteClient

__all__ = [
    "ActorOption",
    "JsonOption",
    "actor_or_default",
    "console",
    "err_console",
    "print_json",
    "remote_client",
    "user_text",
    "workspace",
]

console = Console()
err_console = Console(stderr=True)

ActorOption = Annotated[
    str | None,
    typer.Option("--as", help="Identity to act as (default: FTGUARD_USER or the OS user)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")]

# C0 and C1 control characters (C1 holds CSI, \x9b) and the Unicode line separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def user_text(value: object, style: str = "") -> Text:
    r"""Text a user supplied, ready to print: never read as Rich markup or emoji codes.

    Newlines and other control characters are shown escaped (``\n``), so a purpose or a
    path cannot forge extra lines or move the cursor.
    """
    shown = _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(value))
    return Text(shown.encode("utf-8", "backslashreplace").decode("utf-8"), style=style)


def actor_or_default(actor: str | None) -> str:
    """``--as`` or the default identity."""
    return actor or default_actor()


def remote_client(actor: str | None = None) -> RemoteClient | None:
    """The team server this CLI is a client of (``ftguard login``), or None for local mode.

    Raises:
        BadInputError: ``--as`` was given against a server.

    """
    from ftguard.cli._remote import remote

    client = remote()
    if client is not None and actor is not None:
        raise BadInputError(
            "--as is for the local workspace: against a server you act as your token's user"
        )
    return client


def workspace() -> Workspace:
    """The current workspace (raises NotFoundError when there is none).

    Raises:
        BadInputError: The CLI is a client of a team server, and this command (or this form
            of it) works only on the workspace's own machine.

    """
    if remote_client() is not None:
        raise BadInputError(
            "this command works on the workspace's own machine, not against a team server: "
            "run it there (or 'ftguard logout' to use a local workspace)"
        )
    return find_workspace()


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def print_json(value: Any) -> None:
    """Write ``value`` as one JSON document on stdout."""
    sys.stdout.write(json.dumps(_plain(value), indent=2, default=str) + "\n")
    sys.stdout.flush()
