"""Storage roots in object storage (S3), against a real S3-compatible server on loopback.

moto's standalone server answers the S3 API over HTTP on a free port: boto3, the server and
the training machine's CLI talk to it as they would to S3 or MinIO; nothing of boto3 is mocked.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ftguard._objects import ObjectRoot
from ftguard.control import service
from ftguard.digests import manifest_of
from ftguard.errors import BadInputError, MissingDependencyError, PermissionDeniedError
from ftguard.server import ServerSettings, create_app
from ftguard.server._storage import reference_of, resolve_input, resolve_output
from tests.control.conftest import Env
from tests.server.conftest import USERS, CliRun, Server, _free_port

BUCKET = "lake"
PREFIX = "team"


@dataclass
class S3:
    """A running S3-compatible server with one bucket, and a boto3 client to it."""

    endpoint: str
    client: Any

    def put_tree(self, local: Path, key: str) -> None:
        """Upload a file, or every file under a folder, to ``key`` (a key prefix for a folder)."""
        if local.is_file():
            self.client.put_object(Bucket=BUCKET, Key=key, Body=local.read_bytes())
            return
        for path in sorted(local.rglob("*")):
            if path.is_file():
                rel = path.relative_to(local).as_posix()
                self.client.put_object(Bucket=BUCKET, Key=f"{key}/{rel}", Body=path.read_bytes())

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=BUCKET, Key=key, Body=body)

    def keys(self, prefix: str) -> list[str]:
        answer = self.client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return sorted(item["Key"] for item in answer.get("Contents", []))

    def root(self, **extra: Any) -> dict[str, Any]:
        """The settings of the storage root ``s3://lake/team`` on this server."""
        return {"uri": f"s3://{BUCKET}/{PREFIX}", "endpoint_url": self.endpoint, **extra}


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3]:
    pytest.importorskip("boto3", reason="object-storage roots need ftguard[s3] (boto3)")
    moto_server = pytest.importorskip(
        "moto.server", reason="the S3 tests need moto[server] (in ftguard[dev])"
    )
    import boto3

    # Only this test's fake credentials and endpoint; nothing from the machine's AWS setup.
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port())
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto keeps its buckets in the process: start each test from an empty store.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
    client = boto3.session.Session().client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=BUCKET)
    try:
        yield S3(endpoint=endpoint, client=client)
    finally:
        server.stop()


def _settings(cp: Env, roots: dict[str, Any]) -> ServerSettings:
    return ServerSettings(
        workspace=cp.root / "ws",
        database_url=cp.env.get("FTGUARD_DATABASE_URL"),
        storage_roots=roots,
    )


@contextmanager
def _serving(cp: Env, roots: dict[str, Any]) -> Iterator[Server]:
    from fastapi.testclient import TestClient

    service.register_server(cp.ws, actor="root")
    app = create_app(_settings(cp, roots))
    tokens = {u: service.create_token(cp.ws, actor="root", user=u)["token"] for u in USERS}
    with TestClient(app) as client:
        yield Server(cp=cp, client=client, tokens=tokens)


@pytest.fixture
def lake(cp: Env, s3: S3) -> Iterator[Server]:
    """The app with a folder root ``data`` and an object root ``lake`` (s3://lake/team)."""
    with _serving(cp, {"data": cp.root, "lake": s3.root()}) as running:
        yield running


def _upload_inputs(cp: Env, s3: S3, name: str = "job") -> tuple[Path, Path, Path]:
    """The usual job inputs, made on disk and put under ``team/NAME/`` in the bucket."""
    model, data, cfg = cp.inputs(name)
    for local in (model, data, cfg):
        s3.put_tree(local, f"{PREFIX}/{name}/{local.name}")
    return model, data, cfg


def _submit(server: Server, name: str = "job", **inputs: str) -> Any:
    body = {
        "base_model": f"lake/{name}/model",
        "dataset": f"lake/{name}/train.jsonl",
        "config": f"lake/{name}/config.yaml",
        "purpose": "customer support answers",
        "prepared_by": "dan",
        **inputs,
    }
    return server.post("/api/v1/jobs", "alice", json=body)


def _cache(cp: Env) -> Path:
    return cp.ws.path / "cache" / "objects" / "lake"


