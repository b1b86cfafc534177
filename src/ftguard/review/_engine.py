"""The review engine: stream a dataset through the scanners and judge it by the policy."""

from __future__ import annotations

import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import chain, islice
from pathlib import Path
from typing import Any

from ftguard._progress import ProgressBar
from ftguard.datasets import LoadIssue, detect_format, load_examples
from ftguard.errors import BadInputError
from ftguard.review._evidence import DatasetFinding, DatasetReview, Finding, Trigger, severity_rank
from ftguard.review._example import Example
from ftguard.review._policy import ReviewPolicy
from ftguard.review._verdict import decide_verdict
from ftguard.review._worker import scan_chunk
from ftguard.review.scanners._registry import (
    BUILTIN_SCANNERS,
    BatchContext,
    BatchScanner,
    DatasetScanner,
    ExampleScanner,
    RunContext,
    scanners,
)

__all__ = ["DEFAULT_SCANNERS", "ENGINES", "ENGINE_ENV", "choose_engine", "review_dataset"]

DEFAULT_SCANNERS = list(BUILTIN_SCANNERS)
CHUNK = 256
MAX_FINDINGS = 200_000
ENGINES = ("local", "ray")
"""Where a review runs: this machine's processes, or a Ray cluster (``ftguard[ray]``)."""
ENGINE_ENV = "FTGUARD_ENGINE"
"""Environment variable naming the engine when the caller does not."""


