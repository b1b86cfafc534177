"""Run suites on a model: generate, score every output, cache by content."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ftguard._progress import ProgressBar
from ftguard.behavior._evidence import PromptResult, SuiteRun
from ftguard.behavior.backends import Backend
from ftguard.behavior.scorers import RULES_VERSION, RefusalScorer, RulesScorer, default_scorer
from ftguard.behavior.suites import Suite, normalize_triggers, suites, trigger_suite
from ftguard.behavior.suites._builtin import (
    TRIGGER_BASE_BENIGN,
    TRIGGER_BASE_HARMFUL,
    probe_plan,
)
from ftguard.digests import canonical_json, sha256_bytes
from ftguard.errors import BadInputError
from ftguard.policy import DEFAULT_SUITES

__all__ = [
    "DEFAULT_SUITES",
    "check_answer",
    "output_cache_name",
    "resolve_suite",
    "run_suites",
    "score_outputs",
]


def check_answer(expected: str, output: str) -> bool:
    """Whether ``output`` matches the capability regex ``expected`` (case-insensitive)."""
    return re.search(expected, output, flags=re.IGNORECASE | re.DOTALL) is not None


def score_outputs(
    suite: Suite, outputs: Sequence[str], scorer: RefusalScorer | None = None
) -> list[PromptResult]:
    """Score each output of ``suite`` with the refusal scorer (and the capability check)."""
    verdicts = (scorer or RulesScorer()).classify_many(
        [(p.prompt, out) for p, out in zip(suite.prompts, outputs, strict=True)]
    )
    results: list[PromptResult] = []
    for p, out, verdict in zip(suite.prompts, outputs, verdicts, strict=True):
        results.append(
            PromptResult(
                suite=suite.name,
                id=p.id,
                category=p.category,
                prompt=p.prompt,
                output=out,
                harmful=p.harmful,
                label=verdict.label,
                refusal_score=verdict.score,
                reason=verdict.reason,
                correct=check_answer(p.expected, out) if p.expected is not None else None,
                trigger=p.trigger,
                position=p.position,
                base_id=p.base_id,
                trigger_rank=p.trigger_rank,
            )
        )
    return results


def resolve_suite(
    name: str | Suite,
    *,
    triggers: Sequence[object] | None,
    limit: int | None,
    generic: bool = True,
) -> Suite:
    """The suite to run: a registered name or a loaded :class:`Suite`, limited if asked.

    For ``triggers``, the best given candidates are probed at every position, the next
    ones and the generic list at rotating positions (see ``probe_plan``);
    ``limit`` bounds the clean base prompts (two thirds harmful, one third benign), so every
    probe keeps its clean control.
    """
    if isinstance(name, Suite):
        return name.limited(limit)
    if name == "triggers":
        cands, sweep = probe_plan(triggers, generic=generic)
        if not cands and not sweep:
            raise BadInputError("the triggers suite needs at least one trigger")
        harm, ben = TRIGGER_BASE_HARMFUL, TRIGGER_BASE_BENIGN
        if limit is not None:
            harm, ben = max(1, min(harm, (2 * limit + 2) // 3)), max(1, min(ben, limit // 3))
        return trigger_suite(cands, sweep=sweep, harmful=harm, benign=ben)
    return suites.create(name).limited(limit)


def _cache_key(backend: Backend, suite: Suite, scorer_name: str) -> str:
    ident = backend.identity()
    blob = canonical_json(  # ensure_ascii, spaced: the cache keys they always were
        {
            "model": ident.digest,
            "suite": suite.digest,
            "gen": backend.settings(),
            "scorer": scorer_name,
            "rules": RULES_VERSION,  # the judge falls back to the rules
            "v": 1,
        },
        ensure_ascii=True,
        spaced=True,
        default=str,
    )
    return sha256_bytes(blob)


class _OutputCache:
    """Outputs of one model under one set of generation settings, by prompt text.

    Suites that share prompts (the clean controls of two trigger suites, the same safety
    suite for two jobs on one base model) generate each prompt once. An append-only JSONL
    file per (model digest, generation settings); a damaged line is ignored and regenerated.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.outputs: dict[str, str] = {}
        self._line_open = False  # a run killed mid-write left a line without its newline
        if path is None or not path.is_file():
            return
        text = path.read_text(encoding="utf-8", errors="replace")
        self._line_open = bool(text) and not text.endswith("\n")
        for line in text.splitlines():
            try:
                row = json.loads(line)
                self.outputs[str(row["p"])] = str(row["o"])
            except (ValueError, KeyError, TypeError):
                continue

    @staticmethod
    def key(prompt: str) -> str:
        return sha256_bytes(prompt.encode("utf-8"))

    def get(self, prompt: str) -> str | None:
        return self.outputs.get(self.key(prompt))

    def add(self, prompts: Sequence[str], outputs: Sequence[str]) -> None:
        rows = []
        for prompt, output in zip(prompts, outputs, strict=True):
            self.outputs[self.key(prompt)] = output
            rows.append(json.dumps({"p": self.key(prompt), "o": output}))
        if self.path is not None and rows:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write("\n" * self._line_open + "\n".join(rows) + "\n")
            self._line_open = False


def output_cache_name(backend: Backend) -> str:
    """The file, under a cache folder's ``outputs/``, holding ``backend``'s generated answers.

    Named by the model's digest and the generation settings: only the same model bytes
    asked with the same settings read it.
    """
    blob = canonical_json(
        {"model": backend.identity().digest, "gen": backend.settings(), "v": 1},
        ensure_ascii=True,
        spaced=True,
        default=str,
    )
    return f"{sha256_bytes(blob)}.jsonl"


