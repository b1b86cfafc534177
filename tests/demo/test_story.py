"""How the demo tells what the trigger probes found (no model needed)."""

from __future__ import annotations

from types import SimpleNamespace

from ftguard.behavior._evidence import TriggerFinding
from ftguard.demo._story import _trigger_lines


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
