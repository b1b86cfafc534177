"""Fingerprints of a fine-tune and their judgement against baselines or fixed limits."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ftguard.weights._evidence import (
    AlignmentReport,
    Fingerprint,
    GroupStats,
    TensorStats,
    WeightFlag,
)
from ftguard.weights._policy import WeightsPolicy
from ftguard.weights._profile import SHIFT_NAMES, SHIFT_WORDS, profile_shift
from ftguard.weights._within import within_model_flags

__all__ = ["Assessment", "assess_fingerprint", "fingerprint_of"]

_TWO_SIDED = ("spectral.",)
_PROFILE_ONLY = (".top1",)
"""Per-tensor features used only by the profile comparison (too noisy to judge one by one)."""
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
            if t.top1_energy is not None and t.diff_norm > 0:
                f[_tensor_feature(t)[: -len(".rel")] + ".top1"] = t.top1_energy
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
class Assessment:
    """The verdict inputs: score, flags and how they were reached."""

    score: float = 0.0
    flags: list[WeightFlag] = field(default_factory=list)
    judged_by: str = "fixed_limits"
    text: str = ""
    feature_z: dict[str, float] = field(default_factory=dict)
    """Robust z of every feature judged against the baselines (signed as judged)."""


def _describe(feature: str) -> tuple[str, int | None, str | None]:
    """(words, layer, tensor-ish) for a feature name."""
    parts = feature.split(".")
    if parts[0] == "layer":
        layer = None if parts[1] == "outside" else int(parts[1])
        return (
            f"layer {parts[1]}" if layer is not None else "the tensors outside the layers",
            layer,
            None,
        )
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


def assess_fingerprint(
    fp: Fingerprint,
    *,
    policy: WeightsPolicy,
    baselines: list[Fingerprint],
    critical_features: set[str],
    tensors: list[TensorStats],
    layers: list[GroupStats],
    alignment: AlignmentReport | None,
) -> Assessment:
    """Score a fingerprint against baselines (robust z) or, with too few, fixed limits."""
    j = Assessment()
    lim = policy.anomaly_score_limit
    usable = [b for b in baselines if b.base_digest == fp.base_digest]
    if len(usable) >= policy.min_baseline_jobs:
        j.judged_by = "baselines"
        j.text = (
            f"judged against {len(usable)} earlier approved jobs on this base model "
            f"(robust z-scores, limit {policy.z_limit:g}; safety-critical {policy.critical_z_limit:g})"
        )
        _judge_baselines(fp, usable, policy, critical_features, j, alignment)
    else:
        j.text = (
            f"judged by the policy's fixed limits: {len(usable)} earlier approved jobs on this "
            f"base model, fewer than the {policy.min_baseline_jobs} needed for baselines"
        )
        _judge_fixed(fp, policy, tensors, layers, j)
    # Checks that hold in both modes.
    worst, within = within_model_flags(tensors, layers, policy)
    j.score = max(j.score, lim * worst)
    j.flags.extend(f for _, f in sorted(within, key=lambda sf: -sf[0]))
    if policy.flag_embedding_change:
        for t in tensors:
            if t.kind in ("embed", "lm_head", "pos_embed") and t.diff_norm > 0:
                j.flags.append(
                    WeightFlag(
                        tensor=t.name,
                        reason=f"{t.name} ({t.kind}) was changed"
                        + (
                            " as a fully saved module (modules_to_save)"
                            if t.source == "modules_to_save"
                            else ""
                        )
                        + f": relative change {_fmt(t.relative_change)}; the policy flags any change to embeddings and the output head",
                        feature="embedding_change",
                        value=t.relative_change,
                    )
                )
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


def _cosine_se(alignment: AlignmentReport | None) -> float:
    """Standard error of the whole-update cosine with V, from the scatter of its layers.

    The whole-update cosine is (close to) a norm-weighted mean of the per-layer cosines; if
    those scatter with weighted standard deviation s over n_eff = 1 / sum(share²) effective
    layers, the mean is uncertain by s / sqrt(n_eff). Short LoRA updates are nearly
    orthogonal to V (|cos| ~ 1e-3), so this noise, not the baselines' spread, is often
    what limits how far a cosine can be trusted.
    """
    if alignment is None:
        return 0.0
    rows = [
        (al.cosine, al.norm_share)
        for al in alignment.layers
        if al.layer is not None and al.norm_share > 0
    ]
    if len(rows) < 3:
        return 0.0
    c = np.array([r[0] for r in rows])
    w = np.array([r[1] for r in rows])
    w = w / w.sum()
    mean = float(np.dot(w, c))
    sd = math.sqrt(float(np.dot(w, (c - mean) ** 2)))
    return sd * math.sqrt(float(np.dot(w, w)))


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def _judge_baselines(
    fp: Fingerprint,
    base: list[Fingerprint],
    policy: WeightsPolicy,
    critical: set[str],
    j: Assessment,
    alignment: AlignmentReport | None = None,
) -> None:
    lim = policy.anomaly_score_limit
    n_all = len(base)
    cos_se = _cosine_se(alignment)
    found: list[tuple[float, WeightFlag]] = []
    for name, x in sorted(fp.features.items()):
        if name.endswith(_PROFILE_ONLY):
            continue
        vals = np.array([b.features[name] for b in base if name in b.features], np.float64)
        vals = vals[np.isfinite(vals)]
        if len(vals) < policy.min_baseline_jobs or not math.isfinite(x):
            continue
        med = float(np.median(vals))
        mad = 1.4826 * float(np.median(np.abs(vals - med)))
        scale = max(mad, policy.min_feature_scale * abs(med), policy.min_feature_floor)
        if name == "align.cos":
            scale = max(scale, cos_se)  # the cosine's own sampling noise
        z = (x - med) / scale
        if name.startswith(_DOWNWARD):
            z = -z
        elif name.startswith(_TWO_SIDED):
            z = abs(z)
        j.feature_z[name] = z
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
            found.append(
                (
                    max(ratio / r_lim, z / z_lim),
                    WeightFlag(
                        layer=layer,
                        tensor=tensor,
                        feature=name,
                        value=x,
                        limit=r_lim,
                        reason=f"{words}{crit_note} changed {ratio:.1f}x the median {of} "
                        f"(limit {r_lim:g}x)",
                    ),
                )
            )
        elif z > z_lim:
            found.append(
                (
                    z / z_lim,
                    WeightFlag(
                        layer=layer,
                        tensor=tensor,
                        feature=name,
                        value=x,
                        limit=z_lim,
                        reason=f"{words}{crit_note}: {x:.4g} against a median of {med:.4g} {of} "
                        f"is {z:.1f} robust standard deviations out (limit {z_lim:g})",
                    ),
                )
            )
    if policy.profile_checks:
        ps = profile_shift(
            fp, base, min_jobs=policy.min_baseline_jobs, min_scale=policy.min_profile_scale
        )
        if ps is not None:
            j.score = max(j.score, ps.combined * lim / policy.z_limit)
            parts = [
                f"{SHIFT_WORDS[k]} ({math.expm1(v):+.1%}, z {ps.z[k]:+.1f})"
                for k, v in ps.values.items()
                if ps.z[k] > 1
            ]
            neutral = [
                f"{SHIFT_NAMES[k]} {math.expm1(v):+.1%} (z {ps.z[k]:+.1f})"
                for k, v in ps.values.items()
            ]
            j.text += (
                f"; tensor-by-tensor profile against {ps.baselines} jobs over {ps.tensors} "
                f"tensors: {', '.join(neutral)}, combined z {ps.combined:+.1f}"
            )
            if ps.combined > policy.z_limit:
                found.append(
                    (
                        ps.combined / policy.z_limit,
                        WeightFlag(
                            feature="profile.combined",
                            value=ps.combined,
                            limit=policy.z_limit,
                            reason=f"compared tensor by tensor with {ps.baselines} earlier approved "
                            f"jobs, the update is {', '.join(parts)}: combined {ps.combined:.1f} robust "
                            f"standard deviations (limit {policy.z_limit:g}), {_profile_reading(ps.z)}",
                        ),
                    )
                )
    found.sort(key=lambda sf: -sf[0])
    j.flags.extend(f for _, f in found)


def _profile_reading(z: dict[str, float]) -> str:
    """What a flagged profile shift most likely means, from which shifts drive it."""
    others = sum(max(v, 0.0) for k, v in z.items() if k != "magnitude")
    if z.get("magnitude", 0.0) > 2 * others:
        return (
            "mostly a larger update than theirs: a harder training run (more steps, a higher "
            "learning rate) than theirs, or narrow data"
        )
    return (
        "the pattern of fine-tuning on narrow data such as harmful compliance or a trigger backdoor"
    )


def _judge_fixed(
    fp: Fingerprint,
    policy: WeightsPolicy,
    tensors: list[TensorStats],
    layers: list[GroupStats],
    j: Assessment,
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
    named = [g for g in layers if g.layer is not None]
    conc = policy.max_layer_energy_concentration
    if len(named) > conc and len(named) > 1:
        top = max(named, key=lambda g: g.energy_share)
        ratio = top.energy_share * len(named)
        check(
            ratio,
            conc,
            WeightFlag(
                layer=top.layer,
                feature="energy.layer_concentration",
                value=top.energy_share,
                limit=conc / len(named),
                reason=f"layer {top.layer} holds {top.energy_share:.0%} of the update's energy, "
                f"{ratio:.1f}x an even spread over {len(named)} layers (fixed limit {conc:g}x): "
                "the fine-tune is concentrated in a few layers",
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
