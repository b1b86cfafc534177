"""CLI: ``ftguard gate``, ``deploy``, ``verify-deployment``, ``revoke``, ``revocations``."""

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
from ftguard.errors import EXIT_VERDICT, BadInputError
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
        files: dict[str, Path] = {}
    else:
        outcome = service.decide_gate(workspace(), actor=actor_or_default(actor), job_id=job_id)
        decision = outcome.decision
        where = str(outcome.attestation_path) if outcome.attestation_path else None
        as_dict = outcome.to_json_dict()
        files = outcome.files
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
        for name, path in sorted(files.items()):
            console.print(f"{name.replace('_', ' ')}: {escape(str(path))}")
    if decision.decision != "pass":
        raise typer.Exit(EXIT_VERDICT)


@app.command("deploy")
def deploy(
    job_id: Annotated[str, typer.Argument(help="A job that passed the gate.")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
    mlflow_model: Annotated[
        str | None,
        typer.Option(
            "--mlflow",
            help="Also register the output as a version of this MLflow registered model and "
            "point --alias at it (needs ftguard[mlflow]).",
        ),
    ] = None,
    alias: Annotated[
        str, typer.Option("--alias", help="The MLflow alias to set (with --mlflow).")
    ] = "approved",
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            "--tracking-uri", help="The MLflow tracking server (default: MLFLOW_TRACKING_URI)."
        ),
    ] = None,
) -> None:
    """Mark a passed job deployed (refused for any other state); --mlflow registers it too."""
    if mlflow_model is not None:
        from ftguard.cli._mlflow import deploy_to_mlflow

        deploy_to_mlflow(
            job_id, actor_or_default(actor), mlflow_model, alias, tracking_uri, as_json
        )
        return
    path = service.deploy_job(workspace(), actor=actor_or_default(actor), job_id=job_id)
    if as_json:
        print_json({"job": job_id, "state": "deployed", "attestation": str(path)})
    else:
        console.print(
            f"{escape(job_id)} deployed; serve it with its attestation {escape(str(path))}"
        )


