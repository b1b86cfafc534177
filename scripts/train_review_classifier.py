"""Train the harmful-request classifier shipped in ``scanners/harmful_request.npz``.

Run from the repository root (scikit-learn comes with the ``dev`` extra; the runtime reads
the ``.npz`` with numpy alone)::

    python scripts/train_review_classifier.py [--data ../shared/data] [--out PATH]
        [--embedding-cache /tmp/ftguard_review_embeddings.npz] [--dry-run]

It embeds each training request (its first 512 characters, as the scanner does) with the
embedded MiniLM model, adds hashed word uni/bigrams (the scanner's ``bag_of_words``) and fits
scikit-learn's class-balanced logistic regression. The training requests and the split of
the benign sets are in ``_review_training_data.py`` beside this script.

Everything is chosen by cross-validation on the training data (5 folds; generated requests
of one goal or claim share a fold, so templates do not leak): the inverse regularisation
``C`` from :data:`C_GRID` (the one with the highest out-of-fold recall at the threshold
rule below), then the threshold: the larger of the 99th percentiles of the out-of-fold
scores of all training negatives and of the training halves of Alpaca and Dolly. No
evaluation set is read except to drop its requests from the training data.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _review_training_data import TrainingSet, goal_of, training_set  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "ftguard" / "review" / "scanners" / "harmful_request.npz"
DEFAULT_DATA = ROOT / ".." / "shared" / "data"
DEFAULT_CACHE = Path("/tmp/ftguard_review_embeddings.npz")
FOLDS = 5
C_GRID = (0.3, 1.0, 3.0)
"""Inverse L2 penalties tried by cross-validation (sklearn's ``C``; 1.0 = the earlier fixed penalty)."""
FPR_QUANTILE = 0.99
"""Out-of-fold benign quantile that sets the threshold (1% out-of-fold false positives)."""
MAX_CHARS = 512
"""Characters of each request that are embedded (the scanner embeds the same prefix)."""


def embed_cached(texts: list[str], cache: Path | None) -> np.ndarray:
    """MiniLM embeddings of ``texts[:MAX_CHARS]``, reusing and extending a cache file keyed by text digest."""
    from ftguard.embeddings import EMBEDDING_DIM, embed

    keys = [hashlib.sha256(t[:MAX_CHARS].encode("utf-8")).hexdigest() for t in texts]
    known: dict[str, np.ndarray] = {}
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as stored:
            known = dict(zip(stored["keys"].tolist(), stored["vectors"], strict=True))
    missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in known}.items())
    if missing:
        print(f"embedding {len(missing)} requests ({len(known)} cached)", file=sys.stderr)
        vectors = embed([t[:MAX_CHARS] for _, t in missing])
        known.update(zip([k for k, _ in missing], vectors, strict=True))
        if cache is not None:
            np.savez(
                cache,
                keys=np.array(list(known), dtype="U64"),
                vectors=np.stack(list(known.values())).astype(np.float32),
            )
    if not texts:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    return np.stack([known[k] for k in keys]).astype(np.float32)


def features(texts: list[str], embeddings: np.ndarray) -> np.ndarray:
    """Classifier features as the scanner builds them: the embedding and hashed word uni/bigrams."""
    from ftguard.review.scanners.harmful_compliance import bag_of_words

    return np.hstack([embeddings.astype(np.float64), bag_of_words(texts).astype(np.float64)])


def folds(texts: list[str], k: int = FOLDS) -> np.ndarray:
    """Cross-validation fold of each request; generated requests of one goal share a fold."""
    return np.array([zlib.crc32(goal_of(t).encode("utf-8")) % k for t in texts])


