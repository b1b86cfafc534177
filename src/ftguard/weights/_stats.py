"""Per-tensor statistics of a weight change, computed in one fused pass over cache-sized chunks.

The diff kernel reads each tensor's raw bytes chunk by chunk (``pread`` into a small per-thread
buffer, or slices of an in-memory array), widens them to float32 and accumulates every
statistic from the same chunk while it is in the CPU cache: ||W||², <W, dW>, ||dW||², max |dW|
and the count of changed elements. Chunks whose raw bytes are identical skip the tuned side.
Sums run in float32 per chunk and in float64 across chunks.

Two implementations compute the same statistics: the compiled ``ftguard.weights._fused``
(C, built at install; one pass per chunk in SIMD lanes, GIL released) and numpy (widening,
BLAS dot products and reductions per chunk), used where the C module is not built or when
``FTGUARD_WEIGHTS_KERNEL=numpy`` is set. :data:`KERNEL` names the one in use.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ftguard.errors import BadInputError

__all__ = [
    "CHUNK",
    "KERNEL",
    "DiffSums",
    "RawSource",
    "diff_sums",
    "diff_sources",
    "norm_sq",
    "norm_source",
    "randomized_svd",
    "spectral_summary",
]

CHUNK = 1 << 16
"""Elements per chunk of the numpy kernel: 256 KiB of float32, so its buffers stay in a core's L2
cache (the C kernel uses 16 K-element chunks; see _fused.c)."""

_SIZES = {"BF16": 2, "F16": 2, "F32": 4}
_RAW: dict[str, np.dtype[Any]] = {
    "BF16": np.dtype("<u2"),
    "F16": np.dtype("<f2"),
    "F32": np.dtype("<f4"),
}
_CODES = {"F32": 0, "F16": 1, "BF16": 2}
"""dtype codes of the compiled kernel."""


def _load_fused() -> Any:
    if os.environ.get("FTGUARD_WEIGHTS_KERNEL", "").strip().lower() == "numpy":
        return None
    try:
        from ftguard.weights import _fused  # type: ignore[attr-defined]
    except ImportError:  # not built (no compiler at install): the numpy kernel
        return None
    return _fused


_FUSED: Any = _load_fused()
KERNEL: str = "c" if _FUSED is not None else "numpy"
"""The per-element kernel in use: ``"c"`` (compiled) or ``"numpy"``."""


@dataclass
class DiffSums:
    """Sufficient statistics of W (base) and W' (tuned) for one tensor."""

    numel: int = 0
    base_sq: float = 0.0
    tuned_sq: float = 0.0
    dot: float = 0.0
    diff_sq: float = 0.0
    max_abs: float = 0.0
    changed: int = 0

    @property
    def diff_norm(self) -> float:
        return math.sqrt(self.diff_sq)

    @property
    def base_norm(self) -> float:
        return math.sqrt(self.base_sq)

    @property
    def cosine(self) -> float:
        denom = math.sqrt(max(self.base_sq, 0.0) * max(self.tuned_sq, 0.0))
        if denom <= 0:
            return 1.0 if self.diff_sq == 0 else 0.0
        return max(-1.0, min(1.0, self.dot / denom))

    def merge(self, other: DiffSums) -> None:
        """Add another window's statistics of the same tensor."""
        self.numel += other.numel
        self.base_sq += other.base_sq
        self.tuned_sq += other.tuned_sq
        self.dot += other.dot
        self.diff_sq += other.diff_sq
        self.max_abs = max(self.max_abs, other.max_abs)
        self.changed += other.changed


@dataclass(frozen=True)
class RawSource:
    """Where one tensor's raw elements come from: a flat array, or a file read with ``pread``.

    Attributes:
        dtype: The safetensors dtype (``F32``, ``F16`` or ``BF16``).
        array: The raw elements (BF16 as ``uint16``), when in memory.
        fd: An open file descriptor, when read from a file.
        offset: Byte offset of element 0 in that file.
        where: A name for messages.

    """

    dtype: str
    array: np.ndarray | None = None
    fd: int = -1
    offset: int = 0
    where: str = "tensor"

    def kernel_args(self, lo: int) -> tuple[Any, int, int] | None:
        """(fd or buffer, byte offset of element ``lo``, dtype code) for the compiled kernel."""
        size = _SIZES[self.dtype]
        if self.array is None:
            return self.fd, self.offset + lo * size, _CODES[self.dtype]
        if not self.array.flags.c_contiguous:
            return None
        return self.array, lo * size, _CODES[self.dtype]

    def read(self, lo: int, k: int, scratch: np.ndarray) -> np.ndarray:
        """Raw elements ``[lo, lo + k)``, read into ``scratch`` (bytes) when from a file."""
        if self.array is not None:
            return self.array[lo : lo + k]
        size = _SIZES[self.dtype]
        out = scratch[: k * size]
        got = os.preadv(self.fd, [out.data], self.offset + lo * size)
        if got != k * size:
            raise _ended_early(self.where)
        return out.view(_RAW[self.dtype])


