"""Job inputs are read only under the server's named storage roots.

A root is a local folder or an object-storage prefix (:class:`ObjectRoot`). An input in an
object root is downloaded afresh into the server's private cache each time it is resolved,
and the rest of the server (hashing, review, run tickets) works on that local copy;
:func:`reference_of` maps the copy back to its ``ROOT/relative/path``.
"""

from __future__ import annotations

import stat
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from ftguard._objects import ObjectRoot, materialise, occupied
from ftguard.errors import BadInputError, PermissionDeniedError

__all__ = ["reference_of", "resolve_input", "resolve_output", "root_of"]

Roots = Mapping[str, Path | ObjectRoot]


def root_of(reference: str) -> str:
    """The storage root a ``ROOT/relative/path`` reference names, as the resolvers read it.

    ``./data/x`` names ``data``; empty when it names none.
    """
    parts = PurePosixPath(reference.strip()).parts
    return parts[0] if parts else ""


def resolve_input(roots: Roots, reference: str, *, what: str) -> Path:
    """The local path of ``ROOT/relative/path`` under the storage root ``ROOT``.

    Refused: an unknown root, an absolute path or ``..``, a path that resolves (through a
    symlink) outside its root, a missing path, a special file. In an object root, the
    object (or every object under the folder prefix) is downloaded into the server's cache
    now, and the cached copy's path is returned: whoever hashes it hashes these bytes.

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
    if isinstance(root, ObjectRoot):
        return materialise(root, tuple(parts[1:]), label=f"{what}: {text}")
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


def reference_of(roots: Roots, path: str | Path) -> str:
    """``ROOT/relative/path`` of a local path inside one of the storage roots.

    A path in an object root's cache maps to that root (checked first: the cache may lie
    inside a folder root).

    Raises:
        PermissionDeniedError: The path is under no storage root.

    """
    resolved = Path(path).resolve()
    ordered = sorted(roots.items(), key=lambda item: (not isinstance(item[1], ObjectRoot), item[0]))
    for name, root in ordered:
        base = (root.cache_folder() if isinstance(root, ObjectRoot) else root).resolve()
        if resolved == base or base in resolved.parents:
            relative = resolved.relative_to(base).as_posix()
            return f"{name}/{relative}" if relative != "." else name
    raise PermissionDeniedError(f"{path} is under none of this server's storage roots")


def resolve_output(roots: Roots, reference: str) -> Path:
    """The local path a run's output goes to: inside a storage root, not there yet.

    In an object root nothing may exist at the key or under it as a folder prefix; the path
    returned is where the server's cache will hold the output once the run uploaded it.

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
    if isinstance(root, ObjectRoot):
        if occupied(root, tuple(parts[1:])):
            raise BadInputError(f"output: {reference} already exists")
        return root.cache_folder().joinpath(*parts[1:])
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
