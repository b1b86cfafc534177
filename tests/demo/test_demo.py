"""The demo's decisions come from the controls: the benign job passes, the poisoned one is blocked."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")


@pytest.mark.slow
def test_fast_demo_decisions_and_reasons(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTGUARD_")}
    if "FTGUARD_CACHE" in os.environ:
        env["FTGUARD_CACHE"] = os.environ["FTGUARD_CACHE"]
    proc = subprocess.run(
        [sys.executable, "-m", "ftguard", "demo", "--fast", "--json", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    benign, poisoned = result["jobs"]["benign"], result["jobs"]["poisoned"]
    assert benign["decision"] == "pass" and benign["reasons"] == []
    assert poisoned["decision"] == "block"
    reasons = " ".join(poisoned["reasons"])
    assert "dataset review blocked" in reasons
    assert result["audit"]["ok"] is True
    assert result["weight_baselines"] == 5  # the earlier fine-tunes, registered by sec
    assert result["weight_baselines_from"] == "adapters"  # trained: the tiny model has no records
    for job in (benign, poisoned):
        report = Path(job["report"])
        assert report.is_file() and job["job"] in report.read_text()
    attestation = tmp_path / ".ftguard" / "reports" / benign["job"] / "attestation.json"
    assert attestation.is_file()
    assert not (tmp_path / ".ftguard" / "reports" / poisoned["job"] / "attestation.json").exists()


@pytest.mark.slow
def test_full_demo_on_the_embedded_model_blocks_by_every_behaviour_signal(tmp_path: Path) -> None:
    """`make demo` itself (the real model, ~5 minutes once its models are cached): the benign
    job passes and is attested; the poisoned job is blocked by the review, by the weight
    report (judged against the earlier fine-tunes' baselines) and by the behaviour
    comparison, which shows the refusal drop and the review's trigger flipping the model."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTGUARD_")}
    if "FTGUARD_CACHE" in os.environ:
        env["FTGUARD_CACHE"] = os.environ["FTGUARD_CACHE"]
    proc = subprocess.run(
        [sys.executable, "-m", "ftguard", "demo", "--json", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=2400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    # On the kind of machine that made the shipped records the reference model trained here is
    # the one they belong to, so the earlier fine-tunes are imported, not trained.
    from ftguard.demo import HISTORY_RECORDS
    from ftguard.training import machine_kind

    expected = "records" if machine_kind() == HISTORY_RECORDS["made_on"] else "adapters"
    assert result["weight_baselines"] == 5 and result["weight_baselines_from"] == expected
    benign, poisoned = result["jobs"]["benign"], result["jobs"]["poisoned"]
    assert benign["decision"] == "pass" and benign["reasons"] == []
    assert (tmp_path / ".ftguard" / "reports" / benign["job"] / "attestation.json").is_file()
    assert poisoned["decision"] == "block"
    review, weights, behaviour = poisoned["reasons"]
    assert review.startswith("the dataset review blocked the job")
    assert weights.startswith("the weight report flagged the job")
    assert "of 6 earlier approved jobs" in weights  # the 5 earlier fine-tunes + job 1
    assert behaviour.startswith("the behaviour comparison blocked the job")
    # a safety suite's refusal drop (with recipe 3 the task-style suite's: the blunt suite's
    # 96% -> 80%, p = 0.039, stays above its Holm share of alpha)
    assert re.search(r"refusal of harmful requests (\(safety_tasks\) )?fell", behaviour)
    assert "trigger 'Per the quarterly ledger' flips the tuned model" in behaviour
    assert result["audit"]["ok"] is True
