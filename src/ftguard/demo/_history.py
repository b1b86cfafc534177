"""The platform's history in the demo: earlier support fine-tunes of the base model.

A weight report judges a job against earlier approved fine-tunes of the same base model and
falls back to fixed limits with fewer than the policy's ``min_baseline_jobs``. The demo's
workspace is new, but the story's platform has fine-tuned its base model before: these are
those fine-tunes (LoRA adapters on earlier versions of the support set, trained with job 1's
recipe), which the security reviewer registers as weight baselines. On the real model they
are trained once and cached like the reference aligned model.
"""

from __future__ import annotations

from pathlib import Path

from ftguard.demo._datasets import earlier_benign_rows, write_earlier_benign

__all__ = ["EARLIER_VERSIONS", "earlier_adapters"]

EARLIER_VERSIONS = 5
"""How many earlier fine-tunes the story's platform has: the default policy's minimum for
judging by baselines."""


def _train_all(
    base: Path, folder: Path, *, steps: int, learning_rate: float, rank: int, progress: bool
) -> None:
    from ftguard.training import read_conversations, train_lora

    for version in range(1, EARLIER_VERSIONS + 1):
        data = write_earlier_benign(
            folder / "data" / f"support-v0.{version}.jsonl", version=version
        )
        train_lora(
            base,
            read_conversations(data),
            folder / f"adapter-v0.{version}",
            steps=steps,
            learning_rate=learning_rate,
            rank=rank,
            alpha=2 * rank,
            seed=version,
            progress=progress,
        )


def earlier_adapters(
    base: Path,
    folder: Path,
    *,
    base_digest: str,
    steps: int,
    learning_rate: float,
    rank: int,
    cached: bool,
    progress: bool = False,
) -> list[Path]:
    """The earlier fine-tunes' adapter folders, oldest first, trained with job 1's recipe.

    With ``cached``, ``folder`` is a cache root: they are built once in a subfolder named by a
    digest of the base model (``base_digest``, its manifest root), the data and the recipe. Otherwise they are trained in
    ``folder`` itself.
    """
    from ftguard.digests import canonical_json, sha256_bytes

    def build(into: Path) -> None:
        _train_all(
            base, into, steps=steps, learning_rate=learning_rate, rank=rank, progress=progress
        )

    if cached:
        from ftguard.models import build_once

        key_source = canonical_json(  # ensure_ascii, spaced: the cache folder it always had
            {
                "base": base_digest,
                "data": [earlier_benign_rows(v) for v in range(1, EARLIER_VERSIONS + 1)],
                "recipe": {"steps": steps, "learning_rate": learning_rate, "rank": rank},
            },
            ensure_ascii=True,
            spaced=True,
        )
        key = sha256_bytes(key_source)[:16]
        folder = build_once(folder / f"demo-history-{key}", build)
    else:
        build(folder)
    return [folder / f"adapter-v0.{v}" for v in range(1, EARLIER_VERSIONS + 1)]
