"""Parameter monitoring: what a fine-tune changed in the weights, and is that normal.

Reads safetensors checkpoints safely (validated headers, memory-mapped, tensor by tensor),
diffs a tuned model or a PEFT LoRA adapter (in factored form) against its base, compares
the change with fingerprints of earlier approved jobs, and measures it against the
alignment direction of an (unaligned, aligned) pair.

Example:
    >>> from ftguard.weights import diff
    >>> report = diff(Path("base"), Path("adapter"))  # doctest: +SKIP
    >>> report.verdict, report.anomaly_score  # doctest: +SKIP

"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ftguard._lazy import lazy_attributes

if TYPE_CHECKING:
    from ftguard.weights._diff import diff
    from ftguard.weights._evidence import (
        SCHEMA_VERSION,
        AdapterInfo,
        AlignmentLayer,
        AlignmentReport,
        Fingerprint,
        GroupStats,
        TensorStats,
        WeightFlag,
        WeightReport,
    )
    from ftguard.weights._hashing import InputDigests, start_digests
    from ftguard.weights._html import render_weights_html
    from ftguard.weights._lora import LoraPair, factored_svd, is_adapter
    from ftguard.weights._naming import TensorName, parse_name
    from ftguard.weights._policy import WeightsPolicy
    from ftguard.weights._safetensors import Checkpoint, open_checkpoint, parse_header
    from ftguard.weights._stats import KERNEL
    from ftguard.weights._svg import weights_heatmap_svg

_HOME = {
    "diff": "_diff",
    "InputDigests": "_hashing",
    "start_digests": "_hashing",
    "render_weights_html": "_html",
    "LoraPair": "_lora",
    "factored_svd": "_lora",
    "is_adapter": "_lora",
    "TensorName": "_naming",
    "parse_name": "_naming",
    "WeightsPolicy": "_policy",
    "Checkpoint": "_safetensors",
    "open_checkpoint": "_safetensors",
    "parse_header": "_safetensors",
    "KERNEL": "_stats",
    "weights_heatmap_svg": "_svg",
    **dict.fromkeys(
        (
            "SCHEMA_VERSION",
            "AdapterInfo",
            "AlignmentLayer",
            "AlignmentReport",
            "Fingerprint",
            "GroupStats",
            "TensorStats",
            "WeightFlag",
            "WeightReport",
        ),
        "_evidence",
    ),
}
"""Each public name by the module that defines it: imported on first use, so that starting
the digests (:func:`start_digests`) does not wait for numpy and the report models."""

__all__ = [
    "KERNEL",
    "SCHEMA_VERSION",
    "AdapterInfo",
    "AlignmentLayer",
    "AlignmentReport",
    "Checkpoint",
    "Fingerprint",
    "GroupStats",
    "InputDigests",
    "LoraPair",
    "TensorName",
    "TensorStats",
    "WeightFlag",
    "WeightReport",
    "WeightsPolicy",
    "diff",
    "factored_svd",
    "is_adapter",
    "open_checkpoint",
    "parse_header",
    "parse_name",
    "render_weights_html",
    "start_digests",
    "weights_heatmap_svg",
]


__getattr__, __dir__ = lazy_attributes(__name__, _HOME)
