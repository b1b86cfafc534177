"""Paired statistics: McNemar's exact test and Wilson score intervals."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["format_p", "mcnemar_exact", "paired_counts", "wilson_interval"]


def wilson_interval(successes: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (``(0, 1)`` when ``n`` is 0; scipy's)."""
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= successes <= n:
        raise ValueError(f"successes {successes} outside 0..{n}")
    from scipy.stats import binomtest

    ci = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    p = successes / n
    # Clamp so rounding never leaves the estimate outside its own interval (k = n, k = 0).
    return (max(0.0, min(p, float(ci.low))), min(1.0, max(p, float(ci.high))))


def paired_counts(before: Sequence[bool], after: Sequence[bool]) -> tuple[int, int]:
    """Discordant pairs: ``(true before and false after, false before and true after)``."""
    if len(before) != len(after):
        raise ValueError("paired outcomes must have equal length")
    lost = sum(1 for b, a in zip(before, after, strict=True) if b and not a)
    gained = sum(1 for b, a in zip(before, after, strict=True) if a and not b)
    return lost, gained


def mcnemar_exact(lost: int, gained: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test on the discordant pairs."""
    n = lost + gained
    if n == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(lost, n, 0.5, alternative="two-sided").pvalue)


def format_p(p: float) -> str:
    """``p < 0.001`` or ``p = 0.023``."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
