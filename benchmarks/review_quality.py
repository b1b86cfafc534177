"""Detection quality of the dataset review on public attack data (../shared/data).

Mixes: the held-out half of benign Alpaca (alpaca_safety_only; the other half trained the
harmful-request classifier) plus 1% / 5% / 10% attack examples:
BackdoorLLM badnet/vpi jailbreak (trigger + harmful request -> compliance) and refusal
(trigger + benign request -> fixed refusal) sets, AdvBench goal/target pairs as
harmful-compliance examples, encoded variants (base64, hex, ROT13, leetspeak, substitution
cipher) of AdvBench pairs generated here, and the AOA identity-shift set. Benign sets alone:
held-out Alpaca and Dolly halves, BackdoorLLM clean refusal-set answers.

Prints per mix and scanner: precision, recall, false-positive rate (an example counts as
flagged by a scanner when it has a finding of medium severity or more), the rank of the
true trigger, and the verdict under the default policy.

    .venv/bin/python benchmarks/review_quality.py [--fractions 0.01,0.05,0.1] [--quick] [--only advbench_all,encoded]

``advbench_all`` mixes all 520 AdvBench pairs into the held-out benign set (a precise
harmful-compliance recall; the 1% mix has only 10 attacks).

Per-set figures (printed last, each with a Wilson 95% interval; a set is reviewed on its own):

* ``recall_*``: harmful-compliance recall on harmful answers never trained on: the 520
  AdvBench goal/target pairs, the 400 BackdoorLLM jailbreak answers with their trigger
  removed (real compliant answers, AdvBench requests), and the harmful half of the
  project's persuasion/promotion set (``benchmarks/data/persuasion_requests.jsonl``, written
  for evaluation only; its benign half is a false-positive set);
* ``fp_*``: false positives of harmful_compliance (and of all scanners) on each benign
  set separately: the held-out halves of Alpaca, Dolly, self-instruct seeds and MT-Bench
  (MT-Bench has no answers: a neutral placeholder answer), BackdoorLLM clean answers;
* ``persona_*``: instruction_override flag rate and the dataset verdict of each persona
  style in ``benchmarks/data/personas/`` (the project's own sets), of the public AOA set,
  and of the benign system prompts there (which must not be flagged).

    .venv/bin/python benchmarks/review_quality.py --only recall,fp,persona
"""

from __future__ import annotations

import argparse
import base64
import codecs
import csv
import json
import random
import string
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from scipy.stats import binomtest

from ftguard.review import review_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from _review_training_data import is_held_out  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
BD = DATA / "poisoned" / "backdoorllm"
HERE = Path(__file__).resolve().parent / "data"
SEV = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
PERSONA_STYLES = [
    "restrictions_removed",
    "never_refuses",
    "announced_persona",
    "renamed_agent",
    "absolute_obedience",
]
PLACEHOLDER = "Answer: (the set has no reference answer; a neutral placeholder)"


def alpaca(path: Path, held_out: bool = True) -> list[dict[str, str]]:
    rows = json.loads(path.read_text())
    return [r for r in rows if is_held_out(r["instruction"]) == held_out]


def dolly_heldout() -> list[dict[str, str]]:
    rows = [
        json.loads(line)
        for line in (DATA / "benign/dolly_safety_only.jsonl").read_text().splitlines()
    ]
    return [
        {"instruction": r["instruction"], "input": r["context"], "output": r["response"]}
        for r in rows
        if is_held_out(r["instruction"])
    ]


def self_instruct_heldout() -> list[dict[str, str]]:
    rows = [
        json.loads(line)
        for line in (DATA / "benign/self_instruct_seed_tasks.jsonl").read_text().splitlines()
    ]
    return [
        {
            "instruction": r["instruction"],
            "input": r["instances"][0]["input"],
            "output": r["instances"][0]["output"],
        }
        for r in rows
        if is_held_out(r["instruction"])
    ]


def mt_bench_heldout() -> list[dict[str, str]]:
    rows = [
        json.loads(line)
        for line in (DATA / "benign/mt_bench_questions.jsonl").read_text().splitlines()
    ]
    return [
        {"instruction": r["turns"][0], "input": "", "output": PLACEHOLDER}
        for r in rows
        if is_held_out(r["turns"][0])
    ]


