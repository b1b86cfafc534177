"""The HTML report of a :class:`DatasetReview` (Jinja2 template, inline SVG charts)."""

from __future__ import annotations

from typing import Any

from ftguard._html import render_report
from ftguard.review._evidence import SEVERITIES, DatasetReview
from ftguard.review.scanners._util import MAX_EXCERPT

__all__ = ["render_review_html"]

_COLORS = {
    "info": "#8aa",
    "low": "#6a9fd4",
    "medium": "#e0b040",
    "high": "#e07030",
    "critical": "#c02020",
}


def _bars(counts: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    """Stacked-bar geometry: one bar per scanner, one segment per severity."""
    rows = []
    biggest = max((sum(v.values()) for v in counts.values()), default=1) or 1
    for row, (name, per) in enumerate(sorted(counts.items())):
        x = 0.0
        segs = []
        for sev in SEVERITIES:
            c = per.get(sev, 0)
            if c:
                w = 400.0 * c / biggest
                segs.append(
                    {"x": x, "w": max(w, 1.0), "color": _COLORS[sev], "label": f"{sev}: {c}"}
                )
                x += w
        rows.append({"name": name, "segments": segs, "total": sum(per.values()), "y": 24 * row + 4})
    return rows


def render_review_html(review: DatasetReview, *, max_findings: int = 500) -> str:
    """Render a self-contained HTML report (excerpts are cut at ~200 characters).

    Args:
        review: The review to render.
        max_findings: Per-example findings listed at most (the counts cover all).

    """
    findings = sorted(review.findings, key=lambda f: (-SEVERITIES.index(f.severity), f.example))[
        :max_findings
    ]
    cut = [f.model_copy(update={"excerpt": f.excerpt[:MAX_EXCERPT]}) for f in findings]
    max_score = max((t.score for t in review.triggers), default=1.0) or 1.0
    return render_report(
        "ftguard.review",
        "review.html.j2",
        {
            "r": review,
            "findings": cut,
            "bars": _bars(review.counts),
            "colors": _COLORS,
            "severities": SEVERITIES,
            "max_score": max_score,
            "shown": len(cut),
            "total": len(review.findings),
        },
    )
