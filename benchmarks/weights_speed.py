"""Speed and memory of ``ftguard.weights.diff`` against the I/O floor and the naive approach.

Generates Llama-shaped BF16 sharded checkpoint pairs in a temp dir (deleted afterwards unless
``--keep DIR``) at two sizes, and measures, in the same run, once with a warm page cache and
once cold (both models evicted with ``POSIX_FADV_DONTNEED`` before every run); the methods
take turns within each repetition, so load from elsewhere affects them alike:

* I/O floor: ``cat`` of both models' files to /dev/null, and the same files spliced whole to
  /dev/null with ``sendfile``; ``x floor`` is the median over repetitions of a run's time over
  its repetition's floor (cold: the faster of the two; warm: ``cat``, since ``sendfile`` then
  moves page references and reads no byte; the naive runs, on their own after the others,
  against the floors of the first repetitions);
* ftguard diff (statistics only, digests passed in) with the compiled kernel, the same with
  the numpy kernel (``FTGUARD_WEIGHTS_KERNEL=numpy``: the engine before the C kernel), and the
  compiled one including SHA-256 digests;
* the command as a user runs it: ``ftguard weights diff A B --json`` (wall time of the whole
  process: start-up, imports, digests, diff, JSON out; bytecode compiled beforehand into
  ``PYTHONPYCACHEPREFIX``, as an installed package has it); SHA-256 digests of both folders alone
  (``ftguard.digests.manifest_of``); and sigstore's ``model_signing`` hashing both folders
  (``hashing.Config().use_shard_serialization().hash``, SHA-256, timed inside the child, imports
  excluded) when installed (the ``dev`` extra); with ``--baseline-src DIR`` also the CLI and
  diff + digests from an older source tree, in the same run;
* naive: load both state dicts whole (safetensors.torch), then compute the same statistics;

each as a child process whose peak RSS is read by ``/usr/bin/time`` (else ``getrusage``). After
the table, issue 23's two comparisons for the CLI, warm and cold: its time over the read floor
(target, cold: <= 1.3x) and over model_signing's (target <= 1.0x), medians of the per-repetition
ratios. Then the
LoRA part: a rank-16 adapter for 7B-shaped modules (32 layers x q,k,v,o,gate,up,down),
factored analysis against materialising B·A.

Run: ``.venv/bin/python benchmarks/weights_speed.py [--sizes 2,8] [--repeats 3] [--keep DIR]
[--skip-naive] [--baseline-src DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HIDDEN, INTER, VOCAB = 2048, 5632, 32000
SETTLE = 1.0
"""Seconds of pause before every run, so one run's exit (a naive run frees ~4 GB) does not
slow the next."""


def _bf16_block(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(0, 0.02, n).astype(np.float32)
    return (x.view(np.uint32) >> 16).astype("<u2")


def make_model(folder: Path, layers: int, *, seed: int, tweak: bool) -> int:
    """Write a sharded BF16 Llama-shaped model (one shard per 2 layers); return its bytes."""
    rng = np.random.default_rng(0)
    pool = _bf16_block(rng, 1 << 24)
    mask = (rng.random(1 << 24) < 0.05).astype("<u2")
    shapes: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (VOCAB, HIDDEN))]
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes += [
            (p + f"self_attn.{m}.weight", (HIDDEN, HIDDEN))
            for m in ("q_proj", "k_proj", "v_proj", "o_proj")
        ]
        shapes += [
            (p + "mlp.gate_proj.weight", (INTER, HIDDEN)),
            (p + "mlp.up_proj.weight", (INTER, HIDDEN)),
            (p + "mlp.down_proj.weight", (HIDDEN, INTER)),
        ]
        shapes += [
            (p + "input_layernorm.weight", (HIDDEN,)),
            (p + "post_attention_layernorm.weight", (HIDDEN,)),
        ]
    shapes += [("model.norm.weight", (HIDDEN,)), ("lm_head.weight", (VOCAB, HIDDEN))]
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(
        json.dumps({"model_type": "llama", "num_hidden_layers": layers})
    )
    trng = np.random.default_rng(seed)
    groups: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    for name, shape in shapes:
        groups[-1].append((name, shape))
        if name.endswith("post_attention_layernorm.weight") and int(name.split(".")[2]) % 2 == 1:
            groups.append([])
    weight_map: dict[str, str] = {}
    total = 0
    offset = 0
    for gi, group in enumerate(g for g in groups if g):
        fname = f"model-{gi + 1:05d}.safetensors"
        header: dict[str, object] = {}
        off = 0
        for name, shape in group:
            n = int(np.prod(shape)) * 2
            header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + n]}
            off += n
            weight_map[name] = fname
        h = json.dumps(header).encode()
        h += b" " * (-len(h) % 8)
        with open(folder / fname, "wb") as fh:
            fh.write(len(h).to_bytes(8, "little") + h)
            for name, shape in group:
                n = int(np.prod(shape))
                done = 0
                while done < n:
                    k = min(n - done, pool.size // 2)
                    offset = (offset + 7919) % (pool.size - k)
                    piece = pool[offset : offset + k]
                    if tweak and ".layers." in name:
                        m = int(trng.integers(0, mask.size - k))
                        piece = piece ^ mask[m : m + k]  # flip the lowest bit of ~5%
                    fh.write(piece.tobytes())
                    done += k
        total += (folder / fname).stat().st_size
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return total


_DIFF = """
import sys, time
from pathlib import Path
from ftguard.weights import diff
t = time.perf_counter()
r = diff(Path(sys.argv[1]), Path(sys.argv[2]), base_digest=None if sys.argv[3] == "hash" else "0" * 64,
         tuned_digest=None if sys.argv[3] == "hash" else "1" * 64)
