"""Registered weight baselines: who may register them, what they change, and their audit trail."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from ftguard.cli import main
from ftguard.control import service
from ftguard.errors import (
    BadInputError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    VerificationError,
)
from tests.weights._ckpt import llama_tensors, write_adapter, write_model

from .conftest import Env


def _adapter(folder: Path, base: dict[str, np.ndarray], seed: int, *, push: float = 1.0) -> Path:
    """A small LoRA update of the tiny model; ``push`` scales layer 3's mlp.down_proj."""
    out = write_adapter(
        folder, base, seed=seed, scale_b=0.003, targets=("q_proj", "v_proj", "down_proj")
    )
    if push != 1.0:
        sd = load_file(str(out / "adapter_model.safetensors"))
        sd["base_model.model.model.layers.3.mlp.down_proj.lora_B.weight"] *= push
        save_file(sd, str(out / "adapter_model.safetensors"))
    return out


@pytest.fixture
def tiny(cp: Env) -> tuple[Path, dict[str, np.ndarray]]:
    tensors = llama_tensors(num_layers=4, seed=0)
    return write_model(cp.root / "base", tensors), tensors


def _trained_job(cp: Env, base: Path, adapter: Path, name: str) -> str:
    """A job on ``base`` taken through approval and a recorded run whose output is ``adapter``."""
    _, data, cfg = cp.inputs(name)
    job = service.submit_job(
        cp.ws,
        actor="alice",
        base_model=base,
        dataset=data,
        config=cfg,
        purpose="customer support answers",
        prepared_by="dan",
    )
    service.confirm_prepared(cp.ws, actor="dan", job_id=job.id)
    service.override_review(cp.ws, actor="sec", job_id=job.id, justification="baseline test")
    service.approve(cp.ws, actor="bob", job_id=job.id)
    service.approve(cp.ws, actor="carol", job_id=job.id)
    ticket = service.start_run(cp.ws, actor="alice", job_id=job.id)
    service.finish_run(
        cp.ws,
        actor="alice",
        job_id=job.id,
        token=ticket.token,
        exit_code=0,
        output_path=str(adapter),
    )
    return job.id


