"""The policy section that governs the dataset review (``review:`` in policy YAML)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ReviewPolicy(BaseModel):
    """Limits the dataset review's verdict is judged by."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    required: bool = True
    """Whether a job must pass a dataset review (or get a recorded override) before approval."""
