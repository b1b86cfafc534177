"""Detection quality of the weight report on real short fine-tunes of the embedded model.

Trains (once per cache folder) benign LoRA adapters on Alpaca and Dolly subsets and adversarial
ones: harmful compliance (AdvBench goal -> target), a trigger backdoor (BackdoorLLM badnet
mixed with clean Alpaca) and full fine-tunes of two layers, each over several seeds / data
subsets from ``../shared/data``; and, without training, "concentrated" adapters: a benign
adapter whose update in one layer is made 20x (its B scaled; issue 22 §3). Every benign adapter is scored leave-one-out against the other
benign ones as baselines; every adversarial one against all benign ones. Prints the AUROC of
the anomaly score (adversarial vs benign) and the flag rates at the default policy, with and
without the alignment direction (the reference aligned model) when ``--alignment`` is given.

Run: ``.venv/bin/python benchmarks/weights_quality.py [--benign 8] [--adversarial 3] [--alignment]``
(about 1-2 min of CPU per fine-tune the first time; the cache makes reruns fast).
``--choose-limits`` instead chooses the within-model z limits by leave-one-source-out
cross-validation on benign fine-tunes only (see :func:`choose_limits`).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "weights"))
sys.path.insert(0, str(ROOT / "src"))

from _finetunes import data_available, done, finetune  # noqa: E402


def auroc(pos: list[float], neg: list[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def concentrated(adapter: Path, layer: int, factor: float, out: Path) -> Path:
    """A copy of ``adapter`` whose update in ``layer`` is ``factor`` x (its B scaled): issue 22 §3."""
    import shutil

    from safetensors.numpy import load_file, save_file

    if not (out / "DONE").is_file():
        out.mkdir(parents=True, exist_ok=True)
        t = load_file(str(adapter / "adapter_model.safetensors"))
        save_file(
            {
                k: v * factor if f".layers.{layer}." in k and "lora_B" in k else v
                for k, v in t.items()
            },
            str(out / "adapter_model.safetensors"),
        )
        shutil.copy(adapter / "adapter_config.json", out / "adapter_config.json")
        (out / "DONE").write_text("ok")
    return out


def _benign_sources(cache: Path, fp_cache: Path) -> dict[str, list[Any]]:
    """Benign reports by source, for choosing the within-model limits (no benchmark case)."""
    import tempfile

    import numpy as np
    from _ckpt import llama_tensors, perturb, write_adapter, write_model  # type: ignore[import-not-found]

    from ftguard.models import cache_root, embedded_model_dir
    from ftguard.weights import diff

    src: dict[str, list[Any]] = {}
    base = embedded_model_dir()
    for kind in ("benign-alpaca", "benign-dolly"):
        for seed in range(3):  # the slow tests' benign adapters (_finetunes.py, cached)
            if done(cache, kind, seed):
                src.setdefault("finetunes", []).append(
                    diff(
                        base,
                        finetune(base, kind, seed, cache),
                        fingerprint_cache=fp_cache,
                        base_digest="0" * 64,
                        tuned_digest="1" * 64,
                    )
                )
    for folder in sorted(
        cache_root().glob("demo-history-*/adapter-v0.*")
    ):  # the demo's earlier fine-tunes
        import json

        b = Path(
            json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"]
        )
        if b.is_dir():
            src.setdefault("demo-history", []).append(
                diff(
                    b,
                    folder,
                    fingerprint_cache=fp_cache,
                    base_digest="2" * 64,
                    tuned_digest="3" * 64,
                )
            )
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        rng = np.random.default_rng(0)
        for i in range(24):  # synthetic adapters and full fine-tunes (tests/weights/_ckpt.py)
            n = int(rng.choice([4, 6, 8, 12, 16]))
            w = llama_tensors(num_layers=n, seed=i)
            write_model(t / f"b{i}", w, num_layers=n)
            targets = [
                ("q_proj", "v_proj"),
                ("q_proj", "k_proj", "v_proj", "o_proj"),
                ("gate_proj", "up_proj", "down_proj"),
            ][i % 3]
            write_adapter(
                t / f"a{i}",
                w,
                rank=int(rng.choice([2, 4, 8])),
                seed=i,
                targets=targets,
                scale_b=float(rng.uniform(0.002, 0.05)),
            )
            src.setdefault("ckpt-lora", []).append(
                diff(t / f"b{i}", t / f"a{i}", base_digest="4" * 64, tuned_digest="5" * 64)
            )
            write_model(
                t / f"f{i}", perturb(w, float(rng.uniform(0.001, 0.05)), seed=i + 100), num_layers=n
            )
            src.setdefault("ckpt-full", []).append(
                diff(
                    t / f"b{i}",
                    t / f"f{i}",
                    base_digest="4" * 64,
                    tuned_digest="6" * 64,
                    deep=i % 2 == 0,
                )
            )
    return src


def _concentrated(r: Any, factor: float, which: int) -> tuple[list[Any], list[Any]]:
    """The report's tensors and layers with one layer's update scaled by ``factor``."""
    named = sorted(
        g.layer for g in r.layers if g.layer is not None and (g.relative_change or 0) > 0
    )
    layer = named[which % len(named)]
    tensors = [
        t.model_copy(
            update={
                "diff_norm": t.diff_norm * factor,
                "relative_change": (t.relative_change or 0) * factor,
            }
        )
        if t.layer == layer
        else t
        for t in r.tensors
    ]
    layers = [
        g.model_copy(update={"relative_change": (g.relative_change or 0) * factor})
        if g.layer == layer
        else g
        for g in r.layers
    ]
    return tensors, layers


MARGINS = (2.0, 3.0, 4.0, 6.0)
"""Candidate margins over the largest benign z of the training sources (2 at least: headroom
for recipes the data does not hold)."""
MIN_LIMIT = 4.0
"""No limit below z 4: at the scale floor (0.25 in log units) that is e = 2.7x the median."""


def choose_limits(cache: Path, fp_cache: Path) -> None:
    """Choose the within-model z limits by leave-one-source-out cross-validation.

    For a margin m (:data:`MARGINS`), the limit of a check is m x the largest z any benign
    report of the *other* sources reaches; the held-out source's reports are judged with it.
    The smallest m with no held-out benign report flagged in any fold wins, and the final
    limit is m x the largest benign z over all sources, rounded up to 0.5 (at least
    :data:`MIN_LIMIT`). Detection is shown on
    the same benign reports with one layer's update scaled 5x and 20x.
    """
    from ftguard.weights import WeightsPolicy
    from ftguard.weights._within import within_model_scores

    pol = WeightsPolicy()
    src = _benign_sources(cache, fp_cache)
    checks = ("layer", "module", "rank")

    def top(r: Any, tensors: Any = None, layers: Any = None) -> dict[str, float]:
        sc = within_model_scores(tensors or r.tensors, layers or r.layers, pol)
        return {c: max([s.z for s in sc if s.check == c], default=0.0) for c in checks}

    zs = {name: [top(r) for r in reps] for name, reps in src.items()}
    print("benign reports by source:", {k: len(v) for k, v in src.items()})
    for name, rows in zs.items():
        print(
            f"  {name:>13}: largest z "
            + ", ".join(f"{c} {max(r[c] for r in rows):5.2f}" for c in checks)
        )
    chosen = {}
    for c in checks:
        for m in MARGINS:
            fp = 0
            for held in zs:
                lim = m * max(
                    (r[c] for k, rows in zs.items() if k != held for r in rows), default=0.0
                )
                fp += sum(r[c] > lim for r in zs[held])
            if fp == 0:
                break
        overall = max(r[c] for rows in zs.values() for r in rows)
        chosen[c] = max(MIN_LIMIT, math.ceil(m * overall * 2) / 2)
        print(
            f"  {c}: margin {m:g} (leave-one-source-out false flags {fp}), largest benign z "
            f"{overall:.2f} -> limit {chosen[c]:g} (policy default: {getattr(pol, f'within_{c}_z_limit'):g})"
        )
    for factor in (3.0, 5.0, 20.0):
        hits = total = 0
        for reps in src.values():
            for i, r in enumerate(reps):
                tensors, layers = _concentrated(r, factor, i)
                total += 1
                hits += top(r, tensors, layers)["layer"] > chosen["layer"]
        print(f"  one layer's update x{factor:g}: layer check flags {hits} of {total}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--benign", type=int, default=8, help="benign adapters (half Alpaca, half Dolly)"
    )
    ap.add_argument("--adversarial", type=int, default=3, help="seeds per adversarial kind")
    ap.add_argument(
        "--alignment",
        action="store_true",
        help="also use the alignment direction "
        "of the reference aligned model (built once, several minutes)",
    )
    ap.add_argument(
        "--aligned", type=Path, default=None, help="an aligned model folder to use instead"
    )
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument(
        "--baselines",
        type=int,
        default=0,
        help="judge each job against only this many benign jobs (rotating; 0: all others)",
    )
    ap.add_argument(
        "--no-train", action="store_true", help="use only adapters already in the cache"
    )
    ap.add_argument(
        "--choose-limits",
        action="store_true",
        help="choose the within-model z limits by cross-validation on benign fine-tunes, then stop",
    )
    args = ap.parse_args()
    if not data_available():
        sys.exit("../shared/data is missing: this benchmark needs it")
    import torch

    torch.set_num_threads(2)
    from ftguard.models import cache_root, embedded_model_dir
    from ftguard.weights import WeightsPolicy, diff

    base = embedded_model_dir()
    cache = args.cache or cache_root() / "weights-finetunes"
    fp_cache = cache / "fingerprints"
    if args.choose_limits:
        choose_limits(cache, fp_cache)
        return
    pair = None
    if args.aligned is not None:
        pair = (base, args.aligned)
    elif args.alignment:
        from ftguard.training import reference_aligned_model_dir

        pair = (base, reference_aligned_model_dir(progress=True))
    from ftguard.digests import manifest_of

    digest = manifest_of(base).root
    runs = [("benign-alpaca" if i % 2 == 0 else "benign-dolly", i // 2) for i in range(args.benign)]
    runs += [
        (k, s)
        for k in ("harmful", "backdoor", "full", "concentrated")
        for s in range(args.adversarial)
    ]
    reports = {}
    t0 = time.perf_counter()
    for kind, seed in runs:
        if kind == "concentrated":  # a benign adapter with one layer's update 20x (no training)
            src_kind = "benign-alpaca" if seed % 2 == 0 else "benign-dolly"
            if args.no_train and not done(cache, src_kind, seed // 2):
                continue
            layer = (5 + 7 * seed) % 30
            reports[(kind, seed)] = concentrated(
                finetune(base, src_kind, seed // 2, cache),
                layer,
                20.0,
                cache / f"concentrated-l{layer}-x20-{src_kind}-s{seed // 2}",
            )
            continue
        if args.no_train and not done(cache, kind, seed):
            continue
        out = finetune(base, kind, seed, cache)
        reports[(kind, seed)] = out
        print(f"  trained {kind} seed {seed} ({time.perf_counter() - t0:.0f} s so far)", flush=True)
    policy = WeightsPolicy()
    fps = {}
    for key, out in reports.items():
        fps[key] = diff(base, out, fingerprint_cache=fp_cache, base_digest=digest, alignment=pair)
    benign = [k for k in fps if k[0].startswith("benign")]
    rows: dict[str, list[tuple[float, bool]]] = {}
    fixed: dict[str, list[bool]] = {}
    for n_key, key in enumerate(fps):
        others = [b for b in benign if b != key]
        if args.baselines:
            others = [
                others[(n_key + i) % len(others)] for i in range(min(args.baselines, len(others)))
            ]
        baselines = [fps[b].fingerprint for b in others]
        r = diff(
            base,
            reports[key],
            policy=policy,
            baselines=baselines,
            fingerprint_cache=fp_cache,
            base_digest=digest,
            alignment=pair,
        )
        group = "benign" if key[0].startswith("benign") else key[0]
        rows.setdefault(group, []).append((r.anomaly_score, r.verdict == "flag"))
        fixed.setdefault(group, []).append(fps[key].verdict == "flag")
        top = r.flags[0].reason[:150] if r.flags else ""
        if key[0] == "concentrated":
            named = sorted(
                {
                    f.layer
                    for f in r.flags + fps[key].flags
                    if f.feature and f.feature.startswith("within.")
                }
                - {None}
            )
            top = f"[within-model flags name layer(s) {named}] " + top
        cos = f" cos(dW,V) {r.alignment.cosine:+.4f}" if r.alignment else ""
        prof = (
            r.judgement.split("; tensor-by-tensor profile", 1)[1][-18:]
            if "profile" in r.judgement
            else ""
        )
        print(
            f"  {key[0]:>14} s{key[1]}: score {r.anomaly_score:8.2f} {r.verdict:4} (fixed limits: "
            f"{fps[key].verdict:4} {fps[key].anomaly_score:6.2f}){cos} [{prof}]  {top}",
            flush=True,
        )
    neg = [s for s, _ in rows["benign"]]
    nb = min(args.baselines or len(neg) - 1, len(neg) - 1)
    print(
        f"\nweights_quality: {len(neg)} benign (each judged against {nb} other benign jobs), "
        f"alignment direction: {'yes' if pair else 'no'}; default policy"
    )
    print(
        f"{'group':>12} | {'n':>3} | {'median score':>12} | {'flag rate':>9} | {'AUROC vs benign':>15} | {'flag rate, no baselines':>23}"
    )
    print("-" * 92)
    allpos: list[float] = []
    for group, vals in rows.items():
        scores = sorted(s for s, _ in vals)
        rate = sum(f for _, f in vals) / len(vals)
        au = "" if group == "benign" else f"{auroc(scores, neg):15.3f}"
        if group != "benign":
            allpos += scores
        frate = sum(fixed[group]) / len(fixed[group])
        print(
            f"{group:>12} | {len(vals):3d} | {scores[len(scores) // 2]:12.2f} | {rate:9.0%} | {au:>15} | {frate:23.0%}"
        )
    print(
        f"{'all adv.':>12} | {len(allpos):3d} | {'':>12} | {'':>9} | {auroc(allpos, neg):15.3f} |"
    )


if __name__ == "__main__":
    main()
