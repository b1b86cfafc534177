"""Inline SVG charts and formatting filters for the console (server-side, no JavaScript).

The console's Content-Security-Policy forbids inline styles, so the charts use SVG
presentation attributes (``fill``, ``stroke``) only. Every value comes from stored evidence
and is read defensively: a missing or malformed field is skipped, never an error. All text
is escaped with :func:`markupsafe.escape`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from markupsafe import Markup, escape

__all__ = [
    "as_dict",
    "as_list",
    "behavior_svgs",
    "dash",
    "heatmap_svg",
    "num",
    "payload_summary",
    "pct",
    "short",
]

DASH = "—"
_EMPTY = "#eef0f3"
_BEFORE = "#6b7a90"
_AFTER = "#1f6feb"
_BREACH = "#c62828"
_FLAG = "#c62828"
_INK = "#1b1f24"


# -- defensive formatting filters ----------------------------------------------------------


def _missing(value: object) -> bool:
    from jinja2 import Undefined

    return value is None or isinstance(value, Undefined) or value == ""


def dash(value: object) -> object:
    """The value, or an em dash when it is missing (None, undefined or empty)."""
    return DASH if _missing(value) else value


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def num(value: object, digits: int = 3) -> str:
    """A number with ``digits`` significant digits, or an em dash."""
    number = _float(value)
    if number is None:
        return DASH
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"{number:.{digits}g}"


def pct(value: object, digits: int = 1) -> str:
    """A rate in [0, 1] as a percentage, or an em dash."""
    number = _float(value)
    return DASH if number is None else f"{number * 100:.{digits}f}%"


def short(value: object, length: int = 16) -> str:
    """The start of a digest or key id (its full value belongs in a ``title``)."""
    return DASH if _missing(value) else str(value)[:length]


def as_list(value: object) -> list[Any]:
    """``value`` if it is a list, else an empty list."""
    return value if isinstance(value, list) else []


def as_dict(value: object) -> dict[str, Any]:
    """``value`` if it is a mapping, else an empty dict."""
    return dict(value) if isinstance(value, Mapping) else {}


def payload_summary(payload: object, limit: int = 200) -> str:
    """An audit event's payload as ``key: value; ...`` with long digests shortened."""
    import json

    parts: list[str] = []
    for key, value in as_dict(payload).items():
        if isinstance(value, str):
            text = value[:16] + "…" if len(value) > 24 and " " not in value else value
        else:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            text = text if len(text) <= 60 else text[:59] + "…"
        parts.append(f"{key}: {text}")
    joined = "; ".join(parts)
    return joined if len(joined) <= limit else joined[: limit - 1] + "…"


# -- the weight report's layer x module heatmap ----------------------------------------------


def _color(value: float | None, vmax: float) -> str:
    """White to deep red on a log scale over four decades below ``vmax``."""
    if value is None or vmax <= 0 or value <= 0:
        return _EMPTY
    lo = vmax / 1e4
    t = (math.log10(max(value, lo)) - math.log10(lo)) / (math.log10(vmax) - math.log10(lo))
    t = min(1.0, max(0.0, t))
    return f"rgb(255,{int(245 - 190 * t)},{int(235 - 205 * t)})"


def _cells(tensors: Iterable[Any]) -> dict[tuple[int | None, str], float]:
    sums: dict[tuple[int | None, str], list[float]] = {}
    fallback: dict[tuple[int | None, str], float] = {}
    for t in tensors:
        if not isinstance(t, Mapping):
            continue
        layer = t.get("layer")
        layer = layer if isinstance(layer, int) and not isinstance(layer, bool) else None
        kind = str(t.get("kind") or t.get("module") or "other")
        diff, base, rel = _float(t.get("diff_norm")), _float(t.get("base_norm")), None
        if diff is not None and base:
            acc = sums.setdefault((layer, kind), [0.0, 0.0])
            acc[0] += diff * diff
            acc[1] += base * base
        elif (rel := _float(t.get("relative_change"))) is not None:
            fallback[(layer, kind)] = max(rel, fallback.get((layer, kind), 0.0))
    cells = {key: math.sqrt(d / b) for key, (d, b) in sums.items() if b > 0}
    return {**fallback, **cells}


