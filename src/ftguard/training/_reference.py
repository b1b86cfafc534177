"""The reference aligned model: the embedded model after a short safety LoRA, merged."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from ftguard.digests import canonical_json, sha256_bytes, sha256_file
from ftguard.errors import BadInputError
from ftguard.models import (
    build_once,
    cache_root,
    embedded_model_digest,
    embedded_model_dir,
    require_ml,
)

__all__ = [
    "PREBUILT_ADAPTER",
    "SAFETY_DATA_FILE",
    "SAFETY_RECIPE",
    "aligned_model_folder",
    "check_prebuilt_adapter",
    "reference_aligned_adapter_dir",
    "reference_aligned_model_dir",
    "reference_build_key",
    "train_reference_adapter",
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


PREBUILT_ADAPTER: dict[str, str] = {
    "key": "c224e3316840d0ba",
    "sha256": "85f25c78f5bdf50f949b102c644f9ed7c3c1d4b074c23891313abd9725f3f326",
}
"""The safety adapter that :data:`SAFETY_RECIPE` trains on the embedded model, pinned.

``key`` is the build's cache key (base model digest, safety data digest and recipe: see
:func:`aligned_model_folder`) and ``sha256`` the digest of its ``adapter_model.safetensors``
as trained on x86-64 with 2 torch threads. A copy of that file in the repository
(``prebuilt/reference-aligned/``) saves the build's training (about 6 minutes on 2 cores)
where the key matches; ``scripts/build_reference_adapter.py`` trains it again and compares
the bytes. The digest lives here, in the code, so a changed file is refused, never used."""

PREBUILT_FILE = "adapter_model.safetensors"


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
    key = _build_key(_aligned_key_source(base_digest))
    return cache_root(cache) / "models" / f"smollm2-135m-instruct-aligned-{key}"


def _build_key(key_source: str) -> str:
    return sha256_bytes(key_source.encode())[:16]


def check_prebuilt_adapter(folder: Path) -> Path:
    """The pinned adapter file in ``folder``, after checking its bytes against the pinned digest.

    Raises:
        BadInputError: The file is missing, or its SHA-256 is not :data:`PREBUILT_ADAPTER`'s.

    """
    path = Path(folder) / PREBUILT_FILE
    if not path.is_file():
        raise BadInputError(f"no prebuilt adapter at {path}")
    digest = sha256_file(path)
    if digest != PREBUILT_ADAPTER["sha256"]:
        raise BadInputError(
            f"{path} has SHA-256 {digest[:16]}..., not the pinned "
            f"{PREBUILT_ADAPTER['sha256'][:16]}...: refusing to use it (rebuild it with "
            "scripts/build_reference_adapter.py)"
        )
    return path


def _aligned_root(cache: Path | None, progress: bool, prebuilt: Path | None = None) -> Path:
    require_ml()
    base = embedded_model_dir(cache)
    digest = embedded_model_digest(cache)
    key_source = _aligned_key_source(digest)
    final = aligned_model_folder(cache, digest)
    adapter: Path | None = None
    if prebuilt is not None and not final.is_dir():
        if _build_key(key_source) == PREBUILT_ADAPTER["key"]:
            adapter = check_prebuilt_adapter(prebuilt)
        else:
            _say(
                progress,
                f"the prebuilt adapter in {prebuilt} was trained for another base model or "
                "recipe: training this one",
            )
    return build_once(final, lambda tmp: _build(base, tmp, key_source, progress, adapter))


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


def _train_adapter(base: Path, out: Path, progress: bool) -> dict[str, Any]:
    """Train the safety adapter into ``out``; what it measured (losses, seconds)."""
    from ftguard.training._train import train_lora

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
        out,
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
    return {"losses": result.losses, "train_seconds": result.seconds}


def _adapter_from_prebuilt(base: Path, weights: Path, out: Path) -> dict[str, Any]:
    """Write the PEFT adapter folder of :data:`SAFETY_RECIPE` around the pinned ``weights``."""
    from peft import LoraConfig

    from ftguard.training._train import DEFAULT_TARGET_MODULES

    recipe = SAFETY_RECIPE
    LoraConfig(
        r=recipe["rank"],
        lora_alpha=recipe["alpha"],
        lora_dropout=0.0,
        target_modules=list(DEFAULT_TARGET_MODULES),
        layers_to_transform=recipe["lora_layers"],
        task_type="CAUSAL_LM",
        base_model_name_or_path=str(base),
    ).save_pretrained(str(out))
    shutil.copyfile(weights, out / PREBUILT_FILE)
    check_prebuilt_adapter(out)  # the copy, as read back, is the pinned file
    return {"prebuilt": PREBUILT_ADAPTER["sha256"]}


def _build(
    base: Path, out: Path, key_source: str, progress: bool, prebuilt: Path | None = None
) -> None:
    from ftguard.models import copy_tokenizer, load_causal_lm

    start = time.perf_counter()
    if prebuilt is None:
        measured = _train_adapter(base, out / "adapter", progress)
    else:
        _say(progress, f"reference aligned model: the pinned safety adapter from {prebuilt.parent}")
        measured = _adapter_from_prebuilt(base, prebuilt, out / "adapter")
    model, _ = load_causal_lm(base, out / "adapter")
    merged = model.merge_and_unload()
    merged.save_pretrained(out / "model", safe_serialization=True)
    copy_tokenizer(base, out / "model")
    if (base / "generation_config.json").is_file():
        (out / "model" / "generation_config.json").write_bytes(
            (base / "generation_config.json").read_bytes()
        )
    info = json.loads(key_source) | measured | {"build_seconds": time.perf_counter() - start}
    (out / "recipe.json").write_text(json.dumps(info, indent=2) + "\n")
    _say(progress, f"reference aligned model ready in {time.perf_counter() - start:.0f}s")


def reference_aligned_model_dir(
    cache: Path | None = None, *, progress: bool = False, prebuilt: Path | None = None
) -> Path:
    """The reference aligned model: the embedded model with a safety LoRA merged in.

    Built once (a short CPU fine-tune on :data:`SAFETY_DATA_FILE`) and cached under a key derived
    from the base model digest, the training data digest and :data:`SAFETY_RECIPE`. It refuses
    most harmful requests and answers most benign ones; the embedded model refuses almost none.

    Args:
        cache: Cache root to use instead of the default.
        progress: Print progress to stderr while building.
        prebuilt: A folder holding the pinned adapter file (:data:`PREBUILT_ADAPTER`): a build
            for the pinned key merges it instead of training it. For another key (another
            base model or recipe) it is ignored.

    Returns:
        A full safetensors model folder (config, weights, tokenizer, chat template).

    Raises:
        BadInputError: ``prebuilt`` is used and its file is not the pinned one.

    """
    return _aligned_root(cache, progress, prebuilt) / "model"


def reference_aligned_adapter_dir(cache: Path | None = None, *, progress: bool = False) -> Path:
    """The PEFT safety adapter merged into :func:`reference_aligned_model_dir` (built likewise)."""
    return _aligned_root(cache, progress) / "adapter"


def train_reference_adapter(
    out: Path, cache: Path | None = None, *, progress: bool = False
) -> Path:
    """Train the reference safety adapter into ``out`` afresh, ignoring any cached build.

    What ``scripts/build_reference_adapter.py`` runs to rebuild the prebuilt adapter and compare
    its bytes with :data:`PREBUILT_ADAPTER`. Returns the adapter's weights file.
    """
    require_ml()
    _train_adapter(embedded_model_dir(cache), Path(out), progress)
    return Path(out) / PREBUILT_FILE


def reference_build_key(cache: Path | None = None) -> str:
    """The reference build's cache key on this machine's embedded model (see :data:`PREBUILT_ADAPTER`)."""
    require_ml()
    return _build_key(_aligned_key_source(embedded_model_digest(cache)))
