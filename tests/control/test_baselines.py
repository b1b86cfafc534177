"""Registered weight baselines: who may register them, what they change, and their audit trail."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from ftguard.cli import main
from ftguard.control import service
from ftguard.errors import BadInputError, ConflictError, NotFoundError, PermissionDeniedError
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
