"""The policy section that governs the weight report (``weights:`` in policy YAML)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


def _default_critical_patterns() -> dict[str, list[str]]:
    return {
        "*": ["embed", "lm_head", "norm"],
    }


class WeightsPolicy(BaseModel):
    """Limits the weight report's verdict is judged by.

    With at least ``min_baseline_jobs`` fingerprints of earlier approved jobs on the same
    base model, each feature of a new job is scored by its robust z-score (median / MAD)
    against them and also as a ratio to their median; with fewer, the fixed limits
    (``max_relative_change`` and friends) apply instead.
    """

    model_config = ConfigDict(
        extra="forbid", use_attribute_docstrings=True, strict=True, allow_inf_nan=False
    )

    required: bool = True
    """Whether the gate requires a weight report."""

    # -- baselines ---------------------------------------------------------------------
    min_baseline_jobs: int = Field(default=5, ge=1)
    """Fewest earlier approved jobs on the same base for baseline (z-score) judging."""
    z_limit: float = Field(default=6.0, gt=0)
    """A feature whose robust z-score against the baselines exceeds this is flagged."""
    ratio_limit: float = Field(default=4.0, gt=1)
    """A feature this many times the baselines' median (and above its z limit) is flagged."""
    critical_z_limit: float = Field(default=4.0, gt=0)
    """The z limit for features of safety-critical layers."""
    critical_ratio_limit: float = Field(default=2.5, gt=1)
    """The ratio limit for features of safety-critical layers."""
    anomaly_score_limit: float = Field(default=6.0, gt=0)
    """The combined anomaly score above which the report is flagged."""
    min_feature_scale: float = Field(default=0.05, ge=0)
    """Floor of a feature's MAD as a fraction of its median (avoids dividing by ~0)."""
    min_feature_floor: float = Field(default=1e-4, gt=0)
    """Absolute floor of a feature's scale, for features the baselines never changed."""
    profile_checks: bool = True
    """Also compare the update with the baselines tensor by tensor (magnitude, depth and
    spectral concentration shifts, combined; see docs/weights.md) and flag a combined
    z-score above ``z_limit``."""
    min_profile_scale: float = Field(default=0.01, gt=0)
    """Floor of a profile shift's spread among the baselines, in log units (0.01: shifts
    are never judged more finely than 1 %)."""

    # -- fixed limits (fewer baselines than ``min_baseline_jobs``) ----------------------
    max_relative_change: float = Field(default=0.5, gt=0)
    """Largest relative change ||dW||/||W|| of any one tensor."""
    max_critical_relative_change: float = Field(default=0.1, gt=0)
    """Largest relative change of a tensor in a safety-critical layer."""
    max_layer_relative_change: float = Field(default=0.25, gt=0)
    """Largest relative change of one layer (all its tensors together)."""
    max_total_relative_change: float = Field(default=0.15, gt=0)
    """Largest relative change of the whole model."""
    max_changed_fraction: float = Field(default=1.0, ge=0, le=1)
    """Largest share of tensors that may change at all (1.0: no limit)."""
    max_layer_energy_concentration: float = Field(default=6.0, gt=1)
    """Largest share of the update's energy (squared norm of dW) in one layer, as a multiple of an
    even spread over the layers (1/layers): an update concentrated in a few layers (a
    surgical edit of some blocks) is flagged. Never fires on models with fewer layers than
    this value."""
    flag_embedding_change: bool = True
    """Flag any change to the embeddings or lm_head (adapters: ``modules_to_save``)."""

    # -- within-model checks (no history needed; both modes) ------------------------------
    within_model_checks: bool = True
    """Judge each layer's and module's update against the same model's other layers and
    modules (robust z on a log scale, median / MAD across the layers): an update concentrated
    in one layer or module, or of far lower rank there, is flagged with or without baselines.
    The limits below were chosen by cross-validation on benign fine-tunes (docs/weights.md)."""
    within_layer_z_limit: float = Field(default=4.0, gt=0)
    """A layer whose log relative change is this many robust standard deviations above the
    median of the model's changed layers is flagged."""
    within_module_z_limit: float = Field(default=11.0, gt=0)
    """The same for one tensor against the same module kind in the other layers."""
    within_rank_z_limit: float = Field(default=61.5, gt=0)
    """The same, downward, for the effective rank of one tensor's update (LoRA; full diffs
    with ``deep``) against the same module kind in the other layers. High by default: benign
    LoRA updates of the embedded model are near rank one in one module (layer 11
    ``mlp.down_proj``, z up to 15), so only a far more extreme outlier is flagged."""
    within_min_log_scale: float = Field(default=0.25, gt=0)
    """Floor of the spread across layers of log relative changes (0.25: a layer is never
    judged more finely than about 28 %)."""
    within_min_rank_log_scale: float = Field(default=0.1, gt=0)
    """Floor of the spread across layers of log effective ranks."""
    within_min_layers: int = Field(default=4, ge=3)
    """Fewest changed layers (or tensors of one module kind) to compare against."""

    # -- safety-critical layers ----------------------------------------------------------
    critical_patterns: dict[str, list[str]] = Field(default_factory=_default_critical_patterns)
    """Per architecture (``model_type`` from config.json, ``*`` for all): substrings or
    ``fnmatch`` patterns of tensor names that are safety-critical."""
    critical_middle_layers: tuple[float, float] = Field(default=(0.3, 0.6), strict=False)
    """The block of middle layers held safety-critical, as fractions of the layer count
    (``[low, high]`` with 0 <= low <= high <= 1)."""

    # -- alignment direction -------------------------------------------------------------
    max_against_alignment: float = Field(default=0.05, ge=0, le=1)
    """Flag a layer (or the whole update) whose cosine with the alignment direction V is
    below minus this value: the fine-tune moves against the alignment."""
    min_alignment_norm_share: float = Field(default=0.01, ge=0, le=1)
    """Layers whose share of ||dW||² is below this are not judged on direction."""

    # -- statistics ----------------------------------------------------------------------
    change_tolerance: float = Field(default=1e-6, ge=0)
    """An element counts as changed when |dW| exceeds this."""
    deep_top_k: int = Field(default=8, ge=1, le=64)
    """Singular values computed per 2-D tensor with ``--deep``."""

    # -- training drift (DriftMonitor) ---------------------------------------------------
    max_drift_relative: float = Field(default=1.0, gt=0)
    """DriftMonitor stops training when the trainable parameters' relative drift from
    their start (LoRA: ||scale·B·A|| / ||W||) exceeds this."""
    max_drift_norm: float | None = Field(default=None, gt=0)
    """DriftMonitor stops training when the absolute drift ||θ - θ₀|| exceeds this."""

    @field_validator("critical_middle_layers")
    @classmethod
    def _a_span_of_fractions(cls, value: tuple[float, float]) -> tuple[float, float]:
        # Not strict as a whole (YAML gives a list, not a tuple); its items still are.
        lo, hi = value
        if not 0 <= lo <= hi <= 1:
            raise ValueError(f"must be two fractions 0 <= low <= high <= 1, got [{lo}, {hi}]")
        return value