def test_inputs_in_object_storage_are_downloaded_hashed_and_named_by_reference(
    lake: Server, s3: S3
) -> None:
    cp = lake.cp
    model, data, cfg = _upload_inputs(cp, s3)
    answer = _submit(lake)
    assert answer.status_code == 201, answer.text
    job = answer.json()
    # The digests recorded are those of the same files on disk.
    assert job["base_model"]["sha256"] == manifest_of(model).root
    assert job["dataset"]["sha256"] == manifest_of(data).root
    assert job["config"]["sha256"] == manifest_of(cfg).root
    # The server works on its private copy, and names it by reference in a run ticket.
    cached = Path(job["dataset"]["path"])
    assert cached == (_cache(cp) / "job" / "train.jsonl").resolve()
    assert cached.read_bytes() == data.read_bytes()
    roots = _settings(cp, {"data": cp.root, "lake": s3.root()}).storage_roots
    # The cache lies inside the folder root "data" here: the object root still wins.
    assert reference_of(roots, job["base_model"]["path"]) == "lake/job/model"
    assert reference_of(roots, cached) == "lake/job/train.jsonl"
    assert not list(_cache(cp).parent.glob(".incoming-*"))  # no scratch left behind
    assert service.verify_audit(cp.ws).ok


@pytest.mark.parametrize(
    "reference",
    [
        "lake/../secret.jsonl",
        "lake/job/../../secret.jsonl",
        "lake/missing.jsonl",
        "lake/job/nothing-here",
        "lake/job/train.jsonl\\..",
        "lake",
    ],
)
def test_references_outside_the_prefix_or_missing_are_refused(
    lake: Server, s3: S3, reference: str
) -> None:
    _upload_inputs(lake.cp, s3)
    s3.put("secret.jsonl", b'{"messages": []}\n')  # in the bucket, outside the root's prefix
    head = lake.head_seq()
    answer = _submit(lake, dataset=reference)
    assert answer.status_code in (400, 403), answer.text
    assert "\n" not in answer.json()["message"]
    assert service.list_jobs(lake.cp.ws) == []
    assert lake.head_seq() == head
    assert not (_cache(lake.cp) / "secret.jsonl").exists()


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (["bad/a\\b.txt"], "unsafe local name"),
        (["bad/a//b.txt"], "unsafe local name"),
        (["bad/../../evil.txt"], "unsafe local name"),
        (["bad/./x.txt"], "unsafe local name"),
        (["bad/x", "bad/x/y"], "both an object and a folder"),
        (["bad", "bad/y"], "both an object and a folder"),
    ],
)
def test_object_keys_that_make_unsafe_or_clashing_names_are_refused(
    lake: Server, s3: S3, keys: list[str], message: str
) -> None:
    _upload_inputs(lake.cp, s3)
    for key in keys:
        s3.put(f"{PREFIX}/{key}", b"x")
    answer = _submit(lake, base_model="lake/bad")
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["message"]
    assert service.list_jobs(lake.cp.ws) == []


def test_inputs_over_the_roots_limits_are_refused(cp: Env, s3: S3) -> None:
    _upload_inputs(cp, s3)
    for limits, message in (({"max_objects": 1}, "max_objects"), ({"max_bytes": 40}, "max_bytes")):
        with _serving(cp, {"lake": s3.root(**limits)}) as server:
            answer = _submit(server)
            assert answer.status_code == 400, answer.text
            assert message in answer.json()["message"]
    assert service.list_jobs(cp.ws) == []


def test_each_submission_downloads_afresh_and_a_changed_object_is_caught(
    lake: Server, s3: S3
) -> None:
    cp = lake.cp
    _upload_inputs(cp, s3)
    first = _submit(lake).json()
    assert (
        lake.post(
            f"/api/v1/jobs/{first['id']}/override", "sec", json={"justification": "t"}
        ).status_code
        == 200
    )
    assert lake.post(f"/api/v1/jobs/{first['id']}/prepared", "dan", json={}).status_code == 200
    assert lake.sign_approval("bob", first["id"]).status_code == 201
    assert lake.sign_approval("carol", first["id"]).status_code == 201
    # The dataset is replaced in the bucket; the next submission sees the new bytes, not the
    # cached copy (same size, so no metadata shortcut could tell).
    old = (cp.root / "job" / "train.jsonl").read_bytes()
    new = old.replace(b"hello", b"HELLO")
    assert len(new) == len(old)
    s3.put(f"{PREFIX}/job/train.jsonl", new)
    second = _submit(lake).json()
    assert second["dataset"]["sha256"] != first["dataset"]["sha256"]
    assert Path(second["dataset"]["path"]).read_bytes() == new
    # The approved first job's dataset no longer is what was approved: no run starts.
    started = lake.post(f"/api/v1/jobs/{first['id']}/runs", "alice", json={})
    assert started.status_code == 422, started.text
    assert "changed on storage after approval" in started.json()["message"]


