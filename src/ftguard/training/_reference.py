"""The reference aligned model: the embedded model after a short safety LoRA, merged."""

from __future__ import annotations

import contextlib
import json
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
    "SAFETY_DATA_FILE",
    "SAFETY_RECIPE",
    "aligned_model_folder",
    "machine_kind",
    "merge_lora_exactly",
    "reference_aligned_adapter_dir",
    "reference_aligned_model_dir",
]

SAFETY_DATA_FILE = Path(__file__).resolve().parent / "data" / "safety_lora.jsonl"
"""The shipped safety training data (OpenAI chat JSONL): harmful requests -> refusals, benign
requests (many that look sensitive) -> short helpful answers."""

SAFETY_RECIPE: dict[str, Any] = {
    "version": 3,
    "steps": 120,
    "learning_rate": 1.5e-3,
    "precision": "auto",
    "rank": 16,
    "alpha": 32,
    "lora_layers": None,
    "batch_size": 8,
    "max_length": 128,
    "seed": 0,
    "benign_repeats": 2,
}
"""Hyper-parameters of the safety LoRA (part of the cache key, with ``precision`` resolved).

About two passes over the data, in bf16 where the CPU computes it natively (``"auto"``; float32
elsewhere). Version 1 (60 steps at 2e-3, one pass) left a shallow refusal that a benign
40-step LoRA at lr 2e-4 lowered from 90% to 76%; version 2 (180 steps at 1e-3 in float32,
final loss ~0.13) kept 96% after the demo's benign fine-tune. Version 3 (final loss ~0.38)
trains in 247 s instead of about 450 s on 2 cores and keeps the measured behaviour: 96% of
the ``safety`` suite's 50 harmful requests refused, 94% after the demo's benign fine-tune
(see docs/behavior.md)."""


BUILD_VERSION = 2
"""How the reference model is made from its trained LoRA (part of the cache key): 1, merged by
PEFT in float32; 2, stored in bf16 and merged by :func:`merge_lora_exactly`, so that the model
is a function of the LoRA's bytes alone (training is what differs between kinds of CPU)."""


def _resolved_recipe() -> dict[str, Any]:
    """:data:`SAFETY_RECIPE` with ``precision`` as this machine resolves it (bf16 or fp32)."""
    from ftguard.training._train import resolve_precision

    return SAFETY_RECIPE | {"precision": resolve_precision(SAFETY_RECIPE["precision"])}


def _aligned_key_source(base_digest: str) -> str:
    # ensure_ascii and spaced: the key's text as version 1 wrote it, plus the build version.
    return canonical_json(
        {
            "base": base_digest,
            "build": BUILD_VERSION,
            "data": sha256_file(SAFETY_DATA_FILE),
            "recipe": _resolved_recipe(),
        },
        ensure_ascii=True,
        spaced=True,
    ).decode()


def machine_kind() -> str:
    """The CPU and kernels that decide the last bits of training and generation here.

    For example ``"AuthenticAMD AMD EPYC; torch 2.13.0+cpu, AVX512 kernels, native bf16,
    2 threads"``: two machines of one kind train and generate the same bytes from the same
    inputs. Native bf16 (:func:`ftguard.training.cpu_has_bf16`) decides what ``precision="auto"``
    trains in, so it is part of the kind.
    """
    import platform

    import torch

    from ftguard.training._train import cpu_has_bf16

    vendor = model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "vendor_id" and not vendor:
                vendor = value.strip()
            elif name.strip() == "model name" and not model:
                model = value.strip()
    cpu = " ".join(x for x in (vendor, model) if x) or platform.processor() or platform.machine()
    capability = torch.backends.cpu.get_cpu_capability()
    bf16 = "native bf16" if cpu_has_bf16() else "no native bf16"
    return (
        f"{cpu}; torch {torch.__version__}, {capability} kernels, {bf16}, "
        f"{torch.get_num_threads()} threads"
    )


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


