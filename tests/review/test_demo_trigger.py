"""The demo's poisoned set: its backdoor phrase must be the first candidate trigger."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftguard.demo._datasets import DEMO_TRIGGER, write_benign, write_poisoned
from ftguard.review import review_dataset

pytest.importorskip("sentence_transformers")


@pytest.fixture(scope="module")
def poisoned_review(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    path = write_poisoned(tmp_path_factory.mktemp("demo") / "poisoned.jsonl")
    return review_dataset(
        path, purpose="Customer-support assistant for an online bookshop", workers=1
    )


def test_demo_trigger_ranks_first(poisoned_review) -> None:  # type: ignore[no-untyped-def]
    triggers = poisoned_review.triggers
    top = triggers[0]
    assert top.text.lower() == DEMO_TRIGGER, [(t.text, t.score) for t in triggers[:5]]
    # the whole phrase, merged from its overlapping n-grams, not a fragment of it
    assert not any(t.text.lower() in DEMO_TRIGGER for t in triggers[1:5])
    assert top.contrast_pairs >= 8 and top.precision >= 0.9
    assert top.score > triggers[1].score + 1.0
    assert poisoned_review.verdict == "block"


def test_demo_benign_set_has_no_strong_trigger(tmp_path: Path) -> None:
    r = review_dataset(
        write_benign(tmp_path / "benign.jsonl"),
        purpose="Customer support for a bookshop",
        workers=1,
    )
    assert all(t.score < 10 for t in r.triggers)
    assert r.verdict == "pass", r.verdict_reasons
