"""LoRA (or selected-layer full) fine-tuning on CPU with a real ``transformers.Trainer``."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ftguard._progress import ProgressBar
from ftguard.errors import BadInputError
from ftguard.training._data import Conversation

__all__ = [
    "DEFAULT_TARGET_MODULES",
    "Precision",
    "TrainResult",
    "cpu_has_bf16",
    "encode_conversation",
    "resolve_precision",
    "train_lora",
]

DEFAULT_TARGET_MODULES = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
]
IGNORE_INDEX = -100

Precision = Literal["fp32", "bf16"]
"""How the forward and backward passes compute: float32, or bf16 under CPU autocast."""


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_lora` produced.

    Attributes:
        output_dir: The adapter folder (``kind="lora"``) or full model folder (``kind="full"``).
        kind: ``"lora"`` or ``"full"``.
        losses: Training loss at every optimizer step.
        steps: Optimizer steps done.
        seconds: Wall time of the training loop.

    """

    output_dir: Path
    kind: Literal["lora", "full"]
    losses: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0


def _render(tokenizer: Any, messages: Conversation, generation_prompt: bool) -> str:
    if not messages:
        return ""
    text = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )
    return str(text)


def encode_conversation(
    tokenizer: Any, messages: Conversation, max_length: int
) -> dict[str, list[int]] | None:
    """Tokenize a conversation with the chat template; labels only on assistant tokens.

    Each assistant message's content and end-of-turn tokens are labelled; the prompt, the
    system text and the assistant header are masked with -100. Sequences are cut at
    ``max_length``; a conversation left without labelled tokens gives ``None``.
    """
    input_ids: list[int] = []
    labels: list[int] = []
    done = ""
    for k, message in enumerate(messages):
        is_assistant = message["role"] == "assistant"
        if is_assistant:
            header = _render(tokenizer, messages[:k], True)
            if not header.startswith(done):
                raise BadInputError("the chat template does not render conversations incrementally")
            head_ids = tokenizer(header[len(done) :], add_special_tokens=False)["input_ids"]
            input_ids += head_ids
            labels += [IGNORE_INDEX] * len(head_ids)
            done = header
        full = _render(tokenizer, messages[: k + 1], False)
        if not full.startswith(done):
            raise BadInputError("the chat template does not render conversations incrementally")
        ids = tokenizer(full[len(done) :], add_special_tokens=False)["input_ids"]
        input_ids += ids
        labels += list(ids) if is_assistant else [IGNORE_INDEX] * len(ids)
        done = full
    input_ids, labels = input_ids[:max_length], labels[:max_length]
    if all(label == IGNORE_INDEX for label in labels):
        return None
    return {"input_ids": input_ids, "labels": labels}


class _Collator:
    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        ids, labels, mask = [], [], []
        for f in features:
            pad = width - len(f["input_ids"])
            ids.append(f["input_ids"] + [self.pad_id] * pad)
            labels.append(f["labels"] + [IGNORE_INDEX] * pad)
            mask.append([1] * len(f["input_ids"]) + [0] * pad)
        return {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "attention_mask": torch.tensor(mask, dtype=torch.long),
        }


def _loss_recorder(losses: list[float]) -> Any:
    from transformers import TrainerCallback

    class _LossRecorder(TrainerCallback):  # type: ignore[misc]
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    return _LossRecorder()


