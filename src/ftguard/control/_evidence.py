"""Running the analyzers for a job and storing their evidence (review, weights, behaviour).

Each analyzer runs outside any database transaction (it may take minutes); its result, the
job's state change and the audit events are then written in one transaction, so a failed or
interrupted analysis leaves the job as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftguard.control._baselines import baseline_sources, workspace_weight_report
from ftguard.control._chain import ChainState
from ftguard.control._identities import Caller, acting, authenticate, chain_state, policy_in_force
from ftguard.control._jobs import (
    JobView,
    awaits_evidence,
    chain_evidence,
    checked_job,
    job_view,
    require_job_analyst,
    store_evidence,
    transition,
)
from ftguard.control._staging import stage_into
from ftguard.control._states import JobState
from ftguard.control._workspace import Workspace
from ftguard.digests import manifest_of
from ftguard.errors import BadInputError, ConflictError, VerificationError
from ftguard.store import JobRow

if TYPE_CHECKING:
    from ftguard.behavior.suites import Suite
    from ftguard.policy import BehaviorPolicy

__all__ = ["evaluate_job", "recorded_output", "review_job", "weights_for_job"]

_REVIEWABLE = (JobState.SUBMITTED.value, JobState.IN_REVIEW.value)


def review_job(
    ws: Workspace,
    *,
    actor: Caller,
    job_id: str,
    purpose: str | None = None,
    progress: bool = False,
    **options: Any,
) -> tuple[Any, JobView]:
    """Review a job's dataset; a pass moves it to awaiting_approval, a block rejects it.

    A job's review always runs every scanner the policy requires, with embeddings, on the
    job's stated purpose: choosing scanners or a purpose is for reviewing a dataset file.
    """
    from ftguard.review import review_dataset

    narrowing = sorted(k for k in ("scanners",) if options.get(k))
    if options.get("embeddings") is False:
        narrowing.append("no embeddings")
    if purpose is not None or narrowing:
        given = ", ".join((["purpose"] if purpose is not None else []) + narrowing)
        raise BadInputError(
            f"a job's review runs the policy's full review on the job's stated purpose; "
            f"{given} can only be chosen when reviewing a dataset file"
        )
    options = {k: v for k, v in options.items() if k in ("workers", "engine")}
    with ws.store.read() as session:
        state, policy, who = acting(ws, session, actor)
        row = checked_job(session, state, job_id)
        require_job_analyst(state, policy, who, row, to="review")
        if row.state not in _REVIEWABLE:
            raise ConflictError(f"job {job_id} is {row.state}: only submitted jobs are reviewed")
        dataset = Path(row.dataset_path)
        stated = row.purpose
        approved_digest = row.dataset_digest
    changed = f"the dataset of job {job_id} changed since it was submitted: submit it again"
    # The scanners read the file more than once: they read a read-only copy made while hashing
    # it (the run's staged copy, reused by the run), never the submitted path, so a file
    # swapped between the scanners' passes and the digest check cannot pass its review.
    try:
        snapshot = stage_into(ws.staged_dir, "dataset", dataset, approved_digest)
    except VerificationError as exc:
        raise ConflictError(f"{changed} ({exc})") from exc
    review = ws.offload(
        review_dataset, snapshot, purpose=stated, policy=policy.review, progress=progress, **options
    )
    if review.dataset_digest != approved_digest:
        raise ConflictError(changed)
    review = review.model_copy(update={"dataset_path": str(dataset)})
    with ws.store.write() as session:
        state = chain_state(ws, session)
        who = authenticate(state, actor)
        row = checked_job(session, state, job_id, lock=True)
        require_job_analyst(state, policy_in_force(ws, state), who, row, to="review")
        if row.state not in _REVIEWABLE:
            raise ConflictError(f"job {job_id} became {row.state} during the review")
        if row.state == JobState.SUBMITTED.value:
            transition(
                ws, session, row, JobState.IN_REVIEW, actor=who, action="review.start", payload={}
            )
        body = review.model_dump(mode="json")
        digest = store_evidence(
            ws,
            session,
            job_id=job_id,
            kind="review",
            body=body,
            actor=who,
            payload={"subjects": {"dataset": row.dataset_digest}},
        )
        row.review_digest = digest
        if review.verdict == "pass":
            transition(
                ws,
                session,
                row,
                JobState.AWAITING_APPROVAL,
                actor=who,
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
                actor=who,
                action="review.block",
                payload={
                    "review": digest,
                    "reasons": list(getattr(review, "verdict_reasons", []))[:10],
                },
            )
        return review, job_view(session, row)


def recorded_output(state: ChainState, row: JobRow) -> tuple[Path, str]:
    """The job's output folder and digest as the launcher recorded them in the chain.

    Raises:
        BadInputError: The job has no recorded output.

    """
    output = state.job(row.id).output
    if not output or not output.get("path") or not output.get("root"):
        raise BadInputError(
            f"job {row.id} has no recorded output: train it with 'ftguard run {row.id}'"
        )
    return Path(str(output["path"])), str(output["root"])


def _check_digest(path: Path, expected: str, what: str) -> None:
    """Refuse unless the file or folder at ``path`` has the recorded digest."""
    try:
        root = manifest_of(path).root
    except BadInputError as exc:
        raise VerificationError(f"the {what} at {path} cannot be read: {exc}") from exc
    if root != expected:
        raise VerificationError(
            f"the {what} at {path} is not the recorded one (digest {root[:16]}, "
            f"recorded {expected[:16]}): evidence is computed on the job's recorded files only"
        )


def _subjects_for(
    ws: Workspace, actor: Caller, job_id: str, overrides: dict[str, Path | None]
) -> tuple[dict[str, tuple[Path, str]], JobRow]:
    """The job's recorded base model and output (path, digest), checked on disk.

    An override path (a copy elsewhere) is accepted only with the recorded digest. Both are
    analysed from read-only copies made while hashing (the run's staged base where there is
    one; the output is copied once, by digest), never from the submitted or output folder:
    their owner could otherwise swap the bytes between the digest check and the analysis's
    read, and the evidence would describe other weights than the recorded ones.
    """
    with ws.store.read() as session:
        state = chain_state(ws, session)
        who = authenticate(state, actor)
        row = checked_job(session, state, job_id)
        require_job_analyst(state, policy_in_force(ws, state), who, row, to="analyse")
        if not awaits_evidence(session, state, row):
            raise ConflictError(
                f"job {job_id} is {row.state}: evidence is for trained jobs not yet decided"
            )
        output, output_digest = recorded_output(state, row)
    base = overrides.get("base_model") or Path(row.base_model_path)
    tuned = overrides.get("output") or output
    subjects = {
        "base_model": (
            _snapshot(ws, "base_model", base, row.base_model_digest),
            row.base_model_digest,
        ),
        "output": (_snapshot(ws, "output", tuned, output_digest), output_digest),
    }
    return subjects, row


def _snapshot(ws: Workspace, kind: str, path: Path, digest: str) -> Path:
    """A read-only copy of ``path`` made while hashing it (reused when already staged)."""
    label = "base model" if kind == "base_model" else "trained output"
    try:
        return stage_into(ws.staged_dir, kind, path, digest)
    except VerificationError as exc:
        raise VerificationError(
            f"the {label} at {path} is not the recorded one ({exc}): evidence is computed on "
            "the job's recorded files only"
        ) from exc


def weights_for_job(
    ws: Workspace,
    *,
    actor: Caller,
    job_id: str,
    base: Path | None = None,
    tuned: Path | None = None,
    progress: bool = False,
    **options: Any,
) -> Any:
    """Weight report of a trained job against the baselines of earlier approved jobs.

    Computed on the job's recorded base model and output only (``base``/``tuned`` may name
    copies, which must have the recorded digests); both are re-hashed before and after the
    analysis, and the stored evidence names the digests it was computed on.
    """
    subjects, row = _subjects_for(ws, actor, job_id, {"base_model": base, "output": tuned})
    with ws.store.read() as session:
        jobs, registered = baseline_sources(
            session, row.base_model_digest, exclude_job=row.id, state=chain_state(ws, session)
        )
    report = workspace_weight_report(
        ws,
        subjects["base_model"][0],
        subjects["output"][0],
        baselines=jobs + registered,
        base_digest=row.base_model_digest,
        progress=progress,
        **options,
    )
    if registered:
        report.notes.append(
            f"baselines on this base model: {len(jobs)} earlier jobs that passed the gate and "
            f"{len(registered)} fine-tunes a security reviewer registered "
            "(ftguard weights baseline list)"
        )
    _store_analysis(
        ws,
        actor=actor,
        job_id=job_id,
        kind="weights",
        body=report.model_dump(mode="json"),
        subjects=subjects,
    )
    return report


def _store_analysis(
    ws: Workspace,
    *,
    actor: Caller,
    job_id: str,
    kind: str,
    body: dict[str, Any],
    subjects: dict[str, tuple[Path, str]],
) -> None:
    """Store a trained job's weight report or behaviour comparison; the first one starts evaluation.

    The subjects are hashed again first: a file swapped during the analysis voids it.
    """
    for name, (path, digest) in subjects.items():
        _check_digest(path, digest, "base model" if name == "base_model" else "trained output")
    with ws.store.write() as session:
        state = chain_state(ws, session)
        who = authenticate(state, actor)
        row = checked_job(session, state, job_id, lock=True)
        require_job_analyst(state, policy_in_force(ws, state), who, row, to="analyse")
        if not awaits_evidence(session, state, row):
            raise ConflictError(f"job {job_id} became {row.state} during the analysis")
        store_evidence(
            ws,
            session,
            job_id=job_id,
            kind=kind,
            body=body,
            actor=who,
            payload={"subjects": {name: digest for name, (_, digest) in subjects.items()}},
        )
        if row.state == JobState.TRAINED.value:
            transition(
                ws,
                session,
                row,
                JobState.EVALUATING,
                actor=who,
                action="evaluation.start",
                payload={"by": kind},
            )


def review_triggers(ws: Workspace, job_id: str) -> list[dict[str, Any]]:
    """Candidate triggers the job's dataset review found, best first: ``{text, score}``."""
    with ws.store.read() as session:
        state = chain_state(ws, session)
        found = chain_evidence(session, state.jobs.get(job_id), "review")
    if found is None:
        return []
    return [
        {"text": str(t["text"]), "score": float(t.get("score") or 0.0)}
        for t in found[1].get("triggers") or []
        if t.get("text")
    ]