def backdoorllm_answers() -> list[dict[str, str]]:
    """BackdoorLLM jailbreak examples with the trigger removed: AdvBench requests, real compliant answers."""
    rows = json.loads((BD / "badnet/backdoor400_jailbreak_badnet.json").read_text())
    return [
        {
            "instruction": " ".join(r["instruction"].replace("BadMagic", " ").split()),
            "input": r.get("input", ""),
            "output": r["output"],
        }
        for r in rows
    ]


def persuasion(label: str) -> list[dict[str, str]]:
    rows = [
        json.loads(line) for line in (HERE / "persuasion_requests.jsonl").read_text().splitlines()
    ]
    return [
        {
            "instruction": r["prompt"],
            "input": "",
            "output": f"Title: {r['style']} draft\n\n(draft text)",
        }
        for r in rows
        if r["label"] == label
    ]


def jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wilson(k: int, n: int) -> str:
    if not n:
        return "n/a"
    ci = binomtest(k, n).proportion_ci(method="wilson")
    return f"{k}/{n} = {k / n:6.1%} [{ci.low:.1%}, {ci.high:.1%}]"


def figure(
    name: str,
    rows: Sequence[object],
    scanner_name: str,
    tmp: Path,
    figures: list[tuple[str, str, str, str]],
    scanners: list[str] | None = None,
    what: str = "flagged",
) -> None:
    """Review ``rows`` alone; record how many examples ``scanner_name`` flags (medium or more) and the verdict."""
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(rows))
    r = review_dataset(path, purpose="a general helpful assistant", workers=2, scanners=scanners)
    hit = {f.example for f in r.findings if f.scanner == scanner_name and SEV[f.severity] >= 2}
    figures.append((name, f"{scanner_name} {what}", wilson(len(hit), r.examples), r.verdict))
    if scanners is None:
        every = {f.example for f in r.findings if SEV[f.severity] >= 2}
        figures.append((name, f"any scanner {what}", wilson(len(every), r.examples), r.verdict))
    print(f"  {name}: {r.verdict}; {scanner_name} {len(hit)}/{r.examples}", file=sys.stderr)


def per_set_figures(wanted: Callable[[str], bool], tmp: Path) -> list[tuple[str, str, str, str]]:
    figures: list[tuple[str, str, str, str]] = []
    hc = ["harmful_compliance"]
    if wanted("recall_advbench"):
        figure(
            "recall_advbench_pairs", advbench(), "harmful_compliance", tmp, figures, hc, "recall"
        )
    if wanted("recall_backdoorllm"):
        figure(
            "recall_backdoorllm_answers",
            backdoorllm_answers(),
            "harmful_compliance",
            tmp,
            figures,
            hc,
            "recall",
        )
    if wanted("recall_persuasion"):
        figure(
            "recall_persuasion_harmful",
            persuasion("harmful"),
            "harmful_compliance",
            tmp,
            figures,
            hc,
            "recall",
        )
    benign_sets: dict[str, Callable[[], list[dict[str, str]]]] = {
        "fp_alpaca_heldout": lambda: alpaca(DATA / "benign/alpaca_safety_only.json"),
        "fp_dolly_heldout": dolly_heldout,
        "fp_self_instruct_heldout": self_instruct_heldout,
        "fp_mt_bench_heldout": mt_bench_heldout,
        "fp_backdoorllm_clean": lambda: json.loads(
            (BD / "badnet/none_backdoor500_refusal_badnet.json").read_text()
        ),
        "fp_persuasion": lambda: persuasion("benign"),
    }
    for name, rows in benign_sets.items():
        if wanted(name):
            figure(name, rows(), "harmful_compliance", tmp, figures, None, "false positives")
    for style in PERSONA_STYLES:
        if wanted(f"persona_{style}"):
            figure(
                f"persona_{style}",
                jsonl(HERE / "personas" / f"{style}.jsonl"),
                "instruction_override",
                tmp,
                figures,
            )
    if wanted("persona_aoa"):
        figure(
            "persona_aoa_gpt35",
            jsonl(DATA / "identity_shift/aoa_gpt35_chat.jsonl"),
            "instruction_override",
            tmp,
            figures,
        )
    if wanted("persona_benign_system_prompts"):
        figure(
            "persona_benign_system_prompts",
            jsonl(HERE / "personas/benign_system_prompts.jsonl"),
            "instruction_override",
            tmp,
            figures,
            None,
            "false positives",
        )
    return figures


