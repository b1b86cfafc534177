"""HTML rendering of a weight report: verdict, flags, a layer × module heatmap, top tensors."""

from __future__ import annotations

import math
from importlib import resources

from ftguard.weights._report import WeightReport

__all__ = ["render_weights_html"]


def _color(value: float | None, vmax: float) -> str:
    if value is None or vmax <= 0 or not math.isfinite(value) or value <= 0:
        return "#f4f4f4"
    lo = vmax / 1e4
    t = (math.log10(max(value, lo)) - math.log10(lo)) / (math.log10(vmax) - math.log10(lo))
    t = min(1.0, max(0.0, t))
    r, g, b = 255, int(245 - 190 * t), int(235 - 205 * t)
    return f"rgb({r},{g},{b})"


def render_weights_html(report: WeightReport, *, top: int = 25) -> str:
    """Render a self-contained HTML page of the report (no external resources)."""
    import jinja2

    text = resources.files("ftguard.weights").joinpath("templates/weights.html.j2").read_text("utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    cells: dict[tuple[int | None, str], list[float]] = {}
    for t in report.tensors:
        if t.base_norm:
            c = cells.setdefault((t.layer, t.kind), [0.0, 0.0])
            c[0] += t.diff_norm**2
            c[1] += t.base_norm**2
    kinds = sorted({k for _, k in cells})
    layer_ids = sorted({layer for layer, _ in cells if layer is not None})
    rel = {key: math.sqrt(d / b) for key, (d, b) in cells.items() if b > 0}
    vmax = max([v for v in rel.values() if math.isfinite(v)], default=0.0)
    rows = []
    for layer in [*layer_ids, None] if any(lyr is None for lyr, _ in cells) else layer_ids:
        rows.append(
            {
                "label": f"layer {layer}" if layer is not None else "outside",
                "cells": [
                    {"value": rel.get((layer, k)), "color": _color(rel.get((layer, k)), vmax)}
                    for k in kinds
                ],
            }
        )
    return env.from_string(text).render(
        r=report, kinds=kinds, rows=rows, top=report.tensors[:top], vmax=vmax
    )
