"""The reference aligned model's answers to the demo's prompts, as a clone ships them.

A first ``make demo`` asks the reference aligned model (the base of both jobs) every prompt of
its suites and of both jobs' trigger probes: 822 greedy answers, about 110 s on 2 cores. They
are a function of the model's bytes, the generation settings and the prompts, and the
output cache already keys them so (:func:`ftguard.behavior.output_cache_name`): a clone ships
that cache file in ``prebuilt/reference-aligned/answers/``, pinned here by name and SHA-256,
and ``ftguard demo --prebuilt`` puts it in the demo's output cache before the first job. The
name is the model's digest and settings: where the merged model's bytes differ (another
CPU), the file is never read and the answers are generated. The two fine-tunes' answers
(the side of the A/B that shows what a job did) are always generated.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ftguard.digests import sha256_file
from ftguard.errors import BadInputError

__all__ = ["PREBUILT_ANSWERS", "seed_answers"]

PREBUILT_ANSWERS: dict[str, str] = {
    "file": "80d7907fef7ac78b16e15b3790af6686d3ac48068c749bb13105072e72084047.jsonl",
    "sha256": "26086ad91e8ea28740c96e9f0914cc0378fe7acbcc74f23d5ace46a370c6db3e",
}
"""The output-cache file of the reference aligned model (pinned adapter, merged) at the demo's
generation settings, and the SHA-256 of its bytes. ``scripts/build_reference_adapter.py
--answers`` generates it again and compares."""

ANSWERS_FOLDER = "answers"


def seed_answers(output_cache: Path, prebuilt: Path) -> bool:
    """Put the pinned answers file into ``output_cache/outputs/`` unless one is there already.

    Returns whether it was copied (False: an earlier run's file is there). The copy is
    checked against the pinned digest and renamed into place, so a reader never sees part
    of it.

    Raises:
        BadInputError: The shipped file is missing or is not the pinned one.

    """
    source = Path(prebuilt) / ANSWERS_FOLDER / PREBUILT_ANSWERS["file"]
    target = Path(output_cache) / "outputs" / PREBUILT_ANSWERS["file"]
    if target.exists():
        return False
    if not source.is_file():
        raise BadInputError(f"no prebuilt answers at {source}")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".answers.", dir=target.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        digest = sha256_file(Path(tmp))
        if digest != PREBUILT_ANSWERS["sha256"]:
            raise BadInputError(
                f"{source} has SHA-256 {digest[:16]}..., not the pinned "
                f"{PREBUILT_ANSWERS['sha256'][:16]}...: refusing to use it"
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True
