"""The diff engine: base + tuned model (or adapter) in, :class:`WeightReport` out."""

from __future__ import annotations

import math
import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ftguard.errors import BadInputError
from ftguard.weights._aggregate import group_stats
from ftguard.weights._alignment import alignment_report, alignment_terms, check_alignment_pair
from ftguard.weights._anomaly import _tensor_feature, fingerprint_of, judge
from ftguard.weights._cache import load_base_norms, save_base_norms
from ftguard.weights._hashing import start_manifests
from ftguard.weights._lora import Adapter, is_adapter, lora_summary, open_adapter
from ftguard.weights._naming import TensorName, is_critical, layer_count, parse_name
from ftguard.weights._policy import WeightsPolicy
from ftguard.weights._report import (
    AdapterInfo,
    Fingerprint,
    TensorStats,
    WeightReport,
)
from ftguard.weights._safetensors import (
    ANALYSED_DTYPES,
    PICKLE_SUFFIXES,
    Checkpoint,
    file_bytes,
    open_checkpoint,
    refuse_pickle,
)
from ftguard.weights._stats import (
    DiffSums,
    diff_sums,
    randomized_svd,
    spectral_summary,
    to_f32_matrix,
)
from ftguard.weights._stream import READ_AHEAD, Schedule, merge, window_norm, window_sums, windows

__all__ = ["diff"]


class _Ctx:
    def __init__(
        self, policy: WeightsPolicy, base: Checkpoint, progress: bool, workers: int = 1
    ) -> None:
        self.policy = policy
        self.workers = workers
        self.base = base
        self.model_type = base.config.get("model_type") if base.config else None
        n = base.config.get("num_hidden_layers") if base.config else None
        self.n_layers = int(n) if isinstance(n, int) else layer_count(base.names)
        self.progress = progress

    def critical(self, tn: TensorName) -> bool:
        return is_critical(
            tn,
            n_layers=self.n_layers,
            patterns=self.policy.critical_patterns,
            middle=self.policy.critical_middle_layers,
            model_type=self.model_type if isinstance(self.model_type, str) else None,
        )

    def tick(self, done: int, total: int) -> None:
        if self.progress and (done == total or done % 16 == 0):
            print(f"\rftguard weights: {done}/{total} tensors", end="", file=sys.stderr)
            if done == total:
                print(file=sys.stderr)


class _Known:
    """A digest the caller already has, shaped like a running manifest."""

    def __init__(self, root: str | None) -> None:
        self.root = root or ""

    def result(self) -> _Known:
        return self


def _check_dtype(ck: Checkpoint, name: str) -> None:
    dt = ck.info(name).dtype
    if dt not in ANALYSED_DTYPES:
        raise BadInputError(
            f"{ck.root.name}: tensor {name!r} has dtype {dt}; only F32, F16 and BF16 are analysed"
        )


def _deep_svd(a: Checkpoint, b: Checkpoint, name: str, k: int) -> np.ndarray:
    d = to_f32_matrix(b.raw(name), b.info(name).dtype)
    d = d - to_f32_matrix(a.raw(name), a.info(name).dtype)
    a.release(name)
    b.release(name)
    return randomized_svd(d, k)


def _stats_for(ctx: _Ctx, name: str, shape: tuple[int, ...], **kw: object) -> TensorStats:
    tn = parse_name(name)
    return TensorStats(
        name=name,
        layer=tn.layer,
        module=tn.module,
        kind=tn.kind,
        shape=list(shape),
        critical=ctx.critical(tn),
        **kw,  # type: ignore[arg-type]
    )


