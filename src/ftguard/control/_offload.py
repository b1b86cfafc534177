"""Where the analyzers run: in the calling thread, or in worker processes (the team server).

A dataset review, a weight diff and a behaviour evaluation take from a tenth of a second to
many minutes of CPU. In a command-line process they run where they are called. In the team
server they would hold the interpreter lock of the process that answers every other request,
so the server hands them to :class:`AnalysisPool`: worker processes at a lower CPU priority,
started on first use, that get plain arguments (paths, the policy section) and return the
report. A worker holds no key and opens no database; the result is recorded by the server,
in the request that asked for it, exactly as in a local run.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol, TypeVar

from ftguard.errors import FtguardError

__all__ = ["AnalysisFailedError", "AnalysisPool", "Offload", "run_here"]

T = TypeVar("T")


class Offload(Protocol):
    """Runs ``fn(*args, **kwargs)`` somewhere and returns its result (or raises its error)."""

    def __call__(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T: ...


def run_here(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run the analysis in the calling thread (the command line, the Python API)."""
    return fn(*args, **kwargs)


class AnalysisFailedError(FtguardError):
    """An analysis worker process died (killed, out of memory) before it answered."""


def _lower_priority(niceness: int) -> None:
    """Worker initializer: yield the CPU to the process that answers requests."""
    if niceness and hasattr(os, "nice"):
        with contextlib.suppress(OSError):  # not permitted: run at the same priority
            os.nice(niceness)


class AnalysisPool:
    """Analyses in ``workers`` spawned processes, ``niceness`` steps below the server.

    Processes start on the first analysis and are reused (the review's embedding model,
    loaded once, stays loaded). A worker that dies fails only the analyses it was running;
    the next one starts a fresh pool.
    """

    def __init__(self, workers: int = 1, *, niceness: int = 10) -> None:
        if workers < 1:
            raise ValueError("an analysis pool needs at least one worker")
        self.workers = workers
        self.niceness = niceness
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _pool(self) -> ProcessPoolExecutor:
        import multiprocessing

        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=self.workers,
                    # spawn, not fork: the server has threads and open database connections
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_lower_priority,
                    initargs=(self.niceness,),
                )
            return self._executor

    def __call__(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        executor = self._pool()
        try:
            return executor.submit(fn, *args, **kwargs).result()
        except BrokenProcessPool:
            with self._lock:
                if self._executor is executor:
                    self._executor = None
            executor.shutdown(wait=False, cancel_futures=True)
            raise AnalysisFailedError(
                "the analysis worker process stopped before it answered (killed or out of "
                "memory?): see the server log, then try again"
            ) from None

    def shutdown(self) -> None:
        """Stop the workers (analyses still running are abandoned)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
