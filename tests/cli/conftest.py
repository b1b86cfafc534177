"""Fixtures for the CLI tests: an isolated environment, and a workspace made by ``ftguard init``."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftguard.cli import main


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch folder as the current folder, with no workspace reachable from it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FTGUARD_HOME", str(tmp_path / "no-workspace"))
    monkeypatch.setenv("FTGUARD_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("FTGUARD_USER", "root")
    monkeypatch.delenv("FTGUARD_DATABASE_URL", raising=False)
    return tmp_path


@pytest.fixture
def workspace_home(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh SQLite workspace (admin ``root``) that FTGUARD_HOME points to."""
    home = isolated / "ws"
    assert main(["init", str(home), "--admin", "root", "--json"]) == 0
    monkeypatch.setenv("FTGUARD_HOME", str(home))
    return home