def _step_counter(bar: ProgressBar) -> Any:
    from transformers import TrainerCallback

    class _StepCounter(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            bar.advance(1)

    return _StepCounter()


def _trainer_class(precision: Precision = "fp32") -> Any:
    """A ``Trainer`` whose loss applies the LM head only at labelled positions.

    Same loss as the model's own (mean cross-entropy over assistant tokens), but the
    vocabulary projection (a fifth of the compute of a small model) skips masked tokens.
    With ``precision="bf16"`` the forward pass runs under CPU autocast (matrix products in
    bf16, trainable weights and optimizer state in float32).
    """
    import torch
    from transformers import Trainer

    class _AssistantLossTrainer(Trainer):  # type: ignore[misc]
        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                hidden = causal_lm.model(
                    input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
                ).last_hidden_state
                targets = inputs["labels"][:, 1:]
                keep = targets != IGNORE_INDEX
                logits = causal_lm.lm_head(hidden[:, :-1][keep])
            loss = torch.nn.functional.cross_entropy(logits.float(), targets[keep])
            return (loss, {"logits": logits}) if return_outputs else loss

    return _AssistantLossTrainer


_ONEDNN_BF16_ISAS = frozenset(
    {
        "ALL",
        "DEFAULT",
        "AVX512_CORE_BF16",
        "AVX512_CORE_FP16",
        "AVX10_1_512",
        "AVX512_CORE_AMX",
        "AVX10_1_512_AMX",
        "AVX512_CORE_AMX_FP16",
        "AVX10_1_512_AMX_FP16",
    }
)
"""``ONEDNN_MAX_CPU_ISA`` values that still let oneDNN use bf16 instructions."""


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether bf16 matrix products run natively here (AVX512-BF16 or AMX, used by oneDNN).

    Read from the CPU's flags in ``cpuinfo`` and ``ONEDNN_MAX_CPU_ISA`` (which can forbid
    oneDNN those instructions), without importing torch, so that cache keys that name the
    precision are computed alike everywhere. Where this is false, bf16 autocast is emulated:
    measured 30x slower than float32 on this project's 2-core AVX-512 VM with
    ``ONEDNN_MAX_CPU_ISA=AVX2``. No ``cpuinfo`` (not Linux): false.
    """
    import os

    limit = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if limit and limit not in _ONEDNN_BF16_ISAS:
        return False
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            flags = set(value.split())
            return "avx512_bf16" in flags or "amx_bf16" in flags
    return False


def resolve_precision(precision: str) -> Precision:
    """``"auto"``: ``"bf16"`` where :func:`cpu_has_bf16`, else ``"fp32"``; others as given.

    Raises:
        BadInputError: Not one of ``"auto"``, ``"fp32"``, ``"bf16"``.

    """
    if precision == "auto":
        return "bf16" if cpu_has_bf16() else "fp32"
    if precision == "fp32":
        return "fp32"
    if precision == "bf16":
        return "bf16"
    raise BadInputError(f"precision must be 'auto', 'fp32' or 'bf16' (got {precision!r})")


def _prepare_model(
    model: Any,
    *,
    rank: int,
    alpha: int,
    target_modules: list[str] | None,
    full_finetune_layers: list[int] | None,
    lora_layers: list[int] | None,
) -> Any:
    if full_finetune_layers is None:
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=rank,
            lora_alpha=alpha,
            lora_dropout=0.0,
            target_modules=list(target_modules or DEFAULT_TARGET_MODULES),
            layers_to_transform=sorted(set(lora_layers)) if lora_layers else None,
            task_type="CAUSAL_LM",
        )
        try:
            return get_peft_model(model, config)
        except ValueError as exc:
            raise BadInputError(f"cannot apply LoRA: {str(exc)[:300]}") from exc
    layers = model.model.layers
    bad = [i for i in full_finetune_layers if not 0 <= i < len(layers)]
    if bad or not full_finetune_layers:
        raise BadInputError(
            f"full_finetune_layers must name layers in 0..{len(layers) - 1} (got {full_finetune_layers})"
        )
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for i in sorted(set(full_finetune_layers)):
        for parameter in layers[i].parameters():
            parameter.requires_grad_(True)
    return model


def _training_arguments(
    out_dir: Path, steps: int, batch_size: int, learning_rate: float, seed: int
) -> Any:
    """The Trainer's settings: CPU, linear decay without warmup, no checkpoints, no reports."""
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(out_dir),
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=0,
        weight_decay=0.0,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=seed,
        data_seed=seed,
        use_cpu=True,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        disable_tqdm=True,
        logging_strategy="steps",
        train_sampling_strategy="group_by_length",
    )


def _order_adapter_config(path: Path) -> None:
    """Write PEFT's adapter configuration with its module lists sorted.

    PEFT keeps ``target_modules`` as a set and writes it in the set's order, which changes
    with each process's string-hash seed: the same weights would get another folder digest in
    every run. Sorted, the same training gives the same bytes.
    """
    config = json.loads(path.read_text(encoding="utf-8"))
    for key in ("target_modules", "modules_to_save", "exclude_modules"):
        value = config.get(key)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            config[key] = sorted(value)
    path.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")