print(time.perf_counter() - t, r.tensors_changed)
"""

_MODEL_SIGNING = """
import sys, time
from model_signing import hashing
t = time.perf_counter()
for folder in sys.argv[1:3]:
    hashing.Config().use_shard_serialization().hash(folder)
print(time.perf_counter() - t, 0)
"""

_MANIFESTS = """
import sys, time
from ftguard.digests import manifest_of
t = time.perf_counter()
for folder in sys.argv[1:3]:
    manifest_of(folder)
print(time.perf_counter() - t, 0)
"""


PYCACHE = Path(tempfile.gettempdir()) / "ftguard-bench-pycache"
"""Where the CLI runs keep their compiled bytecode (``PYTHONPYCACHEPREFIX``), as an installed
package has it: a shell with ``PYTHONDONTWRITEBYTECODE`` set would otherwise recompile
ftguard's modules on every start (~0.15 s), which no user's install does."""


def cli_env(src: str | None = None) -> dict[str, str]:
    """The environment of a CLI run: bytecode cached, the package from ``src`` if given."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    if src:
        env["PYTHONPATH"] = src + os.pathsep + os.environ.get("PYTHONPATH", "")
    return env


def cli_run(a: str, b: str, src: str | None = None) -> tuple[float, float | None]:
    """``ftguard weights diff A B --json`` as a user runs it: wall time, start-up included.

    ``src``: run the package from this source tree instead (``--baseline-src``).
    """
    cmd = [sys.executable, "-c", "from ftguard.cli import _entry; _entry()"]
    env = cli_env(src)
    t = time.perf_counter()
    p = subprocess.run(
        [*cmd, "weights", "diff", a, b, "--json"], capture_output=True, text=True, env=env
    )
    wall = time.perf_counter() - t
    if p.returncode not in (0, 1):
        raise RuntimeError(f"ftguard weights diff failed ({p.returncode}): {p.stderr[-500:]}")
    return wall, None


def has_model_signing() -> bool:
    p = subprocess.run([sys.executable, "-c", "import model_signing.hashing"], capture_output=True)
    return p.returncode == 0


