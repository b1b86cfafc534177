"""Fixtures for the team server: the control-plane workspace served by the real app."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the team server needs ftguard[server]")

import uvicorn  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from ftguard.attest import load_private_key, sign_statement  # noqa: E402
from ftguard.control import service  # noqa: E402
from ftguard.control._identities import private_key_path  # noqa: E402
from ftguard.server import ServerSettings, create_app  # noqa: E402
from tests.control.conftest import PG_URL, Env, backend, cp  # noqa: E402, F401, F811

USERS = ("root", "alice", "dan", "bob", "carol", "erin", "sec")


@dataclass
class Server:
    """The app over ``cp``'s workspace, and one API token per user."""

    cp: Env
    client: TestClient
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def get(self, path: str, user: str | None = None, **kw: Any) -> Any:
        return self.client.get(path, headers=self.auth(user) if user else None, **kw)

    def post(self, path: str, user: str | None = None, **kw: Any) -> Any:
        return self.client.post(path, headers=self.auth(user) if user else None, **kw)

    def head_seq(self) -> int:
        return service.verify_audit(self.cp.ws).head_seq

    def submit(self, name: str = "job", requester: str = "alice", preparer: str = "dan") -> str:
        self.cp.inputs(name)
        response = self.post(
            "/api/v1/jobs",
            requester,
            json={
                "base_model": f"data/{name}/model",
                "dataset": f"data/{name}/train.jsonl",
                "config": f"data/{name}/config.yaml",
                "purpose": "customer support answers",
                "prepared_by": preparer,
            },
        )
        assert response.status_code == 201, response.text
        job_id = str(response.json()["id"])
        if preparer != requester:  # the default policy asks the preparer to confirm
            confirmed = self.post(f"/api/v1/jobs/{job_id}/prepared", preparer, json={})
            assert confirmed.status_code == 200, confirmed.text
        return job_id

    def awaiting(self, name: str = "job") -> str:
        job_id = self.submit(name)
        response = self.post(
            f"/api/v1/jobs/{job_id}/override", "sec", json={"justification": "server test"}
        )
        assert response.status_code == 200, response.text
        return job_id

    def sign_approval(self, user: str, job_id: str, *, key_of: str | None = None) -> Any:
        """What ``ftguard approve`` does against a server: fetch, sign locally, post."""
        statement = self.get(f"/api/v1/jobs/{job_id}/approval-statement", user)
        assert statement.status_code == 200, statement.text
        key = load_private_key(private_key_path(key_of or user))
        envelope = sign_statement(statement.json(), key)
        return self.post(
            f"/api/v1/jobs/{job_id}/approvals",
            user,
            json={"envelope": envelope.model_dump(mode="json")},
        )


@contextmanager
def serving(env: Env, **settings: Any) -> Iterator[Server]:
    """The real app over ``env``'s workspace (server key registered, one token per user)."""
    service.register_server(env.ws, actor="root")
    app = create_app(
        ServerSettings(
            workspace=env.root / "ws",
            database_url=env.env.get("FTGUARD_DATABASE_URL"),
            storage_roots={"data": env.root},
            **settings,
        )
    )
    tokens = {u: service.create_token(env.ws, actor="root", user=u)["token"] for u in USERS}
    with TestClient(app) as client:
        yield Server(cp=env, client=client, tokens=tokens)


@pytest.fixture
def server(cp: Env) -> Iterator[Server]:  # noqa: F811
    with serving(cp) as running:
        yield running


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live(cp: Env) -> Iterator[tuple[str, dict[str, str]]]:  # noqa: F811
    """The real app served by uvicorn on a free loopback port: (its URL, a token per user)."""
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


CliRun = Callable[..., tuple[int, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> CliRun:
    """``cli(url, token, *args)``: run ``ftguard ARGS`` as the token's user; (exit, output)."""
    from ftguard.cli import main

    def run(url: str, token: str, *args: str) -> tuple[int, str]:
        monkeypatch.setenv("FTGUARD_SERVER", url)
        monkeypatch.setenv("FTGUARD_TOKEN", token)
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    return run
