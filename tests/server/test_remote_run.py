"""Runs on a training machine against the server: a signed ticket, checked offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftguard.attest import Envelope, generate_key, sign_statement
from ftguard.control import service
from ftguard.control._remote_runs import (
    start_remote_run,
    verify_run_ticket,
    verify_ticket_run,
)
from ftguard.errors import VerificationError
from tests.control.conftest import Env
from tests.server.conftest import CliRun, Server


def _approved(server: Server, name: str = "job") -> str:
    job_id = server.awaiting(name)
    assert server.sign_approval("bob", job_id).status_code == 201
    assert server.sign_approval("carol", job_id).status_code == 201
    return job_id


def test_a_run_on_another_machine_trains_from_staged_copies_and_records_the_output(
    cp: Env, live: tuple[str, dict[str, str]], cli: CliRun, tmp_path: Path
) -> None:
    url, tokens = live

    cp.inputs("job")
    code, out = cli(
        url,
        tokens["alice"],
        "job",
        "submit",
        "--base-model",
        "data/job/model",
        "--dataset",
        "data/job/train.jsonl",
        "--config",
        "data/job/config.yaml",
        "--purpose",
        "support",
        "--prepared-by",
        "dan",
        "--json",
    )
    job_id = json.loads(out)["id"]
    assert cli(url, tokens["dan"], "job", "confirm-data", job_id)[0] == 0
    assert cli(url, tokens["sec"], "override", job_id, "--justification", "t")[0] == 0
    assert cli(url, tokens["bob"], "approve", job_id)[0] == 0
    assert cli(url, tokens["carol"], "approve", job_id)[0] == 0
    # The training machine holds a token limited to runs; it pins the server key at login.
    trainer = service.create_token(cp.ws, actor="root", user="alice", scopes=["run"])["token"]
    code, out = cli(url, trainer, "login", "--server", url, "--token", trainer)
    assert code == 0 and "pinned the server key" in out
    code, out = cli(url, trainer, "job", "cancel", job_id)  # nothing but runs
    assert code == 4 and "needs the submit scope" in " ".join(out.split())
    work = tmp_path / "trainer"
    code, out = cli(
        url,
        trainer,
        "run",
        job_id,
        "--storage-root",
        f"data={cp.root}",
        "--work-dir",
        str(work),
    )
    assert code == 0, out
    job = service.get_job(cp.ws, job_id)
    assert job.state == "trained"
    assert job.output_path == str((cp.root / "ftguard-runs" / job_id / "1").resolve())
    staged = list((work / "staged").iterdir())
    assert len(staged) == 3  # three content-addressed, read-only copies
    events = service.iter_audit(cp.ws, job_id=job_id)
    start = next(e for e in events if e.action == "run.start")
    assert start.payload["remote"] is True and start.payload["output"].startswith("data/")
    end = next(e for e in events if e.action == "run.end")
    assert end.payload["output"]["root"] and end.via and end.via["method"] == "token"
    assert service.verify_audit(cp.ws).ok


def test_an_input_changed_on_the_training_machines_mount_is_refused(
    cp: Env, live: tuple[str, dict[str, str]], cli: CliRun, tmp_path: Path
) -> None:
    url, tokens = live
    cp.inputs("job")
    code, out = cli(
        url,
        tokens["alice"],
        "job",
        "submit",
        "--base-model",
        "data/job/model",
        "--dataset",
        "data/job/train.jsonl",
        "--config",
        "data/job/config.yaml",
        "--purpose",
        "support",
        "--prepared-by",
        "dan",
        "--json",
    )
    job_id = json.loads(out)["id"]
    cli(url, tokens["dan"], "job", "confirm-data", job_id)
    cli(url, tokens["sec"], "override", job_id, "--justification", "t")
    cli(url, tokens["bob"], "approve", job_id)
    cli(url, tokens["carol"], "approve", job_id)
    cli(url, tokens["alice"], "login", "--server", url, "--token", tokens["alice"])
    # The trainer's mount holds a poisoned copy of the dataset.
    mount = tmp_path / "mount"
    (mount / "job").mkdir(parents=True)
    for name in ("model", "config.yaml"):
        src = cp.root / "job" / name
        dst = mount / "job" / name
        if src.is_dir():
            import shutil

            shutil.copytree(src, dst)
        else:
            dst.write_bytes(src.read_bytes())
    (mount / "job" / "train.jsonl").write_text('{"messages": []}\n')
    code, out = cli(
        url,
        tokens["alice"],
        "run",
        job_id,
        "--storage-root",
        f"data={mount}",
        "--work-dir",
        str(tmp_path / "w"),
    )
    assert code == 6 and "changed after approval" in out
    assert service.get_job(cp.ws, job_id).state == "failed"


def test_the_ticket_holds_only_under_the_pinned_key_and_unaltered(server: Server) -> None:
    job_id = _approved(server)
    started = start_remote_run(
        server.cp.ws,
        actor="alice",
        job_id=job_id,
        references={k: f"data/job/{k}" for k in ("dataset", "base_model", "config")},
        output_reference="data/out",
    )
    key = server.cp.ws.server_key().public
    check = verify_run_ticket(started.ticket, key, token=started.token)
    assert check.approvers == ["bob", "carol"] and check.run == 1
    with pytest.raises(VerificationError):
        verify_run_ticket(started.ticket, generate_key().public)
    with pytest.raises(VerificationError, match="run token"):
        verify_run_ticket(started.ticket, key, token="x" * 32)
    # A ticket re-signed by a thief of some other key, with an approval dropped, is refused.
    import base64

    stmt = json.loads(base64.b64decode(started.ticket.payload))
    stmt["predicate"]["approvals"] = stmt["predicate"]["approvals"][:1]
    thief = generate_key()
    forged = sign_statement(stmt, thief)
    with pytest.raises(VerificationError):
        verify_run_ticket(forged, key)
    with pytest.raises(VerificationError, match="quorum"):
        verify_run_ticket(forged, thief.public)  # even under the thief's own key
    # An approval edited inside the ticket does not verify under its signer's key.
    stmt = json.loads(base64.b64decode(started.ticket.payload))
    stmt["predicate"]["approvals"][0]["envelope"]["payload"] = base64.b64encode(b"{}").decode()
    with pytest.raises(VerificationError):
        verify_run_ticket(sign_statement(stmt, thief), thief.public)


def test_the_trainer_side_check_confines_inputs_to_the_staged_copies(
    server: Server, tmp_path: Path
) -> None:
    job_id = _approved(server)
    started = start_remote_run(
        server.cp.ws,
        actor="alice",
        job_id=job_id,
        references={k: f"data/job/{k}" for k in ("dataset", "base_model", "config")},
        output_reference="data/out",
    )
    ticket = tmp_path / "ticket.json"
    ticket.write_text(started.ticket.model_dump_json())
    check = verify_run_ticket(started.ticket, server.cp.ws.server_key().public)
    staged = {k: tmp_path / "staged" / v["digest"] / v["name"] for k, v in check.inputs.items()}
    key = server.cp.ws.server_key().public
    verify_ticket_run(
        ticket,
        key,
        token=started.token,
        staged=staged,
        inputs={"dataset": staged["dataset"], "base_model": staged["base_model"] / "x"},
    )
    with pytest.raises(VerificationError, match="not the approved"):
        verify_ticket_run(
            ticket,
            key,
            token=started.token,
            staged=staged,
            inputs={"dataset": tmp_path / "other.jsonl"},
        )
    moved = dict(staged, dataset=tmp_path / "staged" / ("0" * 64) / "train.jsonl")
    with pytest.raises(VerificationError, match="not the approved"):
        verify_ticket_run(
            ticket, key, token=started.token, staged=moved, inputs={"dataset": moved["dataset"]}
        )
    assert Envelope.model_validate_json(ticket.read_text()).payloadType
