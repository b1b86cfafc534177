"""The ``weights:`` policy section (defined with the other sections in :mod:`ftguard.policy`)."""

from __future__ import annotations

from ftguard.policy import WeightsPolicy

__all__ = ["WeightsPolicy"]
