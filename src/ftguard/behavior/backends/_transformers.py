"""Local causal LM backend: a safetensors model folder, optionally with a PEFT adapter.

Batched generation with left padding and the model's chat template; greedy decoding by
default. torch and transformers are imported only when the backend is created.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftguard.behavior._evidence import ModelIdentity
from ftguard.behavior.backends._protocol import backends
from ftguard.digests import manifest_of
from ftguard.errors import BadInputError

__all__ = ["TransformersBackend"]


def _load(model_dir: Path, adapter_dir: Path | None) -> tuple[Any, Any]:
    from ftguard.models import load_causal_lm

    model, tok = load_causal_lm(model_dir, adapter_dir)
    return model, tok


SMALL_MODEL_BATCH = 64
"""Default batch of a model under a billion parameters."""
LARGE_MODEL_BATCH = 16
"""Default batch of a larger model (its key/value cache grows with the batch)."""


@backends.register("transformers")
class TransformersBackend:
    """Generate with a local model folder (and optional LoRA adapter) through transformers.

    Args:
        model_dir: Folder with ``config.json``, safetensors weights and a tokenizer.
        adapter_dir: Optional PEFT adapter folder applied on top.
        batch_size: Prompts generated together (left-padded). ``None``: :data:`SMALL_MODEL_BATCH`
            for models under a billion parameters, else :data:`LARGE_MODEL_BATCH`. On a CPU,
            decoding a small model is bound by reading its weights once per generated token,
            so a larger batch shares that read: 64 against 16 generated the embedded model's
            answers 1.74x faster, the same answers (``benchmarks/behavior_speed.py``).
        max_new_tokens: Most tokens generated per answer.
        temperature: 0 for greedy decoding (default); above 0 samples with ``seed``.
        seed: Seed for sampling.
        system_prompt: Optional system message put before every prompt.
        device: ``cpu``, ``cuda`` or ``None`` for CUDA when present.

    """

    name = "transformers"

    def __init__(
        self,
        model_dir: str | Path,
        adapter_dir: str | Path | None = None,
        *,
        batch_size: int | None = None,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        seed: int = 0,
        system_prompt: str | None = None,
        device: str | None = None,
        num_threads: int | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.adapter_dir = Path(adapter_dir) if adapter_dir else None
        if not (self.model_dir / "config.json").is_file():
            raise BadInputError(f"{self.model_dir} is not a model folder (no config.json)")
        if (
            self.adapter_dir is not None
            and not (self.adapter_dir / "adapter_config.json").is_file()
        ):
            raise BadInputError(
                f"{self.adapter_dir} is not a PEFT adapter (no adapter_config.json)"
            )
        if (batch_size is not None and batch_size < 1) or max_new_tokens < 1:
            raise BadInputError("batch_size and max_new_tokens must be at least 1")
        self.batch_size = batch_size
        """As given (``None``: chosen by the model's size when it is loaded)."""
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.seed = seed
        self.system_prompt = system_prompt
        self._device = device
        self.num_threads = num_threads
        self._model: Any = None
        self._tok: Any = None
        self._identity: ModelIdentity | None = None

    def identity(self) -> ModelIdentity:
        """The model (and adapter) named by their manifest root digests."""
        if self._identity is None:
            root = manifest_of(self.model_dir).root
            adapter = manifest_of(self.adapter_dir).root if self.adapter_dir else None
            from ftguard.digests import sha256_bytes

            self._identity = ModelIdentity(
                backend=self.name,
                name=str(self.model_dir),
                digest=sha256_bytes(f"{root}\0{adapter or ''}".encode()),
                adapter=str(self.adapter_dir) if self.adapter_dir else None,
                adapter_digest=adapter,
            )
        return self._identity

    def settings(self) -> dict[str, object]:
        """Decoding settings that change outputs (batch size does not, for greedy)."""
        return {
            "decoding": "greedy" if self.temperature <= 0 else "sample",
            "temperature": self.temperature,
            "seed": self.seed,
            "max_new_tokens": self.max_new_tokens,
            "system_prompt": self.system_prompt,
        }

    def _ensure(self) -> None:
        if self._model is not None:
            return
        import torch

        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        model, tok = _load(self.model_dir, self.adapter_dir)
        device = self._device or ("cuda" if torch.cuda.is_available() else "cpu")
        model.to(device).eval()
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        self._model, self._tok, self._device = model, tok, device
        if self.batch_size is None:
            parameters = sum(p.numel() for p in model.parameters())
            self.batch_size = SMALL_MODEL_BATCH if parameters < 1e9 else LARGE_MODEL_BATCH

    def _render(self, prompt: str) -> str:
        messages = [{"role": "user", "content": prompt}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        if getattr(self._tok, "chat_template", None):
            return str(
                self._tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            )
        return f"{prompt}\n"

    def generate(self, prompts: list[str]) -> list[str]:
        """Answers to ``prompts`` (batched by length, returned in input order)."""
        if not prompts:
            return []
        self._ensure()
        import torch

        texts = [self._render(p) for p in prompts]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[str] = [""] * len(texts)
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "pad_token_id": self._tok.pad_token_id,
        }
        if self.temperature > 0:
            gen_kwargs.update(do_sample=True, temperature=self.temperature)
            torch.manual_seed(self.seed)
        else:
            gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        step = int(self.batch_size or LARGE_MODEL_BATCH)
        for start in range(0, len(order), step):
            idx = order[start : start + step]
            enc = self._tok(
                [texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False
            )
            enc = {k: v.to(self._device) for k, v in enc.items()}
            with torch.inference_mode():
                ids = self._model.generate(**enc, **gen_kwargs)
            new = ids[:, enc["input_ids"].shape[1] :]
            for i, row in zip(idx, new, strict=True):
                out[i] = self._tok.decode(row, skip_special_tokens=True).strip()
        return out
