"""The ``weights:`` policy section (defined with the other sections in :mod:`ftguard.policy`)."""

from __future__ import annotations

from ftguard.policy._weights import WeightsPolicy

__all__ = ["WeightsPolicy"]
