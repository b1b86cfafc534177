"""The CLI as a client of a real server on loopback: same output, --json and exit codes."""

from __future__ import annotations

import json

import pytest

from ftguard.control import service
from tests.control.conftest import Env
from tests.server.conftest import CliRun


def test_the_cli_drives_a_job_to_approval_through_the_server(
    cp: Env, live: tuple[str, dict[str, str]], cli: CliRun
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
        "support answers",
        "--prepared-by",
        "dan",
        "--json",
    )
    assert code == 0, out
    job_id = json.loads(out)["id"]
    local = service.get_job(cp.ws, job_id).model_dump(mode="json")
    assert json.loads(out) == local  # the same JSON as the local command prints
    code, out = cli(url, tokens["sec"], "override", job_id, "--justification", "test")
    assert code == 0, out
    # No approval counts until the named preparer confirms the dataset; dan checks his copy.
    code, out = cli(url, tokens["bob"], "approve", job_id)
    assert code == 5 and "confirm-data" in out
    other = cp.root / "not-dans.jsonl"
    other.write_text('{"messages": []}\n')
    code, out = cli(url, tokens["dan"], "job", "confirm-data", job_id, "--dataset", str(other))
    assert code == 6 and "do not confirm it" in out
    assert cli(url, tokens["alice"], "job", "confirm-data", job_id)[0] == 4  # not the preparer
    code, out = cli(
        url,
        tokens["dan"],
        "job",
        "confirm-data",
        job_id,
        "--dataset",
        str(cp.root / "job/train.jsonl"),
    )
    assert code == 0 and "confirmed" in out, out
    # Separation of duties, and the same exit codes as locally.
    assert cli(url, tokens["dan"], "approve", job_id)[0] == 4
    assert cli(url, tokens["bob"], "approve", "job-0000000000")[0] == 3
    assert cli(url, tokens["bob"], "approve", job_id, "--as", "carol")[0] == 2
    code, out = cli(url, tokens["bob"], "approve", job_id)
    assert code == 0, out
    assert "binding" in out and "sha256:" in out
    code, out = cli(url, tokens["carol"], "approve", job_id, "--json")
    assert code == 0 and json.loads(out)["state"] == "approved"
    code, out = cli(url, tokens["carol"], "audit", "verify", "--json")
    assert code == 0 and json.loads(out)["ok"] is True
    code, out = cli(url, tokens["carol"], "audit", "export", "--job", job_id)
    actions = [json.loads(line)["action"] for line in out.splitlines()]
    assert actions.count("job.approve") == 2 and actions[-1] == "job.approved"


def test_login_whoami_tokens_and_local_only_commands(
    cp: Env, live: tuple[str, dict[str, str]], cli: CliRun
) -> None:
    url, tokens = live
    code, out = cli(url, tokens["root"], "whoami", "--json")
    assert code == 0 and json.loads(out)["user"] == "root"
    code, out = cli(url, tokens["root"], "token", "create", "--user", "erin", "--json")
    assert code == 0
    made = json.loads(out)
    code, out = cli(url, made["token"], "whoami")
    assert code == 0 and "erin" in out
    assert cli(url, tokens["bob"], "token", "create", "--user", "bob")[0] == 4
    assert cli(url, tokens["bob"], "token", "revoke", made["token_id"])[0] == 4  # not bob's
    assert cli(url, tokens["erin"], "token", "revoke", made["token_id"])[0] == 0  # her own
    assert cli(url, made["token"], "whoami")[0] == 4  # 401: unauthenticated
    # Commands that read the workspace's files refuse against a server, in one line.
    code, out = cli(url, tokens["root"], "policy", "show")
    assert code == 2 and "workspace's own machine" in out
    assert cli("http://127.0.0.1:9", tokens["root"], "whoami")[0] == 8


def test_scoped_tokens_and_unbinding_from_the_cli(
    cp: Env, live: tuple[str, dict[str, str]], cli: CliRun
) -> None:
    url, tokens = live
    code, out = cli(url, tokens["root"], "token", "create", "--user", "alice", "--scope", "run")
    assert code == 0 and "limited to read, run" in out
    code, out = cli(
        url, tokens["root"], "token", "create", "--user", "alice", "--scope", "submit", "--json"
    )
    made = json.loads(out)
    assert code == 0 and made["scopes"] == ["read", "submit"]
    code, out = cli(url, made["token"], "whoami", "--json")
    assert code == 0 and json.loads(out)["scopes"] == ["read", "submit"]
    code, out = cli(url, made["token"], "whoami")
    assert code == 0 and "limited to read, submit" in " ".join(out.split())
    # outside its scope: refused with the scope it needs (exit 4, like any 403)
    code, out = cli(url, made["token"], "token", "revoke", made["token_id"])
    assert code == 4 and "needs the keys scope" in out
    code, out = cli(url, tokens["root"], "token", "list")
    assert code == 0 and "read, submit" in out
    code, out = cli(url, tokens["root"], "token", "create", "--user", "bob", "--scope", "all")
    assert code == 6  # 422: not a scope
    code, out = cli(url, tokens["root"], "user", "unbind", "bob")
    assert code == 5 and "bound to no OIDC identity" in out
    assert cli(url, tokens["bob"], "user", "unbind", "bob")[0] == 4


def test_a_jobs_review_runs_on_the_server(
    cp: Env, live: tuple[str, dict[str, str]], cli: CliRun
) -> None:
    pytest.importorskip("sentence_transformers", reason="the policy's review needs ftguard[ml]")
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
        "customer support answers",
        "--prepared-by",
        "dan",
        "--json",
    )
    job_id = json.loads(out)["id"]
    assert cli(url, tokens["alice"], "review", job_id, "--scanners", "duplicates")[0] == 2
    code, out = cli(url, tokens["alice"], "review", job_id, "--json")
    review = json.loads(out.splitlines()[0])  # stdout first; then any warnings on stderr
    assert code in (0, 1) and review["examples"] == 1
    assert code == (0 if review["verdict"] == "pass" else 1)
    events = [
        e for e in service.iter_audit(cp.ws, job_id=job_id) if e.action.startswith("evidence.")
    ]
    assert events and events[-1].via and events[-1].via["method"] == "token"
    assert events[-1].actor == "alice"
