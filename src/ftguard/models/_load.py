"""Loading safetensors causal LMs (and PEFT adapters) on CPU; pickle files are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftguard.errors import BadInputError, NotFoundError
from ftguard.models._cache import require_ml

__all__ = ["check_safetensors_dir", "load_causal_lm"]

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_CONVERSION_HINT = (
    "ftguard never unpickles weights; convert them to safetensors first, e.g. "
    "AutoModelForCausalLM.from_pretrained(dir).save_pretrained(out, safe_serialization=True) "
    "in a trusted sandbox"
)


def check_safetensors_dir(folder: Path, *, what: str = "model") -> None:
    """Raise a clear error unless ``folder`` holds weights as ``.safetensors`` files.

    Raises:
        NotFoundError: The folder does not exist.
        BadInputError: It holds pickle weights (``.bin``/``.pt``/...) or no weights at all.

    """
    if not folder.is_dir():
        raise NotFoundError(f"{what} folder not found: {folder}")
    if any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in _PICKLE_SUFFIXES)
    if pickles:
        raise BadInputError(
            f"{what} at {folder} has pickle weights ({pickles[0]}): {_CONVERSION_HINT}"
        )
    raise BadInputError(f"{what} at {folder} has no .safetensors weights")


def load_causal_lm(model_dir: Path, adapter_dir: Path | None = None) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer from a safetensors folder, on CPU, in eval mode.

    Args:
        model_dir: A transformers model folder with ``.safetensors`` weights.
        adapter_dir: Optional PEFT adapter folder (``adapter_model.safetensors``) applied on top.

    Returns:
        ``(model, tokenizer)``; the tokenizer always has a pad token.

    Raises:
        BadInputError: Pickle weights (``.bin``, ``.pt``) or a folder that does not load.
        NotFoundError: A folder that does not exist.
        MissingDependencyError: ``ftguard[ml]`` is not installed.

    """
    model_dir = Path(model_dir)
    check_safetensors_dir(model_dir)
    if adapter_dir is not None:
        adapter_dir = Path(adapter_dir)
        check_safetensors_dir(adapter_dir, what="adapter")
    require_ml()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model: Any
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            model_dir,
            use_safetensors=True,
            dtype=torch.float32,
            device_map=None,
            local_files_only=True,
        )
    except (OSError, ValueError, KeyError) as exc:
        raise BadInputError(f"cannot load the model at {model_dir}: {exc}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if adapter_dir is not None:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, adapter_dir)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise BadInputError(f"cannot load the adapter at {adapter_dir}: {exc}") from exc
    model.eval()
    return model, tokenizer
