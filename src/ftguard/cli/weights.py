"""CLI: ``ftguard weights diff`` and ``ftguard weights baseline add/list/revoke/export/import``.

Exit codes: 0 the verdict is pass, 1 flag, 2 and up errors (one line on stderr).

Everything past typer is imported inside the commands: ``ftguard weights diff A B`` on local
files loads the weight engine only, not the control plane, its database layer or the policy
loader (a start-up of ~0.1 s instead of ~0.75 s; docs/weights.md, "Measured").
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ftguard.cli._app import app
from ftguard.errors import EXIT_VERDICT, BadInputError

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


def _start_digests(
    base: Path, tuned: Path, pair: tuple[Path, Path] | None
) -> contextlib.AbstractContextManager[Any]:
    """Start hashing the inputs before the weight engine is imported (it takes a while).

    Light to import (``hashlib`` and the digests module): the disk and the hashing threads
    work while numpy and the report models load. Where the inputs cannot be hashed as given
    (a missing path, an empty folder...), nothing is started and ``diff`` reports the problem
    as it always has; where ``diff`` refuses an input (a pickle file), leaving the context
    stops the hashing within one block.
    """
    from ftguard.weights import start_digests

    try:
        return start_digests(base, tuned, alignment=pair)
    except BadInputError:
        return contextlib.nullcontext(None)


def _import_diff() -> Any:
    """``ftguard.weights.diff``, imported with a short GIL switch interval.

    The import (numpy, the engine, the report models) runs while the hashing threads
    started before it work.

    A hashing thread takes the GIL back twice a block (after the read, after the update);
    behind an import (CPU-bound Python) each take would wait a whole switch interval (5 ms
    by default), so the hashing would crawl until the import ends.
    """
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, 0.0005))
    try:
        from ftguard.weights import diff
    finally:
        sys.setswitchinterval(interval)
    return diff


def _weights_policy(path: Path | None) -> Any:
    """The ``weights:`` section of ``--policy``; None (the defaults) when it is not given."""
    if path is None:
        return None  # diff() then uses WeightsPolicy(), what load_policy_section(None) gives
    from ftguard.policy import load_policy_section

    return load_policy_section(path, "weights")


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
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="local, or ray: one Ray task per shard pair (RAY_ADDRESS, else a local Ray "
            "runtime; files at the same path on every node; needs ftguard[ray]).",
        ),
    ] = "local",
) -> int:
    """Diff a tuned model or adapter against its base; exit 0 pass, 1 flag, 2+ error."""
    pair = _alignment(alignment)
    if engine not in ("local", "ray"):
        raise BadInputError(f"--engine: unknown engine {engine!r} (choose from local, ray)")
    if engine != "local" and job is not None:
        raise BadInputError("--engine applies to a diff of two paths, not to a job's diff")
    client = None
    if job is not None:
        from ftguard.cli._common import remote_client

        client = remote_client(actor)
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
        with _start_digests(base, tuned, pair) as digests:
            diff = _import_diff()
            report = diff(
                base,
                tuned,
                policy=_weights_policy(policy),
                alignment=pair,
                deep=deep,
                fingerprint_cache=cache,
                progress=progress,
                digests=digests,
                engine=engine,
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
    where = view.tuned_path
    if view.imported_from:
        where = (
            f"sha256:{view.tuned_digest[:16]}, imported record (export {view.imported_from[:12]})"
        )
    typer.echo(
        f"baseline {view.digest[:16]} ({state}): {view.tuned_kind} {where}\n"
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


@baseline_app.command("export")
def baseline_export(
    base_digest: Annotated[
        str | None, typer.Option("--base-digest", help="Only this base model (root digest).")
    ] = None,
) -> None:
    """Print the unrevoked baselines as records another workspace can import (JSON on stdout).

    Each record carries the fingerprint computed from the weights here, the base model's
    digest and why it was trusted; no weights and no user names.
    """
    from ftguard.cli._common import workspace
    from ftguard.control.service import export_baselines

    export = export_baselines(
        workspace(), base_model_digest=base_digest.removeprefix("sha256:") if base_digest else None
    )
    sys.stdout.write(export.to_bytes().decode() + "\n")
    sys.stdout.flush()


@baseline_app.command("import")
def baseline_import(
    export_file: Annotated[
        Path, typer.Argument(help="A file written by 'ftguard weights baseline export'.")
    ],
    justification: Annotated[
        str, typer.Option("--justification", help="Why these records are trusted here.")
    ],
    actor: Annotated[str | None, typer.Option("--as", help="Identity to act as.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON list.")] = False,
) -> None:
    """Security reviewer: import baseline records, all or none (audited; weights not read)."""
    from ftguard._files import read_regular_file
    from ftguard.cli._common import actor_or_default, print_json, workspace
    from ftguard.control.service import (
        MAX_EXPORT_BYTES,
        import_baselines,
        parse_baseline_export,
    )

    data = read_regular_file(export_file, what="baseline export", max_bytes=MAX_EXPORT_BYTES)
    views = import_baselines(
        workspace(),
        actor=actor_or_default(actor),
        export=parse_baseline_export(data),
        justification=justification,
    )
    if as_json:
        print_json(views)
        return
    for view in views:
        _show_baseline(view, False)
