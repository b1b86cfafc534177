"""Fixtures for control-plane tests: a workspace on SQLite or on a real PostgreSQL server."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ftguard.control import Workspace, service

PG_URL = os.environ.get("FTGUARD_TEST_DATABASE_URL")
COPY_BASE = [
    "python",
    "-c",
    "import shutil, sys; shutil.copytree(sys.argv[1], sys.argv[2])",
    "{base_model}",
    "{output}",
]
"""The approved command of the test jobs: 'trains' by copying the staged base model."""
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _reset_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@dataclass
class Env:
    """A ready workspace: admin, requester, preparer, two approvers, a security reviewer."""

    ws: Workspace
    root: Path
    env: dict[str, str]

    def inputs(
        self, name: str = "job", command: list[str] | None = None
    ) -> tuple[Path, Path, Path]:
        folder = self.root / name
        model = folder / "model"
        model.mkdir(parents=True)
        (model / "config.json").write_text('{"model_type": "llama"}')
        (model / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
        data = folder / "train.jsonl"
        data.write_text(
            '{"messages": [{"role": "user", "content": "hi"}, '
            '{"role": "assistant", "content": "hello"}]}\n'
        )
        cfg = folder / "config.yaml"
        cfg.write_text(
            "learning_rate: 0.001\nsteps: 10\ncommand: " + json.dumps(command or COPY_BASE) + "\n"
        )
        return model, data, cfg

    def submit(
        self,
        name: str = "job",
        *,
        review: bool = False,
        requester: str = "alice",
        preparer: str = "dan",
        command: list[str] | None = None,
        confirm: bool = True,
    ) -> str:
        """Submit a job; unless ``review``, a security override sends it straight to approval.

        ``confirm``: the named preparer confirms the dataset, as the default policy requires.
        """
        model, data, cfg = self.inputs(name, command)
        job = service.submit_job(
            self.ws,
            actor=requester,
            base_model=model,
            dataset=data,
            config=cfg,
            purpose="customer support answers",
            prepared_by=preparer,
        )
        if confirm and preparer != requester:
            service.confirm_prepared(self.ws, actor=preparer, job_id=job.id)
        if not review:
            service.override_review(
                self.ws, actor="sec", job_id=job.id, justification="control-plane test"
            )
        return job.id

    def approved(self, name: str = "job", command: list[str] | None = None) -> str:
        job_id = self.submit(name, command=command)
        service.approve(self.ws, actor="bob", job_id=job_id)
        service.approve(self.ws, actor="carol", job_id=job_id)
        return job_id

    def set_policy(self, text: str) -> None:
        """Put a policy in force the way an admin does (signed into the audit chain)."""
        path = self.root / "policy-next.yaml"
        path.write_text(text)
        service.set_policy(self.ws, actor="root", path=path)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres" and not PG_URL:
        pytest.skip("PostgreSQL tests need FTGUARD_TEST_DATABASE_URL (CI sets it)")
    return str(request.param)


@pytest.fixture
def cp(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    env = {"FTGUARD_KEYS_DIR": str(tmp_path / "keys"), "FTGUARD_HOME": str(tmp_path / "ws")}
    if backend == "postgres":
        assert PG_URL
        _reset_postgres(PG_URL)
        env["FTGUARD_DATABASE_URL"] = PG_URL
    else:
        monkeypatch.delenv("FTGUARD_DATABASE_URL", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("FTGUARD_USER", raising=False)
    ws = service.init_workspace(tmp_path / "ws", admin="root")
    for name, roles in {
        "alice": ["requester"],
        "dan": ["data_preparer"],
        "bob": ["approver"],
        "carol": ["approver"],
        "erin": ["approver"],
        "sec": ["security_reviewer"],
    }.items():
        service.add_user(ws, actor="root", name=name, roles=roles)
        key = service.create_key(ws, user=name)
        service.confirm_key(ws, actor="root", keyid=key.keyid)
    yield Env(ws=ws, root=tmp_path, env=env)
    ws.store.dispose()
