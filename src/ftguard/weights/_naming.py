"""Tensor names mapped to (layer index, module kind) for the common architectures.

Covered naming schemes: Llama / Mistral / Qwen / Gemma (``model.layers.N.self_attn.q_proj``),
GPT-2 (``transformer.h.N.attn.c_attn``), GPT-NeoX (``gpt_neox.layers.N.attention
.query_key_value``) and Phi / Phi-3 (``self_attn.dense``, ``mlp.fc1``, ``qkv_proj``). Unknown
names still get a layer index when they follow ``layers.N`` / ``h.N`` / ``blocks.N``, and the
kind ``other``.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

__all__ = ["ModuleKind", "TensorName", "is_critical", "layer_count", "parse_name"]

ModuleKind = str
"""One of: embed, pos_embed, attn.q, attn.k, attn.v, attn.qkv, attn.o, mlp.gate, mlp.up,
mlp.gate_up, mlp.down, norm, lm_head, other."""

_LAYER_RE = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer|decoder\.layers)\.(\d+)\.(.+)$")

# (suffix regex on the module path, kind); first match wins.
_KINDS: list[tuple[re.Pattern[str], ModuleKind]] = [
    (re.compile(p), k)
    for p, k in [
        (r"(^|\.)(q_proj|query)$", "attn.q"),
        (r"(^|\.)(k_proj|key)$", "attn.k"),
        (r"(^|\.)(v_proj|value)$", "attn.v"),
        (r"(^|\.)(c_attn|query_key_value|qkv_proj|Wqkv|W_pack)$", "attn.qkv"),
        (r"attn\.c_proj$|(^|\.)(o_proj|out_proj)$|attention\.dense$|self_attn\.dense$", "attn.o"),
        (r"(^|\.)(gate_proj|w1)$", "mlp.gate"),
        (r"(^|\.)(up_proj|w3|c_fc|fc1|dense_h_to_4h)$", "mlp.up"),
        (r"(^|\.)gate_up_proj$", "mlp.gate_up"),
        (r"(^|\.)(down_proj|w2|fc2|dense_4h_to_h)$|mlp\.c_proj$", "mlp.down"),
        (r"(norm|ln_\d|ln_f|layernorm|layer_norm)[^.]*$", "norm"),
    ]
]
_TOP: list[tuple[re.Pattern[str], ModuleKind]] = [
    (re.compile(p), k)
    for p, k in [
        (r"(embed_tokens|wte|embed_in|word_embeddings|tok_embeddings)$", "embed"),
        (r"(wpe|embed_positions|position_embeddings)$", "pos_embed"),
        (r"(^|\.)(lm_head|embed_out|output)$", "lm_head"),
        (r"(norm|ln_f|layernorm|layer_norm)[^.]*$", "norm"),
    ]
]


@dataclass(frozen=True)
class TensorName:
    """What a tensor name says about its place in the model."""

    name: str
    layer: int | None
    """Transformer block index; ``None`` for embeddings, final norm and head."""
    module: str
    """The module path inside its block (``mlp.down_proj``) or the top-level path."""
    kind: ModuleKind
    param: str
    """``weight`` or ``bias`` (or the last name part)."""


def parse_name(name: str) -> TensorName:
    """Map a tensor name to its layer index and module kind."""
    parts = name.rsplit(".", 1)
    path, param = (parts[0], parts[1]) if len(parts) == 2 else (name, "weight")
    if param not in ("weight", "bias"):
        path, param = name, ""
    m = _LAYER_RE.search(path)
    if m is not None and m.group(2):
        module = m.group(2).rstrip(".")
        layer: int | None = int(m.group(1))
        table = _KINDS
    else:
        module = path
        for prefix in ("model.", "transformer.", "gpt_neox.", "base_model.model."):
            if module.startswith(prefix):
                module = module[len(prefix) :]
        layer = None
        table = _TOP
    kind = next((k for pat, k in table if pat.search(module)), "other")
    return TensorName(name=name, layer=layer, module=module, kind=kind, param=param)


def layer_count(names: list[str]) -> int:
    """Number of transformer blocks named (max index + 1; 0 when none)."""
    idx = [t.layer for t in map(parse_name, names) if t.layer is not None]
    return max(idx) + 1 if idx else 0


def is_critical(
    tn: TensorName,
    *,
    n_layers: int,
    patterns: dict[str, list[str]],
    middle: tuple[float, float],
    model_type: str | None = None,
) -> bool:
    """Whether a tensor lies in a safety-critical place under the policy.

    Critical are tensors matching a pattern for ``*`` or for ``model_type`` (a plain
    substring, or an ``fnmatch`` pattern when it has ``*?[``), and every tensor of a layer in
    the middle block ``[middle[0]·n_layers, middle[1]·n_layers)``.
    """
    pats = list(patterns.get("*", []))
    if model_type:
        pats += patterns.get(model_type, [])
    for p in pats:
        if any(c in p for c in "*?[") and fnmatch.fnmatchcase(tn.name, p):
            return True
        if p and p in tn.name:
            return True
    if tn.layer is not None and n_layers > 0:
        lo, hi = int(middle[0] * n_layers), int(round(middle[1] * n_layers))
        if lo <= tn.layer < max(hi, lo + 1):
            return True
    return False
