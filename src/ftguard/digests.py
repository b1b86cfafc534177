"""Content digests of files and folders.

A *manifest* lists every regular file under a path with its SHA-256 and size, and has a
root digest: for a single file, the file's own SHA-256 (so ``sha256sum`` agrees); for a
folder, the SHA-256 of the canonical listing (``path NUL sha256 NUL size LF`` per file,
sorted by path). One changed byte, one file added, removed or renamed changes the root.

Only regular files and folders count: a symbolic link (to a file, a folder or nowhere), a
FIFO, a socket or a device anywhere under a folder is refused, so nothing can be added to
approved content that the digest does not see. :func:`copy_with_manifest` copies a file or
folder while hashing it, in one pass, so the copy is exactly what was hashed.

Large files are hashed in 1 MiB blocks; several files are hashed on a thread pool
(``hashlib`` releases the GIL on large updates).

:func:`canonical_json` is the one canonical JSON form that digests, signatures and cache
keys over JSON values are computed from.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from ftguard.errors import BadInputError

__all__ = [
    "FileDigest",
    "Manifest",
    "canonical_json",
    "copy_with_manifest",
    "listing_digest",
    "manifest_of",
    "refuse_special",
    "sha256_bytes",
    "sha256_file",
    "walk_files",
]

_BLOCK = 1 << 20


class FileDigest(BaseModel):
    """One file in a manifest."""

    path: str
    """Path relative to the manifest's root, with ``/`` separators."""
    sha256: str
    size: int


class Manifest(BaseModel):
    """Digest of a file or folder: every file, and one root digest over all of them."""

    name: str
    """The file or folder's own name (the in-toto subject name)."""
    kind: str = Field(pattern="^(file|folder)$")
    root: str
    """SHA-256 (hex) standing for the whole content."""
    files: list[FileDigest]

    @property
    def size(self) -> int:
        """Total bytes over all files."""
        return sum(f.size for f in self.files)

    def subject(self) -> dict[str, object]:
        """The in-toto ``subject`` entry naming this content."""
        return {"name": self.name, "digest": {"sha256": self.root}}

    def differences(self, other: Manifest) -> list[str]:
        """Describe, file by file, how ``other`` differs from this manifest."""
        mine = {f.path: f for f in self.files}
        theirs = {f.path: f for f in other.files}
        out: list[str] = []
        out += [f"removed: {p}" for p in sorted(mine.keys() - theirs.keys())]
        out += [f"added: {p}" for p in sorted(theirs.keys() - mine.keys())]
        out += [
            f"changed: {p}"
            for p in sorted(mine.keys() & theirs.keys())
            if mine[p].sha256 != theirs[p].sha256
        ]
        return out


def sha256_bytes(data: bytes) -> str:
    """SHA-256 of ``data`` as lowercase hex."""
    return hashlib.sha256(data).hexdigest()


def canonical_json(
    value: Any,
    *,
    ensure_ascii: bool = False,
    spaced: bool = False,
    default: Callable[[Any], Any] | None = None,
) -> bytes:
    r"""The one canonical JSON form of ``value``, as UTF-8 bytes.

    Every digest, signature and cache key computed over a JSON value hashes this form.
    Object keys are sorted at every depth, there is no whitespace, non-ASCII text is written
    as UTF-8, floats as Python's shortest round-trip ``repr`` (``0.1``, ``1e-05``), and NaN
    and the infinities as ``NaN``/``Infinity``/``-Infinity`` (as :mod:`json` writes them).
    Two values that are equal as JSON give the same bytes, whatever their key order.

    The keyword arguments only keep bytes that were hashed before this function existed (a
    policy digest stored in approvals, the cache folders' names), each for the callers named;
    new callers leave them at their defaults.

    Args:
        value: Any JSON-serialisable value. Give dicts string keys: :mod:`json` writes
            int, float, bool and None keys as strings but sorts them as they were.
        ensure_ascii: Escape every non-ASCII character as ``\uXXXX`` (policy digest;
            the reference model's, demo history's and behaviour caches' keys).
        spaced: Python's default separators ``", "`` and ``": "`` instead of none (the
            reference model's, demo history's and behaviour caches' keys; suite digests).
        default: Called for a value JSON cannot encode (the behaviour caches' keys: ``str``).

    Raises:
        TypeError: A value JSON cannot encode (and no ``default``), or keys of mixed types.

    """
    return json.dumps(
        value,
        sort_keys=True,
        separators=(", ", ": ") if spaced else (",", ":"),
        ensure_ascii=ensure_ascii,
        default=default,
    ).encode("utf-8")


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's content, read in blocks."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(_BLOCK):
                h.update(block)
    except OSError as exc:
        raise BadInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return h.hexdigest()


