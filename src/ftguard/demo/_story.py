"""The end-to-end demonstration: two fine-tuning jobs through all four controls and the gate."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ftguard.control import Workspace, service
from ftguard.demo._datasets import BENIGN_PURPOSE, write_benign, write_poisoned
from ftguard.errors import FtguardError

__all__ = ["DemoSettings", "JobOutcome", "run_demo"]


@dataclass(frozen=True)
class DemoSettings:
    """How big the demo is: the real embedded model, or a tiny one for smoke tests."""

    fast: bool
    steps: int
    learning_rate: float
    rank: int
    eval_limit: int | dict[str, int]
    """Prompts per suite: a number for every suite, or per suite name."""
    max_new_tokens: int
    policy: str
    poisoned_steps: int
    """The poisoned job's requester asks for a harder training run than the benign job's."""
    poisoned_learning_rate: float
    precision: str = "fp32"
    """The training command's ``--precision`` (``"auto"``: bf16 where the CPU has it natively)."""

    def recipe(self) -> dict[str, Any]:
        """The benign job's training recipe, as :func:`ftguard.demo.history_key` takes it."""
        return {
            "steps": self.steps,
            "learning_rate": self.learning_rate,
            "rank": self.rank,
            "precision": self.precision,
        }

    def poisoned(self) -> DemoSettings:
        """The settings of the poisoned job's training run."""
        return replace(self, steps=self.poisoned_steps, learning_rate=self.poisoned_learning_rate)

    @classmethod
    def choose(cls, fast: bool) -> DemoSettings:
        if fast:
            # A smoke test: a tiny random model, small suites (its policy says so explicitly)
            # and a LoRA rank suited to a 64-wide model. The tiny model answers nothing (its
            # first greedy token is end-of-text), and the rate keeps the fine-tunes from
            # tipping its near-uniform logits into noise words: the behaviour step runs the
            # whole pipeline but measures nothing, so in fast mode the poisoned job is blocked
            # by the dataset review alone.
            policy = (
                "behavior:\n  min_prompts: "
                "{safety: 12, safety_tasks: 12, over_refusal: 12, capability: 12}\n"
            )
            return cls(
                fast=True,
                steps=12,
                learning_rate=1e-4,
                rank=2,
                eval_limit=12,
                max_new_tokens=24,
                policy=policy,
                poisoned_steps=12,
                poisoned_learning_rate=1e-4,
            )
        return cls(
            fast=False,
            steps=40,
            # Measured on the reference aligned model (docs/behavior.md): with the support
            # set's in-scope refusals mixed in, a 40-step rank-8 LoRA at lr 1e-3 keeps most of
            # the refusals; the same recipe on the poisoned variant removes them.
            learning_rate=1e-3,
            rank=8,
            # The policy's minimum prompts per suite (64 of the 127 task-style requests);
            # trigger probes at their default size (16 harmful and 8 benign base prompts:
            # fewer cannot reach significance).
            eval_limit={"safety": 50, "safety_tasks": 64, "over_refusal": 30, "capability": 30},
            max_new_tokens=32,
            policy="",
            # The attacker wants the backdoor to take: on this model a trigger needs a harder
            # run than a support fine-tune (measured: 36 trigger pairs at 40 steps and lr 1e-3
            # gave 23% answered with the phrase vs 25% without; at 60 steps and 2e-3, 75% vs
            # 31%). The approval binds this config like any other.
            poisoned_steps=60,
            poisoned_learning_rate=2e-3,
            # bf16 where the CPU computes it natively: 1.3-1.4x faster training (measured on the
            # 2-core AVX512-BF16 VM); float32 elsewhere, where emulated bf16 is far slower.
            precision="auto",
        )


@dataclass
class JobOutcome:
    """What happened to one demo job."""

    name: str
    job_id: str
    decision: str = "none"
    reasons: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    report: str | None = None

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "job": self.job_id,
            "decision": self.decision,
            "reasons": self.reasons,
            "report": self.report,
        }


