"""Within-model checks (issue 22 §3): an update concentrated in one layer or module."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from ftguard.weights import WeightsPolicy, diff
from ftguard.weights._within import within_model_scores

sys.path.insert(0, str(Path(__file__).parent))
from _ckpt import llama_tensors, perturb, write_adapter, write_model  # noqa: E402

LAYERS = 8


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    w = llama_tensors(num_layers=LAYERS, seed=3)
    return write_model(tmp_path_factory.mktemp("base"), w, num_layers=LAYERS), w


def _scale_layer(adapter: Path, layer: int, factor: float, module: str = "") -> None:
    f = adapter / "adapter_model.safetensors"
    t = load_file(str(f))
    save_file(
        {
            k: v * factor if f".layers.{layer}." in k and "lora_B" in k and module in k else v
            for k, v in t.items()
        },
        str(f),
    )


@pytest.mark.parametrize("layers", [4, LAYERS])
def test_an_adapter_concentrated_in_one_layer_is_flagged_naming_it(
    tmp_path: Path, layers: int
) -> None:
    w = llama_tensors(num_layers=layers, seed=5)
    b = write_model(tmp_path / "b", w, num_layers=layers)
    a = write_adapter(
        tmp_path / "a", w, seed=1, targets=("q_proj", "v_proj", "down_proj"), scale_b=0.0005
    )
    benign = diff(b, a)
    assert benign.verdict == "pass", [f.reason for f in benign.flags]
    _scale_layer(a, 2, 20.0)
    r = diff(b, a)
    assert r.judged_by == "fixed_limits" and r.verdict == "flag"
    within = [f for f in r.flags if f.feature == "within.layer_z"]
    assert within and within[0].layer == 2, [f.reason for f in r.flags]
    assert (
        within[0].reason.startswith("layer 2 changed 1")
        and "x the median of this model's" in within[0].reason
    )


def test_one_module_of_one_layer_is_named(
    tmp_path: Path, base: tuple[Path, dict[str, np.ndarray]]
) -> None:
    b, w = base
    a = write_adapter(
        tmp_path / "a",
        w,
        seed=2,
        targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    )
    _scale_layer(a, 5, 30.0, module="v_proj")
    r = diff(b, a)
    flagged = [f for f in r.flags if f.feature in ("within.module_z", "within.layer_z")]
    assert any(
        f.feature == "within.module_z" and f.layer == 5 and f.tensor and "v_proj" in f.tensor
        for f in flagged
    ), [f.reason for f in r.flags]


def test_a_full_finetune_concentrated_in_one_layer_is_flagged(
    tmp_path: Path, base: tuple[Path, dict[str, np.ndarray]]
) -> None:
    b, w = base
    t = perturb(w, 0.01, seed=4)
    for k in t:
        if ".layers.6." in k:
            t[k] = (w[k] + 20 * (t[k] - w[k])).astype(w[k].dtype)
    r = diff(b, write_model(tmp_path / "full", t, num_layers=LAYERS))
    assert r.verdict == "flag"
    assert any(f.feature == "within.layer_z" and f.layer == 6 for f in r.flags), [
        f.reason for f in r.flags
    ]
    even = diff(b, write_model(tmp_path / "even", perturb(w, 0.01, seed=4), num_layers=LAYERS))
    assert not any(f.feature and f.feature.startswith("within.") for f in even.flags)


def test_the_checks_hold_with_baselines_too_and_can_be_turned_off(
    tmp_path: Path, base: tuple[Path, dict[str, np.ndarray]]
) -> None:
    b, w = base
    fps = [
        diff(b, write_adapter(tmp_path / f"a{i}", w, seed=10 + i, scale_b=0.0005)).fingerprint
        for i in range(5)
    ]
    a = write_adapter(tmp_path / "conc", w, seed=20, scale_b=0.0005)
    _scale_layer(a, 3, 20.0)
    r = diff(b, a, baselines=fps)
    assert r.judged_by == "baselines" and any(
        f.feature == "within.layer_z" and f.layer == 3 for f in r.flags
    )
    off = diff(b, a, policy=WeightsPolicy(within_model_checks=False))
    assert not any(f.feature and f.feature.startswith("within.") for f in off.flags)


def test_scores_leave_out_unchanged_layers_and_need_enough_peers(
    tmp_path: Path, base: tuple[Path, dict[str, np.ndarray]]
) -> None:
    b, w = base
    r = diff(b, write_adapter(tmp_path / "few", w, seed=3, layers=[1, 2, 3]))
    assert not [
        s for s in within_model_scores(r.tensors, r.layers, WeightsPolicy()) if s.check == "layer"
    ]
    r = diff(b, write_adapter(tmp_path / "more", w, seed=3, layers=[1, 2, 3, 4, 5]))
    layer_scores = [
        s for s in within_model_scores(r.tensors, r.layers, WeightsPolicy()) if s.check == "layer"
    ]
    assert sorted(s.layer for s in layer_scores) == [1, 2, 3, 4, 5]  # type: ignore[type-var]
    assert all(s.peers == 5 for s in layer_scores)


def test_the_rank_check_sees_a_rank_one_edit(
    tmp_path: Path, base: tuple[Path, dict[str, np.ndarray]]
) -> None:
    b, w = base
    a = write_adapter(tmp_path / "a", w, seed=6, rank=8, targets=("q_proj",))
    f = a / "adapter_model.safetensors"
    t = load_file(str(f))
    key = "base_model.model.model.layers.4.self_attn.q_proj.lora_B.weight"
    t[key] = np.outer(t[key][:, 0], np.ones(8)).astype(np.float32)  # B of rank one
    save_file(t, str(f))
    r = diff(b, a, policy=WeightsPolicy(within_rank_z_limit=8.0))
    rank = [x for x in r.flags if x.feature == "within.rank_z"]
    assert rank and rank[0].layer == 4, [x.reason for x in r.flags]
