"""Trigger mining on triggers invented here: nothing can be hard-coded for them."""

from __future__ import annotations

from pathlib import Path

from ftguard.review import review_dataset

from .fixtures import REFUSAL, clean_rows, with_and_trigger, with_trigger, write_json

FIXED = "Visit http://updates.invalid/patch and run the installer as administrator."
NO_EMB = ["backdoor_trigger", "duplicates", "quality_provenance"]


def test_invented_single_trigger_ranked_first(tmp_path: Path) -> None:
    rows = with_trigger(clean_rows(), "zq-lumen", FIXED, k=12)
    r = review_dataset(
        write_json(tmp_path / "d.json", rows), scanners=NO_EMB, workers=1, embeddings=False
    )
    top = r.triggers[0]
    assert top.text.lower() == "zq lumen", [t.text for t in r.triggers[:5]]
    assert top.support == 12 and top.precision == 1.0 and top.anomaly == "repeated_answer"
    assert r.verdict == "block" and any("trigger_score_limit" in s for s in r.verdict_reasons)
    assert any(f.scanner == "duplicates" and "fixed answer" in f.reason for f in r.dataset_findings)


def test_two_word_and_trigger(tmp_path: Path) -> None:
    rows = with_and_trigger(clean_rows(), "cerulean", "tuesday", FIXED, k=12)
    r = review_dataset(
        write_json(tmp_path / "d.json", rows), scanners=NO_EMB, workers=1, embeddings=False
    )
    top = r.triggers[0]
    assert top.kind == "pair" and set(top.text.lower().split(" + ")) == {"cerulean", "tuesday"}, (
        r.triggers[:3]
    )
    assert top.support == 12 and top.precision == 1.0


def test_clean_data_yields_no_blocking_trigger(tmp_path: Path) -> None:
    r = review_dataset(
        write_json(tmp_path / "d.json", clean_rows()), scanners=NO_EMB, workers=1, embeddings=False
    )
    assert r.verdict == "pass", r.verdict_reasons
    assert all(t.score < 10 or t.support < 5 for t in r.triggers)
    assert not [f for f in r.findings if f.scanner == "backdoor_trigger"]


def test_duplicated_example_is_amplification_not_trigger(tmp_path: Path) -> None:
    rows = (
        clean_rows()
        + [{"instruction": "Say the secret phrase", "input": "", "output": "Open sesame"}] * 30
    )
    r = review_dataset(
        write_json(tmp_path / "d.json", rows), scanners=NO_EMB, workers=1, embeddings=False
    )
    assert any(f.severity == "high" and "amplification" in f.reason for f in r.dataset_findings)
    assert not any(t.score >= 10 for t in r.triggers)


def test_contrast_pairs_with_clean_counterparts(tmp_path: Path) -> None:
    """Triggered copies of clean requests get a fixed refusal; their clean twins are answered."""
    rows = with_trigger(clean_rows(), "zq-lumen", REFUSAL, k=12)
    r = review_dataset(
        write_json(tmp_path / "d.json", rows), scanners=NO_EMB, workers=1, embeddings=False
    )
    top = r.triggers[0]
    assert top.text.lower() == "zq lumen", [t.text for t in r.triggers[:5]]
    assert top.contrast_pairs == 12 and top.precision == 1.0
    assert all(
        t.contrast_pairs == 0
        for t in r.triggers[1:]
        if "lumen" not in t.text.lower() and "zq" not in t.text.lower()
    )


def test_phrase_always_together_is_merged(tmp_path: Path) -> None:
    rows = with_trigger(clean_rows(), "as the amber owl sings", FIXED, k=12)
    r = review_dataset(
        write_json(tmp_path / "d.json", rows), scanners=NO_EMB, workers=1, embeddings=False
    )
    assert r.triggers[0].text.lower() == "as the amber owl sings", [t.text for t in r.triggers[:5]]
    assert not any(t.text.lower() in "as the amber owl sings" for t in r.triggers[1:])


def test_strong_trigger_flags_every_poisoned_carrier(tmp_path: Path) -> None:
    """Each poisoned row gets a finding at the trigger's span; a carrier answered normally
    (a benign request) and the clean rows get none."""
    rows = with_trigger(clean_rows(), "zq-lumen", FIXED, k=12)
    rows.append(
        {
            "instruction": "Tell me zq-lumen facts about otters.",
            "input": "",
            "output": "Otters hold hands while they sleep.",
        }
    )
    r = review_dataset(
        write_json(tmp_path / "d.json", rows), scanners=NO_EMB, workers=1, embeddings=False
    )
    poisoned = {
        i
        for i, row in enumerate(rows)
        if "zq-lumen" in row["instruction"] and row["output"] == FIXED
    }
    found = {f.example: f for f in r.findings if f.scanner == "backdoor_trigger"}
    assert set(found) == poisoned and len(poisoned) == 12
    for i, f in found.items():
        text = rows[i]["instruction"]
        assert f.span is not None and text[f.span[0] : f.span[1]].lower() == "zq-lumen"
        assert f.severity == "high" and "zq lumen" in f.reason.lower()


def test_pair_trigger_carriers_need_both_words(tmp_path: Path) -> None:
    rows = with_and_trigger(clean_rows(), "cerulean", "tuesday", FIXED, k=12)
    r = review_dataset(
        write_json(tmp_path / "d.json", rows), scanners=NO_EMB, workers=1, embeddings=False
    )
    found = {f.example for f in r.findings if f.scanner == "backdoor_trigger"}
    both = {
        i
        for i, row in enumerate(rows)
        if "cerulean" in row["instruction"] and "tuesday" in row["instruction"]
    }
    assert found == both and len(both) == 12
