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
