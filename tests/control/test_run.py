"""The launcher: only approved, unchanged jobs run, once per approval, exactly as approved."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from ftguard.cli import main
from ftguard.control import service
from ftguard.digests import manifest_of
from ftguard.errors import BadInputError, ConflictError, PermissionDeniedError, VerificationError

from .conftest import Env

# Records what the training command saw: its job, whether the bundle exists, the staged inputs.
# The record file is named in the environment: an approved command naming a file outside the
# staged inputs is refused.
RECORD = [
    "python",
    "-c",
    "import json, os, shutil, sys; "
    "open(os.environ['RECORD_FILE'], 'a').write(json.dumps({'job': os.environ['FTGUARD_JOB'], "
    "'bundle': os.path.exists(os.environ['FTGUARD_APPROVAL_BUNDLE']), "
    "'dataset': sys.argv[1], 'data': open(sys.argv[1]).read()}) + '\\n'); "
    "shutil.copytree(sys.argv[2], sys.argv[3])",
    "{dataset}",
    "{base_model}",
    "{output}",
]


def _record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], Path]:
    out = tmp_path / "ran.jsonl"
    monkeypatch.setenv("RECORD_FILE", str(out))  # the launcher passes its environment on
    return list(RECORD), out


def test_unapproved_job_is_refused(
    cp: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    command, out = _record(tmp_path, monkeypatch)
    job = cp.submit(command=command)
    with pytest.raises(VerificationError, match="not approved"):
        service.launch(cp.ws, actor="alice", job_id=job)
    assert not out.exists()


def test_approved_command_runs_once_on_staged_read_only_inputs(
    cp: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    command, out = _record(tmp_path, monkeypatch)
    job = cp.approved(command=command)
    original = (cp.root / "job" / "train.jsonl").read_text()
    assert service.launch(cp.ws, actor="alice", job_id=job) == 0
    seen = json.loads(out.read_text())
    assert seen["job"] == job and seen["bundle"] is True and seen["data"] == original
    staged = Path(seen["dataset"])
    assert cp.ws.staged_dir in staged.parents and staged != cp.root / "job" / "train.jsonl"
    assert staged.parent.name == manifest_of(cp.root / "job" / "train.jsonl").root
    assert not staged.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    view = service.get_job(cp.ws, job)
    assert view.state == "trained" and view.run_count == 1
    assert {a["status"] for a in view.approvals} == {"consumed"}
    end = [e for e in service.iter_audit(cp.ws, job_id=job) if e.action == "run.end"][0]
    assert end.actor == "alice"
    assert end.payload["output"]["root"] == manifest_of(view.output_path or "").root
    with pytest.raises(VerificationError, match="trained, not approved"):
        service.launch(cp.ws, actor="alice", job_id=job)
    actions = [e.action for e in service.iter_audit(cp.ws, job_id=job)]
    assert actions.count("run.start") == 1 and actions.count("run.end") == 1
    start = [e for e in service.iter_audit(cp.ws, job_id=job) if e.action == "run.start"][0]
    assert start.payload["bound"] is True
    assert service.verify_audit(cp.ws).ok


def test_dataset_swapped_during_the_run_does_not_reach_training(
    cp: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The command first overwrites the original dataset (named in its environment: a command
    # that names a file outside the staged inputs is refused), then reads the path it was given.
    monkeypatch.setenv("SUBMITTED_DATASET", str(cp.root / "job" / "train.jsonl"))
    swap = [
        "python",
        "-c",
        "import os, shutil, sys; open(os.environ['SUBMITTED_DATASET'], 'w').write('evil'); "
        "shutil.copytree(sys.argv[2], sys.argv[3]); "
        "open(sys.argv[3] + '/seen.txt', 'w').write(open(sys.argv[1]).read())",
        "{dataset}",
        "{base_model}",
        "{output}",
    ]
    job = cp.approved(command=swap)
    original = (cp.root / "job" / "train.jsonl").read_text()
    assert service.launch(cp.ws, actor="alice", job_id=job) == 0
    output = Path(service.get_job(cp.ws, job).output_path or "")
    assert (output / "seen.txt").read_text() == original


def test_failing_command_marks_failed(cp: Env) -> None:
    job = cp.approved(command=["python", "-c", "raise SystemExit(3)"])
    assert service.launch(cp.ws, actor="alice", job_id=job) == 3
    assert service.get_job(cp.ws, job).state == "failed"


def test_success_without_output_or_with_a_link_in_it_fails_the_run(cp: Env) -> None:
    nothing = cp.approved("a", command=["python", "-c", "pass"])
    assert service.launch(cp.ws, actor="alice", job_id=nothing) == 0
    assert service.get_job(cp.ws, nothing).state == "failed"
    link = [
        "python",
        "-c",
        "import os, sys; os.makedirs(sys.argv[1]); open(sys.argv[1] + '/w.bin', 'w').write('w'); "
        "os.symlink('w.bin', sys.argv[1] + '/extra')",
        "{output}",
    ]
    linked = cp.approved("b", command=link)
    assert service.launch(cp.ws, actor="alice", job_id=linked) == 0
    assert service.get_job(cp.ws, linked).state == "failed"
    end = [e for e in service.iter_audit(cp.ws, job_id=linked) if e.action == "run.end"][0]
    assert "symbolic link" in end.payload["problem"]


@pytest.mark.parametrize(
    "change",
    [
        "dataset_byte",
        "model_byte",
        "model_file_added",
        "model_file_removed",
        "config_byte",
        "model_symlink_added",
        "model_dangling_link_added",
        "model_fifo_added",
    ],
)
def test_changed_inputs_block_the_run(
    cp: Env, tmp_path: Path, change: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    command, out = _record(tmp_path, monkeypatch)
    job = cp.approved(command=command)
    model, data, cfg = (
        cp.root / "job" / "model",
        cp.root / "job" / "train.jsonl",
        cp.root / "job" / "config.yaml",
    )
    if change == "dataset_byte":
        raw = bytearray(data.read_bytes())
        raw[5] ^= 0x20
        data.write_bytes(bytes(raw))
        expected = "dataset .*changed after approval"
    elif change == "model_byte":
        raw = bytearray((model / "model.safetensors").read_bytes())
        raw[-1] ^= 1
        (model / "model.safetensors").write_bytes(bytes(raw))
        expected = "base model .*changed after approval"
    elif change == "model_file_added":
        (model / "adapter.safetensors").write_bytes(b"x")
        expected = "base model .*changed after approval"
    elif change == "model_file_removed":
        (model / "config.json").unlink()
        expected = "base model .*changed after approval"
    elif change == "model_symlink_added":
        (model / "extra").symlink_to(tmp_path)
        expected = "symbolic link"
    elif change == "model_dangling_link_added":
        (model / "gone.safetensors").symlink_to(tmp_path / "nowhere")
        expected = "symbolic link"
    elif change == "model_fifo_added":
        os.mkfifo(model / "pipe")
        expected = "a FIFO"
    else:
        cfg.write_text(cfg.read_text().replace("0.001", "0.01"))
        expected = "config .*changed after approval"
    with pytest.raises(VerificationError, match=expected):
        service.launch(cp.ws, actor="alice", job_id=job)
    assert not out.exists()
    assert service.get_job(cp.ws, job).state == "approved"


def test_special_files_are_refused_at_submission(cp: Env) -> None:
    model, data, cfg = cp.inputs("special")
    os.mkfifo(model / "pipe")
    with pytest.raises(BadInputError, match="a FIFO"):
        service.submit_job(
            cp.ws,
            actor="alice",
            base_model=model,
            dataset=data,
            config=cfg,
            purpose="p",
            prepared_by="dan",
        )


def test_only_the_requester_or_a_runner_starts_a_run(
    cp: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    command, out = _record(tmp_path, monkeypatch)
    job = cp.approved(command=command)
    with pytest.raises(PermissionDeniedError, match="only its requester"):
        service.launch(cp.ws, actor="bob", job_id=job)
    with pytest.raises(Exception, match="unknown user 'mallory'"):
        service.launch(cp.ws, actor="mallory", job_id=job)
    assert service.get_job(cp.ws, job).state == "approved"  # approvals not used up
    service.add_user(cp.ws, actor="root", name="ci", roles=["runner"])
    key = service.create_key(cp.ws, user="ci")
    service.confirm_key(cp.ws, actor="root", keyid=key.keyid)
    assert service.launch(cp.ws, actor="ci", job_id=job) == 0
    assert service.get_job(cp.ws, job).state == "trained"


def test_free_form_command_is_refused_unless_the_policy_allows_it(cp: Env, tmp_path: Path) -> None:
    job = cp.approved()
    evil = tmp_path / "evil.jsonl"
    evil.write_text('{"messages": []}\n')
    insider = [sys.executable, "-m", "ftguard.training", "--dataset", str(evil)]
    with pytest.raises(PermissionDeniedError, match="free-form run commands"):
        service.launch(cp.ws, actor="alice", job_id=job, command=insider)
    assert service.get_job(cp.ws, job).state == "approved"

    cp.set_policy(cp.ws.policy_path.read_text() + "run:\n  allow_free_command: true\n")
    again = cp.approved("again")
    ticket = service.start_run(cp.ws, actor="alice", job_id=again, command=insider)
    assert ticket.bound is False
    start = [e for e in service.iter_audit(cp.ws, job_id=again) if e.action == "run.start"][0]
    assert start.payload["bound"] is False
    # The trainer-side guard refuses a dataset that is not the staged, approved copy.
    with pytest.raises(VerificationError, match="not the approved, staged copy"):
        service.verify_running(cp.ws, job_id=again, token=ticket.token, inputs={"dataset": evil})
    service.verify_running(
        cp.ws, job_id=again, token=ticket.token, inputs={"dataset": ticket.staged["dataset"]}
    )


def test_the_policy_changed_since_approval_refuses_the_run(cp: Env) -> None:
    job = cp.approved()
    cp.set_policy(cp.ws.policy_path.read_text().replace("lifetime_hours: 72", "lifetime_hours: 24"))
    with pytest.raises(VerificationError, match="another policy"):
        service.launch(cp.ws, actor="alice", job_id=job)


def test_cli_run_exit_codes(cp: Env, capsys: pytest.CaptureFixture[str]) -> None:
    job = cp.submit(command=["python", "-c", "raise SystemExit(4)"])
    assert main(["run", job, "--as", "alice"]) == 6
    assert "not approved" in capsys.readouterr().err
    assert main(["run", "job-nope", "--as", "alice"]) == 3
    service.approve(cp.ws, actor="bob", job_id=job)
    service.approve(cp.ws, actor="carol", job_id=job)
    assert main(["run", job, "--as", "alice", "--", sys.executable, "-c", "pass"]) == 4
    assert "free-form" in capsys.readouterr().err
    assert main(["run", job, "--as", "alice"]) == 4
    assert service.get_job(cp.ws, job).state == "failed"


def test_conflicting_second_start(cp: Env) -> None:
    job = cp.approved()
    ticket = service.start_run(cp.ws, actor="alice", job_id=job)
    with pytest.raises((ConflictError, VerificationError)):
        service.start_run(cp.ws, actor="alice", job_id=job)
    with pytest.raises(VerificationError, match="run token"):
        service.finish_run(cp.ws, actor="alice", job_id=job, token="forged", exit_code=0)
    service.finish_run(cp.ws, actor="alice", job_id=job, token=ticket.token, exit_code=0)
    assert service.get_job(cp.ws, job).state == "failed"  # exit 0 but no output folder


def test_approved_config_with_duplicate_keys_is_refused(cp: Env) -> None:
    job = cp.approved()
    # A config that repeats a key is refused when it is first read, not silently resolved.
    with cp.ws.store.read() as session:
        from ftguard.control._jobs import get_job_row

        config = Path(get_job_row(session, job).config_path)
    from ftguard.control._runs import approved_command

    config.write_text("command: [python, -c, pass]\ncommand: [python, -c, evil]\n")
    with pytest.raises(BadInputError, match="duplicate key"):
        approved_command(config, {})
