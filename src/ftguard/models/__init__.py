"""The embedded model, tiny test models, the model cache, and model loading.

Importing this package does not import torch or transformers; the functions do.
"""

from __future__ import annotations

from ftguard.models._cache import build_once, cache_root, require_ml
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
    "build_once",
    "cache_root",
    "converted_embedded_model",
    "check_safetensors_dir",
    "copy_tokenizer",
    "embedded_gguf_file",
    "embedded_model_digest",
    "embedded_model_dir",
    "load_causal_lm",
    "require_ml",
    "tiny_model_dir",
]