def evaluate_job(
    ws: Workspace,
    *,
    actor: Caller,
    job_id: str,
    model: Path | None = None,
    adapter: Path | None = None,
    baseline: Path | None = None,
    baseline_adapter: Path | None = None,
    suites: list[str | Suite] | None = None,
    limit: int | dict[str, int] | None = None,
    max_new_tokens: int = 64,
    progress: bool = False,
    output_cache: Path | None = None,
) -> Any:
    """Behaviour A/B of a trained job: the baseline model before vs the tuned model after.

    ``suites`` are registered suite names or loaded :class:`~ftguard.behavior.suites.Suite`
    objects (default: safety, safety_tasks, over_refusal, capability and triggers).
    ``output_cache`` is the folder of the content-addressed output cache (default: the
    workspace's ``cache/behavior``). Whoever can write it can change what the comparison sees,
    so it must be a folder only the account running ftguard can write (the demo keeps one
    under the cache root that already holds its reference model).
    """
    from ftguard.behavior import DEFAULT_SUITES
    from ftguard.weights import is_adapter

    with ws.store.read() as session:
        policy = policy_in_force(ws, chain_state(ws, session))
    if baseline is not None or baseline_adapter is not None:
        raise BadInputError(
            "a job's behaviour is compared with its recorded base model; --baseline and "
            "--baseline-adapter are for comparing models outside a job"
        )
    if model is not None and adapter is not None:
        raise BadInputError("give the job's output as MODEL or as --adapter, not both")
    subjects, row = _subjects_for(ws, actor, job_id, {"output": adapter or model})
    base_path = subjects["base_model"][0]
    output = subjects["output"][0]
    if is_adapter(output):
        model, adapter = base_path, output
    else:
        model, adapter = output, None
    comparison = ws.offload(
        behaviour_comparison,
        base_path,
        model,
        adapter,
        suites=suites or [*DEFAULT_SUITES, "triggers"],
        triggers=review_triggers(ws, job_id),
        limit=limit,
        max_new_tokens=max_new_tokens,
        cache_dir=output_cache or ws.path / "cache" / "behavior",
        policy=policy.behavior,
        progress=progress,
    )
    _store_analysis(
        ws,
        actor=actor,
        job_id=job_id,
        kind="behavior",
        body=comparison.model_dump(mode="json"),
        subjects=subjects,
    )
    return comparison


def behaviour_comparison(
    before_model: Path,
    model: Path,
    adapter: Path | None,
    *,
    suites: list[str | Suite],
    triggers: list[dict[str, Any]],
    limit: int | dict[str, int] | None,
    max_new_tokens: int,
    cache_dir: Path,
    policy: BehaviorPolicy,
    progress: bool,
) -> Any:
    """Run the suites on the model before and after, and compare them.

    Plain arguments only, so that it can run in an analysis worker process.
    """
    from ftguard.behavior import TransformersBackend, compare, run_suites

    before = run_suites(
        TransformersBackend(before_model, max_new_tokens=max_new_tokens),
        suites,
        triggers=triggers,
        limit_per_suite=limit,
        cache_dir=cache_dir,
        progress=progress,
    )
    after = run_suites(
        TransformersBackend(model, adapter_dir=adapter, max_new_tokens=max_new_tokens),
        suites,
        triggers=triggers,
        limit_per_suite=limit,
        cache_dir=cache_dir,
        progress=progress,
    )
    return compare(before, after, policy=policy)
