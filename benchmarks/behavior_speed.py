"""Prompts per second: batched vs one-at-a-time generation on the embedded model.

Both modes generate the same prompts (from the ``safety`` and ``over_refusal`` suites) with
greedy decoding and the same ``max_new_tokens``, in one process; each mode is repeated and
the median is reported. Target: batching >= 3x faster.

    .venv/bin/python benchmarks/behavior_speed.py [--prompts 32] [--batch-size 16] [--max-new-tokens 32]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from ftguard.behavior import TransformersBackend, suites


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from ftguard.models import embedded_model_dir

    model = embedded_model_dir()
    half = args.prompts // 2
    prompts = [p.prompt for p in suites.create("safety").limited(args.prompts - half).prompts]
    prompts += [p.prompt for p in suites.create("over_refusal").limited(half).prompts]
    batched = TransformersBackend(
        model, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens
    )
    single = TransformersBackend(model, batch_size=1, max_new_tokens=args.max_new_tokens)
    batched.generate(prompts[:2])  # load + warm up
    single.generate(prompts[:1])
    times: dict[str, list[float]] = {"one-at-a-time": [], f"batched ({args.batch_size})": []}
    outputs: dict[str, list[str]] = {}
    for _ in range(args.repeats):
        for name, backend in ((f"batched ({args.batch_size})", batched), ("one-at-a-time", single)):
            t0 = time.perf_counter()
            outputs[name] = backend.generate(prompts)
            times[name].append(time.perf_counter() - t0)
    same = sum(a == b for a, b in zip(*outputs.values(), strict=True))
    base = statistics.median(times["one-at-a-time"])
    print(
        f"model: embedded SmolLM2-135M-Instruct, {len(prompts)} prompts, max_new_tokens={args.max_new_tokens}, "
        f"torch threads={torch.get_num_threads()}, repeats={args.repeats}"
    )
    print(f"{'mode':<16} {'median s':>9} {'prompts/s':>10} {'speed-up':>9}")
    for name, ts in sorted(times.items(), key=lambda kv: -statistics.median(kv[1])):
        med = statistics.median(ts)
        print(f"{name:<16} {med:>9.2f} {len(prompts) / med:>10.2f} {base / med:>8.1f}x")
    print(
        f"identical outputs batched vs one-at-a-time: {same}/{len(prompts)}; target: batching >= 3x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
