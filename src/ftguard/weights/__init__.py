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

from ftguard.weights._diff import diff
from ftguard.weights._html import render_weights_html
from ftguard.weights._naming import TensorName, parse_name
from ftguard.weights._policy import WeightsPolicy
from ftguard.weights._report import (
    AdapterInfo,
    AlignmentLayer,
    AlignmentReport,
    Fingerprint,
    GroupStats,
    TensorStats,
    WeightFlag,
    WeightReport,
)
from ftguard.weights._safetensors import Checkpoint, open_checkpoint, parse_header
from ftguard.weights._svg import weights_heatmap_svg

__all__ = [
    "AdapterInfo",
    "AlignmentLayer",
    "AlignmentReport",
    "Checkpoint",
    "Fingerprint",
    "GroupStats",
    "TensorName",
    "TensorStats",
    "WeightFlag",
    "WeightReport",
    "WeightsPolicy",
    "diff",
    "open_checkpoint",
    "parse_header",
    "parse_name",
    "render_weights_html",
    "weights_heatmap_svg",
]
