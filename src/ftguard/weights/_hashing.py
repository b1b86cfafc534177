"""The identity digests of a diff's inputs, hashed while the diff runs, in its read order.

A weight report names its inputs by the digests of :mod:`ftguard.digests` (SHA-256 of every
file; a folder's root digest over the sorted listing). Here the files of all inputs are
hashed on one thread pool while the diff's pool computes the statistics: the base's and the
tuned model's data files take turns, in the order the diff reads them, so on a cold page
cache the two passes read the same regions at about the same time and the disk delivers
each byte once (whichever pass gets there first; the other finds it in the page cache).
Each file is read sequentially into one reused 1 MiB buffer and fed to ``hashlib`` (which
releases the GIL), so resident memory stays flat, with the next 16-32 MiB queued with the
kernel (``POSIX_FADV_WILLNEED``) so that a cold disk streams while the thread hashes. Measured and not kept: hashing from a
memory map (no copy) was slower than ``readinto``, by its page faults.

Every byte of every file is hashed each time; nothing is cached by file metadata, so an
approval check sees the bytes themselves. The result equals
:func:`ftguard.digests.manifest_of` for the same path (tested): the same walk (links, FIFOs
and devices refused), the same listing, the same root.
"""

from __future__ import annotations

import hashlib
import os
import stat
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ftguard.digests import FileDigest, Manifest, _listing_digest, _refuse_special, _walk_files
from ftguard.errors import BadInputError

__all__ = ["ManifestJob", "hash_file", "start_manifests"]

_BLOCK = 1 << 20
"""Bytes read and hashed per call (``hashlib`` releases the GIL for the update; the buffer is
reused, so nothing is allocated per block and resident memory stays flat)."""
_AHEAD = 32 << 20
"""Bytes asked of the kernel ahead of the hashing (``POSIX_FADV_WILLNEED``: page cache only)."""


def hash_file(path: Path, *, follow: bool = False) -> tuple[str, int]:
    """(SHA-256 hex, size) of one regular file, read into one reused buffer.

    ``follow``: open through a symbolic link (a path given as a file itself, as
    :func:`manifest_of` does); files found in a folder walk are never followed.
    """
    h = hashlib.sha256()
    flags = (
        os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | (0 if follow else getattr(os, "O_NOFOLLOW", 0))
    )
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise BadInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            _refuse_special(path, st.st_mode)
        advise = hasattr(os, "posix_fadvise")
        if advise:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        buf = bytearray(_BLOCK)
        view = memoryview(buf)
        size = asked = 0
        with open(fd, "rb", buffering=0, closefd=False) as fh:
            while True:
                if advise and asked < st.st_size and asked - size < _AHEAD // 2:
                    # Queue the next stretch with the kernel (no copy) so a cold disk
                    # streams while this thread hashes.
                    os.posix_fadvise(fd, asked, _AHEAD, os.POSIX_FADV_WILLNEED)
                    asked += _AHEAD
                n = fh.readinto(buf)
                if not n:
                    break
                h.update(view[:n])
                size += n
        return h.hexdigest(), size
    except OSError as exc:
        raise BadInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


class ManifestJob:
    """The manifest of one file or folder, its files being hashed on a pool."""

    def __init__(
        self, path: Path, files: list[Path], futures: list[Future[tuple[str, int]]]
    ) -> None:
        self.path, self._files, self._futures = path, files, futures

    def result(self) -> Manifest:
        """Wait for every file; the manifest, exactly as :func:`manifest_of` computes it."""
        digests = [f.result() for f in self._futures]
        if self.path.is_file() and self._files == [self.path]:
            sha, size = digests[0]
            return Manifest(
                name=self.path.name,
                kind="file",
                root=sha,
                files=[FileDigest(path=self.path.name, sha256=sha, size=size)],
            )
        files = [
            FileDigest(path=q.relative_to(self.path).as_posix(), sha256=sha, size=size)
            for q, (sha, size) in zip(self._files, digests, strict=True)
        ]
        return Manifest(
            name=self.path.name, kind="folder", root=_listing_digest(files), files=files
        )


def _files_of(path: Path) -> list[Path]:
    if not path.exists():
        raise BadInputError(f"no such file or folder: {path}")
    if path.is_file():
        return [path]
    if not path.is_dir():
        _refuse_special(path, path.stat().st_mode)
    files = list(_walk_files(path))
    if not files:
        raise BadInputError(f"folder is empty: {path}")
    return files


def start_manifests(
    paths: list[Path], pool: ThreadPoolExecutor, *, first: list[list[Path]] | None = None
) -> list[ManifestJob]:
    """Start hashing every file of ``paths`` on ``pool``; one :class:`ManifestJob` per path.

    Args:
        paths: Files or folders.
        pool: The threads that hash (one file per task).
        first: Per path, the files to hash first, in this order (the diff's data files, in the
            order it reads them); the paths' files are interleaved so that all inputs advance
            together, as the diff reads them.

    Raises:
        BadInputError: A path is missing, special, unreadable, or an empty folder.

    """
    listed = [_files_of(Path(p)) for p in paths]
    order: list[list[Path]] = []
    for i, files in enumerate(listed):
        known = set(files)
        head = [Path(f) for f in (first[i] if first and i < len(first) else []) if Path(f) in known]
        done = set(head)
        order.append(head + [f for f in files if f not in done])
    futures: dict[Path, Future[tuple[str, int]]] = {}
    for k in range(max((len(o) for o in order), default=0)):
        for p, o in zip(paths, order, strict=True):
            if k < len(o) and o[k] not in futures:
                futures[o[k]] = pool.submit(hash_file, o[k], follow=Path(p).is_file())
    return [
        ManifestJob(Path(p), files, [futures[f] for f in files])
        for p, files in zip(paths, listed, strict=True)
    ]
