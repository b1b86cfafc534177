"""Profile shifts: how a job's update differs from earlier approved jobs tensor by tensor.

A single feature compared with a handful of baselines is noisy; the same question asked of
every tensor and summarised by a median is not. For each tensor present in the job and in
every baseline, the job's value is compared with the baselines' median on a log scale, and
three medians summarise the comparison:

* ``magnitude``: how much larger the update is (median log-ratio of ||dW||/||W||);
* ``depth``: how much more of it sits in the last third of the layers than in the first
  third (late minus early median log-ratio; a uniform rescaling cancels out);
* ``concentration``: how much more of each tensor's update lies in its top singular
  direction (median log-ratio of the top-1 energy share; LoRA, or full diffs with --deep).

Fine-tuning on narrow data that installs one behaviour (comply with harmful requests, or
answer when a trigger is present) moves all three upward at once: the loss falls fast on
few, repetitive targets, so the update is larger, closer to the output and lower-rank than
the update of diverse instruction tuning. Each shift is scored against its own spread among
the baselines (each baseline compared with the others, leave-one-out; robust z), and the
three one-sided z-scores are combined as sum / sqrt(3) (Stouffer), so consistent moderate
evidence in all three adds up while noise in one does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ftguard.weights._evidence import Fingerprint

__all__ = ["SHIFT_NAMES", "SHIFT_WORDS", "ProfileShift", "profile_shift"]

SHIFT_WORDS = {
    "magnitude": "larger",
    "depth": "weighted toward the last third of the layers",
    "concentration": "more concentrated in one direction per tensor",
}
SHIFT_NAMES = {
    "magnitude": "magnitude",
    "depth": "weight of the last third of the layers",
    "concentration": "per-tensor concentration",
}
MIN_TENSORS = 6
"""Fewest tensors shared by the job and every baseline for a profile comparison."""


@dataclass
class ProfileShift:
    """A job's profile shifts against its baselines, and how unusual they are."""

    values: dict[str, float]
    """Shift name -> median log-ratio against the baselines' median."""
    z: dict[str, float]
    """Shift name -> robust z-score against the baselines' leave-one-out shifts."""
    combined: float
    """sum(z) / sqrt(len(z)): one-sided evidence that the update is narrow-data-like."""
    baselines: int
    tensors: int


def _names(fp: Fingerprint, base: list[Fingerprint], suffix: str) -> list[str]:
    out = []
    for name, x in fp.features.items():
        if not (name.startswith("tensor.") and name.endswith(suffix)):
            continue
        if not (math.isfinite(x) and x > 0):
            continue
        if all(b.features.get(name, 0.0) > 0 and math.isfinite(b.features[name]) for b in base):
            out.append(name)
    return sorted(out)


def _layer(name: str) -> int | None:
    part = name.split(".")[1]
    return int(part) if part.isdigit() else None


def _shifts(
    x: dict[str, np.ndarray], ref: dict[str, np.ndarray], early: np.ndarray, late: np.ndarray
) -> dict[str, float]:
    """Median log-ratios of one job's vectors ``x`` against the baselines' matrices ``ref``."""
    out: dict[str, float] = {}
    lr = x["rel"] - np.median(ref["rel"], axis=0)
    out["magnitude"] = float(np.median(lr))
    if early.any() and late.any():
        out["depth"] = float(np.median(lr[late]) - np.median(lr[early]))
    if "top1" in x:
        out["concentration"] = float(np.median(x["top1"] - np.median(ref["top1"], axis=0)))
    return out


def profile_shift(
    fp: Fingerprint, baselines: list[Fingerprint], *, min_jobs: int, min_scale: float
) -> ProfileShift | None:
    """Compare a fingerprint's per-tensor profile with baselines of the same kind.

    Args:
        fp: The new job's fingerprint.
        baselines: Earlier approved jobs on the same base.
        min_jobs: Fewest baselines of the same kind needed.
        min_scale: Floor of each shift's spread (log units), so that a tight cluster of
            baselines cannot make a tiny shift look significant.

    Returns:
        ``None`` when there are too few baselines of the job's kind or too few shared tensors.

    """
    base = [b for b in baselines if b.kind == fp.kind]
    if len(base) < max(min_jobs, 3):
        return None
    kinds = {"rel": _names(fp, base, ".rel")}
    if len(kinds["rel"]) < MIN_TENSORS:
        return None
    top1 = _names(fp, base, ".top1")
    if len(top1) >= MIN_TENSORS:
        kinds["top1"] = top1
    layers = [_layer(n) for n in kinds["rel"]]
    known = [x for x in layers if x is not None]
    depth = max(known) + 1 if known else 0
    third = depth // 3
    early = np.array([x is not None and x < third for x in layers])
    late = np.array([x is not None and third > 0 and x >= depth - third for x in layers])

    def vec(f: Fingerprint, key: str) -> np.ndarray:
        return np.log(np.array([f.features[n] for n in kinds[key]], np.float64))

    mats = {k: np.stack([vec(b, k) for b in base]) for k in kinds}
    job = _shifts({k: vec(fp, k) for k in kinds}, mats, early, late)
    idx = np.arange(len(base))
    null: dict[str, list[float]] = {k: [] for k in job}
    for i in idx:
        rest = {k: m[idx != i] for k, m in mats.items()}
        for k, v in _shifts({k: m[i] for k, m in mats.items()}, rest, early, late).items():
            null[k].append(v)
    z: dict[str, float] = {}
    for k, v in job.items():
        vals = np.array(null[k])
        med = float(np.median(vals))
        scale = max(1.4826 * float(np.median(np.abs(vals - med))), min_scale)
        z[k] = (v - med) / scale
    combined = sum(z.values()) / math.sqrt(len(z)) if z else 0.0
    return ProfileShift(job, z, combined, len(base), len(kinds["rel"]))
