"""The ``behavior:`` policy section (defined with the other sections in :mod:`ftguard.policy`)."""

from __future__ import annotations

from ftguard.policy import BehaviorPolicy

__all__ = ["BehaviorPolicy"]
