"""The weight report: typed, versioned evidence of what a fine-tune changed."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AlignmentLayer",
    "AlignmentReport",
    "AdapterInfo",
    "Fingerprint",
    "GroupStats",
    "TensorStats",
    "WeightFlag",
    "WeightReport",
]

SCHEMA_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class TensorStats(_Model):
    """How one tensor changed."""

    name: str
    """Tensor name in the base model."""
    layer: int | None
    """Transformer block index; ``None`` outside the blocks (embeddings, final norm, head)."""
    module: str
    """Module path inside the block, e.g. ``mlp.down_proj``."""
    kind: str
    """Module kind: embed, attn.q/k/v/qkv/o, mlp.gate/up/gate_up/down, norm, lm_head, other."""
    shape: list[int]
    source: Literal["full", "lora", "modules_to_save", "added", "removed"] = "full"
    """Where the change comes from: a full-weight diff, a LoRA pair, a fully saved module."""
    critical: bool = False
    """Whether the policy holds this tensor safety-critical."""
    diff_norm: float
    """||dW||_F."""
    base_norm: float | None = None
    """||W||_F of the base tensor (from the fingerprint cache for adapters)."""
    relative_change: float | None = None
    """||dW||_F / ||W||_F."""
    max_abs_change: float | None = None
    """max |dW| (full diffs and saved modules only)."""
    changed_fraction: float | None = None
    """Share of elements with |dW| above the policy tolerance (full diffs only)."""
    cosine: float | None = None
    """cos(W, W') (full diffs only)."""
    lora_rank: int | None = None
    """Adapter rank r."""
    lora_scale: float | None = None
    """alpha / r (or alpha / sqrt(r) with rsLoRA)."""
    singular_values: list[float] | None = None
    """Top singular values of dW (LoRA: all r; full diffs: with ``deep``)."""
    effective_rank: float | None = None
    """exp(entropy of the energy shares σᵢ² / ||dW||²)."""
    rank_utilisation: float | None = None
    """Effective rank / r (LoRA)."""
    top1_energy: float | None = None
    """σ₁² / ||dW||²: how concentrated the update is in one direction."""
    alignment_cosine: float | None = None
    """cos(dW, V) with the alignment direction V, when given."""
    baseline_z: float | None = None
    """Robust z of this tensor's relative change against the baselines (judged by baselines)."""


class GroupStats(_Model):
    """Changes of a group of tensors: one layer, or one module kind across layers."""

    key: str
    """``layer 14`` / ``embeddings`` / a module kind such as ``mlp.down``."""
    layer: int | None = None
    kind: str | None = None
    tensors: int
    diff_norm: float
    base_norm: float | None
    relative_change: float | None
    energy_share: float
    """Share of the update's total ||dW||² that lies in this group."""
    critical: bool = False


class WeightFlag(_Model):
    """One reason the report is flagged, as a sentence."""

    reason: str
    tensor: str | None = None
    layer: int | None = None
    feature: str | None = None
    """The fingerprint feature or statistic that crossed its limit."""
    value: float | None = None
    limit: float | None = None


class AdapterInfo(_Model):
    """What the PEFT adapter configuration says."""

    peft_type: str
    rank: int
    alpha: float
    use_rslora: bool = False
    target_modules: list[str] = Field(default_factory=list)
    modules_to_save: list[str] = Field(default_factory=list)
    lora_pairs: int = 0


class AlignmentLayer(_Model):
    """The update against the alignment direction V in one layer (or group)."""

    key: str
    layer: int | None = None
    cosine: float
    """cos(dW, V) over the layer's tensors together; negative moves against alignment."""
    energy_share: float
    """Share of dW's energy along V: cos², signed like the cosine."""
    norm_share: float
    """This layer's share of ||dW||² among tensors where V is non-zero."""


class AlignmentReport(_Model):
    """Cosine between the fine-tune's update and the alignment direction V."""

    unaligned_digest: str
    aligned_digest: str
    cosine: float
    """Over all tensors where V is non-zero."""
    layers: list[AlignmentLayer]


class Fingerprint(_Model):
    """A fixed-name feature vector of a fine-tune, comparable across jobs on one base."""

    schema_version: int = SCHEMA_VERSION
    base_digest: str
    kind: Literal["full", "lora"]
    features: dict[str, float]
    """Feature name -> value (relative changes per layer and module kind, spectral features)."""

    @property
    def names(self) -> list[str]:
        return sorted(self.features)

    def vector(self, names: list[str]) -> list[float]:
        """Values in the order of ``names`` (NaN where a feature is absent)."""
        return [self.features.get(n, float("nan")) for n in names]


class WeightReport(_Model):
    """What a fine-tune changed in the weights, and whether that is normal."""

    schema_version: int = SCHEMA_VERSION
    verdict: Literal["pass", "flag"]
    anomaly_score: float
    """Larger is more anomalous; above the policy's limit (same scale in both modes) flags."""
    judged_by: Literal["baselines", "fixed_limits"]
    judgement: str
    """A sentence on how the verdict was reached (baselines used, or why fixed limits)."""
    flags: list[WeightFlag]
    tensors: list[TensorStats]
    """Per-tensor statistics, largest relative change first."""
    layers: list[GroupStats]
    modules: list[GroupStats]
    fingerprint: Fingerprint
    baseline_count: int
    base_digest: str
    tuned_digest: str
    tuned_kind: Literal["full", "lora"]
    model_type: str | None = None
    num_layers: int
    total_relative_change: float
    tensors_total: int
    tensors_changed: int
    adapter: AdapterInfo | None = None
    alignment: AlignmentReport | None = None
    deep: bool = False
    seconds: float
    bytes_read: int
    notes: list[str] = Field(default_factory=list)

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON object ``ftguard weights diff --json`` prints (the scripting contract)."""
        return self.model_dump(mode="json")
