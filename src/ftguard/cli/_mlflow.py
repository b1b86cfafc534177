"""The ``--mlflow`` forms of ``ftguard deploy`` and ``ftguard verify-deployment``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

from ftguard.cli._common import console, print_json, workspace
from ftguard.errors import VerificationError

if TYPE_CHECKING:
    from ftguard.gate import Revocations

__all__ = ["deploy_to_mlflow", "verify_from_mlflow"]


def deploy_to_mlflow(
    job_id: str,
    actor: str,
    model_name: str,
    alias: str,
    tracking_uri: str | None,
    as_json: bool,
) -> None:
    """``ftguard deploy JOB --mlflow NAME``: deploy, register, alias; print what was done."""
    from ftguard.integrations import register_job_model

    done = register_job_model(
        workspace(),
        actor=actor,
        job_id=job_id,
        model_name=model_name,
        alias=alias,
        tracking_uri=tracking_uri,
    )
    if as_json:
        print_json(done)
        return
    found = "registered" if done.created else "found (already registered)"
    console.print(
        f"{escape(job_id)} deployed; MLflow version {escape(done.version)} of "
        f"{escape(done.model_name)} {found}, alias {escape(done.alias)} -> version "
        f"{escape(done.version)} (sha256:{done.model_digest[:16]})"
    )


def verify_from_mlflow(
    uri: str,
    trusted_key: Path,
    tracking_uri: str | None,
    download_to: Path | None,
    witness_heads: list[tuple[int, str]] | None,
    model_signing_key: Path | None,
    as_json: bool,
    base_model: Path | None = None,
    revocations: Revocations | None = None,
) -> None:
    """``ftguard verify-deployment --mlflow models:/NAME@ALIAS``: exit 6 unless it verifies."""
    from ftguard.integrations import verify_registered_model

    found = verify_registered_model(
        uri,
        trusted_key,
        tracking_uri=tracking_uri,
        download_to=download_to,
        witness_heads=witness_heads,
        model_signing_key=model_signing_key,
        base_model=base_model,
        revocations=revocations,
    )
    report = found.report
    if as_json:
        print_json(found)
    else:
        for name, check in report.checks.items():
            mark = "[green]ok[/]" if check.ok else "[red]FAIL[/]"
            console.print(f"  {mark:>14}  {name:<14} {escape(check.detail)}")
    if not report.ok:
        raise VerificationError(report.reasons[0])
    if not as_json:
        where = f", files in {escape(found.downloaded_to)}" if found.downloaded_to else ""
        console.print(
            f"verified: {escape(uri)} is version {escape(found.version)}, the model job "
            f"{escape(str(found.job_id))} passed the gate with{where}"
        )
