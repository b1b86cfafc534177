"""Tiny Llama-shaped safetensors checkpoints and LoRA adapters written with numpy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

HIDDEN = 32
INTER = 64
VOCAB = 50
PROJ = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")


def llama_tensors(
    num_layers: int = 4, seed: int = 0, dtype: str = "float32"
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t: dict[str, np.ndarray] = {"model.embed_tokens.weight": rng.normal(0, 0.02, (VOCAB, HIDDEN))}
    for i in range(num_layers):
        p = f"model.layers.{i}."
        for m in PROJ:
            t[p + f"self_attn.{m}.weight"] = rng.normal(0, 0.02, (HIDDEN, HIDDEN))
        t[p + "mlp.gate_proj.weight"] = rng.normal(0, 0.02, (INTER, HIDDEN))
        t[p + "mlp.up_proj.weight"] = rng.normal(0, 0.02, (INTER, HIDDEN))
        t[p + "mlp.down_proj.weight"] = rng.normal(0, 0.02, (HIDDEN, INTER))
        t[p + "input_layernorm.weight"] = np.ones(HIDDEN)
        t[p + "post_attention_layernorm.weight"] = np.ones(HIDDEN)
    t["model.norm.weight"] = np.ones(HIDDEN)
    t["lm_head.weight"] = rng.normal(0, 0.02, (VOCAB, HIDDEN))
    return {k: v.astype(dtype) for k, v in t.items()}


def write_model(
    folder: Path, tensors: dict[str, np.ndarray], *, shards: int = 1, num_layers: int = 4
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(
        json.dumps({"model_type": "llama", "num_hidden_layers": num_layers, "hidden_size": HIDDEN})
    )
    if shards == 1:
        save_file(tensors, str(folder / "model.safetensors"))
        return folder
    names = list(tensors)
    weight_map = {}
    for s in range(shards):
        part = names[s::shards]
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        save_file({n: tensors[n] for n in part}, str(folder / fname))
        weight_map.update({n: fname for n in part})
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    return folder


def perturb(
    tensors: dict[str, np.ndarray], scale: float, *, seed: int = 1, only: str | None = None
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for k, v in tensors.items():
        if only is None or only in k:
            out[k] = (v + rng.normal(0, scale, v.shape) * (np.abs(v).mean() + 1e-3)).astype(v.dtype)
        else:
            out[k] = v.copy()
    return out


def write_adapter(
    folder: Path,
    base: dict[str, np.ndarray],
    *,
    rank: int = 4,
    alpha: float = 8,
    scale_b: float = 0.01,
    seed: int = 0,
    layers: list[int] | None = None,
    targets: tuple[str, ...] = ("q_proj", "v_proj"),
    modules_to_save: dict[str, np.ndarray] | None = None,
    config_extra: dict[str, object] | None = None,
) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    t: dict[str, np.ndarray] = {}
    for name, w in base.items():
        if not name.endswith(".weight") or ".layers." not in name:
            continue
        layer = int(name.split(".layers.")[1].split(".")[0])
        if layers is not None and layer not in layers:
            continue
        if not any(name.endswith(f"{m}.weight") for m in targets):
            continue
        module = name[: -len(".weight")]
        out_f, in_f = w.shape
        t[f"base_model.model.{module}.lora_A.weight"] = rng.normal(0, 0.1, (rank, in_f)).astype(
            "float32"
        )
        t[f"base_model.model.{module}.lora_B.weight"] = rng.normal(
            0, scale_b, (out_f, rank)
        ).astype("float32")
    for name, w in (modules_to_save or {}).items():
        t[f"base_model.model.{name}"] = w
    save_file(t, str(folder / "adapter_model.safetensors"))
    cfg: dict[str, object] = {
        "peft_type": "LORA",
        "r": rank,
        "lora_alpha": alpha,
        "target_modules": list(targets),
        "modules_to_save": None,
        "use_rslora": False,
    }
    cfg.update(config_extra or {})
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    return folder


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), round to nearest even."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = u + 0x7FFF + ((u >> 16) & 1)
    return (u >> 16).astype("<u2")


def save_bf16(tensors: dict[str, np.ndarray], path: Path) -> None:
    """Write float arrays as a BF16 safetensors file (no ml_dtypes needed)."""
    header: dict[str, object] = {}
    blobs = []
    off = 0
    for name, arr in tensors.items():
        b = to_bf16_bits(arr).tobytes()
        header[name] = {
            "dtype": "BF16",
            "shape": list(arr.shape),
            "data_offsets": [off, off + len(b)],
        }
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as fh:
        fh.write(len(h).to_bytes(8, "little") + h)
        for b in blobs:
            fh.write(b)


def write_bf16_model(folder: Path, tensors: dict[str, np.ndarray], num_layers: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(
        json.dumps({"model_type": "llama", "num_hidden_layers": num_layers})
    )
    save_bf16(tensors, folder / "model.safetensors")
    return folder