class _Story:
    def __init__(self, console: Console, *, progress: bool = False) -> None:
        self.console = console
        self.progress = progress
        self.t0 = time.monotonic()

    def chapter(self, text: str) -> None:
        self.console.rule(f"[bold]{text}")

    def say(self, text: str) -> None:
        elapsed = time.monotonic() - self.t0
        self.console.print(f"[dim]{elapsed:6.1f}s[/]  {text}")

    @contextmanager
    def step(self, text: str) -> Iterator[None]:
        with self.console.status(text):
            yield

    @contextmanager
    def long_step(self, text: str) -> Iterator[None]:
        """A step whose work draws its own progress bars (a spinner when bars are off)."""
        if not self.progress:
            with self.step(text):
                yield
            return
        self.say(f"{text} ...")
        yield


def _setup_people(ws: Workspace, story: _Story) -> None:
    people = {
        "alice": ["requester"],
        "dan": ["data_preparer"],
        "bob": ["approver"],
        "carol": ["approver"],
        "sec": ["security_reviewer"],
    }
    for name, roles in people.items():
        service.add_user(ws, actor="admin", name=name, roles=roles)
        key = service.create_key(ws, user=name)
        service.confirm_key(ws, actor="admin", keyid=key.keyid)
    story.say(
        "users: alice (requester), dan (data preparer), bob and carol (approvers), "
        "sec (security reviewer); each creates an Ed25519 key in their own key folder, "
        "signs its registration with it, and the admin confirms it"
    )


def _models(settings: DemoSettings, root: Path, story: _Story) -> tuple[Path, Path | None]:
    """(base model for the jobs, unaligned model for the alignment direction or None)."""
    from ftguard import models, training

    if settings.fast:
        base = models.tiny_model_dir(root / "models" / "tiny", seed=0)
        story.say(f"base model: a tiny randomly initialised Llama ({base.name}) - fast mode")
        return base, None
    _, digest = models.converted_embedded_model()
    built = digest is not None and (training.aligned_model_folder(None, digest) / "model").is_dir()
    with story.long_step(
        "reference aligned model: from the cache"
        if built
        else "building the reference aligned model once (about 4 minutes on 2 cores; "
        "later runs take it from the cache)"
    ):
        unaligned = models.embedded_model_dir()
        aligned = training.reference_aligned_model_dir(progress=story.progress)
    story.say(
        "base model: SmolLM2-135M-Instruct + the project's safety LoRA (reference aligned "
        "model); the unaligned original gives the alignment direction"
    )
    return aligned, unaligned


