"""The ML-BOM builder on its own: digests, model card, redaction, schema validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftguard.bom import BomInputs, build_ml_bom, validate_bom
from ftguard.digests import manifest_of
from ftguard.errors import FtguardError


def _inputs(tmp_path: Path, training_config: dict[str, object]) -> BomInputs:
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "model.safetensors").write_bytes(b"base")
    (tmp_path / "adapter.safetensors").write_bytes(b"tuned")
    (tmp_path / "data.jsonl").write_text('{"text": "hi"}\n')
    (tmp_path / "config.yaml").write_text("steps: 1\n")
    return BomInputs(
        job_id="j-1",
        purpose="answer support tickets",
        state="passed",
        requester="alice",
        output=manifest_of(tmp_path / "adapter.safetensors"),
        base_model=manifest_of(tmp_path / "base"),
        dataset=manifest_of(tmp_path / "data.jsonl"),
        config=manifest_of(tmp_path / "config.yaml"),
        training_config=training_config,
    )


def test_single_file_model_secrets_redacted(tmp_path: Path) -> None:
    inputs = _inputs(tmp_path, {"hf_token": "hf_abc123", "lr": 0.1, "wandb": {"api_key": "k"}})
    document = build_ml_bom(inputs)
    model = document["metadata"]["component"]
    assert model["hashes"] == [{"alg": "SHA-256", "content": inputs.output.root}]
    properties = {p["name"]: p["value"] for p in model["modelCard"]["properties"]}
    assert properties["ftguard:training-config:hf_token"] == "[redacted]"
    assert properties["ftguard:training-config:lr"] == "0.1"
    assert "hf_abc123" not in json.dumps(document)
    assert properties["ftguard:training-config:wandb"] == '{"api_key": "[redacted]"}'


def test_schema_validation_bites(tmp_path: Path) -> None:
    document = build_ml_bom(_inputs(tmp_path, {}))
    document["metadata"]["component"]["modelCard"]["modelParameters"]["approach"] = {
        "type": "guesswork"
    }
    with pytest.raises(FtguardError, match="does not validate against CycloneDX 1.6"):
        validate_bom(json.dumps(document))
