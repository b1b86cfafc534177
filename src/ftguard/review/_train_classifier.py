"""Reproduce the harmful-request classifier shipped in ``scanners/harmful_request.npz``.

Run ``python -m ftguard.review._train_classifier [DATA_DIR]`` (default ``<repo>/../shared/data``).
It embeds requests with the embedded MiniLM model, adds hashed word uni/bigrams, and fits a
class-balanced logistic regression with the project's own code (numpy + scipy L-BFGS). Sources (all cited in ``docs/review.md``):

* harmful (label 1): HarmBench standard + contextual behaviours, StrongREJECT prompts
  except those it took from AdvBench, MaliciousInstruct, XSTest ``unsafe`` prompts, and the
  project's own generated harmful requests (``_training_data.generated_harmful``);
* benign (label 0): Alpaca harmless-val instructions minus every instruction that is also
  in the evaluation sets (alpaca_safety_only, BackdoorLLM), XSTest ``safe`` prompts
  (hard negatives: "How do I kill a Python process?"), MT-Bench questions, self-instruct seeds,
  the *training half* of alpaca_safety_only and dolly_safety_only (instructions whose
  CRC-32 is even; see :func:`is_held_out`), and the project's generated safety-topic
  requests (``_training_data.generated_benign``).

The threshold is the 99th percentile of the out-of-fold scores (5-fold cross-validation,
generated requests grouped by goal) of the training negatives, or of the training halves of
alpaca_safety_only and Dolly alone when that is higher: no evaluation set sets it.

AdvBench, BackdoorLLM and the held-out (odd) halves of alpaca_safety_only and Dolly are never
trained on: they are the evaluation sets of ``benchmarks/review_quality.py``.
"""

from __future__ import annotations

import csv
import json
import sys
import zlib
from pathlib import Path

import numpy as np

from ftguard.review._training_data import generated_benign, generated_harmful, goal_of

OUT = Path(__file__).resolve().parent / "scanners" / "harmful_request.npz"
DEFAULT_DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
FOLDS = 5
L2 = 1.0
"""L2 penalty of the logistic regression."""


def is_held_out(instruction: str) -> bool:
    """Whether a benign Alpaca/Dolly instruction is in the evaluation half (not trained on)."""
    return zlib.crc32(instruction.strip().encode("utf-8")) % 2 == 1


def benign_train_half(data: Path) -> list[str]:
    """The training half of alpaca_safety_only and dolly_safety_only (requests as the loader builds them)."""
    out = []
    for r in json.loads((data / "benign/alpaca_safety_only.json").read_text()):
        if not is_held_out(r["instruction"]):
            out.append(r["instruction"] + (f"\n\n{r['input']}" if r.get("input") else ""))
    for line in (data / "benign/dolly_safety_only.jsonl").read_text().splitlines():
        r = json.loads(line)
        if not is_held_out(r["instruction"]):
            out.append(r["instruction"] + (f"\n\n{r['context']}" if r.get("context") else ""))
    return out


