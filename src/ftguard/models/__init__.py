"""The embedded model, tiny test models, the reference aligned model, and model loading.

Importing this package does not import torch or transformers; the functions do.
"""

from __future__ import annotations

from ftguard.models._aligned import (
    SAFETY_DATA_FILE,
    SAFETY_RECIPE,
    aligned_model_folder,
    reference_aligned_adapter_dir,
    reference_aligned_model_dir,
)
from ftguard.models._cache import cache_root
from ftguard.models._embedded import (
    EMBEDDED_MODEL_NAME,
    converted_embedded_model,
    embedded_gguf_file,
    embedded_model_digest,
    embedded_model_dir,
)
from ftguard.models._load import check_safetensors_dir, load_causal_lm
from ftguard.models._tiny import copy_tokenizer, tiny_model_dir

__all__ = [
    "EMBEDDED_MODEL_NAME",
    "SAFETY_DATA_FILE",
    "SAFETY_RECIPE",
    "aligned_model_folder",
    "cache_root",
    "converted_embedded_model",
    "check_safetensors_dir",
    "copy_tokenizer",
    "embedded_gguf_file",
    "embedded_model_digest",
    "embedded_model_dir",
    "load_causal_lm",
    "reference_aligned_adapter_dir",
    "reference_aligned_model_dir",
    "tiny_model_dir",
]
