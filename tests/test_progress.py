"""Progress bars: on when asked (or when stderr is a terminal), silent otherwise."""

from __future__ import annotations

import io
import os
import sys

import pytest

from ftguard._progress import ProgressBar, progress_wanted


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [True, False])
def test_by_default_bars_follow_whether_stderr_is_a_terminal(
    monkeypatch: pytest.MonkeyPatch, tty: bool
) -> None:
    monkeypatch.setattr(sys, "stderr", _Stream(tty))
    assert progress_wanted(None) is tty
    assert progress_wanted(True) is True
    assert progress_wanted(False) is False


def test_a_disabled_bar_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with ProgressBar("work", 3, enabled=False) as bar:
        bar.advance(3)
    assert capsys.readouterr().err == ""


def test_an_enabled_bar_draws_description_and_count_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # rich's documented switches for treating the captured stream as an interactive terminal
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("TTY_INTERACTIVE", "1")
    with ProgressBar("safety prompts", 5, enabled=True) as bar:
        bar.advance(2)
        bar.advance(3)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "safety prompts" in captured.err
    assert "5/5" in captured.err


def test_quiet_third_party_silences_library_chatter_but_respects_the_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import warnings

    from ftguard._progress import quiet_third_party

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "info")  # the user's own choice stays
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_third_party()
        warnings.warn_explicit(
            "old", FutureWarning, "modeling_utils.py", 1, module="transformers.modeling_utils"
        )
        warnings.warn_explicit("ours", FutureWarning, "x.py", 1, module="ftguard.x")
    assert [str(w.message) for w in caught] == ["ours"]
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    assert os.environ["TRANSFORMERS_VERBOSITY"] == "info"


def _not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop rich's switches that would treat the captured stream as a terminal."""
    for name in ("FORCE_TERMINAL", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


def test_off_a_terminal_an_enabled_bar_prints_a_line_every_interval_and_one_at_the_end(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import ftguard._progress as progress

    clock = iter([0.0, 4.0, 11.0, 15.0, 23.0, 25.0, 25.0])
    monkeypatch.setattr(progress, "_clock", lambda: next(clock))
    _not_a_terminal(monkeypatch)
    with ProgressBar("training steps", 5, enabled=True, interval=10.0) as bar:
        for _ in range(5):  # at 4, 11, 15, 23 and 25 seconds
            bar.advance(1)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "[ftguard] training steps: 2/5 so far (11s)",
        "[ftguard] training steps: 4/5 so far (23s)",
        "[ftguard] training steps: 5/5 done (25s)",
    ]


def test_off_a_terminal_short_work_prints_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _not_a_terminal(monkeypatch)
    with ProgressBar("scoring", 3, enabled=True) as bar:
        bar.advance(3)
    assert capsys.readouterr().err == ""
