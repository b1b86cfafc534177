"""PEFT adapters: recognise them, read LoRA pairs, analyse dW = s·B·A in factored form.

dW is never materialised: with B = Q_B R_B and Aᵀ = Q_A R_A (thin QR, computed as Cholesky-QR
from the r×r Gram matrices), dW = s·Q_B (R_B R_Aᵀ) Q_Aᵀ, so its singular values are those of the
r×r matrix s·R_B R_Aᵀ and ||dW||_F follows from them.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ftguard.errors import BadInputError
from ftguard.weights._safetensors import PICKLE_SUFFIXES, SafetensorsFile, refuse_pickle
from ftguard.weights._stats import spectral_summary, to_f32_matrix

__all__ = ["Adapter", "LoraPair", "factored_svd", "is_adapter", "open_adapter"]

_SUPPORTED = {"LORA"}
_PREFIXES = ("base_model.model.",)


@dataclass
class LoraPair:
    """One LoRA update dW = scale · left · right, in the base tensor's orientation."""

    base_name: str
    left: np.ndarray
    """m×r (B, or Aᵀ for embeddings / fan-in-fan-out layers)."""
    right: np.ndarray
    """r×n."""
    scale: float
    rank: int

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.left.shape[0]), int(self.right.shape[1]))


@dataclass
class Adapter:
    """A PEFT LoRA adapter folder, validated."""

    path: Path
    config: dict[str, Any]
    file: SafetensorsFile
    lora_keys: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Base module path -> (A key, B key) in the adapter file."""
    saved: dict[str, str] = field(default_factory=dict)
    """Base tensor name -> adapter key, for fully saved modules (``modules_to_save``)."""
    embedding: set[str] = field(default_factory=set)
    """Module paths whose pair is ``lora_embedding_A/B``."""

    @property
    def rank(self) -> int:
        return int(self.config.get("r", 0))

    @property
    def alpha(self) -> float:
        return float(self.config.get("lora_alpha", self.rank))

    def scale_for(self, module: str, rank: int) -> float:
        patterns = self.config.get("alpha_pattern") or {}
        key = _pattern_key(list(patterns), module)
        alpha = float(patterns[key]) if key in patterns else self.alpha
        if self.config.get("use_rslora"):
            return alpha / math.sqrt(rank)
        return alpha / rank

    def pair(self, module: str, base_name: str, base_shape: tuple[int, ...]) -> LoraPair:
        """Read one LoRA pair as float32 and orient it like the base tensor."""
        ka, kb = self.lora_keys[module]
        a_info, b_info = self.file.tensors[ka], self.file.tensors[kb]
        a = to_f32_matrix(self.file.raw(ka), a_info.dtype).astype(np.float32, copy=False)
        b = to_f32_matrix(self.file.raw(kb), b_info.dtype).astype(np.float32, copy=False)
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise BadInputError(
                f"{self.path.name}: LoRA pair of {module} has shapes {list(a.shape)} and "
                f"{list(b.shape)}, which do not multiply"
            )
        rank = int(a.shape[0])
        if module in self.embedding:  # lora_embedding_A: r×vocab, B: dim×r; dW = (B·A)ᵀ
            left, right = a.T, b.T
        else:
            left, right = b, a
        if (left.shape[0], right.shape[1]) != tuple(base_shape):
            if (right.shape[1], left.shape[0]) == tuple(base_shape):  # fan_in_fan_out
                left, right = right.T, left.T
            else:
                raise BadInputError(
                    f"mismatched models: the adapter's update of {module} has shape "
                    f"{[left.shape[0], right.shape[1]]} but the base tensor {base_name} has "
                    f"{list(base_shape)}"
                )
        return LoraPair(
            base_name=base_name,
            left=np.ascontiguousarray(left),
            right=np.ascontiguousarray(right),
            scale=self.scale_for(module, rank),
            rank=rank,
        )


def _pattern_key(patterns: list[str], module: str) -> str:
    r"""The ``alpha_pattern`` key PEFT applies to ``module``, else the module itself.

    The first key whose regular expression matches the module path at a name boundary
    (``(.*\.)?(KEY)$``): PEFT's own rule (``peft.utils.other.get_pattern_key``). A looser
    match here would scale an update by another alpha than the one the loaded model uses.
    """
    for key in patterns:
        try:
            if re.match(rf"(.*\.)?({key})$", module):
                return key
        except re.error as exc:
            raise BadInputError(f"adapter_config.json: alpha_pattern key {key!r}: {exc}") from None
    return module


def is_adapter(path: Path) -> bool:
    """Whether ``path`` is a PEFT adapter folder (or the safetensors file inside one)."""
    folder = path if path.is_dir() else path.parent
    return (folder / "adapter_config.json").is_file() and (
        path.is_dir() or path.name.startswith("adapter_model")
    )


_MARKERS = (
    (".lora_A.", "A", False),
    (".lora_B.", "B", False),
    (".lora_embedding_A", "A", True),
    (".lora_embedding_B", "B", True),
)
"""(key marker, which half of the pair, embedding pair?) of the LoRA tensors' keys."""


