"""The shipped reference safety LoRA: pinned, used only for its build key, merged exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ftguard.digests import sha256_file
from ftguard.errors import BadInputError, VerificationError
from ftguard.training import REFERENCE_ADAPTER, REFERENCE_ADAPTER_FILE, SAFETY_RECIPE
from ftguard.weights import open_checkpoint

pytest.importorskip("torch", reason="needs ftguard[ml]")


def test_the_shipped_adapter_is_the_pinned_bf16_lora_of_the_recipe() -> None:
    assert sha256_file(REFERENCE_ADAPTER_FILE) == REFERENCE_ADAPTER["sha256"]
    assert len(REFERENCE_ADAPTER["key"]) == 64 and REFERENCE_ADAPTER["trained_on"]
    ck = open_checkpoint(REFERENCE_ADAPTER_FILE)
    names = list(ck.names)
    pairs = [n for n in names if n.endswith(".lora_A.weight")]
    assert len(pairs) == 30 * 7 and len(names) == 2 * len(pairs)  # 30 layers x 7 projections
    for name in pairs:
        a = ck.info(name)
        b = ck.info(name.replace(".lora_A.", ".lora_B."))
        assert a.dtype == b.dtype == "BF16"
        assert a.shape[0] == b.shape[1] == SAFETY_RECIPE["rank"]


def test_the_shipped_adapter_is_used_only_for_its_key_and_only_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ftguard.training import _reference

    source = _reference._aligned_key_source("0" * 64)  # another base model
    assert _reference._shipped_adapter(source) is None
    monkeypatch.setitem(REFERENCE_ADAPTER, "key", _reference.sha256_bytes(source.encode()))
    assert _reference._shipped_adapter(source) == REFERENCE_ADAPTER_FILE
    changed = tmp_path / "adapter.safetensors"
    shutil.copyfile(REFERENCE_ADAPTER_FILE, changed)
    data = bytearray(changed.read_bytes())
    data[-1] ^= 1  # one bit of the last weight
    changed.write_bytes(bytes(data))
    monkeypatch.setattr(_reference, "REFERENCE_ADAPTER_FILE", changed)
    with pytest.raises(VerificationError, match="pinned SHA-256"):
        _reference._shipped_adapter(source)


def _tiny_adapter(model_dir: Path, out: Path, *, seed: int) -> Path:
    """A LoRA on the tiny model with non-zero B (bf16 factors), saved as PEFT saves it."""
    import torch
    from peft import LoraConfig, get_peft_model

    from ftguard.models import load_causal_lm

    model, _ = load_causal_lm(model_dir)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "down_proj"])
    peft_model = get_peft_model(model, config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_((torch.randn(p.shape, generator=gen) * 0.05).to(torch.bfloat16))
    peft_model.save_pretrained(out)
    return out


def test_the_exact_merge_is_peft_s_merge_to_the_last_bit_of_float64_arithmetic(
    tiny_model: Path, tmp_path: Path
) -> None:
    import numpy as np
    import torch
    from safetensors.torch import load_file

    from ftguard.models import load_causal_lm
    from ftguard.training import merge_lora_exactly

    adapter = _tiny_adapter(tiny_model, tmp_path / "adapter", seed=1)
    weights = adapter / "adapter_model.safetensors"
    merged, _ = load_causal_lm(tiny_model)
    assert merge_lora_exactly(merged, weights, 8 / 4) == 2 * 4  # 2 modules x 4 layers
    again, _ = load_causal_lm(tiny_model)
    merge_lora_exactly(again, weights, 2.0)
    peft_merged = load_causal_lm(tiny_model, adapter)[0].merge_and_unload()
    plain, _ = load_causal_lm(tiny_model)
    tensors = load_file(weights)
    params, base, other = (
        dict(merged.named_parameters()),
        dict(plain.named_parameters()),
        dict(peft_merged.named_parameters()),
    )
    changed = 0
    for name, p in again.named_parameters():
        assert torch.equal(p, params[name])  # the same bits every time
        assert torch.allclose(p, other[name], rtol=0, atol=1e-6)  # PEFT's float32 merge
        key = "base_model.model." + name.removesuffix(".weight") + ".lora_A.weight"
        if key in tensors:
            a = tensors[key].double().numpy()
            b = tensors[key.replace("lora_A", "lora_B")].double().numpy()
            expected = (base[name].detach().double().numpy() + 2.0 * (b @ a)).astype(np.float32)
            assert np.array_equal(params[name].detach().numpy(), expected)  # bf16 products: exact
            assert not torch.equal(p, base[name])
            changed += 1
        else:
            assert torch.equal(p, base[name])
    assert changed == 8


def test_an_adapter_that_does_not_fit_the_model_is_refused(
    tiny_model: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    from ftguard.models import load_causal_lm
    from ftguard.training import merge_lora_exactly

    adapter = _tiny_adapter(tiny_model, tmp_path / "adapter", seed=2)
    tensors = load_file(adapter / "adapter_model.safetensors")
    renamed = {k.replace("layers.0.", "layers.99."): v for k, v in tensors.items()}
    save_file(renamed, str(tmp_path / "renamed.safetensors"))
    model, _ = load_causal_lm(tiny_model)
    with pytest.raises(BadInputError, match="no matching module"):
        merge_lora_exactly(model, tmp_path / "renamed.safetensors", 2.0)
    save_file({}, str(tmp_path / "empty.safetensors"))
    with pytest.raises(BadInputError, match="no LoRA pair"):
        merge_lora_exactly(model, tmp_path / "empty.safetensors", 2.0)


@pytest.mark.slow
def test_the_reference_model_is_the_shipped_adapter_merged_the_same_on_every_machine(
    aligned_model: Path,
) -> None:
    """Where the embedded model converts to the pinned bytes, the reference model comes from
    the shipped LoRA, and its digest is the one the demo's shipped records were made for."""
    from ftguard.demo import HISTORY_RECORDS_FILE
    from ftguard.digests import manifest_of

    recipe = json.loads((aligned_model.parent / "recipe.json").read_text())
    if recipe["adapter"] != "shipped":
        pytest.skip("the embedded model converted to other bytes here: the LoRA was trained")
    assert recipe["build_seconds"] < 120
    records = json.loads(HISTORY_RECORDS_FILE.read_text())["records"]
    assert {r["base_model_digest"] for r in records} == {manifest_of(aligned_model).root}
