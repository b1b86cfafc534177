"""The weight diff on Ray (one task per shard pair) gives the local diff's report (ftguard[ray])."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.weights._ckpt import llama_tensors, perturb, write_model

ray = pytest.importorskip("ray", reason="needs ftguard[ray]")

from ftguard.weights import diff  # noqa: E402
from ftguard.weights._ray import pair_sums, shard_pairs, tensor_sums_on_ray  # noqa: E402
from ftguard.weights._safetensors import open_checkpoint  # noqa: E402
from ftguard.weights._stats import diff_sources  # noqa: E402
from ftguard.weights._stream import merge, windows  # noqa: E402


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    """A local Ray runtime of two workers for the module; always shut down."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def sharded_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 4-shard base and a 3-shard tuned model (shards that do not line up)."""
    root = tmp_path_factory.mktemp("ray-diff")
    base_t = llama_tensors(num_layers=6, seed=4, dtype="float32")
    tuned_t = perturb(base_t, 0.05, seed=5, only="layers.3.")
    tuned_t["model.layers.1.mlp.up_proj.weight"] = base_t["model.layers.1.mlp.up_proj.weight"] * 1.5
    base = write_model(root / "base", base_t, shards=4, num_layers=6)
    tuned = write_model(root / "tuned", tuned_t, shards=3, num_layers=6)
    return base, tuned


def _report(data: dict[str, object]) -> dict[str, object]:
    data = dict(data)
    data.pop("seconds", None)
    return json.loads(json.dumps(data, sort_keys=True))


def test_shard_pairs_cover_every_tensor_once(sharded_pair: tuple[Path, Path]) -> None:
    base, tuned = (open_checkpoint(p) for p in sharded_pair)
    names = [n for n in base.names if n in tuned]
    pairs = shard_pairs(base, tuned, names)
    assert 4 < len(pairs) <= 12  # 4 x 3 shards that do not line up
    assert sorted(n for _, _, group in pairs for n in group) == sorted(names)


def test_partial_statistics_are_the_local_ones_bit_for_bit(
    sharded_pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows merged in the local order: the same float64 sums, not merely close ones."""
    monkeypatch.setattr("ftguard.weights._stream.WINDOW", 1000)  # several windows a tensor
    base, tuned = (open_checkpoint(p) for p in sharded_pair)
    names = [n for n in base.names if n in tuned]
    for b, t, group in shard_pairs(base, tuned, names):
        got = pair_sums(b, t, group, 1e-6)
        for n in group:
            parts = [
                diff_sources(base.source(n), tuned.source(n), lo, hi, 1e-6)
                for lo, hi in windows(base.info(n).numel)
            ]
            assert got[n] == merge(parts)
    changed = pair_sums(*shard_pairs(base, tuned, ["model.layers.1.mlp.up_proj.weight"])[0], 1e-6)
    s = changed["model.layers.1.mlp.up_proj.weight"]
    w = base.raw("model.layers.1.mlp.up_proj.weight").astype(np.float64)
    assert s.changed == s.numel == w.size
    assert s.diff_sq == pytest.approx(float(((0.5 * w) ** 2).sum()), rel=1e-5)


def test_ray_diff_report_equals_local_report(
    sharded_pair: tuple[Path, Path], ray_local: None
) -> None:
    base, tuned = sharded_pair
    local = diff(base, tuned)
    on_ray = diff(base, tuned, engine="ray")
    assert local.verdict == on_ray.verdict
    assert local.tensors_changed > 0
    assert _report(on_ray.to_json_dict()) == _report(local.to_json_dict())


def test_ray_sums_over_the_cluster_equal_local_sums(
    sharded_pair: tuple[Path, Path], ray_local: None
) -> None:
    base, tuned = (open_checkpoint(p) for p in sharded_pair)
    names = [n for n in base.names if n in tuned]
    got = tensor_sums_on_ray(base, tuned, names, 1e-6)
    assert list(got) == names
    for n in names:
        parts = [
            diff_sources(base.source(n), tuned.source(n), lo, hi, 1e-6)
            for lo, hi in windows(base.info(n).numel)
        ]
        assert got[n] == merge(parts)


def test_unknown_engine_is_refused(sharded_pair: tuple[Path, Path]) -> None:
    from ftguard.errors import BadInputError

    with pytest.raises(BadInputError, match="unknown weights engine 'spark'"):
        diff(*sharded_pair, engine="spark")
