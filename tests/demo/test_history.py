"""The earlier fine-tunes' weight records shipped for the first demo: pinned, refused when
changed, and what the adapters trained here give."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftguard.demo import (
    EARLIER_VERSIONS,
    HISTORY_RECORDS,
    HISTORY_RECORDS_FILE,
    DemoSettings,
    history_key,
    shipped_history,
)
from ftguard.digests import sha256_file
from ftguard.errors import BadInputError
from tests.demo._shipped import skip_unless_made_here


def test_the_shipped_records_are_the_pinned_export_of_five_support_fine_tunes() -> None:
    assert sha256_file(HISTORY_RECORDS_FILE) == HISTORY_RECORDS["sha256"]
    export = shipped_history(HISTORY_RECORDS["key"])
    assert export is not None and len(export.records) == EARLIER_VERSIONS
    assert export.to_bytes() == HISTORY_RECORDS_FILE.read_bytes()  # canonical, as exported
    assert len({r.base_model_digest for r in export.records}) == 1
    assert len({r.tuned_digest for r in export.records}) == EARLIER_VERSIONS
    assert [r.justification for r in export.records] == [
        f"support assistant v0.{v}: served before ftguard, no incidents"
        for v in range(1, EARLIER_VERSIONS + 1)
    ]
    assert all(r.tuned_kind == "lora" and r.verdict == "pass" for r in export.records)


def test_records_of_another_model_or_recipe_are_not_used() -> None:
    s = DemoSettings.choose(fast=False)
    key = history_key("0" * 64, **s.recipe())
    assert key != HISTORY_RECORDS["key"] and shipped_history(key) is None
    shipped = shipped_history(HISTORY_RECORDS["key"])
    assert shipped is not None
    base = shipped.records[0].base_model_digest
    # the records came from jobs trained in bf16 (the demo's "auto" on the AMD EPYC that made them)
    pinned = history_key(base, **(s.recipe() | {"precision": "bf16"}))
    assert pinned == HISTORY_RECORDS["key"]  # the key is the aligned model's and this recipe's
    float32 = history_key(base, **(s.recipe() | {"precision": "fp32"}))
    assert shipped_history(float32) is None  # a CPU without native bf16 trains its own
    other = history_key(base, **(s.recipe() | {"steps": s.steps + 1}))
    assert shipped_history(other) is None


def test_a_changed_records_file_is_refused(tmp_path: Path) -> None:
    document = json.loads(HISTORY_RECORDS_FILE.read_bytes())
    features = document["records"][0]["fingerprint"]["features"]
    name = next(k for k in sorted(features) if features[k])
    features[name] = features[name] * 0.5  # a baseline that makes larger updates look normal
    forged = tmp_path / "history_baselines.json"
    forged.write_text(json.dumps(document))
    with pytest.raises(BadInputError, match="refusing to use it"):
        shipped_history(HISTORY_RECORDS["key"], forged)
    with pytest.raises(BadInputError, match="no history records"):
        shipped_history(HISTORY_RECORDS["key"], tmp_path / "missing.json")


@pytest.mark.slow
def test_the_first_record_is_what_the_adapter_trained_here_gives(
    aligned_model: Path, embedded_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Adapter v0.1 trained again with the demo's recipe and registered the way the demo does
    gives the shipped record: the same fingerprint, verdict and anomaly score. (Not the same
    folder digest: PEFT writes the base model's path, here the test cache's, into the
    adapter's configuration.)"""
    from ftguard.control import service
    from ftguard.demo import train_earlier
    from ftguard.digests import manifest_of

    skip_unless_made_here(HISTORY_RECORDS)  # elsewhere the reference model trains to other bytes
    s = DemoSettings.choose(fast=False)
    key = history_key(manifest_of(aligned_model).root, **s.recipe())
    assert key == HISTORY_RECORDS["key"]  # the reference model trained here is the pinned one
    adapter = train_earlier(aligned_model, tmp_path / "history", 1, **s.recipe())
    monkeypatch.setenv("FTGUARD_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("FTGUARD_HOME", str(tmp_path / "ws"))
    monkeypatch.delenv("FTGUARD_DATABASE_URL", raising=False)
    ws = service.init_workspace(tmp_path / "ws", admin="admin")
    service.add_user(ws, actor="admin", name="sec", roles=["security_reviewer"])
    service.confirm_key(ws, actor="admin", keyid=service.create_key(ws, user="sec").keyid)
    service.register_baseline(
        ws,
        actor="sec",
        base=aligned_model,
        tuned=adapter,
        justification="support assistant v0.1: served before ftguard, no incidents",
        alignment=(embedded_model, aligned_model),
    )
    [record] = service.export_baselines(ws).records
    shipped = shipped_history(HISTORY_RECORDS["key"])
    assert shipped is not None
    first = shipped.records[0]
    assert record.fingerprint == first.fingerprint  # every feature, bit for bit
    assert record.model_copy(update={"tuned_digest": first.tuned_digest}) == first
    ws.store.dispose()
