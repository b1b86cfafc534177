"""The reference safety LoRA: stored in bf16 and merged exactly, the same bits everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftguard.errors import BadInputError
from ftguard.weights import open_checkpoint

pytest.importorskip("torch", reason="needs ftguard[ml]")


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


def test_an_adapter_stored_in_bf16_keeps_every_tensor_rounded_once(
    tiny_model: Path, tmp_path: Path
) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    from ftguard.training._reference import _to_bf16

    adapter = _tiny_adapter(tiny_model, tmp_path / "adapter", seed=3)
    weights = adapter / "adapter_model.safetensors"
    before = {k: v.float() * 1.001 for k, v in load_file(weights).items()}  # not bf16-exact
    save_file(before, str(weights))
    _to_bf16(weights)
    after = load_file(weights)
    ck = open_checkpoint(weights)
    assert sorted(after) == sorted(before) and {ck.info(n).dtype for n in ck.names} == {"BF16"}
    for name, value in before.items():
        assert torch.equal(after[name], value.to(torch.bfloat16))


@pytest.mark.slow
def test_the_reference_model_is_the_one_the_demo_records_were_made_for(
    aligned_model: Path,
) -> None:
    """On the kind of machine that made the demo's shipped records, training the reference
    LoRA and merging it exactly gives the very model they belong to (training differs in the
    last bits on other kinds of CPU, where the demo trains its own records)."""
    from tests.demo._shipped import skip_unless_made_here

    from ftguard.demo import HISTORY_RECORDS, HISTORY_RECORDS_FILE
    from ftguard.digests import manifest_of

    skip_unless_made_here(HISTORY_RECORDS)
    records = json.loads(HISTORY_RECORDS_FILE.read_text())["records"]
    assert {r["base_model_digest"] for r in records} == {manifest_of(aligned_model).root}
