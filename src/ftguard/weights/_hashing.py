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

:func:`start_digests` starts all of this before the diff is even imported: ``ftguard weights
diff`` calls it first, so the disk and the hashing threads work while the weight engine,
numpy and the report models load (about a quarter of a cold command's time otherwise), and
hands the running :class:`InputDigests` to :func:`ftguard.weights.diff`. This module imports
nothing heavy for that reason (``hashlib`` and :mod:`ftguard.digests` only).
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from ftguard.digests import FileDigest, Manifest, listing_digest, refuse_special, walk_files
from ftguard.errors import BadInputError

__all__ = ["InputDigests", "ManifestJob", "hash_file", "start_digests", "start_manifests"]

_BLOCK = 1 << 20
"""Bytes read and hashed per call (``hashlib`` releases the GIL for the read and the update;
the buffer is reused, so nothing is allocated per block and resident memory stays flat).
Measured and not kept: 4 MiB blocks (0.5 s more CPU per 2 GB alongside the diff's kernel,
the buffer no longer staying in the core's cache)."""
_AHEAD = 32 << 20
"""Bytes asked of the kernel ahead of the hashing (``POSIX_FADV_WILLNEED``: page cache only)."""


class Cancelled(Exception):
    """The hashing was stopped (:meth:`InputDigests.close` before it finished)."""


def hash_file(
    path: Path, *, follow: bool = False, stop: threading.Event | None = None
) -> tuple[str, int]:
    """(SHA-256 hex, size) of one regular file, read into one reused buffer.

    ``follow``: open through a symbolic link (a path given as a file itself, as
    :func:`manifest_of` does); files found in a folder walk are never followed. ``stop``:
    checked before every block; once set, the hashing ends with :class:`Cancelled`.
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
            refuse_special(path, st.st_mode)
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
                if stop is not None and stop.is_set():
                    raise Cancelled(str(path))
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
        return Manifest(name=self.path.name, kind="folder", root=listing_digest(files), files=files)


def _files_of(path: Path) -> list[Path]:
    if not path.exists():
        raise BadInputError(f"no such file or folder: {path}")
    if path.is_file():
        return [path]
    if not path.is_dir():
        refuse_special(path, path.stat().st_mode)
    files = list(walk_files(path))
    if not files:
        raise BadInputError(f"folder is empty: {path}")
    return files


def start_manifests(
    paths: list[Path],
    pool: ThreadPoolExecutor,
    *,
    first: list[list[Path]] | None = None,
    stop: threading.Event | None = None,
) -> list[ManifestJob]:
    """Start hashing every file of ``paths`` on ``pool``; one :class:`ManifestJob` per path.

    Args:
        paths: Files or folders.
        pool: The threads that hash (one file per task).
        first: Per path, the files to hash first, in this order (the diff's data files, in the
            order it reads them); the paths' files are interleaved so that all inputs advance
            together, as the diff reads them.
        stop: Set to end the hashing early (see :func:`hash_file`).

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
                futures[o[k]] = pool.submit(hash_file, o[k], follow=Path(p).is_file(), stop=stop)
    return [
        ManifestJob(Path(p), files, [futures[f] for f in files])
        for p, files in zip(paths, listed, strict=True)
    ]


class InputDigests:
    """The manifests of a diff's inputs, being hashed on a thread pool of their own.

    Made by :func:`start_digests` (or by :func:`ftguard.weights.diff` itself); a context
    manager: leaving it, or :meth:`close`, stops whatever hashing is left and frees the
    threads.

    Attributes:
        paths: Each input's path by its role: ``base``, ``tuned`` and, with an alignment
            pair, ``un`` and ``al``.

    """

    def __init__(
        self,
        paths: Mapping[str, Path],
        *,
        first: Mapping[str, list[Path]] | None = None,
        workers: int | None = None,
    ) -> None:
        self.paths = {role: Path(p) for role, p in paths.items()}
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(
            workers or min(8, os.cpu_count() or 1), thread_name_prefix="ftguard-sha256"
        )
        roles = list(self.paths)
        try:
            jobs = start_manifests(
                [self.paths[r] for r in roles],
                self._pool,
                first=[list((first or {}).get(r, [])) for r in roles],
                stop=self._stop,
            )
        except BaseException:
            self.close()
            raise
        self._jobs = dict(zip(roles, jobs, strict=True))

    def manifest(self, role: str) -> Manifest:
        """The manifest of input ``role``, once every one of its files is hashed."""
        return self._jobs[role].result()

    def close(self) -> None:
        """Stop the hashing still to do (a file being hashed ends at its next block)."""
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> InputDigests:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def start_digests(
    base: Path,
    tuned: Path,
    *,
    alignment: tuple[Path, Path] | None = None,
    workers: int | None = None,
) -> InputDigests:
    """Start hashing a diff's inputs now; pass the result to ``diff(..., digests=)``.

    The same digests :func:`ftguard.weights.diff` computes (every byte of every file, each
    time), started before numpy and the weight engine are imported, so that the disk and the
    hashing threads work while they load. Files are hashed in listing order, base and tuned
    taking turns (the diff's data files come first in that order for the usual layouts).

    Args:
        base: The base model (file or folder), as it will be given to ``diff``.
        tuned: The tuned model or adapter, the same.
        alignment: ``(unaligned, aligned)``, the same.
        workers: Hashing threads (default: CPU count, at most 8).

    Raises:
        BadInputError: A path is missing, special, unreadable, or an empty folder.

    """
    paths = {"base": Path(base), "tuned": Path(tuned)}
    if alignment is not None:
        paths["un"], paths["al"] = Path(alignment[0]), Path(alignment[1])
    return InputDigests(paths, workers=workers)