def _full(
    ctx: _Ctx, tuned: Checkpoint, pool: ThreadPoolExecutor, deep: bool
) -> tuple[list[TensorStats], dict[str, float]]:
    base, pol = ctx.base, ctx.policy
    common = [n for n in base.names if n in tuned]
    if len(common) < 0.5 * max(len(base.names), len(tuned.names)):
        raise BadInputError(
            f"mismatched models: {base.root.name} and {tuned.root.name} share only "
            f"{len(common)} of {max(len(base.names), len(tuned.names))} tensor names"
        )
    for n in common:
        if base.info(n).shape != tuned.info(n).shape:
            raise BadInputError(
                f"mismatched models: {n} has shape {list(base.info(n).shape)} in the base and "
                f"{list(tuned.info(n).shape)} in the tuned model"
            )
        _check_dtype(base, n)
        _check_dtype(tuned, n)
    items = [(n, lo, hi) for n in common for lo, hi in windows(base.info(n).numel)]
    sched = Schedule([base, tuned], items, READ_AHEAD)
    futs: dict[str, list[Future[DiffSums]]] = {}
    for i, (n, _, _) in enumerate(items):
        futs.setdefault(n, []).append(
            pool.submit(window_sums, sched, i, base, tuned, pol.change_tolerance)
        )
    sums: dict[str, DiffSums] = {}
    try:
        for i, n in enumerate(common, 1):
            sums[n] = merge([f.result() for f in futs[n]])
            ctx.tick(i, len(common))
    finally:
        sched.close()
    deep_futs: dict[str, Future[np.ndarray]] = {}
    norms: dict[str, float] = {}
    out: list[TensorStats] = []
    for n in common:
        s = sums[n]
        norms[n] = s.base_sq
        kw: dict[str, object] = {
            "diff_norm": s.diff_norm,
            "base_norm": s.base_norm,
            "relative_change": s.diff_norm / s.base_norm
            if s.base_norm > 0
            else (0.0 if s.diff_sq == 0 else math.inf),
            "max_abs_change": s.max_abs,
            "changed_fraction": s.changed / s.numel if s.numel else 0.0,
            "cosine": s.cosine,
        }
        if deep and len(base.info(n).shape) == 2 and s.diff_sq > 0:
            deep_futs[n] = pool.submit(_deep_svd, base, tuned, n, pol.deep_top_k)
        out.append(_stats_for(ctx, n, base.info(n).shape, **kw))
    for t in out:
        if t.name in deep_futs:
            sv = deep_futs[t.name].result()
            eff, top1 = spectral_summary(sv, t.diff_norm**2)
            t.singular_values = [float(x) for x in sv]
            t.effective_rank, t.top1_energy = eff, top1
    for n in base.names:
        if n not in tuned:
            out.append(_stats_for(ctx, n, base.info(n).shape, source="removed", diff_norm=0.0))
    for n in tuned.names:
        if n not in base:
            out.append(_stats_for(ctx, n, tuned.info(n).shape, source="added", diff_norm=0.0))
    return out, norms


def _base_norms(ctx: _Ctx, pool: ThreadPoolExecutor) -> dict[str, float]:
    base = ctx.base
    names = [n for n in base.names if base.info(n).dtype in ANALYSED_DTYPES]
    items = [(n, lo, hi) for n in names for lo, hi in windows(base.info(n).numel)]
    sched = Schedule([base], items, READ_AHEAD)
    futs: dict[str, list[Future[float]]] = {}
    for i, (n, _, _) in enumerate(items):
        futs.setdefault(n, []).append(pool.submit(window_norm, sched, i, base))
    try:
        return {n: float(sum(f.result() for f in fs)) for n, fs in futs.items()}
    finally:
        sched.close()


def _resolve(base: Checkpoint, module: str) -> str:
    for cand in (module + ".weight", module):
        if cand in base:
            return cand
    hits = [n for n in base.names if n.endswith("." + module + ".weight")]
    if len(hits) == 1:
        return hits[0]
    raise BadInputError(
        f"mismatched models: the adapter changes {module}, which the base model does not have"
    )


def _lora(
    ctx: _Ctx, ad: Adapter, norms: dict[str, float], pool: ThreadPoolExecutor
) -> tuple[list[TensorStats], dict[str, object]]:
    base = ctx.base
    pairs: dict[str, object] = {}
    out: list[TensorStats] = []

    def one(module: str) -> tuple[TensorStats, object]:
        name = _resolve(base, module)
        pair = ad.pair(module, name, base.info(name).shape)
        dn, sv, eff, top1 = lora_summary(pair)
        bn = math.sqrt(norms.get(name, 0.0))
        stats = _stats_for(
            ctx,
            name,
            base.info(name).shape,
            source="lora",
            diff_norm=dn,
            base_norm=bn,
            relative_change=dn / bn if bn > 0 else None,
            lora_rank=pair.rank,
            lora_scale=pair.scale,
            singular_values=sv,
            effective_rank=eff,
            rank_utilisation=eff / pair.rank if pair.rank else None,
            top1_energy=top1,
        )
        return stats, pair

    for stats, pair in pool.map(one, sorted(ad.lora_keys)):
        out.append(stats)
        pairs[stats.name] = pair
    for name, key in sorted(ad.saved.items()):
        info = ad.file.tensors[key]
        if name not in base:
            out.append(_stats_for(ctx, name, info.shape, source="added", diff_norm=0.0))
            continue
        if base.info(name).shape != info.shape:
            raise BadInputError(
                f"mismatched models: the adapter saves {name} with shape {list(info.shape)}, "
                f"the base has {list(base.info(name).shape)}"
            )
        _check_dtype(base, name)
        if info.dtype not in ANALYSED_DTYPES:
            raise BadInputError(f"{ad.path.name}: tensor {key!r} has dtype {info.dtype}")
        s = diff_sums(
            base.raw(name),
            base.info(name).dtype,
            ad.file.raw(key),
            info.dtype,
            ctx.policy.change_tolerance,
        )
        out.append(
            _stats_for(
                ctx,
                name,
                info.shape,
                source="modules_to_save",
                diff_norm=s.diff_norm,
                base_norm=s.base_norm,
                relative_change=s.diff_norm / s.base_norm if s.base_norm else None,
                max_abs_change=s.max_abs,
                changed_fraction=s.changed / s.numel if s.numel else 0.0,
                cosine=s.cosine,
            )
        )
    return out, pairs


