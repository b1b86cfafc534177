"""The policy section that governs the behaviour comparison (``behavior:`` in policy YAML)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class BehaviorPolicy(BaseModel):
    """Limits the behaviour comparison's verdict is judged by."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    required: bool = True
    """Whether the gate requires a behaviour comparison."""
