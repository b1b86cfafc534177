"""``ftguard bom``: a CycloneDX 1.6 ML-BOM of a job, validated and read back by cyclonedx."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.model.bom import Bom
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from ftguard.cli import main
from ftguard.control import service
from tests.control import conftest as control
from tests.control.conftest import Env
from tests.gate.test_standard_attestations import _evidence, _trained

backend = control.backend  # the control-plane fixtures (a workspace with its users)
cp = control.cp

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(component: dict[str, Any]) -> dict[str, str]:
    return {
        c["name"]: c["hashes"][0]["content"]
        for c in component.get("components") or []
        if c["type"] == "file" and c["hashes"][0]["alg"] == "SHA-256"
    }


def test_bom_of_a_passed_job(cp: Env, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    job, adapter = _trained(cp, "job", b"weights" * 10)
    _evidence(cp, job, behavior_passes=True)
    assert service.decide_gate(cp.ws, actor="sec", job_id=job).decision.decision == "pass"
    out = tmp_path / "out" / "job.cdx.json"
    assert main(["bom", job, "-o", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == {
        "job": job,
        "bom": str(out),
        "spec_version": "1.6",
        "serial_number": summary["serial_number"],
        "components": 3,
    }
    text = out.read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    document = json.loads(text)
    assert document["bomFormat"] == "CycloneDX" and document["specVersion"] == "1.6"

    model = document["metadata"]["component"]
    assert model["type"] == "machine-learning-model"
    assert _files(model) == {p.name: _sha256(p) for p in adapter.iterdir()}
    card = model["modelCard"]
    assert card["considerations"]["useCases"] == ["customer support answers"]
    properties = {p["name"]: p["value"] for p in card["properties"]}
    assert properties["ftguard:training-config:learning_rate"] == "0.001"
    assert properties["ftguard:training-config:steps"] == "10"
    assert properties["ftguard:gate-decision"] == "pass"
    assert [p["value"] for p in card["properties"] if p["name"] == "ftguard:approver"] == [
        "bob",
        "carol",
    ]

    by_ref = {c["bom-ref"]: c for c in document["components"]}
    base = by_ref[f"ftguard:job/{job}/base-model"]
    dataset = by_ref[f"ftguard:job/{job}/dataset"]
    assert base["type"] == "machine-learning-model" and dataset["type"] == "data"
    inputs = cp.root / "job"
    assert _files(base) == {p.name: _sha256(p) for p in (inputs / "model").iterdir()}
    assert dataset["hashes"] == [{"alg": "SHA-256", "content": _sha256(inputs / "train.jsonl")}]
    assert card["modelParameters"]["datasets"] == [{"ref": dataset["bom-ref"]}]
    assert {
        "ref": model["bom-ref"],
        "dependsOn": sorted([base["bom-ref"], dataset["bom-ref"]]),
    } in [
        {"ref": d["ref"], "dependsOn": sorted(d.get("dependsOn", []))}
        for d in document["dependencies"]
    ]

    reports = cp.ws.reports_dir / job
    references = {
        Path(r["url"].removeprefix("file://")).name: r["hashes"][0]["content"]
        for r in model["externalReferences"]
        if r["type"] == "attestation"
    }
    assert references == {
        name: _sha256(reports / name)
        for name in ("attestation.json", "model.sig", "vsa.json", "test-result.json")
    }

    # Read back by cyclonedx-python-lib's own model.
    parsed = Bom.from_json(document)  # type: ignore[attr-defined]
    assert parsed.metadata.component is not None
    assert parsed.metadata.component.name == "adapter"
    assert {c.name for c in parsed.components} == {"model", "train.jsonl"}

    # To stdout, and by default into the job's reports folder.
    assert main(["bom", job, "-o", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["metadata"]["component"]["name"] == "adapter"
    assert main(["bom", job]) == 0
    assert (reports / "bom.cdx.json").is_file()


def test_bom_refuses_a_job_without_output(cp: Env, capsys: pytest.CaptureFixture[str]) -> None:
    job = cp.approved("untrained")
    assert main(["bom", job]) == 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no trained output" in err
    assert main(["bom", "no-such-job"]) == 3
