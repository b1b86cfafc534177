"""Running ``ftguard.cli.main`` in-process and judging what it printed."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from ftguard.cli import main
from ftguard.errors import (
    EXIT_BAD_INPUT,
    EXIT_CONFLICT,
    EXIT_DATABASE,
    EXIT_DEPENDENCY,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_PERMISSION,
    EXIT_VERDICT,
    EXIT_VERIFICATION,
)

DOCUMENTED = {
    EXIT_OK,
    EXIT_VERDICT,
    EXIT_BAD_INPUT,
    EXIT_NOT_FOUND,
    EXIT_PERMISSION,
    EXIT_CONFLICT,
    EXIT_VERIFICATION,
    EXIT_DEPENDENCY,
    EXIT_DATABASE,
}


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("ftguard: error:")]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    """``ftguard ARGS`` in this process."""
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def cli_subprocess(
    *args: str, prelude: str = "", env: dict[str, str] | None = None, cwd: Path | None = None
) -> Result:
    """``ftguard ARGS`` in a fresh interpreter, after running ``prelude`` there."""
    code = f"{prelude}\nimport sys\nfrom ftguard.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=120,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def assert_clean(r: Result) -> None:
    """A documented exit code, no traceback, and a failure said in one line (or click's usage)."""
    assert r.code in DOCUMENTED, (r.code, r.err[-2000:])
    assert "Traceback" not in r.err and "Traceback" not in r.out, r.err[-2000:]
    if r.code in (EXIT_OK, EXIT_VERDICT):
        return
    if r.error_lines:
        assert len(r.error_lines) == 1, r.err
        assert r.err.strip() == r.error_lines[0], r.err  # nothing else on stderr
    else:  # click's usage block ("Usage: ...", "Error: ..."), or the help for no arguments
        assert r.code == EXIT_BAD_INPUT, r.err
        errors = [line for line in r.err.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1 or "Usage: ftguard" in r.out, r.err


def assert_one_error(r: Result, code: int, *fragments: str) -> None:
    """Exactly one ``ftguard: error:`` line, naming each of ``fragments``, and exit ``code``."""
    assert_clean(r)
    assert r.code == code, (r.code, r.err)
    assert len(r.error_lines) == 1, r.err
    for fragment in fragments:
        assert fragment in r.error_lines[0], (fragment, r.err)
