"""The doctor's report: one :class:`Check` per thing looked at."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = ["Check", "DoctorReport", "Status"]

Status = Literal["ok", "missing", "todo", "warn", "error", "info"]
"""``ok``; ``missing`` (optional, not installed or not set up); ``todo`` (a one-time build still
to come); ``warn`` (works, degraded); ``error`` (the core does not work); ``info``."""


class Check(BaseModel):
    """One line of the doctor's report."""

    id: str
    """Stable identifier for scripts, e.g. ``extra:ml``, ``kernel``, ``build:aligned``."""
    section: str
    """``install``, ``extras``, ``models``, ``workspace``, ``cache`` or ``builds``."""
    name: str
    status: Status
    detail: str
    fix: str | None = None
    """One line: the pip command or make target that fixes what is missing."""
    core: bool = False
    """An ``error`` here means the core (the control plane) does not work."""
    data: dict[str, Any] = Field(default_factory=dict)
    """Machine-readable details (versions, paths, sizes)."""


class DoctorReport(BaseModel):
    """Everything ``ftguard doctor`` found."""

    schema_version: int = 1
    ftguard: str
    python: str
    core_ok: bool
    checks: list[Check]
