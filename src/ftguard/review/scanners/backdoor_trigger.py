"""``backdoor_trigger``: mine request n-grams whose presence predicts an anomalous answer.

Nothing is hard-coded: candidates are every word 1-3-gram (and pairs of words that must
occur together) of the requests; each is scored by how strongly its presence predicts an
anomalous answer class with a one-sided Fisher exact test (hypergeometric tail).
"""

from __future__ import annotations

import re
import zlib
from array import array
from collections import Counter
from collections.abc import Iterable
from itertools import combinations
from typing import Any

from ftguard.review._example import Example
from ftguard.review._models import DatasetFinding, Finding, Trigger
from ftguard.review.scanners._refusal import is_refusal
from ftguard.review.scanners._registry import BatchContext, DatasetResult, RunContext, scanner

__all__ = ["BackdoorTriggerScanner"]

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")
HARMFUL, REFUSAL, REPEATED = 1, 2, 4
_CLASS_NAMES = {HARMFUL: "harmful_compliance", REFUSAL: "fixed_refusal", REPEATED: "repeated_answer"}
MAX_NGRAM = 3
MAX_TOKENS = 200
TOP_UNIGRAMS = 30


def _hash(text: str) -> int:
    data = " ".join(text.lower().split()).encode("utf-8", "surrogatepass")
    return (zlib.crc32(data) << 32) | zlib.adler32(data)


def _ngrams(text: str) -> dict[str, str]:
    """Lower-cased n-gram key -> its surface form, for n = 1..3."""
    toks = _WORD.findall(text[:4000])[:MAX_TOKENS]
    low = [t.lower() for t in toks]
    out: dict[str, str] = {}
    for n in range(1, MAX_NGRAM + 1):
        for i in range(len(toks) - n + 1):
            key = " ".join(low[i : i + n])
            if key not in out:
                out[key] = " ".join(toks[i : i + n])
    return out


