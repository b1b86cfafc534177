"""Detection quality of the weight report on real short fine-tunes of the embedded model.

Trains (once per cache folder) benign LoRA adapters on Alpaca and Dolly subsets and adversarial
ones: harmful compliance (AdvBench goal -> target), a trigger backdoor (BackdoorLLM badnet
mixed with clean Alpaca) and full fine-tunes of two layers, each over several seeds / data
subsets from ``../shared/data``. Every benign adapter is scored leave-one-out against the other
benign ones as baselines; every adversarial one against all benign ones. Prints the AUROC of
the anomaly score (adversarial vs benign) and the flag rates at the default policy, with and
without the alignment direction (the reference aligned model) when ``--alignment`` is given.

Run: ``.venv/bin/python benchmarks/weights_quality.py [--benign 8] [--adversarial 3] [--alignment]``
(about 1-2 min of CPU per fine-tune the first time; the cache makes reruns fast).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--benign", type=int, default=8, help="benign adapters (half Alpaca, half Dolly)")
    ap.add_argument("--adversarial", type=int, default=3, help="seeds per adversarial kind")
    ap.add_argument("--alignment", action="store_true", help="also use the alignment direction "
                    "of the reference aligned model (built once, several minutes)")
    ap.add_argument("--aligned", type=Path, default=None, help="an aligned model folder to use instead")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--baselines", type=int, default=0,
                    help="judge each job against only this many benign jobs (rotating; 0: all others)")
    ap.add_argument("--no-train", action="store_true", help="use only adapters already in the cache")
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
    pair = None
    if args.aligned is not None:
        pair = (base, args.aligned)
    elif args.alignment:
        from ftguard.models import reference_aligned_model_dir

        pair = (base, reference_aligned_model_dir(progress=True))
    from ftguard.digests import manifest_of

    digest = manifest_of(base).root
    runs = [("benign-alpaca" if i % 2 == 0 else "benign-dolly", i // 2) for i in range(args.benign)]
    runs += [(k, s) for k in ("harmful", "backdoor", "full") for s in range(args.adversarial)]
    reports = {}
    t0 = time.perf_counter()
    for kind, seed in runs:
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
            others = [others[(n_key + i) % len(others)] for i in range(min(args.baselines, len(others)))]
        baselines = [fps[b].fingerprint for b in others]
        r = diff(base, reports[key], policy=policy, baselines=baselines, fingerprint_cache=fp_cache,
                 base_digest=digest, alignment=pair)  # fmt: skip
        group = "benign" if key[0].startswith("benign") else key[0]
        rows.setdefault(group, []).append((r.anomaly_score, r.verdict == "flag"))
        fixed.setdefault(group, []).append(fps[key].verdict == "flag")
        top = r.flags[0].reason[:150] if r.flags else ""
        cos = f" cos(dW,V) {r.alignment.cosine:+.4f}" if r.alignment else ""
        prof = r.judgement.split("; tensor-by-tensor profile", 1)[1][-18:] if "profile" in r.judgement else ""
        print(f"  {key[0]:>14} s{key[1]}: score {r.anomaly_score:8.2f} {r.verdict:4} (fixed limits: "
              f"{fps[key].verdict:4} {fps[key].anomaly_score:6.2f}){cos} [{prof}]  {top}", flush=True)  # fmt: skip
    neg = [s for s, _ in rows["benign"]]
    nb = min(args.baselines or len(neg) - 1, len(neg) - 1)
    print(f"\nweights_quality: {len(neg)} benign (each judged against {nb} other benign jobs), "
          f"alignment direction: {'yes' if pair else 'no'}; default policy")  # fmt: skip
    print(f"{'group':>10} | {'n':>3} | {'median score':>12} | {'flag rate':>9} | {'AUROC vs benign':>15} | {'flag rate, no baselines':>23}")  # fmt: skip
    print("-" * 90)
    allpos: list[float] = []
    for group, vals in rows.items():
        scores = sorted(s for s, _ in vals)
        rate = sum(f for _, f in vals) / len(vals)
        au = "" if group == "benign" else f"{auroc(scores, neg):15.3f}"
        if group != "benign":
            allpos += scores
        frate = sum(fixed[group]) / len(fixed[group])
        print(f"{group:>10} | {len(vals):3d} | {scores[len(scores) // 2]:12.2f} | {rate:9.0%} | {au:>15} | {frate:23.0%}")  # fmt: skip
    print(f"{'all adv.':>10} | {len(allpos):3d} | {'':>12} | {'':>9} | {auroc(allpos, neg):15.3f} |")


if __name__ == "__main__":
    main()