_MAX_PROVENANCE_BYTES = 16 << 20
_MAX_PROVENANCE_DEPTH = 64
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _read_provenance(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise BadInputError(
            f"{path}: cannot read the provenance manifest ({exc.strerror})"
        ) from None
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block: refused before it is opened
        raise BadInputError(f"{path}: the provenance manifest is not a regular file")
    if st.st_size > _MAX_PROVENANCE_BYTES:
        raise BadInputError(f"{path}: the provenance manifest is larger than 16 MiB")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BadInputError(
            f"{path}: cannot read the provenance manifest ({exc.strerror})"
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInputError(
            f"{path}: the provenance manifest is not UTF-8 text (byte {exc.start})"
        ) from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except RecursionError:
            raise BadInputError(f"{path}: the provenance manifest is nested too deeply") from None
        except ValueError as exc:  # malformed JSON, or an integer of over 4300 digits
            raise BadInputError(
                f"{path}: the provenance manifest is not valid JSON ({exc})"
            ) from None
    else:
        from ftguard.policy import read_yaml

        data = read_yaml(text, source=f"{path}: the provenance manifest")
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: the provenance manifest must be a mapping")
    _check_manifest(data, path)
    return data


def _check_manifest(value: Any, path: Path) -> None:
    r"""Refuse nesting deeper than _MAX_PROVENANCE_DEPTH and text that is not Unicode.

    A surrogate escape (``"\ud800"``) in JSON or YAML decodes to a lone surrogate, which no
    UTF-8 output (the review's JSON, its HTML) can hold. Walks without recursion.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, str) and _LONE_SURROGATE.search(item):
            raise BadInputError(
                f"{path}: the provenance manifest holds a lone surrogate escape (not Unicode text)"
            )
        if isinstance(item, dict | list):
            if level > _MAX_PROVENANCE_DEPTH:
                raise BadInputError(
                    f"{path}: the provenance manifest is nested more than "
                    f"{_MAX_PROVENANCE_DEPTH} levels"
                )
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)


def _chunks(items: Iterator[Example | LoadIssue], size: int) -> Iterator[list[Example | LoadIssue]]:
    while True:
        chunk = list(islice(items, size))
        if not chunk:
            return
        yield chunk


def review_dataset(
    path: Path,
    *,
    purpose: str | None = None,
    policy: ReviewPolicy | None = None,
    format: str | None = None,
    column_map: dict[str, str] | None = None,
    scanners: list[str] | None = None,
    provenance: Path | None = None,
    workers: int | None = None,
    progress: bool = False,
    embeddings: bool = True,
    engine: str | None = None,
) -> DatasetReview:
    """Review a fine-tuning dataset and judge it by ``policy``.

    Args:
        path: The dataset file (JSONL, JSON array, CSV or Parquet).
        purpose: The stated purpose of the fine-tune (for ``purpose_consistency``).
        policy: The review policy (default: ``ReviewPolicy()``).
        format: Force the file format (``jsonl``, ``json``, ``csv``, ``parquet``).
        column_map: Canonical field -> the file's column name (CSV, Parquet, odd JSON).
        scanners: Names of the scanners to run (default: every built-in scanner).
        provenance: A JSON or YAML provenance manifest (sources, licences, collection
            method, preparer).
        workers: Worker processes for the per-example scanners (default: CPU count;
            1 runs everything in this process).
        progress: Show a progress bar on stderr.
        embeddings: Run the scanners that need the embedding model.
        engine: ``local`` (this machine) or ``ray`` (a Ray cluster: ``RAY_ADDRESS``, else
            a local Ray runtime; see docs/scale.md). Default: ``$FTGUARD_ENGINE``, else the
            policy's ``engine`` where it has one, else ``local``. Both give the same review.

    Returns:
        The :class:`DatasetReview` evidence with its verdict.

    Raises:
        BadInputError: When the file is missing, is not a dataset, or a scanner is unknown,
            the engine is unknown, or ``ray`` is chosen without ``ftguard[ray]``.

    """
    started = time.perf_counter()
    path = Path(path)
    policy = policy or ReviewPolicy()
    if not path.is_file():
        raise BadInputError(f"{path}: no such dataset file")
    if choose_engine(engine, policy) == "ray":
        from ftguard.review._ray import review_on_ray

        return review_on_ray(
            path,
            purpose=purpose,
            policy=policy,
            format=format,
            column_map=column_map,
            scanners=scanners,
            provenance=provenance,
            workers=workers,
            progress=progress,
            embeddings=embeddings,
        )
    fmt = format or detect_format(path)
    objs, skipped = _chosen_scanners(scanners, embeddings=embeddings)
    run = RunContext(
        purpose=purpose, embeddings=embeddings, provenance=_read_provenance(provenance)
    )
    tally = _Tally()
    dataset_scanners = [o for o in objs if isinstance(o, DatasetScanner)]
    n = _scan_examples(
        lambda: load_examples(path, fmt, column_map, issues=True),
        objs,
        run,
        tally,
        workers=workers if workers is not None else (os.cpu_count() or 1),
        progress=progress,
    )
    run.examples = n
    dataset_findings, triggers = _finish_dataset_scanners(
        dataset_scanners,
        lambda: (e for e in load_examples(path, fmt, column_map) if isinstance(e, Example)),
        run,
        tally,
    )
    return _review_of(
        path, fmt, policy, objs, skipped, run, tally, dataset_findings, triggers, started
    )


def choose_engine(engine: str | None, policy: ReviewPolicy | None = None) -> str:
    """The engine a review runs on: the one named, else ``$FTGUARD_ENGINE``, else the policy's.

    Raises:
        BadInputError: An engine that is not one of :data:`ENGINES`.

    """
    chosen = (
        engine or os.environ.get(ENGINE_ENV, "").strip() or getattr(policy, "engine", None)
    ) or "local"
    if chosen not in ENGINES:
        source = "--engine" if engine else ENGINE_ENV if os.environ.get(ENGINE_ENV) else "policy"
        raise BadInputError(
            f"{source}: unknown review engine {chosen!r} (choose from {', '.join(ENGINES)})"
        )
    return str(chosen)


def _review_of(
    path: Path,
    fmt: str,
    policy: ReviewPolicy,
    objs: list[Any],
    skipped: dict[str, str],
    run: RunContext,
    tally: _Tally,
    dataset_findings: list[DatasetFinding],
    triggers: list[Trigger],
    started: float,
) -> DatasetReview:
    """The review evidence from what the scanners found: the findings sorted, the verdict."""
    n = run.examples
    purpose = run.purpose
    findings = sorted(tally.findings, key=lambda f: (f.example, -severity_rank(f.severity)))
    ran = {o.name for o in objs}
    verdict, reasons = decide_verdict(
        policy, n, findings, dataset_findings, triggers, run.provenance, ran
    )
    from ftguard.digests import manifest_of

    return DatasetReview(
        verdict=verdict,
        verdict_reasons=reasons,
        examples=n,
        findings=findings,
        dataset_findings=dataset_findings,
        triggers=triggers,
        counts=tally.counts,
        flagged_examples=len(tally.flagged),
        dataset_digest=manifest_of(path).root,
        dataset_path=str(path),
        format=fmt,
        purpose=purpose,
        scanner_versions={o.name: str(o.version) for o in objs},
        skipped_scanners=skipped,
        provenance=run.provenance,
        policy=policy.model_dump(mode="json"),
        elapsed_s=round(time.perf_counter() - started, 3),
    )


def _chosen_scanners(
    names: list[str] | None, *, embeddings: bool
) -> tuple[list[Any], dict[str, str]]:
    """The scanners to run (default: every built-in one) and those skipped, with why."""
    objs = [scanners.create(n) for n in dict.fromkeys(names or DEFAULT_SCANNERS)]
    skipped: dict[str, str] = {}
    if not embeddings:
        for o in objs:
            if o.uses_embeddings:
                skipped[o.name] = "embedding scanners were turned off (--no-embeddings)"
        objs = [o for o in objs if not o.uses_embeddings]
    return objs, skipped


class _Tally:
    """Findings kept (up to MAX_FINDINGS), counts per scanner and severity, flagged examples."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.counts: dict[str, dict[str, int]] = {}
        self.flagged: set[int] = set()

    def count(self, scanner: str, severity: str, example: int | None = None) -> None:
        per = self.counts.setdefault(scanner, {})
        per[severity] = per.get(severity, 0) + 1
        if example is not None and severity_rank(severity) >= 2:
            self.flagged.add(example)

    def add(self, found: list[Finding], *, keep_all: bool = False) -> None:
        for f in found:
            self.count(f.scanner, f.severity, f.example)
        if keep_all:
            self.findings.extend(found)
        elif len(self.findings) < MAX_FINDINGS:
            self.findings.extend(found[: MAX_FINDINGS - len(self.findings)])


def _scan_examples(
    stream_of: Callable[[], Iterator[Example | LoadIssue]],
    objs: list[Any],
    run: RunContext,
    tally: _Tally,
    *,
    workers: int,
    progress: bool,
) -> int:
    """One pass over the dataset in chunks; returns the records read (unreadable ones too).

    Per chunk: the per-example scanners (in worker processes when there are enough examples),
    then the batch scanners, then each dataset scanner observes.
    """
    worker_names = tuple(o.name for o in objs if isinstance(o, ExampleScanner | DatasetScanner))
    batch_scanners = [o for o in objs if isinstance(o, BatchScanner)]
    dataset_scanners = [o for o in objs if isinstance(o, DatasetScanner)]
    stream = stream_of()
    n = 0
    with ProgressBar("reviewing examples", None, enabled=progress) as bar:
        pool: ProcessPoolExecutor | None = None
        try:
            first: list[Example | LoadIssue] = list(islice(stream, CHUNK))
            if workers > 1 and len(first) == CHUNK and _can_spawn():
                import multiprocessing

                pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
            pending: list[tuple[list[Example | LoadIssue], Future[Any] | tuple[Any, Any]]] = []

            def drain(limit: int) -> None:
                nonlocal n
                while len(pending) > limit:
                    chunk, fut = pending.pop(0)
                    found, feats = fut.result() if isinstance(fut, Future) else fut
                    _after_chunk(chunk, found, feats, batch_scanners, dataset_scanners, run, tally)
                    n += len(chunk)
                    bar.advance(len(chunk))

            for chunk in chain([first] if first else [], _chunks(stream, CHUNK)):
                exs = [e for e in chunk if isinstance(e, Example)]
                work = (
                    pool.submit(scan_chunk, worker_names, exs)
                    if pool is not None
                    else scan_chunk(worker_names, exs)
                )
                pending.append((chunk, work))
                drain(2 * max(workers, 1))
            drain(0)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    return n


def _after_chunk(
    chunk: list[Example | LoadIssue],
    found: list[Finding],
    feats: dict[str, list[Any]],
    batch_scanners: list[Any],
    dataset_scanners: list[Any],
    run: RunContext,
    tally: _Tally,
    ctx: BatchContext | None = None,
) -> None:
    """Add a chunk's unreadable records, batch findings and dataset-scanner observations.

    ``ctx`` is the chunk's batch context when its shared values (embeddings, scores) were
    computed elsewhere (the Ray engine's actors); otherwise a new one.
    """
    exs = [e for e in chunk if isinstance(e, Example)]
    for issue in (e for e in chunk if isinstance(e, LoadIssue)):
        found.append(
            Finding(
                example=issue.index,
                scanner="format",
                severity="medium",
                reason=f"unreadable record: {issue.reason}",
                line=issue.line,
            )
        )
    ctx = ctx if ctx is not None else BatchContext(run, exs)
    for bsc in batch_scanners:
        found.extend(bsc.scan_batch(exs, ctx))
    found.sort(key=lambda f: f.example)
    for dsc in dataset_scanners:
        dsc.observe(exs, feats.get(dsc.name, [None] * len(exs)), found, ctx)
    tally.add(found)


def _finish_dataset_scanners(
    dataset_scanners: list[Any],
    examples_again: Callable[[], Iterator[Example]],
    run: RunContext,
    tally: _Tally,
    replay: Callable[[Any], None] | None = None,
) -> tuple[list[DatasetFinding], list[Trigger]]:
    """Let each dataset scanner take its extra passes and conclude; count what it found.

    ``replay(scanner)`` takes one extra pass for a scanner (the Ray engine's, spread over the
    cluster); by default the scanner replays ``examples_again()`` here.
    """
    dataset_findings: list[DatasetFinding] = []
    triggers: list[Trigger] = []
    for dsc in dataset_scanners:
        while getattr(dsc, "wants_pass", lambda: False)():
            if replay is not None:
                replay(dsc)
            else:
                dsc.replay(examples_again())
        result = dsc.finish(run)
        dataset_findings.extend(result.findings)
        triggers.extend(result.triggers)
        tally.add(result.example_findings, keep_all=True)
    triggers.sort(key=lambda t: -t.score)
    for df in dataset_findings:
        tally.count(df.scanner, df.severity)
    return dataset_findings, triggers


def _can_spawn() -> bool:
    """Spawned workers re-import ``__main__``: impossible when it is stdin or a missing file."""
    import sys

    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return main_file is None or Path(main_file).is_file()
