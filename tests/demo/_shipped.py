"""Helpers for the tests of the demo's shipped files."""

from __future__ import annotations

import pytest


def skip_unless_made_here(pin: dict[str, str]) -> None:
    """Skip unless this machine is of the kind that made a shipped file: generation and
    training give other last bits on another CPU or thread count (the demo still uses the
    file wherever the reference model is the pinned one, which the merge makes everywhere)."""
    from ftguard.training import machine_kind

    here = machine_kind()
    if here != pin["made_on"]:
        pytest.skip(f"made on {pin['made_on']!r}; this machine is {here!r}")
