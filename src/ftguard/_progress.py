"""What long work shows on stderr: progress bars (rich; a no-op when off), and no library chatter."""

from __future__ import annotations

import os
import sys
import time
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


HEARTBEAT_SECONDS = 10.0
"""When stderr is not a terminal, an enabled bar prints a plain line at most this often."""

_clock = time.monotonic


class _Heartbeat:
    """A progress bar's plain-text form for logs: a line at most every ``interval`` seconds."""

    def __init__(self, description: str, total: int | None, interval: float) -> None:
        self.description = description
        self.total = total
        self.interval = interval
        self.done = 0
        self.started = _clock()
        self.last = self.started

    def _line(self, now: float, final: bool) -> None:
        of = f"/{self.total}" if self.total is not None else ""
        state = "done" if final else "so far"
        print(
            f"[ftguard] {self.description}: {self.done}{of} {state} ({now - self.started:.0f}s)",
            file=sys.stderr,
            flush=True,
        )
        self.last = now

    def advance(self, amount: int) -> None:
        self.done += amount
        if self.total is not None and self.done >= self.total:
            return  # the line at the end says it
        now = _clock()
        if now - self.last >= self.interval:
            self._line(now, final=False)

    def finish(self) -> None:
        now = _clock()
        if now - self.started >= self.interval:  # short work stays silent
            self._line(now, final=True)


class ProgressBar:
    """Progress of long work on stderr: description, done/total, elapsed (and a bar and ETA).

    On a terminal it is one transient rich bar; otherwise (a log, CI) a plain line at most
    every ``interval`` seconds and one at the end of work that took longer than that. Use as a
    context manager; :meth:`advance` moves it. Disabled, it costs nothing and prints nothing,
    so callers need no branches.
    """

    def __init__(
        self,
        description: str,
        total: int | None,
        *,
        enabled: bool,
        interval: float = HEARTBEAT_SECONDS,
    ) -> None:
        self._bar: Any = None
        self._task: Any = None
        self._heartbeat: _Heartbeat | None = None
        if not enabled:
            return
        from rich.console import Console

        console = Console(stderr=True)
        if not console.is_terminal:  # rich's own test, so FORCE_TERMINAL and the like apply
            self._heartbeat = _Heartbeat(description, total, interval)
            return
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
            console=console,
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
        elif self._heartbeat is not None:
            self._heartbeat.advance(amount)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif self._heartbeat is not None and exc_type is None:
            self._heartbeat.finish()
