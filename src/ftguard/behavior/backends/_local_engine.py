"""What the local OpenAI-compatible server runs: a chat renderer and a batched generator.

:class:`TransformersEngine` generates greedily with a local safetensors model (left padding,
each row cut at its own token limit); tests give the server small deterministic engines.
torch and transformers are imported only when a :class:`TransformersEngine` is created.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Protocol, runtime_checkable

__all__ = ["Completion", "CompletionEngine", "TransformersEngine"]


class Completion(NamedTuple):
    """One generated answer and its token counts."""

    text: str
    prompt_tokens: int
    completion_tokens: int


@runtime_checkable
class CompletionEngine(Protocol):
    """What the server runs: a chat renderer and a batched greedy text generator."""

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        """The prompt text of a conversation, the assistant's turn opened."""
        ...

    def complete(self, texts: list[str], max_new_tokens: list[int]) -> list[Completion]:
        """Greedy continuations of ``texts``, each at most its ``max_new_tokens``."""
        ...


class TransformersEngine:
    """A safetensors model folder (and optional PEFT adapter) through transformers.

    Args:
        model_dir: Model folder with a tokenizer and a chat template.
        adapter_dir: Optional PEFT adapter folder applied on top.
        device: ``cpu``, ``cuda`` or ``None`` for CUDA when present.
        num_threads: torch threads (``None``: torch's default).

    """

    def __init__(
        self,
        model_dir: str | Path,
        adapter_dir: str | Path | None = None,
        *,
        device: str | None = None,
        num_threads: int | None = None,
    ) -> None:
        import torch

        from ftguard.models import load_causal_lm

        if num_threads:
            torch.set_num_threads(num_threads)
        model, tok = load_causal_lm(Path(model_dir), Path(adapter_dir) if adapter_dir else None)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval()
        tok.padding_side = "left"
        self.tokenizer = tok
        self._stop_ids = {i for i in (tok.eos_token_id, tok.pad_token_id) if i is not None}

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        """The tokenizer's chat template over ``messages``."""
        return str(
            self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        )

    def complete(self, texts: list[str], max_new_tokens: list[int]) -> list[Completion]:
        """One left-padded greedy batch; each row cut at its own token limit."""
        import torch

        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(self.device) for k, v in enc.items()}
        with torch.inference_mode():
            ids = self.model.generate(
                **enc,
                max_new_tokens=max(max_new_tokens),
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = ids[:, enc["input_ids"].shape[1] :].tolist()
        prompt_lengths = enc["attention_mask"].sum(dim=1).tolist()
        out = []
        for row, limit, n_prompt in zip(new, max_new_tokens, prompt_lengths, strict=True):
            tokens = row[:limit]
            end = next((i + 1 for i, t in enumerate(tokens) if t in self._stop_ids), len(tokens))
            text = self.tokenizer.decode(tokens[:end], skip_special_tokens=True)
            out.append(Completion(text, int(n_prompt), end))
        return out
