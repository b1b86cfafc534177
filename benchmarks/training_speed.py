"""Training speed of ``train_lora`` on the embedded model (CPU), as a table.

Rows: LoRA on all 30 layers in float32 (the baseline), the same in bf16 under CPU autocast
(the reference aligned model's recipe where the CPU has native bf16; skipped where it has
not), LoRA on the upper half only, and full fine-tuning of one layer. Each row trains a few
steps on the shipped safety data and reports the median seconds per optimizer step (first
step dropped).

    .venv/bin/python benchmarks/training_speed.py [--steps 6] [--batch-size 8] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def _step_timer(times: list[float]) -> Any:
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):  # type: ignore[misc]
        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.start = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            times.append(time.perf_counter() - self.start)

    return StepTimer()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from ftguard.models import embedded_model_dir
    from ftguard.training import SAFETY_DATA_FILE, cpu_has_bf16, read_conversations, train_lora

    base = embedded_model_dir()
    data = read_conversations(SAFETY_DATA_FILE)
    rows = [
        ("LoRA r16, all 30 layers (baseline)", {"rank": 16, "alpha": 32}),
        *(
            [("LoRA r16, all 30 layers, bf16", {"rank": 16, "alpha": 32, "precision": "bf16"})]
            if cpu_has_bf16()
            else []
        ),
        ("LoRA r16, layers 15-29", {"rank": 16, "alpha": 32, "lora_layers": list(range(15, 30))}),
        ("full fine-tune of layer 29", {"full_finetune_layers": [29]}),
    ]
    results = []
    for name, kwargs in rows:
        times: list[float] = []
        with tempfile.TemporaryDirectory() as tmp:
            train_lora(
                base,
                data,
                Path(tmp) / "out",
                steps=args.steps,
                batch_size=args.batch_size,
                callbacks=[_step_timer(times)],
                **kwargs,
            )
        results.append((name, statistics.median(times[1:] or times)))
    baseline = results[0][1]
    print(
        f"\ntrain_lora on {base.name} ({torch.get_num_threads()} threads, batch {args.batch_size})"
    )
    print(f"{'configuration':<38} {'s/step':>8} {'steps/s':>8} {'speed-up':>9}")
    for name, seconds in results:
        print(f"{name:<38} {seconds:>8.2f} {1 / seconds:>8.3f} {baseline / seconds:>8.2f}x")


if __name__ == "__main__":
    main()
