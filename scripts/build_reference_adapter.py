"""Train the reference safety LoRA again and compare it with the shipped file.

Run from the repository root, after ``make install``::

    python scripts/build_reference_adapter.py [--write] [--json]

It converts the embedded model (into a fresh cache), trains the safety LoRA of
``ftguard.training.SAFETY_RECIPE`` on it (about 6 minutes on 2 cores), stores it in bf16 as the
reference build does, and compares it byte for byte with
``src/ftguard/training/data/reference_adapter.safetensors`` and its pins
(``ftguard.training.REFERENCE_ADAPTER``: the build key it was trained for and its SHA-256).

Training is bit-for-bit deterministic on one kind of CPU with one thread count, not across
them (the BLAS and vector kernels differ): the file is reproduced exactly on a machine like
the one named in the pin's ``trained_on``; elsewhere the training gives a close but different
file. The merge of the shipped file into the embedded model is exact on every machine.

With ``--write`` it replaces a shipped file that differs (after a recipe or data change,
say); then pin the printed values, and run ``scripts/build_demo_answers.py --write``, since
the demo's shipped answers and weight records belong to the model this file makes.

Exit codes: 0 the trained file is the shipped one; 1 it differs; 2 the ML extra is missing
or the training failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--write", action="store_true", help="replace the shipped file if it differs"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    from ftguard.digests import sha256_file
    from ftguard.errors import FtguardError

    with tempfile.TemporaryDirectory(prefix="ftguard-adapter-") as tmp:
        os.environ["FTGUARD_CACHE"] = str(Path(tmp) / "cache")
        from ftguard.models import embedded_model_digest, embedded_model_dir
        from ftguard.training import (
            REFERENCE_ADAPTER,
            REFERENCE_ADAPTER_FILE,
            machine_kind,
            reference_build_key,
            train_reference_adapter,
        )

        try:
            base = embedded_model_dir()
            key = reference_build_key(embedded_model_digest())
            adapter = Path(tmp) / "adapter"
            measured = train_reference_adapter(base, adapter, progress=True)
        except FtguardError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        trained = adapter / "adapter_model.safetensors"
        digest = sha256_file(trained)
        same = key == REFERENCE_ADAPTER["key"] and digest == REFERENCE_ADAPTER["sha256"]
        if args.write and not same:
            shutil.copyfile(trained, REFERENCE_ADAPTER_FILE)
    result = {
        "key": key,
        "sha256": digest,
        "pinned": REFERENCE_ADAPTER,
        "identical": same,
        "train_seconds": measured["train_seconds"],
        "machine": machine_kind(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"trained: key {key}, sha256 {digest} ({measured['train_seconds']:.0f} s)")
        print(f"pinned:  key {REFERENCE_ADAPTER['key']}, sha256 {REFERENCE_ADAPTER['sha256']}")
        print(f"this machine: {result['machine']}")
        print("identical" if same else "DIFFERENT (compare this machine with trained_on)")
        if args.write and not same:
            print("pin the new values in ftguard/training/_reference.py (REFERENCE_ADAPTER)")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
