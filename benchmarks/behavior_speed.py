"""Behaviour-suite generation speed: in-process vs an OpenAI-compatible server, one run.

Every mode generates the same prompts (from the ``safety`` and ``over_refusal`` suites) with
the embedded model, greedy decoding and the same ``max_new_tokens``:

* in-process ``TransformersBackend``, batched (``--batch-size``), with its default batch
  (64 for a model under a billion parameters) and, unless ``--no-single``, one prompt at a
  time;
* ``OpenAIChatBackend`` against a real OpenAI-compatible server that this script starts on
  loopback in a separate process (``python -m ftguard.behavior.backends._local_server``:
  FastAPI/uvicorn, dynamic batching of concurrent requests, greedy), through
  ``/v1/chat/completions`` at each ``--concurrency`` and through ``/v1/completions`` with
  ``--batch-size`` prompts a request (the chat template rendered client-side).

Modes run round-robin within each repeat (so load changes hit all of them alike); the table
gives medians, prompts/s, generated tokens/s (the outputs re-tokenized with the model's
tokenizer, the same count for every mode), the ratio to the in-process batched backend, and
how many outputs equal the in-process batched ones. Server and in-process model use the
same number of torch threads and never run at the same time.

    .venv/bin/python benchmarks/behavior_speed.py [--prompts 32] [--max-new-tokens 32]
        [--batch-size 16] [--concurrency 1,4,16] [--repeats 3] [--threads 0] [--no-single]

On a machine shared with other work, pass ``--threads 1``: with several torch threads, one
descheduled thread holds the others up, and the times become erratic (docs/scale.md).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ftguard.behavior import OpenAIChatBackend, TransformersBackend, suites


@contextmanager
def local_server(model: Path, threads: int, max_batch_size: int) -> Iterator[str]:
    """Start the loopback OpenAI-compatible server in its own process; yield its URL."""
    import httpx

    cmd = [sys.executable, "-m", "ftguard.behavior.backends._local_server", "--model", str(model)]
    cmd += ["--port", "0", "--served-model-name", "smollm2", "--threads", str(threads)]
    cmd += ["--max-batch-size", str(max_batch_size)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "ready":
            raise RuntimeError(f"the server did not start (exit code {proc.poll()})")
        url = line[1]
        for _ in range(600):
            try:
                httpx.get(f"{url}/models", timeout=5).raise_for_status()
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--concurrency", default="1,4,16", help="comma-separated levels")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--no-single", action="store_true", help="skip in-process one-at-a-time")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server on `timeout`
    import torch
    from transformers import AutoTokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    from ftguard.models import embedded_model_dir

    model = embedded_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(model)
    half = args.prompts // 2
    prompts = [p.prompt for p in suites.create("safety").limited(args.prompts - half).prompts]
    prompts += [p.prompt for p in suites.create("over_refusal").limited(half).prompts]
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    ref_name = f"in-process batched ({args.batch_size})"

    with local_server(model, threads, args.batch_size) as url:
        modes: dict[str, Callable[[list[str]], list[str]]] = {
            ref_name: TransformersBackend(
                model, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens
            ).generate
        }
        # The backend's own default (64 prompts a batch under a billion parameters).
        modes["in-process, default batch"] = TransformersBackend(
            model, max_new_tokens=args.max_new_tokens
        ).generate
        if not args.no_single:
            modes["in-process one-at-a-time"] = TransformersBackend(
                model, batch_size=1, max_new_tokens=args.max_new_tokens
            ).generate
        for c in levels:
            modes[f"openai chat, concurrency {c}"] = OpenAIChatBackend(
                url, "smollm2", concurrency=c, max_new_tokens=args.max_new_tokens
            ).generate
        modes[f"openai completions, {args.batch_size}/request"] = OpenAIChatBackend(
            url,
            "smollm2",
            api="completions",
            chat_template=model,
            batch_size=args.batch_size,
            concurrency=1,
            max_new_tokens=args.max_new_tokens,
        ).generate
        for name, generate in modes.items():
            t0 = time.perf_counter()
            generate(prompts[:2])  # load + warm up
            print(f"  warm-up: {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        times: dict[str, list[float]] = {name: [] for name in modes}
        outputs: dict[str, list[str]] = {}
        for repeat in range(args.repeats):
            for name, generate in modes.items():
                t0 = time.perf_counter()
                outputs[name] = generate(prompts)
                times[name].append(time.perf_counter() - t0)
                print(f"  repeat {repeat + 1}: {name}: {times[name][-1]:.1f} s", file=sys.stderr)
    _print_table(args, threads, prompts, times, outputs, tokenizer, ref_name)
    return 0


def _print_table(
    args: argparse.Namespace,
    threads: int,
    prompts: list[str],
    times: dict[str, list[float]],
    outputs: dict[str, list[str]],
    tokenizer: object,
    ref_name: str,
) -> None:
    def n_tokens(texts: list[str]) -> int:
        return sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)  # type: ignore[operator]

    ref = statistics.median(times[ref_name])
    load = os.getloadavg()[0]
    print(
        f"model: embedded SmolLM2-135M-Instruct, {len(prompts)} prompts, greedy, "
        f"max_new_tokens={args.max_new_tokens}, torch threads={threads} (server and in-process), "
        f"repeats={args.repeats}, {os.cpu_count()} CPUs, load average {load:.1f}"
    )
    print(
        f"{'mode':<34} {'median s':>9} {'prompts/s':>10} {'tokens/s':>9} "
        f"{'vs batched':>10} {'same as batched':>16}"
    )
    for name, ts in times.items():
        med = statistics.median(ts)
        same = sum(a == b for a, b in zip(outputs[name], outputs[ref_name], strict=True))
        print(
            f"{name:<34} {med:>9.2f} {len(prompts) / med:>10.2f} "
            f"{n_tokens(outputs[name]) / med:>9.1f} {ref / med:>9.2f}x "
            f"{same:>10}/{len(prompts)}"
        )


if __name__ == "__main__":
    sys.exit(main())
