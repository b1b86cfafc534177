"""The compiled per-element kernel and the numpy one compute the same statistics."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ftguard.errors import BadInputError
from ftguard.weights import _stats, diff
from ftguard.weights._stats import RawSource, diff_sources, norm_source

sys.path.insert(0, str(Path(__file__).parent))
from _ckpt import llama_tensors, perturb, write_bf16_model, write_model  # noqa: E402

DTYPES = ("F32", "F16", "BF16")
KERNELS = ("c", "numpy")
TOL = 1e-3
_OFF = (
    "ftguard.weights._fused is not built (no C compiler at install) or FTGUARD_WEIGHTS_KERNEL=numpy"
)


@pytest.fixture(params=KERNELS)
def kernel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test once with each kernel (the compiled one skips where it is not built)."""
    if request.param == "c" and _stats._FUSED is None:
        pytest.skip(_OFF)
    if request.param == "numpy":
        monkeypatch.setattr(_stats, "_FUSED", None)
    yield request.param


def test_compiled_kernel_is_built() -> None:
    """`make install` builds the C kernel; a silent fall-back to numpy would hide a slow diff."""
    if os.environ.get("FTGUARD_NO_C_KERNEL") or os.environ.get("FTGUARD_WEIGHTS_KERNEL") == "numpy":
        pytest.skip("the C kernel is switched off in this environment")
    assert _stats.KERNEL == "c", "ftguard.weights._fused did not build: see the install log"


