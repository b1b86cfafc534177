"""The diff engine: base + tuned model (or adapter) in, :class:`WeightReport` out."""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ftguard.errors import BadInputError
from ftguard.weights._aggregate import group_stats
from ftguard.weights._alignment import alignment_report, alignment_terms, check_alignment_pair
from ftguard.weights._anomaly import Assessment, _tensor_feature, assess_fingerprint, fingerprint_of
from ftguard.weights._cache import load_base_norms, save_base_norms
from ftguard.weights._evidence import (
    AdapterInfo,
    AlignmentReport,
    Fingerprint,
    GroupStats,
    TensorStats,
    WeightReport,
)
from ftguard.weights._hashing import InputDigests
from ftguard.weights._lora import Adapter, is_adapter, lora_summary, open_adapter
from ftguard.weights._naming import TensorName, is_critical, layer_count, parse_name
from ftguard.weights._policy import WeightsPolicy
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
        self.engine = "local"
        """Where a full diff's statistics are computed: ``local`` or ``ray``."""

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


@dataclass
class _Inputs:
    """A diff's inputs, opened: the base, the tuned model or the adapter, the alignment pair."""

    base: Checkpoint
    tuned: Checkpoint | None
    adapter: Adapter | None
    alignment: list[Checkpoint]

    @property
    def kind(self) -> str:
        return "lora" if self.adapter is not None else "full"

    def data_paths(self) -> dict[str, list[Path]]:
        """Each role's data files, in the order the diff reads them."""
        if self.tuned is not None:
            tuned = self.tuned.data_paths
        else:
            tuned = [self.adapter.file.path] if self.adapter is not None else []
        out = {"base": self.base.data_paths, "tuned": tuned}
        out.update(zip(("un", "al"), (ck.data_paths for ck in self.alignment), strict=False))
        return out

    def close(self) -> None:
        for ck in [self.base, self.tuned, *self.alignment]:
            if ck is not None:
                ck.close()
        if self.adapter is not None:
            self.adapter.file.close()


def _open_inputs(base: Path, tuned: Path, alignment: tuple[Path, Path] | None) -> _Inputs:
    """Refuse pickle files, then open every input (headers validated, nothing read yet)."""
    for p in (base, tuned, *(alignment or ())):
        if Path(p).is_file() and Path(p).suffix.lower() in PICKLE_SUFFIXES:
            refuse_pickle(Path(p))
    adapter_mode = tuned.exists() and is_adapter(tuned)
    base_ck = open_checkpoint(base)
    tuned_ck = None if adapter_mode else open_checkpoint(tuned)
    ad = open_adapter(tuned) if adapter_mode else None
    al_cks = [open_checkpoint(Path(p)) for p in alignment] if alignment else []
    return _Inputs(base_ck, tuned_ck, ad, al_cks)


class _Roots:
    """Each input's root digest: one the caller already has, or its manifest's once hashed."""

    def __init__(self, known: dict[str, str | None], running: InputDigests) -> None:
        self.known, self.running = known, running

    def root(self, role: str) -> str:
        return self.known.get(role) or self.running.manifest(role).root


def _hashing(
    paths: dict[str, Path],
    inputs: _Inputs,
    known: dict[str, str | None],
    given: InputDigests | None,
    workers: int,
) -> tuple[InputDigests, bool]:
    """The running digests of the inputs without a known digest, and whether this diff owns them.

    Owned: started here, in the diff's read order; else the caller's (``digests=``).

    Raises:
        ValueError: ``given`` was started for other paths than this diff's.

    """
    todo = {role: p for role, p in paths.items() if not known.get(role)}
    if given is None:
        first = inputs.data_paths()
        return InputDigests(todo, first={r: first.get(r, []) for r in todo}, workers=workers), True
    wrong = sorted(role for role, p in todo.items() if given.paths.get(role) != p)
    if wrong:
        raise ValueError(
            f"digests= was started for other inputs than this diff's ({', '.join(wrong)}): "
            "pass start_digests() the same paths"
        )
    return given, False


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
    if ctx.engine == "ray":  # one Ray task per shard pair (weights/_ray.py)
        from ftguard.weights._ray import tensor_sums_on_ray

        sums = tensor_sums_on_ray(base, tuned, common, pol.change_tolerance, progress=ctx.progress)
    else:
        sums = _sums_here(ctx, tuned, common, pool)
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
            # a head the tuned model ties to its embedding, measured against it; any other
            # tensor the tuned model lacks is refused (a loader would initialise it anew)
            tied = _tied_counterpart(tuned, n, base.info(n).shape, tuned.root.name, "lacks")
            s = _sums_against(
                base, n, tuned.raw(tied), tuned.info(tied).dtype, pol.change_tolerance
            )
            out.append(_whole_tensor_stats(ctx, n, base.info(n).shape, "full", s))
    for n in tuned.names:
        if n not in base:
            # an output head untied from the base's embedding, or refused: a tensor the base
            # does not have would otherwise count as no change at all
            tied = _tied_counterpart(base, n, tuned.info(n).shape, tuned.root.name)
            s = _sums_against(base, tied, tuned.raw(n), tuned.info(n).dtype, pol.change_tolerance)
            out.append(_whole_tensor_stats(ctx, n, tuned.info(n).shape, "full", s))
    return out, norms