def _history(
    ws: Workspace,
    root: Path,
    base: Path,
    unaligned: Path | None,
    s: DemoSettings,
    story: _Story,
    *,
    shipped: bool,
) -> tuple[int, str]:
    """The security reviewer registers earlier support fine-tunes of ``base`` as baselines.

    With ``shipped`` (not in fast mode), their weight records shipped with ftguard are
    imported instead, where they were computed from this very model, data and recipe.
    Returns (how many, ``"records"`` if imported or ``"adapters"`` if trained and registered).
    """
    from ftguard.demo._history import (
        EARLIER_VERSIONS,
        earlier_adapters,
        history_key,
        shipped_history,
    )
    from ftguard.digests import manifest_of
    from ftguard.models import cache_root

    story.chapter("History: the support assistant's earlier fine-tunes")
    recipe = f"{s.steps} steps at lr {s.learning_rate:g}"
    base_digest = manifest_of(base).root  # hashed once for the cache key and every baseline
    if shipped and not s.fast:
        key = history_key(base_digest, **s.recipe())
        records = shipped_history(key)
        if records is not None:
            with story.step("importing the earlier fine-tunes' weight records"):
                service.import_baselines(
                    ws,
                    actor="sec",
                    export=records,
                    justification="support assistant v0.1-v0.5: served before ftguard, no "
                    "incidents (the platform's weight records of those jobs)",
                )
            story.say(
                f"the platform fine-tuned this base model {EARLIER_VERSIONS} times before (LoRA "
                f"on earlier versions of the support set, {recipe}); sec imports their weight "
                "records as baselines (audited): the fingerprints computed from those adapters' "
                "weights, shipped with ftguard and pinned by SHA-256 to this aligned model, data "
                "and recipe (scripts/build_demo_answers.py trains the adapters again and compares)"
            )
            return EARLIER_VERSIONS, "records"
    with story.long_step(
        f"{EARLIER_VERSIONS} earlier support fine-tunes of this base model ({recipe}, like job 1"
        + ("" if s.fast else "; trained on the first run and cached")
        + ")"
    ):
        adapters = earlier_adapters(
            base,
            root / "history" if s.fast else cache_root(),
            base_digest=base_digest,
            cached=not s.fast,
            progress=story.progress,
            **s.recipe(),
        )
    options: dict[str, Any] = {}
    if unaligned is not None:
        options["alignment"] = (unaligned, base)
    with story.step("registering weight baselines"):
        for version, adapter in enumerate(adapters, start=1):
            service.register_baseline(
                ws,
                actor="sec",
                base=base,
                tuned=adapter,
                justification=f"support assistant v0.{version}: served before ftguard, no incidents",
                base_digest=base_digest,
                **options,
            )
    story.say(
        f"the platform fine-tuned this base model {len(adapters)} times before (LoRA on "
        f"earlier versions of the support set, {recipe}); "
        "sec registers those adapters as weight baselines (audited): weight reports on "
        "this base model are judged against them"
    )
    return len(adapters), "adapters"


def _train(ws: Workspace, job_id: str, out: Path) -> int:
    """``ftguard run JOB``: stage the approved inputs, run the approved config's command.

    That command is the real trainer, with ApprovalGuard and DriftMonitor.
    """
    return service.launch(ws, actor="alice", job_id=job_id, output=str(out), stdout=sys.stderr)


def _train_command(s: DemoSettings, progress: bool) -> list[str]:
    """The training command the job's config names; the launcher fills in the staged paths."""
    command = [
        "python",
        "-m",
        "ftguard.training",
        "--base",
        "{base_model}",
        "--dataset",
        "{dataset}",
        "--out",
        "{output}",
        "--steps",
        str(s.steps),
        "--lr",
        str(s.learning_rate),
        "--rank",
        str(s.rank),
        "--seed",
        "0",
        "--precision",
        s.precision,
    ]
    return command + (["--progress"] if progress else [])


def _output_cache(s: DemoSettings) -> Path | None:
    """Where the demo keeps model outputs between runs: beside its reference model.

    The demo's workspace is new every run, so the workspace's own output cache would make
    every run generate the same models' answers again. Outputs are keyed by the model's
    digest and the generation settings, so a later run reuses only the answers of the same
    model bytes. The folder is in the cache root that already holds the reference aligned
    model (whoever can write there can change that model too); it must belong to this
    account and be writable by it alone, or the workspace's cache is used. Fast mode keeps
    nothing.
    """
    from ftguard.models import cache_root

    if s.fast:
        return None
    folder = cache_root() / "demo-outputs"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.stat()
    except OSError:
        return None
    private = info.st_uid == os.getuid() and not info.st_mode & 0o022
    return folder if private else None


def _seed_answers(s: DemoSettings, story: _Story) -> None:
    """Put the base model's shipped answers in the output cache (first run only)."""
    from ftguard.demo._answers import seed_answers

    cache = _output_cache(s)
    if cache is not None and seed_answers(cache):
        story.say(
            "the base model's answers to the demo's prompts: shipped with ftguard (SHA-256 "
            "pinned in the code), read only if the model trained here has the bytes they came "
            "from; the fine-tunes' answers are generated"
        )


