"""What a Pod or an InferenceService loads, read from its spec, for the admission webhook.

The annotations say which model to check; the spec says what is served. A workload annotated
with an approved model but whose server is started on another one was admitted (review of
2026-12-08). The webhook therefore also reads what the spec loads and requires it to be the
annotated model or base: a model, adapter or storage URI must name one of them exactly; a
tokenizer or chat template may name the base (the model, for a full model) or a file directly
in it.

- A Pod: in each container's, init container's and ephemeral container's ``command``,
  ``args`` and ``env``, the values of the flags (:data:`MODEL_FLAGS`, :data:`FILE_FLAGS`;
  ``_`` and ``-`` alike) and variables (:data:`MODEL_ENV`, :data:`FILE_ENV`) serving stacks
  take a model from, and every path-like word after ``serve`` (vLLM's ``serve MODEL``). A path
  is read through the container's volume mounts: it must lie on a persistent volume claim
  the pod mounts read-only everywhere (``persistentVolumeClaim.readOnly``), with no other
  volume mounted inside it, whose ``pvc://NAMESPACE/CLAIM/SUBPATH/...`` the webhook maps to
  where it sees that claim (``--storage-map pvc://NAMESPACE/CLAIM/=DIR``). A path in the image,
  on another kind of volume, on a writable claim, with ``..``, or on an unmapped claim is
  denied; so is a model variable set from a Secret, a ConfigMap (``valueFrom``) or
  ``envFrom``, a ``$(VAR)`` the kubelet would expand, a container started through a shell,
  and a Pod that names no model.
- An InferenceService: every ``storageUri`` in its ``spec``, mapped the same way (a
  ``pvc://CLAIM/...`` URI is read in the request's namespace; ``file://`` URLs and absolute
  paths as they are); the flags and variables of every part that runs a container
  (predictor, transformer, explainer, an old-schema framework block) may name only where
  KServe puts that storage (``/mnt/models``) or a file in it.

What the spec does not say (a path written in a file the server reads, a model downloaded by
the server's own code) the webhook cannot see: the threat model says so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

__all__ = [
    "FILE_ENV",
    "FILE_FLAGS",
    "KSERVE_MODEL_DIR",
    "MODEL_ENV",
    "MODEL_FLAGS",
    "Named",
    "named_models",
    "workload_problem",
]

MODEL_FLAGS = frozenset(
    {
        "-m",
        "--model",
        "--model-id",
        "--model-path",
        "--model-dir",
        "--model-name-or-path",
        "--lora-modules",
        "--lora-adapters",
        "--lora-paths",
        "--lora",
        "--lora-scaled",
        "--control-vector",
        "--control-vector-scaled",
        "--adapter",
        "--adapter-id",
    }
)
"""Flags whose values name a model or an adapter (vLLM, SGLang, TGI, llama.cpp's server,
transformers-based servers); ``_`` in a flag is read as ``-``, as vLLM does."""

FILE_FLAGS = frozenset(
    {
        "--tokenizer",
        "--tokenizer-path",
        "--tokenizer-config-path",
        "--chat-template",
        "--chat-template-file",
    }
)
"""Flags whose values name a tokenizer or a chat template."""

MODEL_ENV = frozenset(
    {
        "MODEL",
        "MODEL_ID",
        "MODEL_PATH",
        "MODEL_NAME",
        "MODEL_DIR",
        "HF_MODEL_ID",
        "LORA_ADAPTERS",
        "ADAPTER_ID",
        "LLAMA_ARG_MODEL",
        "LLAMA_ARG_LORA",
    }
)
"""Environment variables serving images read a model or adapter from."""

FILE_ENV = frozenset(
    {"TOKENIZER", "TOKENIZER_PATH", "CHAT_TEMPLATE", "LLAMA_ARG_CHAT_TEMPLATE_FILE"}
)
"""Environment variables serving images read a tokenizer or chat template from."""

DENIED_ENV = frozenset({"VLLM_ALLOW_RUNTIME_LORA_UPDATING"})
"""Variables that let a running server load adapters nobody checked (any value)."""
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ash", "ksh", "busybox"})
"""A container started through a shell runs a script the webhook cannot read."""

KSERVE_MODEL_DIR = "/mnt/models"
"""Where KServe's storage initializer puts what ``storageUri`` names, in the predictor."""


