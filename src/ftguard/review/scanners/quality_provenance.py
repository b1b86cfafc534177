"""``quality_provenance``: empty/truncated turns, role order, length outliers, provenance."""

from __future__ import annotations

from array import array
from typing import Any

from ftguard.review._evidence import DatasetFinding, Finding, Severity
from ftguard.review._example import Example
from ftguard.review.scanners._registry import BatchContext, DatasetResult, RunContext, scanner

__all__ = ["PROVENANCE_FIELDS", "QualityProvenanceScanner", "check_provenance"]

PROVENANCE_FIELDS = ("sources", "licenses", "collection_method", "preparer")
_ALIASES = {
    "licences": "licenses",
    "license": "licenses",
    "licence": "licenses",
    "source": "sources",
}
_END = set(".!?\"')]}`*:;…>|-0123456789\n")


def check_provenance(manifest: dict[str, Any] | None) -> list[str]:
    """Names of the required provenance fields that are missing or empty."""
    if manifest is None:
        return list(PROVENANCE_FIELDS)
    norm = {_ALIASES.get(k, k): v for k, v in manifest.items()}
    return [f for f in PROVENANCE_FIELDS if not norm.get(f)]


@scanner("quality_provenance")
class QualityProvenanceScanner:
    """Structural quality of each example and the provenance of the dataset.

    Per example: no assistant turn or an empty user/assistant turn (medium), wrong role
    order (system not first, assistant first, two turns of one role in a row: low), an
    answer that stops mid-sentence (low). Dataset: length outliers (robust z-score over
    the stream's lengths, info), provenance manifest missing fields (medium; the policy
    decides whether it blocks).
    """

    name = "quality_provenance"
    version = "1"
    uses_embeddings = False

    def __init__(self) -> None:
        self._lengths = array("I")
        self._index = array("q")

    def scan(self, example: Example) -> list[Finding]:
        out = []
        roles = [t.role for t in example.turns]

        def add(sev: Severity, reason: str, turn: int | None = None) -> None:
            out.append(
                Finding(
                    example=example.index,
                    scanner=self.name,
                    severity=sev,
                    reason=reason,
                    turn=turn,
                    line=example.line,
                )
            )

        if "assistant" not in roles:
            add("medium", "no assistant turn: nothing to train on")
        for ti, t in enumerate(example.turns):
            if t.role in ("user", "assistant") and not t.content.strip():
                add("medium", f"empty {t.role} turn", ti)
        if "system" in roles[1:]:
            add("low", "a system turn after the first turn")
        first = next((r for r in roles if r != "system"), None)
        if first == "assistant":
            add("low", "the conversation starts with the assistant")
        if any(
            a == b and a in ("user", "assistant") for a, b in zip(roles, roles[1:], strict=False)
        ):
            add("low", "two turns of the same role in a row")
        last = example.turns[-1] if example.turns else None
        if last is not None and last.role == "assistant":
            body = last.content.rstrip()
            if (
                len(body) > 300
                and body[-1] not in _END
                and body[-1].isalpha()
                and body.count("\n") < 3
            ):
                add(
                    "low",
                    "the answer stops mid-sentence (possibly truncated)",
                    len(example.turns) - 1,
                )
        return out

    def features(self, example: Example) -> int:
        return min(sum(len(t.content) for t in example.turns), 2**32 - 1)

    def observe(
        self, examples: list[Example], feats: list[Any], findings: list[Finding], ctx: BatchContext
    ) -> None:
        self._lengths.extend(int(f) for f in feats)
        self._index.extend(e.index for e in examples)

    def finish(self, ctx: RunContext) -> DatasetResult:
        import numpy as np

        result = DatasetResult()
        lengths = (
            np.frombuffer(self._lengths, dtype=np.uint32).astype(np.float64)
            if len(self._lengths)
            else np.zeros(0)
        )
        if lengths.size >= 20:
            logl = np.log1p(lengths)
            med = float(np.median(logl))
            mad = float(np.median(np.abs(logl - med))) or 1e-9
            z = (logl - med) / (1.4826 * mad)
            idx = np.flatnonzero(np.abs(z) > 6.0)
            if idx.size:
                result.findings.append(
                    DatasetFinding(
                        scanner=self.name,
                        severity="info",
                        count=int(idx.size),
                        reason=f"{idx.size} examples are length outliers (robust z > 6 on log length)",
                        examples=[int(self._index[int(i)]) for i in idx[:25]],
                        details={"median_chars": float(np.expm1(med))},
                    )
                )
        missing = check_provenance(ctx.provenance)
        if ctx.provenance is None:
            result.findings.append(
                DatasetFinding(
                    scanner=self.name, severity="info", reason="no provenance manifest was given"
                )
            )
        elif missing:
            result.findings.append(
                DatasetFinding(
                    scanner=self.name,
                    severity="medium",
                    reason=f"the provenance manifest lacks {', '.join(missing)}",
                    details={"missing": missing},
                )
            )
        return result
