"""What a serving stack would load from a model beyond what the gate evaluated.

The gate evaluates an output the way :mod:`ftguard.models` loads it: the architecture built
into transformers, without ``trust_remote_code``, and an adapter with its base's tokenizer and
chat template. A serving stack may load more from the same attested files: Python code that a
``config.json`` ``auto_map`` names (run by any server started with ``trust_remote_code``), an
adapter's own tokenizer or chat template (``AutoTokenizer.from_pretrained(adapter)``, a
per-adapter tokenizer in vLLM), the base an adapter's ``adapter_config.json`` names (a hub id
or a relative path, which ``AutoPeftModelForCausalLM`` fetches), or a single weights file whose
adapter config beside it is not part of what was attested. A file with a second name elsewhere
(a hard link) can be rewritten through that name after any check. Each is a way to serve
behaviour the gate never saw, so the gate refuses such an output (rule ``output.servable``)
and the serving side's check refuses such a model (check ``servable``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ftguard._files import read_regular_file
from ftguard.digests import walk_files
from ftguard.errors import BadInputError

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_FILES",
    "ADAPTER_TOKENIZER_FILES",
    "adapter_base_problem",
    "serving_hazards",
]

ADAPTER_CONFIG = "adapter_config.json"
"""A PEFT adapter folder's config, which names the base model it runs on."""

ADAPTER_TOKENIZER_FILES = frozenset(
    {
        "tokenizer.json",
        "tokenizer_config.json",
        "tokenizer.model",
        "special_tokens_map.json",
        "added_tokens.json",
        "chat_template.jinja",
        "chat_template.json",
        "vocab.json",
        "vocab.txt",
        "merges.txt",
    }
)
"""Files that make a loader read an adapter's own tokenizer or chat template."""

ADAPTER_FILES = frozenset({ADAPTER_CONFIG, "adapter_model.safetensors", "README.md"})
"""Everything an adapter output may hold: what PEFT saves (the model card included)."""

MODEL_FILES = frozenset(
    {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "model.safetensors.index.json",
        "README.md",
        "LICENSE",
        ".gitattributes",
    }
    | ADAPTER_TOKENIZER_FILES
)
"""What a full model output may hold at its top level, besides ``model-*.safetensors``
shards: what transformers saves (weights, configs, tokenizer and chat template, card)."""

_CONFIGS_WITH_CODE = (
    "config.json",
    "tokenizer_config.json",
    "processor_config.json",
    "preprocessor_config.json",
    ADAPTER_CONFIG,
)
"""JSON files whose ``auto_map`` (or ``custom_pipelines``) makes transformers import code,
from the model's folder or from another repository."""
_CODE_KEYS = ("auto_map", "custom_pipelines")


def serving_hazards(model_path: str | Path) -> list[str]:
    """Why a server loading ``model_path`` could run something other than what was evaluated.

    Empty when there is nothing: no Python file and no ``auto_map``, no hard-linked file, and
    for an adapter no tokenizer or chat template of its own and no base named by hub id or
    relative path.

    Raises:
        BadInputError: The path cannot be read (a link, a special file, a missing path).

    """
    path = Path(model_path)
    if not path.is_file() and not path.is_dir():
        raise BadInputError(f"no such file or folder: {path}")
    if path.is_file():
        problems = _hard_links([path])
        if (path.parent / ADAPTER_CONFIG).is_file():
            problems.append(
                f"{path.name} lies in an adapter folder whose {ADAPTER_CONFIG} (its scaling, "
                "targets and base) is not part of what was checked: use the adapter folder"
            )
        return problems
    files = list(walk_files(path))
    names = {f.relative_to(path).as_posix() for f in files}
    problems = _hard_links(files)
    if ADAPTER_CONFIG not in names:
        other = sorted(
            n
            for n in names - MODEL_FILES
            if not (n.startswith("model-") and n.endswith(".safetensors") and "/" not in n)
            and not n.endswith(".py")
        )
        if other:
            problems.append(
                f"it holds {', '.join(other[:3])}{' and more' if len(other) > 3 else ''}, "
                "beyond what transformers saves for a model (configs, safetensors weights, "
                "tokenizer, chat template, card): a server may be pointed at what the gate "
                "never evaluated"
            )
    code = sorted(n for n in names if n.endswith(".py"))
    if code:
        problems.append(
            f"it holds Python code ({', '.join(code[:3])}): a server started with "
            "trust_remote_code would run code the gate never ran"
        )
    for name in _CONFIGS_WITH_CODE:
        found = [k for k in _CODE_KEYS if k in _json_object(path / name)] if name in names else []
        if found:
            problems.append(
                f"its {name} has {' and '.join(found)}: transformers would import code "
                "(trust_remote_code) instead of the architecture the gate evaluated"
            )
    if ADAPTER_CONFIG in names:
        problems += _adapter_hazards(path, names)
    return problems