def training_texts(data: Path) -> tuple[list[str], list[int]]:
    """The training requests and labels, from the sources named in the module docs."""
    harmful: list[str] = []
    benign: list[str] = []
    with (data / "harmful_prompts/harmbench_behaviors_text_all.csv").open(encoding="utf-8") as fh:
        harmful += [
            r["Behavior"] for r in csv.DictReader(fh) if r["FunctionalCategory"] != "copyright"
        ]
    with (data / "harmful_prompts/strongreject_dataset.csv").open(encoding="utf-8") as fh:
        harmful += [r["forbidden_prompt"] for r in csv.DictReader(fh) if r["source"] != "AdvBench"]
    harmful += [
        ln.strip()
        for ln in (data / "harmful_prompts/malicious_instruct.txt").read_text().splitlines()
        if ln.strip()
    ]
    with (data / "harmful_prompts/advbench_harmful_behaviors.csv").open(encoding="utf-8") as fh:
        advbench = {" ".join(r["goal"].lower().split()) for r in csv.DictReader(fh)}
    harmful += [t for t in generated_harmful() if " ".join(t.lower().split()) not in advbench]
    with (data / "over_refusal/xstest_prompts.csv").open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            (harmful if r["label"] == "unsafe" else benign).append(r["prompt"])
    held_out: set[str] = set()
    held_out |= {
        r["instruction"] for r in json.loads((data / "benign/alpaca_safety_only.json").read_text())
    }
    for p in (data / "poisoned/backdoorllm").rglob("*.json"):
        held_out |= {r["instruction"] for r in json.loads(p.read_text())}
    benign += [
        r["instruction"]
        for r in json.loads((data / "benign/alpaca_instructions_harmless_val.json").read_text())
        if r["instruction"] not in held_out
    ]
    benign += benign_train_half(data)
    for line in (data / "benign/mt_bench_questions.jsonl").read_text().splitlines():
        benign.append(json.loads(line)["turns"][0])
    for line in (data / "benign/self_instruct_seed_tasks.jsonl").read_text().splitlines():
        benign.append(json.loads(line)["instruction"])
    for line in (data / "benign/dolly_safety_only.jsonl").read_text().splitlines():
        held_out.add(json.loads(line)["instruction"])
    norm = {" ".join(t.lower().split()) for t in held_out}
    benign += [t for t in generated_benign() if " ".join(t.lower().split()) not in norm]
    return harmful + benign, [1] * len(harmful) + [0] * len(benign)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> tuple[np.ndarray, float]:
    """Class-balanced, L2-regularised logistic regression (L-BFGS on the exact loss)."""
    from scipy.optimize import minimize

    pos = float(y.mean())
    sw = np.where(y == 1, 0.5 / pos, 0.5 / (1 - pos))

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:-1], theta[-1]
        z = x @ w + b
        p = 1.0 / (1.0 + np.exp(-z))
        ll = np.logaddexp(0.0, -z) * y + np.logaddexp(0.0, z) * (1 - y)
        f = float((sw * ll).sum() + 0.5 * l2 * (w @ w))
        g = sw * (p - y)
        return f, np.concatenate([x.T @ g + l2 * w, [g.sum()]])

    res = minimize(
        loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B", options={"maxiter": 2000}
    )
    return res.x[:-1], float(res.x[-1])


def features(texts: list[str], emb: np.ndarray) -> np.ndarray:
    """Classifier features: the MiniLM embedding and hashed word uni/bigrams."""
    from ftguard.review.scanners.harmful_compliance import bag_of_words

    return np.hstack([emb.astype(np.float64), bag_of_words(texts).astype(np.float64)])


def folds(texts: list[str], k: int = FOLDS) -> np.ndarray:
    """Cross-validation folds; generated requests of one goal share a fold (no goal leaks)."""
    return np.array([zlib.crc32(goal_of(t).encode("utf-8")) % k for t in texts])


def cv_threshold(
    x: np.ndarray, y: np.ndarray, fold: np.ndarray, hard: np.ndarray
) -> tuple[float, float]:
    """Threshold at the 99th percentile of out-of-fold benign scores, and the out-of-fold recall there."""
    oof = np.zeros(len(y))
    for f in range(int(fold.max()) + 1):
        w, b = fit_logistic(x[fold != f], y[fold != f], l2=L2)
        oof[fold == f] = x[fold == f] @ w + b
    neg = np.sort(oof[y == 0])
    hard_neg = np.sort(oof[(y == 0) & hard])
    threshold = max(
        float(neg[int(0.99 * (len(neg) - 1))]), float(hard_neg[int(0.99 * (len(hard_neg) - 1))])
    )
    return threshold, float((oof[y == 1] > threshold).mean())


def main(argv: list[str]) -> None:
    from ftguard.embeddings import embed

    data = Path(argv[0]) if argv else DEFAULT_DATA
    texts, labels = training_texts(data)
    x = features(texts, embed([t[:512] for t in texts]))
    y = np.asarray(labels, dtype=np.float64)
    hard = np.isin(np.array(texts, dtype=object), np.array(benign_train_half(data), dtype=object))
    threshold, recall = cv_threshold(x, y, folds(texts), hard)
    w, b = fit_logistic(x, y, l2=L2)
    np.savez_compressed(
        OUT, w=w.astype(np.float16), b=np.float32(b), threshold=np.float32(threshold)
    )
    print(
        f"trained on {len(y)} requests ({int(y.sum())} harmful); CV threshold {threshold:.3f}, "
        f"CV recall {recall:.3f} at 1% FPR -> {OUT}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
