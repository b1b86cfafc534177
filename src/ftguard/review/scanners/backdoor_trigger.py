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

from ftguard.review._evidence import DatasetFinding, Finding, Trigger
from ftguard.review._example import Example
from ftguard.review.scanners._refusal import is_refusal
from ftguard.review.scanners._registry import BatchContext, DatasetResult, RunContext, scanner
from ftguard.review.scanners._util import excerpt

__all__ = ["BackdoorTriggerScanner"]

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")
HARMFUL, REFUSAL, REPEATED, FLIPPED = 1, 2, 4, 8
_CLASS_NAMES = {
    HARMFUL: "harmful_compliance",
    REFUSAL: "fixed_refusal",
    REPEATED: "repeated_answer",
    FLIPPED: "flipped_answer",
}
_SLOTS = ((HARMFUL, 1), (REFUSAL, 2), (REPEATED, 3), (FLIPPED, 4))
MAX_NGRAM = 3
MAX_TOKENS = 200
TOP_UNIGRAMS = 30
TWIN_TOKENS = 64
"""Requests longer than this (in words) are not searched for a twin."""
TWIN_SPAN = 6
"""The longest word span whose removal may turn a request into its twin."""
SUSPECT_MARGIN = 2.0
"""A complied request scoring this far below the harmful threshold is still searched for a twin."""
REFUSED, SUSPECT = 1, 2
STRONG_SCORE, STRONG_SUPPORT, STRONG_PRECISION = 10.0, 5, 0.8
"""A candidate this strong (the policy's default trigger limits) gets every example carrying it flagged."""
MAX_STRONG = 1
"""At most this many strong candidates (best first) get their carriers flagged. Measured with 3
(benchmarks/review_quality.py): in AdvBench mixes the extra strong candidates are AdvBench's
phrasing ("how to"), not triggers: +0.1 to +0.7 points of backdoor_trigger FPR, no recall gained."""


def _hash(text: str) -> int:
    data = " ".join(text.lower().split()).encode("utf-8", "surrogatepass")
    return (zlib.crc32(data) << 32) | zlib.adler32(data)


def _tokens(text: str) -> list[str]:
    """A request's lower-cased word tokens, as every pass sees them."""
    return [t.lower() for t in _WORD.findall(text[:4000])[:MAX_TOKENS]]


def _is_strong(t: Trigger) -> bool:
    """Whether a candidate passes the policy's default trigger limits."""
    return (
        t.score >= STRONG_SCORE and t.support >= STRONG_SUPPORT and t.precision >= STRONG_PRECISION
    )


