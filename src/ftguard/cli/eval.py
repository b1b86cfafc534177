"""CLI: ``ftguard eval`` — behaviour suites on a model, compared with a baseline."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ftguard.cli._app import app
from ftguard.errors import BadInputError, MissingDependencyError
from ftguard.policy import load_policy_section

if TYPE_CHECKING:
    from ftguard.behavior.suites import Suite

__all__ = ["eval_command"]


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _require_ml() -> None:
    """Local models need ftguard[ml]: say so (exit 7) before anything else is done."""
    for package in ("torch", "transformers"):
        try:
            found = importlib.util.find_spec(package) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise MissingDependencyError(package, "ml")


def _backend(
    model: str,
    adapter: Path | None,
    endpoint: str | None,
    max_new_tokens: int,
    batch_size: int | None,
    served: dict[str, Any],
) -> Any:
    from ftguard.behavior import OpenAIChatBackend, TransformersBackend

    given = {k: v for k, v in served.items() if v is not None}
    if endpoint:
        if adapter is not None:
            raise BadInputError("--adapter applies to local models, not to --endpoint")
        return OpenAIChatBackend(
            endpoint, model, max_new_tokens=max_new_tokens, batch_size=batch_size or 16, **given
        )
    if given:
        names = ", ".join("--" + k.replace("_", "-") for k in given)
        raise BadInputError(f"{names} apply to --endpoint (a served model), not to local models")
    _require_ml()
    return TransformersBackend(model, adapter, batch_size=batch_size, max_new_tokens=max_new_tokens)


@app.command("eval")
def eval_command(
    model: Annotated[
        str | None,
        typer.Argument(
            help="Model folder (safetensors), or the served model name with --endpoint; "
            "with --job, defaults to the job's trained output."
        ),
    ] = None,
    adapter: Annotated[
        Path | None, typer.Option(help="PEFT adapter folder applied to MODEL.")
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option(
            "--as", help="Identity to act as with --job (default: FTGUARD_USER or the OS user)."
        ),
    ] = None,
    suite: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated suites: safety,safety_tasks,over_refusal,capability,triggers, "
            "and prompt files as FORMAT:PATH (advbench, harmbench, harmbench-standard, "
            "strongreject, xstest-safe, xstest-unsafe, jsonl-safety, jsonl-over_refusal, "
            "jsonl-capability). Default: the suites the default policy requires "
            "(safety,safety_tasks,over_refusal,capability)."
        ),
    ] = None,
    baseline: Annotated[
        str | None, typer.Option(help="Baseline model to compare with (before fine-tuning).")
    ] = None,
    baseline_adapter: Annotated[
        Path | None, typer.Option(help="PEFT adapter applied to the baseline.")
    ] = None,
    triggers: Annotated[
        str | None, typer.Option(help="Comma-separated candidate triggers to probe.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="At most N prompts per suite.")] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(help="OpenAI-compatible base URL serving MODEL (and the baseline)."),
    ] = None,
    api: Annotated[
        str | None,
        typer.Option(
            help="With --endpoint: 'chat' (default; one conversation a request, the server's "
            "chat template) or 'completions' (--batch-size prompts a request, rendered with "
            "--chat-template)."
        ),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="With --endpoint: requests in flight (default 16).")
    ] = None,
    chat_template: Annotated[
        Path | None,
        typer.Option(help="With --api completions: the model's chat template file or folder."),
    ] = None,
    model_digest: Annotated[
        str | None,
        typer.Option(
            help="With --endpoint: digest (or pinned revision) of the served MODEL's weights; "
            "makes its run cached and resumable."
        ),
    ] = None,
    baseline_digest: Annotated[
        str | None, typer.Option(help="With --endpoint: the same for the baseline.")
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Most tokens generated per answer.")] = 64,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Prompts generated together (local models; default 64 under a billion "
            "parameters, else 16), or prompts a request with --api completions (default 16)."
        ),
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Cache folder for runs (default: $FTGUARD_CACHE/behavior).")
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            help="Policy YAML: a workspace policy with a 'behavior:' section, or its fields."
        ),
    ] = None,
    job: Annotated[
        str | None, typer.Option(help="Store the comparison as evidence on this job.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    html: Annotated[Path | None, typer.Option(help="Write an HTML report here.")] = None,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Progress bars on stderr (default: when stderr is a terminal).",
        ),
    ] = None,
) -> int:
    """Run behaviour suites on MODEL; with --baseline, compare and exit 0 (pass) or 1 (block)."""
    from ftguard._progress import progress_wanted
    from ftguard.behavior import DEFAULT_SUITES, compare, render_behavior_html, run_suites
    from ftguard.behavior.suites import load_suite_spec

    if limit is not None and limit < 1:
        raise BadInputError(f"--limit must be at least 1, got {limit}")
    if max_new_tokens < 1 or (batch_size is not None and batch_size < 1):
        raise BadInputError("--max-new-tokens and --batch-size must be at least 1")
    show_progress = progress_wanted(progress)
    names = list(DEFAULT_SUITES) if suite is None else _split(suite)
    suites: list[str | Suite] = [load_suite_spec(s) if ":" in s else s for s in names]
    if not suites:
        raise BadInputError("--suite names no suite")
    trig = _split(triggers)
    from ftguard.cli._common import remote_client

    client = remote_client(actor) if job is not None else None
    if client is not None:
        if trig or suite is not None or model or adapter or baseline or baseline_adapter or html:
            raise BadInputError(
                "against a server, eval --job runs the policy's suites on the job's recorded "
                "models on the server: give only --job (and --limit)"
            )
        from ftguard.behavior import BehaviorComparison

        answer = client.call("POST", f"/jobs/{job}/eval", {"limit": limit})
        comparison = BehaviorComparison.model_validate(answer)
        return _emit(comparison, None, None, as_json=as_json, html=None, render=None)
    if job is not None:
        if trig:
            raise BadInputError(
                "--triggers does not apply with --job: the job's review supplies them"
            )
        comparison = _evaluate_job(
            job, actor, model, adapter, baseline, baseline_adapter, suites, limit, show_progress
        )
        return _emit(
            comparison, None, None, as_json=as_json, html=html, render=render_behavior_html
        )
    if not model:
        raise BadInputError("give a MODEL folder (or --job JOB)")
    if cache_dir is None:
        from ftguard.models import cache_root

        cache_dir = cache_root() / "behavior"

    served = {"api": api, "concurrency": concurrency, "chat_template": chat_template}

    def run_on(name: str, on_adapter: Path | None, digest: str | None) -> Any:
        settings = {**served, "model_digest": digest}
        return run_suites(
            _backend(name, on_adapter, endpoint, max_new_tokens, batch_size, settings),
            suites,
            triggers=trig or None,
            limit_per_suite=limit,
            cache_dir=cache_dir,
            progress=show_progress,
        )

    if baseline is None and html is not None:  # before minutes of generation, not after
        raise BadInputError("--html needs --baseline (the report is of a comparison)")
    after = run_on(model, adapter, model_digest)
    if baseline is None:
        if as_json:
            typer.echo(json.dumps(after.to_json_dict(), indent=2))
        else:
            _print_run(after)
        return 0
    before = run_on(baseline, baseline_adapter, baseline_digest)
    comparison = compare(before, after, policy=load_policy_section(policy, "behavior"))
    return _emit(comparison, before, after, as_json=as_json, html=html, render=render_behavior_html)


def _evaluate_job(
    job: str,
    actor: str | None,
    model: str | None,
    adapter: Path | None,
    baseline: str | None,
    baseline_adapter: Path | None,
    suites: list[Any],
    limit: int | None,
    progress: bool,
) -> Any:
    """A job's behaviour comparison in the local workspace, stored as its evidence."""
    from ftguard.cli._common import actor_or_default, workspace
    from ftguard.control.service import evaluate_job  # the control plane, lazily

    _require_ml()  # the job's models are local
    return evaluate_job(
        workspace(),
        actor=actor_or_default(actor),
        job_id=job,
        model=Path(model) if model else None,
        adapter=adapter,
        baseline=Path(baseline) if baseline else None,
        baseline_adapter=baseline_adapter,
        suites=suites,
        limit=limit,
        progress=progress,
    )


def _print_run(run: Any) -> None:
    for info in run.suites:
        rows = run.suite(info.name)
        n = len(rows) or 1
        refused = sum(r.label == "refusal" for r in rows)
        line = f"{info.name}: {len(rows)} prompts, {100 * refused / n:.0f}% refused"
        correct = [r.correct for r in rows if r.correct is not None]
        if correct:
            line += f", {100 * sum(correct) / len(correct):.0f}% correct"
        typer.echo(line)


def _emit(
    comparison: Any, before: Any, after: Any, *, as_json: bool, html: Path | None, render: Any
) -> int:
    if html is not None:
        try:
            html.write_text(render(comparison, before, after), encoding="utf-8")
        except OSError as exc:
            raise BadInputError(f"cannot write {html}: {exc.strerror or exc}") from exc
    if as_json:
        typer.echo(json.dumps(comparison.to_json_dict(), indent=2))
    else:
        typer.echo(f"verdict: {comparison.verdict}")
        for line in comparison.summary:
            typer.echo(f"  {line}")
        for line in comparison.reasons:
            typer.echo(f"  BLOCK: {line}")
    return 0 if comparison.verdict == "pass" else 1
