"""HTML rendering of a weight report: verdict, the flags that drive it, heatmaps, all details."""

from __future__ import annotations

import math

from ftguard._html import render_report
from ftguard.weights._evidence import WeightFlag, WeightReport
from ftguard.weights._svg import weights_heatmap_svg

__all__ = ["key_flags", "render_weights_html"]


def _severity(f: WeightFlag) -> float:
    """How far past its limit a flag is (value / limit; 1 where either is missing)."""
    if f.value is None or f.limit is None or f.limit == 0 or not math.isfinite(f.value):
        return 1.0
    return abs(f.value / f.limit)


def key_flags(report: WeightReport, n: int = 5) -> list[WeightFlag]:
    """The few flags that drive the verdict: the furthest past their limits, one per place.

    A layer or tensor named by several flags is shown once (its strongest flag).
    """
    seen: set[tuple[object, object, object]] = set()
    out: list[WeightFlag] = []
    for f in sorted(report.flags, key=lambda f: -_severity(f)):
        where = (f.layer, f.tensor, None if f.layer is not None or f.tensor else f.feature)
        if where in seen:
            continue
        seen.add(where)
        out.append(f)
        if len(out) == n:
            break
    return out


def render_weights_html(report: WeightReport, *, top: int = 25) -> str:
    """Render a self-contained HTML page of the report (no script, no external resources)."""
    from markupsafe import Markup

    from ftguard.policy import WeightsPolicy

    z_limit = WeightsPolicy().z_limit
    rel_svg = weights_heatmap_svg(report, metric="relative", ident="rel")
    z_svg = (
        weights_heatmap_svg(report, metric="baseline_z", z_limit=z_limit, ident="z")
        if report.judged_by == "baselines"
        else ""
    )
    return render_report(
        "ftguard.weights",
        "weights.html.j2",
        {
            "r": report,
            "key": key_flags(report),
            "top": report.tensors[:top],
            "rel_svg": Markup(rel_svg),
            "z_svg": Markup(z_svg),  # noqa: S704 - built with every text escaped
        },
        strict_undefined=True,
    )
