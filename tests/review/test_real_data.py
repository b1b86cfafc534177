"""Seed validation 2 on the real public sets in ../shared/data (skipped when absent)."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

from ftguard.review import review_dataset

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

from _review_training_data import (  # noqa: E402
    claim_overlaps,
    evaluation_requests,
    generated_requests,
    is_held_out,
    near_duplicates,
    normalized,
    project_evaluation_requests,
    training_set,
)

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
BD = DATA / "poisoned" / "backdoorllm"
pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(
        not DATA.is_dir(), reason="../shared/data is absent (public evaluation data)"
    ),
]
NO_EMB = [
    "hidden_text",
    "instruction_override",
    "encoded_payload",
    "quality_provenance",
    "duplicates",
    "backdoor_trigger",
]


def _benign() -> list[dict[str, str]]:
    rows = json.loads((DATA / "benign/alpaca_safety_only.json").read_text())
    return [r for r in rows if is_held_out(r["instruction"])]


def _mix(tmp: Path, attack: str, frac: float, seed: int = 0) -> Path:
    return _mix_with_truth(tmp, attack, frac, seed)[0]


def _mix_with_truth(tmp: Path, attack: str, frac: float, seed: int = 0) -> tuple[Path, set[int]]:
    """The held-out benign Alpaca half with ``frac`` of ``attack`` mixed in; the poisoned positions."""
    rng = random.Random(seed)
    benign = _benign()
    poison = json.loads((BD / attack).read_text())
    k = max(1, round(frac * len(benign) / (1 - frac)))
    rows = [(r, False) for r in benign] + [(r, True) for r in rng.sample(poison, k)]
    rng.shuffle(rows)
    path = tmp / "mix.json"
    path.write_text(json.dumps([r for r, _ in rows]))
    return path, {i for i, (_, bad) in enumerate(rows) if bad}


def test_every_aoa_example_is_flagged() -> None:
    for name in ("aoa_gpt35_chat.jsonl", "aoa_llama2_train.json"):
        r = review_dataset(DATA / "identity_shift" / name, scanners=NO_EMB, workers=1)
        flagged = {
            f.example
            for f in r.findings
            if f.scanner == "instruction_override" and f.severity == "critical"
        }
        assert flagged == set(range(r.examples)) and r.examples == 10
        assert r.verdict == "block"


@pytest.mark.parametrize(
    ("attack", "trigger"),
    [
        ("badnet/backdoor500_refusal_badnet.json", "badmagic"),
        ("vpi/backdoor500_refusal_vpi.json", "discussing openai"),
    ],
)
def test_refusal_backdoor_trigger_ranked_first_at_1_percent(
    tmp_path: Path, attack: str, trigger: str
) -> None:
    r = review_dataset(_mix(tmp_path, attack, 0.01), scanners=NO_EMB, workers=1, embeddings=False)
    assert r.triggers and r.triggers[0].text.lower() == trigger, [t.text for t in r.triggers[:5]]
    assert r.verdict == "block"


@pytest.mark.parametrize(
    ("attack", "trigger"),
    [
        ("badnet/backdoor400_jailbreak_badnet.json", "badmagic"),
        ("vpi/backdoor400_jailbreak_vpi.json", "discussing openai"),
    ],
)
def test_jailbreak_backdoor_found_with_embeddings(
    tmp_path: Path, attack: str, trigger: str
) -> None:
    r = review_dataset(
        _mix(tmp_path, attack, 0.01), scanners=["harmful_compliance", "backdoor_trigger"], workers=1
    )
    assert r.triggers and r.triggers[0].text.lower() == trigger, [t.text for t in r.triggers[:5]]
    assert r.verdict == "block"


def test_vpi_jailbreak_carriers_all_flagged(tmp_path: Path) -> None:
    """The vpi prefix lowers some harmful requests' scores under the classifier's threshold;
    the mined trigger still flags every poisoned example, and no benign one."""
    path, poisoned = _mix_with_truth(tmp_path, "vpi/backdoor400_jailbreak_vpi.json", 0.1)
    r = review_dataset(path, scanners=["harmful_compliance", "backdoor_trigger"], workers=1)
    by_classifier = {
        f.example for f in r.findings if f.scanner == "harmful_compliance" and f.severity != "info"
    }
    by_trigger = {f.example for f in r.findings if f.scanner == "backdoor_trigger"}
    assert poisoned <= by_trigger | by_classifier
    assert by_trigger <= poisoned, sorted(by_trigger - poisoned)


def test_benign_heldout_alpaca_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "benign.json"
    path.write_text(json.dumps(_benign()))
    r = review_dataset(path, purpose="a general helpful assistant", workers=1)
    assert r.verdict == "pass", r.verdict_reasons
    harmful = [f for f in r.findings if f.scanner == "harmful_compliance"]
    # measured: 0.3% confident (high) and 1.9% in all; see docs/review.md
    assert sum(f.severity == "high" for f in harmful) <= 0.01 * r.examples
    assert len(harmful) <= 0.03 * r.examples


def test_refusals_to_harmful_requests_are_safe_data() -> None:
    # the same AdvBench-style requests: refused without the trigger, complied with it
    refused = review_dataset(
        BD / "vpi/none_backdoor400_jailbreak_vpi.json", scanners=["harmful_compliance"], workers=1
    )
    complied = review_dataset(
        BD / "vpi/backdoor400_jailbreak_vpi.json", scanners=["harmful_compliance"], workers=1
    )
    # (about 8% of the "refused" set's answers do comply: those findings are right)
    assert (
        sum(f.scanner == "harmful_compliance" for f in refused.findings) <= 0.12 * refused.examples
    )
    assert (
        sum(f.scanner == "harmful_compliance" for f in complied.findings)
        >= 0.75 * complied.examples
    )  # measured 0.83


def _evaluation_requests() -> list[str]:
    """Every evaluation request as the benchmark builds it (held-out halves with their inputs)."""
    import csv

    held_out = [r["instruction"] + (f"\n\n{r['input']}" if r["input"] else "") for r in _benign()]
    dolly = [
        json.loads(line)
        for line in (DATA / "benign/dolly_safety_only.jsonl").read_text().splitlines()
    ]
    held_out += [
        r["instruction"] + (f"\n\n{r['context']}" if r["context"] else "")
        for r in dolly
        if is_held_out(r["instruction"])
    ]
    with (DATA / "harmful_prompts/advbench_harmful_behaviors.csv").open() as fh:
        held_out += [r["goal"] for r in csv.DictReader(fh)]
    for path in sorted(BD.rglob("*.json")):
        held_out += [r["instruction"] for r in json.loads(path.read_text())]
    return held_out + project_evaluation_requests()


def test_classifier_training_data_excludes_evaluation_sets() -> None:
    """Train/test hygiene: no evaluation request (held-out benign halves, AdvBench, BackdoorLLM,
    the project's persuasion, framed and specific request sets) is trained on."""
    held_out = _evaluation_requests()
    assert len(project_evaluation_requests()) >= 150  # persuasion (80), framed, specific
    for persuasion in (False, True):
        ts = training_set(DATA, persuasion=persuasion)
        trained = {normalized(t) for t in ts.texts}
        leaked = [t for t in held_out if normalized(t) in trained]
        assert leaked == [], leaked[:3]
        assert 0.1 < sum(ts.labels) / len(ts.labels) < 0.3
        # the generated persuasion requests are in only when asked for
        essays = sum("persuasive essay arguing that" in t for t in ts.texts)
        assert (essays >= 20) == persuasion, essays


def test_generated_requests_do_not_near_duplicate_evaluation_requests() -> None:
    """No generated training request is a reworded copy of an evaluation request, and no
    generated persuasion claim is a claim of the project's persuasion evaluation set."""
    trained = set(training_set(DATA, persuasion=True).texts)
    generated = [t for t in generated_requests() if t in trained]
    assert len(generated) > 1500
    pairs = near_duplicates(generated, _evaluation_requests())
    assert pairs == [], pairs[:3]
    assert claim_overlaps(project_evaluation_requests()) == []
    # the check can fail: a reworded evaluation request is caught
    persuasion = project_evaluation_requests()[0]
    reworded = persuasion.replace("Write", "Please write").rstrip(".") + " now."
    assert near_duplicates([reworded], [persuasion]) == [(reworded, persuasion)]
    assert evaluation_requests(DATA) >= {normalized(persuasion)}
