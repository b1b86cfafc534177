"""Rebuild what ``prebuilt/reference-aligned/`` ships and compare the bytes with the pinned digests.

Run from the repository root, after ``make install``::

    python scripts/build_reference_adapter.py [--answers] [--write] [--json]

It trains the reference aligned model's safety LoRA afresh (``SAFETY_RECIPE`` on the embedded
model: about 6 minutes on 2 cores), ignoring every cached build, and compares the SHA-256 of
the new ``adapter_model.safetensors`` with the digest pinned in the code
(``ftguard.training.PREBUILT_ADAPTER``). With ``--answers`` it also runs the whole demo in a
fresh cache on the rebuilt model (about 10 minutes more), without the shipped answers, and
compares the base model's answers file it generated with ``ftguard.demo.PREBUILT_ANSWERS``.
With ``--write`` it replaces the repository's copies with the new files (then pin the
printed digests, after a recipe or prompt change, say).

Exit codes: 0 every rebuilt file is the pinned one, byte for byte; 1 one differs (another CPU,
thread count or library version can change the last bits of training; the prebuilt file is
then still the pinned one, and builds on this machine train their own); 2 bad usage or
the ML extra is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PREBUILT = ROOT / "prebuilt" / "reference-aligned"


def _answers(adapter: Path, cache: Path, workdir: Path, progress: bool) -> Path:
    """Run the demo in ``cache`` on the model merged from ``adapter``: its base answers file."""
    from ftguard.demo import PREBUILT_ANSWERS, run_demo
    from ftguard.training import reference_aligned_model_dir

    os.environ["FTGUARD_CACHE"] = str(cache)
    reference_aligned_model_dir(cache, progress=progress, prebuilt=adapter.parent)
    # No prebuilt folder: the demo generates every answer of the model it just merged.
    code = run_demo(workdir=workdir, as_json=not progress)
    if code != 0:
        raise SystemExit(f"the demo ended with exit code {code}")
    return cache / "demo-outputs" / "outputs" / PREBUILT_ANSWERS["file"]


def _compare(name: str, path: Path, pinned: dict[str, str], json_out: bool) -> dict[str, object]:
    from ftguard.digests import sha256_file

    digest = sha256_file(path) if path.is_file() else None
    same = digest == pinned["sha256"]
    if not json_out:
        print(f"{name}: rebuilt sha256 {digest}, pinned {pinned['sha256']}")
        print("  identical, byte for byte" if same else "  DIFFERENT from the pinned file")
    return {"sha256": digest, "pinned": pinned, "identical": same}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", action="store_true", help="also the base model's answers")
    parser.add_argument("--write", action="store_true", help="replace the prebuilt files")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    from ftguard.demo import PREBUILT_ANSWERS
    from ftguard.errors import FtguardError
    from ftguard.training import PREBUILT_ADAPTER, reference_build_key, train_reference_adapter

    result: dict[str, object] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="ftguard-reference-") as tmp:
            weights = train_reference_adapter(Path(tmp) / "adapter", progress=not args.json)
            key = reference_build_key()
            result["key"] = {"rebuilt": key, "pinned": PREBUILT_ADAPTER["key"]}
            adapter = result["adapter"] = _compare("adapter", weights, PREBUILT_ADAPTER, args.json)
            written = [(weights, PREBUILT / weights.name)]
            if args.answers and not adapter["identical"]:
                print("answers: not compared (the rebuilt adapter differs)", file=sys.stderr)
            elif args.answers:
                answers = _answers(weights, Path(tmp) / "cache", Path(tmp) / "demo", not args.json)
                result["answers"] = _compare("answers", answers, PREBUILT_ANSWERS, args.json)
                written.append((answers, PREBUILT / "answers" / answers.name))
            if args.write:
                for source, target in written:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, target)
                result["written"] = [str(target) for _, target in written]
    except FtguardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    same = key == PREBUILT_ADAPTER["key"] and all(
        isinstance(r, dict) and r["identical"]
        for k, r in result.items()
        if k in {"adapter", "answers"}
    )
    result["identical"] = same
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.write and not same:
        print("pin the new digests in ftguard/training/_reference.py and ftguard/demo/_prebuilt.py")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
