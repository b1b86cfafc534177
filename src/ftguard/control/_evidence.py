"""Running the analyzers for a job and storing their evidence (review, weights, behaviour).

Each analyzer runs outside any database transaction (it may take minutes); its result, the
job's state change and the audit events are then written in one transaction, so a failed or
interrupted analysis leaves the job as it was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftguard.control._baselines import baseline_sources, workspace_weight_report
from ftguard.control._jobs import (
    JobView,
    get_job_row,
    job_view,
    latest_evidence,
    store_evidence,
    transition,
)
from ftguard.control._states import JobState
from ftguard.control._workspace import Workspace
from ftguard.errors import BadInputError, ConflictError
from ftguard.store import JobRow

if TYPE_CHECKING:
    from ftguard.behavior.suites import Suite

__all__ = ["evaluate_job", "review_job", "weights_for_job"]

_REVIEWABLE = (JobState.SUBMITTED.value, JobState.IN_REVIEW.value)
_EVALUABLE = (JobState.TRAINED.value, JobState.EVALUATING.value)


def review_job(
    ws: Workspace,
    *,
    actor: str,
    job_id: str,
    purpose: str | None = None,
    progress: bool = False,
    **options: Any,
) -> tuple[Any, JobView]:
    """Review a job's dataset; a pass moves it to awaiting_approval, a block rejects it."""
    from ftguard.review import review_dataset

    policy = ws.policy()
    with ws.store.read() as session:
        row = get_job_row(session, job_id)
        if row.state not in _REVIEWABLE:
            raise ConflictError(f"job {job_id} is {row.state}: only submitted jobs are reviewed")
        dataset = Path(row.dataset_path)
        stated = purpose or row.purpose
        approved_digest = row.dataset_digest
    review = review_dataset(
        dataset, purpose=stated, policy=policy.review, progress=progress, **options
    )
    if review.dataset_digest != approved_digest:
        raise ConflictError(
            f"the dataset of job {job_id} changed since it was submitted: submit it again"
        )
    with ws.store.write() as session:
        row = get_job_row(session, job_id, lock=True)
        if row.state not in _REVIEWABLE:
            raise ConflictError(f"job {job_id} became {row.state} during the review")
        if row.state == JobState.SUBMITTED.value:
            transition(
                ws, session, row, JobState.IN_REVIEW, actor=actor, action="review.start", payload={}
            )
        body = review.model_dump(mode="json")
        digest = store_evidence(ws, session, job_id=job_id, kind="review", body=body, actor=actor)
        row.review_digest = digest
        if review.verdict == "pass":
            transition(
                ws,
                session,
                row,
                JobState.AWAITING_APPROVAL,
                actor=actor,
                action="review.pass",
                payload={"review": digest},
            )
        else:
            row.rejected_by = "review"
            transition(
                ws,
                session,
                row,
                JobState.REJECTED,
                actor=actor,
                action="review.block",
                payload={
                    "review": digest,
                    "reasons": list(getattr(review, "verdict_reasons", []))[:10],
                },
            )
        return review, job_view(session, row)


def _trained_output(row: JobRow) -> Path:
    if not row.output_path:
        raise BadInputError(
            f"job {row.id} has no recorded output: give the tuned model or adapter path"
        )
    return Path(row.output_path)


def weights_for_job(
    ws: Workspace,
    *,
    actor: str,
    job_id: str,
    base: Path | None = None,
    tuned: Path | None = None,
    progress: bool = False,
    **options: Any,
) -> Any:
    """Weight report of a trained job against the baselines of earlier approved jobs."""
    with ws.store.read() as session:
        row = get_job_row(session, job_id)
        if row.state not in _EVALUABLE:
            raise ConflictError(f"job {job_id} is {row.state}: weight reports are for trained jobs")
        base_path = base or Path(row.base_model_path)
        tuned_path = tuned or _trained_output(row)
        jobs, registered = baseline_sources(session, row.base_model_digest, exclude_job=row.id)
    report = workspace_weight_report(
        ws, base_path, tuned_path, baselines=jobs + registered, progress=progress, **options
    )
    if registered:
        report.notes.append(
            f"baselines on this base model: {len(jobs)} earlier jobs that passed the gate and "
            f"{len(registered)} fine-tunes a security reviewer registered "
            "(ftguard weights baseline list)"
        )
    _store_analysis(
        ws, actor=actor, job_id=job_id, kind="weights", body=report.model_dump(mode="json")
    )
    return report