def refuse_special(path: Path, mode: int) -> None:
    """Refuse ``path``, which ``mode`` shows is not a regular file or folder, naming what it is."""
    if stat.S_ISLNK(mode):
        what = "a symbolic link"
    elif stat.S_ISFIFO(mode):
        what = "a FIFO"
    elif stat.S_ISSOCK(mode):
        what = "a socket"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        what = "a device"
    else:
        what = "not a regular file"
    raise BadInputError(
        f"{path} is {what}: only regular files and folders can be digested "
        "(copy the content in place of links)"
    )


def walk_files(folder: Path) -> Iterator[Path]:
    """Every regular file under ``folder`` in path order; refuses anything else."""
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames.sort()
        for name in list(dirnames):
            p = Path(dirpath) / name
            mode = p.lstat().st_mode
            if not stat.S_ISDIR(mode):
                refuse_special(p, mode)
        for name in sorted(filenames):
            p = Path(dirpath) / name
            mode = p.lstat().st_mode
            if not stat.S_ISREG(mode):
                refuse_special(p, mode)
            yield p


def listing_digest(files: list[FileDigest]) -> str:
    """A folder manifest's root digest: SHA-256 over its files' paths, digests and sizes."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        h.update(f"{f.path}\0{f.sha256}\0{f.size}\n".encode())
    return h.hexdigest()


def manifest_of(path: str | os.PathLike[str], *, workers: int | None = None) -> Manifest:
    """Compute the manifest of a file or a folder.

    Args:
        path: A regular file or a folder (walked recursively; symlinked folders are not
            followed, symlinked files are hashed by their target's content).
        workers: Threads for hashing several files (default: CPU count, at most 8).

    Raises:
        BadInputError: The path is missing, unreadable, or an empty folder.

    """
    p = Path(path)
    if not p.exists():
        raise BadInputError(f"no such file or folder: {p}")
    if not (p.is_file() or p.is_dir()):
        refuse_special(p, p.stat().st_mode)
    if p.is_file():
        st = p.stat()
        digest = sha256_file(p)
        return Manifest(
            name=p.name,
            kind="file",
            root=digest,
            files=[FileDigest(path=p.name, sha256=digest, size=st.st_size)],
        )
    if not p.is_dir():
        raise BadInputError(f"not a regular file or folder: {p}")
    paths = list(walk_files(p))
    if not paths:
        raise BadInputError(f"folder is empty: {p}")
    n = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=n) as pool:
        digests = list(pool.map(sha256_file, paths))
    files = [
        FileDigest(path=q.relative_to(p).as_posix(), sha256=d, size=q.stat().st_size)
        for q, d in zip(paths, digests, strict=True)
    ]
    return Manifest(name=p.name, kind="folder", root=listing_digest(files), files=files)


def _copy_file(src: Path, dest: Path) -> FileDigest:
    """Copy one regular file, hashing the very bytes written; the copy is read-only (0444)."""
    h = hashlib.sha256()
    size = 0
    try:
        fd = os.open(src, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise BadInputError(f"cannot read {src}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as fin:
        mode = os.fstat(fin.fileno()).st_mode
        if not stat.S_ISREG(mode):
            refuse_special(src, mode)
        with open(dest, "xb") as fout:
            while block := fin.read(_BLOCK):
                h.update(block)
                fout.write(block)
                size += len(block)
            fout.flush()
            os.fsync(fout.fileno())
    os.chmod(dest, 0o444)
    return FileDigest(path=dest.name, sha256=h.hexdigest(), size=size)


def copy_with_manifest(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Manifest:
    """Copy the file or folder ``src`` to ``dest`` (which must not exist) while hashing it.

    Each byte is read once, hashed and written, so the returned manifest is the copy's (named
    after ``src``). Files end read-only (0444) and folders 0555. Links, FIFOs and devices
    are refused, as by :func:`manifest_of`.

    Raises:
        BadInputError: ``src`` is missing, special, unreadable or an empty folder.

    """
    s, d = Path(src), Path(dest)
    if not s.exists():
        raise BadInputError(f"no such file or folder: {s}")
    if s.is_file():
        one = _copy_file(s, d)
        return Manifest(
            name=s.name,
            kind="file",
            root=one.sha256,
            files=[FileDigest(path=s.name, sha256=one.sha256, size=one.size)],
        )
    if not s.is_dir():
        refuse_special(s, s.stat().st_mode)
    paths = list(walk_files(s))
    if not paths:
        raise BadInputError(f"folder is empty: {s}")
    files: list[FileDigest] = []
    for q in paths:
        rel = q.relative_to(s)
        target = d / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        copied = _copy_file(q, target)
        files.append(FileDigest(path=rel.as_posix(), sha256=copied.sha256, size=copied.size))
    for folder in sorted(
        {p for f in files for p in (d / f.path).parents if d in (p, *p.parents)}, reverse=True
    ):
        os.chmod(folder, 0o555)
    return Manifest(name=s.name, kind="folder", root=listing_digest(files), files=files)
