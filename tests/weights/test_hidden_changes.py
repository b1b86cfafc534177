"""Changes PEFT and transformers load that the weight report must not take for "no change".

Review of 2026-12-08: each of these passed with no flag, while the model that is served
differs. Adapters are saved by PEFT itself from a tiny Llama with tied embeddings (as the
embedded SmolLM2), so their keys and configs are the real ones.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from ftguard.errors import BadInputError
from ftguard.weights import diff

pytest.importorskip("peft")
torch = pytest.importorskip("torch")


def _adapter(base: Path, out: Path, tweak: str | None = None, **config: Any) -> Path:
    """A small LoRA on q_proj/v_proj (plus ``config``), saved by PEFT; ``tweak`` edits it."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    options = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"], **config}
    peft_model = get_peft_model(model, LoraConfig(**options))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name and name.endswith("weight"):
                p.copy_(torch.randn_like(p) * 1e-4)
            elif tweak == "head" and "lm_head" in name and "modules_to_save" in name:
                p.copy_(p[torch.randperm(p.shape[0])])  # another output head
            elif tweak == "bias" and name.endswith("lora_B.default.bias"):
                p.fill_(0.5)
            elif tweak == "tokens" and "trainable_tokens_delta" in name:
                p.copy_(torch.randn_like(p))
    peft_model.save_pretrained(out)
    return out