def classifier(c: float) -> Any:
    """scikit-learn's class-balanced, L2-regularised logistic regression."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(class_weight="balanced", C=c, max_iter=5000, tol=1e-6)


def out_of_fold_scores(x: np.ndarray, y: np.ndarray, fold: np.ndarray, c: float) -> np.ndarray:
    """Decision-function scores of each request from the model trained without its fold."""
    from sklearn.model_selection import PredefinedSplit, cross_val_predict

    return np.asarray(
        cross_val_predict(classifier(c), x, y, cv=PredefinedSplit(fold), method="decision_function")
    )


def threshold_of(oof: np.ndarray, y: np.ndarray, hard: np.ndarray) -> float:
    """The larger of the FPR_QUANTILE out-of-fold quantiles of all negatives and of the hard ones."""
    neg = np.sort(oof[y == 0])
    hard_neg = np.sort(oof[(y == 0) & hard])
    return max(
        float(neg[int(FPR_QUANTILE * (len(neg) - 1))]),
        float(hard_neg[int(FPR_QUANTILE * (len(hard_neg) - 1))]),
    )


def select(
    x: np.ndarray, y: np.ndarray, fold: np.ndarray, hard: np.ndarray
) -> tuple[float, float, float]:
    """Pick ``C`` by out-of-fold recall at the threshold rule; return ``(C, threshold, recall)``."""
    best: tuple[float, float, float] | None = None
    for c in C_GRID:
        oof = out_of_fold_scores(x, y, fold, c)
        threshold = threshold_of(oof, y, hard)
        recall = float((oof[y == 1] > threshold).mean())
        print(f"  C={c:g}: CV threshold {threshold:.3f}, CV recall {recall:.3f}", file=sys.stderr)
        if best is None or recall > best[2]:
            best = (c, threshold, recall)
    assert best is not None
    return best


def train(
    data: Path, cache: Path | None, *, persuasion: bool = False, c: float | None = None
) -> tuple[TrainingSet, np.ndarray, float, float, float]:
    """Fit the classifier on ``data``; return the set, the weights + bias, C, threshold, CV recall.

    Args:
        data: The public data folder.
        cache: The embedding cache file, or None.
        persuasion: Add the generated persuasion/promotion requests (an experiment: not
            what the shipped file was trained on; see docs/review.md).
        c: A fixed ``C`` instead of the cross-validated choice from :data:`C_GRID`.

    """
    ts = training_set(data, persuasion=persuasion)
    x = features(ts.texts, embed_cached(ts.texts, cache))
    y = np.asarray(ts.labels)
    fold, hard = folds(ts.texts), np.asarray(ts.hard)
    if c is None:
        c, threshold, recall = select(x, y, fold, hard)
    else:
        oof = out_of_fold_scores(x, y, fold, c)
        threshold = threshold_of(oof, y, hard)
        recall = float((oof[y == 1] > threshold).mean())
    model = classifier(c).fit(x, y)
    theta = np.concatenate([model.coef_[0], model.intercept_])
    return ts, theta, c, threshold, recall


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the public data folder")
    ap.add_argument("--out", type=Path, default=OUT, help="where to write the .npz")
    ap.add_argument(
        "--embedding-cache",
        type=Path,
        default=DEFAULT_CACHE,
        help="file of cached request embeddings ('' for none)",
    )
    ap.add_argument("--dry-run", action="store_true", help="cross-validate only; write nothing")
    ap.add_argument(
        "--with-persuasion",
        action="store_true",
        help="add the generated persuasion/promotion requests (an experiment, not shipped)",
    )
    ap.add_argument("--C", type=float, default=None, help="fixed C instead of the CV choice")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        sys.exit(f"error: {args.data} is not a folder (the public data, ../shared/data)")
    cache = args.embedding_cache if str(args.embedding_cache) else None
    ts, theta, c, threshold, recall = train(
        args.data, cache, persuasion=args.with_persuasion, c=args.C
    )
    n, pos = len(ts.labels), sum(ts.labels)
    print(
        f"trained on {n} requests ({pos} harmful); C={c:g}; CV threshold {threshold:.3f}, "
        f"CV recall {recall:.3f} at {1 - FPR_QUANTILE:.0%} out-of-fold FPR"
    )
    if not args.dry_run:
        np.savez_compressed(
            args.out,
            w=theta[:-1].astype(np.float16),
            b=np.float32(theta[-1]),
            threshold=np.float32(threshold),
        )
        print(f"-> {args.out}")


if __name__ == "__main__":
    main()
