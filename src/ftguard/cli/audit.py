"""CLI: ``ftguard audit verify`` and ``ftguard audit export``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from ftguard.attest import load_public_key_file
from ftguard.cli._app import app
from ftguard.cli._common import JsonOption, console, print_json, remote_client, workspace
from ftguard.control import AuditEvent, AuditVerification, service
from ftguard.errors import BadInputError, VerificationError

audit_app = typer.Typer(help="Verify and export the audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(
    trusted_key: Annotated[
        Path | None,
        typer.Option(
            "--trusted-key", help="Pinned audit public key (default: the workspace's audit.pub)."
        ),
    ] = None,
    witness: Annotated[
        bool, typer.Option("--witness", help="Also check the log extends every witnessed head.")
    ] = False,
    witness_uri: Annotated[
        str | None,
        typer.Option("--witness-uri", help="Another witness, e.g. file:/mnt/worm/witness.jsonl."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Verify the hash chain, every event's signature and the signed head.

    Exit 6 names the first bad event. With --witness, a log rolled back to an earlier head is
    caught too.
    """
    client = remote_client()
    if client is not None:
        if trusted_key or witness_uri:
            raise BadInputError(
                "--trusted-key and --witness-uri check a database you can read: run them on "
                "the server's machine (against a server, its own verification is asked for)"
            )
        result = AuditVerification.model_validate(client.call("GET", "/audit/verify"))
    else:
        key = load_public_key_file(trusted_key) if trusted_key else None
        chosen = witness_uri or ("default" if witness else None)
        result = service.verify_audit(workspace(), trusted_key=key, witness=chosen)
    if as_json:
        print_json(result)
        if not result.ok:
            raise typer.Exit(6)
        return
    if not result.ok:
        raise VerificationError(f"audit log does not verify: {result.problem}")
    console.print(f"audit log verified: {result.events} events, chain and signatures intact")


@audit_app.command("export")
def audit_export(
    fmt: Annotated[str, typer.Option("--format", help="Export format (jsonl).")] = "jsonl",
    job: Annotated[str | None, typer.Option("--job", help="Only this job's events.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Write every audit event as JSON lines on stdout."""
    if fmt != "jsonl":
        raise BadInputError(f"unknown export format {fmt!r} (supported: jsonl)")
    for event in _events(job):
        sys.stdout.write(json.dumps(event.model_dump(mode="json"), sort_keys=True) + "\n")
    _ = as_json, print_json


def _events(job: str | None) -> Iterator[AuditEvent]:
    client = remote_client()
    if client is None:
        yield from service.iter_audit(workspace(), job_id=job)
        return
    after = 0
    while True:
        page = client.call("GET", "/audit", job_id=job, after=after, limit=1000)
        if not page:
            return
        for item in page:
            yield AuditEvent.model_validate(item)
        after = int(page[-1]["seq"])
