"""The Ray engine of the dataset review: the local engine's work spread over a Ray cluster.

The same review, computed elsewhere:

1. **Read and per-example scanners** (Ray Data tasks): the file is cut into shards of whole
   review chunks (:mod:`ftguard.review._ray_read`); each shard is read with ftguard's one
   dataset reader and each chunk goes through the per-example scanners and the dataset
   scanners' ``features`` (``flat_map`` over the shards).
2. **Embeddings** (Ray Data actor pool, ``map_batches``): each actor loads MiniLM once (on
   its GPU where the cluster has GPUs) and runs the batch scanners (``harmful_compliance``)
   on each chunk; the chunk's shared values (request embeddings where a dataset scanner
   needs them, harm scores, refusals) travel back with it.
3. **Merge** (the driver): the chunks arrive in file order and each dataset scanner observes
   them exactly as in the local engine: their per-chunk partial state (hashes, labels,
   cluster updates) folds into one state, so what the local engine computes exactly
   (duplicates, trigger statistics, counts, the verdict) is the same here.
4. **Extra passes** (Ray tasks, one per shard): the trigger miner's replays count n-grams in
   each shard and the counts are summed in shard order (see
   :mod:`ftguard.review._ray_trigger`); another scanner that asks for a pass replays the
   file streamed from the cluster.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftguard._progress import ProgressBar
from ftguard.datasets import LoadIssue, detect_format, load_examples
from ftguard.errors import BadInputError
from ftguard.review._engine import (
    CHUNK,
    _after_chunk,
    _chosen_scanners,
    _finish_dataset_scanners,
    _read_provenance,
    _review_of,
    _Tally,
)
from ftguard.review._evidence import DatasetReview, Finding
from ftguard.review._example import Example
from ftguard.review._policy import ReviewPolicy
from ftguard.review._ray_read import RAY_FORMATS, Shard, plan_shards, read_shard
from ftguard.review._worker import scan_chunk
from ftguard.review.scanners._registry import (
    BatchContext,
    BatchScanner,
    DatasetScanner,
    ExampleScanner,
    RunContext,
    scanners,
)

__all__ = ["ChunkResult", "review_on_ray"]

CHUNKS_PER_SHARD = 16
"""Review chunks (of CHUNK records) per read task at most: 4096 records."""


@dataclass
class ChunkResult:
    """One review chunk on its way through the cluster.

    Attributes:
        number: The chunk's position in the file.
        items: Its records, as the dataset reader gives them.
        found: Per-example (then batch) scanner findings, sorted by example.
        feats: Each dataset scanner's per-example features.
        shared: The batch context's shared values computed by the embedding actor.

    """

    number: int
    items: list[Example | LoadIssue]
    found: list[Finding]
    feats: dict[str, list[Any]]
    shared: dict[str, Any] = field(default_factory=dict)


def review_on_ray(
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
) -> DatasetReview:
    """Review a dataset on Ray; the arguments and the result are :func:`review_dataset`'s.

    ``workers`` is the size of the embedding actor pool (default: the cluster's GPUs, else
    its CPUs).

    Raises:
        BadInputError: As :func:`review_dataset`, and when Ray is not installed, the cluster
            cannot be reached, or the file is neither JSONL nor Parquet.

    """
    from ftguard._ray import ray_runtime

    started = time.perf_counter()
    path = Path(path).resolve()
    policy = policy or ReviewPolicy()
    if not path.is_file():
        raise BadInputError(f"{path}: no such dataset file")
    if workers is not None and workers < 1:
        raise BadInputError(f"workers must be at least 1, got {workers}")
    fmt = format or detect_format(path)
    if fmt not in RAY_FORMATS:
        raise BadInputError(
            f"{path}: the ray engine reads JSONL and Parquet datasets, not {fmt} "
            "(convert it, or review it with --engine local)"
        )
    objs, skipped = _chosen_scanners(scanners, embeddings=embeddings)
    run = RunContext(
        purpose=purpose, embeddings=embeddings, provenance=_read_provenance(provenance)
    )
    for _ in load_examples(path, fmt, column_map, issues=True):
        break  # the reader's own checks: not a dataset at all is one error, raised here
    tally = _Tally()
    dataset_scanners = [o for o in objs if isinstance(o, DatasetScanner)]
    with ray_runtime() as ray:
        shards = _plan(ray, path, fmt, column_map, workers)
        run.examples = _scan_on_ray(ray, shards, objs, run, tally, workers, progress)
        from ftguard.review._ray_trigger import ShardReplay

        replay = ShardReplay(ray, shards)
        dataset_findings, triggers = _finish_dataset_scanners(
            dataset_scanners, replay.examples, run, tally, replay=replay
        )
    return _review_of(
        path, fmt, policy, objs, skipped, run, tally, dataset_findings, triggers, started
    )


def _plan(
    ray: Any, path: Path, fmt: str, column_map: dict[str, str] | None, workers: int | None
) -> list[Shard]:
    """Shards small enough that every worker gets several (at most CHUNKS_PER_SHARD chunks)."""
    from ftguard._ray import cluster_resources

    cpus, _ = cluster_resources(ray)
    size = path.stat().st_size
    per_record = 400  # bytes, a first guess to size the shards before counting
    chunks = max(1, math.ceil(size / per_record / CHUNK))
    per_shard = max(1, min(CHUNKS_PER_SHARD, chunks // (4 * max(cpus, workers or 1))))
    return plan_shards(path, fmt, column_map, chunk=CHUNK, chunks_per_shard=per_shard)


def read_and_scan(row: dict[str, Any], names: tuple[str, ...]) -> list[dict[str, Any]]:
    """A Ray Data ``flat_map`` step: read one shard; per-example scanners over each chunk."""
    shard: Shard = row["shard"]
    out: list[dict[str, Any]] = []
    chunk: list[Example | LoadIssue] = []

    def flush() -> None:
        exs = [e for e in chunk if isinstance(e, Example)]
        found, feats = scan_chunk(names, exs)
        number = chunk[0].index // CHUNK
        out.append({"number": number, "chunk": ChunkResult(number, list(chunk), found, feats)})
        chunk.clear()

    for item in read_shard(shard):
        if chunk and item.index // CHUNK != chunk[0].index // CHUNK:
            flush()
        chunk.append(item)
    if chunk:
        flush()
    return out


class ChunkEmbedder:
    """A Ray Data actor: MiniLM loaded once, the batch scanners run on each chunk."""

    def __init__(self, batch_names: tuple[str, ...], keep_embeddings: bool, run: RunContext):
        import ray

        from ftguard.embeddings import embedding_model

        model = embedding_model()  # the one load of this worker
        if ray.get_gpu_ids():
            model.to("cuda")
        self.batch_scanners: list[Any] = [scanners.create(n) for n in batch_names]
        self.keep_embeddings = keep_embeddings
        self.run = run

    def __call__(self, batch: Any) -> Any:
        for result in batch["chunk"]:
            exs = [e for e in result.items if isinstance(e, Example)]
            ctx = BatchContext(self.run, exs)
            for bsc in self.batch_scanners:
                result.found.extend(bsc.scan_batch(exs, ctx))
            if self.keep_embeddings:
                ctx.request_embeddings()
            result.shared = {
                k: v for k, v in ctx._cache.items() if self.keep_embeddings or k != "req"
            }
        return batch


def _scan_on_ray(
    ray: Any,
    shards: list[Shard],
    objs: list[Any],
    run: RunContext,
    tally: _Tally,
    workers: int | None,
    progress: bool,
) -> int:
    """Phases 1-3: the chunks scanned on the cluster, observed here in file order."""
    from ftguard._ray import cluster_resources

    names = tuple(o.name for o in objs if isinstance(o, ExampleScanner | DatasetScanner))
    batch_names = tuple(o.name for o in objs if isinstance(o, BatchScanner))
    dataset_scanners = [o for o in objs if isinstance(o, DatasetScanner)]
    keep = any(o.uses_embeddings for o in dataset_scanners)
    embed = bool(batch_names or keep)
    cpus, gpus = cluster_resources(ray)
    pool = workers or (gpus or cpus)
    share = _cpu_share(cpus, gpus, pool) if embed else 1.0
    ds = ray.data.from_items([{"shard": s} for s in shards], override_num_blocks=len(shards))
    ds = ds.flat_map(read_and_scan, fn_kwargs={"names": names}, num_cpus=share)
    if embed:
        ds = ds.map_batches(
            ChunkEmbedder,
            fn_constructor_kwargs={"batch_names": batch_names, "keep_embeddings": keep, "run": run},
            batch_size=1,
            batch_format="pandas",
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=pool),
            num_gpus=1 if gpus else 0,
            num_cpus=share,
        )
    n = 0
    expected = 0
    with ProgressBar(
        "reviewing examples (ray)", sum(s.records for s in shards), enabled=progress
    ) as bar:
        for row in ds.iter_rows():
            result: ChunkResult = row["chunk"]
            if result.number != expected:  # preserve_order is set: a broken promise is a bug
                raise RuntimeError(f"chunk {result.number} arrived where {expected} was due")
            expected += 1
            exs = [e for e in result.items if isinstance(e, Example)]
            ctx = BatchContext(run, exs, _cache=dict(result.shared))
            _after_chunk(
                result.items, result.found, result.feats, [], dataset_scanners, run, tally, ctx=ctx
            )
            n += len(result.items)
            bar.advance(len(result.items))
    return n


def _cpu_share(cpus: int, gpus: int, pool: int) -> float:
    """The CPUs each embedding actor and each read task reserves (Ray's logical CPUs).

    One each, except on a CPU-only cluster whose CPUs the full actor pool would take:
    there each reserves half a CPU, so every CPU can hold an actor and a read task at
    once. With one CPU, an actor reserving the whole CPU left none for the read tasks
    that feed it and the review made no progress; halves rather than ``cpus / (pool + 1)``
    so that a node of one CPU still fits an actor and a task. The reservation is
    bookkeeping: the actors (which wait for the tasks' chunks) and the tasks share the
    cores as processes do.
    """
    if gpus or cpus >= pool + 1:
        return 1.0
    return 0.5


def examples_of(ray: Any, shards: list[Shard]) -> Iterator[Example]:
    """The dataset's examples in file order, read on the cluster and streamed here."""
    ds = ray.data.from_items([{"shard": s} for s in shards], override_num_blocks=len(shards))
    ds = ds.flat_map(_shard_examples)
    for row in ds.iter_rows():
        yield row["example"]


def _shard_examples(row: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"example": e} for e in read_shard(row["shard"]) if isinstance(e, Example)]
