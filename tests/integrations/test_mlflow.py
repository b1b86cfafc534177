"""The MLflow registry: deploy registers and aliases, verify-deployment checks a version.

The end-to-end tests start a real MLflow tracking server on loopback (SQLite backend, local
artifact store); it takes 30-90 s to start on a busy machine, so they are slow. The refusals
need no server: they must happen before any call to MLflow, which a listener that counts
connections shows.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftguard.cli import main
from ftguard.control import service
from ftguard.errors import BadInputError
from ftguard.integrations._mlflow import parse_models_uri
from tests.control.conftest import Env
from tests.integrations._jobs import blocked_job, passed_job

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking server on loopback: SQLite backend, file artifact store."""
    pytest.importorskip("mlflow", reason="needs ftguard[mlflow] and the mlflow server")
    root = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--default-artifact-root",
        (root / "artifacts").as_uri(),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    log = (root / "server.log").open("w")
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}"
                )
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


@pytest.mark.slow
@SQLITE
def test_deploy_registers_aliases_and_the_serving_side_verifies(
    cp: Env, mlflow_server: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    job, adapter, _ = passed_job(cp)
    args = ["--mlflow", "support-bot", "--tracking-uri", mlflow_server, "--json"]
    assert main(["deploy", job, "--as", "alice", *args]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["created"] and first["version"] == "1" and first["alias"] == "approved"
    assert service.get_job(cp.ws, job).state == "deployed"
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    version = client.get_model_version_by_alias("support-bot", "approved")
    assert version.version == "1"
    assert version.tags["ftguard.job_id"] == job
    assert version.tags["ftguard.model_digest"] == first["model_digest"]
    assert version.tags["ftguard.attestation_sha256"] == first["attestation_sha256"]
    # Again: the version is found by its digest, not registered twice.
    assert main(["deploy", job, "--as", "alice", *args]) == 0
    again = json.loads(capsys.readouterr().out)
    assert not again["created"] and again["version"] == "1"
    actions = [e.action for e in service.iter_audit(cp.ws, job_id=job)]
    assert actions[-3:] == ["job.deploy", "mlflow.register", "mlflow.register"]

    key = str(cp.ws.attestation_pub_path)
    verify = ["verify-deployment", "--mlflow", "models:/support-bot@approved"]
    verify += ["--trusted-key", key, "--tracking-uri", mlflow_server]
    kept = tmp_path / "served"
    assert main([*verify, "--download-to", str(kept), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["report"]["ok"] and out["job_id"] == job
    assert set(out["report"]["checks"]) == {
        "attestation",
        "model_signing",
        "base_model",
        "servable",
    }
    assert out["report"]["checks"]["base_model"]["ok"]  # the base its adapter_config names
    assert sorted(p.name for p in (kept / "model").iterdir()) == sorted(
        p.name for p in adapter.iterdir()
    )

    # Its pass revoked, the registered version is refused given the signed list.
    service.revoke_pass(cp.ws, actor="sec", job_id=job, reason="withdrawn upstream")
    listed = tmp_path / "revocations.json"
    listed.write_text(service.revocation_list(cp.ws).model_dump_json())
    assert main([*verify, "--revocations", str(listed)]) == 6
    assert "revoked" in capsys.readouterr().err

    # The stored files are changed in the artifact store after registration: refused.
    stored = Path(version.source.removeprefix("file://")) / "adapter_model.safetensors"
    stored.write_bytes(b"weights" * 9 + b"weightz")
    assert main(verify) == 6
    assert "not the attested model" in capsys.readouterr().err

    # Someone moves the alias by hand to a version ftguard never registered: refused.
    run = client.create_run(client.get_experiment_by_name("ftguard").experiment_id)
    client.log_artifacts(run.info.run_id, str(adapter), artifact_path="model")
    other = client.create_model_version(
        "support-bot", f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    client.set_registered_model_alias("support-bot", "approved", other.version)
    assert main(verify) == 6
    assert "carries no ftguard attestation" in capsys.readouterr().err


class _Listener:
    """A loopback port that counts the connections made to it (an MLflow that never answers)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.connections = 0
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        self.sock.close()


@SQLITE
def test_a_blocked_or_unpassed_job_never_gets_the_alias(
    cp: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    listener = _Listener()
    try:
        bad = blocked_job(cp)
        args = ["--mlflow", "support-bot", "--tracking-uri", listener.url]
        assert main(["deploy", bad, "--as", "alice", *args]) == 5
        assert "only a job that passed the gate gets an MLflow alias" in capsys.readouterr().err
        waiting = cp.approved("waiting")
        assert main(["deploy", waiting, "--as", "alice", *args]) == 5
        # Passed, but deployed by someone who is neither its requester nor an admin.
        job, adapter, _ = passed_job(cp, "good")
        assert main(["deploy", job, "--as", "bob", *args]) == 4
        # Passed, but its output changed after the gate attested it.
        (adapter / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 64}')
        assert main(["deploy", job, "--as", "alice", *args]) == 6
        assert "does not verify against its attestation" in capsys.readouterr().err
        assert listener.connections == 0  # every refusal came before any MLflow call
    finally:
        listener.close()
    assert service.get_job(cp.ws, bad).state == "blocked"
    assert service.get_job(cp.ws, job).state == "passed"
    refused = [e for e in service.iter_audit(cp.ws) if e.action == "mlflow.refused"]
    assert [(e.job_id, e.actor) for e in refused] == [
        (bad, "alice"),
        (waiting, "alice"),
        (job, "bob"),
        (job, "alice"),
    ]
    assert refused[0].payload["alias"] == "approved" and "blocked" in refused[0].payload["reason"]
    assert service.verify_audit(cp.ws).ok


def test_models_uris_and_names_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify-deployment", "--trusted-key", "attestation.pub"]) == 2
    assert "name the model folder and --attestation" in capsys.readouterr().err
    assert parse_models_uri("models:/support-bot@approved") == ("support-bot", "approved", None)
    assert parse_models_uri("models:/team/bot/3") == ("team/bot", None, "3")
    for bad in ("runs:/abc/model", "models:/", "models:/x@", "s3://bucket/model"):
        with pytest.raises(BadInputError):
            parse_models_uri(bad)
    from ftguard.integrations._mlflow import _checked_names

    for name, alias in (("bot", "latest"), ("bot", "v2"), ("x' or '1'='1", "approved")):
        with pytest.raises(BadInputError):
            _checked_names(name, alias)


def test_the_model_file_tag_names_the_only_file_of_the_artifact(tmp_path: Path) -> None:
    """Review of 2026-12-08: ``ftguard.model_file``, a tag any registry writer sets, chose the
    path that was checked. A version whose ``model/`` held an unapproved full model with the
    approved adapter copied into ``model/approved/``, tagged ``approved``, verified while the
    server loaded the folder around it (and an absolute tag checked a folder on the verifier's
    own disk). The tag must be a plain file name, and that file all the artifact holds."""
    from ftguard.integrations._mlflow import _served_path

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    approved = model / "approved"
    approved.mkdir()
    (approved / "adapter_model.safetensors").write_bytes(b"x")
    assert _served_path(model, None) == (model, None)
    for tag in ("approved", "approved/adapter_model.safetensors", "/srv/approved", "..", ""):
        path, problem = _served_path(model, tag)
        assert problem is not None and path == model, tag
    single = tmp_path / "single"
    single.mkdir()
    (single / "adapter.safetensors").write_bytes(b"x")
    assert _served_path(single, "adapter.safetensors") == (single / "adapter.safetensors", None)
    (single / "extra.safetensors").write_bytes(b"y")
    assert _served_path(single, "adapter.safetensors")[1] is not None
