"""The alignment direction V = W_aligned - W_unaligned (Safe LoRA, arXiv 2405.16833).

For every tensor the update touches and V does not leave at zero, the report gives
cos(dW, V); per layer the cosine over the layer's tensors together and, signed like it,
the share of dW's energy along V (cos²). A fine-tune that moves against V (negative
cosine) undoes what the alignment did.
"""

from __future__ import annotations

import math

import numpy as np

from ftguard.errors import BadInputError
from ftguard.weights._evidence import AlignmentLayer, AlignmentReport
from ftguard.weights._lora import LoraPair, lora_inner
from ftguard.weights._naming import parse_name
from ftguard.weights._safetensors import Checkpoint
from ftguard.weights._stats import CHUNK, _f32, to_f32_matrix

__all__ = ["alignment_report", "alignment_terms", "check_alignment_pair"]

Terms = tuple[float, float, float]
"""(<dW, V>, ||dW||², ||V||²)."""


def check_alignment_pair(base: Checkpoint, unaligned: Checkpoint, aligned: Checkpoint) -> None:
    """Refuse an (unaligned, aligned) pair whose tensors do not match the base's shapes."""
    for ck, label in ((unaligned, "unaligned"), (aligned, "aligned")):
        for name in base:
            if name in ck and ck.info(name).shape != base.info(name).shape:
                raise BadInputError(
                    f"mismatched models: the {label} model's {name} has shape "
                    f"{list(ck.info(name).shape)}, the base's {list(base.info(name).shape)}"
                )


def _v_matrix(un: Checkpoint, al: Checkpoint, name: str) -> np.ndarray | None:
    if name not in un or name not in al:
        return None
    a = to_f32_matrix(al.raw(name), al.info(name).dtype)
    u = to_f32_matrix(un.raw(name), un.info(name).dtype)
    v = np.subtract(a, u, dtype=np.float32)
    return v


def alignment_terms(
    un: Checkpoint,
    al: Checkpoint,
    name: str,
    *,
    base: Checkpoint | None = None,
    tuned: Checkpoint | None = None,
    pair: LoraPair | None = None,
) -> Terms | None:
    """Inner product of one tensor's update with V, and both squared norms."""
    if name not in un or name not in al:
        return None
    if pair is not None:
        v = _v_matrix(un, al, name)
        if v is None or v.ndim != 2:
            return None
        un.release(name)
        al.release(name)
        vsq = float(np.dot(v.reshape(-1), v.reshape(-1)))
        if vsq == 0.0:
            return None
        sv_sq = _pair_norm_sq(pair)
        return lora_inner(pair, v), sv_sq, vsq
    assert base is not None and tuned is not None
    streams = [(ck.raw(name).reshape(-1), ck.info(name).dtype) for ck in (base, tuned, un, al)]
    n = streams[0][0].shape[0]
    chunk = min(CHUNK, max(n, 1))
    bufs = [np.empty(chunk, np.float32) for _ in streams]
    d, v = np.empty(chunk, np.float32), np.empty(chunk, np.float32)
    ip = dsq = vsq = 0.0
    for start in range(0, n, chunk):
        x = [
            _f32(raw[start : start + chunk], dt, buf)
            for (raw, dt), buf in zip(streams, bufs, strict=True)
        ]
        m = x[0].shape[0]
        np.subtract(x[1], x[0], out=d[:m])
        np.subtract(x[3], x[2], out=v[:m])
        ip += float(np.dot(d[:m], v[:m]))
        dsq += float(np.dot(d[:m], d[:m]))
        vsq += float(np.dot(v[:m], v[:m]))
    for ck in (base, tuned, un, al):
        ck.release(name)
    if vsq == 0.0:
        return None
    return ip, dsq, vsq


def _pair_norm_sq(pair: LoraPair) -> float:
    from ftguard.weights._lora import factored_svd

    return float((factored_svd(pair) ** 2).sum())


def alignment_report(
    terms: dict[str, Terms], *, unaligned_digest: str, aligned_digest: str
) -> AlignmentReport:
    """Aggregate per-tensor terms into per-layer and overall cosines."""
    groups: dict[int | None, list[float]] = {}
    for name, (ip, dsq, vsq) in terms.items():
        g = groups.setdefault(parse_name(name).layer, [0.0, 0.0, 0.0, 0.0])
        g[0] += ip
        g[1] += dsq
        g[2] += vsq
    total_dsq = sum(g[1] for g in groups.values())

    def cos(ip: float, dsq: float, vsq: float) -> float:
        den = math.sqrt(dsq * vsq)
        return ip / den if den > 0 else 0.0

    layers = []
    for layer in sorted(groups, key=lambda x: (x is None, x if x is not None else 0)):
        ip, dsq, vsq, _ = groups[layer]
        c = cos(ip, dsq, vsq)
        layers.append(
            AlignmentLayer(
                key=f"layer {layer}" if layer is not None else "outside layers",
                layer=layer,
                cosine=c,
                energy_share=math.copysign(c * c, c),
                norm_share=dsq / total_dsq if total_dsq > 0 else 0.0,
            )
        )
    ip = sum(g[0] for g in groups.values())
    vsq = sum(g[2] for g in groups.values())
    return AlignmentReport(
        unaligned_digest=unaligned_digest,
        aligned_digest=aligned_digest,
        cosine=cos(ip, total_dsq, vsq),
        layers=layers,
    )
