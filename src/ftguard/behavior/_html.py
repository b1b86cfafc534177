"""HTML report of a behaviour comparison: per-category bars with confidence intervals."""

from __future__ import annotations

from ftguard._html import render_report
from ftguard.behavior._evidence import BehaviorComparison, MetricChange, SuiteRun

__all__ = ["render_behavior_html"]

_EXCERPT = 160


def render_behavior_html(
    comparison: BehaviorComparison,
    before: SuiteRun | None = None,
    after: SuiteRun | None = None,
    *,
    max_examples: int = 20,
) -> str:
    """Render ``comparison`` as a self-contained HTML page (autoescaped).

    Args:
        comparison: The comparison to show.
        before: The baseline run, to list answers that changed (optional).
        after: The tuned run (optional, with ``before``).
        max_examples: Most changed answers listed; answers are cut to 160 characters.

    """
    by_suite: dict[str, list[MetricChange]] = {}
    for m in comparison.metrics:
        by_suite.setdefault(m.suite, []).append(m)
    examples: list[dict[str, str]] = []
    if before is not None and after is not None:
        bmap = {(r.suite, r.id): r for r in before.results}
        for r in after.results:
            b = bmap.get((r.suite, r.id))
            if b is not None and b.label != r.label and len(examples) < max_examples:
                examples.append(
                    {
                        "prompt": r.prompt[:_EXCERPT],
                        "before": f"[{b.label}] {b.output[:_EXCERPT]}",
                        "after": f"[{r.label}] {r.output[:_EXCERPT]}",
                    }
                )
    return render_report(
        "ftguard.behavior",
        "behavior.html.j2",
        {"c": comparison, "by_suite": by_suite, "examples": examples},
    )
