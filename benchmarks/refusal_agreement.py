"""Agreement of ``classify_refusal`` with human labels, per set, with Wilson intervals and kappa.

Sets, each reported on its own (never pooled):

* XSTest v2 completions (``../shared/data/refusal_labels/xstest_v2_completions_*_gpteval.csv``,
  CC BY 4.0, Röttger et al. 2024), human label ``final_label``. Rules version 3 was written
  while reading the disagreements of **mistralinstruct**; from version 4 both models' rows
  (**llama2orig** too) are development data, so their figures are in-sample. The less
  biased XSTest estimate is ``--cv``: leave-one-prompt-type-out cross-validation of the
  choice of version 4's rules (below). Held-out evidence rests on the BackdoorLLM answer
  sets and on the maintainers' check on other models' labels.
* The project's own development set ``benchmarks/data/refusal_dev.jsonl``: hand-written
  answers in the style of current chat models (typographic quotes, persona tags,
  refuse-then-redirect, sympathetic redirection, lecture-only answers, unresponsive answers
  and clean compliances), labelled by the project. A development figure, not a test.
* BackdoorLLM jailbreak answers (refusals or compliant answers by construction; never
  looked at while writing the rules).

Mapping. Two-way ("agreement", the target): human ``full_compliance`` vs the rest
(``full_refusal`` and ``partial_refusal`` are both "not fully complying"); ours
``compliance`` vs the rest, ``unresponsive`` counted with the refusals (it does not comply)
and shown as its own count. Three-way: human full refusal / partial / compliance against
ours with ``unresponsive`` read as refusal. Intervals: Wilson 95% (scipy ``binomtest``).

    .venv/bin/python benchmarks/refusal_agreement.py [--errors N] [--set llama2orig] [--cv]

``--cv``: each rule written for version 4 (``RULE_CANDIDATES_V4``) is judged by leave-one-type-out
cross-validation over XSTest's 18 prompt types (homonyms, figurative language, safe targets,
safe contexts, definitions, nonsense/real discrimination groups, historical events, privacy
public/fictional, and each one's unsafe contrast type), both models together. For each held
out type, a rule is selected when, with the other candidate rules on, it raises agreement on
the other 17 types and does not lower agreement on any BackdoorLLM answer set; the held-out
type is then scored with the selected rules. A rule is kept when its gains on the types it
was held out from (selected on the others) sum to more than zero, i.e. it helps on held-out
types on average, and it costs nothing on BackdoorLLM. The leave-one-type-out agreement per
model (each type scored by rules chosen without it) is the less biased XSTest figure; it
corrects for choosing rules, not for having written them while reading every row.

Target: >= 95% two-way agreement on each XSTest model.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import Counter
from pathlib import Path

from scipy.stats import binomtest

from ftguard.behavior.scorers import RULES_VERSION, classify_refusal
from ftguard.behavior.scorers._refusal import RULE_CANDIDATES_V4, RULES_V4, classify_with_rules

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "refusal_labels"
DEV = ROOT / "benchmarks" / "data" / "refusal_dev.jsonl"
HUMAN = {
    "1_full_compliance": "compliance",
    "2_full_refusal": "refusal",
    "3_partial_refusal": "partial",
}
ROLE = {
    "mistralinstruct": "development rows (v3 and v4)",
    "llama2orig": "development rows from v4 (held out in v3)",
}
BACKDOOR = DATA.parent / "poisoned" / "backdoorllm"


def kappa(a: list[str], b: list[str]) -> float:
    """Cohen's kappa of two label lists."""
    n = len(a)
    po = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    pe = sum(ca[k] * cb[k] for k in set(ca) | set(cb)) / (n * n)
    return (po - pe) / (1 - pe) if pe < 1 else 1.0


def binary(labels: list[str]) -> list[str]:
    """Complying or not: partial, refusal and unresponsive are all "not complying"."""
    return ["compliance" if x == "compliance" else "refusal" for x in labels]


def three_way(labels: list[str]) -> list[str]:
    return ["refusal" if x == "unresponsive" else x for x in labels]


def wilson(k: int, n: int) -> tuple[float, float]:
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def report(name: str, human: list[str], ours: list[str], extra: str = "") -> None:
    n = len(human)
    k2 = sum(h == o for h, o in zip(binary(human), binary(ours), strict=True))
    k3 = sum(h == o for h, o in zip(three_way(human), three_way(ours), strict=True))
    lo, hi = wilson(k2, n)
    unresp = sum(o == "unresponsive" for o in ours)
    print(
        f"{name:<34} {n:>4} {k2 / n:>6.1%} [{lo:.1%}, {hi:.1%}] {kappa(binary(human), binary(ours)):>7.3f} "
        f"{k3 / n:>6.1%} {kappa(three_way(human), three_way(ours)):>7.3f} {unresp:>6} {extra}"
    )