def _whole_tensor_stats(
    ctx: _Ctx, name: str, shape: tuple[int, ...], source: str, s: DiffSums
) -> TensorStats:
    """The statistics of one tensor diffed whole (a saved module, an untied output head)."""
    return _stats_for(
        ctx,
        name,
        shape,
        source=source,
        diff_norm=s.diff_norm,
        base_norm=s.base_norm,
        relative_change=s.diff_norm / s.base_norm if s.base_norm else None,
        max_abs_change=s.max_abs,
        changed_fraction=s.changed / s.numel if s.numel else 0.0,
        cosine=s.cosine,
    )


_TIED_EMBEDDINGS = (
    "embed_tokens.weight",
    "wte.weight",
    "word_embeddings.weight",
    "embed_in.weight",
)
"""Names of input embeddings that a model with ``tie_word_embeddings`` reuses as its output head."""


def _tied_counterpart(
    model: Checkpoint, name: str, shape: tuple[int, ...], where: str, how: str = "adds"
) -> str:
    """The tensor of ``model`` that an output head it does not store stands for: its embedding.

    A model with tied embeddings stores no ``lm_head.weight``. A tuned model or adapter that
    saves one over a tied base (untied, or ``modules_to_save=["lm_head"]``) changes the output
    head, measured against the embedding the base uses as its head; a tuned model that ties a
    head the base stored is measured the other way round (``how="lacks"``).

    Raises:
        BadInputError: ``name`` is not an output head, or ``model`` has no single embedding of
            its shape.

    """
    if name.endswith("lm_head.weight"):
        tied = [
            n
            for n in model.names
            if n.endswith(_TIED_EMBEDDINGS) and tuple(model.info(n).shape) == tuple(shape)
        ]
        if len(tied) == 1:
            return tied[0]
    other = "the base model" if how == "adds" else "the tuned model"
    raise BadInputError(
        f"{where}: tensor {name} is not in {other}, so its change cannot be measured; a tuned "
        "model or adapter must hold exactly the base's tensors (and LoRA pairs)"
    )


def _sums_against(
    base: Checkpoint, base_name: str, raw: np.ndarray, dtype: str, tolerance: float
) -> DiffSums:
    _check_dtype(base, base_name)
    if dtype not in ANALYSED_DTYPES:
        raise BadInputError(f"a tensor compared with {base_name} has dtype {dtype}")
    return diff_sums(base.raw(base_name), base.info(base_name).dtype, raw, dtype, tolerance)


def _sums_here(
    ctx: _Ctx, tuned: Checkpoint, common: list[str], pool: ThreadPoolExecutor
) -> dict[str, DiffSums]:
    """Each common tensor's statistics, its windows on this machine's threads."""
    base, pol = ctx.base, ctx.policy
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
    return sums


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
        against = name if name in base else _tied_counterpart(base, name, info.shape, ad.path.name)
        if base.info(against).shape != info.shape:
            raise BadInputError(
                f"mismatched models: the adapter saves {name} with shape {list(info.shape)}, "
                f"the base has {list(base.info(against).shape)}"
            )
        s = _sums_against(base, against, ad.file.raw(key), info.dtype, ctx.policy.change_tolerance)
        out.append(_whole_tensor_stats(ctx, name, info.shape, "modules_to_save", s))
    return out, pairs