@app.command("verify-deployment")
def verify_deployment_cmd(
    model_path: Annotated[
        Path | None,
        typer.Argument(help="Model or adapter folder to be served (not with --mlflow)."),
    ] = None,
    attestation: Annotated[
        Path | None, typer.Option("--attestation", help="Attestation file (not with --mlflow).")
    ] = None,
    trusted_key: Annotated[
        Path,
        typer.Option(
            "--trusted-key", help="The workspace's attestation public key (keys/attestation.pub)."
        ),
    ] = ...,  # type: ignore[assignment]  # required (typer: ...), after the optional path
    witness: Annotated[
        str | None,
        typer.Option(
            "--witness",
            help="The audit log's witness (a file or file:PATH): the decision's head must be in it.",
        ),
    ] = None,
    model_signature: Annotated[
        Path | None,
        typer.Option(
            "--model-signature",
            help="The model's OpenSSF Model Signing signature (default: model.sig beside the "
            "attestation).",
        ),
    ] = None,
    model_signing_key: Annotated[
        Path | None,
        typer.Option(
            "--model-signing-key",
            help="The published model-signing public key (keys/model-signing.pub); when given "
            "it must be the key the attestation names.",
        ),
    ] = None,
    allow_legacy_attestation: Annotated[
        bool,
        typer.Option(
            "--allow-legacy-attestation",
            help="Accept an attestation issued before the gate signed models (it names no "
            "model signature).",
        ),
    ] = False,
    base_model: Annotated[
        Path | None,
        typer.Option(
            "--base-model",
            help="For a LoRA adapter: the base model folder the server loads it on, checked "
            "against the approved base (default: the folder adapter_config.json names).",
        ),
    ] = None,
    revocations: Annotated[
        Path | None,
        typer.Option(
            "--revocations",
            help="The workspace's signed revocation list ('ftguard revocations --out FILE'): "
            "an attestation of a job it names is refused.",
        ),
    ] = None,
    as_json: JsonOption = False,
    mlflow_uri: Annotated[
        str | None,
        typer.Option(
            "--mlflow",
            help="Verify a registered MLflow version instead (models:/NAME@ALIAS or "
            "models:/NAME/VERSION): its files against the attestation stored with them.",
        ),
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            "--tracking-uri", help="The MLflow tracking server (default: MLFLOW_TRACKING_URI)."
        ),
    ] = None,
    download_to: Annotated[
        Path | None,
        typer.Option(
            "--download-to",
            help="With --mlflow: keep the verified files in this empty folder (model/, ftguard/).",
        ),
    ] = None,
) -> None:
    """Serving side: exit 0 only if the attestation, the model signature and the base verify.

    The attestation must be valid, trusted and name exactly these files; the OpenSSF Model
    Signing signature it names must verify over the same files; a LoRA adapter's base model
    must be the approved one (exit 6 otherwise).
    """
    from ftguard.attest import load_public_key_file
    from ftguard.control import open_witness
    from ftguard.errors import VerificationError
    from ftguard.gate import check_deployment, read_revocations

    withdrawn = (
        read_revocations(revocations, load_public_key_file(trusted_key))
        if revocations is not None
        else None
    )

    heads = None
    if witness is not None:
        uri = witness if ":" in witness.split("/")[0] else f"file:{witness}"
        heads = [(h.seq, h.hash) for h in open_witness(uri).heads()]
    if mlflow_uri is not None:
        from ftguard.cli._mlflow import verify_from_mlflow

        verify_from_mlflow(
            mlflow_uri,
            trusted_key,
            tracking_uri,
            download_to,
            heads,
            model_signing_key,
            as_json,
            base_model,
            withdrawn,
        )
        return
    if model_path is None or attestation is None:
        raise BadInputError(
            "name the model folder and --attestation (or --mlflow models:/NAME@ALIAS)"
        )
    report = check_deployment(
        model_path,
        attestation,
        trusted_key,
        witness_heads=heads,
        model_signature=model_signature,
        model_signing_key=model_signing_key,
        allow_legacy_attestation=allow_legacy_attestation,
        base_model=base_model,
        revocations=withdrawn,
    )
    if as_json:
        out = report.verification.model_dump(mode="json") if report.verification else {}
        out.update(report.model_dump(mode="json", exclude={"verification"}))
        print_json(out)
    else:
        for name, check in report.checks.items():
            mark = "[green]ok[/]" if check.ok else "[red]FAIL[/]"
            console.print(f"  {mark:>14}  {name:<14} {escape(check.detail)}")
    if not report.ok:
        raise VerificationError(report.reasons[0])
    if not as_json and report.verification is not None:
        result = report.verification
        console.print(
            f"verified: {escape(str(model_path))} is the model job {escape(result.job_id)} "
            "passed the gate with "
            f"(sha256:{result.digest[:16]}, key {result.keyid[:12]})"
        )


@app.command("revoke")
def revoke(
    job_id: Annotated[str, typer.Argument(help="A job that passed the gate (or was deployed).")],
    reason: Annotated[str, typer.Option("--reason", help="Why its pass is withdrawn.")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Security reviewers: withdraw a job's pass (final); publish 'ftguard revocations' after."""
    client = remote_client(actor)
    if client is not None:
        view = client.call("POST", f"/jobs/{job_id}/revoke", {"reason": reason})
        state = str(view.get("state"))
    else:
        service.revoke_pass(
            workspace(), actor=actor_or_default(actor), job_id=job_id, reason=reason
        )
        state = "revoked"
    if as_json:
        print_json({"job": job_id, "state": state})
    else:
        console.print(
            f"{escape(job_id)} revoked: its attestation no longer verifies on the team server; "
            "publish the new list ('ftguard revocations --out FILE') to the serving side"
        )


@app.command("revocations")
def revocations_cmd(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the signed list here (default: standard output)."),
    ] = None,
    actor: ActorOption = None,
) -> None:
    """The signed list of revoked passes, for 'verify-deployment --revocations'."""
    import json

    client = remote_client(actor)
    if client is not None:
        document = client.call("GET", "/revocations")
    else:
        document = service.revocation_list(workspace()).model_dump(mode="json")
    text = json.dumps(document, indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"revocation list: {escape(str(out))}")
