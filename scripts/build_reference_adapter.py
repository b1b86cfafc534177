"""Rebuild the prebuilt safety adapter in ``prebuilt/reference-aligned/`` and compare its bytes.

Run from the repository root, after ``make install``::

    python scripts/build_reference_adapter.py [--write] [--json]

It trains the reference aligned model's safety LoRA afresh (``SAFETY_RECIPE`` on the embedded
model: about 6 minutes on 2 cores), ignoring every cached build, and compares the SHA-256 of
the new ``adapter_model.safetensors`` with the digest pinned in the code
(``ftguard.training.PREBUILT_ADAPTER``). With ``--write`` it replaces the repository's copy
with the new file and prints the digest and key to pin (after a recipe change, say).

Exit codes: 0 the rebuilt file is the pinned one, byte for byte; 1 it differs (another CPU,
thread count or library version can change the last bits of training; the prebuilt file is
then still the pinned one, and builds on this machine train their own); 2 bad usage or
the ML extra is missing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PREBUILT = ROOT / "prebuilt" / "reference-aligned"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="replace the prebuilt file")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    from ftguard.digests import sha256_file
    from ftguard.errors import FtguardError
    from ftguard.training import PREBUILT_ADAPTER, reference_build_key, train_reference_adapter

    try:
        with tempfile.TemporaryDirectory(prefix="ftguard-reference-") as tmp:
            weights = train_reference_adapter(Path(tmp) / "adapter", progress=not args.json)
            digest = sha256_file(weights)
            key = reference_build_key()
            if args.write:
                PREBUILT.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(weights, PREBUILT / weights.name)
    except FtguardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    same = digest == PREBUILT_ADAPTER["sha256"] and key == PREBUILT_ADAPTER["key"]
    result = {
        "key": key,
        "sha256": digest,
        "pinned": PREBUILT_ADAPTER,
        "identical": same,
        "written": str(PREBUILT / weights.name) if args.write else None,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"rebuilt: key {key}, sha256 {digest}")
        print(f"pinned:  key {PREBUILT_ADAPTER['key']}, sha256 {PREBUILT_ADAPTER['sha256']}")
        print("identical, byte for byte" if same else "DIFFERENT from the pinned adapter")
        if args.write and not same:
            print("pin the new key and digest in ftguard/training/_reference.py")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
