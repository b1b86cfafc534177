"""The base model's answers a clone ships for the first demo: pinned, refused when changed, real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ftguard.demo._prebuilt import ANSWERS_FOLDER, PREBUILT_ANSWERS, seed_answers
from ftguard.digests import sha256_bytes, sha256_file
from ftguard.errors import BadInputError

PREBUILT = Path(__file__).resolve().parents[2] / "prebuilt" / "reference-aligned"
SHIPPED = PREBUILT / ANSWERS_FOLDER / PREBUILT_ANSWERS["file"]


def test_the_shipped_answers_are_the_pinned_file() -> None:
    assert sha256_file(SHIPPED) == PREBUILT_ANSWERS["sha256"]
    rows = [json.loads(line) for line in SHIPPED.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len({r["p"] for r in rows}) > 500  # one answer per prompt digest


def test_seeding_copies_the_file_once_and_keeps_what_is_there(tmp_path: Path) -> None:
    cache = tmp_path / "demo-outputs"
    assert seed_answers(cache, PREBUILT) is True
    target = cache / "outputs" / PREBUILT_ANSWERS["file"]
    assert target.read_bytes() == SHIPPED.read_bytes()
    target.write_text(target.read_text() + '{"p": "x", "o": "a later answer"}\n')
    assert seed_answers(cache, PREBUILT) is False  # an earlier run's file is never replaced
    assert target.read_text().endswith('"a later answer"}\n')
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary left


def test_a_changed_answers_file_is_refused_and_nothing_is_seeded(tmp_path: Path) -> None:
    forged = tmp_path / "prebuilt" / ANSWERS_FOLDER
    forged.mkdir(parents=True)
    text = SHIPPED.read_text(encoding="utf-8").replace("I can't", "Sure, here is how", 1)
    (forged / PREBUILT_ANSWERS["file"]).write_text(text, encoding="utf-8")
    cache = tmp_path / "demo-outputs"
    with pytest.raises(BadInputError, match="refusing to use it"):
        seed_answers(cache, forged.parent)
    assert list((cache / "outputs").iterdir()) == []
    with pytest.raises(BadInputError, match="no prebuilt answers"):
        seed_answers(tmp_path / "elsewhere", tmp_path / "missing")


@pytest.mark.slow
def test_the_shipped_answers_are_what_the_aligned_model_generates(aligned_model: Path) -> None:
    """The file's name is the aligned model's output cache at the demo's settings, and its
    answers to the demo's 50 safety prompts are what the model generates now."""
    from ftguard.behavior import TransformersBackend, output_cache_name
    from ftguard.behavior._runner import resolve_suite
    from ftguard.demo import DemoSettings

    settings = DemoSettings.choose(fast=False)
    backend = TransformersBackend(aligned_model, max_new_tokens=settings.max_new_tokens)
    assert output_cache_name(backend) == PREBUILT_ANSWERS["file"]
    assert isinstance(settings.eval_limit, dict)
    suite = resolve_suite("safety", triggers=None, limit=settings.eval_limit["safety"])
    prompts = [p.prompt for p in suite.prompts]
    shipped = {
        r["p"]: r["o"] for r in map(json.loads, SHIPPED.read_text(encoding="utf-8").splitlines())
    }
    assert len(prompts) == 50 and all(sha256_bytes(p.encode()) in shipped for p in prompts)
    generated = backend.generate(prompts)
    assert generated == [shipped[sha256_bytes(p.encode())] for p in prompts]


def test_the_demo_exits_2_on_a_changed_adapter_and_builds_nothing(
    tmp_path: Path, embedded_model: Path
) -> None:
    """`ftguard demo --prebuilt DIR` with a forged adapter: one clear error, exit 2."""
    from ftguard.models import cache_root

    forged = tmp_path / "forged"
    forged.mkdir()
    data = bytearray((PREBUILT / "adapter_model.safetensors").read_bytes())
    data[100_000] ^= 1
    (forged / "adapter_model.safetensors").write_bytes(bytes(data))
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    converted = embedded_model.parent.name  # linked, not converted again
    (cache / "models" / converted).symlink_to(cache_root() / "models" / converted)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTGUARD_")}
    env["FTGUARD_CACHE"] = str(cache)
    proc = subprocess.run(
        [sys.executable, "-m", "ftguard", "demo", "--workdir", str(tmp_path / "demo")]
        + ["--prebuilt", str(forged)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "refusing to use it" in proc.stdout + proc.stderr
    assert sorted(p.name for p in (cache / "models").iterdir()) == [converted]
    assert not (cache / "demo-outputs" / "outputs").exists()