def _train_adapter(base: Path, out: Path, *, progress: bool = False) -> dict[str, Any]:
    """Train the safety LoRA of :data:`SAFETY_RECIPE` on ``base`` into ``out``, stored in bf16.

    Returns what the training measured (``losses``, ``train_seconds``).
    """
    from ftguard.training._train import train_lora

    recipe = _resolved_recipe()
    conversations = _safety_conversations(int(recipe["benign_repeats"]))
    _say(
        progress,
        f"training the reference safety LoRA on {len(conversations)} conversations, "
        f"{recipe['steps']} steps in {recipe['precision']} (a few minutes on CPU)",
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
        precision=recipe["precision"],
    )
    _to_bf16(out / _ADAPTER_WEIGHTS)
    _say(
        progress,
        f"trained in {result.seconds:.0f}s (loss {result.losses[0]:.3f} -> "
        f"{result.losses[-1]:.3f})",
    )
    return {"losses": result.losses, "train_seconds": result.seconds}


_ADAPTER_WEIGHTS = "adapter_model.safetensors"


def _to_bf16(path: Path) -> None:
    """Store an adapter's tensors in bf16 (half the size; the merge reads them exactly)."""
    import torch
    from safetensors.torch import load_file, save_file

    tensors = {k: v.to(torch.bfloat16).contiguous() for k, v in sorted(load_file(path).items())}
    save_file(tensors, str(path), metadata={"format": "pt"})


def merge_lora_exactly(model: Any, adapter_file: Path, scale: float) -> int:
    """Add ``scale * B @ A`` of every LoRA pair in ``adapter_file`` to ``model``'s weights.

    Computed in float64 from elementwise products and sums in a fixed order (no BLAS, no
    fused multiply-add: each step is one correctly rounded IEEE operation), then rounded to
    float32 once, so every machine gets the same bits. The products of bf16 (or float32)
    factors are exact in float64.

    Returns:
        The number of weight matrices changed.

    Raises:
        BadInputError: A LoRA tensor names no module of ``model``, or shapes do not fit.

    """
    import numpy as np
    import torch
    from safetensors.torch import load_file

    tensors = load_file(adapter_file)
    params = dict(model.named_parameters())
    merged = 0
    for key in sorted(k for k in tensors if k.endswith(".lora_A.weight")):
        prefix = key[: -len(".lora_A.weight")]
        module = prefix.removeprefix("base_model.model.")
        a = tensors[key].to(torch.float64).numpy()
        b = tensors.get(prefix + ".lora_B.weight")
        weight = params.get(module + ".weight")
        if b is None or weight is None:
            raise BadInputError(f"{adapter_file.name}: {prefix} has no matching module or B")
        b64 = b.to(torch.float64).numpy()
        if b64.shape[1] != a.shape[0] or tuple(weight.shape) != (b64.shape[0], a.shape[1]):
            raise BadInputError(f"{adapter_file.name}: {prefix} shapes do not fit the model")
        delta = np.zeros((b64.shape[0], a.shape[1]), dtype=np.float64)
        for k in range(a.shape[0]):
            delta += np.multiply.outer(b64[:, k], a[k])
        total = weight.detach().to(torch.float64).numpy() + scale * delta
        with torch.no_grad():
            weight.copy_(torch.from_numpy(total.astype(np.float32)))
        merged += 1
    if merged == 0:
        raise BadInputError(f"{adapter_file.name}: no LoRA pair in it")
    return merged


def _build(base: Path, out: Path, key_source: str, progress: bool) -> None:
    from ftguard.models import copy_tokenizer, load_causal_lm

    start = time.perf_counter()
    trained = _train_adapter(base, out / "adapter", progress=progress)
    model, _ = load_causal_lm(base)
    recipe = SAFETY_RECIPE
    merge_lora_exactly(model, out / "adapter" / _ADAPTER_WEIGHTS, recipe["alpha"] / recipe["rank"])
    model.save_pretrained(out / "model", safe_serialization=True)
    copy_tokenizer(base, out / "model")
    if (base / "generation_config.json").is_file():
        (out / "model" / "generation_config.json").write_bytes(
            (base / "generation_config.json").read_bytes()
        )
    info = json.loads(key_source) | trained | {"build_seconds": time.perf_counter() - start}
    (out / "recipe.json").write_text(json.dumps(info, indent=2) + "\n")
    _say(progress, f"reference aligned model ready in {time.perf_counter() - start:.0f}s")


def reference_aligned_model_dir(cache: Path | None = None, *, progress: bool = False) -> Path:
    """The reference aligned model: the embedded model with a safety LoRA merged in.

    Built once (a short CPU fine-tune on :data:`SAFETY_DATA_FILE`, about 4 minutes on 2 cores)
    and cached under a key of the base model digest, :data:`BUILD_VERSION`, the training data
    digest and :data:`SAFETY_RECIPE`. It refuses
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
