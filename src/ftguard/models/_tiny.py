"""Tiny randomly initialised Llama models that share the embedded model's tokenizer."""

from __future__ import annotations

import shutil
from pathlib import Path

from ftguard.errors import BadInputError
from ftguard.models._cache import require_ml
from ftguard.models._embedded import embedded_model_dir

__all__ = ["TOKENIZER_FILES", "copy_tokenizer", "tiny_model_dir"]

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
)


def copy_tokenizer(source: Path, out: Path) -> None:
    """Copy the tokenizer files (with the chat template) of ``source`` into ``out``."""
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, out / name)


def tiny_model_dir(out: Path, *, seed: int = 0, num_layers: int = 4, hidden: int = 64) -> Path:
    """Write a tiny randomly initialised Llama causal LM to ``out`` and return ``out``.

    The model uses the embedded model's tokenizer and chat template (and vocabulary size), so it
    runs everything the real model runs, in milliseconds. The weights are a pure function of
    ``seed``, ``num_layers`` and ``hidden``.

    Args:
        out: Folder to write (created; existing model files are overwritten).
        seed: Seed of the random initialisation.
        num_layers: Number of decoder layers.
        hidden: Hidden size (a multiple of 4; four attention heads, two key/value heads).

    Returns:
        ``out``, a safetensors model folder.

    """
    if num_layers < 1 or hidden < 8 or hidden % 4:
        raise BadInputError(
            f"tiny model needs num_layers >= 1 and hidden a multiple of 4, >= 8 "
            f"(got num_layers={num_layers}, hidden={hidden})"
        )
    require_ml()
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    base = embedded_model_dir()
    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=hidden // 4,
        max_position_embeddings=2048,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        dtype="float32",
    )
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=2)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    copy_tokenizer(base, out)
    return out
