"""The reference aligned model's answers to the demo's prompts, shipped with the package.

A first ``ftguard demo`` asks the reference aligned model (the base of both jobs) every prompt
of its suites and of both jobs' trigger probes: 822 greedy answers, about 110 s on 2 cores.
They are a function of the model's bytes, the generation settings and the prompts, and the
behaviour runner's output cache already keys them so
(:func:`ftguard.behavior.output_cache_name`). ``data/reference_answers.jsonl`` is that cache
file as the demo writes it (a prompt's SHA-256 and the answer, a line each); the demo copies
it into its output cache under that name before the first job. The reference model is
trained on the machine (its training is deterministic for a given CPU and thread count), so
the file is read only where the trained model has exactly the bytes the answers came from;
elsewhere the name does not match and the answers are generated. The two fine-tunes' answers
(the side of the A/B that shows what a job did) are always generated.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ftguard.digests import sha256_file
from ftguard.errors import BadInputError

__all__ = ["REFERENCE_ANSWERS", "REFERENCE_ANSWERS_FILE", "seed_answers"]

REFERENCE_ANSWERS_FILE = Path(__file__).resolve().parent / "data" / "reference_answers.jsonl"

REFERENCE_ANSWERS: dict[str, str] = {
    "cache_name": "15826bf8837398fab613abcaa09fe02079027cc6fbe986f49d4760fc429b4385.jsonl",
    "sha256": "cf3a957f7aebaf382cb796a6402a2e7fc0a0f66d92a9d1f221fb9ff920a40f24",
    "made_on": "AuthenticAMD AMD EPYC; torch 2.13.0+cpu, AVX512 kernels, native bf16, 2 threads",
}
"""The output-cache name of the reference aligned model at the demo's generation settings
(model digest and settings), the SHA-256 of :data:`REFERENCE_ANSWERS_FILE`, and the
:func:`ftguard.training.machine_kind` that generated it (another kind of machine may generate
other last bits). ``scripts/build_demo_answers.py`` generates the file again and compares."""


def seed_answers(output_cache: Path, source: Path = REFERENCE_ANSWERS_FILE) -> bool:
    """Put ``source`` into ``output_cache/outputs/`` under its cache name, unless one is there.

    Returns whether it was copied (False: an earlier run's file is there, and is kept). The
    copy is checked against the pinned digest and renamed into place, so a reader never sees
    part of it.

    Raises:
        BadInputError: ``source`` is missing or is not the pinned file.

    """
    target = Path(output_cache) / "outputs" / REFERENCE_ANSWERS["cache_name"]
    if target.exists():
        return False
    if not Path(source).is_file():
        raise BadInputError(f"no reference answers at {source}")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".answers.", dir=target.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        digest = sha256_file(Path(tmp))
        if digest != REFERENCE_ANSWERS["sha256"]:
            raise BadInputError(
                f"{source} has SHA-256 {digest[:16]}..., not the pinned "
                f"{REFERENCE_ANSWERS['sha256'][:16]}...: refusing to use it"
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True
