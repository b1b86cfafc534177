"""The full weight diff across shards: local threads vs Ray tasks (one per shard pair).

A generated multi-shard pair (F32 tensors of 4 Mi elements, split over ``--shards`` files;
the tuned model changes a third of the tensors), diffed in fresh subprocesses:

- ``local``: ``diff(base, tuned, workers=2)``;
- ``ray-1``, ``ray-2``: a local Ray runtime of 1 or 2 CPUs and ``engine="ray"``.

Printed: seconds, GB/s of weights read (both models), the peak resident memory of the
largest Ray worker (sampled with psutil: bounded by the kernel's chunk buffers, not the
shard size), and whether the report equals the local one. A second, larger size shows the
worker memory does not grow with the shards.

    .venv/bin/python benchmarks/weights_scale.py [--gb 0.5,1.0] [--shards 8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ELEMENTS = 1 << 22


def generate(folder: Path, gb: float, shards: int, seed: int) -> tuple[Path, Path]:
    import numpy as np
    from safetensors.numpy import save_file

    n_tensors = max(shards, int(gb * 2**30 / (ELEMENTS * 4)))  # per model
    rng = np.random.default_rng(seed)
    pair = []
    for which in ("base", "tuned"):
        out = folder / which
        out.mkdir(parents=True)
        weight_map = {}
        for s in range(shards):
            fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            tensors = {}
            for t in range(s, n_tensors, shards):
                layer_rng = np.random.default_rng(seed * 1000 + t)
                w = layer_rng.normal(0, 0.02, ELEMENTS).astype(np.float32).reshape(2048, -1)
                if which == "tuned" and t % 3 == 0:
                    w = w + rng.normal(0, 0.001, w.shape).astype(np.float32)
                name = f"model.layers.{t}.mlp.up_proj.weight"
                tensors[name] = w
                weight_map[name] = fname
            save_file(tensors, str(out / fname))
        (out / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {}, "weight_map": weight_map})
        )
        (out / "config.json").write_text(
            json.dumps({"model_type": "llama", "num_hidden_layers": n_tensors})
        )
        pair.append(out)
    return pair[0], pair[1]


CHILD = r"""
import json, sys, threading, time
from pathlib import Path
import psutil
base, tuned, engine, cpus = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
peak = {"worker": 0}
stop = threading.Event()
def sample():
    while not stop.is_set():
        for p in psutil.Process().children(recursive=True):  # this run's Ray workers only
            try:
                if " ".join(p.cmdline()).startswith("ray::"):
                    peak["worker"] = max(peak["worker"], p.memory_info().rss)
            except psutil.Error:
                pass
        stop.wait(0.1)
threading.Thread(target=sample, daemon=True).start()
from ftguard.weights import diff
if engine == "ray":
    import ray
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    diff(base, tuned, engine="ray")  # warm: workers started, files in the page cache
t = time.perf_counter()
r = diff(base, tuned, workers=cpus, engine=engine)
dt = time.perf_counter() - t
stop.set()
d = r.to_json_dict(); d.pop("seconds", None)
print(json.dumps({"seconds": dt, "bytes": r.bytes_read, "worker_mb": peak["worker"] / 2**20,
                  "report": json.dumps(d, sort_keys=True)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", default="0.5,1.0", help="sizes of each model, in GiB")
    ap.add_argument("--shards", type=int, default=8)
    args = ap.parse_args()
    print(f"{'config':<8}{'GiB/model':>10}{'seconds':>9}{'GB/s':>7}{'worker MiB':>12}  same report")
    for gb in [float(x) for x in args.gb.split(",")]:
        with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
            base, tuned = generate(Path(tmp), gb, args.shards, seed=1)
            reports = {}
            for config in ("local", "ray-1", "ray-2"):
                engine, _, k = config.partition("-")
                cpus = int(k) if k else 2
                done = subprocess.run(
                    [sys.executable, "-c", CHILD, str(base), str(tuned), engine, str(cpus)],
                    capture_output=True,
                    text=True,
                )
                lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
                if done.returncode or not lines:
                    raise SystemExit(f"{config} failed:\n{done.stderr[-3000:]}")
                r = json.loads(lines[-1])
                reports[config] = r["report"]
                print(
                    f"{config:<8}{gb:>10.2f}{r['seconds']:>9.2f}{r['bytes'] / r['seconds'] / 1e9:>7.2f}"
                    f"{r['worker_mb']:>12.0f}  {r['report'] == reports['local']}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