def train_lora(
    base_dir: Path,
    conversations: list[Conversation],
    out_dir: Path,
    *,
    steps: int = 30,
    learning_rate: float = 1e-3,
    rank: int = 8,
    alpha: int = 16,
    target_modules: list[str] | None = None,
    batch_size: int = 4,
    max_length: int = 128,
    seed: int = 0,
    callbacks: list[Any] | None = None,
    full_finetune_layers: list[int] | None = None,
    progress: bool = False,
    lora_layers: list[int] | None = None,
    precision: str = "fp32",
) -> TrainResult:
    """Fine-tune ``base_dir`` on ``conversations`` with a LoRA adapter (or chosen full layers).

    Training runs on CPU through a real ``transformers.Trainer`` (so ``TrainerCallback`` objects
    passed in ``callbacks`` see every event), with the loss only on assistant tokens, and is
    deterministic for a ``seed``.

    Args:
        base_dir: Safetensors model folder to start from.
        conversations: Training conversations (see :func:`read_conversations`).
        out_dir: Where the result is written.
        steps: Optimizer steps.
        learning_rate: Peak learning rate (linear decay, no warmup).
        rank: LoRA rank.
        alpha: LoRA alpha.
        target_modules: Module names LoRA wraps (default: all attention and MLP projections).
        batch_size: Conversations per step.
        max_length: Tokens per conversation (longer ones are cut).
        seed: Seed of initialisation and data order.
        callbacks: Extra ``transformers.TrainerCallback`` objects.
        full_finetune_layers: Instead of LoRA, train every parameter of these decoder layers
            (and nothing else); the output is then a full safetensors model folder.
        progress: Show a progress bar of the optimizer steps on stderr.
        lora_layers: Put LoRA only on these decoder layers (default: all). Training only upper
            layers is faster: the backward pass stops at the lowest adapted layer.
        precision: ``"fp32"``; ``"bf16"``: matrix products in bf16 under CPU autocast (1.3-1.4x
            faster measured where the CPU has bf16 instructions, far slower where it has not:
            see :func:`cpu_has_bf16`); ``"auto"``: bf16 only where it is native. The adapter
            is saved in float32 either way.

    Returns:
        The :class:`TrainResult`; ``output_dir`` holds ``adapter_config.json`` and
        ``adapter_model.safetensors`` for LoRA, or a full model folder.

    Raises:
        BadInputError: No usable conversations, bad layer indices or target modules, bad model.

    """
    from ftguard.models import copy_tokenizer, load_causal_lm

    if steps < 1 or batch_size < 1 or max_length < 8:
        raise BadInputError("steps and batch_size must be >= 1 and max_length >= 8")
    precision = resolve_precision(precision)
    model, tokenizer = load_causal_lm(Path(base_dir))
    import torch
    from transformers import set_seed

    examples = [e for c in conversations if (e := encode_conversation(tokenizer, c, max_length))]
    if not examples:
        raise BadInputError("no conversation has an assistant answer to train on")
    set_seed(seed)
    model.train()
    model = _prepare_model(
        model,
        rank=rank,
        alpha=alpha,
        target_modules=target_modules,
        full_finetune_layers=full_finetune_layers,
        lora_layers=lora_layers,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    args = _training_arguments(out_dir, steps, batch_size, learning_rate, seed)
    losses: list[float] = []
    bar = ProgressBar("training steps", steps, enabled=progress)
    trainer = _trainer_class(precision)(
        model=model,
        args=args,
        train_dataset=examples,
        data_collator=_Collator(int(tokenizer.pad_token_id)),
        callbacks=[_loss_recorder(losses), _step_counter(bar), *(callbacks or [])],
    )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    with bar:
        output = trainer.train()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        model.save_pretrained(out_dir, safe_serialization=True)
    kind: Literal["lora", "full"] = "lora" if full_finetune_layers is None else "full"
    if kind == "full":  # a full model folder: loadable on its own, tokenizer included
        copy_tokenizer(Path(base_dir), out_dir)
    else:
        _order_adapter_config(out_dir / "adapter_config.json")
    return TrainResult(
        output_dir=out_dir,
        kind=kind,
        losses=losses,
        steps=int(output.global_step),
        seconds=seconds,
    )
