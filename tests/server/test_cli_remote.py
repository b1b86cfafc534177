"""The CLI as a client of a real server on loopback: same output, --json and exit codes."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from ftguard.cli import main
from ftguard.control import service
from ftguard.server import ServerSettings, create_app
from tests.control.conftest import Env
from tests.server.conftest import USERS

_capsys: pytest.CaptureFixture[str]
_monkeypatch: pytest.MonkeyPatch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live(cp: Env) -> Iterator[tuple[str, dict[str, str]]]:
    service.register_server(cp.ws, actor="root")
    tokens = {u: service.create_token(cp.ws, actor="root", user=u)["token"] for u in USERS}
    app_ = create_app(
        ServerSettings(
            workspace=cp.root / "ws",
            database_url=cp.env.get("FTGUARD_DATABASE_URL"),
            storage_roots={"data": cp.root},
        )
    )
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app_, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}", tokens
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(autouse=True)
def _capture(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    global _capsys, _monkeypatch
    _capsys, _monkeypatch = capsys, monkeypatch


def cli(url: str, token: str, *args: str) -> tuple[int, str]:
    """Run ``ftguard ARGS`` against the server as the token's user; (exit code, output)."""
    _monkeypatch.setenv("FTGUARD_SERVER", url)
    _monkeypatch.setenv("FTGUARD_TOKEN", token)
    _capsys.readouterr()
    code = main(list(args))
    captured = _capsys.readouterr()
    return code, captured.out + captured.err


def test_the_cli_drives_a_job_to_approval_through_the_server(
    cp: Env, live: tuple[str, dict[str, str]]
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
    cp: Env, live: tuple[str, dict[str, str]], tmp_path: pytest.TempPathFactory
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
