from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ftguard.weights import WeightsPolicy

CONVERSATIONS = [
    [
        {"role": "user", "content": f"Name a colour number {i}."},
        {"role": "assistant", "content": f"Colour {i} is blue and green."},
    ]
    for i in range(16)
]


def test_import_does_not_pull_torch() -> None:
    code = "import sys, ftguard.integrations._drift as d; print([m for m in ('torch','transformers') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_lora_drift_is_recorded_every_n_steps(tiny_model: Path, tmp_path: Path) -> None:
    from transformers import TrainerCallback

    from ftguard.integrations._drift import DriftMonitor
    from ftguard.training import train_lora
    from ftguard.weights import diff

    log = tmp_path / "drift.jsonl"
    mon = DriftMonitor(every_n_steps=2, evidence_path=log)
    assert isinstance(mon, TrainerCallback) and isinstance(mon, DriftMonitor)
    res = train_lora(
        tiny_model,
        CONVERSATIONS,
        tmp_path / "ad",
        steps=6,
        rank=4,
        alpha=8,
        max_length=96,
        callbacks=[mon],
    )
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in recs] == [2, 4, 6] and res.steps == 6
    assert all(r["kind"] == "weights.drift" and not r["stopped"] for r in recs)
    assert 0 < recs[0]["drift_norm"] < recs[-1]["drift_norm"]  # drift grows while training
    # the last live measurement equals the saved adapter's analysis (same factored maths)
    report = diff(tiny_model, res.output_dir)
    total = sum(t.diff_norm**2 for t in report.tensors) ** 0.5
    assert recs[-1]["drift_norm"] == pytest.approx(total, rel=1e-3)


@pytest.mark.slow
def test_limit_stops_training_with_a_reason(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ftguard.integrations._drift import DriftMonitor
    from ftguard.training import train_lora

    pol = tmp_path / "policy.yaml"
    pol.write_text("version: 1\nweights:\n  max_drift_relative: 0.000001\n")
    log = tmp_path / "d.jsonl"
    monkeypatch.setenv("FTGUARD_JOB", "job-123")
    monkeypatch.setenv("FTGUARD_DRIFT_LOG", str(log))
    monkeypatch.setenv("FTGUARD_POLICY", str(pol))
    mon = DriftMonitor.from_env()
    assert mon.policy.max_drift_relative == 1e-6 and mon.job == "job-123"
    mon.every_n_steps = 1
    res = train_lora(
        tiny_model, CONVERSATIONS, tmp_path / "ad", steps=8, rank=4, max_length=96, callbacks=[mon]
    )
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    assert recs[0]["stopped"] and recs[0]["job"] == "job-123"
    assert "drifted" in recs[0]["reason"] and "limit 1e-06" in recs[0]["reason"]
    assert mon.stop_reason == recs[0]["reason"]
    assert len(res.losses) < 8  # the Trainer stopped early


@pytest.mark.slow
def test_full_finetune_drift(tiny_model: Path, tmp_path: Path) -> None:
    from ftguard.integrations._drift import DriftMonitor
    from ftguard.training import train_lora

    mon = DriftMonitor(WeightsPolicy(max_drift_relative=10.0), every_n_steps=3)
    train_lora(
        tiny_model,
        CONVERSATIONS,
        tmp_path / "full",
        steps=3,
        max_length=96,
        full_finetune_layers=[1],
        callbacks=[mon],
    )
    assert len(mon.records) == 1 and mon.records[0]["parameters"] > 0
    assert all(".layers.1." in t["name"] for t in mon.records[0]["top"])
    assert mon.records[0]["relative_drift"] > 0 and mon.stop_reason is None


def test_measure_matches_materialised_update(tmp_path: Path) -> None:
    """No Trainer: a tiny PEFT model, its LoRA factors moved by hand, measured against B·A."""
    torch = pytest.importorskip("torch", reason="needs ftguard[ml]")
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from ftguard.integrations._drift import DriftMonitor

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
    )
    model = get_peft_model(
        LlamaForCausalLM(cfg), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    )
    mon = DriftMonitor(
        WeightsPolicy(max_drift_relative=0.5), every_n_steps=1, evidence_path=tmp_path / "d.jsonl"
    )
    mon.snapshot(model)
    assert len(mon._lora) == 4 and not mon._full  # only the LoRA factors are trainable
    assert mon.measure(0)["drift_norm"] == 0.0
    expected = 0.0
    with torch.no_grad():
        for _, mod in model.named_modules():
            if hasattr(mod, "lora_B") and hasattr(mod.lora_B, "keys"):
                mod.lora_B["default"].weight.normal_(0, 0.002)
                dw = (
                    mod.scaling["default"]
                    * mod.lora_B["default"].weight
                    @ mod.lora_A["default"].weight
                )
                expected += float((dw.double() ** 2).sum())
    rec = mon.measure(1)
    assert rec["drift_norm"] == pytest.approx(expected**0.5, rel=1e-4)
    assert not rec["stopped"]
    with torch.no_grad():
        model.base_model.model.model.layers[1].self_attn.q_proj.lora_B["default"].weight.mul_(200)
    rec = mon.measure(2)
    assert (
        rec["stopped"]
        and "layers.1.self_attn.q_proj" in rec["reason"]
        and "limit 0.5" in rec["reason"]
    )
    lines = (tmp_path / "d.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[-1])["stopped"]