def _encode(x: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "F32":
        return x.astype("<f4")
    if dtype == "F16":
        return x.astype("<f2")
    return (x.astype(np.float32).view(np.uint32) >> 16).astype("<u2")  # truncation to BF16


def _decode(raw: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "BF16":
        return (raw.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return raw.astype(np.float64)


def _pair(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.02, n).astype(np.float32)
    y = x + rng.normal(0, 0.002, n).astype(np.float32)
    y[: n // 3] = x[: n // 3]  # a run of identical chunks (the tuned side is skipped there)
    y[n // 2] = x[n // 2] + 0.5  # one large change
    return x, y


def _check(s: _stats.DiffSums, a: np.ndarray, b: np.ndarray) -> None:
    d = b - a
    assert s.numel == a.size
    assert s.base_sq == pytest.approx(float(a @ a), rel=2e-5)
    assert s.tuned_sq == pytest.approx(float(b @ b), rel=2e-5)
    assert s.dot == pytest.approx(float(a @ b), rel=2e-5)
    assert s.diff_sq == pytest.approx(float(d @ d), rel=2e-5)
    assert s.max_abs == pytest.approx(float(np.abs(d).max()), rel=1e-6)
    assert s.changed == int(np.count_nonzero(np.abs(d) > TOL))


@pytest.mark.parametrize("dtype_a", DTYPES)
@pytest.mark.parametrize("dtype_b", DTYPES)
def test_in_memory_statistics_match_float64(kernel: str, dtype_a: str, dtype_b: str) -> None:
    n = 3 * 16384 + 16 * 7 + 5  # whole chunks, whole SIMD rows and a ragged tail
    x, y = _pair(n)
    ra, rb = _encode(x, dtype_a), _encode(y, dtype_b)
    a, b = _decode(ra, dtype_a), _decode(rb, dtype_b)
    lo = 9  # a window that starts inside the tensor
    s = diff_sources(RawSource(dtype_a, array=ra), RawSource(dtype_b, array=rb), lo, n, TOL)
    _check(s, a[lo:], b[lo:])
    assert norm_source(RawSource(dtype_a, array=ra), lo, n) == pytest.approx(
        float(a[lo:] @ a[lo:]), rel=2e-5
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_file_statistics_match_float64(kernel: str, dtype: str, tmp_path: Path) -> None:
    n = 70001
    x, y = _pair(n, seed=3)
    ra, rb = _encode(x, dtype), _encode(y, dtype)
    path = tmp_path / "raw.bin"
    header = b"\0" * 24  # the elements start at an offset, as after a safetensors header
    path.write_bytes(header + ra.tobytes() + rb.tobytes())
    fd = os.open(path, os.O_RDONLY)
    try:
        base = RawSource(dtype, fd=fd, offset=len(header), where="base")
        tuned = RawSource(dtype, fd=fd, offset=len(header) + ra.nbytes, where="tuned")
        lo, hi = 1000, n - 3
        s = diff_sources(base, tuned, lo, hi, TOL)
        a, b = _decode(ra, dtype)[lo:hi], _decode(rb, dtype)[lo:hi]
        _check(s, a, b)
        assert norm_source(tuned, lo, hi) == pytest.approx(float(b @ b), rel=2e-5)
    finally:
        os.close(fd)


@pytest.mark.parametrize("side", ["base", "tuned"])
def test_a_file_that_ends_early_names_its_side(kernel: str, side: str, tmp_path: Path) -> None:
    full, short = tmp_path / "full.bin", tmp_path / "short.bin"
    full.write_bytes(np.ones(50000, "<f4").tobytes())
    short.write_bytes(np.ones(30000, "<f4").tobytes())  # truncated while the diff reads it
    fds = {p: os.open(p, os.O_RDONLY) for p in (full, short)}
    try:
        src = {
            "full": RawSource("F32", fd=fds[full], where="full.bin"),
            "short": RawSource("F32", fd=fds[short], where="short.bin"),
        }
        base, tuned = (src["short"], src["full"]) if side == "base" else (src["full"], src["short"])
        with pytest.raises(BadInputError, match="short.bin: file ended early"):
            diff_sources(base, tuned, 0, 50000, TOL)
        with pytest.raises(BadInputError, match="short.bin: file ended early"):
            norm_source(src["short"], 0, 50000)
    finally:
        for fd in fds.values():
            os.close(fd)


def test_every_f16_value_widens_exactly() -> None:
    """All 65,536 half-precision bit patterns (subnormals, infinities, NaNs included)."""
    if _stats._FUSED is None:
        pytest.skip(_OFF)
    bits = np.arange(1 << 16, dtype="<u2")
    values = bits.view("<f2").astype(np.float64)
    got = np.array([_stats._FUSED.norm_sq(bits, 2 * i, 1, 1) for i in range(bits.size)])
    finite = np.isfinite(values)
    assert np.array_equal(np.sqrt(got[finite]), np.abs(values[finite]))  # magnitudes, exactly
    assert np.all(np.isinf(got[np.isinf(values)])) and np.all(np.isnan(got[np.isnan(values)]))
    ones = np.ones(int(finite.sum()), "<f4")  # signs: <1, v - 1> summed over all finite values
    aa, ad, *_ = _stats._FUSED.diff(ones, 0, 0, bits[finite], 0, 1, ones.size, 0.0)
    assert ad == pytest.approx(float(np.sum(values[finite] - 1.0)), rel=1e-5)


def test_a_non_contiguous_array_uses_the_numpy_kernel() -> None:
    x, y = _pair(4096)
    ra, rb = _encode(x, "F32")[::2], _encode(y, "F32")[::2]
    assert RawSource("F32", array=ra).kernel_args(0) is None
    s = diff_sources(RawSource("F32", array=ra), RawSource("F32", array=rb), 0, ra.size, TOL)
    _check(s, ra.astype(np.float64), rb.astype(np.float64))


@pytest.mark.parametrize("bf16", [False, True])
def test_whole_reports_agree_between_kernels(
    bf16: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if _stats._FUSED is None:
        pytest.skip(_OFF)
    base = llama_tensors(num_layers=4, seed=0)
    tuned = perturb(base, 0.05, only="layers.")
    write = write_bf16_model if bf16 else write_model
    b, t = write(tmp_path / "base", base), write(tmp_path / "tuned", tuned)
    compiled = diff(b, t, workers=2)
    monkeypatch.setattr(_stats, "_FUSED", None)
    reference = diff(b, t, workers=2)
    assert (
        compiled.verdict == reference.verdict
        and compiled.tensors_changed == reference.tensors_changed
    )
    ref = {x.name: x for x in reference.tensors}
    for x in compiled.tensors:
        y = ref[x.name]
        assert x.diff_norm == pytest.approx(y.diff_norm, rel=1e-5, abs=1e-12)
        assert x.base_norm == pytest.approx(y.base_norm, rel=1e-5)
        assert x.max_abs_change == pytest.approx(y.max_abs_change, rel=1e-6)
        assert x.changed_fraction == y.changed_fraction
        assert x.cosine == pytest.approx(y.cosine, abs=1e-6)
    assert compiled.anomaly_score == pytest.approx(reference.anomaly_score, rel=1e-4)
