"""``python -m ftguard.training``: fine-tune a model folder on a chat dataset (LoRA, CPU).

When ``FTGUARD_JOB`` is set, the ftguard trainer callbacks ``ApprovalGuard`` (refuses to train
without a valid approval for the job) and ``DriftMonitor`` (watches the weights while training)
are added; they read their settings from the environment.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ftguard._progress import quiet_third_party
from ftguard.errors import FtguardError, MissingDependencyError

__all__ = ["main"]


def _job_callbacks(inputs: dict[str, Path]) -> list[Any]:
    if not os.environ.get("FTGUARD_JOB"):
        return []
    try:
        from ftguard.integrations.hf import ApprovalGuard, DriftMonitor
    except ImportError as exc:
        raise MissingDependencyError(
            f"ftguard.integrations.hf (needed because FTGUARD_JOB is set): {exc}", "ml"
        ) from exc
    guard = ApprovalGuard.from_env(inputs=dict(inputs))
    if os.environ.get("FTGUARD_RUN_TOKEN"):
        guard.verify()  # before reading any data: refuse unstaged inputs at once
    return [guard, DriftMonitor.from_env()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ftguard.training", description="LoRA fine-tune a model folder on CPU."
    )
    parser.add_argument("--base", type=Path, required=True, help="safetensors model folder")
    parser.add_argument(
        "--dataset",
        type=Path,
        required=True,
        help=(
            "a dataset in any format the review reads (ftguard.datasets: OpenAI chat, Alpaca, "
            "ShareGPT, prompt/completion; JSONL, JSON, CSV/TSV, Parquet); refused if any "
            "record is unreadable"
        ),
    )
    parser.add_argument("--out", type=Path, required=True, help="output adapter folder")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16", "auto"],
        default="fp32",
        help=(
            "fp32; bf16 (matrix products under CPU autocast: faster where the CPU has bf16 "
            "instructions, far slower where it has not); auto: bf16 only where it is native"
        ),
    )
    parser.add_argument("--progress", action="store_true", help="show a progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the training script; returns the exit code (0 on success)."""
    quiet_third_party()
    args = _parser().parse_args(argv)
    try:
        from ftguard.training import read_conversations, resolve_precision, train_lora

        callbacks = _job_callbacks({"dataset": args.dataset, "base_model": args.base})
        conversations = read_conversations(args.dataset)
        result = train_lora(
            args.base,
            conversations,
            args.out,
            steps=args.steps,
            learning_rate=args.lr,
            rank=args.rank,
            alpha=2 * args.rank,
            batch_size=args.batch_size,
            max_length=args.max_length,
            seed=args.seed,
            callbacks=callbacks,
            progress=args.progress,
            precision=args.precision,
        )
    except FtguardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    first = f"{result.losses[0]:.4f}" if result.losses else "n/a"
    last = f"{result.losses[-1]:.4f}" if result.losses else "n/a"
    print(
        f"trained {result.steps} steps ({resolve_precision(args.precision)}) in "
        f"{result.seconds:.1f}s, loss {first} -> {last}; "
        f"adapter written to {result.output_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
