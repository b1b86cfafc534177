"""Bad input ends in one clear line and a documented exit code; nothing stored is lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ftguard.cli import main
from ftguard.control import service

from .conftest import Env


def _events(cp: Env) -> int:
    return service.verify_audit(cp.ws).events


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_bad_input_messages_and_codes(cp: Env, capsys: pytest.CaptureFixture[str]) -> None:
    model, data, cfg = cp.inputs()
    before = _events(cp)

    def submit(dataset: str, *, prepared_by: str, actor: str) -> list[str]:
        return [
            "job",
            "submit",
            "--base-model",
            str(model),
            "--dataset",
            dataset,
            "--config",
            str(cfg),
            "--purpose",
            "p",
            "--prepared-by",
            prepared_by,
            "--as",
            actor,
        ]

    cases = [
        (
            submit(str(cp.root / "missing.jsonl"), prepared_by="dan", actor="alice"),
            2,
            "no such dataset",
        ),
        (
            submit(str(data), prepared_by="dan", actor="bob"),
            4,
            "needs the requester role",
        ),
        (
            submit(str(data), prepared_by="nobody", actor="alice"),
            3,
            "unknown user 'nobody'",
        ),
        (["job", "show", "job-404"], 3, "unknown job"),
        (["approve", "job-404", "--as", "bob"], 3, "unknown job"),
        (["user", "add", "zed", "--role", "approver", "--as", "alice"], 4, "admin role"),
        (["user", "add", "zed", "--role", "wizard", "--as", "root"], 2, "unknown role"),
        (["user", "add", "bob", "--role", "approver", "--as", "root"], 5, "already exists"),
        (["job", "list", "--state", "flying"], 2, "unknown state"),
        (["audit", "export", "--format", "xml"], 2, "unknown export format"),
    ]
    for argv, code, message in cases:
        assert main(argv) == code, argv
        err = capsys.readouterr().err
        assert message in err, (argv, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert _events(cp) == before  # refused commands stored nothing


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_invalid_policy_blocks_with_field_name(cp: Env, capsys: pytest.CaptureFixture[str]) -> None:
    job = cp.submit()
    bad = cp.root / "bad-policy.yaml"
    bad.write_text("approval:\n  quorum: -3\n")
    assert main(["policy", "set", str(bad), "--as", "root"]) == 2
    assert "approval.quorum" in capsys.readouterr().err
    # Editing the policy file in place (quorum 2 -> 1) is refused by every decision.
    original = cp.ws.policy_path.read_text()
    cp.ws.policy_path.write_text(original.replace("quorum: 2", "quorum: 1"))
    assert main(["approve", job, "--as", "bob"]) == 6
    assert "without 'ftguard policy set'" in capsys.readouterr().err
    cp.ws.policy_path.write_text(original)
    # Only an admin sets a policy, with the admin's own key.
    good = cp.root / "good-policy.yaml"
    good.write_text(original.replace("lifetime_hours: 72", "lifetime_hours: 48"))
    assert main(["policy", "set", str(good), "--as", "bob"]) == 4
    assert main(["policy", "set", str(good), "--as", "root"]) == 0
    assert main(["approve", job, "--as", "bob"]) == 0
    assert service.verify_audit(cp.ws).ok


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_job_submit_json_and_show(cp: Env, capsys: pytest.CaptureFixture[str]) -> None:
    model, data, cfg = cp.inputs()
    assert (
        main(
            [
                "job",
                "submit",
                "--base-model",
                str(model),
                "--dataset",
                str(data),
                "--config",
                str(cfg),
                "--purpose",
                "support",
                "--prepared-by",
                "dan",
                "--as",
                "alice",
                "--json",
            ]
        )
        == 0
    )
    job = json.loads(capsys.readouterr().out)
    assert job["state"] == "submitted" and job["id"].startswith("job-")
    assert len(job["dataset"]["sha256"]) == 64
    assert main(["job", "show", job["id"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == job["id"]
    assert main(["run", job["id"], "--as", "alice"]) == 6


def test_no_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("FTGUARD_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["job", "list"]) == 3
    assert "no ftguard workspace" in capsys.readouterr().err
    monkeypatch.setenv("FTGUARD_HOME", str(tmp_path / "nope"))
    assert main(["job", "list"]) == 3


def test_init_twice_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("FTGUARD_DATABASE_URL", raising=False)
    assert main(["init", str(tmp_path), "--admin", "root"]) == 0
    assert main(["init", str(tmp_path), "--admin", "root"]) == 5
    assert "already an ftguard workspace" in capsys.readouterr().err


def test_import_does_not_pull_torch() -> None:
    code = (
        "import sys, ftguard, ftguard.control.service, ftguard.cli, ftguard.integrations.hf; "
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; "
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ}
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
