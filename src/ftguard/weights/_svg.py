"""The weight report's layer x module heatmap as inline SVG (no script, no style sheet).

One function draws it for the weight report's own page, the job report and (it is written
for that) the server console: SVG presentation attributes only (no ``style``, so a strict
Content-Security-Policy holds), every text escaped, a ``<title>`` on every cell, a colour
legend, and a plain table with the same numbers for screen readers and text browsers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from html import escape
from typing import Any, Literal

from ftguard.weights._evidence import WeightReport

__all__ = ["Heatmap", "heatmap_cells", "weights_heatmap_svg"]

Metric = Literal["relative", "baseline_z"]

_EMPTY = "#eef0f3"
_FLAG = "#c62828"
_INK = "#1b1f24"
_DECADES = 4


class Heatmap:
    """Cells of one heatmap: (layer or None, module kind) -> value, in drawing order."""

    def __init__(self, cells: dict[tuple[int | None, str], float], metric: Metric) -> None:
        self.cells, self.metric = cells, metric
        self.kinds = sorted({k for _, k in cells})
        named = sorted({lyr for lyr, _ in cells if lyr is not None})
        self.layers: list[int | None] = [
            *named,
            *([None] if any(lyr is None for lyr, _ in cells) else []),
        ]
        finite = [v for v in cells.values() if math.isfinite(v)]
        self.vmax = max(finite, default=0.0)


def _report(report: WeightReport | Mapping[str, Any]) -> WeightReport | None:
    if isinstance(report, WeightReport):
        return report
    try:
        return WeightReport.model_validate(report)
    except ValueError:
        return None


def heatmap_cells(report: WeightReport, metric: Metric = "relative") -> Heatmap:
    """Aggregate a report's tensors per (layer, module kind).

    ``relative``: sqrt(sum ||dW||² / sum ||W||²) over the cell's tensors. ``baseline_z``: the
    largest robust z of a cell's tensors against the baselines (reports judged by baselines).
    """
    if metric == "baseline_z":
        z: dict[tuple[int | None, str], float] = {}
        for t in report.tensors:
            if t.baseline_z is not None and math.isfinite(t.baseline_z):
                key = (t.layer, t.kind)
                z[key] = max(t.baseline_z, z.get(key, -math.inf))
        return Heatmap(z, metric)
    sums: dict[tuple[int | None, str], list[float]] = {}
    for t in report.tensors:
        if t.base_norm and math.isfinite(t.diff_norm):
            acc = sums.setdefault((t.layer, t.kind), [0.0, 0.0])
            acc[0] += t.diff_norm**2
            acc[1] += t.base_norm**2
    return Heatmap({k: math.sqrt(d / b) for k, (d, b) in sums.items() if b > 0}, metric)


def _relative_color(value: float | None, vmax: float) -> str:
    """White to deep red on a log scale over four decades below ``vmax``."""
    if value is None or vmax <= 0 or not math.isfinite(value) or value <= 0:
        return _EMPTY
    lo = vmax / 10**_DECADES
    t = (math.log10(max(value, lo)) - math.log10(lo)) / _DECADES
    t = min(1.0, max(0.0, t))
    return f"rgb(255,{int(245 - 190 * t)},{int(235 - 205 * t)})"


def _z_color(value: float | None, limit: float) -> str:
    """Blue (below the baselines' median) through white (at it) to red (2x the limit and up)."""
    if value is None or not math.isfinite(value):
        return _EMPTY
    if value < 0:
        t = min(1.0, -value / max(limit, 1e-9))
        return f"rgb({int(255 - 130 * t)},{int(255 - 90 * t)},255)"
    t = min(1.0, value / max(2 * limit, 1e-9))
    return f"rgb(255,{int(250 - 200 * t)},{int(245 - 215 * t)})"


def _fmt(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.3g}"


def weights_heatmap_svg(
    report: WeightReport | Mapping[str, Any],
    *,
    metric: Metric = "relative",
    z_limit: float = 6.0,
    table: bool = True,
    ident: str = "wh",
) -> str:
    """A layer x module heatmap of a weight report as inline SVG (plus a table fallback).

    Args:
        report: A :class:`WeightReport` or its JSON object (a malformed one draws nothing).
        metric: ``relative`` (||dW|| / ||W||, log colour scale) or ``baseline_z`` (the largest
            robust z of a cell's tensors against the baselines; empty without baselines).
        z_limit: Where the z scale reaches mid-red (the policy's ``z_limit``).
        table: Also emit a ``<details>`` table of the same numbers.
        ident: A prefix for element ids, unique within the page.

    Returns:
        Markup-safe HTML (every text escaped), or ``""`` when there is nothing to draw.

    """
    r = _report(report)
    if r is None:
        return ""
    hm = heatmap_cells(r, metric)
    if not hm.cells:
        return ""
    ident = escape(ident)
    flagged_layers = {f.layer for f in r.flags if f.layer is not None}
    flagged_names = {f.tensor for f in r.flags if f.tensor}
    flagged_cells = {
        (t.layer, t.kind) for t in r.tensors if t.name in flagged_names or t.module in flagged_names
    }
    if metric == "relative":
        color = lambda v: _relative_color(v, hm.vmax)  # noqa: E731
        what = f"relative weight change ||dW||/||W|| (log colour scale, largest {_fmt(hm.vmax)})"
    else:
        color = lambda v: _z_color(v, z_limit)  # noqa: E731
        what = f"largest robust z against the baselines (limit {z_limit:g})"
    cw, ch, left, top = 60, 16, 96, 76
    width, height = left + cw * len(hm.kinds) + 24, top + ch * len(hm.layers) + 48
    out = [
        f'<svg class="ftguard-heatmap" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-labelledby="{ident}-title"><title id="{ident}-title">'
        f"{escape('Per layer and module kind: ' + what)}; flagged layers and cells outlined in red</title>"
    ]
    for i, kind in enumerate(hm.kinds):
        x = left + cw * i + cw / 2
        out.append(
            f'<text x="{x:.0f}" y="{top - 6}" transform="rotate(-40 {x:.0f} {top - 6})" '
            f'font-size="11" fill="{_INK}">{escape(kind)}</text>'
        )
    for j, layer in enumerate(hm.layers):
        y = top + ch * j
        label = "outside layers" if layer is None else f"layer {layer}"
        mark = layer is not None and layer in flagged_layers
        weight = ' font-weight="bold"' if mark else ""
        out.append(
            f'<text x="{left - 6}" y="{y + 12}" text-anchor="end" font-size="11" '
            f'fill="{_FLAG if mark else _INK}"{weight}>{escape(label)}{" ⚑" if mark else ""}</text>'
        )
        for i, kind in enumerate(hm.kinds):
            value = hm.cells.get((layer, kind))
            flagged = mark or (layer, kind) in flagged_cells
            stroke = f'stroke="{_FLAG}" stroke-width="2"' if flagged else 'stroke="#ffffff"'
            tip = f"{label}, {kind}: {_fmt(value)}" + (" (flagged)" if flagged else "")
            out.append(
                f'<rect x="{left + cw * i}" y="{y}" width="{cw}" height="{ch}" '
                f'fill="{color(value)}" {stroke}><title>{escape(tip)}</title></rect>'
            )
    y = top + ch * len(hm.layers) + 14
    if metric == "relative":
        stops = [
            hm.vmax / 10 ** (_DECADES - _DECADES * k / 5) if hm.vmax > 0 else None for k in range(6)
        ]
        lo_txt, hi_txt = f"≤{_fmt(hm.vmax / 10**_DECADES)}", _fmt(hm.vmax)
    else:
        stops = [-z_limit + k * 3 * z_limit / 5 for k in range(6)]
        lo_txt, hi_txt = f"{-z_limit:g}", f"≥{2 * z_limit:g}"
    out.append(
        f'<text x="{left}" y="{y + 11}" font-size="11" fill="{_INK}" text-anchor="end">{escape(lo_txt)}</text>'
    )
    for k, v in enumerate(stops):
        out.append(
            f'<rect x="{left + 6 + 22 * k}" y="{y}" width="22" height="14" fill="{color(v)}" '
            f'stroke="#ffffff"><title>{escape(_fmt(v))}</title></rect>'
        )
    out.append(
        f'<text x="{left + 12 + 22 * 6}" y="{y + 11}" font-size="11" fill="{_INK}">{escape(hi_txt)}'
        f"</text></svg>"
    )
    if table:
        head = "".join(f'<th scope="col">{escape(k)}</th>' for k in hm.kinds)
        rows = "".join(
            f'<tr><th scope="row">{escape("outside layers" if layer is None else f"layer {layer}")}</th>'
            + "".join(f"<td>{escape(_fmt(hm.cells.get((layer, k))))}</td>" for k in hm.kinds)
            + "</tr>"
            for layer in hm.layers
        )
        out.append(
            f'<details class="ftguard-heatmap-table"><summary>The same as a table ({escape(what)})</summary>'
            f'<table><tr><th scope="col">layer</th>{head}</tr>{rows}</table></details>'
        )
    return "".join(out)