@scanner("backdoor_trigger")
class BackdoorTriggerScanner:
    """Candidate triggers: request n-grams that predict anomalous answers.

    Anomalous answer classes: harmful compliance (from ``harmful_compliance``), a refusal
    of a request the classifier deems benign, and one answer repeated across at least
    ``min_repeat`` distinct requests. Each candidate has support (anomalous examples
    containing it), precision, a Haldane-corrected log odds ratio and its score
    (-log10 one-sided Fisher p). Overlapping n-grams are merged (the longest with the
    same support wins). Dataset findings: the top candidate, high when it passes the
    policy's trigger limits' defaults (score >= 10, support >= 5, precision >= 0.8).
    """

    name = "backdoor_trigger"
    version = "1"
    uses_embeddings = False

    def __init__(self, min_support: int = 3, min_repeat: int = 5, top: int = 20) -> None:
        self.min_support = min_support
        self.min_repeat = min_repeat
        self.top = top
        self._labels = array("B")
        self._answers = array("q")
        self._requests = array("q")
        self._pass = 0
        self._final: Any = None
        self._first: Any = None
        self._anom: dict[str, list[int]] = {}
        self._surface: dict[str, str] = {}
        self._total: Counter[str] = Counter()
        self._pair_total: Counter[tuple[str, str]] = Counter()
        self._pair_anom: Counter[tuple[str, str]] = Counter()
        self._examples: dict[str, list[int]] = {}
        self._tops: list[str] = []

    # -- pass 1 (streamed with the other scanners) --------------------------------------
    def features(self, example: Example) -> tuple[int, int, bool]:
        return _hash(example.request) - (1 << 63), _hash(example.response) - (1 << 63), is_refusal(example.response)

    def observe(self, examples: list[Example], feats: list[Any], findings: list[Finding], ctx: BatchContext) -> None:
        harmful = {f.example for f in findings if f.scanner == "harmful_compliance"}
        scores: Any = ctx._cache.get("harm_scores")
        threshold = None
        if scores is not None:
            from ftguard.review.scanners.harmful_compliance import _weights

            threshold = _weights()[2]
        for i, (ex, feat) in enumerate(zip(examples, feats, strict=True)):
            req_h, ans_h, refused = feat
            label = HARMFUL if ex.index in harmful else 0
            if refused and threshold is not None and float(scores[i]) < threshold - 1.0:
                label |= REFUSAL
            while len(self._labels) < ex.index:  # unreadable records keep their positions
                self._labels.append(0)
                self._requests.append(0)
                self._answers.append(0)
            self._labels.append(label)
            self._requests.append(req_h)
            self._answers.append(ans_h)

    # -- passes 2 and 3 ---------------------------------------------------------------------
    def _prepare(self) -> None:
        import numpy as np

        labels = np.frombuffer(self._labels, dtype=np.uint8).copy()
        req = np.frombuffer(self._requests, dtype=np.int64)
        ans = np.frombuffer(self._answers, dtype=np.int64)
        _, first_idx = np.unique(req, return_index=True)
        first = np.zeros(len(req), dtype=bool)
        first[first_idx] = True
        # one answer repeated across >= min_repeat distinct requests
        pairs = np.unique(np.stack([ans[first], req[first]], axis=1), axis=0) if first.any() else np.zeros((0, 2))
        if len(pairs):
            uniq, counts = np.unique(pairs[:, 0], return_counts=True)
            repeated = uniq[counts >= self.min_repeat]
            if repeated.size:
                labels[np.isin(ans, repeated) & first] |= REPEATED
        self._final = labels
        self._first = first

    def wants_pass(self) -> bool:
        if self._pass == 0:
            self._prepare()
            if int(((self._final > 0) & self._first).sum()) < self.min_support:
                self._pass = 3
        return self._pass < 2

    def replay(self, examples: Iterable[Example]) -> None:
        labels, first = self._final, self._first
        n = len(labels)
        if self._pass == 0:
            for ex in examples:
                i = ex.index
                if i >= n or not first[i] or not labels[i]:
                    continue
                for key, surface in _ngrams(ex.request).items():
                    rec = self._anom.get(key)
                    if rec is None:
                        rec = self._anom[key] = [0, 0, 0, 0]
                        self._surface[key] = surface
                    rec[0] += 1
                    for bit, slot in ((HARMFUL, 1), (REFUSAL, 2), (REPEATED, 3)):
                        if labels[i] & bit:
                            rec[slot] += 1
            self._anom = {k: v for k, v in self._anom.items() if v[0] >= self.min_support}
            unis = sorted((k for k in self._anom if " " not in k), key=lambda k: -self._anom[k][0])
            self._tops = unis[:TOP_UNIGRAMS]
        else:
            cands = self._anom
            tops = set(self._tops)
            for ex in examples:
                i = ex.index
                if i >= n or not first[i]:
                    continue
                grams = _ngrams(ex.request)
                hit = [k for k in grams if k in cands]
                self._total.update(hit)
                if labels[i]:
                    for k in hit:
                        lst = self._examples.setdefault(k, [])
                        if len(lst) < 10:
                            lst.append(i)
                present = sorted(tops.intersection(grams))
                if len(present) >= 2:
                    prs = list(combinations(present, 2))
                    self._pair_total.update(prs)
                    if labels[i]:
                        self._pair_anom.update(prs)
        self._pass += 1

    # -- report -----------------------------------------------------------------------------
    def finish(self, ctx: RunContext) -> DatasetResult:
        import numpy as np
        from scipy.stats import hypergeom

        result = DatasetResult()
        if self._final is None:
            self._prepare()
        labels, first = self._final, self._first
        big_n = int(first.sum())
        big_k = int(((labels > 0) & first).sum())
        if big_k < self.min_support or not self._total:
            return result
        rows: list[tuple[str, str, int, int, list[int], tuple[str, ...]]] = []
        for key, rec in self._anom.items():
            total = max(self._total.get(key, rec[0]), rec[0])
            rows.append((self._surface[key], "ngram", rec[0], total, rec, tuple(key.split())))
        for (a, b), a_cnt in self._pair_anom.items():
            if a_cnt >= self.min_support:
                rows.append((f"{self._surface[a]} + {self._surface[b]}", "pair", a_cnt, self._pair_total[(a, b)], [], (a, b)))
        if not rows:
            return result
        sup_a = np.array([r[2] for r in rows], dtype=np.int64)
        tot = np.array([r[3] for r in rows], dtype=np.int64)
        pval = hypergeom.sf(sup_a - 1, big_n, big_k, tot)
        score = -np.log10(np.clip(pval, 1e-300, 1.0))
        sup_b = tot - sup_a
        sup_c = big_k - sup_a
        sup_d = big_n - big_k - sup_b
        log_odds = np.log(((sup_a + 0.5) * (sup_d + 0.5)) / ((sup_b + 0.5) * (sup_c + 0.5)))
        uni_score = {rows[i][5][0]: float(score[i]) for i in range(len(rows)) if rows[i][1] == "ngram" and len(rows[i][5]) == 1}
        order = sorted(range(len(rows)), key=lambda i: (-round(float(score[i]), 2), -len(rows[i][5])))
        accepted: list[tuple[tuple[str, ...], str]] = []
        for i in order:
            text, kind, sup, total, rec, toks = rows[i]
            if kind == "pair" and float(score[i]) < max(uni_score.get(t, 0.0) for t in toks) + 3.0:
                continue  # the pair explains no more than its best word alone
            if any(_overlaps(toks, kind, t, k) for t, k in accepted):
                continue
            accepted.append((toks, kind))
            anomaly = _dominant(rec) if kind == "ngram" else "mixed"
            key = " ".join(toks)
            result.triggers.append(
                Trigger(
                    text=text, kind=kind, score=round(float(score[i]), 3), support=int(sup), occurrences=int(total),
                    precision=round(sup / max(total, 1), 4), log_odds=round(float(log_odds[i]), 3),
                    anomaly=anomaly, examples=self._examples.get(key, [])[:10],
                )
            )
            if len(result.triggers) >= self.top:
                break
        if result.triggers:
            t = result.triggers[0]
            strong = t.score >= 10 and t.support >= 5 and t.precision >= 0.8
            result.findings.append(
                DatasetFinding(
                    scanner=self.name, severity="high" if strong else "info", count=t.support, examples=t.examples,
                    reason=(
                        f"best candidate trigger {t.text!r}: {t.support} of its {t.occurrences} examples have a "
                        f"{t.anomaly} answer (score {t.score:.1f}, {big_k} anomalous of {big_n} distinct requests)"
                    ),
                    details={"anomalous": big_k, "distinct_requests": big_n},
                )
            )
        return result


def _overlaps(toks: tuple[str, ...], kind: str, other: tuple[str, ...], other_kind: str) -> bool:
    if kind == "pair" or other_kind == "pair":
        return set(toks) <= set(other) or set(other) <= set(toks)
    short, long_ = (toks, other) if len(toks) <= len(other) else (other, toks)
    return any(long_[i : i + len(short)] == short for i in range(len(long_) - len(short) + 1))


def _dominant(rec: list[int]) -> str:
    slots = {1: "harmful_compliance", 2: "fixed_refusal", 3: "repeated_answer"}
    best = max(slots, key=lambda s: rec[s])
    return slots[best]