def _ended_early(where: str) -> BadInputError:
    return BadInputError(f"{where}: file ended early (truncated while reading?)")


class _Scratch(threading.local):
    """Per-thread chunk buffers (allocated once per thread, reused for every chunk)."""

    def __init__(self) -> None:
        self.raw_a = np.empty(CHUNK * 4, np.uint8)
        self.raw_b = np.empty(CHUNK * 4, np.uint8)
        self.fa = np.empty(CHUNK, np.float32)
        self.fb = np.empty(CHUNK, np.float32)
        self.d = np.empty(CHUNK, np.float32)
        self.mask = np.empty(CHUNK, np.bool_)


_scratch = _Scratch()


def _widen(raw: np.ndarray, dtype: str, buf: np.ndarray) -> np.ndarray:
    """Raw elements as float32 (into ``buf`` unless they already are float32)."""
    k = raw.shape[0]
    if dtype == "F32":
        return raw
    out = buf[:k]
    if dtype == "BF16":
        bits = out.view(np.uint32)
        np.copyto(bits, raw, casting="unsafe")
        bits <<= 16
        return out
    np.copyto(out, raw, casting="unsafe")
    return out


def _same_bytes(x: np.ndarray, y: np.ndarray) -> bool:
    nbytes = x.nbytes
    if nbytes % 8 == 0 and x.flags.c_contiguous and y.flags.c_contiguous:
        return bool(np.array_equal(x.view(np.uint64), y.view(np.uint64)))
    return bool(np.array_equal(x, y))


def diff_sources(base: RawSource, tuned: RawSource, lo: int, hi: int, tol: float) -> DiffSums:
    """Statistics of elements ``[lo, hi)`` of one tensor, in one fused pass per chunk.

    Args:
        base: The base tensor's raw elements.
        tuned: The tuned tensor's raw elements (same element count).
        lo: First element.
        hi: One past the last element.
        tol: An element counts as changed when ``|dW| > tol``.

    """
    s = DiffSums(numel=max(0, hi - lo))
    if _FUSED is not None and s.numel:
        fa, fb = base.kernel_args(lo), tuned.kernel_args(lo)
        if fa is not None and fb is not None:
            try:
                aa, ad, dd, s.max_abs, s.changed = _FUSED.diff(*fa, *fb, s.numel, tol)
            except _FUSED.FileEndedEarly as exc:
                raise _ended_early((base, tuned)[exc.args[0]].where) from None
            return _finish(s, aa, ad, dd)
    sc = _scratch
    same_dtype = base.dtype == tuned.dtype
    aa = ad = dd = 0.0
    for start in range(lo, hi, CHUNK):
        k = min(CHUNK, hi - start)
        ra = base.read(start, k, sc.raw_a)
        rb = tuned.read(start, k, sc.raw_b)
        a = _widen(ra, base.dtype, sc.fa)
        if same_dtype and _same_bytes(ra, rb):
            aa += float(np.dot(a, a))
            continue
        b = _widen(rb, tuned.dtype, sc.fb)
        d = sc.d[:k]
        np.subtract(b, a, out=d)
        aa += float(np.dot(a, a))
        ad += float(np.dot(a, d))
        dd += float(np.dot(d, d))
        np.abs(d, out=d)
        m = float(d.max())
        if m > s.max_abs:
            s.max_abs = m
        if m > tol:
            s.changed += int(np.count_nonzero(np.greater(d, tol, out=sc.mask[:k])))
    return _finish(s, aa, ad, dd)


