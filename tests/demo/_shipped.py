"""Helpers for the tests of the demo's shipped files."""

from __future__ import annotations

import pytest


def skip_unless_made_here(pin: dict[str, str]) -> None:
    """Skip unless this machine is of the kind that made a shipped file: training and
    generation give other last bits on another CPU or thread count, so there the reference
    model is another one and the demo generates and trains its own instead of the file."""
    from ftguard.training import machine_kind

    here = machine_kind()
    if here != pin["made_on"]:
        pytest.skip(f"made on {pin['made_on']!r}; this machine is {here!r}")