def _lora_config(folder: Path) -> dict[str, Any]:
    """``adapter_config.json``, refused unless it describes a plain LoRA adapter."""
    try:
        config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise BadInputError(f"{folder}/adapter_config.json: cannot read: {exc}") from None
    if not isinstance(config, dict):
        raise BadInputError(f"{folder}/adapter_config.json: expected a JSON object")
    peft_type = str(config.get("peft_type", "")).upper()
    if peft_type not in _SUPPORTED:
        raise BadInputError(
            f"{folder.name}: PEFT adapter type {peft_type or 'unknown'} is recognised but not "
            "analysed (only LoRA is); merge it into the base model and diff the full weights"
        )
    if config.get("use_dora"):
        raise BadInputError(
            f"{folder.name}: DoRA adapters are not analysed in factored form; merge the adapter "
            "(model.merge_and_unload()) and diff the full weights"
        )
    for option in _UNANALYSED_OPTIONS:
        if config.get(option):
            raise BadInputError(
                f"{folder.name}: the adapter sets {option}, which changes the model in a way the "
                "weight report does not read; merge the adapter (model.merge_and_unload()) and "
                "diff the full weights"
            )
    return config


_UNANALYSED_OPTIONS = (
    "lora_bias",
    "trainable_token_indices",
    "layer_replication",
    "target_parameters",
    "use_qalora",
)
"""LoRA options whose changes are not LoRA pairs of base weights (a bias on B, rows of the
embedding trained in place, layers duplicated, LoRA on raw parameters): an adapter that sets
one is refused rather than reported as if it only had its pairs."""


def _adapter_file(path: Path, folder: Path) -> Path:
    """The adapter's safetensors file; a pickle-based one is refused by name."""
    st = folder / "adapter_model.safetensors" if path.is_dir() else path
    if not st.is_file():
        pickles = [p for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
        if pickles:
            refuse_pickle(pickles[0])
        raise BadInputError(f"{folder.name}: adapter_model.safetensors is missing")
    return st


def _classify_keys(adapter: Adapter, folder: Path) -> None:
    """Sort the file's keys into LoRA pairs (by module) and fully saved tensors (by name)."""
    halves: dict[str, dict[str, str]] = {}
    for key in adapter.file.tensors:
        stripped = key
        for p in _PREFIXES:
            if stripped.startswith(p):
                stripped = stripped[len(p) :]
        for marker, which, emb in _MARKERS:
            if marker in stripped:
                module, _, rest = stripped.partition(marker)
                if rest not in (("",) if emb else ("weight",)):
                    # e.g. lora_B.bias (lora_bias): not half of a pair; it would replace one
                    raise BadInputError(
                        f"{folder.name}: adapter tensor {key!r} is not a LoRA pair's weight and "
                        "is not analysed; merge the adapter and diff the full weights"
                    )
                if which in halves.get(module, {}):
                    raise BadInputError(f"{folder.name}: LoRA pair of {module} is given twice")
                halves.setdefault(module, {})[which] = key
                if emb:
                    adapter.embedding.add(module)
                break
        else:
            if "lora_magnitude_vector" in stripped:
                raise BadInputError(f"{folder.name}: DoRA adapters are not analysed")
            name = stripped.replace(".modules_to_save.default", "").replace(".original_module", "")
            if name in adapter.saved:
                # two keys for one tensor: the report would read one, a loader the other
                raise BadInputError(
                    f"{folder.name}: adapter tensors {adapter.saved[name]!r} and {key!r} both "
                    f"stand for {name}; the report cannot know which one is loaded"
                )
            adapter.saved[name] = key
    for module, h in halves.items():
        if set(h) != {"A", "B"}:
            raise BadInputError(f"{folder.name}: LoRA pair of {module} is incomplete")
        adapter.lora_keys[module] = (h["A"], h["B"])


def open_adapter(path: Path) -> Adapter:
    """Open and validate a PEFT adapter; refuse non-LoRA types clearly.

    Raises:
        BadInputError: Not a LoRA adapter, DoRA, a pickle-based ``adapter_model.bin``, or a
            file whose keys are not LoRA pairs.

    """
    folder = path if path.is_dir() else path.parent
    config = _lora_config(folder)
    adapter = Adapter(path=folder, config=config, file=SafetensorsFile(_adapter_file(path, folder)))
    _classify_keys(adapter, folder)
    if not adapter.lora_keys and not adapter.saved:
        raise BadInputError(f"{folder.name}: the adapter holds no tensors")
    return adapter


def _gram_root(x: np.ndarray) -> np.ndarray:
    """An r×r R with RᵀR = XᵀX (X = QR with orthonormal Q): Cholesky-QR through ``eigh``.

    ``eigh`` instead of a Cholesky factorisation keeps it valid for rank-deficient factors
    (B = 0 at initialisation); Gram matrices in float64 keep it accurate for the spectrum
    that matters (relative error ~1e-8 of σ₁), and cost O(n·r²) with no m×n intermediate.
    """
    x64 = x.astype(np.float64, copy=False)
    w, u = np.linalg.eigh(x64.T @ x64)
    return np.sqrt(np.clip(w, 0.0, None))[:, None] * u.T


def factored_svd(pair: LoraPair) -> np.ndarray:
    """All singular values of dW = s·L·R (at most r, descending), from r×r matrices only."""
    r_left = _gram_root(pair.left)
    r_right = _gram_root(pair.right.T)
    core = pair.scale * (r_left @ r_right.T)
    return np.linalg.svd(core, compute_uv=False)


def lora_summary(pair: LoraPair) -> tuple[float, list[float], float, float]:
    """(||dW||_F, singular values, effective rank, top-1 energy share) of a LoRA pair."""
    sv = factored_svd(pair)
    total_sq = float((sv**2).sum())
    eff, top1 = spectral_summary(sv, total_sq)
    return math.sqrt(total_sq), [float(x) for x in sv], eff, top1


def lora_inner(pair: LoraPair, v: np.ndarray) -> float:
    """<dW, V>_F = s · Σ (L ∘ (V Rᵀ)) without materialising dW."""
    return pair.scale * float(np.sum(pair.left * (v @ pair.right.T)))
