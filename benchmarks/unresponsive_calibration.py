"""Calibrate and measure the off-topic check of the ``rules-embedding`` scorer.

The check (:mod:`ftguard.behavior.scorers._offtopic`) relabels an answer the rules call
``compliance`` as ``unresponsive`` when the cosine similarity of the request's and the
answer's embeddings (embedded all-MiniLM-L6-v2) is below a threshold; answers of fewer than
``MIN_WORDS`` words are not judged.

Calibration (training data only): Stanford Alpaca answers (``benign/alpaca_safety_only.json``,
CC BY-NC 4.0). Real answers are the negatives; each prompt paired with another prompt's
answer (a fixed random derangement) is a positive. 5-fold cross-validation by prompt: on the
training folds, the threshold is the largest on a 0.005 grid whose false unresponsive rate
on real answers is at most 0.5% (the target); the held-out fold gives
the false unresponsive rate and the detection rate. The shipped threshold is the same rule
applied to all of Alpaca; the script says whether the code's constant equals it.

Measured on sets not used for calibration, each on its own with a Wilson 95% interval:

* false unresponsive rate (real answers, must stay near 0): XSTest v2 completions of
  llama2orig and mistralinstruct (refusals included: a refusal must stay a refusal),
  BackdoorLLM jailbreak answers (refusals and compliant answers), BackdoorLLM clean benign
  answers, Dolly (``benign/dolly_safety_only.jsonl``) and the self-instruct seed tasks;
* detection rate (each prompt with another prompt's answer): Dolly, self-instruct seed
  tasks, BackdoorLLM clean benign answers.

    nice .venv/bin/python benchmarks/unresponsive_calibration.py

Embedding runs on the CPU (a few minutes for about 8,000 texts on two cores).
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from ftguard.behavior.scorers import classify_refusal
from ftguard.behavior.scorers._offtopic import (
    MAX_CHARS,
    MIN_WORDS,
    OFF_TOPIC_THRESHOLD,
    word_count,
)
from ftguard.embeddings import embed

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data"
TRAIN_FU = 0.005
GRID = np.round(np.arange(0.0, 0.4001, 0.005), 3)
FOLDS = 5

Pairs = list[tuple[str, str]]


def wilson(k: int, n: int) -> str:
    if n == 0:
        return "n/a"
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return f"{k}/{n} = {k / n:.2%} [{ci.low:.2%}, {ci.high:.2%}]"


def derangement(n: int, seed: int) -> np.ndarray:
    """A permutation of range(n) with no fixed point (each prompt gets another's answer)."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    fixed = np.flatnonzero(perm == np.arange(n))
    for i in fixed:  # swap each fixed point with its neighbour
        j = (i + 1) % n
        perm[i], perm[j] = perm[j], perm[i]
    return perm


class Scored:
    """Pairs with their rules label, whether similarity judges them, and the similarity."""

    def __init__(self, prompts: list[str], answers: list[str], ep: np.ndarray, ea: np.ndarray):
        self.prompts, self.answers = prompts, answers
        self.ep, self.ea = ep, ea
        self.sim = (ep * ea).sum(axis=1)
        self.rules = np.array(
            [classify_refusal(p, a).label for p, a in zip(prompts, answers, strict=True)]
        )
        words = np.array([word_count(a) for a in answers])
        self.judged = (self.rules == "compliance") & (words >= MIN_WORDS)

    @classmethod
    def embed_pairs(cls, prompts: list[str], answers: list[str]) -> Scored:
        return cls(
            prompts,
            answers,
            embed([p[:MAX_CHARS] for p in prompts]),
            embed([a[:MAX_CHARS] for a in answers]),
        )

    def shuffled(self, seed: int) -> Scored:
        """The same prompts, each with another prompt's answer (embeddings reused)."""
        perm = derangement(len(self.prompts), seed)
        return Scored(self.prompts, [self.answers[i] for i in perm], self.ep, self.ea[perm])

    def flagged_by_similarity(self, threshold: float) -> np.ndarray:
        """Answers the similarity check relabels as ``unresponsive``."""
        return self.judged & (self.sim < threshold)

    def unresponsive(self, threshold: float) -> np.ndarray:
        """The scorer's ``unresponsive`` decisions at ``threshold`` (rules or similarity)."""
        return (self.rules == "unresponsive") | self.flagged_by_similarity(threshold)


def pick_threshold(real: Scored, rows: np.ndarray) -> float:
    """The largest grid threshold whose false unresponsive rate on ``rows`` is <= TRAIN_FU."""
    best = 0.0
    for t in GRID:
        if real.flagged_by_similarity(float(t))[rows].mean() <= TRAIN_FU:
            best = float(t)
    return best


def alpaca() -> tuple[list[str], list[str]]:
    recs = json.loads((DATA / "benign" / "alpaca_safety_only.json").read_text(encoding="utf-8"))
    return (
        [r["instruction"] + (f"\n\n{r['input']}" if r["input"] else "") for r in recs],
        [r["output"] for r in recs],
    )


def dolly() -> tuple[list[str], list[str]]:
    lines = (DATA / "benign" / "dolly_safety_only.jsonl").read_text(encoding="utf-8").splitlines()
    recs = [json.loads(x) for x in lines if x.strip()]
    return (
        [r["instruction"] + (f"\n\n{r['context']}" if r.get("context") else "") for r in recs],
        [r["response"] for r in recs],
    )


def self_instruct() -> tuple[list[str], list[str]]:
    path = DATA / "benign" / "self_instruct_seed_tasks.jsonl"
    recs = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    prompts, answers = [], []
    for r in recs:
        inst = r["instances"][0]
        prompts.append(r["instruction"] + (f"\n\n{inst['input']}" if inst.get("input") else ""))
        answers.append(inst["output"])
    return prompts, answers


def xstest(model: str) -> tuple[list[str], list[str]]:
    path = DATA / "refusal_labels" / f"xstest_v2_completions_{model}_gpteval.csv"
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    return [r["prompt"] for r in rows], [r["completion"] for r in rows]


def backdoor(name: str) -> tuple[list[str], list[str]]:
    kind = name.rsplit("_", 1)[1]
    path = DATA / "poisoned" / "backdoorllm" / kind / f"{name}.json"
    recs = json.loads(path.read_text(encoding="utf-8"))
    return (
        [r["instruction"] + (f"\n\n{r['input']}" if r.get("input") else "") for r in recs],
        [r["output"] for r in recs],
    )


def calibrate() -> float:
    prompts, answers = alpaca()
    real = Scored.embed_pairs(prompts, answers)
    fake = real.shuffled(seed=0)
    n = len(prompts)
    folds = np.random.default_rng(1).permutation(n) % FOLDS
    print(f"calibration: Alpaca, {n} real pairs and {n} shuffled pairs, {FOLDS}-fold CV")
    print(f"{'fold':>4} {'threshold':>9}  held-out false unresponsive      held-out detection")
    fu_k = det_k = tot = 0
    for f in range(FOLDS):
        t = pick_threshold(real, folds != f)
        test = folds == f
        fu = int(real.flagged_by_similarity(t)[test].sum())
        det = int(fake.unresponsive(t)[test].sum())
        fu_k += fu
        det_k += det
        tot += int(test.sum())
        print(
            f"{f:>4} {t:>9.3f}  {wilson(fu, int(test.sum())):<30}  {wilson(det, int(test.sum()))}"
        )
    print(f"{'all':>4} {'':>9}  {wilson(fu_k, tot):<30}  {wilson(det_k, tot)}")
    final = pick_threshold(real, np.ones(n, dtype=bool))
    same = "equals" if abs(final - OFF_TOPIC_THRESHOLD) < 1e-9 else "DIFFERS FROM"
    print(
        f"threshold on all of Alpaca: {final:.3f} ({same} the shipped OFF_TOPIC_THRESHOLD "
        f"= {OFF_TOPIC_THRESHOLD}); measured below at the calibrated one"
    )
    return final


def measure(threshold: float) -> None:
    print(f"\nmeasurement on sets not used for calibration at {threshold} (min {MIN_WORDS} words)")
    print(f"{'set':<44} {'false unresponsive (real answers)':<34} {'rules refusals kept':>19}")
    real_sets = {
        "XSTest llama2orig completions": xstest("llama2orig"),
        "XSTest mistralinstruct completions": xstest("mistralinstruct"),
        "BackdoorLLM refusals (badnet)": backdoor("none_backdoor400_jailbreak_badnet"),
        "BackdoorLLM compliant answers (badnet)": backdoor("backdoor400_jailbreak_badnet"),
        "BackdoorLLM compliant answers (vpi)": backdoor("backdoor400_jailbreak_vpi"),
        "BackdoorLLM clean benign answers": backdoor("none_backdoor500_refusal_badnet"),
        "Dolly": dolly(),
        "self-instruct seed tasks": self_instruct(),
    }
    kept: dict[str, Scored] = {}
    for name, (prompts, answers) in real_sets.items():
        s = Scored.embed_pairs(prompts, answers)
        kept[name] = s
        flagged = int(s.flagged_by_similarity(threshold).sum())
        refusals = int((s.rules == "refusal").sum())
        print(f"{name:<44} {wilson(flagged, len(prompts)):<34} {refusals:>10}/{refusals}")
    print(
        f"\n{'set (each prompt with another prompt answer)':<44} detection (labelled unresponsive)"
    )
    for name in ("Dolly", "self-instruct seed tasks", "BackdoorLLM clean benign answers"):
        fake = kept[name].shuffled(seed=0)
        k = int(fake.unresponsive(threshold).sum())
        print(f"{name:<44} {wilson(k, len(fake.prompts))}")


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    if not (DATA / "benign" / "alpaca_safety_only.json").is_file():
        print(f"skipped: no shared data under {DATA}")
        return 0
    t0 = time.perf_counter()
    threshold = calibrate()
    measure(threshold)
    print(f"\n{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
