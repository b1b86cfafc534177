"""CLI: ``ftguard weights diff`` and ``ftguard weights baseline add/list/revoke``.

Exit codes: 0 the verdict is pass, 1 flag, 2 and up errors (one line on stderr).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ftguard.cli._app import app
from ftguard.cli._common import remote_client
from ftguard.errors import EXIT_VERDICT, BadInputError
from ftguard.policy import load_policy_section

weights_app = typer.Typer(
    help="Parameter monitoring: what a fine-tune changed.", no_args_is_help=True
)
app.add_typer(weights_app, name="weights")


def _alignment(value: str | None) -> tuple[Path, Path] | None:
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 2 or not all(parts):
        raise BadInputError("--alignment takes two paths separated by a comma: UNALIGNED,ALIGNED")
    return Path(parts[0]), Path(parts[1])


def _print_human(report: Any) -> None:
    from ftguard.weights import WeightReport

    r = report if isinstance(report, WeightReport) else WeightReport.model_validate(report)
    typer.echo(f"verdict: {r.verdict}   anomaly score: {r.anomaly_score:.2f}")
    typer.echo(f"{r.judgement}")
    typer.echo(
        f"{r.tuned_kind} update: {r.tensors_changed} of {r.tensors_total} tensors changed, "
        f"whole-model relative change {r.total_relative_change:.3g} ({r.seconds:.2f} s)"
    )
    if r.alignment is not None:
        typer.echo(f"cosine with the alignment direction: {r.alignment.cosine:.4f}")
    for f in r.flags:
        typer.echo(f"  FLAG: {f.reason}")
    typer.echo("top changed tensors (relative change):")
    for t in r.tensors[:10]:
        rel = f"{t.relative_change:.3g}" if t.relative_change is not None else "n/a"
        typer.echo(f"  {rel:>10}  {t.name}{'  [critical]' if t.critical else ''}")
    for n in r.notes:
        typer.echo(f"note: {n}")


@weights_app.command("diff")
def weights_diff(
    base: Annotated[Path, typer.Argument(help="Base model: safetensors file or folder.")],
    tuned: Annotated[Path, typer.Argument(help="Tuned model, or a PEFT LoRA adapter folder.")],
    job: Annotated[str | None, typer.Option("--job", help="Store the report on this job.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    html: Annotated[Path | None, typer.Option("--html", help="Write an HTML report here.")] = None,
    deep: Annotated[bool, typer.Option("--deep", help="Top singular values of each dW.")] = False,
    alignment: Annotated[
        str | None,
        typer.Option(
            "--alignment", help="UNALIGNED,ALIGNED models giving the alignment direction."
        ),
    ] = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="Policy YAML (its weights: section).")
    ] = None,
    cache: Annotated[
        Path | None, typer.Option("--fingerprint-cache", help="Folder caching base-model norms.")
    ] = None,
    actor: Annotated[
        str | None, typer.Option("--as", help="Identity to act as (with --job).")
    ] = None,
    progress: Annotated[bool, typer.Option("--progress", help="Progress on stderr.")] = False,
) -> int:
    """Diff a tuned model or adapter against its base; exit 0 pass, 1 flag, 2+ error."""
    pair = _alignment(alignment)
    client = remote_client(actor) if job is not None else None
    if client is not None:
        if pair is not None:
            raise BadInputError("--alignment is not offered against a server yet")
        from ftguard.weights import WeightReport

        report: Any = WeightReport.model_validate(
            client.call("POST", f"/jobs/{job}/weights", {"deep": deep})
        )
    elif job is not None:
        from ftguard.cli._common import actor_or_default, workspace
        from ftguard.control.service import weights_for_job

        options: dict[str, Any] = {"deep": deep}
        if pair is not None:
            options["alignment"] = pair
        report = weights_for_job(
            workspace(),
            actor=actor_or_default(actor),
            job_id=job,
            base=base,
            tuned=tuned,
            progress=progress,
            **options,
        )
    else:
        from ftguard.weights import diff

        report = diff(
            base,
            tuned,
            policy=load_policy_section(policy, "weights"),
            alignment=pair,
            deep=deep,
            fingerprint_cache=cache,
            progress=progress,
        )
    data = report.to_json_dict() if hasattr(report, "to_json_dict") else dict(report)
    if html is not None:
        from ftguard.weights import WeightReport, render_weights_html

        obj = report if isinstance(report, WeightReport) else WeightReport.model_validate(data)
        try:
            html.write_text(render_weights_html(obj), encoding="utf-8")
        except OSError as exc:
            raise BadInputError(f"cannot write {html}: {exc.strerror or exc}") from None
    if as_json:
        sys.stdout.write(json.dumps(data) + "\n")
        sys.stdout.flush()
    else:
        _print_human(report if hasattr(report, "to_json_dict") else data)
    verdict = data.get("verdict")
    if verdict == "flag":
        raise typer.Exit(EXIT_VERDICT)
    return 0


baseline_app = typer.Typer(
    help="Fine-tunes a security reviewer registers as normal, for judging later jobs.",
    no_args_is_help=True,
)
weights_app.add_typer(baseline_app, name="baseline")


def _show_baseline(view: Any, as_json: bool) -> None:
    from ftguard.cli._common import print_json

    if as_json:
        print_json(view)
        return
    state = f"revoked by {view.revoked_by}" if view.revoked else "active"
    typer.echo(
        f"baseline {view.digest[:16]} ({state}): {view.tuned_kind} {view.tuned_path}\n"
        f"  base model sha256:{view.base_model_digest[:16]}, registered by "
        f"{view.registered_by}: {view.justification}\n"
        f"  its own weight report: {view.verdict} (anomaly score {view.anomaly_score:.2f})"
    )


@baseline_app.command("add")
def baseline_add(
    base: Annotated[Path, typer.Argument(help="Base model folder (as the jobs name it).")],
    tuned: Annotated[Path, typer.Argument(help="The trusted tuned model or LoRA adapter.")],
    justification: Annotated[
        str, typer.Option("--justification", help="Why this fine-tune is known to be good.")
    ],
    alignment: Annotated[
        str | None,
        typer.Option("--alignment", help="UNALIGNED,ALIGNED: the pair the jobs are judged with."),
    ] = None,
    actor: Annotated[str | None, typer.Option("--as", help="Identity to act as.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    progress: Annotated[bool, typer.Option("--progress", help="Progress on stderr.")] = False,
) -> None:
    """Security reviewer: register a trusted fine-tune as a weight baseline (audited)."""
    from ftguard.cli._common import actor_or_default, workspace
    from ftguard.control.service import register_baseline

    pair = _alignment(alignment)
    options: dict[str, Any] = {} if pair is None else {"alignment": pair}
    view = register_baseline(
        workspace(),
        actor=actor_or_default(actor),
        base=base,
        tuned=tuned,
        justification=justification,
        progress=progress,
        **options,
    )
    _show_baseline(view, as_json)


@baseline_app.command("list")
def baseline_list(
    base_digest: Annotated[
        str | None, typer.Option("--base-digest", help="Only this base model (root digest).")
    ] = None,
    active: Annotated[bool, typer.Option("--active", help="Leave out revoked baselines.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON list.")] = False,
) -> None:
    """List the registered weight baselines, oldest first."""
    from ftguard.cli._common import print_json, workspace
    from ftguard.control.service import list_baselines

    views = list_baselines(
        workspace(),
        base_model_digest=base_digest.removeprefix("sha256:") if base_digest else None,
        include_revoked=not active,
    )
    if as_json:
        print_json(views)
        return
    if not views:
        typer.echo("no registered weight baselines")
    for view in views:
        _show_baseline(view, False)


@baseline_app.command("revoke")
def baseline_revoke(
    digest: Annotated[str, typer.Argument(help="The baseline's digest (or its first 8+ digits).")],
    justification: Annotated[str, typer.Option("--justification", help="Why it no longer counts.")],
    actor: Annotated[str | None, typer.Option("--as", help="Identity to act as.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Security reviewer: withdraw a registered baseline; later reports no longer count it."""
    from ftguard.cli._common import actor_or_default, workspace
    from ftguard.control.service import revoke_baseline

    view = revoke_baseline(
        workspace(), actor=actor_or_default(actor), digest=digest, justification=justification
    )
    _show_baseline(view, as_json)