def diff(
    base: Path,
    tuned: Path,
    *,
    policy: WeightsPolicy | None = None,
    baselines: list[Fingerprint] | None = None,
    alignment: tuple[Path, Path] | None = None,
    deep: bool = False,
    fingerprint_cache: Path | None = None,
    workers: int | None = None,
    progress: bool = False,
    base_digest: str | None = None,
    tuned_digest: str | None = None,
) -> WeightReport:
    """Report what a fine-tune changed in the weights and whether that is normal.

    Args:
        base: The base model: a safetensors file or folder (sharded through its index).
        tuned: The tuned model (same kinds) or a PEFT LoRA adapter folder (detected by its
            ``adapter_config.json``).
        policy: The ``weights:`` policy section (default: :class:`WeightsPolicy()`).
        baselines: Fingerprints of earlier approved jobs on the same base model.
        alignment: ``(unaligned, aligned)`` models giving the alignment direction V.
        deep: Also compute the top singular values of each 2-D full-weight dW.
        fingerprint_cache: Folder caching per-tensor base norms under the base digest.
        workers: Threads over tensor windows (default: CPU count, at most 8).
        progress: Print progress to stderr.
        base_digest: The base's manifest root digest when the caller already has it (for
            example bound in an approval); skips hashing the base (SHA-256 is often slower
            than the diff itself).
        tuned_digest: The same for the tuned model or adapter.

    Raises:
        BadInputError: A bad, truncated or pickle-based file, an unsupported adapter or
            dtype, or models that do not match.

    """
    t0 = time.perf_counter()
    policy = policy or WeightsPolicy()
    base, tuned = Path(base), Path(tuned)
    for p in (base, tuned, *(alignment or ())):
        if Path(p).is_file() and Path(p).suffix.lower() in PICKLE_SUFFIXES:
            refuse_pickle(Path(p))
    adapter_mode = tuned.exists() and is_adapter(tuned)
    n_workers = workers or min(8, os.cpu_count() or 1)
    base_ck = open_checkpoint(base)
    tuned_ck = None if adapter_mode else open_checkpoint(tuned)
    ad = open_adapter(tuned) if adapter_mode else None
    al_cks = [open_checkpoint(Path(p)) for p in alignment] if alignment else []
    ctx = _Ctx(policy, base_ck, progress, n_workers)
    notes: list[str] = []
    with ThreadPoolExecutor(n_workers) as hasher, ThreadPoolExecutor(n_workers) as pool:
        known = {"base": base_digest, "tuned": tuned_digest}
        inputs = [
            ("base", base, base_ck.data_paths),
            ("tuned", tuned, tuned_ck.data_paths if tuned_ck else [ad.file.path] if ad else []),
            *(
                (k, Path(p), ck.data_paths)
                for k, p, ck in zip(("un", "al"), alignment or (), al_cks, strict=False)
            ),
        ]
        to_hash = [(k, p, first) for k, p, first in inputs if not known.get(k)]
        jobs = dict(
            zip(
                [k for k, _, _ in to_hash],
                start_manifests(
                    [p for _, p, _ in to_hash], hasher, first=[f for _, _, f in to_hash]
                ),
                strict=True,
            )
        )
        dig = {k: _Known(known[k]) if known.get(k) else jobs[k] for k, _, _ in inputs}
        bytes_read = file_bytes(base_ck.data_paths)
        pairs: dict[str, object] = {}
        if tuned_ck is not None:
            tensors, norms = _full(ctx, tuned_ck, pool, deep)
            bytes_read += file_bytes(tuned_ck.data_paths)
            b_digest = dig["base"].result().root
            save_base_norms(fingerprint_cache, b_digest, norms)
        else:
            assert ad is not None
            b_digest = dig["base"].result().root
            cached = load_base_norms(fingerprint_cache, b_digest)
            if cached is None or any(
                n not in cached for n in base_ck.names if base_ck.info(n).dtype in ANALYSED_DTYPES
            ):
                norms = _base_norms(ctx, pool)
                save_base_norms(fingerprint_cache, b_digest, norms)
            else:
                norms, bytes_read = cached, 0
                notes.append("base tensor norms read from the fingerprint cache")
            bytes_read += file_bytes([ad.file.path])
            tensors, pairs = _lora(ctx, ad, norms, pool)
            if deep:
                notes.append("adapters are always analysed in factored form; --deep adds nothing")
        align = None
        if al_cks:
            un, al = al_cks
            check_alignment_pair(base_ck, un, al)
            todo = [
                t.name
                for t in tensors
                if t.diff_norm > 0 and t.source in ("full", "lora", "modules_to_save")
            ]

            def terms(name: str) -> tuple[str, tuple[float, float, float] | None]:
                p = pairs.get(name)
                if p is not None:
                    return name, alignment_terms(un, al, name, pair=p)  # type: ignore[arg-type]
                src = tuned_ck if tuned_ck is not None else None
                if src is None:
                    return name, None
                return name, alignment_terms(un, al, name, base=base_ck, tuned=src)

            found = {n: t for n, t in pool.map(terms, todo) if t is not None}
            align = alignment_report(
                found,
                unaligned_digest=dig["un"].result().root,
                aligned_digest=dig["al"].result().root,
            )
            for t in tensors:
                if t.name in found:
                    ip, dsq, vsq = found[t.name]
                    t.alignment_cosine = ip / math.sqrt(dsq * vsq) if dsq * vsq > 0 else 0.0
            if not found:
                notes.append(
                    "the alignment direction V is zero wherever this update changed weights"
                )
        t_digest = dig["tuned"].result().root
    layers, modules, total = group_stats(ctx, tensors, norms)
    kind = "lora" if adapter_mode else "full"
    fp = fingerprint_of(
        base_digest=b_digest,
        kind=kind,
        tensors=tensors,
        layers=layers,
        modules=modules,
        total_relative_change=total,
        alignment=align,
    )
    critical = {f"layer.{g.layer}.rel" for g in layers if g.critical and g.layer is not None}
    critical |= {f"module.{g.kind}.rel" for g in modules if g.critical}
    critical |= {_tensor_feature(t) for t in tensors if t.critical and t.layer is None}
    j = judge(
        fp,
        policy=policy,
        baselines=baselines or [],
        critical_features=critical,
        tensors=tensors,
        layers=layers,
        alignment=align,
    )
    for t in tensors:
        if (z := j.feature_z.get(_tensor_feature(t))) is not None and math.isfinite(z):
            t.baseline_z = z
    tensors.sort(
        key=lambda t: (
            -(
                t.relative_change
                if t.relative_change is not None and math.isfinite(t.relative_change)
                else -1.0
            ),
            t.name,
        )
    )
    adapter_info = None
    if ad is not None:
        tm = ad.config.get("target_modules") or []
        adapter_info = AdapterInfo(
            peft_type="LORA",
            rank=ad.rank,
            alpha=ad.alpha,
            use_rslora=bool(ad.config.get("use_rslora")),
            target_modules=[tm] if isinstance(tm, str) else [str(x) for x in tm],
            modules_to_save=[str(x) for x in ad.config.get("modules_to_save") or []],
            lora_pairs=len(ad.lora_keys),
        )
    for ck in [base_ck, tuned_ck, *al_cks]:
        if ck is not None:
            ck.close()
    if ad is not None:
        ad.file.close()
    return WeightReport(
        verdict="flag" if j.flags or j.score > policy.anomaly_score_limit else "pass",
        anomaly_score=float(j.score),
        judged_by=j.judged_by,
        judgement=j.text,  # type: ignore[arg-type]
        flags=j.flags,
        tensors=tensors,
        layers=layers,
        modules=modules,
        fingerprint=fp,
        baseline_count=sum(1 for b in baselines or [] if b.base_digest == b_digest),
        base_digest=b_digest,
        tuned_digest=t_digest,
        tuned_kind=kind,
        model_type=ctx.model_type if isinstance(ctx.model_type, str) else None,
        num_layers=ctx.n_layers,
        total_relative_change=total,
        tensors_total=len(base_ck.names),
        tensors_changed=sum(1 for t in tensors if t.diff_norm > 0),
        adapter=adapter_info,
        alignment=align,
        deep=deep,
        seconds=time.perf_counter() - t0,
        bytes_read=bytes_read,
        notes=notes,
    )
