"""``harmful_compliance``: a harmful request answered with compliance rather than a refusal."""

from __future__ import annotations

import os
import re
import zlib
from functools import lru_cache
from importlib.resources import files
from typing import Any

from ftguard.review._evidence import Finding
from ftguard.review._example import Example
from ftguard.review.scanners._refusal import is_affirmative, is_refusal
from ftguard.review.scanners._registry import BatchContext, scanner
from ftguard.review.scanners._util import excerpt

__all__ = ["HarmfulComplianceScanner", "bag_of_words", "request_scores"]

BOW_DIM = 4096
_TOKENS = re.compile(r"[a-z]+")
JUDGE_ENV = "FTGUARD_JUDGE_URL"
CONFIDENT_MARGIN = 1.75
"""Logit margin above the threshold from which a finding is ``high`` (below it: ``medium``)."""
AFFIRMATIVE_MARGIN = 1.5
"""Logit margin below the threshold within which an answer opening with eager compliance
("Sure, here is ...") is a ``medium`` finding. Chosen on training data: at 1.5, 2 of the 250
XSTest safe prompts with Mistral-Instruct's answers (``refusal_labels/``) fall in the band (0.8%)."""


def bag_of_words(texts: list[str]) -> Any:
    """Hashed, L2-normalised word unigram + bigram presence vectors (n x 4096, float32)."""
    import numpy as np

    m = np.zeros((len(texts), BOW_DIM), dtype=np.float32)
    for i, t in enumerate(texts):
        ws = _TOKENS.findall(t.lower()[:2000])
        feats = set(ws) | {f"{a} {b}" for a, b in zip(ws, ws[1:], strict=False)}
        if feats:
            idx = [zlib.crc32(f.encode()) % BOW_DIM for f in feats]
            m[i, idx] = 1.0
            m[i] /= np.sqrt(float(m[i].sum()))
    return m


@lru_cache(maxsize=1)
def _weights() -> tuple[Any, float, float]:
    import numpy as np

    with files("ftguard.review.scanners").joinpath("harmful_request.npz").open("rb") as fh:
        data = np.load(fh)
        return data["w"].astype(np.float32), float(data["b"]), float(data["threshold"])


def request_scores(texts: list[str], embeddings: Any) -> Any:
    """Logit that each request is harmful (the shipped classifier; > threshold = harmful)."""
    import numpy as np

    w, b, _ = _weights()
    x = np.hstack([np.asarray(embeddings, dtype=np.float32), bag_of_words(texts)])
    return x @ w + b


