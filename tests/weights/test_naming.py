from __future__ import annotations

import pytest

from ftguard.weights import parse_name
from ftguard.weights._naming import is_critical, layer_count


@pytest.mark.parametrize(
    ("name", "layer", "kind", "module"),
    [
        ("model.embed_tokens.weight", None, "embed", "embed_tokens"),
        ("model.layers.3.self_attn.q_proj.weight", 3, "attn.q", "self_attn.q_proj"),
        ("model.layers.3.self_attn.k_proj.bias", 3, "attn.k", "self_attn.k_proj"),
        ("model.layers.12.mlp.down_proj.weight", 12, "mlp.down", "mlp.down_proj"),
        ("model.layers.0.mlp.gate_proj.weight", 0, "mlp.gate", "mlp.gate_proj"),
        ("model.layers.0.input_layernorm.weight", 0, "norm", "input_layernorm"),
        ("model.layers.0.pre_feedforward_layernorm.weight", 0, "norm", "pre_feedforward_layernorm"),
        ("model.norm.weight", None, "norm", "norm"),
        ("lm_head.weight", None, "lm_head", "lm_head"),
        # GPT-2
        ("transformer.wte.weight", None, "embed", "wte"),
        ("transformer.wpe.weight", None, "pos_embed", "wpe"),
        ("transformer.h.2.attn.c_attn.weight", 2, "attn.qkv", "attn.c_attn"),
        ("transformer.h.2.attn.c_proj.weight", 2, "attn.o", "attn.c_proj"),
        ("transformer.h.2.mlp.c_fc.weight", 2, "mlp.up", "mlp.c_fc"),
        ("transformer.h.2.mlp.c_proj.weight", 2, "mlp.down", "mlp.c_proj"),
        ("transformer.h.2.ln_1.weight", 2, "norm", "ln_1"),
        ("h.0.ln_2.bias", 0, "norm", "ln_2"),
        ("transformer.ln_f.weight", None, "norm", "ln_f"),
        # GPT-NeoX
        ("gpt_neox.embed_in.weight", None, "embed", "embed_in"),
        (
            "gpt_neox.layers.1.attention.query_key_value.weight",
            1,
            "attn.qkv",
            "attention.query_key_value",
        ),
        ("gpt_neox.layers.1.attention.dense.weight", 1, "attn.o", "attention.dense"),
        ("gpt_neox.layers.1.mlp.dense_h_to_4h.weight", 1, "mlp.up", "mlp.dense_h_to_4h"),
        ("gpt_neox.layers.1.mlp.dense_4h_to_h.weight", 1, "mlp.down", "mlp.dense_4h_to_h"),
        ("gpt_neox.final_layer_norm.weight", None, "norm", "final_layer_norm"),
        ("embed_out.weight", None, "lm_head", "embed_out"),
        # Phi / Phi-3
        ("model.layers.1.self_attn.dense.weight", 1, "attn.o", "self_attn.dense"),
        ("model.layers.1.mlp.fc1.weight", 1, "mlp.up", "mlp.fc1"),
        ("model.layers.1.mlp.fc2.weight", 1, "mlp.down", "mlp.fc2"),
        ("model.final_layernorm.weight", None, "norm", "final_layernorm"),
        ("model.layers.0.self_attn.qkv_proj.weight", 0, "attn.qkv", "self_attn.qkv_proj"),
        ("model.layers.0.mlp.gate_up_proj.weight", 0, "mlp.gate_up", "mlp.gate_up_proj"),
        ("some.unknown.tensor", None, "other", "some.unknown.tensor"),
    ],
)
def test_parse_name(name: str, layer: int | None, kind: str, module: str) -> None:
    tn = parse_name(name)
    assert (tn.layer, tn.kind, tn.module) == (layer, kind, module)


def test_critical_places() -> None:
    pats = {"*": ["embed", "lm_head", "norm"], "llama": ["*.o_proj.weight"]}
    kw = {"n_layers": 30, "patterns": pats, "middle": (0.3, 0.6)}
    assert is_critical(parse_name("model.embed_tokens.weight"), **kw)  # type: ignore[arg-type]
    assert is_critical(parse_name("model.layers.9.mlp.up_proj.weight"), **kw)  # type: ignore[arg-type]
    assert is_critical(parse_name("model.layers.17.mlp.up_proj.weight"), **kw)  # type: ignore[arg-type]
    assert not is_critical(parse_name("model.layers.18.mlp.up_proj.weight"), **kw)  # type: ignore[arg-type]
    assert not is_critical(parse_name("model.layers.2.self_attn.o_proj.weight"), **kw)  # type: ignore[arg-type]
    assert is_critical(
        parse_name("model.layers.2.self_attn.o_proj.weight"), model_type="llama", **kw
    )  # type: ignore[arg-type]
    assert (
        layer_count(["model.layers.0.x.weight", "model.layers.7.y.weight", "lm_head.weight"]) == 8
    )
