"""The prebuilt safety adapter: pinned by digest, refused when changed, rebuilt byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftguard.digests import sha256_file
from ftguard.errors import BadInputError
from ftguard.training import PREBUILT_ADAPTER, check_prebuilt_adapter

PREBUILT = Path(__file__).resolve().parents[2] / "prebuilt" / "reference-aligned"


def test_the_repositorys_prebuilt_adapter_is_the_pinned_file() -> None:
    assert check_prebuilt_adapter(PREBUILT) == PREBUILT / "adapter_model.safetensors"
    assert sha256_file(PREBUILT / "adapter_model.safetensors") == PREBUILT_ADAPTER["sha256"]


def test_an_adapter_with_one_byte_changed_is_refused(tmp_path: Path) -> None:
    data = bytearray((PREBUILT / "adapter_model.safetensors").read_bytes())
    data[-1] ^= 1  # the last byte of the last tensor: still a valid safetensors file
    (tmp_path / "adapter_model.safetensors").write_bytes(bytes(data))
    with pytest.raises(BadInputError, match="refusing to use it"):
        check_prebuilt_adapter(tmp_path)
    with pytest.raises(BadInputError, match="no prebuilt adapter"):
        check_prebuilt_adapter(tmp_path / "missing")


def test_the_pinned_key_is_this_recipes_build_key(embedded_model: Path) -> None:
    """A recipe, data or base-model change changes the key: the pin must move with it."""
    from ftguard.training import reference_build_key

    assert reference_build_key() == PREBUILT_ADAPTER["key"]


def _fresh_cache(tmp_path: Path, embedded_model: Path) -> Path:
    """A cache root holding only the converted embedded model (linked, not converted again)."""
    from ftguard.models import cache_root

    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    converted = embedded_model.parent
    (cache / "models" / converted.name).symlink_to(cache_root() / "models" / converted.name)
    return cache


def test_a_changed_prebuilt_adapter_builds_nothing(tmp_path: Path, embedded_model: Path) -> None:
    from ftguard.training import aligned_model_folder, reference_aligned_model_dir

    bad = tmp_path / "bad"
    bad.mkdir()
    data = bytearray((PREBUILT / "adapter_model.safetensors").read_bytes())
    data[-1] ^= 1
    (bad / "adapter_model.safetensors").write_bytes(bytes(data))
    cache = _fresh_cache(tmp_path, embedded_model)
    with pytest.raises(BadInputError, match="refusing to use it"):
        reference_aligned_model_dir(cache, prebuilt=bad)
    from ftguard.models import embedded_model_digest

    final = aligned_model_folder(cache, embedded_model_digest(cache))
    assert [p.name for p in final.parent.iterdir()] == [embedded_model.parent.name]  # nothing


def test_the_prebuilt_adapter_builds_the_aligned_model_without_training(
    tmp_path: Path, embedded_model: Path
) -> None:
    from ftguard.digests import manifest_of
    from ftguard.models import load_causal_lm
    from ftguard.training import reference_aligned_adapter_dir, reference_aligned_model_dir

    cache = _fresh_cache(tmp_path, embedded_model)
    model = reference_aligned_model_dir(cache, prebuilt=PREBUILT)
    recipe = json.loads((model.parent / "recipe.json").read_text())
    assert recipe["prebuilt"] == PREBUILT_ADAPTER["sha256"] and "losses" not in recipe
    adapter = reference_aligned_adapter_dir(cache)
    assert sha256_file(adapter / "adapter_model.safetensors") == PREBUILT_ADAPTER["sha256"]
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (16, 32)
    assert manifest_of(model).root != manifest_of(embedded_model).root  # the LoRA is merged in
    loaded, _ = load_causal_lm(model)
    assert loaded.config.num_hidden_layers == 30


@pytest.mark.slow
def test_the_safety_adapter_rebuilds_byte_for_byte(tmp_path: Path, embedded_model: Path) -> None:
    """What scripts/build_reference_adapter.py checks: training it again gives the pinned bytes
    (on x86-64 with 2 torch threads, as in CI; about 6 minutes on 2 cores)."""
    import torch

    from ftguard.training import train_reference_adapter

    if torch.get_num_threads() != 2:
        pytest.skip("the pinned bytes were trained with 2 torch threads")
    weights = train_reference_adapter(tmp_path / "adapter")
    assert sha256_file(weights) == PREBUILT_ADAPTER["sha256"]