def _store_analysis(
    ws: Workspace, *, actor: str, job_id: str, kind: str, body: dict[str, Any]
) -> None:
    """Store a trained job's weight report or behaviour comparison; the first one starts evaluation."""
    with ws.store.write() as session:
        row = get_job_row(session, job_id, lock=True)
        if row.state not in _EVALUABLE:
            raise ConflictError(f"job {job_id} became {row.state} during the analysis")
        store_evidence(ws, session, job_id=job_id, kind=kind, body=body, actor=actor)
        if row.state == JobState.TRAINED.value:
            transition(
                ws,
                session,
                row,
                JobState.EVALUATING,
                actor=actor,
                action="evaluation.start",
                payload={"by": kind},
            )


def review_triggers(ws: Workspace, job_id: str) -> list[dict[str, Any]]:
    """Candidate triggers the job's dataset review found, best first: ``{text, score}``."""
    with ws.store.read() as session:
        ev = latest_evidence(session, job_id, "review")
    if ev is None:
        return []
    return [
        {"text": str(t["text"]), "score": float(t.get("score") or 0.0)}
        for t in json.loads(ev.body).get("triggers") or []
        if t.get("text")
    ]


def evaluate_job(
    ws: Workspace,
    *,
    actor: str,
    job_id: str,
    model: Path | None = None,
    adapter: Path | None = None,
    baseline: Path | None = None,
    baseline_adapter: Path | None = None,
    suites: list[str | Suite] | None = None,
    limit: int | dict[str, int] | None = None,
    max_new_tokens: int = 64,
    progress: bool = False,
) -> Any:
    """Behaviour A/B of a trained job: the baseline model before vs the tuned model after.

    ``suites`` are registered suite names or loaded :class:`~ftguard.behavior.suites.Suite`
    objects (default: safety, safety_tasks, over_refusal, capability and triggers).
    """
    from ftguard.behavior import DEFAULT_SUITES, TransformersBackend, compare, run_suites
    from ftguard.weights._lora import is_adapter

    policy = ws.policy()
    with ws.store.read() as session:
        row = get_job_row(session, job_id)
        if row.state not in _EVALUABLE:
            raise ConflictError(
                f"job {job_id} is {row.state}: behaviour tests are for trained jobs"
            )
        base_path = Path(row.base_model_path)
    if model is None:
        output = _trained_output(row)
        if is_adapter(output):
            model, adapter = base_path, output
        else:
            model = output
    before_model = baseline or base_path
    chosen = suites or [*DEFAULT_SUITES, "triggers"]
    triggers = review_triggers(ws, job_id)
    cache = ws.path / "cache" / "behavior"
    before = run_suites(
        TransformersBackend(
            before_model, adapter_dir=baseline_adapter, max_new_tokens=max_new_tokens
        ),
        chosen,
        triggers=triggers,
        limit_per_suite=limit,
        cache_dir=cache,
        progress=progress,
    )
    after = run_suites(
        TransformersBackend(model, adapter_dir=adapter, max_new_tokens=max_new_tokens),
        chosen,
        triggers=triggers,
        limit_per_suite=limit,
        cache_dir=cache,
        progress=progress,
    )
    comparison = compare(before, after, policy=policy.behavior)
    _store_analysis(
        ws, actor=actor, job_id=job_id, kind="behavior", body=comparison.model_dump(mode="json")
    )
    return comparison