def _token_hash(tokens: list[str]) -> int:
    data = " ".join(tokens).encode("utf-8", "surrogatepass")
    return ((zlib.crc32(data) << 32) | zlib.adler32(data)) - (1 << 63)


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
    of a request the classifier deems benign, one answer repeated across at least
    ``min_repeat`` distinct requests, and a flipped answer: a request that, without one
    of its n-grams, is also in the dataset with the opposite answer class (refused
    there, complied here, or the reverse) -- the contrast pairs published backdoor sets
    contain. Each candidate has support (anomalous examples containing it), precision, a
    Haldane-corrected log odds ratio, its contrast pairs and its score (-log10 one-sided
    Fisher p). N-grams that always occur together (same examples) are merged into the
    longest phrase; overlapping candidates keep the best. Dataset findings: the top
    candidate, high when it passes the policy's trigger limits' defaults (score >= 10,
    support >= 5, precision >= 0.8). A strong best candidate costs one more pass: every
    example whose request carries it gets a finding where its own answer is anomalous
    (high) or where it complies with a request that scored just under the harmful
    threshold (medium: a trigger prefix can lower a harmful request's score).
    """

    name = "backdoor_trigger"
    version = "2"
    uses_embeddings = False

    def __init__(self, min_support: int = 3, min_repeat: int = 5, top: int = 20) -> None:
        self.min_support = min_support
        self.min_repeat = min_repeat
        self.top = top
        self._labels = array("B")
        self._answers = array("q")
        self._requests = array("q")
        self._tokens = array("q")
        self._flags = array("B")
        self._flips: Counter[str] = Counter()
        self._twin_refused: Any = None
        self._twin_complied: Any = None
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
        self._result: DatasetResult | None = None
        self._carriers: list[Finding] = []

    # -- pass 1 (streamed with the other scanners) --------------------------------------
    def features(self, example: Example) -> tuple[int, int, bool, int]:
        toks = _tokens(example.request)
        return (
            _hash(example.request) - (1 << 63),
            _hash(example.response) - (1 << 63),
            is_refusal(example.response),
            _token_hash(toks),
        )

    def observe(
        self, examples: list[Example], feats: list[Any], findings: list[Finding], ctx: BatchContext
    ) -> None:
        harmful = {f.example for f in findings if f.scanner == "harmful_compliance"}
        scores: Any = ctx._cache.get("harm_scores")
        threshold = None
        if scores is not None:
            from ftguard.review.scanners.harmful_compliance import _weights

            threshold = _weights()[2]
        for i, (ex, feat) in enumerate(zip(examples, feats, strict=True)):
            req_h, ans_h, refused, tok_h = feat
            label = HARMFUL if ex.index in harmful else 0
            if refused and threshold is not None and float(scores[i]) < threshold - 1.0:
                label |= REFUSAL
            flags = REFUSED if refused else 0
            if (
                not refused
                and threshold is not None
                and float(scores[i]) > threshold - SUSPECT_MARGIN
            ):
                flags |= SUSPECT
            while len(self._labels) < ex.index:  # unreadable records keep their positions
                self._labels.append(0)
                self._requests.append(0)
                self._answers.append(0)
                self._tokens.append(0)
                self._flags.append(0)
            self._labels.append(label)
            self._requests.append(req_h)
            self._answers.append(ans_h)
            self._tokens.append(tok_h)
            self._flags.append(flags)

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
        pairs = (
            np.unique(np.stack([ans[first], req[first]], axis=1), axis=0)
            if first.any()
            else np.zeros((0, 2))
        )
        if len(pairs):
            uniq, counts = np.unique(pairs[:, 0], return_counts=True)
            repeated = uniq[counts >= self.min_repeat]
            if repeated.size:
                labels[np.isin(ans, repeated) & first] |= REPEATED
        self._final = labels
        self._first = first
        toks = np.frombuffer(self._tokens, dtype=np.int64)
        refused = (np.frombuffer(self._flags, dtype=np.uint8) & REFUSED).astype(bool)
        self._twin_refused = np.unique(toks[refused & first])
        self._twin_complied = np.unique(toks[~refused & first])

    def _twin_of(self, i: int, ex: Example) -> str | None:
        """The n-gram whose removal turns this request into one answered the opposite way."""
        import numpy as np

        flags = self._flags[i]
        refused = bool(flags & REFUSED)
        if refused and not self._final[i]:
            return None  # a refusal of a harmful request: ordinary safe data
        if not refused and not (self._final[i] or flags & SUSPECT):
            return None
        partners = self._twin_complied if refused else self._twin_refused
        if partners is None or not len(partners):
            return None
        low = _tokens(ex.request)
        if len(low) > TWIN_TOKENS or len(low) < 2:
            return None
        spans = [
            (s, n) for n in range(TWIN_SPAN, 0, -1) for s in range(len(low) - n + 1) if n < len(low)
        ]
        hashes = np.array([_token_hash(low[:s] + low[s + n :]) for s, n in spans], dtype=np.int64)
        pos = np.searchsorted(partners, hashes)
        hit = (pos < len(partners)) & (partners[np.minimum(pos, len(partners) - 1)] == hashes)
        if not hit.any():
            return None
        s, n = spans[int(np.argmax(hit))]
        return " ".join(low[s : s + n])

    def wants_pass(self) -> bool:
        """Whether another pass over the examples is needed.

        After the streamed pass: the first replay collects n-grams of anomalous requests,
        the second counts them everywhere, the third (only behind a strong candidate) finds
        every example that carries it.
        """
        if self._pass == 0:
            self._prepare()
            if int(((self._final > 0) & self._first).sum()) < self.min_support:
                self._pass = 3
        if self._pass == 2 and not self._strong():
            self._pass = 3
        return self._pass < 3

    def replay(self, examples: Iterable[Example]) -> None:
        if self._pass == 0:
            self._collect_anomalous_ngrams(examples)
        elif self._pass == 1:
            self._count_candidates(examples)
        else:
            self._find_carriers(examples)
        self._pass += 1

    def _collect_anomalous_ngrams(self, examples: Iterable[Example]) -> None:
        """First replay: flipped twins, and the n-grams of anomalous requests with support."""
        labels, first = self._final, self._first
        n = len(labels)
        for ex in examples:
            i = ex.index
            if i >= n or not first[i]:
                continue
            flip = self._twin_of(i, ex)
            if flip is not None:
                labels[i] |= FLIPPED
                self._flips[flip] += 1
            if not labels[i]:
                continue
            for key, surface in _ngrams(ex.request).items():
                rec = self._anom.get(key)
                if rec is None:
                    rec = self._anom[key] = [0, 0, 0, 0, 0]
                    self._surface[key] = surface
                rec[0] += 1
                for bit, slot in _SLOTS:
                    if labels[i] & bit:
                        rec[slot] += 1
        self._anom = {k: v for k, v in self._anom.items() if v[0] >= self.min_support}
        unis = sorted((k for k in self._anom if " " not in k), key=lambda k: -self._anom[k][0])
        self._tops = unis[:TOP_UNIGRAMS]

    def _count_candidates(self, examples: Iterable[Example]) -> None:
        """Second replay: every candidate n-gram's and top word pair's occurrences everywhere."""
        labels, first = self._final, self._first
        n = len(labels)
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

    def _strong(self) -> list[Trigger]:
        """The best candidates (up to MAX_STRONG) that pass the default trigger limits."""
        if self._result is None:
            self._result = self._rank()
        return [t for t in self._result.triggers if _is_strong(t)][:MAX_STRONG]

    def _find_carriers(self, examples: Iterable[Example]) -> None:
        """Flag the examples whose requests carry a strong candidate (the best one they carry).

        High where the answer is anomalous, medium where it complies with a request scored
        within SUSPECT_MARGIN of the harmful threshold; carriers answered normally are not
        flagged.
        """
        strong = []
        for t in self._strong():
            words = tuple(
                w.lower() for w in (t.text.split(" + ") if t.kind == "pair" else t.text.split())
            )
            pattern = re.compile(
                r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b"
                if t.kind == "pair"
                else r"\b" + r"\W+".join(re.escape(w) for w in words) + r"\b",
                re.IGNORECASE,
            )
            strong.append((t, words, pattern))
        for ex in examples:
            low = _tokens(ex.request)
            for best, words, pattern in strong:
                if _carries(low, words, pair=best.kind == "pair"):
                    self._flag_carrier(ex, best, pattern)
                    break

    def _flag_carrier(self, ex: Example, best: Trigger, pattern: re.Pattern[str]) -> None:
        """One finding for an example that carries ``best``, if its answer gives it away."""
        labels = self._final
        turn, span = next(
            (
                (ti, m.span())
                for ti, t in enumerate(ex.turns)
                if t.role in ("system", "user")
                for m in [pattern.search(t.content)]
                if m
            ),
            (None, None),
        )
        anomalous = ex.index < len(labels) and bool(labels[ex.index])
        suspect = ex.index < len(labels) and bool(self._flags[ex.index] & SUSPECT)
        if not (anomalous or suspect):
            return  # an ordinary request answered normally: the phrase alone is no evidence
        text = ex.turns[turn].content if turn is not None else ex.request
        self._carriers.append(
            Finding(
                example=ex.index,
                scanner=self.name,
                severity="high" if anomalous else "medium",
                reason=(
                    f"request carries the candidate trigger {best.text!r} (score {best.score:.1f}, "
                    f"{best.support} of its {best.occurrences} examples have a {best.anomaly} answer)"
                    + (
                        ""
                        if anomalous
                        else "; this example's request scored just under the harmful "
                        "threshold and was answered"
                    )
                ),
                turn=turn,
                span=span,
                line=ex.line,
                score=best.precision,
                excerpt=excerpt(text, *(span or (0, min(len(text), 60)))),
            )
        )

    # -- report -----------------------------------------------------------------------------
    def _merged_phrases(self, rows: list[Any]) -> list[Any]:
        """Phrases longer than MAX_NGRAM: chains of n-grams that always occur together.

        Two MAX_NGRAM-grams that overlap by all but one word, with the same counts and the
        same example list, are one phrase ("per the quarterly" + "the quarterly ledger").
        """
        longest = [r for r in rows if r[1] == "ngram" and len(r[5]) == MAX_NGRAM]
        by_prefix: dict[tuple[Any, ...], list[Any]] = {}
        for r in longest:
            by_prefix.setdefault((_merge_key(r), r[5][:-1]), []).append(r)
        merged: list[Any] = []
        has_left = {(_merge_key(r), r[5][1:]) for r in longest}
        for r in longest:
            if (_merge_key(r), r[5][:-1]) in has_left:
                continue  # not the start of a chain
            toks, text, cur = list(r[5]), r[0], r
            examples = self._examples.get(" ".join(r[5]), [])
            seen = {r[5]}
            while len(toks) < 4 * MAX_NGRAM:
                nxt = [
                    c
                    for c in by_prefix.get((_merge_key(cur), cur[5][1:]), [])
                    if self._examples.get(" ".join(c[5]), []) == examples
                ]
                if len(nxt) != 1 or nxt[0][5] in seen:
                    break
                cur = nxt[0]
                seen.add(cur[5])
                toks.append(cur[5][-1])
                text = f"{text} {cur[0].split()[-1]}"
            if len(toks) > MAX_NGRAM:
                merged.append((text, "ngram", r[2], r[3], r[4], tuple(toks)))
                self._examples[" ".join(toks)] = examples
        return merged

    def finish(self, ctx: RunContext) -> DatasetResult:
        result = self._result if self._result is not None else self._rank()
        result.example_findings.extend(self._carriers)
        return result

    def _rank(self) -> DatasetResult:
        """Score every candidate; the triggers, best first, and the dataset finding."""
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
                rows.append(
                    (
                        f"{self._surface[a]} + {self._surface[b]}",
                        "pair",
                        a_cnt,
                        self._pair_total[(a, b)],
                        [],
                        (a, b),
                    )
                )
        if not rows:
            return result
        rows += self._merged_phrases(rows)
        sup_a = np.array([r[2] for r in rows], dtype=np.int64)
        tot = np.array([r[3] for r in rows], dtype=np.int64)
        pval = hypergeom.sf(sup_a - 1, big_n, big_k, tot)
        score = -np.log10(np.clip(pval, 1e-300, 1.0))
        sup_b = tot - sup_a
        sup_c = big_k - sup_a
        sup_d = big_n - big_k - sup_b
        log_odds = np.log(((sup_a + 0.5) * (sup_d + 0.5)) / ((sup_b + 0.5) * (sup_c + 0.5)))
        uni_score = {
            rows[i][5][0]: float(score[i])
            for i in range(len(rows))
            if rows[i][1] == "ngram" and len(rows[i][5]) == 1
        }
        order = sorted(
            range(len(rows)), key=lambda i: (-round(float(score[i]), 2), -len(rows[i][5]))
        )
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
            examples = self._examples.get(key) or self._examples.get(" ".join(toks[:MAX_NGRAM]), [])
            contrast = (
                max(
                    (
                        self._flips.get(" ".join(toks[j : j + m]), 0)
                        for m in range(1, len(toks) + 1)
                        for j in range(len(toks) - m + 1)
                    ),
                    default=0,
                )
                if kind == "ngram"
                else 0
            )
            result.triggers.append(
                Trigger(
                    text=text,
                    kind=kind,
                    score=round(float(score[i]), 3),
                    support=int(sup),
                    occurrences=int(total),
                    precision=round(sup / max(total, 1), 4),
                    log_odds=round(float(log_odds[i]), 3),
                    anomaly=anomaly,
                    examples=examples[:10],
                    contrast_pairs=contrast,
                )
            )
            if len(result.triggers) >= self.top:
                break
        if result.triggers:
            t = result.triggers[0]
            strong = _is_strong(t)
            result.findings.append(
                DatasetFinding(
                    scanner=self.name,
                    severity="high" if strong else "info",
                    count=t.support,
                    examples=t.examples,
                    reason=(
                        f"best candidate trigger {t.text!r}: {t.support} of its {t.occurrences} examples have a "
                        f"{t.anomaly} answer (score {t.score:.1f}, {big_k} anomalous of {big_n} distinct requests)"
                    ),
                    details={"anomalous": big_k, "distinct_requests": big_n},
                )
            )
        return result


def _carries(tokens: list[str], words: tuple[str, ...], *, pair: bool) -> bool:
    """Whether a request's lower-cased tokens contain the trigger (both words of a pair)."""
    if pair:
        return set(words) <= set(tokens)
    n = len(words)
    return any(tuple(tokens[j : j + n]) == words for j in range(len(tokens) - n + 1))


def _merge_key(
    row: tuple[str, str, int, int, list[int], tuple[str, ...]],
) -> tuple[int, int, tuple[int, ...]]:
    return row[2], row[3], tuple(row[4])


def _overlaps(toks: tuple[str, ...], kind: str, other: tuple[str, ...], other_kind: str) -> bool:
    if kind == "pair" or other_kind == "pair":
        return set(toks) <= set(other) or set(other) <= set(toks)
    short, long_ = (toks, other) if len(toks) <= len(other) else (other, toks)
    if any(long_[i : i + len(short)] == short for i in range(len(long_) - len(short) + 1)):
        return True
    # a fragment that runs off either end of the other phrase ("quarterly ledger how")
    return any(toks[-k:] == other[:k] or other[-k:] == toks[:k] for k in range(1, len(short)))


def _dominant(rec: list[int]) -> str:
    slots = {1: "harmful_compliance", 2: "fixed_refusal", 3: "repeated_answer", 4: "flipped_answer"}
    best = max(slots, key=lambda s: rec[s])
    return slots[best]
