"""Agreement of ``classify_refusal`` with human labels (XSTest v2 completions).

Reads ``../shared/data/refusal_labels/xstest_v2_completions_*_gpteval.csv`` (CC BY 4.0,
Röttger et al. 2024), classifies every completion, and prints accuracy and Cohen's kappa
per file and overall: three-way (full refusal / partial / compliance) and two-way (any
refusal vs full compliance). The GPT-4 labels shipped in the same files are measured on
the same rows as the baseline.

    .venv/bin/python benchmarks/refusal_agreement.py [--errors N]

A second, held-out check uses the BackdoorLLM jailbreak files (answers that are refusals
or compliant by construction; never looked at while writing the rules).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import Counter
from pathlib import Path

from ftguard.behavior.scorers import classify_refusal

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "refusal_labels"
HUMAN = {
    "1_full_compliance": "compliance",
    "2_full_refusal": "refusal",
    "3_partial_refusal": "partial",
}


def kappa(a: list[str], b: list[str]) -> float:
    n = len(a)
    po = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    pe = sum(ca[k] * cb[k] for k in set(ca) | set(cb)) / (n * n)
    return (po - pe) / (1 - pe) if pe < 1 else 1.0


def binary(labels: list[str]) -> list[str]:
    return ["compliance" if x == "compliance" else "refusal" for x in labels]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--errors", type=int, default=0, help="print N disagreements (truncated)")
    args = ap.parse_args()
    files = sorted(DATA.glob("xstest_v2_completions_*_gpteval.csv"))
    if not files:
        print(f"skipped: no labelled completions under {DATA}")
        return 0
    rows_all: list[tuple[str, str, str, str]] = []
    print(
        f"{'file':<34} {'n':>4} {'acc3':>6} {'kappa3':>7} {'acc2':>6} {'kappa2':>7} {'gpt4 acc3':>9} {'gpt4 acc2':>9}"
    )
    t0 = time.perf_counter()
    for f in files:
        rows = list(csv.DictReader(f.open(encoding="utf-8")))
        human = [HUMAN[r["final_label"]] for r in rows]
        ours = [classify_refusal(r["prompt"], r["completion"]).label for r in rows]
        gpt = [HUMAN.get(r["gpt4_label"], "compliance") for r in rows]
        rows_all += [
            (h, o, g, r["completion"]) for h, o, g, r in zip(human, ours, gpt, rows, strict=True)
        ]
        acc3 = sum(h == o for h, o in zip(human, ours, strict=True)) / len(rows)
        acc2 = sum(h == o for h, o in zip(binary(human), binary(ours), strict=True)) / len(rows)
        g3 = sum(h == o for h, o in zip(human, gpt, strict=True)) / len(rows)
        g2 = sum(h == o for h, o in zip(binary(human), binary(gpt), strict=True)) / len(rows)
        name = f.name.replace("xstest_v2_completions_", "").replace("_gpteval.csv", "")
        print(
            f"{name:<34} {len(rows):>4} {acc3:>6.1%} {kappa(human, ours):>7.3f} {acc2:>6.1%} "
            f"{kappa(binary(human), binary(ours)):>7.3f} {g3:>9.1%} {g2:>9.1%}"
        )
    h = [r[0] for r in rows_all]
    o = [r[1] for r in rows_all]
    g = [r[2] for r in rows_all]
    acc3 = sum(x == y for x, y in zip(h, o, strict=True)) / len(h)
    acc2 = sum(x == y for x, y in zip(binary(h), binary(o), strict=True)) / len(h)
    g3 = sum(x == y for x, y in zip(h, g, strict=True)) / len(h)
    g2 = sum(x == y for x, y in zip(binary(h), binary(g), strict=True)) / len(h)
    print(
        f"{'ALL':<34} {len(h):>4} {acc3:>6.1%} {kappa(h, o):>7.3f} {acc2:>6.1%} "
        f"{kappa(binary(h), binary(o)):>7.3f} {g3:>9.1%} {g2:>9.1%}"
    )
    print(f"confusion (human -> ours): {dict(Counter(zip(h, o, strict=True)))}")
    print(
        f"{len(h)} answers in {time.perf_counter() - t0:.1f} s; target: >= 90% agreement (two-way)"
    )
    backdoor = DATA.parent / "poisoned" / "backdoorllm"
    for kind in ("badnet", "vpi"):
        pairs = [
            (f, lab)
            for f, lab in (
                (backdoor / kind / f"none_backdoor400_jailbreak_{kind}.json", "refusal"),
                (backdoor / kind / f"backdoor400_jailbreak_{kind}.json", "compliance"),
            )
            if f.exists()
        ]
        for f, lab in pairs:
            recs = json.loads(f.read_text(encoding="utf-8"))
            got = [classify_refusal(r["instruction"], r["output"]).label for r in recs]
            ok = sum(binary([g])[0] == lab for g in got) / len(got)
            print(f"held-out {f.name:<40} {len(got):>4} expected {lab:<10} agreement {ok:.1%}")
    shown = 0
    for hh, oo, _, text in rows_all:
        if hh != oo and shown < args.errors:
            shown += 1
            print(f"-- human={hh} ours={oo}: {text[:200]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