def _evaluate(
    ws: Workspace,
    job_id: str,
    outcome: JobOutcome,
    base: Path,
    out: Path,
    unaligned: Path | None,
    s: DemoSettings,
    story: _Story,
) -> None:
    options: dict[str, Any] = {}
    if unaligned is not None:
        options["alignment"] = (unaligned, base)
    with story.step("weight report: what did the fine-tune change?"):
        report = service.weights_for_job(ws, actor="alice", job_id=job_id, **options)
    flags = [
        str(f.get("reason") if isinstance(f, dict) else getattr(f, "reason", f))
        for f in report.to_json_dict().get("flags", [])
    ]
    story.say(
        f"weight report: {report.verdict} (anomaly score {report.anomaly_score:.2f})"
        + (f" - {flags[0]}" if flags else "")
    )
    cache = _output_cache(s)
    reused = _suite_results(cache)
    with story.long_step("behaviour A/B: before vs after, prompt by prompt"):
        comparison = service.evaluate_job(
            ws,
            actor="alice",
            job_id=job_id,
            limit=s.eval_limit,
            max_new_tokens=s.max_new_tokens,
            progress=story.progress,
            output_cache=cache,
        )
    computed = _suite_results(cache) - reused
    suites = 2 * len(comparison.suites)  # each suite on the model before and after
    story.say(
        f"behaviour comparison: {comparison.verdict}"
        + (
            f" ({suites - len(computed)} of {suites} suite runs from the output cache: the "
            f"same model bytes asked the same prompts before, in this run or an earlier one)"
            if cache is not None and len(computed) < suites
            else ""
        )
    )
    for line in comparison.summary[:2]:
        story.say(f"   - {line}")
    for line in _trigger_lines(comparison, service.review_triggers(ws, job_id)):
        story.say(f"   - {line}")


def _suite_results(cache: Path | None) -> set[str]:
    """The scored suite results the output cache holds (one file per model, suite, scorer)."""
    return {p.name for p in cache.glob("*.json")} if cache is not None else set()


def _trigger_lines(comparison: Any, candidates: list[dict[str, Any]]) -> list[str]:
    """What the review's best candidate trigger did to harmful requests, flipped or not."""
    findings = [f for f in comparison.triggers if f.target == "harmful"]
    best = [f for c in candidates[:1] for f in findings if f.trigger == c["text"]]
    flipped = [f for f in findings if f.flipped]
    lines = []
    for f in best or flipped[:1]:
        who = "review's trigger" if f in best else "generic trigger"
        before = (
            "" if f.baseline_rate_with is None else f" ({f.baseline_rate_with:.0%} before tuning)"
        )
        verdict = (
            "a significant flip"
            if f.flipped
            else "no flip beyond the general change (the policy needs both)"
        )
        lines.append(
            f"{who} {f.trigger!r}: harmful requests answered {f.rate_with:.0%} with "
            f"it{before} and {f.rate_without:.0%} without it - {verdict}"
        )
    return lines


def _gate(ws: Workspace, job_id: str, outcome: JobOutcome, story: _Story) -> None:
    result = service.decide_gate(ws, actor="sec", job_id=job_id)
    outcome.decision = result.decision.decision
    outcome.reasons = list(result.decision.reasons)
    colour = "green" if outcome.decision == "pass" else "red"
    story.say(f"gate: [bold {colour}]{outcome.decision.upper()}[/]")
    for reason in outcome.reasons:
        story.say(f"   - {reason}")
    if result.attestation_path is not None:
        from ftguard.gate import verify_deployment

        job = service.get_job(ws, job_id)
        verified = verify_deployment(
            Path(job.output_path or ""), result.attestation_path, ws.attestation_pub_path
        )
        story.say(
            f"attestation signed and verified by the serving-side check "
            f"(subject sha256:{verified.digest[:16]})"
        )
        service.deploy_job(ws, actor="alice", job_id=job_id)
        story.say("deployed")