@dataclass(frozen=True)
class Named:
    """One thing a spec loads."""

    what: Literal["model", "file"]
    """``model``: a model, adapter or storage URI; ``file``: a tokenizer or chat template."""
    reference: str
    """As written in the spec."""
    local: Path | None = None
    """Where the webhook sees it (None: it cannot tell)."""
    problem: str | None = None
    """Why it cannot be checked, when that is known already."""


def named_models(
    kind: str, spec: Mapping[str, Any], storage_map: Mapping[str, Path], namespace: str = ""
) -> list[Named]:
    """Everything the workload's spec loads, each with where the webhook sees it.

    ``namespace``: the request's; a claim is named ``pvc://NAMESPACE/CLAIM/...`` (a claim
    of the same name in another namespace is another claim).
    """
    if kind == "InferenceService":
        return _inference_service(spec, storage_map, namespace)
    volumes = _dicts(spec.get("volumes"))
    by_name = {str(v.get("name")): v for v in volumes if isinstance(v.get("name"), str)}
    found: list[Named] = []
    if len(by_name) != len(volumes):
        found.append(Named("model", "volumes", problem="names two volumes alike"))
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in _dicts(spec.get(key)):
            mounts = _dicts(container.get("volumeMounts"))
            for what, reference in _container_references(container):
                found.append(
                    _through_mounts(what, reference, mounts, volumes, storage_map, namespace)
                )
    return found


def workload_problem(
    kind: str,
    spec: Mapping[str, Any],
    model: Path | None,
    base: Path | None,
    storage_map: Mapping[str, Path],
    *,
    alias: str | None = None,
    namespace: str = "",
) -> str | None:
    """Why the workload may load something other than the checked ``model`` and ``base``.

    None: everything its spec loads is one of them (a tokenizer or template: the base, or
    the model when there is no base, or a file in it). ``alias``: a reference the spec may
    name as it is (a ``models:/`` URI, whose files the webhook checked by downloading them;
    ``model`` is then None).
    """
    named = named_models(kind, spec, storage_map, namespace)
    if not named:
        where = "storageUri" if kind == "InferenceService" else "model flag or variable"
        return (
            f"its spec names no {where}, so the webhook cannot tell which model it serves "
            "(name the model in the spec as well as in the annotation)"
        )
    roots = [r for r in (model, base) if r is not None]
    for item in named:
        if alias is not None and item.reference == alias and item.what == "model":
            continue
        if item.problem is not None:
            return f"its spec loads {item.reference!r}, which {item.problem}"
        if item.local is None:
            return f"its spec loads {item.reference!r}, which the webhook cannot check"
        ok = (
            any(_same(item.local, root) for root in roots)
            if item.what == "model"
            else any(_root_or_its_file(item.local, root) for root in roots[-1:])
        )
        if not ok:
            return f"its spec loads {item.reference!r}, not the annotated model or base it checked"
    return None


# -- reading a spec ---------------------------------------------------------------------------


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


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


def _container_references(container: Mapping[str, Any]) -> list[tuple[str, str]]:
    words: list[str] = []
    for key in ("command", "args"):
        items = container.get(key)
        for item in items if isinstance(items, list) else []:
            if isinstance(item, str):
                words += item.split()
    found: list[tuple[str, str]] = []
    if words and PurePosixPath(words[0]).name in SHELLS:
        found.append(("model", f"{words[0]} (a shell script the webhook cannot read)"))
    if any("$(" in word for word in words):
        found.append(("model", "$(VAR) (an expansion the kubelet makes, not the webhook)"))
    found += _flag_values(words)
    if container.get("envFrom"):
        found.append(("model", "envFrom (variables the webhook cannot read)"))
    for item in _dicts(container.get("env")):
        name = item.get("name")
        if name in DENIED_ENV:
            found.append(("model", f"{name} (adapters loaded at run time, never checked)"))
        if name not in MODEL_ENV and name not in FILE_ENV:
            continue
        what = "model" if name in MODEL_ENV else "file"
        value = item.get("value")
        if "valueFrom" in item or not isinstance(value, str) or "$(" in value:
            found.append(
                (what, f"{name} from valueFrom or $(VAR) (a value the webhook cannot read)")
            )
        elif value:
            found += [(what, path) for path in _paths_in(value)]
    return found


