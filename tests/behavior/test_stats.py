from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ftguard.behavior import mcnemar_exact, wilson_interval
from ftguard.behavior._stats import format_p, paired_counts


def test_wilson_known_values() -> None:
    lo, hi = wilson_interval(8, 10)
    # Reference values (Wilson 1927; e.g. statsmodels proportion_confint method="wilson").
    assert lo == pytest.approx(0.4902, abs=1e-3)
    assert hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and 0.1 < hi < 0.2


def test_mcnemar_exact_known_values() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == pytest.approx(1.0)
    # 10 discordant pairs all one way: 2 * 0.5**10
    assert mcnemar_exact(10, 0) == pytest.approx(2 * 0.5**10)
    assert mcnemar_exact(1, 9) == pytest.approx(0.021484375)


def test_paired_counts() -> None:
    assert paired_counts([True, True, False, False], [True, False, True, False]) == (1, 1)
    with pytest.raises(ValueError):
        paired_counts([True], [])


def test_format_p() -> None:
    assert format_p(0.0001) == "p < 0.001"
    assert format_p(0.0234) == "p = 0.023"


@given(st.integers(0, 200), st.integers(1, 200))
def test_wilson_contains_estimate(k: int, n: int) -> None:
    k = min(k, n)
    lo, hi = wilson_interval(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