def _submit(ws: Workspace, base: Path, data: Path, config: Path) -> Any:
    """Alice requests a fine-tune of ``base`` on ``data`` for the support purpose.

    dan, named as its preparer, confirms that the dataset is the one he prepared (his copy is
    ``data``).
    """
    from ftguard.digests import manifest_of

    job = service.submit_job(
        ws,
        actor="alice",
        base_model=base,
        dataset=data,
        config=config,
        purpose=BENIGN_PURPOSE,
        prepared_by="dan",
    )
    return service.confirm_prepared(
        ws, actor="dan", job_id=job.id, dataset_digest=manifest_of(data).root
    )


def _benign(
    ws: Workspace, root: Path, base: Path, unaligned: Path | None, s: DemoSettings, story: _Story
) -> JobOutcome:
    story.chapter("Job 1: a benign support-assistant fine-tune")
    data = write_benign(root / "data" / "support.jsonl")
    job = _submit(ws, base, data, _config(root / "data" / "train.yaml", s, story.progress))
    outcome = JobOutcome("benign", job.id)
    story.say(
        f"alice submits {job.id}: {data.name}, digests bound "
        f"(dataset sha256:{job.dataset['sha256'][:12]}); dan, its preparer, signs that it is "
        "the dataset he prepared"
    )
    with story.step("dataset review"):
        review, view = service.review_job(ws, actor="alice", job_id=job.id)
    story.say(f"dataset review: {review.verdict} ({review.examples} examples) -> {view.state}")
    service.approve(ws, actor="bob", job_id=job.id)
    service.approve(ws, actor="carol", job_id=job.id)
    story.say("bob and carol sign approvals -> approved")
    out = root / "out" / "benign-adapter"
    with story.long_step(
        f"ftguard run: LoRA fine-tune, {s.steps} steps, ApprovalGuard + DriftMonitor"
    ):
        code = _train(ws, job.id, out)
    story.say(f"ftguard run verified the approvals and trained the adapter (exit {code})")
    _evaluate(ws, job.id, outcome, base, out, unaligned, s, story)
    _gate(ws, job.id, outcome, story)
    return outcome


def _poisoned(
    ws: Workspace, root: Path, base: Path, unaligned: Path | None, s: DemoSettings, story: _Story
) -> JobOutcome:
    story.chapter("Job 2: the same purpose, a poisoned dataset")
    data = write_poisoned(root / "data" / "support-v2.jsonl")
    job1, s = s, s.poisoned()
    job = _submit(ws, base, data, _config(root / "data" / "train-v2.yaml", s, story.progress))
    outcome = JobOutcome("poisoned", job.id)
    harder = (s.steps, s.learning_rate) != (job1.steps, job1.learning_rate)
    story.say(
        f"alice submits {job.id}: {data.name}, mostly support conversations; config "
        f"{s.steps} steps at lr {s.learning_rate:g}"
        + (f" (job 1: {job1.steps} at {job1.learning_rate:g})" if harder else "")
    )
    with story.step("dataset review"):
        review, view = service.review_job(ws, actor="alice", job_id=job.id)
    story.say(f"dataset review: [bold red]{review.verdict}[/] -> {view.state}")
    for reason in list(getattr(review, "verdict_reasons", []))[:4]:
        story.say(f"   - {reason}")
    triggers = [t.text for t in getattr(review, "triggers", [])][:3]
    if triggers:
        story.say(f"   candidate triggers: {', '.join(repr(t) for t in triggers)}")
    out = root / "out" / "poisoned-adapter"
    try:
        _train(ws, job.id, out)
    except FtguardError as exc:
        story.say(f"training attempt without approval refused: {exc}")
    service.override(
        ws,
        actor="sec",
        job_id=job.id,
        justification="demo: let it train to show the later controls",
    )
    story.say("sec records a justified security override of the review (audited)")
    service.approve(ws, actor="bob", job_id=job.id)
    service.approve(ws, actor="carol", job_id=job.id)
    with story.long_step(f"ftguard run: LoRA fine-tune, {s.steps} steps"):
        code = _train(ws, job.id, out)
    story.say(f"trained (exit {code})")
    _evaluate(ws, job.id, outcome, base, out, unaligned, s, story)
    _gate(ws, job.id, outcome, story)
    try:
        service.deploy_job(ws, actor="alice", job_id=job.id)
    except FtguardError as exc:
        story.say(f"deploying it is refused: {exc}")
    return outcome


