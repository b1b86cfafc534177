"""Per-layer and per-module-kind aggregates of a report's tensor statistics."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

from ftguard.policy import WeightsPolicy
from ftguard.weights._evidence import GroupStats, TensorStats
from ftguard.weights._naming import TensorName, parse_name

__all__ = ["GroupContext", "group_stats"]


class GroupContext(Protocol):
    """What the aggregates read of a diff's context (the diff engine's, in ``_diff``).

    A Protocol, so that this module does not import the engine that imports it.
    """

    policy: WeightsPolicy
    n_layers: int

    def critical(self, tn: TensorName) -> bool: ...


def _groups(
    ctx: GroupContext,
    tensors: list[TensorStats],
    norms: dict[str, float],
    key: Callable[[TensorName], object],
) -> dict[object, tuple[float, float, int, bool]]:
    """Key -> (diff_sq, base_sq over all base tensors of the group, tensor count, critical)."""
    acc: dict[object, list[float]] = {}
    crit: dict[object, bool] = {}
    for name, nsq in norms.items():
        tn = parse_name(name)
        g = acc.setdefault(key(tn), [0.0, 0.0, 0.0])
        g[1] += nsq
        g[2] += 1
        crit[key(tn)] = crit.get(key(tn), True) and ctx.critical(tn)
    for t in tensors:
        tn = parse_name(t.name)
        g = acc.setdefault(key(tn), [0.0, 0.0, 0.0])
        g[0] += t.diff_norm**2
    return {k: (v[0], v[1], int(v[2]), crit.get(k, False)) for k, v in acc.items()}


def group_stats(
    ctx: GroupContext, tensors: list[TensorStats], norms: dict[str, float]
) -> tuple[list[GroupStats], list[GroupStats], float]:
    total_d = sum(t.diff_norm**2 for t in tensors if math.isfinite(t.diff_norm))
    total_b = sum(norms.values())

    def mk(
        k: object,
        v: tuple[float, float, int, bool],
        *,
        layer: int | None,
        kind: str | None,
        label: str,
    ) -> GroupStats:
        d, b, n, c = v
        return GroupStats(
            key=label,
            layer=layer,
            kind=kind,
            tensors=n,
            diff_norm=math.sqrt(d),
            base_norm=math.sqrt(b) if b > 0 else None,
            relative_change=math.sqrt(d / b) if b > 0 else None,
            energy_share=d / total_d if total_d > 0 else 0.0,
            critical=c,
        )

    by_layer = _groups(ctx, tensors, norms, lambda tn: tn.layer)
    layers = []
    for k in sorted(by_layer, key=lambda x: (x is None, x if isinstance(x, int) else 0)):
        lo, hi = ctx.policy.critical_middle_layers
        crit = isinstance(k, int) and int(lo * ctx.n_layers) <= k < max(
            int(round(hi * ctx.n_layers)), int(lo * ctx.n_layers) + 1
        )
        d, b, n, _ = by_layer[k]
        layers.append(
            mk(
                k,
                (d, b, n, crit),
                layer=k if isinstance(k, int) else None,
                kind=None,
                label=f"layer {k}" if k is not None else "outside layers",
            )
        )
    by_kind = _groups(ctx, tensors, norms, lambda tn: tn.kind)
    modules = [
        mk(k, by_kind[k], layer=None, kind=str(k), label=str(k)) for k in sorted(by_kind, key=str)
    ]
    total = math.sqrt(total_d / total_b) if total_b > 0 else 0.0
    return layers, modules, total
