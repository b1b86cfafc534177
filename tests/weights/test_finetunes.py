"""Seed validations 3 and 5: real short fine-tunes of the embedded model.

Benign LoRA adapters (Alpaca / Dolly subsets) build the baseline; a harmful-compliance adapter,
a trigger-backdoor adapter and a full fine-tune of two layers must be flagged; a fresh benign
adapter must not. Each adapter is trained once per cache folder (``$FTGUARD_CACHE``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ftguard.weights import WeightReport

sys.path.insert(0, str(Path(__file__).parent))
from _finetunes import data_available, finetune  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.shared_data,
    pytest.mark.skipif(
        not data_available(), reason="needs ../shared/data (Alpaca, Dolly, AdvBench, BackdoorLLM)"
    ),
]

BENIGN = [
    ("benign-alpaca", 0),
    ("benign-dolly", 0),
    ("benign-alpaca", 1),
    ("benign-dolly", 1),
    ("benign-alpaca", 2),
]
FRESH = ("benign-dolly", 2)


@pytest.fixture(scope="session")
def tuned(embedded_model: Path) -> dict[tuple[str, int], Path]:
    import torch

    from ftguard.models import cache_root

    torch.set_num_threads(2)
    cache = cache_root() / "weights-finetunes"
    runs = [*BENIGN, FRESH, ("harmful", 0), ("backdoor", 0), ("full", 0)]
    return {r: finetune(embedded_model, r[0], r[1], cache) for r in runs}


@pytest.fixture(scope="session")
def judged(
    embedded_model: Path,
    tuned: dict[tuple[str, int], Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, WeightReport]:
    from ftguard.digests import manifest_of
    from ftguard.weights import diff

    cache = tmp_path_factory.mktemp("fp")
    digest = manifest_of(embedded_model).root
    baselines = [
        diff(embedded_model, tuned[b], fingerprint_cache=cache, base_digest=digest).fingerprint
        for b in BENIGN
    ]
    return {
        kind: diff(
            embedded_model,
            tuned[key],
            baselines=baselines,
            fingerprint_cache=cache,
            base_digest=digest,
        )
        for kind, key in [
            ("fresh", FRESH),
            ("harmful", ("harmful", 0)),
            ("backdoor", ("backdoor", 0)),
            ("full", ("full", 0)),
        ]
    }


def test_fresh_benign_adapter_passes(judged: dict[str, WeightReport]) -> None:
    r = judged["fresh"]
    assert r.judged_by == "baselines" and r.baseline_count == 5
    assert r.verdict == "pass", [f.reason for f in r.flags]


@pytest.mark.parametrize("kind", ["harmful", "backdoor", "full"])
def test_adversarial_fine_tunes_are_flagged(judged: dict[str, WeightReport], kind: str) -> None:
    r, fresh = judged[kind], judged["fresh"]
    assert r.verdict == "flag"
    assert r.anomaly_score > 2 * fresh.anomaly_score
    assert any("earlier approved jobs" in f.reason for f in r.flags)


def test_without_baselines_full_finetune_is_flagged_and_benign_passes(
    embedded_model: Path,
    tuned: dict[tuple[str, int], Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from ftguard.weights import diff

    cache = tmp_path_factory.mktemp("fp-fixed")
    full = diff(embedded_model, tuned[("full", 0)], fingerprint_cache=cache, base_digest="0" * 64)
    assert full.judged_by == "fixed_limits" and full.verdict == "flag"
    conc = [f for f in full.flags if f.feature == "energy.layer_concentration"]
    assert conc and conc[0].layer in (14, 15)
    fresh = diff(embedded_model, tuned[FRESH], fingerprint_cache=cache, base_digest="0" * 64)
    assert fresh.judged_by == "fixed_limits" and fresh.verdict == "pass", [
        f.reason for f in fresh.flags
    ]


def test_narrow_data_adapters_show_the_profile_pattern(judged: dict[str, WeightReport]) -> None:
    for kind in ("harmful", "backdoor"):
        assert any(f.feature == "profile.combined" for f in judged[kind].flags), kind
    assert "combined z" in judged["fresh"].judgement


@pytest.mark.slow
def test_alignment_direction_with_the_real_aligned_model(
    embedded_model: Path,
    aligned_model: Path,
    tuned: dict[tuple[str, int], Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Harmful compliance moves against V = W_aligned - W_unaligned relative to benign tuning.

    Measured with the reference aligned model (docs/weights.md): whole-update cos(dW, V)
    about +0.001 for benign adapters, <= 0 for harmful ones; in the safety-critical middle
    block the harmful adapters' cosine is negative, the benign ones' positive. Magnitudes
    are tiny (a rank-8, 12-step update and a rank-16 safety LoRA are nearly orthogonal), so
    only the order is asserted.
    """
    from ftguard.weights import diff

    cache = tmp_path_factory.mktemp("fp-align")
    pair = (embedded_model, aligned_model)
    rep = {
        k: diff(
            embedded_model,
            tuned[key],
            alignment=pair,
            fingerprint_cache=cache,
            base_digest="0" * 64,
        )
        for k, key in [("benign", ("benign-alpaca", 0)), ("harmful", ("harmful", 0))]
    }

    def middle(r: WeightReport) -> float:
        assert r.alignment is not None
        crit = {g.layer for g in r.layers if g.critical and g.layer is not None}
        vals = [al.cosine for al in r.alignment.layers if al.layer in crit]
        return sum(vals) / len(vals)

    b, h = rep["benign"].alignment, rep["harmful"].alignment
    assert b is not None and h is not None
    assert h.cosine < b.cosine
    assert middle(rep["harmful"]) < middle(rep["benign"])
    assert all(t.alignment_cosine is not None for t in rep["harmful"].tensors if t.source == "lora")


def test_full_finetune_is_located(judged: dict[str, WeightReport]) -> None:
    r = judged["full"]
    assert r.tuned_kind == "full"
    changed = {t.layer for t in r.tensors if t.diff_norm > 0}
    assert changed == {14, 15}
    assert any(f.layer in (14, 15) for f in r.flags)
