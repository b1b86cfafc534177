"""Fine-tuning on CPU: chat data, LoRA / selected-layer training, the reference aligned model.

The reference aligned model is the embedded model after a short safety LoRA, merged.

Importing this package does not import torch or transformers; :func:`train_lora` does.
"""

from __future__ import annotations

from ftguard.training._data import Conversation, read_conversations
from ftguard.training._reference import (
    SAFETY_DATA_FILE,
    SAFETY_RECIPE,
    aligned_model_folder,
    machine_kind,
    merge_lora_exactly,
    reference_aligned_adapter_dir,
    reference_aligned_model_dir,
)
from ftguard.training._train import (
    DEFAULT_TARGET_MODULES,
    Precision,
    TrainResult,
    cpu_has_bf16,
    resolve_precision,
    train_lora,
)

__all__ = [
    "DEFAULT_TARGET_MODULES",
    "SAFETY_DATA_FILE",
    "SAFETY_RECIPE",
    "Conversation",
    "Precision",
    "TrainResult",
    "aligned_model_folder",
    "cpu_has_bf16",
    "machine_kind",
    "merge_lora_exactly",
    "read_conversations",
    "reference_aligned_adapter_dir",
    "reference_aligned_model_dir",
    "resolve_precision",
    "train_lora",
]
