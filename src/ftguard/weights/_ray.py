"""The full weight diff's statistics on Ray: one task per shard pair, merged on the driver.

Every per-tensor statistic of the diff (:class:`~ftguard.weights._stats.DiffSums`: sums of
squares, the inner product, the count of changed elements, the largest change) is a sum or
a maximum over the tensor's elements, so a tensor can be analysed wherever its bytes are.
The tensors are grouped by the pair of files that hold them (base shard, tuned shard); one
Ray task per pair opens just those two files from a path every node can read (a shared
filesystem), reads each tensor window by window with the local engine's kernel and merges
the windows in the same order, and returns a few numbers a tensor. The sums are therefore
the local diff's bit for bit; memory per task is the kernel's chunk buffers, whatever the
shard's size. Everything after the sums (the report, baselines, the verdict) runs on the
driver as in the local diff.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ftguard.weights._safetensors import Checkpoint
from ftguard.weights._stats import DiffSums

__all__ = ["ShardPair", "shard_pairs", "tensor_sums_on_ray"]

ShardPair = tuple[str, str, list[str]]
"""(base file, tuned file, the tensors both hold, in the base's order)."""


def shard_pairs(base: Checkpoint, tuned: Checkpoint, names: list[str]) -> list[ShardPair]:
    """Group ``names`` by the (base file, tuned file) pair that holds them, in first-use order."""
    groups: dict[tuple[str, str], list[str]] = {}
    for name in names:
        key = (str(base.file_of(name).path), str(tuned.file_of(name).path))
        groups.setdefault(key, []).append(name)
    return [(b, t, group) for (b, t), group in groups.items()]


def pair_sums(base_file: str, tuned_file: str, names: list[str], tol: float) -> dict[str, DiffSums]:
    """The statistics of the tensors of one shard pair (a Ray task; runs on any node).

    Each tensor is read in the local engine's windows and its windows are merged in order,
    exactly as in the local diff.
    """
    from ftguard.weights._safetensors import SafetensorsFile
    from ftguard.weights._stats import diff_sources
    from ftguard.weights._stream import merge, windows

    a, b = SafetensorsFile(Path(base_file)), SafetensorsFile(Path(tuned_file))
    try:
        out: dict[str, DiffSums] = {}
        for name in names:
            parts = [
                diff_sources(a.source(name), b.source(name), lo, hi, tol)
                for lo, hi in windows(a.tensors[name].numel)
            ]
            out[name] = merge(parts)
        return out
    finally:
        a.close()
        b.close()


def tensor_sums_on_ray(
    base: Checkpoint,
    tuned: Checkpoint,
    names: list[str],
    tol: float,
    *,
    progress: bool = False,
) -> dict[str, DiffSums]:
    """Per-tensor statistics of ``names`` computed on the Ray cluster (see the module doc).

    Connects to ``RAY_ADDRESS`` or starts a local Ray runtime for the call. The files must
    be at the same paths on every node.

    Raises:
        BadInputError: Ray is not installed or the cluster cannot be reached.

    """
    from ftguard._ray import ray_runtime

    pairs = shard_pairs(base, tuned, names)
    sums: dict[str, DiffSums] = {}
    with ray_runtime() as ray:
        task = ray.remote(num_cpus=1)(pair_sums)
        pending: dict[Any, int] = {
            task.remote(b, t, group, tol): k for k, (b, t, group) in enumerate(pairs)
        }
        done = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                pending.pop(ref)
                sums.update(ray.get(ref))
                done += 1
                if progress:
                    end = "\n" if not pending else ""
                    print(
                        f"\rftguard weights (ray): {done}/{len(pairs)} shard pairs",
                        end=end,
                        file=sys.stderr,
                    )
    return {name: sums[name] for name in names}
