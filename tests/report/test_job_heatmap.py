"""The job report shows the weight report's heatmap (the same SVG as the weight report)."""

from __future__ import annotations

import sys
from pathlib import Path

from ftguard.report._job import _env, _weights_heatmap
from ftguard.weights import diff, weights_heatmap_svg

sys.path.insert(0, str(Path(__file__).parents[1] / "weights"))
from _ckpt import llama_tensors, perturb, write_model  # noqa: E402


def test_job_report_includes_the_weights_heatmap(tmp_path: Path) -> None:
    w = llama_tensors(num_layers=4, seed=1)
    r = diff(write_model(tmp_path / "b", w), write_model(tmp_path / "t", perturb(w, 0.1)))
    body = r.to_json_dict()
    svg = _weights_heatmap(body, 7)
    assert svg is not None and str(svg) == weights_heatmap_svg(body, ident="ev7")
    assert _weights_heatmap({"tensors": "garbage"}, 8) is None
    job = {
        "id": "j1",
        "state": "evaluated",
        "purpose": "p",
        "requester": "a",
        "preparer": "b",
        "dataset": {"path": "d", "sha256": "0"},
        "base_model": {"path": "m", "sha256": "1"},
        "config": {"path": "c", "sha256": "2"},
        "output_path": None,
        "approvals": [],
    }
    ev = [
        {
            "kind": "weights",
            "digest": "f" * 64,
            "verdict": r.verdict,
            "link": "weights.html",
            "heatmap": svg,
        }
    ]
    html = _env().get_template("job.html").render(job=job, gate=None, evidence=ev, events=[])
    assert '<svg class="ftguard-heatmap"' in html and "&lt;svg" not in html
