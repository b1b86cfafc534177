"""CLI: ``ftguard gate``, ``ftguard deploy``, ``ftguard verify-deployment``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

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
from ftguard.control import service
from ftguard.errors import EXIT_VERDICT
from ftguard.gate import Decision


@app.command("gate")
def gate(
    job_id: Annotated[str, typer.Argument(help="A trained job.")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Decide pass or block over the job's evidence; a pass is attested (exit 0 pass, 1 block)."""
    client = remote_client(actor)
    if client is not None:
        answer = client.call("POST", f"/jobs/{job_id}/gate")
        decision = Decision.model_validate(
            {k: v for k, v in answer.items() if k != "attestation_url"}
        )
        where = (
            f"{client.server}{answer['attestation_url']}" if answer.get("attestation_url") else None
        )
        as_dict = dict(answer, attestation=where)
    else:
        outcome = service.decide_gate(workspace(), actor=actor_or_default(actor), job_id=job_id)
        decision = outcome.decision
        where = str(outcome.attestation_path) if outcome.attestation_path else None
        as_dict = outcome.to_json_dict()
    if as_json:
        print_json(as_dict)
    else:
        colour = "green" if decision.decision == "pass" else "red"
        console.print(f"gate: [bold {colour}]{decision.decision.upper()}[/] for {escape(job_id)}")
        for rule in decision.rules:
            mark = "[green]ok[/]" if rule.passed else "[red]FAIL[/]"
            console.print(f"  {mark:>14}  {escape(rule.rule):<18} {escape(rule.reason)}")
        if where:
            console.print(f"attestation: {escape(where)}")
    if decision.decision != "pass":
        raise typer.Exit(EXIT_VERDICT)


@app.command("deploy")
def deploy(
    job_id: Annotated[str, typer.Argument(help="A job that passed the gate.")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Mark a passed job deployed (refused for any other state)."""
    path = service.deploy_job(workspace(), actor=actor_or_default(actor), job_id=job_id)
    if as_json:
        print_json({"job": job_id, "state": "deployed", "attestation": str(path)})
    else:
        console.print(
            f"{escape(job_id)} deployed; serve it with its attestation {escape(str(path))}"
        )


@app.command("verify-deployment")
def verify_deployment_cmd(
    model_path: Annotated[Path, typer.Argument(help="Model or adapter folder to be served.")],
    attestation: Annotated[Path, typer.Option("--attestation", help="Attestation file.")],
    trusted_key: Annotated[
        Path,
        typer.Option(
            "--trusted-key", help="The workspace's attestation public key (keys/attestation.pub)."
        ),
    ],
    witness: Annotated[
        str | None,
        typer.Option(
            "--witness",
            help="The audit log's witness (a file or file:PATH): the decision's head must be in it.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Serving side: exit 0 only if the attestation is valid, trusted and matches the files."""
    from ftguard.control import open_witness
    from ftguard.gate import verify_deployment

    heads = None
    if witness is not None:
        uri = witness if ":" in witness.split("/")[0] else f"file:{witness}"
        heads = [(h.seq, h.hash) for h in open_witness(uri).heads()]
    result = verify_deployment(model_path, attestation, trusted_key, witness_heads=heads)
    if as_json:
        print_json(result)
    else:
        console.print(
            f"verified: {escape(str(model_path))} is the model job {escape(result.job_id)} "
            "passed the gate with "
            f"(sha256:{result.digest[:16]}, key {result.keyid[:12]})"
        )
