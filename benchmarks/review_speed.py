"""Throughput and peak memory of the dataset review at 10k and 100k examples.

Datasets are built by resampling the shared benign data (Alpaca + Dolly). Each
configuration runs in a fresh subprocess (so its peak RSS is its own, workers included).
The baseline, measured in the same run, is the loader alone (parse + normalize, no
scanners); the ratio column is review time / loader time.

    .venv/bin/python benchmarks/review_speed.py [--sizes 10000,100000] [--emb-sizes 2000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
path, mode, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = time.perf_counter()
if mode == "loader":
    from ftguard.review import load_examples
    n = sum(1 for _ in load_examples(Path(path)))
else:
    from ftguard.review import review_dataset
    r = review_dataset(Path(path), purpose="a general helpful assistant", workers=workers, embeddings=(mode == "emb"))
    n = r.examples
dt = time.perf_counter() - t
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"n": n, "seconds": dt, "rss_mb": own / 1024, "worker_rss_mb": kids / 1024}))
"""


def build(n: int, path: Path, seed: int = 0) -> None:
    rows = json.loads((DATA / "benign/alpaca_safety_only.json").read_text())
    for line in (DATA / "benign/dolly_safety_only.jsonl").read_text().splitlines():
        r = json.loads(line)
        rows.append(
            {"instruction": r["instruction"], "input": r["context"], "output": r["response"]}
        )
    rng = random.Random(seed)
    with path.open("w") as fh:
        for _ in range(n):
            fh.write(json.dumps(rng.choice(rows)) + "\n")


def run(path: Path, mode: str, workers: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), mode, str(workers)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--emb-sizes", default="2000")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"skipped: {DATA} is absent")
    plan = [(int(s), m) for s in args.sizes.split(",") for m in ("loader", "no-emb")]
    plan += [(int(s), "emb") for s in args.emb_sizes.split(",") if s]
    rows = []
    with tempfile.TemporaryDirectory() as td:
        files: dict[int, Path] = {}
        loader_s: dict[int, float] = {}
        for n, mode in plan:
            if n not in files:
                files[n] = Path(td) / f"d{n}.jsonl"
                build(n, files[n])
            results = [run(files[n], mode, args.workers) for _ in range(args.repeats)]
            secs = statistics.median(r["seconds"] for r in results)
            if mode == "loader":
                loader_s[n] = secs
            rss = max(r["rss_mb"] for r in results)
            wrss = max(r["worker_rss_mb"] for r in results)
            ratio = secs / loader_s[n] if n in loader_s else float("nan")
            rows.append((n, mode, secs, n / secs, rss, wrss, ratio))
            print(f"  done {n} {mode}: {n / secs:.0f} ex/s", file=sys.stderr)
    print(
        f"{'examples':>9} {'mode':8} {'median s':>9} {'ex/s':>8} {'peak MB':>8} {'worker MB':>9} {'vs loader':>9}"
    )
    for n, mode, secs, rate, rss, wrss, ratio in rows:
        print(f"{n:9d} {mode:8} {secs:9.2f} {rate:8.0f} {rss:8.0f} {wrss:9.0f} {ratio:9.2f}")


if __name__ == "__main__":
    main()
