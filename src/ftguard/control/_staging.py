"""Staging: read-only, content-addressed copies of a job's approved inputs.

Before a run starts, the launcher copies the dataset, base model and config into
``.ftguard/staged/<digest>/<name>`` while hashing them (one pass, so what is staged is what was
hashed) and refuses the run unless each copy has the approved digest. The training command is
handed only these paths, and the trainer refuses any other: an input swapped on disk after the
check, or a command pointed at other data, does not reach training. A staged copy is reused by
later runs after its digest is checked again.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from ftguard.control._workspace import Workspace
from ftguard.digests import Manifest, copy_with_manifest, manifest_of
from ftguard.errors import BadInputError, VerificationError
from ftguard.store import JobRow

__all__ = ["INPUT_KINDS", "stage_inputs", "stage_into", "staged_path"]

INPUT_KINDS = ("dataset", "base_model", "config")


def staged_path(ws: Workspace, digest: str, name: str) -> Path:
    """Where the input with this digest and file or folder name is staged."""
    return ws.staged_dir / digest / name


def _remove(path: Path) -> None:
    for folder, dirs, _files in os.walk(path):
        os.chmod(folder, 0o700)
        for d in dirs:
            os.chmod(Path(folder) / d, 0o700)
    shutil.rmtree(path, ignore_errors=True)


def stage_into(folder: Path, kind: str, source: Path, digest: str) -> Path:
    """Copy ``source`` to ``folder/<digest>/<name>`` read-only, checked against ``digest``.

    An existing copy is re-hashed instead. Raises VerificationError when the content differs.
    """
    label = kind.replace("_", " ")
    target = folder / digest / source.name
    if target.exists():
        try:
            again = manifest_of(target)
        except BadInputError as exc:
            raise VerificationError(f"the staged {label} at {target} is damaged: {exc}") from exc
        if again.root != digest:
            raise VerificationError(
                f"the staged {label} at {target} was altered after staging; remove it to re-stage"
            )
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.parent / f".staging-{secrets.token_hex(6)}"
    try:
        copied: Manifest = copy_with_manifest(source, scratch)
    except BadInputError as exc:
        _remove(scratch)
        raise VerificationError(f"the approved {label} can no longer be read: {exc}") from exc
    except BaseException:
        _remove(scratch)
        raise
    if copied.root != digest:
        _remove(scratch)
        raise VerificationError(
            f"the {label} at {source} changed after approval (its digest is now "
            f"{copied.root[:16]}, approved {digest[:16]})"
        )
    try:
        os.rename(scratch, target)
    except OSError:
        _remove(scratch)  # another launcher staged the same content first
        if not target.exists():
            raise
    return target


def stage_inputs(ws: Workspace, row: JobRow) -> dict[str, Path]:
    """Stage a job's three inputs; each staged copy is checked against the approved digest.

    Raises:
        VerificationError: An input changed since approval, or cannot be read.

    """
    sources = {
        "dataset": (Path(row.dataset_path), row.dataset_digest),
        "base_model": (Path(row.base_model_path), row.base_model_digest),
        "config": (Path(row.config_path), row.config_digest),
    }
    return {kind: stage_into(ws.staged_dir, kind, *sources[kind]) for kind in INPUT_KINDS}