def test_a_change_in_the_bucket_alone_stops_the_run_start(lake: Server, s3: S3) -> None:
    """No resubmission needed: starting a run reads the inputs from the bucket again."""
    cp = lake.cp
    _upload_inputs(cp, s3)
    job = _submit(lake).json()
    assert (
        lake.post(
            f"/api/v1/jobs/{job['id']}/override", "sec", json={"justification": "t"}
        ).status_code
        == 200
    )
    assert lake.post(f"/api/v1/jobs/{job['id']}/prepared", "dan", json={}).status_code == 200
    assert lake.sign_approval("bob", job["id"]).status_code == 201
    assert lake.sign_approval("carol", job["id"]).status_code == 201
    old = (cp.root / "job" / "train.jsonl").read_bytes()
    s3.put(f"{PREFIX}/job/train.jsonl", old.replace(b"hello", b"HELLO"))
    started = lake.post(f"/api/v1/jobs/{job['id']}/runs", "alice", json={})
    assert started.status_code == 422, started.text
    assert "changed on storage after approval" in started.json()["message"]
    s3.put(f"{PREFIX}/job/train.jsonl", old)  # put back: the approved bytes start the run
    assert lake.post(f"/api/v1/jobs/{job['id']}/runs", "alice", json={}).status_code == 201


def test_outputs_in_object_roots_must_be_new(lake: Server, s3: S3) -> None:
    roots = _settings(lake.cp, {"lake": s3.root()}).storage_roots
    s3.put(f"{PREFIX}/runs/1/model.safetensors", b"x")
    with pytest.raises(BadInputError, match="already exists"):
        resolve_output(roots, "lake/runs/1")
    with pytest.raises(PermissionDeniedError):
        resolve_output(roots, "lake/../runs/2")
    assert resolve_output(roots, "lake/runs/2") == _cache(lake.cp) / "runs" / "2"


@pytest.fixture
def live_lake(cp: Env, s3: S3) -> Iterator[tuple[str, dict[str, str]]]:
    """The app over uvicorn on loopback with the object root ``lake``: (URL, tokens)."""
    import uvicorn

    service.register_server(cp.ws, actor="root")
    tokens = {u: service.create_token(cp.ws, actor="root", user=u)["token"] for u in USERS}
    app = create_app(_settings(cp, {"data": cp.root, "lake": s3.root()}))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
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


def _approved_over_cli(url: str, tokens: dict[str, str], cli: CliRun) -> str:
    code, out = cli(
        url,
        tokens["alice"],
        "job",
        "submit",
        "--base-model",
        "lake/job/model",
        "--dataset",
        "lake/job/train.jsonl",
        "--config",
        "lake/job/config.yaml",
        "--purpose",
        "support",
        "--prepared-by",
        "dan",
        "--json",
    )
    assert code == 0, out
    job_id = str(json.loads(out)["id"])
    assert cli(url, tokens["dan"], "job", "confirm-data", job_id)[0] == 0
    assert cli(url, tokens["sec"], "override", job_id, "--justification", "t")[0] == 0
    assert cli(url, tokens["bob"], "approve", job_id)[0] == 0
    assert cli(url, tokens["carol"], "approve", job_id)[0] == 0
    code, out = cli(url, tokens["alice"], "login", "--server", url, "--token", tokens["alice"])
    assert code == 0, out
    return job_id