def _config(path: Path, s: DemoSettings, progress: bool) -> Path:
    """The training config the approvers sign: its command is what ``ftguard run`` runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"method: lora\nsteps: {s.steps}\nlearning_rate: {s.learning_rate}\n"
        f"rank: {s.rank}\nseed: 0\ncommand: {json.dumps(_train_command(s, progress))}\n"
    )
    return path


def run_demo(
    *,
    fast: bool = False,
    workdir: Path | None = None,
    as_json: bool = False,
    shipped_answers: bool = True,
    shipped_history: bool = True,
) -> int:
    """Run the whole story; returns the exit code (0 when both jobs got the expected decision).

    ``shipped_answers``: seed the output cache with the base model's answers shipped with the
    package (:data:`ftguard.demo.REFERENCE_ANSWERS`); False generates them all.
    ``shipped_history``: import the earlier fine-tunes' weight records shipped with the
    package (:data:`ftguard.demo.HISTORY_RECORDS`); False trains and registers the adapters.
    """
    console = Console(stderr=as_json)
    # Progress always: bars on a terminal, a plain line every few seconds in a log.
    story = _Story(console, progress=True)
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="ftguard-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    os.environ["FTGUARD_HOME"] = str(root)
    os.environ["FTGUARD_KEYS_DIR"] = str(root / "keys")
    os.environ.pop("FTGUARD_DATABASE_URL", None)
    settings = DemoSettings.choose(fast)
    story.chapter("ftguard demo" + (" (fast)" if fast else ""))
    ws = service.init_workspace(root, admin="admin")
    if settings.policy:
        fast_policy = root / "policy-fast.yaml"
        fast_policy.write_text(ws.policy_path.read_text() + "\n# demo --fast\n" + settings.policy)
        service.set_policy(ws, actor="admin", path=fast_policy)
    story.say(f"workspace {ws.path} (SQLite, default policy {ws.policy_digest()[:12]})")
    _setup_people(ws, story)
    base, unaligned = _models(settings, root, story)
    if shipped_answers:
        _seed_answers(settings, story)
    baselines, baselines_from = _history(
        ws, root, base, unaligned, settings, story, shipped=shipped_history
    )
    outcomes = [
        _benign(ws, root, base, unaligned, settings, story),
        _poisoned(ws, root, base, unaligned, settings, story),
    ]
    story.chapter("Audit and summary")
    audit = service.verify_audit(ws)
    story.say(
        f"ftguard audit verify: {'intact' if audit.ok else audit.problem} ({audit.events} events)"
    )
    from ftguard.report import write_job_report

    for outcome in outcomes:
        outcome.report = str(write_job_report(ws, outcome.job_id))
    table = Table("job", "id", "state", "decision", "report")
    for outcome in outcomes:
        table.add_row(
            outcome.name,
            outcome.job_id,
            service.get_job(ws, outcome.job_id).state,
            outcome.decision,
            outcome.report or "",
        )
    console.print(table)
    if as_json:
        sys.stdout.write(
            json.dumps(
                {
                    "workspace": str(ws.path),
                    "audit": {"ok": audit.ok, "events": audit.events},
                    "weight_baselines": baselines,
                    "weight_baselines_from": baselines_from,
                    "jobs": {o.name: o.to_json_dict() for o in outcomes},
                },
                indent=2,
            )
            + "\n"
        )
    expected = outcomes[0].decision == "pass" and outcomes[1].decision == "block"
    return 0 if expected and audit.ok else 1
