"""Progress bars on stderr for long work (rich; a no-op when turned off)."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

__all__ = ["ProgressBar", "progress_wanted"]


def progress_wanted(flag: bool | None) -> bool:
    """``flag`` when given, else whether stderr is a terminal (scripts and CI get no bars)."""
    if flag is not None:
        return flag
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class ProgressBar:
    """One transient rich progress bar on stderr: description, bar, done/total, elapsed, ETA.

    Use as a context manager; :meth:`advance` moves it. Disabled, it costs nothing and prints
    nothing, so callers need no branches.
    """

    def __init__(self, description: str, total: int | None, *, enabled: bool) -> None:
        self._bar: Any = None
        self._task: Any = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._bar.add_task(description, total=total)

    def __enter__(self) -> ProgressBar:
        if self._bar is not None:
            self._bar.start()
        return self

    def advance(self, amount: int = 1) -> None:
        """Mark ``amount`` more units as done."""
        if self._bar is not None:
            self._bar.advance(self._task, amount)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
