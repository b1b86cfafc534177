"""The fused diff kernel (pread and in-memory sources), the read-ahead, and the new judging rules."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

from ftguard.errors import BadInputError
from ftguard.weights import Fingerprint, WeightsPolicy, diff
from ftguard.weights._anomaly import assess_fingerprint
from ftguard.weights._profile import profile_shift
from ftguard.weights._safetensors import SafetensorsFile
from ftguard.weights._stats import CHUNK, RawSource, diff_sources, diff_sums, norm_source

sys.path.insert(0, str(Path(__file__).parent))
from _ckpt import llama_tensors, perturb, save_bf16, to_bf16_bits, write_model  # noqa: E402


def _reference(a: np.ndarray, b: np.ndarray, tol: float) -> dict[str, float]:
    a, b = a.astype(np.float64), b.astype(np.float64)
    d = b - a
    return {
        "base_sq": float(a @ a),
        "tuned_sq": float(b @ b),
        "dot": float(a @ b),
        "diff_sq": float(d @ d),
        "max_abs": float(np.abs(d).max(initial=0.0)),
        "changed": int(np.count_nonzero(np.abs(d) > tol)),
    }


def _bf16_values(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    bits = to_bf16_bits(x)
    return bits, (bits.astype(np.uint32) << 16).view(np.float32)


@pytest.mark.parametrize(
    "dtypes", [("BF16", "BF16"), ("F32", "F32"), ("F16", "F16"), ("BF16", "F32"), ("F16", "BF16")]
)
def test_pread_kernel_matches_float64(tmp_path: Path, dtypes: tuple[str, str]) -> None:
    rng = np.random.default_rng(0)
    n = 2 * CHUNK + 12345  # several chunks and a ragged end
    base = rng.normal(0, 0.02, n).astype(np.float32)
    tuned = base.copy()
    tuned[CHUNK + 7 : CHUNK + 5000] += rng.normal(0, 0.01, 4993).astype(
        np.float32
    )  # chunks 0 and 2 unchanged
    raws, vals = [], []
    for x, dt in ((base, dtypes[0]), (tuned, dtypes[1])):
        if dt == "BF16":
            raw, v = _bf16_values(x)
        elif dt == "F16":
            raw = x.astype(np.float16)
            v = raw.astype(np.float32)
        else:
            raw, v = x, x
        raws.append(raw)
        vals.append(v)
    files = []
    for i, (raw, v, dt) in enumerate(zip(raws, vals, dtypes, strict=True)):
        p = tmp_path / f"m{i}.safetensors"
        if dt == "BF16":
            save_bf16({"w": v}, p)  # v is exactly representable: the same bits come back
        else:
            save_file({"w": raw}, str(p))
        files.append(SafetensorsFile(p))
    ref = _reference(vals[0], vals[1], 1e-6)
    from_file = diff_sources(files[0].source("w"), files[1].source("w"), 0, n, 1e-6)
    in_memory = diff_sums(raws[0], dtypes[0], raws[1], dtypes[1], 1e-6)
    for s in (from_file, in_memory):
        assert s.numel == n
        for key in ("base_sq", "tuned_sq", "dot"):
            assert getattr(s, key) == pytest.approx(ref[key], rel=1e-5)
        assert s.diff_sq == pytest.approx(ref["diff_sq"], rel=1e-4, abs=1e-12)
        assert s.max_abs == pytest.approx(ref["max_abs"], rel=1e-6)
        assert abs(s.changed - ref["changed"]) <= 2  # float32 rounding at the tolerance
    assert norm_source(files[0].source("w"), 0, n) == pytest.approx(ref["base_sq"], rel=1e-5)
    # windows add up to the whole
    parts = [
        diff_sources(files[0].source("w"), files[1].source("w"), lo, min(n, lo + 70001), 1e-6)
        for lo in range(0, n, 70001)
    ]
    total = parts[0]
    for p in parts[1:]:
        total.merge(p)
    assert total.diff_sq == pytest.approx(from_file.diff_sq, rel=1e-4)  # float32 per chunk
    assert total.changed == from_file.changed
    for f in files:
        f.close()


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 3000),
    seed=st.integers(0, 2**16),
    changed=st.floats(0.0, 1.0),
    scale=st.sampled_from([0.0, 1e-7, 1e-3, 1.0]),
)
def test_kernel_property(n: int, seed: int, changed: float, scale: float) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 1, n).astype(np.float32)
    b = a + (rng.random(n) < changed) * rng.normal(0, scale, n).astype(np.float32)
    b = b.astype(np.float32)
    s = diff_sums(a, "F32", b, "F32", 1e-6)
    ref = _reference(a, b, 1e-6)
    assert s.base_sq == pytest.approx(ref["base_sq"], rel=1e-5, abs=1e-6)
    assert s.diff_sq == pytest.approx(ref["diff_sq"], rel=1e-4, abs=1e-9)
    assert s.max_abs == pytest.approx(ref["max_abs"], rel=1e-6, abs=1e-12)
    assert abs(s.changed - ref["changed"]) <= max(2, n // 1000)
    assert -1.0 <= s.cosine <= 1.0
    if scale == 0.0 or changed == 0.0:
        assert s.diff_sq == 0.0 and s.changed == 0


def test_file_truncated_after_opening_is_one_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "m.safetensors"
    save_file({"w": np.ones(4 * CHUNK, np.float32)}, str(p))
    f = SafetensorsFile(p)
    os.truncate(p, p.stat().st_size - 1000)
    with pytest.raises(BadInputError, match="ended early"):
        diff_sources(f.source("w"), f.source("w"), 0, 4 * CHUNK, 1e-6)
    f.close()


def test_raw_source_in_memory_needs_no_file() -> None:
    src = RawSource("F32", array=np.arange(10, dtype=np.float32))
    assert norm_source(src, 2, 5) == pytest.approx(4 + 9 + 16)


# -- fixed limits: an update concentrated in a few layers --------------------------------


def test_update_concentrated_in_few_layers_is_flagged_without_baselines(tmp_path: Path) -> None:
    base = llama_tensors(num_layers=12, seed=0)
    b = write_model(tmp_path / "base", base, num_layers=12)
    few = write_model(tmp_path / "few", perturb(base, 0.002, only="layers.7."), num_layers=12)
    r = diff(b, few)
    assert r.judged_by == "fixed_limits" and r.verdict == "flag"
    conc = [f for f in r.flags if f.feature == "energy.layer_concentration"]
    assert conc and conc[0].layer == 7 and "concentrated in a few layers" in conc[0].reason
    # the same small change spread over every layer is not concentrated
    spread = write_model(tmp_path / "all", perturb(base, 0.002, only="layers."), num_layers=12)
    r2 = diff(b, spread)
    assert not [f for f in r2.flags if f.feature == "energy.layer_concentration"]
    assert r2.verdict == "pass", [f.reason for f in r2.flags]


def test_concentration_rule_needs_more_layers_than_its_limit(tmp_path: Path) -> None:
    base = llama_tensors(num_layers=4, seed=0)
    b = write_model(tmp_path / "base", base)
    r = diff(b, write_model(tmp_path / "one", perturb(base, 0.002, only="layers.1."), num_layers=4))
    assert not [f for f in r.flags if f.feature == "energy.layer_concentration"]


# -- baselines: tensor-by-tensor profile shifts ------------------------------------------


def _profile_fp(
    rng: np.random.Generator, *, mag: float = 0.0, tilt: float = 0.0, conc: float = 0.0
) -> Fingerprint:
    f: dict[str, float] = {}
    for layer in range(24):
        depth = layer / 23
        for m in ("self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"):
            rel = 2e-3 * np.exp(rng.normal(0, 0.08) + rng.normal(0, 0.02) + mag + tilt * depth)
            top1 = 0.4 * np.exp(rng.normal(0, 0.08) + conc)
            f[f"tensor.{layer}.{m}.rel"] = float(rel)
            f[f"tensor.{layer}.{m}.top1"] = float(top1)
    f["total.rel"] = 2e-3 * float(np.exp(mag))
    return Fingerprint(base_digest="b" * 64, kind="lora", features=f)


def test_profile_shift_flags_consistent_narrow_data_pattern() -> None:
    rng = np.random.default_rng(0)
    baselines = [_profile_fp(rng) for _ in range(8)]
    policy = WeightsPolicy()
    fresh = assess_fingerprint(
        _profile_fp(rng),
        policy=policy,
        baselines=baselines,
        critical_features=set(),
        tensors=[],
        layers=[],
        alignment=None,
    )
    assert not [f for f in fresh.flags if f.feature == "profile.combined"]
    assert "tensor-by-tensor profile" in fresh.text
    # each shift alone is moderate (8-10 %), together they are the narrow-data pattern
    narrow = _profile_fp(rng, mag=0.08, tilt=0.12, conc=0.08)
    ps = profile_shift(narrow, baselines, min_jobs=5, min_scale=0.01)
    assert ps is not None and set(ps.z) == {"magnitude", "depth", "concentration"}
    assert all(z > 1 for z in ps.z.values())
    j = assess_fingerprint(
        narrow,
        policy=policy,
        baselines=baselines,
        critical_features=set(),
        tensors=[],
        layers=[],
        alignment=None,
    )
    flag = next(f for f in j.flags if f.feature == "profile.combined")
    assert "larger" in flag.reason and "last third" in flag.reason and "concentrated" in flag.reason
    assert "narrow data such as harmful compliance" in flag.reason
    assert j.score > policy.anomaly_score_limit
    # a uniformly larger update (a harder run) is flagged, and read as mostly size
    harder = _profile_fp(rng, mag=0.9)
    j3 = assess_fingerprint(
        harder,
        policy=policy,
        baselines=baselines,
        critical_features=set(),
        tensors=[],
        layers=[],
        alignment=None,
    )
    flag3 = next(f for f in j3.flags if f.feature == "profile.combined")
    assert (
        flag3.reason.count("z +") == 1 and "larger (+" in flag3.reason
    )  # only the shift that drives it
    assert "mostly a larger update than theirs" in flag3.reason and "last third" not in flag3.reason
    # a uniformly smaller update is not the pattern (one-sided)
    smaller = _profile_fp(rng, mag=-0.3, conc=-0.1)
    j2 = assess_fingerprint(
        smaller,
        policy=policy,
        baselines=baselines,
        critical_features=set(),
        tensors=[],
        layers=[],
        alignment=None,
    )
    assert not [f for f in j2.flags if f.feature == "profile.combined"]


def test_profile_shift_needs_baselines_of_the_same_kind() -> None:
    rng = np.random.default_rng(1)
    baselines = [_profile_fp(rng) for _ in range(6)]
    full = _profile_fp(rng).model_copy(update={"kind": "full"})
    assert profile_shift(full, baselines, min_jobs=5, min_scale=0.01) is None
    assert profile_shift(_profile_fp(rng), baselines[:2], min_jobs=5, min_scale=0.01) is None
    off = WeightsPolicy(profile_checks=False)
    j = assess_fingerprint(
        _profile_fp(rng, mag=0.3, tilt=0.3, conc=0.3),
        policy=off,
        baselines=baselines,
        critical_features=set(),
        tensors=[],
        layers=[],
        alignment=None,
    )
    assert "tensor-by-tensor" not in j.text


def test_read_ahead_thread_ends_with_the_diff(tmp_path: Path) -> None:
    import threading

    base = llama_tensors(num_layers=4, seed=0)
    b = write_model(tmp_path / "base", base, shards=3)
    t = write_model(tmp_path / "t", perturb(base, 0.01), shards=2)
    before = {th.name for th in threading.enumerate()}
    r = diff(b, t, workers=2)
    assert r.tensors_changed == len(base)
    assert not [
        th for th in threading.enumerate() if th.name == "ftguard-readahead" and th.is_alive()
    ]
    assert "ftguard-readahead" not in before
