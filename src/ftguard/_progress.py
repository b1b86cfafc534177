"""What long work shows on stderr: progress bars (rich; a no-op when off), and no library chatter."""

from __future__ import annotations

import os
import sys
import warnings
from types import TracebackType
from typing import Any

__all__ = ["ProgressBar", "progress_wanted", "quiet_third_party"]


def quiet_third_party() -> None:
    """Keep library loading bars and deprecation chatter out of ftguard's own output.

    For command-line entry points, called before transformers is imported: its per-tensor
    "Loading weights" bars and FutureWarnings say nothing a user of ftguard can act on.
    Settings a user already made in the environment win.
    """
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for module in ("transformers", "peft", "accelerate"):
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)


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
