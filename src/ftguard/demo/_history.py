"""The platform's history in the demo: earlier support fine-tunes of the base model.

A weight report judges a job against earlier approved fine-tunes of the same base model and
falls back to fixed limits with fewer than the policy's ``min_baseline_jobs``. The demo's
workspace is new, but the story's platform has fine-tuned its base model before: these are
those fine-tunes (LoRA adapters on earlier versions of the support set, trained with job 1's
recipe), which the security reviewer registers as weight baselines.

A platform keeps the records of its earlier jobs, not a habit of retraining them: on the real
model the demo imports their weight records (``data/history_baselines.json``, the export of
the five baselines as the demo registers them: fingerprints computed from the adapters'
weights, no weights) where the aligned model trained on the machine and the recipe are the
ones the records came from (:data:`HISTORY_RECORDS`), and trains the adapters (once, cached)
and registers them everywhere else. ``scripts/build_demo_answers.py`` trains them again and
compares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftguard.demo._datasets import earlier_benign_rows, write_earlier_benign
from ftguard.digests import canonical_json, sha256_bytes, sha256_file
from ftguard.errors import BadInputError

__all__ = [
    "EARLIER_VERSIONS",
    "HISTORY_RECORDS",
    "HISTORY_RECORDS_FILE",
    "earlier_adapters",
    "history_key",
    "shipped_history",
    "train_earlier",
]

EARLIER_VERSIONS = 5
"""How many earlier fine-tunes the story's platform has: the default policy's minimum for
judging by baselines."""


HISTORY_RECORDS_FILE = Path(__file__).resolve().parent / "data" / "history_baselines.json"

HISTORY_RECORDS: dict[str, str] = {
    "key": "48841e91e8c6bed8c414e26bd7d5c86feb0e42edc051155a24a89e163b5f15a2",
    "sha256": "447e3e71d79cee8ac4a276a00f5a180affd987d5f249a09682931603cd84d36f",
    "made_on": "AuthenticAMD AMD EPYC; torch 2.13.0+cpu, AVX512 kernels, native bf16, 2 threads",
}
"""What :data:`HISTORY_RECORDS_FILE` was computed from (:func:`history_key`: the aligned
model's digest, the earlier support sets, the recipe and the fingerprint schema), its
SHA-256, and the :func:`ftguard.training.machine_kind` that trained the adapters."""


def _key_source(
    base_digest: str, *, steps: int, learning_rate: float, rank: int, precision: str
) -> bytes:
    # ensure_ascii and spaced keep the cache folder the adapters always had; precision is in
    # the recipe only where it resolves to bf16 (float32 keys are the ones fp32 runs had).
    from ftguard.training import resolve_precision

    recipe: dict[str, Any] = {"steps": steps, "learning_rate": learning_rate, "rank": rank}
    if resolve_precision(precision) == "bf16":
        recipe["precision"] = "bf16"
    return canonical_json(
        {
            "base": base_digest,
            "data": [earlier_benign_rows(v) for v in range(1, EARLIER_VERSIONS + 1)],
            "recipe": recipe,
        },
        ensure_ascii=True,
        spaced=True,
    )


def history_key(
    base_digest: str, *, steps: int, learning_rate: float, rank: int, precision: str = "fp32"
) -> str:
    """A digest of what the earlier fine-tunes' weight records are a function of.

    The aligned model's digest (which also fixes the unaligned model it was trained from, the
    alignment pair of the fingerprints), the earlier support sets, the recipe and the weight
    fingerprint's schema version. ``precision`` as :func:`ftguard.training.train_lora` takes
    it (``"auto"`` is resolved on this machine).
    """
    from ftguard.weights import SCHEMA_VERSION

    source = _key_source(
        base_digest, steps=steps, learning_rate=learning_rate, rank=rank, precision=precision
    )
    return sha256_bytes(source + f"\0fingerprint-schema={SCHEMA_VERSION}".encode())


def shipped_history(key: str, source: Path = HISTORY_RECORDS_FILE) -> Any | None:
    """The shipped weight records of the earlier fine-tunes, or None where ``key`` differs.

    Returns a :class:`ftguard.control.service.BaselineExport` when ``key`` is the pinned one
    (the model, data and recipe they came from), else None (then train and register).

    Raises:
        BadInputError: ``source`` is missing, is not the pinned file, or is not an export.

    """
    from ftguard.control.service import parse_baseline_export

    if key != HISTORY_RECORDS["key"]:
        return None
    if not Path(source).is_file():
        raise BadInputError(f"no history records at {source}")
    data = Path(source).read_bytes()
    if sha256_bytes(data) != HISTORY_RECORDS["sha256"]:
        raise BadInputError(
            f"{source} has SHA-256 {sha256_file(Path(source))[:16]}..., not the pinned "
            f"{HISTORY_RECORDS['sha256'][:16]}...: refusing to use it"
        )
    export = parse_baseline_export(data)
    if len(export.records) != EARLIER_VERSIONS:
        raise BadInputError(f"{source} holds {len(export.records)} records, not {EARLIER_VERSIONS}")
    return export


def train_earlier(
    base: Path,
    folder: Path,
    version: int,
    *,
    steps: int,
    learning_rate: float,
    rank: int,
    precision: str = "fp32",
    progress: bool = False,
) -> Path:
    """Train earlier fine-tune ``version`` (1..EARLIER_VERSIONS) of ``base`` into ``folder``."""
    from ftguard.training import read_conversations, train_lora

    data = write_earlier_benign(folder / "data" / f"support-v0.{version}.jsonl", version=version)
    out = folder / f"adapter-v0.{version}"
    train_lora(
        base,
        read_conversations(data),
        out,
        steps=steps,
        learning_rate=learning_rate,
        rank=rank,
        alpha=2 * rank,
        seed=version,
        progress=progress,
        precision=precision,
    )
    return out


def earlier_adapters(
    base: Path,
    folder: Path,
    *,
    base_digest: str,
    steps: int,
    learning_rate: float,
    rank: int,
    cached: bool,
    precision: str = "fp32",
    progress: bool = False,
) -> list[Path]:
    """The earlier fine-tunes' adapter folders, oldest first, trained with job 1's recipe.

    With ``cached``, ``folder`` is a cache root: they are built once in a subfolder named by a
    digest of the base model (``base_digest``, its manifest root), the data and the recipe. Otherwise they are trained in
    ``folder`` itself.
    """

    def build(into: Path) -> None:
        for version in range(1, EARLIER_VERSIONS + 1):
            train_earlier(
                base,
                into,
                version,
                steps=steps,
                learning_rate=learning_rate,
                rank=rank,
                precision=precision,
                progress=progress,
            )

    if cached:
        from ftguard.models import build_once

        key_source = _key_source(
            base_digest, steps=steps, learning_rate=learning_rate, rank=rank, precision=precision
        )
        key = sha256_bytes(key_source)[:16]
        folder = build_once(folder / f"demo-history-{key}", build)
    else:
        build(folder)
    return [folder / f"adapter-v0.{v}" for v in range(1, EARLIER_VERSIONS + 1)]