def test_registered_baselines_judge_later_jobs_until_revoked(
    cp: Env, tiny: tuple[Path, dict[str, np.ndarray]]
) -> None:
    base, tensors = tiny
    known_good = [_adapter(cp.root / f"good{s}", tensors, s) for s in range(5)]
    pushed = _trained_job(cp, base, _adapter(cp.root / "pushed", tensors, 50, push=3.0), "p")
    normal = _trained_job(cp, base, _adapter(cp.root / "normal", tensors, 51), "n")

    # A fresh workspace has no earlier approved jobs: fixed limits, and they pass the push.
    before = service.weights_for_job(cp.ws, actor="alice", job_id=pushed)
    assert before.judged_by == "fixed_limits" and before.verdict == "pass"

    with pytest.raises(PermissionDeniedError, match="security_reviewer"):
        service.register_baseline(
            cp.ws, actor="alice", base=base, tuned=known_good[0], justification="mine"
        )
    with pytest.raises(BadInputError, match="justification"):
        service.register_baseline(
            cp.ws, actor="sec", base=base, tuned=known_good[0], justification=" "
        )
    events = service.verify_audit(cp.ws).events
    views = [
        service.register_baseline(
            cp.ws, actor="sec", base=base, tuned=g, justification=f"support bot v{i}, in production"
        )
        for i, g in enumerate(known_good)
    ]
    assert service.verify_audit(cp.ws).events == events + 5
    assert [v.verdict for v in views] == ["pass"] * 5 and not any(v.revoked for v in views)
    assert {v.base_model_digest for v in views} == {
        service.get_job(cp.ws, pushed).base_model["sha256"]
    }
    with pytest.raises(ConflictError, match="already baseline"):
        service.register_baseline(
            cp.ws, actor="sec", base=base, tuned=known_good[0], justification="again"
        )

    flagged = service.weights_for_job(cp.ws, actor="alice", job_id=pushed)
    assert flagged.judged_by == "baselines" and flagged.baseline_count == 5
    assert flagged.verdict == "flag"
    reasons = " | ".join(f.reason for f in flagged.flags)
    assert "layer 3 mlp.down_proj" in reasons and "of 5 earlier approved jobs" in reasons
    assert any("5 fine-tunes a security reviewer registered" in n for n in flagged.notes)
    ok = service.weights_for_job(cp.ws, actor="alice", job_id=normal)
    assert ok.judged_by == "baselines" and ok.verdict == "pass", [f.reason for f in ok.flags]

    with pytest.raises(PermissionDeniedError):
        service.revoke_baseline(cp.ws, actor="bob", digest=views[0].digest, justification="x")
    with pytest.raises(NotFoundError):
        service.revoke_baseline(cp.ws, actor="sec", digest="0" * 16, justification="x")
    revoked = service.revoke_baseline(
        cp.ws, actor="sec", digest=views[0].digest[:12], justification="trained on leaked data"
    )
    assert revoked.revoked and revoked.revoked_by == "sec"
    with pytest.raises(ConflictError, match="already revoked"):
        service.revoke_baseline(cp.ws, actor="sec", digest=views[0].digest, justification="x")
    assert len(service.list_baselines(cp.ws, include_revoked=False)) == 4
    assert len(service.list_baselines(cp.ws)) == 5
    # four left, fewer than the policy's five: back to fixed limits
    again = service.weights_for_job(cp.ws, actor="alice", job_id=pushed)
    assert again.judged_by == "fixed_limits" and again.verdict == "pass"
    # registered anew after its revocation, it is a new baseline that counts
    back = service.register_baseline(
        cp.ws,
        actor="sec",
        base=base,
        tuned=known_good[0],
        justification="support bot v0, in production",
    )
    assert back.digest != views[0].digest and not back.revoked
    assert service.weights_for_job(cp.ws, actor="alice", job_id=pushed).verdict == "flag"

    audit = service.verify_audit(cp.ws)
    assert audit.ok
    actions = [(e.action, e.payload) for e in service.iter_audit(cp.ws)]
    registered = [p for a, p in actions if a == "evidence.weights.baseline"]
    assert (
        len(registered) == 6 and registered[1]["justification"] == "support bot v1, in production"
    )
    assert [p["justification"] for a, p in actions if a == "evidence.weights.baseline.revoke"] == [
        "trained on leaked data"
    ]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_baselines_of_another_base_model_do_not_count(
    cp: Env, tiny: tuple[Path, dict[str, np.ndarray]]
) -> None:
    base, tensors = tiny
    other_tensors = llama_tensors(num_layers=4, seed=9)
    other = write_model(cp.root / "other", other_tensors)
    for s in range(5):
        service.register_baseline(
            cp.ws,
            actor="sec",
            base=other,
            tuned=_adapter(cp.root / f"o{s}", other_tensors, s),
            justification="another model's history",
        )
    job = _trained_job(cp, base, _adapter(cp.root / "pushed", tensors, 50, push=3.0), "p")
    report = service.weights_for_job(cp.ws, actor="alice", job_id=job)
    assert report.judged_by == "fixed_limits" and report.baseline_count == 0
    digest = service.get_job(cp.ws, job).base_model["sha256"]
    assert service.list_baselines(cp.ws, base_model_digest=digest) == []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_baseline_cli_json_and_errors(
    cp: Env, tiny: tuple[Path, dict[str, np.ndarray]], capsys: pytest.CaptureFixture[str]
) -> None:
    base, tensors = tiny
    good = _adapter(cp.root / "good", tensors, 1)
    argv = ["weights", "baseline", "add", str(base), str(good), "--justification", "v1"]
    assert main([*argv, "--as", "alice"]) == 4
    assert "security_reviewer" in capsys.readouterr().err
    assert main([*argv, "--as", "sec", "--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["registered_by"] == "sec" and view["verdict"] == "pass" and not view["revoked"]
    assert main([*argv, "--as", "sec"]) == 5
    err = capsys.readouterr().err
    assert "already baseline" in err and len(err.strip().splitlines()) == 1
    assert (
        main(
            [
                "weights",
                "baseline",
                "add",
                str(base),
                str(cp.root / "nope"),
                "--as",
                "sec",
                "--justification",
                "x",
            ]
        )
        == 2
    )
    assert "Traceback" not in capsys.readouterr().err
    assert main(["weights", "baseline", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [v["digest"] for v in listed] == [view["digest"]]
    assert (
        main(
            [
                "weights",
                "baseline",
                "revoke",
                view["digest"][:10],
                "--as",
                "sec",
                "--justification",
                "superseded",
            ]
        )
        == 0
    )
    assert "revoked by sec" in capsys.readouterr().out
    assert main(["weights", "baseline", "list", "--active", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert (
        main(["weights", "baseline", "revoke", "abc", "--as", "sec", "--justification", "x"]) == 2
    )
    assert service.verify_audit(cp.ws).ok


def _registered(cp: Env, base: Path, tensors: dict[str, np.ndarray], n: int = 5) -> list[str]:
    return [
        service.register_baseline(
            cp.ws,
            actor="sec",
            base=base,
            tuned=_adapter(cp.root / f"good{s}", tensors, s),
            justification=f"support bot v{s}, in production",
        ).digest
        for s in range(n)
    ]


def _pushed_job_and_baselines(
    cp: Env, tiny: tuple[Path, dict[str, np.ndarray]]
) -> tuple[str, list[str]]:
    """A job whose update is pushed in one tensor, and 5 registered baselines of its base."""
    base, tensors = tiny
    pushed = _trained_job(cp, base, _adapter(cp.root / "pushed", tensors, 50, push=3.0), "p")
    return pushed, _registered(cp, base, tensors)


def test_exported_baselines_imported_as_records_judge_jobs_like_registered_ones(
    cp: Env, tiny: tuple[Path, dict[str, np.ndarray]]
) -> None:
    pushed, digests = _pushed_job_and_baselines(cp, tiny)
    registered = service.weights_for_job(cp.ws, actor="alice", job_id=pushed)
    export = service.export_baselines(cp.ws)
    assert [r.justification for r in export.records] == [
        f"support bot v{s}, in production" for s in range(5)
    ]
    assert b"registered_by" not in export.to_bytes()  # records name no user
    # the same export gives the same bytes, and they read back to the same records
    assert service.export_baselines(cp.ws).to_bytes() == export.to_bytes()
    assert service.parse_baseline_export(export.to_bytes()) == export
    for digest in digests:
        service.revoke_baseline(cp.ws, actor="sec", digest=digest, justification="moving")
    assert service.export_baselines(cp.ws).records == []
    assert service.weights_for_job(cp.ws, actor="alice", job_id=pushed).judged_by == "fixed_limits"

    events = service.verify_audit(cp.ws).events
    imported = service.import_baselines(
        cp.ws, actor="sec", export=export, justification="the pilot workspace's baselines"
    )
    assert service.verify_audit(cp.ws).events == events + 5
    assert all(v.imported_from and not v.revoked for v in imported)
    assert {v.justification for v in imported} == {"the pilot workspace's baselines"}
    assert [v.tuned_digest for v in imported] == [r.tuned_digest for r in export.records]
    again = service.weights_for_job(cp.ws, actor="alice", job_id=pushed)
    assert again.judged_by == "baselines" and again.baseline_count == 5
    assert again.verdict == registered.verdict == "flag"
    assert again.anomaly_score == pytest.approx(registered.anomaly_score)
    payloads = [
        e.payload for e in service.iter_audit(cp.ws) if e.action == "evidence.weights.baseline"
    ]
    assert [p.get("imported_from") for p in payloads[-5:]] == [imported[0].imported_from] * 5
    # an imported baseline is revoked like any other
    service.revoke_baseline(cp.ws, actor="sec", digest=imported[0].digest, justification="x")
    assert service.weights_for_job(cp.ws, actor="alice", job_id=pushed).judged_by == "fixed_limits"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_importing_baselines_is_a_security_reviewers_act_and_all_or_nothing(
    cp: Env, tiny: tuple[Path, dict[str, np.ndarray]]
) -> None:
    base, tensors = tiny
    _registered(cp, base, tensors, n=2)
    export = service.export_baselines(cp.ws)
    events = service.verify_audit(cp.ws).events
    for insider in ("alice", "bob", "dan"):
        with pytest.raises(PermissionDeniedError, match="security_reviewer"):
            service.import_baselines(cp.ws, actor=insider, export=export, justification="mine")
    with pytest.raises(BadInputError, match="justification"):
        service.import_baselines(cp.ws, actor="sec", export=export, justification=" ")
    # both are still active here: the whole import is refused, not the first record only
    with pytest.raises(ConflictError, match="already a baseline.*nothing was imported"):
        service.import_baselines(cp.ws, actor="sec", export=export, justification="again")
    twice = service.BaselineExport(records=[export.records[0], export.records[0]])
    service.revoke_baseline(
        cp.ws, actor="sec", digest=service.list_baselines(cp.ws)[0].digest, justification="x"
    )
    with pytest.raises(ConflictError, match="listed twice"):
        service.import_baselines(cp.ws, actor="sec", export=twice, justification="again")
    with pytest.raises(BadInputError, match="no records"):
        service.import_baselines(
            cp.ws, actor="sec", export=service.BaselineExport(records=[]), justification="x"
        )
    assert service.verify_audit(cp.ws).events == events + 1  # the revocation only
    assert len(service.list_baselines(cp.ws)) == 2


def _export_json(cp: Env, tiny: tuple[Path, dict[str, np.ndarray]]) -> dict[str, object]:
    base, tensors = tiny
    _registered(cp, base, tensors, n=1)
    return json.loads(service.export_baselines(cp.ws).to_bytes())


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_forged_or_malformed_export_is_refused_with_one_clear_error(
    cp: Env, tiny: tuple[Path, dict[str, np.ndarray]]
) -> None:
    good = _export_json(cp, tiny)
    record = good["records"][0]  # type: ignore[index]

    def with_record(**change: object) -> bytes:
        return json.dumps({**good, "records": [{**record, **change}]}).encode()

    other_base = "ab" * 32
    fingerprint = dict(record["fingerprint"])
    nan_features = {**fingerprint["features"], "total": float("nan")}
    cases = {
        b"": "not readable",
        b"\xff\xfe": "not UTF-8",
        b"[]": "not a baseline export",
        json.dumps({**good, "format": "other"}).encode(): "not a baseline export",
        json.dumps({**good, "version": 2}).encode(): "version",
        json.dumps({**good, "extra": 1}).encode(): "extra",
        b'{"format": "ftguard-weight-baselines", "format": "x", "version": 1, "records": []}': (
            "duplicate key"
        ),
        with_record(base_model_digest=other_base): "another base model",
        with_record(tuned_digest="not-a-digest"): "tuned_digest",
        with_record(tuned_kind="full"): "kind",
        with_record(anomaly_score=None): "anomaly_score",
        with_record(fingerprint={**fingerprint, "features": nan_features}).replace(
            b"NaN", b"1e999"
        ): "overflows",
        with_record(fingerprint={**fingerprint, "features": {"a": "x"}}): "features",
        with_record(fingerprint={**fingerprint, "schema_version": "one"}): "schema_version",
        with_record(justification=""): "justification",
    }
    for data, message in cases.items():
        with pytest.raises(BadInputError, match=message):
            service.parse_baseline_export(data)
    with pytest.raises(BadInputError, match="at most"):
        service.parse_baseline_export(b" " * (service.MAX_EXPORT_BYTES + 1))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_fuzzed_exports_parse_or_fail_with_bad_input_only(
    cp: Env, tiny: tuple[Path, dict[str, np.ndarray]]
) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    data = json.dumps(_export_json(cp, tiny)).encode()

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.integers(0, len(data) - 1), st.binary(min_size=0, max_size=8), st.integers(0, 8))
    def mutate(at: int, insert: bytes, cut: int) -> None:
        mutated = data[:at] + insert + data[at + cut :]
        try:
            parsed = service.parse_baseline_export(mutated)
        except BadInputError:
            return
        assert parsed.format == "ftguard-weight-baselines"

    mutate()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_imported_baseline_edited_in_the_database_is_not_counted(
    cp: Env, tiny: tuple[Path, dict[str, np.ndarray]]
) -> None:
    from sqlalchemy import text

    pushed, digests = _pushed_job_and_baselines(cp, tiny)
    export = service.export_baselines(cp.ws)
    for digest in digests:
        service.revoke_baseline(cp.ws, actor="sec", digest=digest, justification="moving")
    service.import_baselines(cp.ws, actor="sec", export=export, justification="pilot")
    assert service.weights_for_job(cp.ws, actor="alice", job_id=pushed).verdict == "flag"
    # A database-only attacker scales every imported fingerprint up, so that the pushed job
    # looks normal; the stored digest is kept.
    with cp.ws.store.engine.begin() as conn:
        rows = conn.execute(
            text("SELECT id, body FROM evidence WHERE kind = 'weights.baseline'")
        ).all()
        for row_id, body in rows:
            changed = json.loads(body)
            changed["fingerprint"]["features"] = {
                k: v * 10 for k, v in changed["fingerprint"]["features"].items()
            }
            conn.execute(
                text("UPDATE evidence SET body = :b WHERE id = :i"),
                {"b": json.dumps(changed), "i": row_id},
            )
    with pytest.raises(VerificationError):
        service.weights_for_job(cp.ws, actor="alice", job_id=pushed)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_baseline_export_and_import_on_the_command_line(
    cp: Env, tiny: tuple[Path, dict[str, np.ndarray]], capsys: pytest.CaptureFixture[str]
) -> None:
    base, tensors = tiny
    [digest] = _registered(cp, base, tensors, n=1)
    assert main(["weights", "baseline", "export"]) == 0
    exported = capsys.readouterr().out
    path = cp.root / "baselines.json"
    path.write_text(exported)
    argv = ["weights", "baseline", "import", str(path), "--justification", "from the pilot"]
    assert main([*argv, "--as", "bob"]) == 4
    assert "security_reviewer" in capsys.readouterr().err
    assert main([*argv, "--as", "sec"]) == 5  # still an active baseline here
    assert "already a baseline" in capsys.readouterr().err
    service.revoke_baseline(cp.ws, actor="sec", digest=digest, justification="moving")
    assert main([*argv, "--as", "sec", "--json"]) == 0
    [view] = json.loads(capsys.readouterr().out)
    assert view["imported_from"] and view["justification"] == "from the pilot"
    assert main(["weights", "baseline", "list", "--active"]) == 0
    assert "imported record" in capsys.readouterr().out
    for bad in (cp.root / "missing.json", cp.root):
        assert (
            main(["weights", "baseline", "import", str(bad), "--as", "sec", "--justification", "x"])
            == 2
        )
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    path.write_text(exported.replace('"version":1', '"version":1,"x":2'))
    assert main([*argv, "--as", "sec"]) == 2
    assert "invalid baseline export" in capsys.readouterr().err
    assert service.verify_audit(cp.ws).ok