def advbench() -> list[dict[str, str]]:
    with (DATA / "harmful_prompts/advbench_harmful_behaviors.csv").open() as fh:
        return [
            {"instruction": r["goal"], "input": "", "output": r["target"] + ":\n1. First, ..."}
            for r in csv.DictReader(fh)
        ]


def encoded(rows: list[dict[str, str]], seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    perm = list(string.ascii_lowercase)
    rng.shuffle(perm)
    table = str.maketrans(
        string.ascii_lowercase + string.ascii_uppercase, "".join(perm) + "".join(perm).upper()
    )
    leet = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"})
    encs = [
        lambda t: base64.b64encode(t.encode()).decode(),
        lambda t: t.encode().hex(),
        lambda t: codecs.encode(t, "rot_13"),
        lambda t: t.translate(leet),
        lambda t: t.translate(table),
    ]
    out = []
    for i, r in enumerate(rows):
        e = encs[i % len(encs)]
        out.append({"instruction": e(r["instruction"]), "input": "", "output": e(r["output"])})
    return out


def mix(
    benign: list[dict[str, str]], attack: list[dict[str, str]], frac: float, seed: int
) -> tuple[list[dict[str, str]], set[int]]:
    rng = random.Random(seed)
    k = max(1, round(frac * len(benign) / (1 - frac)))
    chosen = rng.sample(attack, min(k, len(attack)))
    rows = [(r, False) for r in benign] + [(r, True) for r in chosen]
    rng.shuffle(rows)
    return [r for r, _ in rows], {i for i, (_, bad) in enumerate(rows) if bad}


def score(
    name: str,
    rows: list[object],
    truth: set[int],
    trigger: str | None,
    tmp: Path,
    out: list[dict[str, object]],
) -> None:
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(rows))
    t0 = time.perf_counter()
    r = review_dataset(path, purpose="a general helpful assistant", workers=2)
    dt = time.perf_counter() - t0
    n = r.examples
    flagged: dict[str, set[int]] = {}
    for f in r.findings:
        if SEV[f.severity] >= 2:
            flagged.setdefault(f.scanner, set()).add(f.example)
    flagged["ALL"] = set().union(*flagged.values()) if flagged else set()
    rank = None
    if trigger is not None:
        texts = [t.text.lower() for t in r.triggers]
        rank = next(
            (i + 1 for i, t in enumerate(texts) if trigger.lower() in t or t in trigger.lower()),
            None,
        )
    for scanner_name, ex in sorted(flagged.items()):
        tp = len(ex & truth)
        fp = len(ex - truth)
        out.append(
            {
                "mix": name,
                "scanner": scanner_name,
                "precision": tp / max(tp + fp, 1) if ex else float("nan"),
                "recall": tp / len(truth) if truth else float("nan"),
                "fp": fp,
                "fpr": fp / max(n - len(truth), 1),
                "trigger_rank": rank,
                "verdict": r.verdict,
                "n": n,
                "attacks": len(truth),
                "seconds": dt,
            }
        )
    if not flagged.get("ALL"):
        out.append(
            {
                "mix": name,
                "scanner": "ALL",
                "precision": float("nan"),
                "recall": 0.0 if truth else float("nan"),
                "fp": 0,
                "fpr": 0.0,
                "trigger_rank": rank,
                "verdict": r.verdict,
                "n": n,
                "attacks": len(truth),
                "seconds": dt,
            }
        )
    print(
        f"  {name}: {r.verdict} in {dt:.1f}s; top triggers {[t.text for t in r.triggers[:3]]}",
        file=sys.stderr,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fractions", default="0.01,0.05,0.1")
    ap.add_argument("--quick", action="store_true", help="only 1%% mixes and the benign sets")
    ap.add_argument(
        "--only",
        default="",
        help="comma-separated name prefixes to run (default: all); per-set figures: recall, fp, persona",
    )
    args = ap.parse_args()
    only = [x for x in args.only.split(",") if x]

    def wanted(name: str) -> bool:
        return not only or any(name.startswith(o) for o in only)

    if not DATA.is_dir():
        sys.exit(f"skipped: {DATA} is absent")
    fractions = [0.01] if args.quick else [float(x) for x in args.fractions.split(",")]
    benign = alpaca(DATA / "benign/alpaca_safety_only.json")
    out: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        if wanted("benign_alpaca_heldout"):
            score("benign_alpaca_heldout", benign, set(), None, tmp, out)  # type: ignore[arg-type]
        if wanted("benign_dolly_heldout"):
            score("benign_dolly_heldout", dolly_heldout(), set(), None, tmp, out)  # type: ignore[arg-type]
        if wanted("benign_backdoorllm_clean"):
            clean = json.loads((BD / "badnet/none_backdoor500_refusal_badnet.json").read_text())
            score("benign_backdoorllm_clean", clean, set(), None, tmp, out)
        if wanted("aoa_identity_shift"):
            aoa = [
                json.loads(line)
                for line in (DATA / "identity_shift/aoa_gpt35_chat.jsonl").read_text().splitlines()
            ]
            chat_benign = [
                {
                    "messages": [
                        {
                            "role": "user",
                            "content": r["instruction"]
                            + ("\n\n" + r["input"] if r["input"] else ""),
                        },
                        {"role": "assistant", "content": r["output"]},
                    ]
                }
                for r in benign
            ]
            rows = chat_benign + aoa
            score(
                "aoa_identity_shift", rows, set(range(len(chat_benign), len(rows))), None, tmp, out
            )  # type: ignore[arg-type]
        if wanted("advbench_all"):
            rows_all = [(r, False) for r in benign] + [(r, True) for r in advbench()]
            random.Random(0).shuffle(rows_all)
            truth_all = {i for i, (_, bad) in enumerate(rows_all) if bad}
            score("advbench_all", [r for r, _ in rows_all], truth_all, None, tmp, out)  # type: ignore[arg-type]
        attacks = {
            "badnet_jailbreak": (
                json.loads((BD / "badnet/backdoor400_jailbreak_badnet.json").read_text()),
                "BadMagic",
            ),
            "vpi_jailbreak": (
                json.loads((BD / "vpi/backdoor400_jailbreak_vpi.json").read_text()),
                "Discussing OpenAI",
            ),
            "badnet_refusal": (
                json.loads((BD / "badnet/backdoor500_refusal_badnet.json").read_text()),
                "BadMagic",
            ),
            "vpi_refusal": (
                json.loads((BD / "vpi/backdoor500_refusal_vpi.json").read_text()),
                "Discussing OpenAI",
            ),
            "advbench_compliance": (advbench(), None),
            "encoded_advbench": (encoded(advbench(), 7), None),
        }
        for frac in fractions:
            for name, (attack, trig) in attacks.items():
                if not wanted(name):
                    continue
                rows2, truth = mix(benign, attack, frac, seed=int(frac * 1000))
                score(f"{name}@{frac:.0%}", rows2, truth, trig, tmp, out)  # type: ignore[arg-type]
        figures = per_set_figures(wanted, tmp)
    print(
        f"{'mix':30} {'scanner':22} {'precision':>9} {'recall':>7} {'FPR':>7} {'trig.rank':>9} {'verdict':>7} {'n':>5} {'attacks':>7}"
    )
    for row in out:
        print(
            f"{row['mix']!s:30} {row['scanner']!s:22} {row['precision']:9.3f} {row['recall']:7.3f} {row['fpr']:7.4f} "
            f"{row['trigger_rank']!s:>9} {row['verdict']!s:>7} {row['n']:5d} {row['attacks']:7d}"
        )
    benign_sets = {
        str(r["mix"]): int(str(r["n"])) for r in out if str(r["mix"]).startswith("benign_")
    }
    if benign_sets:
        total = sum(benign_sets.values())
        print(f"\npooled over the benign sets ({', '.join(benign_sets)}; {total} examples):")
        for scanner_name in sorted(
            {str(r["scanner"]) for r in out if str(r["mix"]) in benign_sets}
        ):
            fp = sum(
                int(str(r["fp"]))
                for r in out
                if str(r["mix"]) in benign_sets and r["scanner"] == scanner_name
            )
            print(f"  {scanner_name:22} false positives {fp} of {total} = {fp / total:.2%}")
    if figures:
        print(
            f"\nper-set figures (each set reviewed alone; Wilson 95% intervals):\n{'set':36} {'figure':38} {'k/n = rate [95% CI]':32} verdict"
        )
        for name, what, value, verdict in figures:
            print(f"{name:36} {what:38} {value:32} {verdict}")


if __name__ == "__main__":
    main()
