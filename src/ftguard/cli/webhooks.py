"""CLI: ``ftguard webhooks add|list|remove|deliveries|redeliver`` (signed job-event webhooks)."""

from __future__ import annotations

from pathlib import Path
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
    user_text,
    workspace,
)
from ftguard.errors import BadInputError

webhooks_app = typer.Typer(
    help="Signed webhooks on job state changes (submitted, approved, blocked, passed, deployed).",
    no_args_is_help=True,
)
app.add_typer(webhooks_app, name="webhooks")


@webhooks_app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="The receiver: an http:// or https:// URL.")],
    events: Annotated[
        list[str] | None,
        typer.Option(
            "--event",
            help="An event to send (submitted, approved, blocked, passed, deployed); repeat "
            "it; default: all.",
        ),
    ] = None,
    secret_file: Annotated[
        Path | None,
        typer.Option(
            "--secret-file",
            help="Use the secret in this file (default: a new random secret, printed once).",
        ),
    ] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register a webhook endpoint (admins); its secret is printed once, keep it."""
    from ftguard._files import read_text_file
    from ftguard.integrations import add_webhook

    secret = None
    if secret_file is not None:
        secret = read_text_file(secret_file, what="webhook secret file").strip()
        if not secret:
            raise BadInputError(f"{secret_file} holds no secret")
    endpoint, chosen = add_webhook(
        workspace(), actor=actor_or_default(actor), url=url, events=events, secret=secret
    )
    shown = None if secret is not None else chosen
    if as_json:
        print_json({**endpoint.model_dump(), "secret": shown})
        return
    console.print(user_text(f"webhook {endpoint.id} -> {endpoint.url}"))
    console.print(user_text(f"events: {', '.join(endpoint.events)}"))
    if shown is not None:
        console.print(
            user_text(f"secret (shown once; the receiver checks signatures with it): {shown}")
        )


@webhooks_app.command("list")
def list_cmd(
    include_removed: Annotated[
        bool, typer.Option("--all", help="Also list removed endpoints.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """The registered endpoints (never their secrets)."""
    from ftguard.integrations import list_webhooks

    endpoints = list_webhooks(workspace(), include_removed=include_removed)
    if as_json:
        print_json(endpoints)
        return
    table = Table("id", "url", "events", "created by", "removed")
    for e in endpoints:
        table.add_row(
            user_text(e.id),
            user_text(e.url),
            user_text(", ".join(e.events)),
            user_text(e.created_by),
            user_text(e.removed_at or ""),
        )
    console.print(table)


@webhooks_app.command("remove")
def remove(
    endpoint_id: Annotated[str, typer.Argument(help="The endpoint's id (wh_...).")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove an endpoint (admins): nothing more is sent to it; its secret is deleted."""
    from ftguard.integrations import remove_webhook

    endpoint = remove_webhook(workspace(), actor=actor_or_default(actor), endpoint_id=endpoint_id)
    if as_json:
        print_json(endpoint)
    else:
        console.print(user_text(f"webhook {endpoint.id} removed"))


@webhooks_app.command("deliveries")
def deliveries(
    job_id: Annotated[str | None, typer.Option("--job", help="Of one job.")] = None,
    endpoint_id: Annotated[str | None, typer.Option("--endpoint", help="To one endpoint.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="pending, delivered or failed.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
    as_json: JsonOption = False,
) -> None:
    """The delivery log, newest first: every event sent, its attempts and outcome."""
    from ftguard.integrations import list_deliveries

    rows = list_deliveries(
        workspace(), job_id=job_id, endpoint_id=endpoint_id, status=status, limit=limit
    )
    if as_json:
        print_json(rows)
        return
    table = Table("delivery", "event", "job", "endpoint", "status", "attempts", "last error")
    for d in rows:
        table.add_row(
            user_text(d.id),
            user_text(d.event_type),
            user_text(d.job_id or ""),
            user_text(d.endpoint_id),
            user_text(d.status),
            str(d.attempts),
            user_text(d.error or ""),
        )
    console.print(table)


@webhooks_app.command("redeliver")
def redeliver(
    delivery_ids: Annotated[
        list[str] | None,
        typer.Argument(help="Deliveries to send again (default: every pending or failed one)."),
    ] = None,
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds to wait for the retries.", min=0)
    ] = 60.0,
    as_json: JsonOption = False,
) -> None:
    """Send logged deliveries again, with a fresh retry schedule; prints their outcome."""
    from ftguard.integrations import list_deliveries, redeliver_webhooks

    ws = workspace()
    sent = set(redeliver_webhooks(ws, delivery_ids=delivery_ids or None, wait_s=wait))
    rows = [d for d in list_deliveries(ws, limit=10_000) if d.id in sent]
    if as_json:
        print_json(rows)
        return
    for d in rows:
        console.print(user_text(f"{d.id} {d.event_type}: {d.status} ({d.attempts} attempt(s))"))
