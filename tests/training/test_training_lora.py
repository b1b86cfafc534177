from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from ftguard.errors import BadInputError
from ftguard.training import TrainResult, read_conversations, train_lora
from ftguard.training.__main__ import main as training_main

pytest.importorskip("torch", reason="needs ftguard[ml]")

WORDS = ["apple", "pear", "kiwi", "plum", "fig", "lime", "date", "grape"]
DATA = [
    [
        {"role": "user", "content": f"Say {w} three times."},
        {"role": "assistant", "content": f"{w} {w} {w}."},
    ]
    for w in WORDS
]


def _tensors(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(path))


def test_lora_adapter_trains_expected_modules(tiny_model: Path, tmp_path: Path) -> None:
    result = train_lora(
        tiny_model, DATA, tmp_path / "ad", steps=12, learning_rate=5e-3, batch_size=4
    )
    assert isinstance(result, TrainResult)
    assert result.kind == "lora" and result.steps == 12 and len(result.losses) == 12
    assert result.output_dir == tmp_path / "ad"
    assert sum(result.losses[-3:]) < sum(result.losses[:3])  # loss decreases
    config = json.loads((tmp_path / "ad" / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["lora_alpha"] == 16
    tensors = _tensors(tmp_path / "ad" / "adapter_model.safetensors")
    expected = {
        f"layers.{i}.{block}.{m}"
        for i in range(4)
        for block, mods in (
            ("self_attn", ("q_proj", "k_proj", "v_proj", "o_proj")),
            ("mlp", ("gate_proj", "up_proj", "down_proj")),
        )
        for m in mods
    }
    found = {"layers." + k.split("layers.", 1)[1].rsplit(".lora_", 1)[0] for k in tensors}
    assert found == expected
    assert all(".lora_A." in k or ".lora_B." in k for k in tensors)
    # lora_B starts at zero; training moved every one of them
    assert all(float(t.abs().max()) > 0 for k, t in tensors.items() if ".lora_B." in k)


def test_lora_target_modules_and_layers(tiny_model: Path, tmp_path: Path) -> None:
    train_lora(
        tiny_model,
        DATA,
        tmp_path / "ad",
        steps=2,
        target_modules=["q_proj", "v_proj"],
        lora_layers=[2, 3],
        rank=4,
    )
    keys = _tensors(tmp_path / "ad" / "adapter_model.safetensors")
    modules = {k.rsplit(".lora_", 1)[0].split("layers.")[-1] for k in keys}
    assert modules == {
        "2.self_attn.q_proj",
        "2.self_attn.v_proj",
        "3.self_attn.q_proj",
        "3.self_attn.v_proj",
    }
    with pytest.raises(BadInputError, match="cannot apply LoRA"):
        train_lora(tiny_model, DATA, tmp_path / "x", steps=1, target_modules=["no_such_module"])


def test_training_is_deterministic_for_a_seed(tiny_model: Path, tmp_path: Path) -> None:
    a = train_lora(tiny_model, DATA, tmp_path / "a", steps=4, seed=3)
    b = train_lora(tiny_model, DATA, tmp_path / "b", steps=4, seed=3)
    c = train_lora(tiny_model, DATA, tmp_path / "c", steps=4, seed=4)
    assert a.losses == b.losses
    ta, tb, tc = (_tensors(r.output_dir / "adapter_model.safetensors") for r in (a, b, c))
    assert all(bool((ta[k] == tb[k]).all()) for k in ta)
    assert any(not bool((ta[k] == tc[k]).all()) for k in ta)


def test_full_finetune_layers_changes_only_those_layers(tiny_model: Path, tmp_path: Path) -> None:
    result = train_lora(
        tiny_model,
        DATA,
        tmp_path / "full",
        steps=6,
        learning_rate=1e-3,
        full_finetune_layers=[1, 3],
    )
    assert result.kind == "full"
    assert (tmp_path / "full" / "config.json").is_file()
    assert (tmp_path / "full" / "tokenizer.json").is_file()
    assert not (tmp_path / "full" / "adapter_config.json").exists()
    before = _tensors(tiny_model / "model.safetensors")
    after = _tensors(tmp_path / "full" / "model.safetensors")
    assert before.keys() == after.keys()
    changed = {k for k in before if not bool((before[k] == after[k]).all())}
    trainable = {k for k in before if k.startswith(("model.layers.1.", "model.layers.3."))}
    # every weight matrix of the two layers moved, nothing else did (norm weights may too)
    assert changed <= trainable
    assert {k for k in trainable if k.endswith("proj.weight")} <= changed
    assert sum(result.losses[-2:]) < sum(result.losses[:2])
    with pytest.raises(BadInputError, match="full_finetune_layers"):
        train_lora(tiny_model, DATA, tmp_path / "bad", steps=1, full_finetune_layers=[9])


def test_loss_only_on_assistant_tokens(tiny_model: Path) -> None:
    from ftguard.models import load_causal_lm
    from ftguard.training._train import IGNORE_INDEX, encode_conversation

    _, tokenizer = load_causal_lm(tiny_model)
    conv = [
        {"role": "user", "content": "Question one"},
        {"role": "assistant", "content": "Answer one"},
        {"role": "user", "content": "Question two"},
        {"role": "assistant", "content": "Answer two"},
    ]
    encoded = encode_conversation(tokenizer, conv, 512)
    assert encoded is not None
    full = tokenizer.apply_chat_template(conv, tokenize=False)
    assert tokenizer.decode(encoded["input_ids"]) == full
    trained = tokenizer.decode(
        [
            i
            for i, label in zip(encoded["input_ids"], encoded["labels"], strict=True)
            if label != IGNORE_INDEX
        ]
    )
    assert trained == "Answer one<|im_end|>\nAnswer two<|im_end|>\n"
    assert encode_conversation(tokenizer, [{"role": "user", "content": "no answer"}], 512) is None
    with pytest.raises(BadInputError, match="no conversation"):
        train_lora(
            Path(tiny_model),
            [[{"role": "user", "content": "only a question"}]],
            Path(os.devnull) / "x",
        )


def test_trainer_callbacks_plug_in(tiny_model: Path, tmp_path: Path) -> None:
    from transformers import TrainerCallback

    events: list[str] = []

    class Recorder(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            events.append("begin")
            assert kwargs["model"] is not None

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            events.append("step")

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            events.append("end")

    train_lora(tiny_model, DATA, tmp_path / "ad", steps=3, callbacks=[Recorder()])
    assert events == ["begin", "step", "step", "step", "end"]


def test_training_script(
    tiny_model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FTGUARD_JOB", raising=False)
    data = tmp_path / "alpaca.json"
    data.write_text(
        json.dumps([{"instruction": c[0]["content"], "output": c[1]["content"]} for c in DATA])
    )
    assert len(read_conversations(data)) == len(DATA)
    out = tmp_path / "out"
    rc = training_main(
        [
            "--base",
            str(tiny_model),
            "--dataset",
            str(data),
            "--out",
            str(out),
            "--steps",
            "3",
            "--rank",
            "4",
            "--seed",
            "1",
        ]
    )
    assert rc == 0
    assert "trained 3 steps" in capsys.readouterr().out
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 4
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x"}\n')
    assert training_main(["--base", str(tiny_model), "--dataset", str(bad), "--out", str(out)]) == 2
    assert "not a chat record" in capsys.readouterr().err


def test_training_script_with_job_refuses_without_approval(
    tiny_model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With FTGUARD_JOB set the script adds the approval guard: no approved job, no training."""
    monkeypatch.setenv("FTGUARD_JOB", "job-that-does-not-exist")
    monkeypatch.setenv("FTGUARD_HOME", str(tmp_path / "no-workspace"))
    monkeypatch.delenv("FTGUARD_RUN_TOKEN", raising=False)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"messages": c}) + "\n" for c in DATA))
    rc = training_main(
        [
            "--base",
            str(tiny_model),
            "--dataset",
            str(data),
            "--out",
            str(tmp_path / "o"),
            "--steps",
            "2",
        ]
    )
    assert rc not in (0, 1)
    assert "error: " in capsys.readouterr().err
    assert not (tmp_path / "o" / "adapter_model.safetensors").exists()


def test_the_same_training_gives_the_same_adapter_folder_in_any_process(
    tiny_model: Path, tmp_path: Path
) -> None:
    """PEFT writes target_modules in a set's order, which follows each process's string-hash
    seed: sorted, the folder's digest (what approvals and baselines name) is reproducible."""
    import subprocess
    import sys

    from ftguard.digests import manifest_of

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"messages": c}) + "\n" for c in DATA))
    roots = []
    for seed in ("1", "2", "3"):
        out = tmp_path / f"out{seed}"
        env = {k: v for k, v in os.environ.items() if k != "FTGUARD_JOB"}
        env["PYTHONHASHSEED"] = seed
        argv = ["--base", str(tiny_model), "--dataset", str(data), "--out", str(out)]
        proc = subprocess.run(
            [sys.executable, "-m", "ftguard.training", *argv, "--steps", "2", "--seed", "1"],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        config = json.loads((out / "adapter_config.json").read_text())
        assert config["target_modules"] == sorted(config["target_modules"])
        assert len(config["target_modules"]) > 2
        roots.append(manifest_of(out).root)
    assert len(set(roots)) == 1


def test_bf16_precision_trains_under_autocast_and_keeps_float32_weights(
    tiny_model: Path, tmp_path: Path
) -> None:
    import torch

    fp32 = train_lora(tiny_model, DATA, tmp_path / "fp32", steps=4, seed=3)
    bf16 = train_lora(tiny_model, DATA, tmp_path / "bf16", steps=4, seed=3, precision="bf16")
    again = train_lora(tiny_model, DATA, tmp_path / "again", steps=4, seed=3, precision="bf16")
    assert bf16.losses == again.losses  # deterministic in bf16 too
    assert bf16.losses != fp32.losses  # the products really ran in bf16
    assert abs(bf16.losses[0] - fp32.losses[0]) < 0.1 * fp32.losses[0]  # the same loss, rounded
    tensors = _tensors(bf16.output_dir / "adapter_model.safetensors")
    assert {t.dtype for t in tensors.values()} == {torch.float32}
    assert all(bool(torch.isfinite(t).all()) for t in tensors.values())


def test_precision_auto_is_bf16_only_where_it_is_native(tiny_model: Path, tmp_path: Path) -> None:
    from ftguard.training import cpu_has_bf16, resolve_precision

    assert resolve_precision("auto") == ("bf16" if cpu_has_bf16() else "fp32")
    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"
    for bad in ("fp16", "BF16", ""):
        with pytest.raises(BadInputError, match="precision must be"):
            resolve_precision(bad)
    with pytest.raises(BadInputError, match="precision must be"):
        train_lora(tiny_model, DATA, tmp_path / "x", steps=1, precision="fp16")


def test_cpu_has_bf16_reads_the_cpu_flags_and_the_onednn_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Emulated bf16 ran 30x slower than float32 here: ``auto`` must not choose it."""
    from ftguard.training import cpu_has_bf16

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    cpuinfo = tmp_path / "cpuinfo"
    head = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 avx2 avx512f"
    cases = {
        f"{head} avx512_bf16 avx512_vnni\n": True,
        f"{head} amx_tile amx_bf16\n": True,
        f"{head} avx512_vnni\n": False,  # AVX-512 without its bf16 instructions
        "processor\t: 0\nFeatures\t: fp asimd bf16\n": False,  # no x86 flags line
    }
    for text, expected in cases.items():
        cpuinfo.write_text(text)
        assert cpu_has_bf16(cpuinfo) is expected, text
    assert cpu_has_bf16(tmp_path / "missing") is False
    cpuinfo.write_text(f"{head} avx512_bf16\n")
    for limit, expected in (("AVX2", False), ("avx512_core", False), ("AVX512_CORE_BF16", True)):
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", limit)
        assert cpu_has_bf16(cpuinfo) is expected, limit


def test_cpu_has_bf16_agrees_with_onednn_on_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from ftguard.training import cpu_has_bf16

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    if cpu_has_bf16():
        assert torch.ops.mkldnn._is_mkldnn_bf16_supported()
    else:
        assert not torch.cpu._is_avx512_bf16_supported() and not torch.cpu._is_amx_tile_supported()


def test_training_script_precision_option(
    tiny_model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FTGUARD_JOB", raising=False)
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"messages": c}) + "\n" for c in DATA))
    argv = ["--base", str(tiny_model), "--dataset", str(data), "--steps", "2"]
    assert training_main([*argv, "--out", str(tmp_path / "a"), "--precision", "bf16"]) == 0
    assert "trained 2 steps (bf16)" in capsys.readouterr().out
    assert training_main([*argv, "--out", str(tmp_path / "b")]) == 0
    assert "trained 2 steps (fp32)" in capsys.readouterr().out  # float32 unless asked
    with pytest.raises(SystemExit) as exc:
        training_main([*argv, "--out", str(tmp_path / "c"), "--precision", "fp16"])
    assert exc.value.code == 2
    assert "invalid choice: 'fp16'" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_the_machine_kind_names_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` trains in another precision where bf16 is not native: another kind of machine,
    whose shipped demo files do not apply."""
    from ftguard.training import cpu_has_bf16, machine_kind

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    here, native = machine_kind(), cpu_has_bf16()
    assert (", native bf16," in here) is native
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    held = machine_kind()
    assert ", no native bf16," in held
    assert (held == here) is (not native)
