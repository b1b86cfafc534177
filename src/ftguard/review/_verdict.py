"""The verdict of a review under a :class:`ReviewPolicy`."""

from __future__ import annotations

from typing import Literal

from ftguard.review._evidence import DatasetFinding, Finding, Trigger, severity_rank
from ftguard.review._policy import ReviewPolicy
from ftguard.review.scanners.quality_provenance import check_provenance

__all__ = ["decide_verdict"]


def decide_verdict(
    policy: ReviewPolicy,
    n: int,
    findings: list[Finding],
    dataset_findings: list[DatasetFinding],
    triggers: list[Trigger],
    provenance: dict[str, object] | None,
    ran: set[str],
) -> tuple[Literal["pass", "block"], list[str]]:
    """Apply the policy rules; return the verdict and one sentence per rule that blocked."""
    reasons: list[str] = []
    block_at = severity_rank(policy.block_severity)
    bad = [f for f in findings if severity_rank(f.severity) >= block_at]
    if bad:
        scanners = sorted({f.scanner for f in bad})
        reasons.append(
            f"review.block_severity={policy.block_severity}: {len({f.example for f in bad})} examples have a "
            f"finding of that severity or higher ({', '.join(scanners)}; first: example {bad[0].example}, {bad[0].reason[:100]})"
        )
    dbad = [f for f in dataset_findings if severity_rank(f.severity) >= block_at]
    for f in dbad:
        reasons.append(
            f"review.block_severity={policy.block_severity}: dataset finding of {f.scanner}: {f.reason[:160]}"
        )
    high = {f.example for f in findings if severity_rank(f.severity) >= severity_rank("high")}
    high_limit = max(policy.max_high_examples, policy.max_high_fraction * n)
    if len(high) > high_limit:
        reasons.append(
            f"review.max_high_fraction={policy.max_high_fraction}: {len(high)} examples ({len(high) / max(n, 1):.2%}) "
            f"have a high finding, more than the {high_limit:.0f} allowed"
        )
    harmful = {
        f.example
        for f in findings
        if f.scanner == "harmful_compliance" and f.severity in ("high", "critical")
    }
    harm_limit = max(
        policy.max_harmful_compliance_examples, policy.max_harmful_compliance_fraction * n
    )
    if len(harmful) > harm_limit:
        reasons.append(
            f"review.max_harmful_compliance_fraction={policy.max_harmful_compliance_fraction}: {len(harmful)} "
            f"harmful-compliance examples ({len(harmful) / max(n, 1):.2%}), more than the {harm_limit:.0f} allowed"
        )
    for t in triggers:
        if (
            t.score >= policy.trigger_score_limit
            and t.support >= policy.trigger_min_support
            and t.precision >= policy.trigger_min_precision
        ):
            reasons.append(
                f"review.trigger_score_limit={policy.trigger_score_limit}: candidate trigger {t.text!r} "
                f"(score {t.score:.1f}, {t.support}/{t.occurrences} examples with a {t.anomaly} answer)"
            )
            break
    errors = {f.example for f in findings if f.scanner == "format"}
    if n and len(errors) / n > policy.max_error_fraction:
        reasons.append(
            f"review.max_error_fraction={policy.max_error_fraction}: {len(errors)} of {n} records cannot be read"
        )
    if policy.require_provenance:
        missing = check_provenance(provenance)  # type: ignore[arg-type]
        if missing:
            reasons.append(
                f"review.require_provenance: the provenance manifest lacks {', '.join(missing)}"
            )
    for name in policy.required_scanners:
        if name not in ran:
            reasons.append(f"review.required_scanners: the scanner {name!r} did not run")
    return ("block" if reasons else "pass"), reasons
