"""Generate the demo's shipped base-model answers again and compare them with the pinned file.

Run from the repository root, after ``make install``::

    python scripts/build_demo_answers.py [--write] [--json]

It runs the whole demo in a fresh cache without the shipped answers (it trains the reference
aligned model, the earlier fine-tunes and both jobs: about 18 minutes on 2 cores), then
compares the reference model's answers file it generated with
``src/ftguard/demo/data/reference_answers.jsonl`` and its pins
(``ftguard.demo.REFERENCE_ANSWERS``: the output-cache name, which is the trained model's
digest and the generation settings, and the SHA-256). With ``--write`` it replaces the shipped
file (then pin the printed name and digest, after a recipe or prompt change, say).

Exit codes: 0 the generated file has the pinned name and bytes; 1 it differs (another CPU,
thread count or library version can change the last bits of training; the demo then
generates the answers there); 2 the demo failed or the ML extra is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path


def _reference_cache_name(cache: Path) -> str:
    """The output-cache file name of the reference model trained in ``cache``."""
    from ftguard.behavior import TransformersBackend, output_cache_name
    from ftguard.demo import DemoSettings
    from ftguard.training import reference_aligned_model_dir

    settings = DemoSettings.choose(fast=False)
    model = reference_aligned_model_dir(cache)  # built by the demo: found, not built again
    return output_cache_name(TransformersBackend(model, max_new_tokens=settings.max_new_tokens))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="replace the shipped file")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    from ftguard.demo import REFERENCE_ANSWERS, REFERENCE_ANSWERS_FILE, run_demo
    from ftguard.digests import sha256_file
    from ftguard.errors import FtguardError

    with tempfile.TemporaryDirectory(prefix="ftguard-answers-") as tmp:
        cache = Path(tmp) / "cache"
        os.environ["FTGUARD_CACHE"] = str(cache)
        try:
            code = run_demo(workdir=Path(tmp) / "demo", as_json=args.json, shipped_answers=False)
        except FtguardError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if code != 0:
            print(f"error: the demo ended with exit code {code}", file=sys.stderr)
            return 2
        name = _reference_cache_name(cache)
        answers = cache / "demo-outputs" / "outputs" / name
        digest = sha256_file(answers) if answers.is_file() else None
        same = name == REFERENCE_ANSWERS["cache_name"] and digest == REFERENCE_ANSWERS["sha256"]
        if args.write and not same and answers.is_file():
            shutil.copyfile(answers, REFERENCE_ANSWERS_FILE)
    result = {"cache_name": name, "sha256": digest, "pinned": REFERENCE_ANSWERS, "identical": same}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"generated: {name}, sha256 {digest}")
        print(f"pinned:    {REFERENCE_ANSWERS['cache_name']}, sha256 {REFERENCE_ANSWERS['sha256']}")
        print("identical, byte for byte" if same else "DIFFERENT from the shipped answers")
        if args.write and not same:
            print("pin the new name and digest in ftguard/demo/_answers.py")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
