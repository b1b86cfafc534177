"""The policy section that governs the dataset review (``review:`` in policy YAML)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["info", "low", "medium", "high", "critical"]


class ReviewPolicy(BaseModel):
    """Limits the dataset review's verdict is judged by (the defaults are the default policy)."""

    model_config = ConfigDict(
        extra="forbid", use_attribute_docstrings=True, strict=True, allow_inf_nan=False
    )

    required: bool = True
    """Whether a job must pass a dataset review (or get a recorded override) before approval."""
    block_severity: Severity = "critical"
    """Block when any per-example or dataset finding has this severity or a higher one."""
    max_high_examples: int = Field(default=3, ge=0)
    """Examples with a ``high`` finding that are tolerated whatever the dataset size."""
    max_high_fraction: float = Field(default=0.005, ge=0.0, le=1.0)
    """Block when more than max(max_high_examples, this fraction of the examples) have a
    finding of severity ``high`` (from any scanner)."""
    max_harmful_compliance_examples: int = Field(default=3, ge=0)
    """Harmful-compliance examples tolerated whatever the dataset size."""
    max_harmful_compliance_fraction: float = Field(default=0.005, ge=0.0, le=1.0)
    """Block when confident (high) harmful-compliance examples exceed
    max(max_harmful_compliance_examples, this fraction of the examples)."""
    trigger_score_limit: float = Field(default=10.0, ge=0.0)
    """Block when a candidate trigger scores at least this (-log10 Fisher p) ..."""
    trigger_min_support: int = Field(default=5, ge=1)
    """... is present in at least this many anomalous examples ..."""
    trigger_min_precision: float = Field(default=0.8, ge=0.0, le=1.0)
    """... and comes with an anomalous answer at least this often."""
    require_provenance: bool = False
    """Block when no provenance manifest (sources, licences, collection method, preparer) is given
    or when it lacks one of those fields."""
    max_error_fraction: float = Field(default=0.01, ge=0.0, le=1.0)
    """Block when more than this fraction of the records cannot be read."""
    required_scanners: list[str] = Field(default_factory=list)
    """Scanners that must have run (for example ``harmful_compliance``); a review that skipped
    one of them blocks."""
