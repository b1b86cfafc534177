"""The base-model fingerprint cache: per-tensor norms stored under the base's digest.

An adapter's relative change needs ||W|| of the base tensors it touches; reading the base
for that every time would cost a full pass. The first report on a base writes the squared
Frobenius norm of every base tensor to ``<cache>/<digest>.norms.json``; later reports on
the same base read it instead of the weights.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

__all__ = ["load_base_norms", "save_base_norms"]

_VERSION = 1


def _path(cache: Path, digest: str) -> Path:
    if not digest or not all(c in "0123456789abcdef" for c in digest):
        raise ValueError("digest must be lowercase hex")
    return cache / f"{digest}.norms.json"


def load_base_norms(cache: Path | None, digest: str) -> dict[str, float] | None:
    """Squared norms by tensor name, or ``None`` when not cached (or unreadable)."""
    if cache is None:
        return None
    p = _path(cache, digest)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("schema_version") != _VERSION:
        return None
    norms = data.get("norms_sq")
    if not isinstance(norms, dict) or data.get("base_digest") != digest:
        return None
    out: dict[str, float] = {}
    for k, v in norms.items():
        if not isinstance(k, str) or not isinstance(v, int | float) or not math.isfinite(v):
            return None
        out[k] = float(v)
    return out


def save_base_norms(cache: Path | None, digest: str, norms_sq: dict[str, float]) -> None:
    """Write the norms atomically (a temp file renamed into place); errors are ignored."""
    if cache is None:
        return
    try:
        cache.mkdir(parents=True, exist_ok=True)
        payload = {"schema_version": _VERSION, "base_digest": digest, "norms_sq": norms_sq}
        fd, tmp = tempfile.mkstemp(dir=cache, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh)
        os.replace(tmp, _path(cache, digest))
    except OSError:
        pass
