"""What a Pod or an InferenceService loads, read from its spec, for the admission webhook.

The annotations say which model to check; the spec says what is served. A workload annotated
with an approved model but whose server is started on another one was admitted (review of
2026-12-08). The webhook therefore also reads the model the spec names and requires it to be
the annotated one (or, for a tokenizer, chat template or adapter, a file or folder inside the
annotated model or base):

- an InferenceService: every ``storageUri`` anywhere in its ``spec``; ``file://`` URLs and
  absolute paths as they are, other schemes (``pvc://``, ``s3://``, ...) through the webhook's
  ``--storage-map PREFIX=DIR`` (where the webhook sees that storage); one it cannot map is
  denied, and so is a spec that names none;
- a Pod: in each container's and init container's ``command``, ``args`` and ``env``, the
  values of the flags and variables serving stacks take a model from (:data:`MODEL_FLAGS`,
  :data:`MODEL_ENV`; vLLM's ``serve MODEL`` too); a Pod that names none is denied.

What the spec does not say (a model baked into the image at a path no flag names, a config
file a ConfigMap mounts) the webhook cannot see: the threat model says so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = ["MODEL_ENV", "MODEL_FLAGS", "named_models", "workload_problem"]

MODEL_FLAGS = frozenset(
    {
        "--model",
        "--model-id",
        "--model-path",
        "--model_name_or_path",
        "--model-name-or-path",
        "--tokenizer",
        "--chat-template",
        "--lora-modules",
        "--lora-adapters",
        "--adapter",
        "--adapter-id",
    }
)
"""Command-line flags whose values name what a serving stack loads (vLLM, TGI, llama.cpp's
server, transformers-based servers)."""

MODEL_ENV = frozenset(
    {"MODEL", "MODEL_ID", "MODEL_PATH", "MODEL_NAME", "HF_MODEL_ID", "LORA_ADAPTERS", "ADAPTER_ID"}
)
"""Environment variables serving images read their model from."""


def named_models(kind: str, spec: Mapping[str, Any]) -> list[str]:
    """Every model reference the workload's spec names (strings as written)."""
    if kind == "InferenceService":
        return [v for k, v in _walk(spec) if k in ("storageUri", "storage_uri")]
    found: list[str] = []
    for key in ("initContainers", "containers"):
        containers = spec.get(key) or []
        for container in containers if isinstance(containers, list) else []:
            if isinstance(container, dict):
                found += _container_models(container)
    return found


def workload_problem(
    kind: str,
    spec: Mapping[str, Any],
    allowed: list[Path],
    storage_map: Mapping[str, Path],
) -> str | None:
    """Why the workload may load something other than ``allowed`` (None: it does not).

    ``allowed``: the annotated model and base, resolved, as the webhook sees them; a reference
    must be one of them or lie inside one.
    """
    named = named_models(kind, spec)
    if not named:
        where = "storageUri" if kind == "InferenceService" else "model flag or variable"
        return (
            f"its spec names no {where}, so the webhook cannot tell which model it serves "
            "(name the model in the spec as well as in the annotation)"
        )
    for reference in named:
        local = _local_path(reference, storage_map)
        if local is None:
            return (
                f"its spec loads {reference!r}, which the webhook cannot map to a path it "
                "checks (--storage-map PREFIX=DIR)"
            )
        if not any(_within(local, root) for root in allowed):
            return f"its spec loads {reference!r}, not the annotated model or base it checked"
    return None


def _walk(value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str):
                yield str(key), item
            else:
                yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def _container_models(container: Mapping[str, Any]) -> list[str]:
    words: list[str] = []
    for key in ("command", "args"):
        items = container.get(key) or []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, str):
                words += item.split()
    found = _flag_values(words)
    env = container.get("env") or []
    for item in env if isinstance(env, list) else []:
        if isinstance(item, dict) and item.get("name") in MODEL_ENV:
            value = item.get("value")
            if isinstance(value, str) and value:
                found += _adapter_paths(value)
    return found


def _flag_values(words: list[str]) -> list[str]:
    found: list[str] = []
    for i, word in enumerate(words):
        flag, eq, value = word.partition("=")
        if flag in MODEL_FLAGS:
            values = [value] if eq else _until_next_flag(words[i + 1 :])
            for item in values:
                found += _adapter_paths(item)
        elif word == "serve" and i + 1 < len(words) and not words[i + 1].startswith("-"):
            found.append(words[i + 1])  # vllm serve MODEL
    return found


def _until_next_flag(rest: list[str]) -> list[str]:
    values: list[str] = []
    for word in rest:
        if word.startswith("-"):
            break
        values.append(word)
    return values


def _adapter_paths(value: str) -> list[str]:
    """The paths in one flag value: ``PATH``, ``NAME=PATH``, or vLLM's JSON form."""
    text = value.strip().strip("'\"")
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            return [text]
        return [v for k, v in _walk(parsed) if k in ("path", "local_path", "base_model_name")]
    parts = [p for p in text.split(",") if p]
    return [p.partition("=")[2] if "=" in p else p for p in parts] or [text]


def _local_path(reference: str, storage_map: Mapping[str, Path]) -> Path | None:
    for prefix, folder in sorted(storage_map.items(), key=lambda item: -len(item[0])):
        if reference.startswith(prefix):
            rest = PurePosixPath(reference[len(prefix) :].lstrip("/"))
            if ".." in rest.parts:
                return None
            return folder.joinpath(*rest.parts)
    text = reference.removeprefix("file://")
    if "://" in text or not text.startswith("/"):
        return None
    return Path(os.path.normpath(text))


def _within(path: Path, root: Path) -> bool:
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        return False
    return resolved == root or root in resolved.parents