def heatmap_svg(report: object) -> Markup:
    """A layer x module heatmap of a weight report's relative changes, as inline SVG.

    Rows are transformer layers (then ``outside`` for embeddings and the head), columns are
    module kinds; flagged layers and tensors are outlined in red. Empty when there is nothing
    to draw.
    """
    body = as_dict(report)
    tensors = as_list(body.get("tensors"))
    cells = _cells(tensors)
    if not cells:
        return Markup("")
    flagged_layers = {
        f.get("layer") for f in as_list(body.get("flags")) if isinstance(f, Mapping)
    } - {None}
    flagged_names = {
        f.get("tensor") for f in as_list(body.get("flags")) if isinstance(f, Mapping)
    } - {None}
    flagged_cells = {
        (t.get("layer"), str(t.get("kind") or t.get("module") or "other"))
        for t in tensors
        if isinstance(t, Mapping) and t.get("name") in flagged_names
    }
    kinds = sorted({k for _, k in cells})
    layers: list[int | None] = [*sorted({lyr for lyr, _ in cells if lyr is not None})]
    if any(lyr is None for lyr, _ in cells):
        layers.append(None)
    vmax = max(cells.values(), default=0.0)
    cw, ch, left, top = 60, 20, 92, 76
    width, height = left + cw * len(kinds) + 56, top + ch * len(layers) + 44
    out = [
        f'<svg class="heatmap" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-labelledby="heatmap-title"><title id="heatmap-title">Relative weight change per '
        f"layer and module kind (log colour scale, largest {escape(num(vmax))})</title>"
    ]
    for i, kind in enumerate(kinds):
        x = left + cw * i + cw / 2
        out.append(
            f'<text x="{x:.0f}" y="{top - 6}" transform="rotate(-40 {x:.0f} {top - 6})" '
            f'font-size="12" fill="{_INK}">{escape(kind)}</text>'
        )
    for j, layer in enumerate(layers):
        y = top + ch * j
        label = "outside" if layer is None else f"layer {layer}"
        mark = layer in flagged_layers
        weight = ' font-weight="bold"' if mark else ""
        out.append(
            f'<text x="{left - 6}" y="{y + 14}" text-anchor="end" font-size="12" '
            f'fill="{_FLAG if mark else _INK}"{weight}>'
            f"{escape(label)}{' ⚑' if mark else ''}</text>"
        )
        for i, kind in enumerate(kinds):
            value = cells.get((layer, kind))
            flagged = mark or (layer, kind) in flagged_cells
            stroke = f'stroke="{_FLAG}" stroke-width="2"' if flagged else 'stroke="#ffffff"'
            tip = f"{label} · {kind}: " + (DASH if value is None else f"{value:.3g}")
            out.append(
                f'<rect x="{left + cw * i}" y="{y}" width="{cw}" height="{ch}" '
                f'fill="{_color(value, vmax)}" {stroke}><title>{escape(tip)}</title></rect>'
            )
    y = top + ch * len(layers) + 14
    out.append(f'<text x="{left}" y="{y + 12}" font-size="11" fill="{_INK}">low</text>')
    for k in range(6):
        value = vmax / 10 ** (4 - 4 * k / 5) if vmax > 0 else None
        out.append(
            f'<rect x="{left + 28 + 22 * k}" y="{y}" width="22" height="14" '
            f'fill="{_color(value, vmax)}" stroke="#ffffff"/>'
        )
    out.append(
        f'<text x="{left + 28 + 22 * 6 + 6}" y="{y + 12}" font-size="11" fill="{_INK}">'
        f"high ({escape(num(vmax))})</text></svg>"
    )
    return Markup("".join(out))


# -- the behaviour comparison's bars with confidence intervals -------------------------------


def _interval(value: object) -> tuple[float, float] | None:
    if isinstance(value, list | tuple) and len(value) == 2:
        lo, hi = _float(value[0]), _float(value[1])
        if lo is not None and hi is not None:
            return max(0.0, min(lo, hi)), min(1.0, max(lo, hi))
    return None