def test_a_run_on_another_machine_stages_from_object_storage_and_uploads_the_output(
    cp: Env,
    s3: S3,
    live_lake: tuple[str, dict[str, str]],
    cli: CliRun,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, tokens = live_lake
    model, _, _ = _upload_inputs(cp, s3)
    job_id = _approved_over_cli(url, tokens, cli)
    # The training machine reaches the store through the standard AWS configuration.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.endpoint)
    work = tmp_path / "trainer"
    code, out = cli(
        url,
        tokens["alice"],
        "run",
        job_id,
        "--storage-root",
        f"lake=s3://{BUCKET}/{PREFIX}",
        "--work-dir",
        str(work),
    )
    assert code == 0, out
    assert len(list((work / "staged").iterdir())) == 3  # staged and checked like a mount's
    assert not (work / "runs" / job_id / "1" / "downloads").exists()
    # The output went to the bucket; the server downloaded and hashed it there.
    uploaded = s3.keys(f"{PREFIX}/ftguard-runs/{job_id}/1/")
    assert uploaded == [
        f"{PREFIX}/ftguard-runs/{job_id}/1/{p.name}" for p in sorted(model.iterdir())
    ]
    job = service.get_job(cp.ws, job_id)
    assert job.state == "trained"
    assert job.output_path == str((_cache(cp) / "ftguard-runs" / job_id / "1").resolve())
    end = next(e for e in service.iter_audit(cp.ws, job_id=job_id) if e.action == "run.end")
    assert end.payload["output"]["root"] == manifest_of(model).root  # the copied base model
    assert service.verify_audit(cp.ws).ok


def test_an_object_changed_after_approval_is_refused_on_the_training_machine(
    cp: Env,
    s3: S3,
    live_lake: tuple[str, dict[str, str]],
    cli: CliRun,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, tokens = live_lake
    model, data, cfg = _upload_inputs(cp, s3)
    job_id = _approved_over_cli(url, tokens, cli)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.endpoint)
    # The server reads the bucket again before it signs a ticket: a change there starts no run.
    s3.put(f"{PREFIX}/job/train.jsonl", b'{"messages": []}\n')
    run = ("run", job_id, "--work-dir", str(tmp_path / "w"), "--storage-root")
    code, out = cli(url, tokens["alice"], *run, f"lake=s3://{BUCKET}/{PREFIX}")
    assert code == 6 and "changed on storage after approval" in out, out
    assert service.get_job(cp.ws, job_id).state == "approved"
    # The training machine checks its own copy too: its mount of the root (here a mirror
    # prefix) holding other bytes than those approved is refused there, and the run fails.
    s3.put_tree(data, f"{PREFIX}/job/train.jsonl")  # the server's copy is right again
    for local in (model, cfg):
        s3.put_tree(local, f"mirror/job/{local.name}")
    s3.put("mirror/job/train.jsonl", b'{"messages": []}\n')
    code, out = cli(url, tokens["alice"], *run, f"lake=s3://{BUCKET}/mirror")
    assert code == 6 and "changed after approval" in out, out
    assert service.get_job(cp.ws, job_id).state == "failed"
    assert s3.keys(f"{PREFIX}/ftguard-runs/") == [] and s3.keys("mirror/ftguard-runs/") == []


def test_settings_take_a_uri_or_a_mapping_and_refuse_what_is_not_s3(tmp_path: Path) -> None:
    settings = ServerSettings(
        workspace=tmp_path,
        storage_roots={
            "data": tmp_path,
            "lake": "s3://bucket/some/prefix/",
            "minio": {"uri": "s3://bucket", "endpoint_url": "http://127.0.0.1:9000"},
        },
        object_cache=tmp_path / "cache",
    )
    lake = settings.storage_roots["lake"]
    assert isinstance(lake, ObjectRoot) and (lake.bucket, lake.prefix) == ("bucket", "some/prefix")
    assert lake.key_of(("x", "y.jsonl")) == "some/prefix/x/y.jsonl"
    assert lake.cache_folder() == tmp_path / "cache" / "lake"
    minio = settings.storage_roots["minio"]
    assert isinstance(minio, ObjectRoot) and minio.key_of(("a",)) == "a"
    for bad, message in (
        ("gs://bucket/x", "only s3://"),
        ("s3://Bucket/x", "bucket name"),
        ("s3://bucket/a/../b", "plain key segments"),
        ({"uri": "s3://bucket", "endpoint_url": "ftp://x"}, "http"),
        ({"uri": "s3://bucket", "secret": "x"}, "Extra inputs"),
        ("relative/folder", "absolute"),
    ):
        with pytest.raises(ValueError, match=message):
            ServerSettings(workspace=tmp_path, storage_roots={"lake": bad})
    # The same on the command line (the server's and the training machine's --storage-root).
    from ftguard.cli.server import storage_roots

    parsed = storage_roots(["lake=s3://bucket/p", f"data={tmp_path}"])
    assert isinstance(parsed["lake"], ObjectRoot) and parsed["data"] == tmp_path.resolve()
    with pytest.raises(BadInputError, match="--storage-root lake: .*only s3://"):
        storage_roots(["lake=gs://bucket/p"])


def test_without_boto3_an_object_root_names_the_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 now fails, as uninstalled
    roots = ServerSettings(
        workspace=tmp_path, storage_roots={"lake": "s3://bucket/x"}, object_cache=tmp_path / "c"
    ).storage_roots
    with pytest.raises(MissingDependencyError, match=r"ftguard\[s3\]"):
        resolve_input(roots, "lake/train.jsonl", what="dataset")
