"""The launcher: only approved, unchanged jobs run, once per approval."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ftguard.cli import main
from ftguard.control import service
from ftguard.errors import ConflictError, VerificationError

from .conftest import Env


def _record_cmd(out: Path) -> list[str]:
    code = (
        "import os, sys; open(sys.argv[1], 'a').write(os.environ['FTGUARD_JOB'] + ' ' "
        "+ str(os.path.exists(os.environ['FTGUARD_APPROVAL_BUNDLE'])) + '\\n')"
    )
    return [sys.executable, "-c", code, str(out)]


def test_unapproved_job_is_refused(cp: Env, tmp_path: Path) -> None:
    job = cp.submit()
    out = tmp_path / "ran.txt"
    with pytest.raises(VerificationError, match="not approved"):
        service.launch(cp.ws, actor="alice", job_id=job, command=_record_cmd(out))
    assert not out.exists()


def test_approved_job_runs_once_and_passes_environment(cp: Env, tmp_path: Path) -> None:
    job = cp.approved()
    out = tmp_path / "ran.txt"
    assert service.launch(cp.ws, actor="alice", job_id=job, command=_record_cmd(out)) == 0
    assert out.read_text() == f"{job} True\n"
    view = service.get_job(cp.ws, job)
    assert view.state == "trained" and view.run_count == 1
    assert {a["status"] for a in view.approvals} == {"consumed"}
    with pytest.raises(VerificationError, match="trained, not approved"):
        service.launch(cp.ws, actor="alice", job_id=job, command=_record_cmd(out))
    actions = [e.action for e in service.iter_audit(cp.ws, job_id=job)]
    assert actions.count("run.start") == 1 and actions.count("run.end") == 1
    assert service.verify_audit(cp.ws).ok


def test_failing_command_marks_failed_and_needs_new_approvals(cp: Env) -> None:
    job = cp.approved()
    code = service.launch(
        cp.ws, actor="alice", job_id=job, command=[sys.executable, "-c", "raise SystemExit(3)"]
    )
    assert code == 3
    assert service.get_job(cp.ws, job).state == "failed"


@pytest.mark.parametrize(
    "change",
    ["dataset_byte", "model_byte", "model_file_added", "model_file_removed", "config_byte"],
)
def test_changed_inputs_block_the_run(cp: Env, tmp_path: Path, change: str) -> None:
    job = cp.approved()
    model, data, cfg = (
        cp.root / "job" / "model",
        cp.root / "job" / "train.jsonl",
        cp.root / "job" / "config.yaml",
    )
    if change == "dataset_byte":
        raw = bytearray(data.read_bytes())
        raw[5] ^= 0x20
        data.write_bytes(bytes(raw))
        expected = "dataset changed"
    elif change == "model_byte":
        raw = bytearray((model / "model.safetensors").read_bytes())
        raw[-1] ^= 1
        (model / "model.safetensors").write_bytes(bytes(raw))
        expected = "base model changed.*changed: model.safetensors"
    elif change == "model_file_added":
        (model / "adapter.safetensors").write_bytes(b"x")
        expected = "base model changed.*added: adapter.safetensors"
    elif change == "model_file_removed":
        (model / "config.json").unlink()
        expected = "base model changed.*removed: config.json"
    else:
        cfg.write_text(cfg.read_text().replace("0.001", "0.01"))
        expected = "config changed"
    out = tmp_path / "ran.txt"
    with pytest.raises(VerificationError, match=expected):
        service.launch(cp.ws, actor="alice", job_id=job, command=_record_cmd(out))
    assert not out.exists()
    assert service.get_job(cp.ws, job).state == "approved"


def test_cli_run_exit_codes(cp: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = cp.submit()
    assert main(["run", job, "--", sys.executable, "-c", "pass"]) == 6
    assert "not approved" in capsys.readouterr().err
    assert main(["run", "job-nope", "--", "true"]) == 3
    service.approve(cp.ws, actor="bob", job_id=job)
    service.approve(cp.ws, actor="carol", job_id=job)
    assert (
        main(["run", job, "--as", "alice", "--", sys.executable, "-c", "raise SystemExit(4)"]) == 4
    )
    assert service.get_job(cp.ws, job).state == "failed"


def test_conflicting_second_start(cp: Env) -> None:
    job = cp.approved()
    ticket = service.start_run(cp.ws, actor="alice", job_id=job)
    with pytest.raises((ConflictError, VerificationError)):
        service.start_run(cp.ws, actor="alice", job_id=job)
    service.finish_run(cp.ws, actor="alice", job_id=job, token=ticket.token, exit_code=0)
    with pytest.raises(VerificationError, match="run token"):
        service.finish_run(cp.ws, actor="alice", job_id=job, token="forged", exit_code=0)