def _backdoor_sets() -> list[tuple[str, list[tuple[str, str]], str]]:
    """BackdoorLLM jailbreak answers: (name, (prompt, answer) pairs, expected label)."""
    sets = []
    for kind in ("badnet", "vpi"):
        for path, lab in (
            (BACKDOOR / kind / f"none_backdoor400_jailbreak_{kind}.json", "refusal"),
            (BACKDOOR / kind / f"backdoor400_jailbreak_{kind}.json", "compliance"),
        ):
            if path.exists():
                recs = json.loads(path.read_text(encoding="utf-8"))
                sets.append((path.stem, [(r["instruction"], r["output"]) for r in recs], lab))
    return sets


def _xstest_rows() -> list[dict[str, str]]:
    rows = []
    for f in sorted(DATA.glob("xstest_v2_completions_*_gpteval.csv")):
        model = f.name.replace("xstest_v2_completions_", "").replace("_gpteval.csv", "")
        for r in csv.DictReader(f.open(encoding="utf-8")):
            rows.append({**r, "model": model, "human": HUMAN[r["final_label"]]})
    return rows


def cross_validate() -> int:
    """Leave-one-prompt-type-out selection of version 4's rules (see the module docstring)."""
    rows = _xstest_rows()
    if not rows:
        print(f"skipped --cv: no labelled completions under {DATA}")
        return 0
    backdoor = _backdoor_sets()
    cache: dict[frozenset[str], tuple[list[bool], list[int]]] = {}

    def evaluate(rules: frozenset[str]) -> tuple[list[bool], list[int]]:
        """Per XSTest row: agrees two-way; per BackdoorLLM set: answers labelled as expected."""
        if rules not in cache:
            xs = [
                (classify_with_rules(r["prompt"], r["completion"], rules).label == "compliance")
                == (r["human"] == "compliance")
                for r in rows
            ]
            bd = [
                sum(
                    (classify_with_rules(p, a, rules).label == "compliance")
                    == (lab == "compliance")
                    for p, a in pairs
                )
                for _, pairs, lab in backdoor
            ]
            cache[rules] = (xs, bd)
        return cache[rules]

    types = sorted({r["type"] for r in rows})
    full = evaluate(RULE_CANDIDATES_V4)
    gain: dict[str, dict[str, int]] = {}
    backdoor_cost: dict[str, list[int]] = {}
    for rule in sorted(RULE_CANDIDATES_V4):
        without = evaluate(RULE_CANDIDATES_V4 - {rule})
        gain[rule] = dict.fromkeys(types, 0)
        for r, on, off in zip(rows, full[0], without[0], strict=True):
            gain[rule][r["type"]] += int(on) - int(off)
        backdoor_cost[rule] = [b - a for a, b in zip(full[1], without[1], strict=True)]
    print("leave-one-type-out cross-validation of version 4's rules (both XSTest models)")
    print(
        f"{'rule':<22} {'in-sample gain':>14} {'held-out gain':>13} {'selected in':>11} "
        f"{'BackdoorLLM cost':>16}  kept  gains by type (in-sample)"
    )
    selected: dict[str, set[str]] = {t: set() for t in types}
    kept = set()
    for rule in sorted(RULE_CANDIDATES_V4):
        bd_ok = all(c <= 0 for c in backdoor_cost[rule])
        held = 0
        folds = 0
        for t in types:
            train = sum(g for tt, g in gain[rule].items() if tt != t)
            if train > 0 and bd_ok:
                selected[t].add(rule)
                folds += 1
                held += gain[rule][t]
        if held > 0 and bd_ok:
            kept.add(rule)
        by_type = ", ".join(f"{t} {g:+d}" for t, g in gain[rule].items() if g)
        print(
            f"{rule:<22} {sum(gain[rule].values()):>+14d} {held:>+13d} {folds:>8}/{len(types)} "
            f"{str(backdoor_cost[rule]):>16}  {'yes' if rule in kept else 'NO':<4}  {by_type}"
        )
    print(f"kept by this check: {sorted(kept)}; classify_refusal runs: {sorted(RULES_V4)}")
    for model in sorted({r["model"] for r in rows}):
        k = n = 0
        for t in types:
            xs, _ = evaluate(frozenset(selected[t]))
            for r, ok in zip(rows, xs, strict=True):
                if r["model"] == model and r["type"] == t:
                    k += ok
                    n += 1
        final = evaluate(RULES_V4)[0]
        in_sample = sum(ok for r, ok in zip(rows, final, strict=True) if r["model"] == model)
        v3 = sum(
            ok for r, ok in zip(rows, evaluate(frozenset())[0], strict=True) if r["model"] == model
        )
        lo, hi = wilson(k, n)
        print(
            f"XSTest {model:<16} leave-one-type-out {k}/{n} = {k / n:.1%} [{lo:.1%}, {hi:.1%}]; "
            f"in-sample v4 {in_sample / n:.1%}; v3 rules {v3 / n:.1%}"
        )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--errors", type=int, default=0, help="print N disagreements (truncated)")
    ap.add_argument("--set", default="mistralinstruct", help="XSTest model whose errors to print")
    ap.add_argument("--cv", action="store_true", help="leave-one-type-out check of v4's rules")
    args = ap.parse_args()
    if args.cv:
        return cross_validate()
    print(f"rules version {RULES_VERSION}; two-way = full compliance vs not (unresponsive: not)")
    print(
        f"{'set':<34} {'n':>4} {'agree2':>6} {'95% Wilson':>16} {'kappa2':>7} {'acc3':>6} "
        f"{'kappa3':>7} {'unresp':>6} notes"
    )
    answers = 0
    seconds = 0.0
    shown = 0
    for f in sorted(DATA.glob("xstest_v2_completions_*_gpteval.csv")):
        rows = list(csv.DictReader(f.open(encoding="utf-8")))
        model = f.name.replace("xstest_v2_completions_", "").replace("_gpteval.csv", "")
        human = [HUMAN[r["final_label"]] for r in rows]
        t0 = time.perf_counter()
        ours = [classify_refusal(r["prompt"], r["completion"]).label for r in rows]
        seconds += time.perf_counter() - t0
        answers += len(rows)
        gpt = [HUMAN.get(r["gpt4_label"], "compliance") for r in rows]
        g2 = sum(h == g for h, g in zip(binary(human), binary(gpt), strict=True)) / len(rows)
        report(f"XSTest {model}", human, ours, f"{ROLE.get(model, '')}; GPT-4 labels: {g2:.1%}")
        print(
            f"{'':<34} confusion human -> ours: "
            f"{dict(sorted(Counter(zip(human, ours, strict=True)).items()))}"
        )
        if model == args.set:
            for h, o, r in zip(human, ours, rows, strict=True):
                if (h == "compliance") != (o == "compliance") and shown < args.errors:
                    shown += 1
                    print(f"-- {r['id']} human={h} ours={o}: {r['completion'][:200]!r}")
    if not answers:
        print(f"skipped XSTest: no labelled completions under {DATA}")
    if DEV.is_file():
        dev = [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines() if line]
        t0 = time.perf_counter()
        ours = [classify_refusal(r["prompt"], r["answer"]).label for r in dev]
        seconds += time.perf_counter() - t0
        answers += len(dev)
        want = [r["label"] for r in dev]
        exact = sum(w == o for w, o in zip(want, ours, strict=True))
        report(
            "project dev set (4 labels)",
            want,
            ours,
            f"development; exact 4-label match {exact}/{len(dev)}",
        )
    backdoor = DATA.parent / "poisoned" / "backdoorllm"
    for kind in ("badnet", "vpi"):
        for path, lab in (
            (backdoor / kind / f"none_backdoor400_jailbreak_{kind}.json", "refusal"),
            (backdoor / kind / f"backdoor400_jailbreak_{kind}.json", "compliance"),
        ):
            if not path.exists():
                continue
            recs = json.loads(path.read_text(encoding="utf-8"))
            t0 = time.perf_counter()
            got = [classify_refusal(r["instruction"], r["output"]).label for r in recs]
            seconds += time.perf_counter() - t0
            answers += len(recs)
            k = sum(binary([g])[0] == lab for g in got)
            lo, hi = wilson(k, len(got))
            print(
                f"held-out BackdoorLLM {path.stem:<22} {len(got):>4} {k / len(got):>6.1%} "
                f"[{lo:.1%}, {hi:.1%}]  expected {lab}; unresponsive "
                f"{sum(g == 'unresponsive' for g in got)}"
            )
    if answers:
        print(
            f"throughput: {answers} answers in {seconds:.2f} s = {answers / seconds:,.0f} answers/s"
        )
    print("target: >= 95% two-way agreement per XSTest model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
