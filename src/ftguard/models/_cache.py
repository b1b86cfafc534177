"""Cache folders, file locks and atomic publication of built model folders."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from ftguard._files import expand_user
from ftguard.errors import MissingDependencyError

__all__ = ["build_once", "cache_root", "require_ml"]


def cache_root(cache: Path | None = None) -> Path:
    """The cache root: ``cache``, else ``$FTGUARD_CACHE``, else ``~/.cache/ftguard``."""
    if cache is not None:
        return expand_user(cache, what="the cache folder")
    env = os.environ.get("FTGUARD_CACHE")
    if env:
        return expand_user(env, what="FTGUARD_CACHE")
    return Path.home() / ".cache" / "ftguard"


def require_ml() -> None:
    """Raise :class:`MissingDependencyError` unless torch, transformers and peft import.

    Also switches the Hugging Face libraries to offline mode: nothing is downloaded.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    for name in ("torch", "transformers", "peft", "safetensors"):
        try:
            __import__(name)
        except ImportError as exc:
            raise MissingDependencyError(name, "ml") from exc


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock on ``path`` (POSIX ``flock``; a no-op elsewhere)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: the atomic rename still protects
        yield
        return
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def build_once(final: Path, build: Callable[[Path], None]) -> Path:
    """Return ``final``, building it first with ``build(tmp_dir)`` when it is missing.

    The folder is built in a temporary sibling and renamed into place, under a file lock,
    so concurrent callers (threads or processes) build it once and never see half a folder.
    """
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(final.parent / f".{final.name}.lock"):
        if final.is_dir():
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        try:
            build(tmp)
            try:
                os.rename(tmp, final)
            except OSError:
                if not final.is_dir():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final
