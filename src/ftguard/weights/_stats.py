"""Per-tensor statistics of a weight change, computed in bounded float32 chunks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["CHUNK", "DiffSums", "diff_sums", "norm_sq", "randomized_svd", "spectral_summary"]

CHUNK = 1 << 18
"""Elements per chunk: 1 MiB of float32, small enough to stay in cache."""


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
        denom = math.sqrt(self.base_sq * self.tuned_sq)
        return self.dot / denom if denom > 0 else (1.0 if self.diff_sq == 0 else 0.0)


def _f32(raw: np.ndarray, dtype: str, buf: np.ndarray) -> np.ndarray:
    n = raw.shape[0]
    out = buf[:n]
    if dtype == "BF16":
        np.left_shift(raw, 16, out=out.view(np.uint32), dtype=np.uint32)
        return out
    if dtype == "F32":
        return raw
    np.copyto(out, raw, casting="unsafe")
    return out


def diff_sums(
    base: np.ndarray, base_dtype: str, tuned: np.ndarray, tuned_dtype: str, tol: float
) -> DiffSums:
    """Stream two raw tensors (as stored) chunk by chunk and accumulate their statistics.

    Args:
        base: Raw base tensor data (any shape; BF16 given as ``uint16``).
        base_dtype: Its safetensors dtype.
        tuned: Raw tuned tensor data, same element count.
        tuned_dtype: Its safetensors dtype.
        tol: An element counts as changed when ``|dW| > tol``.

    """
    a_all, b_all = base.reshape(-1), tuned.reshape(-1)
    n = a_all.shape[0]
    chunk = min(CHUNK, max(n, 1))
    buf_a = np.empty(chunk, np.float32)
    buf_b = np.empty(chunk, np.float32)
    d = np.empty(chunk, np.float32)
    s = DiffSums(numel=n)
    for start in range(0, n, chunk):
        a = _f32(a_all[start : start + chunk], base_dtype, buf_a)
        b = _f32(b_all[start : start + chunk], tuned_dtype, buf_b)
        m = a.shape[0]
        dd = d[:m]
        np.subtract(b, a, out=dd)
        s.base_sq += float(np.dot(a, a))
        s.tuned_sq += float(np.dot(b, b))
        s.dot += float(np.dot(a, b))
        s.diff_sq += float(np.dot(dd, dd))
        np.abs(dd, out=dd)
        s.max_abs = max(s.max_abs, float(dd.max()))
        s.changed += int(np.count_nonzero(dd > tol))
    return s


def norm_sq(raw: np.ndarray, dtype: str) -> float:
    """Squared Frobenius norm of a raw tensor, chunked."""
    flat = raw.reshape(-1)
    n = flat.shape[0]
    chunk = min(CHUNK, max(n, 1))
    buf = np.empty(chunk, np.float32)
    total = 0.0
    for start in range(0, n, chunk):
        a = _f32(flat[start : start + chunk], dtype, buf)
        total += float(np.dot(a, a))
    return total


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