def _hard_links(files: list[Path]) -> list[str]:
    linked = sorted(f.name for f in files if os.lstat(f).st_nlink > 1)
    if not linked:
        return []
    return [
        f"{', '.join(linked[:3])} has another name elsewhere (a hard link), through which it "
        "can be rewritten after this check: serve a copy"
    ]


def _adapter_hazards(path: Path, names: set[str]) -> list[str]:
    problems: list[str] = []
    own = sorted(names & ADAPTER_TOKENIZER_FILES)
    if own:
        problems.append(
            f"the adapter carries its own tokenizer or chat template ({', '.join(own[:3])}): "
            "the gate evaluated it with its base model's, which is what must be served"
        )
    other = sorted(names - ADAPTER_FILES - ADAPTER_TOKENIZER_FILES)
    if other:
        problems.append(
            f"the adapter holds {', '.join(other[:3])}{' and more' if len(other) > 3 else ''}, "
            f"beyond what PEFT saves ({', '.join(sorted(ADAPTER_FILES))}): a server may be "
            "pointed at what the gate never evaluated"
        )
    named = _json_object(path / ADAPTER_CONFIG).get("base_model_name_or_path")
    if isinstance(named, str) and named and not Path(named).is_absolute():
        problems.append(
            f"its {ADAPTER_CONFIG} names the base {named!r}, a hub id or relative path that a "
            "loader following it (AutoPeftModelForCausalLM) would fetch instead of the "
            "approved base"
        )
    return problems


def _json_object(path: Path) -> dict[str, object]:
    try:
        value = json.loads(read_regular_file(path, what=path.name, max_bytes=16 << 20))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def adapter_base_problem(
    adapter: Path, approved_root: str, *, read_named: bool, staged: Path | None = None
) -> str | None:
    """Why the base an adapter's config names may not be the approved one (None: it is).

    A loader that follows ``adapter_config.json`` loads the folder named there on whatever
    host serves it. With ``read_named``, a folder of that name here must hash to the approved
    base. A name that is not a folder here (or not read) passes when it is a content-addressed
    copy of the approved base (a path with the base's digest as one of its folders, and no
    ``..``: what ftguard's staging writes, so what an adapter trained by ``ftguard run``
    names). A content-addressed name inside ``staged`` (the workspace's staging folder) is
    not hashed again: the gate would otherwise read the whole base in its transaction. A hub id or a relative
    path is :func:`serving_hazards`' to refuse.
    """
    from ftguard.digests import manifest_of

    named = _json_object(adapter / ADAPTER_CONFIG).get("base_model_name_or_path")
    if not isinstance(named, str) or not named or not Path(named).is_absolute():
        return None
    parts = Path(named).parts
    if ".." in parts:
        return f"its {ADAPTER_CONFIG} names the base {named}, a path with '..'"
    if staged is not None and approved_root in parts and Path(named).is_relative_to(staged):
        return None  # ftguard's own staged copy: made while hashing, read-only, re-hashed on reuse
    if read_named and Path(named).is_dir():
        if manifest_of(named).root == approved_root:
            return None  # what is there is the approved base, whatever its name
        return f"its {ADAPTER_CONFIG} names the base {named}, which is not the approved one"
    if approved_root in parts:
        return None
    return (
        f"its {ADAPTER_CONFIG} names the base {named}, which is not a content-addressed copy "
        f"of the approved base (a folder named {approved_root[:12]}...)"
        + ("" if read_named else " and is not read here")
        + ": a server that follows the config where that folder exists would load it"
    )