_NAIVE = """
import sys, time, json
from pathlib import Path
import torch
from safetensors.torch import load_file
torch.set_num_threads(2)
t = time.perf_counter()
def load(folder):
    sd = {}
    for f in sorted(Path(folder).glob("*.safetensors")):
        sd.update(load_file(str(f)))
    return sd
a, b = load(sys.argv[1]), load(sys.argv[2])
out = {}
for k in a:
    x, y = a[k].float(), b[k].float()
    d = y - x
    out[k] = (float(d.norm()), float(x.norm()), float(d.abs().max()), float((d.abs() > 1e-6).float().mean()),
              float(torch.nn.functional.cosine_similarity(x.reshape(1, -1), y.reshape(1, -1))))
print(time.perf_counter() - t, len(out))
"""


def run_child(code: str, *args: str, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run code in a fresh interpreter; (its own timing, peak RSS MiB of all children so far)."""
    p = subprocess.run(
        [sys.executable, "-c", code, *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    return float(p.stdout.split()[0]), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def peak_rss_mib(code: str, *args: str, env: dict[str, str] | None = None) -> tuple[float, float]:
    """(seconds the child measured itself, its peak RSS MiB) via /usr/bin/time when present."""
    if shutil.which("time") or Path("/usr/bin/time").exists():
        t = time.perf_counter()
        p = subprocess.run(
            ["/usr/bin/time", "-f", "%M", sys.executable, "-c", code, *args],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
        )
        wall = time.perf_counter() - t
        inner = float(p.stdout.split()[0]) if p.stdout.strip() else wall
        return inner, int(p.stderr.strip().splitlines()[-1]) / 1024
    return run_child(code, *args, env=env)


def data_files(folders: list[Path]) -> list[str]:
    return [str(f) for d in folders for f in sorted(d.glob("*.safetensors"))]


def evict(folders: list[Path]) -> None:
    """Drop both models' files from the page cache (works without root for own files)."""
    for f in data_files(folders):
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def cat_floor(folders: list[Path]) -> tuple[float, None]:
    t = time.perf_counter()
    subprocess.run(["cat", *data_files(folders)], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t, None


def sendfile_floor(folders: list[Path]) -> tuple[float, None]:
    """Both models' files spliced whole to /dev/null (large requests, nothing copied)."""
    null = os.open(os.devnull, os.O_WRONLY)
    t = time.perf_counter()
    try:
        for f in data_files(folders):
            fd = os.open(f, os.O_RDONLY)
            try:
                size, off = os.fstat(fd).st_size, 0
                while off < size:
                    off += os.sendfile(null, fd, off, size - off)
            finally:
                os.close(fd)
    finally:
        os.close(null)
    return time.perf_counter() - t, None


def measure(
    methods: list[tuple[str, Callable[[], tuple[float, float | None]], int]],
    folders: list[Path],
    repeats: int,
    cold: bool,
) -> list[list[tuple[float, float | None]]]:
    """Every run's (seconds, peak RSS) per method; repetitions interleave the methods (so a
    noisy neighbour slows all of them alike); cold: evict both models before every run."""
    if not methods:
        return []
    if not cold:
        subprocess.run(["cat", *data_files(folders)], stdout=subprocess.DEVNULL, check=True)
    runs: list[list[tuple[float, float | None]]] = [[] for _ in methods]
    for rep in range(repeats):
        for i, (_, fn, reps) in enumerate(methods):
            if rep < reps:
                if cold:
                    evict(folders)
                time.sleep(SETTLE)
                runs[i].append(fn())
    return runs


def lora_bench(repeats: int) -> list[tuple[str, float]]:
    from ftguard.weights._lora import LoraPair, factored_svd

    rng = np.random.default_rng(0)
    shapes = [(4096, 4096)] * 4 + [(11008, 4096)] * 2 + [(4096, 11008)]
    pairs = [
        LoraPair(
            "x",
            rng.normal(0, 0.01, (m, 16)).astype(np.float32),
            rng.normal(0, 0.01, (16, n)).astype(np.float32),
            2.0,
            16,
        )
        for _ in range(32)
        for m, n in shapes
    ]
    fact, mat = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        f_norms = [float(np.sqrt((factored_svd(p) ** 2).sum())) for p in pairs]
        fact.append(time.perf_counter() - t)
        t = time.perf_counter()
        m_norms = [float(np.linalg.norm(p.scale * (p.left @ p.right))) for p in pairs]
        mat.append(time.perf_counter() - t)
    assert np.allclose(f_norms, m_norms, rtol=1e-3)
    return [
        ("factored (QR + r x r SVD; all singular values)", statistics.median(fact)),
        ("materialised B·A (Frobenius norm only)", statistics.median(mat)),
    ]


_NUMPY = {"FTGUARD_WEIGHTS_KERNEL": "numpy"}
CLI_ROW = "CLI: ftguard weights diff A B"
SIGNING_ROW = "model_signing: hash both folders"

HEADER = f"{'cache':>5} | {'model pair':>15} | {'method':<34} | {'time s':>7} | {'x floor':>7} | {'peak RSS MiB':>12}"


def bench_pair(
    dirs: list[Path], label: str, repeats: int, skip_naive: bool, baseline_src: str | None = None
) -> None:
    """Print one row per method, warm page cache first, then cold."""
    a, b = str(dirs[0]), str(dirs[1])
    methods: list[tuple[str, Callable[[], tuple[float, float | None]], int]] = [
        ("I/O floor: cat to /dev/null", lambda: cat_floor(dirs), repeats),
        ("I/O floor: sendfile to /dev/null", lambda: sendfile_floor(dirs), repeats),
        ("ftguard diff (digests given)", lambda: peak_rss_mib(_DIFF, a, b, "given"), repeats),
        (
            "  the same, numpy kernel",
            lambda: peak_rss_mib(_DIFF, a, b, "given", env=_NUMPY),
            repeats,
        ),
        ("ftguard diff + SHA-256 digests", lambda: peak_rss_mib(_DIFF, a, b, "hash"), repeats),
        (CLI_ROW, lambda: cli_run(a, b), repeats),
        ("SHA-256 of both (manifest_of)", lambda: peak_rss_mib(_MANIFESTS, a, b), repeats),
    ]
    if baseline_src:
        methods.append(
            ("  the same CLI, --baseline-src", lambda: cli_run(a, b, baseline_src), repeats)
        )
        methods.append(
            (
                "  diff + digests, --baseline-src",
                lambda: peak_rss_mib(_DIFF, a, b, "hash", env={"PYTHONPATH": baseline_src}),
                repeats,
            )
        )
    if has_model_signing():
        methods.append((SIGNING_ROW, lambda: peak_rss_mib(_MODEL_SIGNING, a, b), repeats))
    naive: list[tuple[str, Callable[[], tuple[float, float | None]], int]] = []
    if not skip_naive:
        naive.append(
            (
                "naive: load both whole (torch)",
                lambda: peak_rss_mib(_NAIVE, a, b),
                max(1, repeats - 2),
            )
        )
    targets = ["issue 23 targets (medians of paired ratios):"]
    for cold in (False, True):
        # The naive runs go last, on their own: freeing their ~4 GB slowed whatever ran next
        # (measured: a cold `cat` 0.3 s -> 0.9-1.1 s).
        runs = measure(methods, dirs, repeats, cold) + measure(naive, dirs, repeats, cold)
        # The floor of each repetition: cold, the faster of `cat` and `sendfile`; warm, `cat`
        # (`sendfile` then hands cached pages to /dev/null without reading a byte).
        floors = [min(c[0], f[0]) if cold else c[0] for c, f in zip(runs[0], runs[1], strict=True)]
        for (name, _, _), r in zip(methods + naive, runs, strict=True):
            secs = statistics.median(x[0] for x in r)
            ratio = statistics.median(x[0] / f for x, f in zip(r, floors, strict=False))
            rss = [x[1] for x in r if x[1] is not None]
            rss_s = f"{max(rss):12.0f}" if rss else f"{'':>12}"
            print(
                f"{'cold' if cold else 'warm':>5} | {label:>15} | {name:<34} | {secs:7.2f} | {ratio:7.2f} | {rss_s}",
                flush=True,
            )
        targets.append(issue_targets(methods, runs, floors, cold, label))
    for line in targets:
        print(line, flush=True)


def issue_targets(
    methods: list[tuple[str, Callable[[], tuple[float, float | None]], int]],
    runs: list[list[tuple[float, float | None]]],
    floors: list[float],
    cold: bool,
    label: str,
) -> str:
    """The issue's two comparisons for the CLI (medians of paired per-repetition ratios):
    against the read floor (target, cold: <= 1.3x) and against model_signing hashing both
    folders (target: <= 1.0x; model_signing timed without its start-up, the CLI with)."""
    by_name = {name: r for (name, _, _), r in zip(methods, runs, strict=False)}
    cli = by_name[CLI_ROW]
    vs_floor = statistics.median(c[0] / f for c, f in zip(cli, floors, strict=False))
    line = f"  {'cold' if cold else 'warm'} {label}: CLI / read floor {vs_floor:.2f}x" + (
        " (target <= 1.30x)" if cold else ""
    )
    signing = by_name.get(SIGNING_ROW)
    if signing:
        vs_signing = statistics.median(c[0] / m[0] for c, m in zip(cli, signing, strict=False))
        line += f"; CLI / model_signing {vs_signing:.2f}x (target <= 1.00x)"
    return line


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="2,8", help="decoder layers of the small and large model")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument(
        "--baseline-src",
        default=None,
        help="also time the CLI and diff + digests from this source tree (e.g. a `git archive` "
        "of the previous commit's src, with the compiled kernel copied in), in the same run",
    )
    ap.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="generate the models into (and reuse them from) this folder",
    )
    args = ap.parse_args()
    src = Path(__file__).resolve().parents[1] / "src"
    os.environ["PYTHONPATH"] = str(src) + os.pathsep + os.environ.get("PYTHONPATH", "")
    load = os.getloadavg()[0]
    kernel = subprocess.run(
        [sys.executable, "-c", "from ftguard.weights._stats import KERNEL; print(KERNEL)"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if kernel != "c":
        print(
            "note: the compiled kernel (ftguard.weights._fused) is not built; "
            "both ftguard rows use numpy\n"
        )
    print(
        f"CPU cores: {os.cpu_count()}; load average at start {load:.1f}; repeats: {args.repeats} "
        "(medians; naive: max(1, repeats - 2))\n"
    )
    for tree in (str(src), args.baseline_src):
        if tree:  # compile once, as an install does, so no CLI run pays for it
            subprocess.run(
                [sys.executable, "-m", "compileall", "-q", tree],
                check=True,
                capture_output=True,
                env=cli_env(),
            )
    print(HEADER + "\n" + "-" * len(HEADER))
    for layers in (int(x) for x in args.sizes.split(",")):
        tmp = (
            (args.keep / f"{layers}L")
            if args.keep
            else Path(tempfile.mkdtemp(prefix="ftguard-bench-"))
        )
        try:
            if not (tmp / "tuned" / "model.safetensors.index.json").is_file():
                shutil.rmtree(tmp, ignore_errors=True)
                make_model(tmp / "base", layers, seed=1, tweak=False)
                make_model(tmp / "tuned", layers, seed=2, tweak=True)
            dirs = [tmp / "base", tmp / "tuned"]
            size = sum(os.path.getsize(f) for f in data_files(dirs))
            label = f"{layers}L {size / 1e9:.2f} GB"
            bench_pair(dirs, label, args.repeats, args.skip_naive, args.baseline_src)
        finally:
            if args.keep is None:
                shutil.rmtree(tmp, ignore_errors=True)
    print("\nLoRA rank 16, 7B-shaped modules (32 layers x 7), in memory:")
    rows2 = lora_bench(args.repeats)
    for name, secs in rows2:
        print(f"  {name:<50} {secs:7.3f} s")
    print(f"  speed-up of the factored analysis: {rows2[1][1] / rows2[0][1]:.1f}x")
    print(
        f"\ntimes are measured inside each child (imports excluded); RSS is the child's peak; "
        f"cold = both models evicted from the page cache (POSIX_FADV_DONTNEED) before every "
        f"run; load average at the end {os.getloadavg()[0]:.1f}."
    )


if __name__ == "__main__":
    main()
