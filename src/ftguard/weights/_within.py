"""Within-model checks: one layer's or module's update against the same model's others.

These need no history. An update concentrated in one place (one layer 20x the others, one
module of one layer, one rank-one edit) is judged against the same update's other layers
and modules, by robust z-scores on a log scale (median / MAD over the layers):

* **layer**: log ||dW_l||/||W_l|| of each layer against all layers with a non-zero update;
* **module**: log ||dW||/||W|| of each tensor against the same module kind in the other
  layers (``mlp.down`` of layer 12 against ``mlp.down`` of every layer);
* **rank**: log effective rank of each tensor's update against the same module kind
  (downward: an update of far lower rank than its siblings, such as a rank-one edit). Uses the
  spectra a report already has: LoRA pairs always (factored, never B·A), full diffs with
  ``deep``.

Layers and tensors with no update are left out: freezing some layers or targeting some
modules is a choice of recipe, and how much of the update sits in a few layers is judged by
the share of the largest layer (``max_layer_energy_concentration``) instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ftguard.policy import WeightsPolicy
from ftguard.weights._evidence import GroupStats, TensorStats, WeightFlag

__all__ = ["WithinScore", "within_model_flags", "within_model_scores"]

_MAD = 1.4826
_MAX_FLAGS = 3
"""Flags per check, largest first: the report names where, not every sibling."""


@dataclass(frozen=True)
class WithinScore:
    """One layer's or tensor's robust z-score against the model's own others."""

    check: str
    """``layer``, ``module`` or ``rank``."""
    z: float
    value: float
    median: float
    """The others' median (of the value itself, not its log)."""
    peers: int
    layer: int | None
    tensor: str | None = None
    module: str | None = None


def _robust_z(
    values: dict[object, float], floor: float, *, downward: bool = False
) -> dict[object, tuple[float, float]]:
    """Key -> (z on the log scale, median of the values) for positive finite values."""
    logs = {k: math.log(v) for k, v in values.items() if v > 0 and math.isfinite(v)}
    if not logs:
        return {}
    arr = np.fromiter(logs.values(), np.float64)
    med = float(np.median(arr))
    scale = max(_MAD * float(np.median(np.abs(arr - med))), floor)
    sign = -1.0 if downward else 1.0
    return {k: (sign * (x - med) / scale, math.exp(med)) for k, x in logs.items()}


def within_model_scores(
    tensors: Iterable[TensorStats], layers: Iterable[GroupStats], policy: WeightsPolicy
) -> list[WithinScore]:
    """Every layer's and tensor's within-model z-score (for the flags, and to choose limits)."""
    out: list[WithinScore] = []
    floor, min_peers = policy.within_min_log_scale, policy.within_min_layers
    per_layer: dict[object, float] = {
        g.layer: g.relative_change or 0.0
        for g in layers
        if g.layer is not None and (g.relative_change or 0.0) > 0
    }
    if len(per_layer) >= min_peers:
        for k, (z, med) in _robust_z(per_layer, floor).items():
            out.append(
                WithinScore(
                    "layer", z, per_layer[k], med, len(per_layer), k if isinstance(k, int) else None
                )
            )
    rel: dict[str, dict[object, float]] = {}
    rank: dict[str, dict[object, float]] = {}
    by_name: dict[str, TensorStats] = {}
    for t in tensors:
        if t.layer is None or t.diff_norm <= 0 or t.source not in ("full", "lora"):
            continue
        by_name[t.name] = t
        if t.relative_change is not None:
            rel.setdefault(t.kind, {})[t.name] = t.relative_change
        if t.effective_rank is not None and t.effective_rank > 0:
            rank.setdefault(t.kind, {})[t.name] = t.effective_rank
    for check, groups, fl, down in (
        ("module", rel, floor, False),
        ("rank", rank, policy.within_min_rank_log_scale, True),
    ):
        for vals in groups.values():
            if len(vals) < min_peers:
                continue
            for name, (z, med) in _robust_z(vals, fl, downward=down).items():
                t = by_name[str(name)]
                out.append(
                    WithinScore(check, z, vals[name], med, len(vals), t.layer, t.name, t.module)
                )
    return out


def _limit(policy: WeightsPolicy, check: str) -> float:
    return {
        "layer": policy.within_layer_z_limit,
        "module": policy.within_module_z_limit,
        "rank": policy.within_rank_z_limit,
    }[check]


def _reason(s: WithinScore, limit: float) -> str:
    if s.check == "layer":
        return (
            f"layer {s.layer} changed {s.value / s.median:.1f}x the median of this model's "
            f"{s.peers} changed layers (relative change {s.value:.3g} against {s.median:.3g}): "
            f"{s.z:.1f} robust standard deviations out across the layers (limit {limit:g}); "
            "the update is concentrated in this layer"
        )
    if s.check == "module":
        return (
            f"layer {s.layer} {s.module} changed {s.value / s.median:.1f}x the median of the same "
            f"module in this model's {s.peers} changed layers ({s.value:.3g} against "
            f"{s.median:.3g}): {s.z:.1f} robust standard deviations out (limit {limit:g})"
        )
    return (
        f"layer {s.layer} {s.module}'s update has effective rank {s.value:.2f} against a median "
        f"of {s.median:.2f} for the same module in {s.peers} layers: {s.z:.1f} robust standard "
        f"deviations lower (limit {limit:g}); a low-rank edit concentrated in one module"
    )


def within_model_flags(
    tensors: Iterable[TensorStats], layers: Iterable[GroupStats], policy: WeightsPolicy
) -> tuple[float, list[tuple[float, WeightFlag]]]:
    """(largest z / its limit, flags with their z / limit) of the within-model checks."""
    if not policy.within_model_checks:
        return 0.0, []
    worst = 0.0
    found: list[tuple[float, WeightFlag]] = []
    scores = sorted(
        within_model_scores(tensors, layers, policy), key=lambda s: (s.check != "layer", -s.z)
    )
    counts: dict[str, int] = {}
    for s in scores:
        limit = _limit(policy, s.check)
        worst = max(worst, s.z / limit)
        if s.z <= limit or counts.get(s.check, 0) >= _MAX_FLAGS:
            continue
        counts[s.check] = counts.get(s.check, 0) + 1
        found.append(
            (
                s.z / limit,
                WeightFlag(
                    reason=_reason(s, limit),
                    layer=s.layer,
                    tensor=s.tensor,
                    feature=f"within.{s.check}_z",
                    value=s.z,
                    limit=limit,
                ),
            )
        )
    return worst, found
