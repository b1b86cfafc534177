"""The weight report's page: key flags first, the heatmap as inline SVG, details folded."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from ftguard.weights import diff, render_weights_html, weights_heatmap_svg
from ftguard.weights._html import key_flags

sys.path.insert(0, str(Path(__file__).parent))
from _ckpt import llama_tensors, perturb, write_adapter, write_model  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    w = llama_tensors(num_layers=6, seed=7)
    return write_model(tmp_path_factory.mktemp("base"), w, num_layers=6), w


def test_heatmap_is_accessible_inline_svg_with_a_legend_and_a_table(
    tmp_path: Path, model: tuple[Path, dict[str, np.ndarray]]
) -> None:
    b, w = model
    r = diff(b, write_model(tmp_path / "t", perturb(w, 0.5, only="layers.3."), num_layers=6))
    svg = weights_heatmap_svg(r)
    assert svg.startswith('<svg class="ftguard-heatmap"') and 'role="img"' in svg
    assert (
        "<script" not in svg
        and "style=" not in svg
        and "http://" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )
    cells = re.findall(
        r'<rect x="\d+" y="\d+" width="60" height="16" fill="[^"]+" [^>]*><title>([^<]+)</title>',
        svg,
    )
    kinds = {t.kind for t in r.tensors if t.base_norm}
    layers = {t.layer for t in r.tensors if t.base_norm}
    assert len(cells) == len(kinds) * len(layers)
    assert any(c.startswith("layer 3, mlp.down: ") and "(flagged)" in c for c in cells)
    assert svg.count('width="22" height="14"') == 6  # the legend's colour steps
    assert "<details" in svg and "<table>" in svg and '<th scope="row">layer 3</th>' in svg
    assert weights_heatmap_svg(r.to_json_dict()) == svg  # the JSON form draws the same
    assert weights_heatmap_svg({"not": "a report"}) == ""
    assert weights_heatmap_svg(r, metric="baseline_z") == ""  # no baselines, no z map


def test_text_is_escaped(tmp_path: Path, model: tuple[Path, dict[str, np.ndarray]]) -> None:
    b, w = model
    r = diff(b, write_model(tmp_path / "t", perturb(w, 0.01), num_layers=6))
    t = r.tensors[0].model_copy(update={"kind": "<b>x</b>"})
    svg = weights_heatmap_svg(r.model_copy(update={"tensors": [t, *r.tensors[1:]]}))
    assert "<b>x</b>" not in svg and "&lt;b&gt;x&lt;/b&gt;" in svg


def test_page_leads_with_key_flags_and_folds_the_rest(
    tmp_path: Path, model: tuple[Path, dict[str, np.ndarray]]
) -> None:
    b, w = model
    r = diff(b, write_model(tmp_path / "t", perturb(w, 2.0), num_layers=6))
    assert len(r.flags) > 5
    key = key_flags(r)
    assert 1 <= len(key) <= 5 and len(
        {(f.layer, f.tensor) for f in key if f.layer is not None or f.tensor}
    ) == len([f for f in key if f.layer is not None or f.tensor])
    html = render_weights_html(r)
    assert html.index(key[0].reason) < html.index("<svg") < html.index(f"All {len(r.flags)} flags")
    assert "<details><summary>Top 25 changed tensors</summary>" in html
    assert "<script" not in html


def test_baseline_z_map_with_baselines(
    tmp_path: Path, model: tuple[Path, dict[str, np.ndarray]]
) -> None:
    b, w = model
    fps = [
        diff(b, write_adapter(tmp_path / f"a{i}", w, seed=i, scale_b=0.0005)).fingerprint
        for i in range(5)
    ]
    r = diff(b, write_adapter(tmp_path / "new", w, seed=9, scale_b=0.0005), baselines=fps)
    assert r.judged_by == "baselines" and any(t.baseline_z is not None for t in r.tensors)
    z = weights_heatmap_svg(r, metric="baseline_z", ident="z")
    assert z and "robust z against the baselines" in z and 'id="z-title"' in z
    html = render_weights_html(r)
    assert "Against the baselines: robust z by layer and module" in html and html.count("<svg") == 2
