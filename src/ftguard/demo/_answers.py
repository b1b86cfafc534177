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
    "cache_name": "80d7907fef7ac78b16e15b3790af6686d3ac48068c749bb13105072e72084047.jsonl",
    "sha256": "26086ad91e8ea28740c96e9f0914cc0378fe7acbcc74f23d5ace46a370c6db3e",
}
"""The output-cache name of the reference aligned model at the demo's generation settings
(model digest and settings) and the SHA-256 of :data:`REFERENCE_ANSWERS_FILE`.
``scripts/build_demo_answers.py`` generates the file again and compares."""


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
