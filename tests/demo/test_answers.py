"""The base model's answers shipped for the first demo: pinned, refused when changed, real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftguard.demo import REFERENCE_ANSWERS, REFERENCE_ANSWERS_FILE, seed_answers
from ftguard.digests import sha256_bytes, sha256_file
from ftguard.errors import BadInputError
from tests.demo._shipped import skip_unless_made_here


def _shipped() -> dict[str, str]:
    lines = REFERENCE_ANSWERS_FILE.read_text(encoding="utf-8").splitlines()
    return {r["p"]: r["o"] for r in map(json.loads, lines)}


def test_the_shipped_answers_are_the_pinned_file() -> None:
    assert sha256_file(REFERENCE_ANSWERS_FILE) == REFERENCE_ANSWERS["sha256"]
    lines = REFERENCE_ANSWERS_FILE.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(_shipped()) > 500  # one answer per prompt digest


def test_seeding_copies_the_file_once_and_keeps_what_is_there(tmp_path: Path) -> None:
    cache = tmp_path / "demo-outputs"
    assert seed_answers(cache) is True
    target = cache / "outputs" / REFERENCE_ANSWERS["cache_name"]
    assert target.read_bytes() == REFERENCE_ANSWERS_FILE.read_bytes()
    target.write_text(target.read_text() + '{"p": "x", "o": "a later answer"}\n')
    assert seed_answers(cache) is False  # an earlier run's file is never replaced
    assert target.read_text().endswith('"a later answer"}\n')
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary left


def test_a_changed_answers_file_is_refused_and_nothing_is_seeded(tmp_path: Path) -> None:
    forged = tmp_path / "reference_answers.jsonl"
    text = REFERENCE_ANSWERS_FILE.read_text(encoding="utf-8")
    forged.write_text(text.replace("I can't", "Sure, here is how", 1), encoding="utf-8")
    cache = tmp_path / "demo-outputs"
    with pytest.raises(BadInputError, match="refusing to use it"):
        seed_answers(cache, forged)
    assert list((cache / "outputs").iterdir()) == []
    with pytest.raises(BadInputError, match="no reference answers"):
        seed_answers(tmp_path / "elsewhere", tmp_path / "missing.jsonl")


@pytest.mark.slow
def test_the_shipped_answers_are_what_the_aligned_model_generates(aligned_model: Path) -> None:
    """The file's cache name is the aligned model's (its digest at the demo's settings), and
    its answers to the demo's 50 safety prompts are what the model trained here generates."""
    from ftguard.behavior import TransformersBackend, output_cache_name
    from ftguard.behavior._runner import resolve_suite
    from ftguard.demo import DemoSettings

    skip_unless_made_here(REFERENCE_ANSWERS)  # elsewhere the reference model trains to other bytes
    settings = DemoSettings.choose(fast=False)
    backend = TransformersBackend(aligned_model, max_new_tokens=settings.max_new_tokens)
    assert output_cache_name(backend) == REFERENCE_ANSWERS["cache_name"]
    assert isinstance(settings.eval_limit, dict)
    suite = resolve_suite("safety", triggers=None, limit=settings.eval_limit["safety"])
    prompts = [p.prompt for p in suite.prompts]
    shipped = _shipped()
    assert len(prompts) == 50 and all(sha256_bytes(p.encode()) in shipped for p in prompts)
    assert backend.generate(prompts) == [shipped[sha256_bytes(p.encode())] for p in prompts]