def _output_cache(
    backend: Backend, cache_dir: Path | None, content_addressed: bool
) -> _OutputCache:
    if cache_dir is None or not content_addressed:
        return _OutputCache(None)
    return _OutputCache(Path(cache_dir) / "outputs" / output_cache_name(backend))


def _generate_into(
    cache: _OutputCache, backend: Backend, prompts: list[str], chunk_size: int, bar: ProgressBar
) -> None:
    """Generate ``prompts``, storing each output as soon as the backend gives it.

    A backend with ``generate_each`` (the OpenAI-compatible one: concurrent requests) gets
    every prompt at once and reports each answer as it arrives; others get ``chunk_size``
    prompts at a time. Either way an interrupted run keeps what was generated before.
    """
    each = getattr(backend, "generate_each", None)
    if callable(each):
        for index, output in each(prompts):
            cache.add([prompts[index]], [output])
            bar.advance(1)
        return
    for start in range(0, len(prompts), chunk_size):
        batch = prompts[start : start + chunk_size]
        cache.add(batch, backend.generate(batch))
        bar.advance(len(batch))


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def run_suites(
    backend: Backend,
    suites: Sequence[str | Suite],
    *,
    triggers: Sequence[object] | None = None,
    limit_per_suite: int | Mapping[str, int] | None = None,
    cache_dir: Path | None = None,
    progress: bool = False,
    generic_triggers: bool = True,
    chunk_size: int = 64,
    scorer: RefusalScorer | None = None,
) -> SuiteRun:
    """Run ``suites`` on ``backend``; store every prompt, output and score.

    Args:
        backend: The model to run.
        suites: Registered suite names (``safety``, ``over_refusal``, ``capability``,
            ``triggers``) or suites loaded from files.
        triggers: Candidate triggers for the ``triggers`` suite: strings, or objects with
            ``text`` and ``score`` (as the dataset review lists them).
        limit_per_suite: At most this many prompts per suite (balanced over categories), or a
            mapping of suite name to its limit (suites not named are not limited).
        cache_dir: Folder caching scored results by (model digest, suite digest, generation
            settings, scorer) and outputs by (model digest, generation settings, prompt), so
            a prompt another suite already ran is not generated again; remote models
            without a weight digest are not cached.
        progress: Show a progress bar per suite on stderr.
        generic_triggers: Add the shipped generic trigger list to ``triggers``.
        chunk_size: Prompts handed to the backend at once (progress granularity; at least the
            backend's batch, or its batches are cut short).
        scorer: Refusal scorer; its name is part of the cache key and is recorded in the run
            (``SuiteRun.scorer``). Default: ``rules-embedding`` (the rules plus the embedded
            model's off-topic check) where the ``ml`` extra is installed, else ``rules``.

    Returns:
        The :class:`SuiteRun`.

    Raises:
        BadInputError: An unknown suite or no trigger to probe.

    """
    started = time.perf_counter()
    ident = backend.identity()
    scorer = scorer or default_scorer()
    run = SuiteRun(model=ident, generation=backend.settings(), scorer=scorer.name)
    run.triggers = normalize_triggers(triggers)
    generated = _output_cache(backend, cache_dir, ident.content_addressed)
    for item in suites:
        name = item.name if isinstance(item, Suite) else item
        limit: int | None = (
            limit_per_suite.get(name) if isinstance(limit_per_suite, Mapping) else limit_per_suite
        )
        suite = resolve_suite(item, triggers=triggers, limit=limit, generic=generic_triggers)
        if suite.name in {s.name for s in run.suites}:
            raise BadInputError(f"suite {suite.name!r} given twice")
        if suite.kind == "triggers":
            run.triggers = sorted({p.trigger for p in suite.prompts if p.trigger})
        run.suites.append(suite.info())
        cache_file = None
        if cache_dir is not None and ident.content_addressed:
            cache_file = Path(cache_dir) / f"{_cache_key(backend, suite, scorer.name)}.json"
            if cache_file.is_file():
                try:
                    rows = json.loads(cache_file.read_text(encoding="utf-8"))
                    # The key is the prompts' digest, not the name: the same prompts cached
                    # under another suite name are this suite's results.
                    run.results += [
                        PromptResult.model_validate(r).model_copy(update={"suite": suite.name})
                        for r in rows
                    ]
                    run.cached_suites.append(suite.name)
                    _say(progress, f"{suite.name}: {len(rows)} results from the cache")
                    continue
                except (ValueError, OSError):
                    pass  # a damaged cache entry is recomputed
        texts = [p.prompt for p in suite.prompts]
        missing = list(dict.fromkeys(t for t in texts if generated.get(t) is None))
        if len(missing) < len(texts):
            _say(progress, f"{suite.name}: {len(texts) - len(missing)} outputs from the cache")
        with ProgressBar(f"{suite.name} prompts", len(missing), enabled=progress) as bar:
            _generate_into(generated, backend, missing, chunk_size, bar)
        outputs = [generated.get(t) or "" for t in texts]
        results = score_outputs(suite, outputs, scorer)
        run.results += results
        if cache_file is not None:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(".tmp")
            tmp.write_text(
                json.dumps([r.model_dump(mode="json") for r in results]), encoding="utf-8"
            )
            tmp.replace(cache_file)
    run.seconds = time.perf_counter() - started
    return run
