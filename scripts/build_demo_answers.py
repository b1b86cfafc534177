"""Build the demo's shipped artefacts again and compare them with the pinned files.

Run from the repository root, after ``make install``::

    python scripts/build_demo_answers.py [--write] [--json]

It runs the whole demo in a fresh cache without anything shipped (it trains the reference
aligned model, the five earlier fine-tunes and both jobs: about 18 minutes on 2 cores), then
compares two files with their pins:

- the reference model's answers file it generated with
  ``src/ftguard/demo/data/reference_answers.jsonl`` (``ftguard.demo.REFERENCE_ANSWERS``: the
  output-cache name, which is the trained model's digest and the generation settings, and the
  SHA-256);
- the export of the baselines it registered from the five trained adapters with
  ``src/ftguard/demo/data/history_baselines.json`` (``ftguard.demo.HISTORY_RECORDS``: the key
  of the aligned model, data, recipe and fingerprint schema they come from, and the SHA-256):
  the same key and every field of every record the same (fingerprints, verdicts, anomaly
  scores) but the adapter folders' digests, which cover the base model's path that PEFT
  writes into ``adapter_config.json`` and so change with the cache's location.

With ``--write`` it replaces a shipped file that differs (then pin the printed values, after a
recipe or prompt change, say).

Exit codes: 0 both generated files match their pins as above; 1 one differs (another kind of
machine, ``ftguard.training.machine_kind()``, or library version can change the last bits of
training and generation; the demo then generates or trains there); 2 the demo failed or the
ML extra is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any


def _reference_cache_name(cache: Path) -> str:
    """The output-cache file name of the reference model trained in ``cache``."""
    from ftguard.behavior import TransformersBackend, output_cache_name
    from ftguard.demo import DemoSettings
    from ftguard.training import reference_aligned_model_dir

    settings = DemoSettings.choose(fast=False)
    model = reference_aligned_model_dir(cache)  # built by the demo: found, not built again
    return output_cache_name(TransformersBackend(model, max_new_tokens=settings.max_new_tokens))


def _answers(cache: Path, write: bool) -> dict[str, Any]:
    from ftguard.demo import REFERENCE_ANSWERS, REFERENCE_ANSWERS_FILE
    from ftguard.digests import sha256_file

    name = _reference_cache_name(cache)
    answers = cache / "demo-outputs" / "outputs" / name
    digest = sha256_file(answers) if answers.is_file() else None
    same = name == REFERENCE_ANSWERS["cache_name"] and digest == REFERENCE_ANSWERS["sha256"]
    if write and not same and answers.is_file():
        shutil.copyfile(answers, REFERENCE_ANSWERS_FILE)
    return {"cache_name": name, "sha256": digest, "pinned": REFERENCE_ANSWERS, "identical": same}


def _without_folder_digests(data: bytes) -> list[dict[str, Any]]:
    """The records minus ``tuned_digest``.

    An adapter folder's digest covers the base model's path that PEFT writes into
    adapter_config.json, so it differs with the cache's location; the fingerprints (computed
    from the weights) and everything else must not.
    """
    records = json.loads(data)["records"]
    return [{k: v for k, v in r.items() if k != "tuned_digest"} for r in records]


def _history(cache: Path, write: bool) -> dict[str, Any]:
    """The demo workspace's baselines (registered from the trained adapters), exported."""
    from ftguard.control import find_workspace, service
    from ftguard.demo import HISTORY_RECORDS, HISTORY_RECORDS_FILE, DemoSettings, history_key
    from ftguard.digests import manifest_of, sha256_bytes
    from ftguard.training import reference_aligned_model_dir

    s = DemoSettings.choose(fast=False)
    base_digest = manifest_of(reference_aligned_model_dir(cache)).root
    key = history_key(base_digest, **s.recipe())
    data = service.export_baselines(find_workspace(), base_model_digest=base_digest).to_bytes()
    shipped = HISTORY_RECORDS_FILE.read_bytes()
    same = key == HISTORY_RECORDS["key"] and sha256_bytes(shipped) == HISTORY_RECORDS["sha256"]
    same = same and _without_folder_digests(data) == _without_folder_digests(shipped)
    if write and not same:
        HISTORY_RECORDS_FILE.write_bytes(data)
    return {"key": key, "sha256": sha256_bytes(data), "pinned": HISTORY_RECORDS, "identical": same}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="replace a shipped file that differs")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    from ftguard.demo import run_demo
    from ftguard.errors import FtguardError

    with tempfile.TemporaryDirectory(prefix="ftguard-answers-") as tmp:
        cache = Path(tmp) / "cache"
        os.environ["FTGUARD_CACHE"] = str(cache)
        try:
            code = run_demo(
                workdir=Path(tmp) / "demo",
                as_json=args.json,
                shipped_answers=False,
                shipped_history=False,
            )
        except FtguardError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if code != 0:
            print(f"error: the demo ended with exit code {code}", file=sys.stderr)
            return 2
        result = {"answers": _answers(cache, args.write), "history": _history(cache, args.write)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for what, found in result.items():
            named = found.get("cache_name") or found.get("key")
            pinned = found["pinned"].get("cache_name") or found["pinned"].get("key")
            print(f"{what}: generated {named}, sha256 {found['sha256']}")
            print(f"{what}: pinned    {pinned}, sha256 {found['pinned']['sha256']}")
            print("  identical" if found["identical"] else "  DIFFERENT")
        if args.write and not all(found["identical"] for found in result.values()):
            print("pin the new values in ftguard/demo/_answers.py and ftguard/demo/_history.py")
    return 0 if all(found["identical"] for found in result.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
