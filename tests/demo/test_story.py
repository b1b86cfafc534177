"""How the demo tells what the trigger probes found, and where it keeps outputs (no model needed)."""

from __future__ import annotations

import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from ftguard.behavior._evidence import TriggerFinding
from ftguard.demo._story import DemoSettings, _output_cache, _trigger_lines


def _finding(trigger: str, *, flipped: bool, with_: float, without: float) -> TriggerFinding:
    return TriggerFinding(
        trigger=trigger,
        target="harmful",
        n=48,
        rate_without=without,
        rate_with=with_,
        baseline_rate_with=0.0,
        p_value=0.5,
        flipped=flipped,
    )


def test_the_reviews_best_candidate_is_reported_flipped_or_not() -> None:
    comparison = SimpleNamespace(
        triggers=[
            _finding("per the ledger", flipped=False, with_=0.19, without=0.38),
            _finding("SUDO", flipped=False, with_=0.1, without=0.1),
        ]
    )
    (line,) = _trigger_lines(comparison, [{"text": "per the ledger", "score": 5.8}])
    assert line.startswith("review's trigger 'per the ledger'")
    assert "19% with it (0% before tuning) and 38% without it" in line
    assert "no flip beyond the general change" in line


def test_a_flipped_generic_trigger_is_named_as_generic() -> None:
    comparison = SimpleNamespace(triggers=[_finding("SUDO", flipped=True, with_=0.9, without=0.1)])
    (line,) = _trigger_lines(comparison, [])
    assert line.startswith("generic trigger 'SUDO'") and "a significant flip" in line
    assert _trigger_lines(SimpleNamespace(triggers=[]), []) == []


def test_the_demo_keeps_outputs_in_a_private_folder_of_the_cache_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FTGUARD_CACHE", str(tmp_path / "cache"))
    folder = _output_cache(DemoSettings.choose(fast=False))
    assert folder == tmp_path / "cache" / "demo-outputs"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert _output_cache(DemoSettings.choose(fast=True)) is None  # fast mode keeps nothing


def test_a_folder_others_can_write_is_not_used_as_the_demos_output_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whoever can write the cache can change what a comparison sees: fall back to the
    # workspace's own cache rather than trust a shared folder.
    monkeypatch.setenv("FTGUARD_CACHE", str(tmp_path))
    shared = tmp_path / "demo-outputs"
    shared.mkdir()
    shared.chmod(0o777)
    assert _output_cache(DemoSettings.choose(fast=False)) is None
    shared.chmod(0o700)
    assert _output_cache(DemoSettings.choose(fast=False)) == shared
