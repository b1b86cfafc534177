"""Work items of a full diff: tensor windows, their statistics, and the read-ahead thread."""

from __future__ import annotations

import threading

from ftguard.weights._safetensors import Checkpoint
from ftguard.weights._stats import DiffSums, diff_sources, norm_source

__all__ = ["READ_AHEAD", "WINDOW", "Schedule", "merge", "window_norm", "window_sums", "windows"]

WINDOW = 1 << 22
"""Elements per work item: big tensors are split so threads share them (8 MiB of BF16)."""


READ_AHEAD = 256 << 20
"""Bytes the read-ahead thread may ask the kernel for beyond the newest started window."""


def windows(n: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` element ranges of at most :data:`WINDOW` covering ``n`` elements."""
    return [(s, min(n, s + WINDOW)) for s in range(0, n, WINDOW)] or [(0, 0)]


class Schedule:
    """Work items (tensor windows) in order, read ahead of the workers by one I/O thread.

    The read-ahead thread walks the items in the order the workers take them and asks the
    kernel to read each one (``POSIX_FADV_WILLNEED``: queued, no copy), staying at most
    ``ahead_bytes`` in front of the newest item a worker has started; so a cold disk
    streams at full speed while the CPUs compute. Page cache only: resident memory does
    not grow.
    """

    def __init__(
        self, cks: list[Checkpoint], items: list[tuple[str, int, int]], ahead_bytes: int
    ) -> None:
        self.cks, self.items, self.ahead_bytes = cks, items, ahead_bytes
        self._cond = threading.Condition()
        self._started = -1
        self._stop = False
        self._cum: list[int] = []
        total = 0
        for name, lo, hi in items:
            total += (hi - lo) * sum(_size(ck, name) for ck in cks if name in ck)
            self._cum.append(total)
        self._thread = threading.Thread(target=self._run, name="ftguard-readahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for i, (name, lo, hi) in enumerate(self.items):
            with self._cond:
                done = self._cum[self._started] if self._started >= 0 else 0
                while not self._stop and self._cum[i] - done > self.ahead_bytes:
                    self._cond.wait()
                    done = self._cum[self._started] if self._started >= 0 else 0
                if self._stop:
                    return
            for ck in self.cks:
                if name in ck:
                    size = _size(ck, name)
                    ck.file_of(name).prefetch(name, lo * size, hi * size)

    def started(self, i: int) -> None:
        with self._cond:
            if i > self._started:
                self._started = i
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join()


def _size(ck: Checkpoint, name: str) -> int:
    return 4 if ck.info(name).dtype == "F32" else 2


def window_sums(sched: Schedule, i: int, a: Checkpoint, b: Checkpoint, tol: float) -> DiffSums:
    """Statistics of work item ``i`` of base ``a`` and tuned ``b`` (run on a pool thread)."""
    sched.started(i)
    name, lo, hi = sched.items[i]
    return diff_sources(a.source(name), b.source(name), lo, hi, tol)


def window_norm(sched: Schedule, i: int, a: Checkpoint) -> float:
    """Squared norm of work item ``i`` of ``a`` (run on a pool thread)."""
    sched.started(i)
    name, lo, hi = sched.items[i]
    return norm_source(a.source(name), lo, hi)


def merge(parts: list[DiffSums]) -> DiffSums:
    """One tensor's statistics from those of its windows."""
    out = DiffSums()
    for p in parts:
        out.merge(p)
    return out
