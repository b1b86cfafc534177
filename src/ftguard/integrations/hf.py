"""transformers integration: ``ApprovalGuard`` and ``DriftMonitor`` trainer callbacks.

The classes are built on first access, so importing this module does not import torch or
transformers::

    from ftguard.integrations.hf import ApprovalGuard, DriftMonitor
    trainer = Trainer(..., callbacks=[ApprovalGuard.from_env(), DriftMonitor.from_env()])
"""

from __future__ import annotations

from functools import cache
from typing import Any

__all__ = ["ApprovalGuard", "DriftMonitor"]  # noqa: F822 (built lazily by __getattr__)


@cache
def _build(name: str) -> Any:
    if name == "ApprovalGuard":
        from ftguard.integrations._approval_guard import make_approval_guard_class

        return make_approval_guard_class()
    from ftguard.integrations import _drift

    return _drift.DriftMonitor


def __getattr__(name: str) -> Any:
    if name in __all__:
        return _build(name)
    raise AttributeError(name)
