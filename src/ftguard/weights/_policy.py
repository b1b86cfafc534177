"""The policy section that governs the weight report (``weights:`` in policy YAML)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class WeightsPolicy(BaseModel):
    """Limits the weight report's verdict is judged by."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    required: bool = True
    """Whether the gate requires a weight report."""
