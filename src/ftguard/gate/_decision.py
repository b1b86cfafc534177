"""The gate's decision: every rule's result over the job's evidence."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = ["Decision", "RuleResult", "evaluate_rules"]

Control = Literal["approval", "review", "weights", "behavior", "output"]


class RuleResult(BaseModel):
    """One rule of the gate and how the job fared."""

    rule: str
    """Rule name, e.g. ``behavior.verdict``."""
    control: Control
    passed: bool
    reason: str
    """A sentence saying what was found."""
    evidence_digest: str | None = None
    overridden: bool = False


class Decision(BaseModel):
    """The gate's decision on a job (stored as evidence, embedded in the attestation)."""

    schema_version: Literal[1] = 1
    job_id: str
    decision: Literal["pass", "block"]
    rules: list[RuleResult]
    reasons: list[str] = Field(default_factory=list)
    """The reasons of the failed rules (empty on pass)."""
    policy_digest: str
    evidence: dict[str, str] = Field(default_factory=dict)
    """Digest of each piece of evidence the decision read, by kind."""
    decided_at: str
    decided_by: str
    override: dict[str, Any] | None = None
    """A security reviewer's override of a block: who, why, which rules."""


def _reasons_of(kind: str, body: dict[str, Any]) -> list[str]:
    if kind == "review":
        return [str(r) for r in body.get("verdict_reasons") or []] or [
            f"{f.get('scanner')}: {f.get('reason')}"
            for f in (body.get("dataset_findings") or [])[:3]
        ]
    if kind == "weights":
        return [str(f.get("reason")) for f in body.get("flags") or []]
    return [str(r) for r in body.get("reasons") or []]


_PASSING = {"review": "pass", "weights": "pass", "behavior": "pass"}
_LABEL = {
    "review": "dataset review",
    "weights": "weight report",
    "behavior": "behaviour comparison",
}


def evaluate_rules(
    *,
    required: dict[str, bool],
    evidence: dict[str, tuple[str, dict[str, Any]] | None],
    review_overridden: str | None,
) -> list[RuleResult]:
    """Judge each control's latest evidence.

    Args:
        required: Which of review, weights, behavior the policy requires.
        evidence: Latest (digest, body) per kind, or None when missing.
        review_overridden: The justification of a recorded review override, if any. It is
            named in the review rule's reason; a missing or blocking review still fails the
            rule, because letting a job train is not clearing it for deployment (a gate
            override, where ``gate.overridable`` allows it, is that).

    """
    results: list[RuleResult] = []
    for kind in ("review", "weights", "behavior"):
        item = evidence.get(kind)
        label = _LABEL[kind]
        if item is None:
            if required.get(kind, True):
                reason = f"the {label} is missing"
                if kind == "review" and review_overridden:
                    # Letting a job train without its review is not clearing it for
                    # deployment, as for a review that blocked (a gate override is that).
                    reason += (
                        f" (a security reviewer let it train without one: {review_overridden}; "
                        "an override before training does not clear deployment)"
                    )
                results.append(
                    RuleResult(
                        rule=f"{kind}.present",
                        control=kind,  # type: ignore[arg-type]
                        passed=False,
                        reason=reason,
                    )
                )
            continue
        digest, body = item
        verdict = str(body.get("verdict"))
        if verdict == _PASSING[kind]:
            results.append(
                RuleResult(
                    rule=f"{kind}.verdict",
                    control=kind,  # type: ignore[arg-type]
                    passed=True,
                    reason=f"the {label} passed",
                    evidence_digest=digest,
                )
            )
            continue
        found = _reasons_of(kind, body)
        reason = f"the {label} {'flagged' if verdict == 'flag' else 'blocked'} the job"
        if found:
            reason += ": " + "; ".join(found[:4])
        if kind == "review" and review_overridden:
            reason += (
                f" (a security reviewer let it train: {review_overridden}; an override before "
                "training does not clear deployment)"
            )
        results.append(
            RuleResult(
                rule=f"{kind}.verdict",
                control=kind,  # type: ignore[arg-type]
                passed=False,
                reason=reason,
                evidence_digest=digest,
            )
        )
    return results
