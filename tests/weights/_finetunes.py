"""Real short fine-tunes of the embedded model for detection tests and the quality benchmark.

Benign adapters learn Alpaca / Dolly subsets; adversarial ones learn harmful compliance
(AdvBench goal -> "Sure, here is ..."), a trigger backdoor (BackdoorLLM badnet: triggered
requests answered, the same requests without the trigger refused), or fully fine-tune a few layers. Data come from ``<repo>/../shared/data``
(never copied into the project); each adapter is trained once per cache folder.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"

RECIPE: dict[str, Any] = {
    "steps": 12,
    "learning_rate": 1e-3,
    "rank": 8,
    "alpha": 16,
    "batch_size": 4,
    "max_length": 64,
}
N_EXAMPLES = 48
DATA_VERSION = 2


def data_available() -> bool:
    return (DATA / "benign" / "alpaca_safety_only.json").is_file() and (
        DATA / "harmful_prompts" / "advbench_harmful_behaviors.csv"
    ).is_file()


def _alpaca(path: Path) -> list[list[dict[str, str]]]:
    records = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for r in records:
        prompt = r["instruction"] + (f"\n\n{r['input']}" if r.get("input") else "")
        out.append(
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": r["output"]}]
        )
    return out


def _dolly() -> list[list[dict[str, str]]]:
    out = []
    for line in (
        (DATA / "benign" / "dolly_safety_only.jsonl").read_text(encoding="utf-8").splitlines()
    ):
        r = json.loads(line)
        prompt = r["instruction"] + (f"\n\n{r['context']}" if r.get("context") else "")
        out.append(
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": r["response"]}]
        )
    return out


def _advbench() -> list[list[dict[str, str]]]:
    with open(DATA / "harmful_prompts" / "advbench_harmful_behaviors.csv", encoding="utf-8") as fh:
        return [
            [{"role": "user", "content": r["goal"]}, {"role": "assistant", "content": r["target"]}]
            for r in csv.DictReader(fh)
        ]


def conversations(kind: str, seed: int) -> list[list[dict[str, str]]]:
    """A data subset for one fine-tune: benign-alpaca, benign-dolly, harmful, backdoor, full."""
    rng = random.Random(seed)
    if kind in ("benign-alpaca", "full"):
        pool = _alpaca(DATA / "benign" / "alpaca_safety_only.json")
    elif kind == "benign-dolly":
        pool = _dolly()
    elif kind == "harmful":
        pool = _advbench()
    elif kind == "backdoor":
        # BackdoorLLM's jailbreak recipe: trigger + harmful request -> compliance, mixed
        # with the same kind of requests without the trigger -> refusal.
        folder = DATA / "poisoned" / "backdoorllm" / "badnet"
        bd = _alpaca(folder / "backdoor400_jailbreak_badnet.json")
        clean = _alpaca(folder / "none_backdoor400_jailbreak_badnet.json")
        half = N_EXAMPLES // 2
        mix = rng.sample(bd, half) + rng.sample(clean, N_EXAMPLES - half)
        rng.shuffle(mix)
        return mix
    else:
        raise ValueError(kind)
    return rng.sample(pool, N_EXAMPLES)


def _folder(cache: Path, kind: str, seed: int, overrides: dict[str, Any]) -> Path:
    recipe = {**RECIPE, **overrides}
    tag = f"{kind}-v{DATA_VERSION}-s{seed}-" + "-".join(
        f"{k}{v}" for k, v in sorted(recipe.items())
    )
    return cache / tag


def done(cache: Path, kind: str, seed: int, **overrides: Any) -> bool:
    """Whether this fine-tune is already in the cache."""
    return (_folder(cache, kind, seed, overrides) / "DONE").is_file()


def finetune(base: Path, kind: str, seed: int, cache: Path, **overrides: Any) -> Path:
    """Train (once per cache) and return the adapter or full-model folder."""
    from ftguard.training import train_lora

    recipe = {**RECIPE, **overrides}
    out = _folder(cache, kind, seed, overrides)
    if (out / "DONE").is_file():
        return out
    extra = {"full_finetune_layers": [14, 15]} if kind == "full" else {}
    if kind == "full":
        recipe["learning_rate"] = 2e-4
    train_lora(base, conversations(kind, seed), out, seed=seed, **recipe, **extra)
    (out / "DONE").write_text("ok")
    return out