def _with_own_head(tied: Path, folder: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A copy of a tied model that stores its own output head (the embedding's rows reversed)."""
    shutil.copytree(tied, folder)
    tensors = load_file(str(folder / "model.safetensors"))
    tensors["lm_head.weight"] = np.ascontiguousarray(tensors["model.embed_tokens.weight"][::-1])
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder, tensors


def test_a_benign_peft_adapter_still_passes(tiny_model: Path, tmp_path: Path) -> None:
    report = diff(tiny_model, _adapter(tiny_model, tmp_path / "benign"), workers=1)
    assert report.verdict == "pass" and report.tensors_changed > 0


def test_an_output_head_saved_by_the_adapter_is_diffed_against_the_tied_embedding(
    tiny_model: Path, tmp_path: Path
) -> None:
    report = diff(
        tiny_model,
        _adapter(tiny_model, tmp_path / "head", "head", modules_to_save=["lm_head"]),
        workers=1,
    )
    head = next(t for t in report.tensors if t.name.endswith("lm_head.weight"))
    assert head.source == "modules_to_save" and (head.relative_change or 0) > 0.5
    assert report.verdict == "flag"
    assert any("lm_head" in (f.tensor or f.reason) for f in report.flags), report.flags


@pytest.mark.parametrize(
    ("config", "tweak", "refused"),
    [
        ({"lora_bias": True}, "bias", "lora_bias"),
        ({"trainable_token_indices": {"embed_tokens": [5, 6, 7]}}, "tokens", "trainable_token"),
    ],
)
def test_adapter_options_the_report_does_not_read_are_refused(
    tiny_model: Path, tmp_path: Path, config: dict[str, Any], tweak: str, refused: str
) -> None:
    adapter = _adapter(tiny_model, tmp_path / "a", tweak, **config)
    with pytest.raises(BadInputError, match=refused):
        diff(tiny_model, adapter, workers=1)
    # and with the option taken out of the config, the bias key itself is refused
    if tweak == "bias":
        cfg = json.loads((adapter / "adapter_config.json").read_text())
        cfg["lora_bias"] = False
        (adapter / "adapter_config.json").write_text(json.dumps(cfg))
        with pytest.raises(BadInputError, match="not a LoRA pair's weight"):
            diff(tiny_model, adapter, workers=1)


@pytest.mark.parametrize(
    "pattern",
    [
        {"layers": 0.0016},  # a substring, not a module name: PEFT does not apply it
        {"q_proj": 8, "self_attn.q_proj": 0.0016},  # PEFT applies the first match, not the last
    ],
)
def test_alpha_pattern_is_resolved_as_peft_resolves_it(
    tiny_model: Path, tmp_path: Path, pattern: dict[str, float]
) -> None:
    plain = _adapter(tiny_model, tmp_path / "plain")
    patterned = tmp_path / "patterned"
    shutil.copytree(plain, patterned)
    config = json.loads((patterned / "adapter_config.json").read_text())
    config["alpha_pattern"] = pattern
    (patterned / "adapter_config.json").write_text(json.dumps(config))
    scales = {
        t.name: t.lora_scale for t in diff(tiny_model, patterned, workers=1).tensors if t.lora_scale
    }
    expected = {
        t.name: t.lora_scale for t in diff(tiny_model, plain, workers=1).tensors if t.lora_scale
    }
    assert scales == expected  # both patterns leave PEFT's alpha (8) on every module


def test_a_full_model_that_unties_its_head_is_measured_against_the_embedding(
    tiny_model: Path, tmp_path: Path
) -> None:
    tuned, tensors = _with_own_head(tiny_model, tmp_path / "untied")
    report = diff(tiny_model, tuned, workers=1)
    head = next(t for t in report.tensors if t.name == "lm_head.weight")
    assert (head.relative_change or 0) > 0.5 and report.verdict == "flag"
    # A tensor the base does not have and that is no output head: refused.
    tensors["model.extra.weight"] = np.ones((2, 2), np.float32)
    save_file(tensors, str(tuned / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(BadInputError, match="model.extra.weight is not in the base model"):
        diff(tiny_model, tuned, workers=1)


def test_weights_beside_an_index_that_does_not_name_them_are_refused(
    tiny_model: Path, tmp_path: Path
) -> None:
    """transformers loads model.safetensors before an index; the report read the index."""
    tuned = tmp_path / "two-forms"
    shutil.copytree(tiny_model, tuned)
    tensors = load_file(str(tuned / "model.safetensors"))
    (tuned / "model.safetensors").rename(tuned / "model-00001-of-00001.safetensors")
    (tuned / "model.safetensors.index.json").write_text(
        json.dumps(
            {
                "metadata": {},
                "weight_map": dict.fromkeys(tensors, "model-00001-of-00001.safetensors"),
            }
        )
    )
    assert diff(tiny_model, tuned, workers=1).verdict == "pass"  # the sharded form alone
    save_file({k: v * 3 for k, v in tensors.items()}, str(tuned / "model.safetensors"))
    with pytest.raises(BadInputError, match="lies beside model.safetensors.index.json"):
        diff(tiny_model, tuned, workers=1)


def test_two_adapter_keys_for_one_saved_tensor_are_refused(
    tiny_model: Path, tmp_path: Path
) -> None:
    """Third pass of 2026-12-08: an extra, unprefixed `lm_head.weight` equal to the base's
    embedding stood in for the saved head PEFT loads (permuted): the report read the decoy."""
    adapter = _adapter(tiny_model, tmp_path / "two", "head", modules_to_save=["lm_head"])
    tensors = load_file(str(adapter / "adapter_model.safetensors"))
    embedding = load_file(str(tiny_model / "model.safetensors"))["model.embed_tokens.weight"]
    tensors["lm_head.weight"] = embedding
    save_file(tensors, str(adapter / "adapter_model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(BadInputError, match="both stand for lm_head.weight"):
        diff(tiny_model, adapter, workers=1)


def test_a_full_model_that_ties_a_head_the_base_stored_is_measured(
    tiny_model: Path, tmp_path: Path
) -> None:
    """Third pass of 2026-12-08: a tensor the tuned model lacked counted as no change."""
    untied_base, _ = _with_own_head(tiny_model, tmp_path / "untied-base")
    report = diff(untied_base, tiny_model, workers=1)  # the tuned model ties its head again
    head = next(t for t in report.tensors if t.name == "lm_head.weight")
    assert (head.relative_change or 0) > 0.5 and report.verdict == "flag"
    lacking = tmp_path / "lacking"
    shutil.copytree(tiny_model, lacking)
    fewer = load_file(str(lacking / "model.safetensors"))
    del fewer["model.norm.weight"]
    save_file(fewer, str(lacking / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(BadInputError, match="model.norm.weight is not in the tuned model"):
        diff(tiny_model, lacking, workers=1)
