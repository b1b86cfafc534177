"""The reference aligned model: the embedded model after a short safety LoRA, merged."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from ftguard.digests import canonical_json, sha256_bytes, sha256_file
from ftguard.models import (
    build_once,
    cache_root,
    embedded_model_digest,
    embedded_model_dir,
    require_ml,
)

__all__ = [
    "SAFETY_DATA_FILE",
    "SAFETY_RECIPE",
    "aligned_model_folder",
    "reference_aligned_adapter_dir",
    "reference_aligned_model_dir",
]

SAFETY_DATA_FILE = Path(__file__).resolve().parent / "data" / "safety_lora.jsonl"
"""The shipped safety training data (OpenAI chat JSONL): harmful requests -> refusals, benign
requests (many that look sensitive) -> short helpful answers."""

SAFETY_RECIPE: dict[str, Any] = {
    "version": 2,
    "steps": 180,
    "learning_rate": 1e-3,
    "rank": 16,
    "alpha": 32,
    "lora_layers": None,
    "batch_size": 8,
    "max_length": 128,
    "seed": 0,
    "benign_repeats": 2,
}
"""Hyper-parameters of the safety LoRA (part of the cache key).

About three passes over the data. Version 1 (60 steps at 2e-3, one pass) left a shallow
refusal that a benign 40-step LoRA at lr 2e-4 lowered from 90% to 76%; version 2 (final loss
~0.13 instead of ~1.1) keeps 96% after the same fine-tune (measured on the ``safety`` suite,
50 prompts; see docs/behavior.md)."""


def _aligned_key_source(base_digest: str) -> str:
    # ensure_ascii and spaced keep the key (and the built model's cache folder) it always had.
    return canonical_json(
        {"base": base_digest, "data": sha256_file(SAFETY_DATA_FILE), "recipe": SAFETY_RECIPE},
        ensure_ascii=True,
        spaced=True,
    ).decode()


def aligned_model_folder(cache: Path | None, base_digest: str) -> Path:
    """The cache folder of the reference aligned model built on ``base_digest`` (builds nothing).

    Its name is keyed by the base model's digest, the safety data and the recipe.
    """
    key = sha256_bytes(_aligned_key_source(base_digest).encode())[:16]
    return cache_root(cache) / "models" / f"smollm2-135m-instruct-aligned-{key}"


def _aligned_root(cache: Path | None, progress: bool) -> Path:
    require_ml()
    base = embedded_model_dir(cache)
    digest = embedded_model_digest(cache)
    key_source = _aligned_key_source(digest)
    final = aligned_model_folder(cache, digest)
    return build_once(final, lambda tmp: _build(base, tmp, key_source, progress))


def _say(progress: bool, message: str) -> None:
    if progress:
        print(f"[ftguard] {message}", file=sys.stderr, flush=True)


def _safety_conversations(benign_repeats: int) -> list[list[dict[str, str]]]:
    """The safety data, benign rows repeated ``benign_repeats`` times (curbs over-refusal)."""
    from ftguard.training._data import read_conversations

    conversations = read_conversations(SAFETY_DATA_FILE)
    labels = [json.loads(line).get("label") for line in SAFETY_DATA_FILE.read_text().splitlines()]
    out = []
    for conversation, label in zip(conversations, labels, strict=True):
        out += [conversation] * (benign_repeats if label == "benign" else 1)
    return out


def _build(base: Path, out: Path, key_source: str, progress: bool) -> None:
    from ftguard.models import copy_tokenizer, load_causal_lm
    from ftguard.training._train import train_lora

    start = time.perf_counter()
    recipe = dict(SAFETY_RECIPE)
    conversations = _safety_conversations(int(recipe["benign_repeats"]))
    _say(
        progress,
        f"building the reference aligned model: safety LoRA on {len(conversations)} "
        f"conversations, {recipe['steps']} steps (a few minutes on CPU)",
    )
    result = train_lora(
        base,
        conversations,
        out / "adapter",
        steps=recipe["steps"],
        learning_rate=recipe["learning_rate"],
        rank=recipe["rank"],
        alpha=recipe["alpha"],
        batch_size=recipe["batch_size"],
        max_length=recipe["max_length"],
        seed=recipe["seed"],
        lora_layers=recipe["lora_layers"],
        progress=progress,
    )
    _say(
        progress,
        f"trained in {result.seconds:.0f}s (loss {result.losses[0]:.3f} -> "
        f"{result.losses[-1]:.3f}); merging",
    )
    model, _ = load_causal_lm(base, out / "adapter")
    merged = model.merge_and_unload()
    merged.save_pretrained(out / "model", safe_serialization=True)
    copy_tokenizer(base, out / "model")
    if (base / "generation_config.json").is_file():
        (out / "model" / "generation_config.json").write_bytes(
            (base / "generation_config.json").read_bytes()
        )
    info = json.loads(key_source) | {
        "losses": result.losses,
        "train_seconds": result.seconds,
        "build_seconds": time.perf_counter() - start,
    }
    (out / "recipe.json").write_text(json.dumps(info, indent=2) + "\n")
    _say(progress, f"reference aligned model ready in {time.perf_counter() - start:.0f}s")


def reference_aligned_model_dir(cache: Path | None = None, *, progress: bool = False) -> Path:
    """The reference aligned model: the embedded model with a safety LoRA merged in.

    Built once (a short CPU fine-tune on :data:`SAFETY_DATA_FILE`) and cached under a key derived
    from the base model digest, the training data digest and :data:`SAFETY_RECIPE`. It refuses
    most harmful requests and answers most benign ones; the embedded model refuses almost none.

    Args:
        cache: Cache root to use instead of the default.
        progress: Print progress to stderr while building.

    Returns:
        A full safetensors model folder (config, weights, tokenizer, chat template).

    """
    return _aligned_root(cache, progress) / "model"


def reference_aligned_adapter_dir(cache: Path | None = None, *, progress: bool = False) -> Path:
    """The PEFT safety adapter merged into :func:`reference_aligned_model_dir` (built likewise)."""
    return _aligned_root(cache, progress) / "adapter"