@dataclass
class _Analysis:
    """What the statistics step found: per-tensor stats and what the later steps need."""

    tensors: list[TensorStats]
    norms: dict[str, float]
    base_digest: str
    bytes_read: int
    pairs: dict[str, object] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _analyse_full(
    ctx: _Ctx,
    inputs: _Inputs,
    roots: _Roots,
    pool: ThreadPoolExecutor,
    deep: bool,
    cache: Path | None,
) -> _Analysis:
    """A full tuned model: every common tensor's statistics in one read of both models."""
    assert inputs.tuned is not None
    tensors, norms = _full(ctx, inputs.tuned, pool, deep)
    read = file_bytes(inputs.base.data_paths) + file_bytes(inputs.tuned.data_paths)
    b_digest = roots.root("base")
    save_base_norms(cache, b_digest, norms)
    return _Analysis(tensors, norms, b_digest, read)


def _analyse_adapter(
    ctx: _Ctx,
    inputs: _Inputs,
    roots: _Roots,
    pool: ThreadPoolExecutor,
    deep: bool,
    cache: Path | None,
) -> _Analysis:
    """A LoRA adapter, in factored form, against the base's norms (read, or cached)."""
    ad, base_ck = inputs.adapter, inputs.base
    assert ad is not None
    notes: list[str] = []
    b_digest = roots.root("base")
    read = file_bytes(base_ck.data_paths)
    cached = load_base_norms(cache, b_digest)
    if cached is None or any(
        n not in cached for n in base_ck.names if base_ck.info(n).dtype in ANALYSED_DTYPES
    ):
        norms = _base_norms(ctx, pool)
        save_base_norms(cache, b_digest, norms)
    else:
        norms, read = cached, 0
        notes.append("base tensor norms read from the fingerprint cache")
    read += file_bytes([ad.file.path])
    tensors, pairs = _lora(ctx, ad, norms, pool)
    if deep:
        notes.append("adapters are always analysed in factored form; --deep adds nothing")
    return _Analysis(tensors, norms, b_digest, read, pairs, notes)


def _alignment(
    inputs: _Inputs, found: _Analysis, roots: _Roots, pool: ThreadPoolExecutor
) -> AlignmentReport | None:
    """The change measured against the alignment direction V; sets each tensor's cosine."""
    if not inputs.alignment:
        return None
    un, al = inputs.alignment
    base_ck, tuned_ck = inputs.base, inputs.tuned
    check_alignment_pair(base_ck, un, al)
    todo = [
        t.name
        for t in found.tensors
        if t.diff_norm > 0 and t.source in ("full", "lora", "modules_to_save")
    ]

    def terms(name: str) -> tuple[str, tuple[float, float, float] | None]:
        p = found.pairs.get(name)
        if p is not None:
            return name, alignment_terms(un, al, name, pair=p)  # type: ignore[arg-type]
        if tuned_ck is None:
            return name, None
        return name, alignment_terms(un, al, name, base=base_ck, tuned=tuned_ck)

    terms_of = {n: t for n, t in pool.map(terms, todo) if t is not None}
    align = alignment_report(
        terms_of, unaligned_digest=roots.root("un"), aligned_digest=roots.root("al")
    )
    for t in found.tensors:
        if t.name in terms_of:
            ip, dsq, vsq = terms_of[t.name]
            t.alignment_cosine = ip / math.sqrt(dsq * vsq) if dsq * vsq > 0 else 0.0
    if not terms_of:
        found.notes.append("the alignment direction V is zero wherever this update changed weights")
    return align


@dataclass
class _Verdict:
    """The grouped statistics, the fingerprint and the assessment of one update."""

    layers: list[GroupStats]
    modules: list[GroupStats]
    total: float
    fingerprint: Fingerprint
    assessment: Assessment


