"""``ftguard server`` as a real process: it serves, logs JSON without secrets, stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx

from ftguard.control import service
from tests.control.conftest import Env
from tests.server.conftest import _free_port


def test_the_server_process_serves_logs_json_and_stops_on_sigterm(cp: Env) -> None:
    service.register_server(cp.ws, actor="root")
    token = service.create_token(cp.ws, actor="root", user="bob")["token"]
    port = _free_port()
    env = {**os.environ, **cp.env}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ftguard",
            "server",
            "--port",
            str(port),
            "--storage-root",
            f"data={cp.root}",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert httpx.get(f"{url}/readyz").json()["status"] == "ready"
        ok = httpx.get(f"{url}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and ok.json()["user"] == "bob"
        bad = httpx.get(
            f"{url}/api/v1/whoami?code=secret-code", headers={"Authorization": "Bearer ftg_x"}
        )
        assert bad.status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert proc.returncode in (0, -signal.SIGTERM), err
    assert "Traceback" not in err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    requests = [entry for entry in lines if entry.get("event") == "request"]
    assert {r["path"] for r in requests} >= {"/healthz", "/api/v1/whoami"}
    assert all(len(r["request_id"]) == 16 for r in requests)
    assert any(r["user"] == "bob" and r["status"] == 200 for r in requests)
    assert token not in err and token.split("_")[2] not in err and "secret-code" not in err


def test_settling_the_heap_sets_live_objects_aside_and_still_collects_new_garbage() -> None:
    import gc
    import weakref

    from ftguard.server import settle_heap

    class Node:
        other: object = None

    try:
        before = Node()  # alive when the heap settles: set aside from then on
        before.other = before
        kept = weakref.ref(before)
        set_aside = settle_heap()
        assert set_aside > 1000  # the modules loaded so far, at least
        del before
        gc.collect()
        # A set-aside cycle is no longer walked, so it outlives its last reference. (The count
        # itself is no measure: a set-aside object freed by its reference count leaves it.)
        assert kept() is not None
        cycle, partner = Node(), Node()
        cycle.other, partner.other = partner, cycle
        gone = weakref.ref(cycle)
        del cycle, partner
        gc.collect()
        assert gone() is None  # garbage made after settling is still collected
        gc.unfreeze()
        gc.collect()
        assert kept() is None  # and once the heap is given back, the old cycle goes too
    finally:
        gc.unfreeze()  # give the test process its heap back
