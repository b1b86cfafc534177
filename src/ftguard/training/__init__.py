"""Fine-tuning on CPU: chat data reading and LoRA / selected-layer training.

Importing this package does not import torch or transformers; :func:`train_lora` does.
"""

from __future__ import annotations

from ftguard.training._data import Conversation, read_conversations
from ftguard.training._train import DEFAULT_TARGET_MODULES, TrainResult, train_lora

__all__ = [
    "DEFAULT_TARGET_MODULES",
    "Conversation",
    "TrainResult",
    "read_conversations",
    "train_lora",
]
