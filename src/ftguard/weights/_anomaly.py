"""Fingerprints of a fine-tune and their judgement against baselines or fixed limits."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ftguard.weights._policy import WeightsPolicy
from ftguard.weights._report import (
    AlignmentReport,
    Fingerprint,
    GroupStats,
    TensorStats,
    WeightFlag,
)

__all__ = ["Judgement", "fingerprint_of", "judge"]

_TWO_SIDED = ("spectral.",)
_DOWNWARD = ("align.",)


def _tensor_feature(t: TensorStats) -> str:
    where = f"{t.layer}." if t.layer is not None else ""
    suffix = "" if t.name.endswith(".weight") else "." + t.name.rsplit(".", 1)[-1]
    return f"tensor.{where}{t.module}{suffix}.rel"


def fingerprint_of(
    *,
    base_digest: str,
    kind: str,
    tensors: list[TensorStats],
    layers: list[GroupStats],
    modules: list[GroupStats],
    total_relative_change: float,
    alignment: AlignmentReport | None,
) -> Fingerprint:
    """Build the feature vector of one report (relative changes, spectra, alignment)."""
    f: dict[str, float] = {"total.rel": total_relative_change}
    for g in layers:
        if g.relative_change is not None:
            f[f"layer.{g.layer if g.layer is not None else 'outside'}.rel"] = g.relative_change
    for g in modules:
        if g.relative_change is not None:
            f[f"module.{g.kind}.rel"] = g.relative_change
    for t in tensors:
        if t.relative_change is not None and t.kind not in ("norm",):
            f[_tensor_feature(t)] = t.relative_change
    f["energy.top_layer_share"] = max(
        (g.energy_share for g in layers if g.layer is not None), default=0.0
    )
    spec = [t for t in tensors if t.top1_energy is not None and t.diff_norm > 0]
    if spec:
        w = np.array([t.diff_norm**2 for t in spec])
        w = w / w.sum()
        f["spectral.top1"] = float(np.dot(w, [t.top1_energy or 0.0 for t in spec]))
        f["spectral.eff_rank"] = float(np.dot(w, [t.effective_rank or 0.0 for t in spec]))
    if alignment is not None:
        f["align.cos"] = alignment.cosine
    return Fingerprint(base_digest=base_digest, kind=kind, features=f)  # type: ignore[arg-type]


@dataclass
class Judgement:
    """The verdict inputs: score, flags and how they were reached."""

    score: float = 0.0
    flags: list[WeightFlag] = field(default_factory=list)
    judged_by: str = "fixed_limits"
    text: str = ""


def _describe(feature: str) -> tuple[str, int | None, str | None]:
    """(words, layer, tensor-ish) for a feature name."""
    parts = feature.split(".")
    if parts[0] == "layer":
        layer = None if parts[1] == "outside" else int(parts[1])
        return (f"layer {parts[1]}" if layer is not None else "the tensors outside the layers",
                layer, None)  # fmt: skip
    if parts[0] == "module":
        return f"module kind {'.'.join(parts[1:-1])} (all layers)", None, None
    if parts[0] == "tensor":
        body = parts[1:-1]
        if body and body[0].isdigit():
            return f"layer {body[0]} {'.'.join(body[1:])}", int(body[0]), ".".join(body[1:])
        return ".".join(body), None, ".".join(body)
    return {
        "total.rel": ("the whole model", None, None),
        "energy.top_layer_share": ("the share of the update in its largest layer", None, None),
        "spectral.top1": ("the update's concentration in one direction", None, None),
        "spectral.eff_rank": ("the update's effective rank", None, None),
        "align.cos": ("the update's cosine with the alignment direction", None, None),
    }.get(feature, (feature, None, None))


def judge(
    fp: Fingerprint,
    *,
    policy: WeightsPolicy,
    baselines: list[Fingerprint],
    critical_features: set[str],
    tensors: list[TensorStats],
    layers: list[GroupStats],
    alignment: AlignmentReport | None,
) -> Judgement:
    """Score a fingerprint against baselines (robust z) or, with too few, fixed limits."""
    j = Judgement()
    lim = policy.anomaly_score_limit
    usable = [b for b in baselines if b.base_digest == fp.base_digest]
    if len(usable) >= policy.min_baseline_jobs:
        j.judged_by = "baselines"
        j.text = (
            f"judged against {len(usable)} earlier approved jobs on this base model "
            f"(robust z-scores, limit {policy.z_limit:g}; safety-critical {policy.critical_z_limit:g})"
        )
        _judge_baselines(fp, usable, policy, critical_features, j)
    else:
        j.text = (
            f"judged by the policy's fixed limits: {len(usable)} earlier approved jobs on this "
            f"base model, fewer than the {policy.min_baseline_jobs} needed for baselines"
        )
        _judge_fixed(fp, policy, tensors, layers, j)
    # Checks that hold in both modes.
    if policy.flag_embedding_change:
        for t in tensors:
            if t.kind in ("embed", "lm_head", "pos_embed") and t.diff_norm > 0:
                j.flags.append(
                    WeightFlag(
                        tensor=t.name,
                        reason=f"{t.name} ({t.kind}) was changed"
                        + (" as a fully saved module (modules_to_save)" if t.source == "modules_to_save" else "")
                        + f": relative change {_fmt(t.relative_change)}; the policy flags any change to embeddings and the output head",
                        feature="embedding_change",
                        value=t.relative_change,
                    )
                )  # fmt: skip
                j.score = max(j.score, lim * 1.01)
    if alignment is not None:
        limit = policy.max_against_alignment
        for al in alignment.layers:
            if al.norm_share >= policy.min_alignment_norm_share and al.cosine < -limit:
                j.flags.append(
                    WeightFlag(
                        layer=al.layer,
                        reason=f"{al.key} moves against the alignment direction: cosine "
                        f"{al.cosine:.3f} with V (limit -{limit:g})",
                        feature="align.layer_cos",
                        value=al.cosine,
                        limit=-limit,
                    )
                )
        if limit > 0:
            j.score = max(j.score, lim * max(0.0, -alignment.cosine) / limit)
        if alignment.cosine < -limit:
            j.flags.append(
                WeightFlag(
                    reason=f"the whole update moves against the alignment direction: cosine "
                    f"{alignment.cosine:.3f} with V (limit -{limit:g})",
                    feature="align.cos",
                    value=alignment.cosine,
                    limit=-limit,
                )
            )
    return j


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def _judge_baselines(
    fp: Fingerprint,
    base: list[Fingerprint],
    policy: WeightsPolicy,
    critical: set[str],
    j: Judgement,
) -> None:
    lim = policy.anomaly_score_limit
    n_all = len(base)
    found: list[tuple[float, WeightFlag]] = []
    for name, x in sorted(fp.features.items()):
        vals = np.array([b.features[name] for b in base if name in b.features], np.float64)
        vals = vals[np.isfinite(vals)]
        if len(vals) < policy.min_baseline_jobs or not math.isfinite(x):
            continue
        med = float(np.median(vals))
        mad = 1.4826 * float(np.median(np.abs(vals - med)))
        scale = max(mad, policy.min_feature_scale * abs(med), policy.min_feature_floor)
        z = (x - med) / scale
        if name.startswith(_DOWNWARD):
            z = -z
        elif name.startswith(_TWO_SIDED):
            z = abs(z)
        crit = name in critical
        z_lim = policy.critical_z_limit if crit else policy.z_limit
        r_lim = policy.critical_ratio_limit if crit else policy.ratio_limit
        upward = not name.startswith(_TWO_SIDED + _DOWNWARD)
        ratio = x / med if upward and med > 1e-12 else None
        j.score = max(j.score, z * lim / z_lim)
        words, layer, tensor = _describe(name)
        of = f"of {len(vals)} earlier approved jobs" + (
            f" (of {n_all})" if len(vals) != n_all else ""
        )
        crit_note = " (safety-critical)" if crit else ""
        if ratio is not None and ratio > r_lim and z > 1.0:
            j.score = max(j.score, lim * ratio / r_lim)
            found.append((max(ratio / r_lim, z / z_lim),
                WeightFlag(
                    layer=layer,
                    tensor=tensor,
                    feature=name,
                    value=x,
                    limit=r_lim,
                    reason=f"{words}{crit_note} changed {ratio:.1f}x the median {of} "
                    f"(limit {r_lim:g}x)",
                ),
            ))  # fmt: skip
        elif z > z_lim:
            found.append((z / z_lim,
                WeightFlag(
                    layer=layer,
                    tensor=tensor,
                    feature=name,
                    value=x,
                    limit=z_lim,
                    reason=f"{words}{crit_note}: {x:.4g} against a median of {med:.4g} {of} "
                    f"is {z:.1f} robust standard deviations out (limit {z_lim:g})",
                ),
            ))  # fmt: skip
    found.sort(key=lambda sf: -sf[0])
    j.flags.extend(f for _, f in found)


def _judge_fixed(
    fp: Fingerprint,
    policy: WeightsPolicy,
    tensors: list[TensorStats],
    layers: list[GroupStats],
    j: Judgement,
) -> None:
    lim = policy.anomaly_score_limit

    def check(value: float | None, limit: float, flag: WeightFlag) -> None:
        if value is None or not math.isfinite(value):
            return
        j.score = max(j.score, lim * value / limit)
        if value > limit:
            j.flags.append(flag)

    for t in tensors:
        limit = policy.max_critical_relative_change if t.critical else policy.max_relative_change
        where = f"layer {t.layer} {t.module}" if t.layer is not None else t.name
        check(
            t.relative_change,
            limit,
            WeightFlag(
                tensor=t.name,
                layer=t.layer,
                feature="tensor.rel",
                value=t.relative_change,
                limit=limit,
                reason=f"{where}{' (safety-critical)' if t.critical else ''} changed by "
                f"{_fmt(t.relative_change)} of its norm (fixed limit {limit:g}; too few "
                "earlier jobs for baselines)",
            ),
        )
    for g in layers:
        if g.layer is None:
            continue
        check(
            g.relative_change,
            policy.max_layer_relative_change,
            WeightFlag(
                layer=g.layer,
                feature="layer.rel",
                value=g.relative_change,
                limit=policy.max_layer_relative_change,
                reason=f"layer {g.layer} changed by {_fmt(g.relative_change)} of its norm "
                f"(fixed limit {policy.max_layer_relative_change:g})",
            ),
        )
    total = fp.features.get("total.rel")
    check(
        total,
        policy.max_total_relative_change,
        WeightFlag(
            feature="total.rel",
            value=total,
            limit=policy.max_total_relative_change,
            reason=f"the whole model changed by {_fmt(total)} of its norm (fixed limit "
            f"{policy.max_total_relative_change:g})",
        ),
    )
    if tensors and policy.max_changed_fraction < 1.0:
        share = sum(1 for t in tensors if t.diff_norm > 0) / len(tensors)
        check(
            share,
            policy.max_changed_fraction,
            WeightFlag(
                feature="changed_tensors",
                value=share,
                limit=policy.max_changed_fraction,
                reason=f"{share:.0%} of the tensors changed (fixed limit "
                f"{policy.max_changed_fraction:.0%})",
            ),
        )