def _flag_name(word: str) -> str:
    if not word.startswith("--"):
        return word
    flag = "--" + word[2:].replace("_", "-")
    if flag in MODEL_FLAGS or flag in FILE_FLAGS or len(flag) < 6:
        return flag
    # argparse (vLLM's parser among them) takes a unique prefix of a long option: read a
    # prefix of a tokenizer or template flag as that flag. (Prefixes of --model are real
    # flags of their own in most servers, --model-name, --model-impl, and are left alone.)
    matches = [f for f in FILE_FLAGS if f.startswith(flag)]
    return matches[0] if matches else flag


def _flag_values(words: list[str]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    serving = False
    consumed: set[int] = set()
    for i, word in enumerate(words):
        if i in consumed:
            continue
        flag, eq, value = word.partition("=")
        flag = _flag_name(flag)
        if word == "-m" and i > 0 and PurePosixPath(words[i - 1]).name.startswith("python"):
            consumed.add(i + 1)  # python -m MODULE: a module, not a model
            continue
        if flag in MODEL_FLAGS or flag in FILE_FLAGS:
            what = "model" if flag in MODEL_FLAGS else "file"
            values = [value] if eq else _until_next_flag(words[i + 1 :])
            consumed.update(range(i + 1, i + 1 + (0 if eq else len(values))))
            for item in values:
                found += [(what, path) for path in _paths_in(item)]
        elif word == "serve":
            serving = True
        elif serving and not word.startswith("-"):
            after_flag = words[i - 1].startswith("-") and "=" not in words[i - 1]
            if "/" in word or not after_flag:
                found.append(("model", word))  # vllm serve [OPTIONS] MODEL, wherever it stands
    return found


def _until_next_flag(rest: list[str]) -> list[str]:
    values: list[str] = []
    for word in rest:
        if word.startswith("-"):
            break
        values.append(word)
    return values


def _paths_in(value: str) -> list[str]:
    """The paths in one value: ``PATH``, ``NAME=PATH``, ``A,B``, or vLLM's JSON form."""
    text = value.strip().strip("'\"")
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            return [text]
        return [v for k, v in _walk(parsed) if k in ("path", "local_path", "base_model_name")]
    parts = [p for p in text.split(",") if p]
    return [p.partition("=")[2] if "=" in p else p for p in parts] or [text]


# -- where the webhook sees it ----------------------------------------------------------------


def _through_mounts(
    what: str,
    reference: str,
    mounts: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    storage_map: Mapping[str, Path],
    namespace: str,
) -> Named:
    kind: Literal["model", "file"] = "model" if what == "model" else "file"
    text = reference.removeprefix("file://")
    if not text.startswith("/"):
        return Named(kind, reference, problem="is not a path on a volume the webhook checks")
    if ".." in PurePosixPath(text).parts:
        return Named(kind, reference, problem="has '..' (the kernel follows links before it)")
    path = PurePosixPath(os.path.normpath(text))
    at = [
        (PurePosixPath(os.path.normpath(str(m["mountPath"]))), m)
        for m in mounts
        if isinstance(m.get("mountPath"), str)
    ]
    if len({p for p, _ in at}) != len(at):
        return Named(kind, reference, problem="is under two mounts at one path")
    covering = [(p, m) for p, m in at if path == p or p in path.parents]
    if not covering:
        return Named(kind, reference, problem="is in the container's image, not on a volume")
    mount_path, mount = max(covering, key=lambda pm: len(pm[0].parts))
    if any(p != mount_path and (p == path or path in p.parents) for p, _ in at):
        return Named(kind, reference, problem="has another volume mounted inside it")
    by_name = {str(v.get("name")): v for v in volumes}
    claim = by_name.get(str(mount.get("name")), {}).get("persistentVolumeClaim")
    if not isinstance(claim, dict) or not isinstance(claim.get("claimName"), str):
        return Named(
            kind, reference, problem="is on a volume that is not a persistent volume claim"
        )
    same_claim = [
        v.get("persistentVolumeClaim") or {}
        for v in volumes
        if (v.get("persistentVolumeClaim") or {}).get("claimName") == claim["claimName"]
    ]
    if any(c.get("readOnly") is not True for c in same_claim):
        return Named(
            kind, reference, problem="is on a claim the pod may write (set its readOnly: true)"
        )
    if mount.get("subPathExpr") or ".." in PurePosixPath(str(mount.get("subPath") or "")).parts:
        return Named(kind, reference, problem="is on a mount with a subPathExpr or '..'")
    rest = path.relative_to(mount_path)
    sub = str(mount.get("subPath") or "")
    parts = (namespace, claim["claimName"], sub, rest.as_posix())
    uri = "pvc://" + "/".join(p for p in parts if p not in ("", "."))
    local = _mapped(uri, storage_map)
    if local is None:
        return Named(kind, reference, problem=f"is on {uri}, which no --storage-map maps")
    return Named(kind, reference, local=local)


def _inference_service(
    spec: Mapping[str, Any], storage_map: Mapping[str, Path], namespace: str
) -> list[Named]:
    found: list[Named] = []
    storage: Path | None = None
    for key, uri in _walk(spec):
        if key in ("storageUri", "storage_uri"):
            claimed = (
                f"pvc://{namespace}/{uri.removeprefix('pvc://')}"
                if uri.startswith("pvc://")
                else uri
            )
            local = _storage_local(claimed, storage_map)
            storage = local if local is not None else storage
            problem = None if local is not None else "the webhook cannot map (--storage-map)"
            found.append(Named("model", uri, local=local, problem=problem))
    # Every part that runs a container (predictor, transformer, explainer, any framework's
    # old-schema block): what its flags and variables load must be under /mnt/models.
    for container in _containers_in(spec):
        for what, reference in _container_references(container):
            kind: Literal["model", "file"] = "model" if what == "model" else "file"
            text = reference.removeprefix("file://")
            path = PurePosixPath(os.path.normpath(text)) if text.startswith("/") else None
            inside = (
                path is not None
                and ".." not in PurePosixPath(text).parts
                and (
                    path == PurePosixPath(KSERVE_MODEL_DIR)
                    or PurePosixPath(KSERVE_MODEL_DIR) in path.parents
                )
            )
            if path is None or not inside or storage is None:
                found.append(
                    Named(kind, reference, problem=f"is not where KServe puts {KSERVE_MODEL_DIR}")
                )
                continue
            rest = path.relative_to(PurePosixPath(KSERVE_MODEL_DIR))
            found.append(Named(kind, reference, local=storage.joinpath(*rest.parts)))
    return found


def _containers_in(value: Any) -> Iterator[dict[str, Any]]:
    """Every mapping in ``value`` that carries ``args``, ``command``, ``env`` or ``envFrom``."""
    if isinstance(value, dict):
        if any(k in value for k in ("args", "command", "env", "envFrom")):
            yield value
        for item in value.values():
            yield from _containers_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _containers_in(item)


def _storage_local(uri: str, storage_map: Mapping[str, Path]) -> Path | None:
    mapped = _mapped(uri, storage_map)
    if mapped is not None:
        return mapped
    text = uri.removeprefix("file://")
    if "://" in text or not text.startswith("/"):
        return None
    return Path(os.path.normpath(text))


def _mapped(uri: str, storage_map: Mapping[str, Path]) -> Path | None:
    for prefix, folder in sorted(storage_map.items(), key=lambda item: -len(item[0])):
        if prefix.endswith("/") and uri.startswith(prefix):
            rest = PurePosixPath(uri[len(prefix) :].lstrip("/"))
            if ".." in rest.parts:
                return None
            return folder.joinpath(*rest.parts)
    return None


def _same(path: Path, root: Path) -> bool:
    try:
        return path.resolve() == root.resolve()
    except (OSError, RuntimeError):
        return False


def _root_or_its_file(path: Path, root: Path) -> bool:
    """``path`` is ``root`` itself or a file directly in it (a tokenizer or template file)."""
    try:
        resolved, base = path.resolve(), root.resolve()
    except (OSError, RuntimeError):
        return False
    return resolved == base or (resolved.parent == base and resolved.is_file())
