"""Job inputs are read only under the server's named storage roots."""

from __future__ import annotations

import stat
from pathlib import Path, PurePosixPath

from ftguard.errors import BadInputError, PermissionDeniedError

__all__ = ["resolve_input"]


def resolve_input(roots: dict[str, Path], reference: str, *, what: str) -> Path:
    """The local path of ``ROOT/relative/path`` under the storage root ``ROOT``.

    Refused: an unknown root, an absolute path or ``..``, a path that resolves (through a
    symlink) outside its root, a missing path, a special file.

    Raises:
        BadInputError: Malformed or missing.
        PermissionDeniedError: Outside every storage root.

    """
    if not roots:
        raise PermissionDeniedError("this server has no storage roots: it reads no job inputs")
    text = reference.strip()
    if "\\" in text or "\x00" in text:
        raise BadInputError(f"{what}: use ROOT/relative/path with forward slashes")
    parts = PurePosixPath(text).parts
    if not parts or text.startswith("/") or ".." in parts or len(parts) < 2:
        raise PermissionDeniedError(
            f"{what}: name a path inside a storage root, as ROOT/relative/path "
            f"(roots: {', '.join(sorted(roots))})"
        )
    root = roots.get(parts[0])
    if root is None:
        raise PermissionDeniedError(
            f"{what}: {parts[0]!r} is not a storage root of this server "
            f"(roots: {', '.join(sorted(roots))})"
        )
    base = root.resolve()
    candidate = base.joinpath(*parts[1:])
    try:
        resolved = candidate.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise BadInputError(f"{what}: {text} does not exist under its storage root") from exc
    if resolved != base and base not in resolved.parents:
        raise PermissionDeniedError(f"{what}: {text} leads outside its storage root")
    mode = resolved.stat().st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise PermissionDeniedError(f"{what}: {text} is not a regular file or folder")
    return resolved


def reference_of(roots: dict[str, Path], path: str | Path) -> str:
    """``ROOT/relative/path`` of a local path inside one of the storage roots.

    Raises:
        PermissionDeniedError: The path is under no storage root.

    """
    resolved = Path(path).resolve()
    for name, root in sorted(roots.items()):
        base = root.resolve()
        if resolved == base or base in resolved.parents:
            relative = resolved.relative_to(base).as_posix()
            return f"{name}/{relative}" if relative != "." else name
    raise PermissionDeniedError(f"{path} is under none of this server's storage roots")


def resolve_output(roots: dict[str, Path], reference: str) -> Path:
    """The local path a run's output goes to: inside a storage root, not there yet.

    Raises:
        BadInputError: Malformed, or something is already there.
        PermissionDeniedError: Outside every storage root.

    """
    parts = PurePosixPath(reference.strip()).parts
    if len(parts) < 2 or reference.startswith("/") or ".." in parts or "\\" in reference:
        raise PermissionDeniedError(
            "output: name a new path inside a storage root, as ROOT/relative/path"
        )
    root = roots.get(parts[0])
    if root is None:
        raise PermissionDeniedError(f"output: {parts[0]!r} is not a storage root of this server")
    base = root.resolve()
    target = base.joinpath(*parts[1:])
    # The nearest existing ancestor must resolve inside the root (no symlink out of it).
    existing = target
    while not existing.exists() and existing != base:
        existing = existing.parent
    resolved = existing.resolve()
    if resolved != base and base not in resolved.parents:
        raise PermissionDeniedError(f"output: {reference} leads outside its storage root")
    if target.exists() or target.is_symlink():
        raise BadInputError(f"output: {reference} already exists")
    return target