def _assessed(
    ctx: _Ctx,
    found: _Analysis,
    kind: str,
    align: AlignmentReport | None,
    baselines: list[Fingerprint],
) -> _Verdict:
    """Group, fingerprint and judge the update; sets each tensor's baseline z-score."""
    tensors = found.tensors
    layers, modules, total = group_stats(ctx, tensors, found.norms)
    fp = fingerprint_of(
        base_digest=found.base_digest,
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
    j = assess_fingerprint(
        fp,
        policy=ctx.policy,
        baselines=baselines,
        critical_features=critical,
        tensors=tensors,
        layers=layers,
        alignment=align,
    )
    for t in tensors:
        if (z := j.feature_z.get(_tensor_feature(t))) is not None and math.isfinite(z):
            t.baseline_z = z
    return _Verdict(layers, modules, total, fp, j)


def _by_change(t: TensorStats) -> tuple[float, str]:
    """Sort key: the largest finite relative change first (unknown and infinite last)."""
    rel = t.relative_change
    return (-(rel if rel is not None and math.isfinite(rel) else -1.0), t.name)


def _adapter_info(ad: Adapter | None) -> AdapterInfo | None:
    if ad is None:
        return None
    tm = ad.config.get("target_modules") or []
    return AdapterInfo(
        peft_type="LORA",
        rank=ad.rank,
        alpha=ad.alpha,
        use_rslora=bool(ad.config.get("use_rslora")),
        target_modules=[tm] if isinstance(tm, str) else [str(x) for x in tm],
        modules_to_save=[str(x) for x in ad.config.get("modules_to_save") or []],
        lora_pairs=len(ad.lora_keys),
    )


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
    digests: InputDigests | None = None,
    engine: str = "local",
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
        digests: The inputs' digests already being computed,
            ``start_digests(base, tuned, alignment=alignment)`` (the CLI starts them before
            it imports this engine); the caller closes them. Default: hashed here, alongside
            the diff, in its read order.
        engine: ``local``, or ``ray``: a full model's per-tensor statistics computed by one
            Ray task per shard pair (``RAY_ADDRESS``, else a local Ray runtime; the files
            at the same paths on every node; needs ``ftguard[ray]``), the same report.
            Adapters are analysed here either way.

    Raises:
        BadInputError: A bad, truncated or pickle-based file, an unsupported adapter or
            dtype, or models that do not match.
        ValueError: ``digests`` were started for other paths.

    """
    t0 = time.perf_counter()
    policy = policy or WeightsPolicy()
    base, tuned = Path(base), Path(tuned)
    paths = {"base": base, "tuned": tuned}
    if alignment:
        paths.update(un=Path(alignment[0]), al=Path(alignment[1]))
    known = {"base": base_digest, "tuned": tuned_digest}
    n_workers = workers or min(8, os.cpu_count() or 1)
    inputs = _open_inputs(base, tuned, alignment)
    ctx = _Ctx(policy, inputs.base, progress, n_workers)
    if engine not in ("local", "ray"):
        raise BadInputError(f"unknown weights engine {engine!r} (choose from local, ray)")
    ctx.engine = engine
    with contextlib.ExitStack() as stack:
        stack.callback(inputs.close)
        running, owned = _hashing(paths, inputs, known, digests, n_workers)
        if owned:
            stack.enter_context(running)
        roots = _Roots(known, running)
        with ThreadPoolExecutor(n_workers) as pool:
            analyse = _analyse_full if inputs.tuned is not None else _analyse_adapter
            found = analyse(ctx, inputs, roots, pool, deep, fingerprint_cache)
            align = _alignment(inputs, found, roots, pool)
        t_digest = roots.root("tuned")
    v = _assessed(ctx, found, inputs.kind, align, baselines or [])
    found.tensors.sort(key=_by_change)
    j = v.assessment
    return WeightReport(
        verdict="flag" if j.flags or j.score > policy.anomaly_score_limit else "pass",
        anomaly_score=float(j.score),
        judged_by=j.judged_by,
        judgement=j.text,  # type: ignore[arg-type]
        flags=j.flags,
        tensors=found.tensors,
        layers=v.layers,
        modules=v.modules,
        fingerprint=v.fingerprint,
        baseline_count=sum(1 for b in baselines or [] if b.base_digest == found.base_digest),
        base_digest=found.base_digest,
        tuned_digest=t_digest,
        tuned_kind=inputs.kind,
        model_type=ctx.model_type if isinstance(ctx.model_type, str) else None,
        num_layers=ctx.n_layers,
        total_relative_change=v.total,
        tensors_total=len(inputs.base.names),
        tensors_changed=sum(1 for t in found.tensors if t.diff_norm > 0),
        adapter=_adapter_info(inputs.adapter),
        alignment=align,
        deep=deep,
        seconds=time.perf_counter() - t0,
        bytes_read=found.bytes_read,
        notes=found.notes,
    )