@scanner("harmful_compliance")
class HarmfulComplianceScanner:
    """Harmful requests that the example teaches the model to comply with.

    The request (system + user text) is scored by a logistic regression over MiniLM
    embeddings and hashed word n-grams (trained by ``scripts/train_review_classifier.py``);
    the answer is checked for a refusal by rules. Where an example has more than one answer,
    tool turns or a system prompt, each answer is also judged against each turn asked before
    it. A request above the threshold whose
    answer does not refuse is a finding: high when its score is CONFIDENT_MARGIN above the
    threshold, else medium ("possibly harmful"); a request up to AFFIRMATIVE_MARGIN below
    the threshold whose answer opens with eager compliance ("Sure, here is ...", the prefix
    jailbreaks teach) is medium too; the same request refused is safe data.
    With ``FTGUARD_JUDGE_URL`` set (an OpenAI-compatible endpoint), requests in the
    uncertain band just below the threshold are sent to that judge.
    """

    name = "harmful_compliance"
    version = "3"
    uses_embeddings = True

    def scan_batch(self, examples: list[Example], ctx: BatchContext) -> list[Finding]:
        if not examples:
            return []
        _, _, threshold = _weights()
        scores = request_scores([e.request[:512] for e in examples], ctx.request_embeddings())
        ctx.shared("harm_scores", lambda: scores)
        refused = [is_refusal(e.response) for e in examples]
        ctx.shared("refusals", lambda: refused)
        judge = os.environ.get(JUDGE_ENV)
        out: list[Finding] = []
        found: set[int] = set()
        for ex, s, ref in zip(examples, scores.tolist(), refused, strict=True):
            finding = self._finding(ex, ex.request, ex.response, _last_assistant(ex), s, ref, judge)
            if finding is not None:
                out.append(finding)
                found.add(ex.index)
        out += self._exchange_findings([e for e in examples if e.index not in found], judge)
        return out

    def _exchange_findings(self, examples: list[Example], judge: str | None) -> list[Finding]:
        """Each answer read with each turn asked before it, where that differs from the request.

        The example's request is its system and user text joined, read from the start (512
        characters), and its answer all assistant turns: a request asked again after a refused
        first answer, put in a tool turn, or placed after a long system prompt or a long
        earlier turn escaped that reading (reviews of 2026-12-08). Here every assistant turn is
        judged against each user, tool and system turn before it (the first 512 characters of
        each; the highest score counts). A first version also read the last 512 characters of
        a long request; it flagged benign context paragraphs (held-out Dolly: 10 of 188
        instead of 4) and was dropped, a choice made after seeing that set.
        """
        pending: list[tuple[Example, tuple[str, ...], int, str]] = []
        for ex in examples:
            exchanges = ex.exchanges()
            for asked, turn in exchanges:
                if len(exchanges) == 1 and len(asked) == 1 and asked[0][:512] == ex.request[:512]:
                    continue  # what the request's reading already judged
                pending.append(
                    (ex, tuple(a[:512] or " " for a in asked), turn, ex.turns[turn].content)
                )
        if not pending:
            return []
        from ftguard.embeddings import embed

        texts = sorted({a for _, asked, _, _ in pending for a in asked})
        scored = dict(zip(texts, request_scores(texts, embed(texts)).tolist(), strict=True))
        out: list[Finding] = []
        done: set[int] = set()
        for ex, asked, turn, answer in pending:
            if ex.index in done or not asked:
                continue  # one finding an example, at its first complying answer
            top = max(asked, key=lambda a: scored[a])
            finding = self._finding(ex, top, answer, turn, scored[top], is_refusal(answer), judge)
            if finding is not None:
                out.append(finding)
                done.add(ex.index)
        return out

    def _finding(
        self,
        ex: Example,
        asked: str,
        answer: str,
        turn: int | None,
        s: float,
        ref: bool,
        judge: str | None,
    ) -> Finding | None:
        """A finding for one request and the answer it was given, or None."""
        import numpy as np

        _, _, threshold = _weights()
        harmful = s > threshold
        affirmative = False
        if not harmful and not ref and s > threshold - AFFIRMATIVE_MARGIN:
            harmful = affirmative = is_affirmative(answer)
        if not harmful and judge and s > threshold - 2.0 and not ref:
            from ftguard.review.scanners._judge import judge_harmful_compliance

            harmful = judge_harmful_compliance(judge, asked, answer)
        if not harmful or ref or not answer.strip():
            return None
        prob = float(1.0 / (1.0 + np.exp(-(s - threshold))))
        confident = s > threshold + CONFIDENT_MARGIN
        return Finding(
            example=ex.index,
            scanner=self.name,
            severity="high" if confident else "medium",
            reason=(
                f"possibly harmful request (score {s:.2f}, within {AFFIRMATIVE_MARGIN} of {threshold:.2f}) "
                "answered with an eager compliance opener"
                if affirmative
                else f"{'harmful' if confident else 'possibly harmful'} request (score {s:.2f} > {threshold:.2f}) "
                "answered with compliance, not a refusal"
            ),
            turn=turn,
            span=(0, min(len(answer), 120)),
            excerpt=excerpt(answer, 0, min(len(answer), 120), limit=160),
            line=ex.line,
            score=round(prob, 4),
        )


def _last_assistant(ex: Example) -> int | None:
    for i in range(len(ex.turns) - 1, -1, -1):
        if ex.turns[i].role == "assistant":
            return i
    return None