def _finish(s: DiffSums, aa: float, ad: float, dd: float) -> DiffSums:
    """Fill ``s`` from ||W||², <W, dW> and ||dW||²."""
    s.base_sq, s.diff_sq = aa, dd
    s.dot = aa + ad
    s.tuned_sq = max(0.0, aa + 2.0 * ad + dd)
    return s


def norm_source(src: RawSource, lo: int, hi: int) -> float:
    """Squared Frobenius norm of elements ``[lo, hi)`` of one tensor."""
    if _FUSED is not None and hi > lo:
        args = src.kernel_args(lo)
        if args is not None:
            try:
                return float(_FUSED.norm_sq(*args, hi - lo))
            except _FUSED.FileEndedEarly:
                raise _ended_early(src.where) from None
    sc = _scratch
    total = 0.0
    for start in range(lo, hi, CHUNK):
        k = min(CHUNK, hi - start)
        a = _widen(src.read(start, k, sc.raw_a), src.dtype, sc.fa)
        total += float(np.dot(a, a))
    return total


def diff_sums(
    base: np.ndarray, base_dtype: str, tuned: np.ndarray, tuned_dtype: str, tol: float
) -> DiffSums:
    """Statistics of two raw in-memory tensors (as stored; BF16 given as ``uint16``).

    Args:
        base: Raw base tensor data (any shape).
        base_dtype: Its safetensors dtype.
        tuned: Raw tuned tensor data, same element count.
        tuned_dtype: Its safetensors dtype.
        tol: An element counts as changed when ``|dW| > tol``.

    """
    a, b = base.reshape(-1), tuned.reshape(-1)
    return diff_sources(
        RawSource(base_dtype, array=a), RawSource(tuned_dtype, array=b), 0, a.shape[0], tol
    )


def norm_sq(raw: np.ndarray, dtype: str) -> float:
    """Squared Frobenius norm of a raw in-memory tensor, chunked."""
    flat = raw.reshape(-1)
    return norm_source(RawSource(dtype, array=flat), 0, flat.shape[0])


def _f32(raw: np.ndarray, dtype: str, buf: np.ndarray) -> np.ndarray:
    """Widen a flat raw chunk into ``buf`` (kept for the alignment code)."""
    return _widen(raw, dtype, buf)


def to_f32_matrix(raw: np.ndarray, dtype: str) -> np.ndarray:
    """A whole tensor as a float32 array (one tensor in memory, for ``--deep``)."""
    if dtype == "BF16":
        out = np.empty(raw.shape, np.float32)
        np.left_shift(raw, 16, out=out.view(np.uint32), dtype=np.uint32)
        return out
    return np.asarray(raw, dtype=np.float32)


def randomized_svd(mat: np.ndarray, k: int, *, oversample: int = 8, iters: int = 2) -> np.ndarray:
    """Top-``k`` singular values of ``mat`` by a randomized range finder (Halko et al.)."""
    m, n = mat.shape
    kk = min(k + oversample, m, n)
    if kk <= 0:
        return np.zeros(0, np.float32)
    if min(m, n) <= 2 * kk:
        return np.linalg.svd(mat.astype(np.float64), compute_uv=False)[:k]
    rng = np.random.default_rng(0)
    omega = rng.standard_normal((n, kk)).astype(np.float32)
    q, _ = np.linalg.qr(mat @ omega)
    for _ in range(iters):
        q, _ = np.linalg.qr(mat.T @ q)
        q, _ = np.linalg.qr(mat @ q)
    small = q.T @ mat
    return np.linalg.svd(small.astype(np.float64), compute_uv=False)[:k]


def spectral_summary(sv: np.ndarray, total_sq: float) -> tuple[float, float]:
    """Effective rank (exp of the entropy of the energy shares) and top-1 energy share.

    Args:
        sv: Singular values (the top ones, or all of them).
        total_sq: ||dW||_F², so the share of σ₁² is exact even from a truncated spectrum;
            energy outside ``sv`` counts as spread evenly (a lower bound on concentration).

    """
    if total_sq <= 0 or sv.size == 0:
        return 0.0, 0.0
    e = np.asarray(sv, np.float64) ** 2
    p = e / total_sq
    rest = max(0.0, 1.0 - float(p.sum()))
    p = p[p > 0]
    h = float(-(p * np.log(p)).sum())
    if rest > 1e-9:
        h += -rest * math.log(rest)  # the remainder as one more component (lower bound)
    return float(math.exp(h)), float(e[0] / total_sq)