def _bar(y: float, x0: float, plot: float, rate: float, ci: object, fill: str, who: str) -> str:
    w = plot * min(1.0, max(0.0, rate))
    parts = [
        f'<rect x="{x0}" y="{y:.0f}" width="{w:.1f}" height="11" fill="{fill}">'
        f"<title>{escape(who)}: {escape(pct(rate))}</title></rect>"
    ]
    interval = _interval(ci)
    if interval is not None:
        a, b = x0 + plot * interval[0], x0 + plot * interval[1]
        mid = y + 5.5
        parts.append(
            f'<path d="M{a:.1f} {mid:.1f}H{b:.1f}M{a:.1f} {mid - 4:.1f}V{mid + 4:.1f}'
            f'M{b:.1f} {mid - 4:.1f}V{mid + 4:.1f}" stroke="{_INK}" stroke-width="1.2" '
            f'fill="none"/>'
        )
    return "".join(parts)


def behavior_svgs(comparison: object) -> list[dict[str, Any]]:
    """One bar chart per suite metric: before/after rates per category with 95% intervals.

    Returns a list of ``{"title", "svg", "breached"}``; the whole suite comes first in each
    chart, then its categories.
    """
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for m in as_list(as_dict(comparison).get("metrics")):
        if isinstance(m, Mapping) and _float(m.get("before_rate")) is not None:
            key = (str(m.get("suite") or DASH), str(m.get("metric") or DASH))
            groups.setdefault(key, []).append(m)
    charts: list[dict[str, Any]] = []
    for (suite, metric), rows in groups.items():
        rows.sort(key=lambda m: (m.get("category") is not None, str(m.get("category") or "")))
        left, plot, rh, top = 150, 280, 34, 22
        width, height = left + plot + 70, top + rh * len(rows) + 8
        out = [
            f'<svg class="bars" xmlns="http://www.w3.org/2000/svg" role="img" '
            f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
            f"<title>{escape(metric)} in {escape(suite)}: before (grey) and after (blue) "
            f"fine-tuning, with 95% intervals</title>"
        ]
        for tick in (0, 0.25, 0.5, 0.75, 1.0):
            x = left + plot * tick
            out.append(
                f'<path d="M{x:.0f} {top - 4}V{height - 6}" stroke="#d0d7de" stroke-width="1"/>'
                f'<text x="{x:.0f}" y="{top - 8}" text-anchor="middle" font-size="10" '
                f'fill="{_INK}">{tick * 100:.0f}%</text>'
            )
        for j, m in enumerate(rows):
            y = top + rh * j
            breached = bool(m.get("breached"))
            label = "whole suite" if m.get("category") is None else str(m.get("category"))
            label = label if len(label) <= 22 else label[:21] + "…"
            out.append(
                f'<text x="{left - 8}" y="{y + 17}" text-anchor="end" font-size="12" '
                f'fill="{_BREACH if breached else _INK}">{escape(label)}</text>'
            )
            before, after = _float(m.get("before_rate")) or 0.0, _float(m.get("after_rate")) or 0.0
            out.append(_bar(y + 2, left, plot, before, m.get("before_ci"), _BEFORE, "before"))
            out.append(
                _bar(
                    y + 16,
                    left,
                    plot,
                    after,
                    m.get("after_ci"),
                    _BREACH if breached else _AFTER,
                    "after",
                )
            )
            delta = _float(m.get("delta_points"))
            text = DASH if delta is None else f"{delta:+.1f} pts"
            out.append(
                f'<text x="{left + plot + 8}" y="{y + 20}" font-size="11" '
                f'fill="{_BREACH if breached else _INK}">{escape(text)}</text>'
            )
        out.append("</svg>")
        charts.append(
            {
                "title": f"{metric.replace('_', ' ')} ({suite.replace('_', ' ')})",
                "svg": Markup("".join(out)),
                "breached": any(bool(m.get("breached")) for m in rows),
            }
        )
    return charts
