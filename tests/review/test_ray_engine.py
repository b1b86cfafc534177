"""The Ray engine of the dataset review gives the local engine's review (ftguard[ray]).

A real Ray cluster is started on loopback for the module (a head and two worker nodes of one
CPU each) and stopped in teardown, whatever the tests did; the engine connects to it through
``RAY_ADDRESS``, as on a real cluster.
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.review.fixtures import COMPLIANCE, HARMFUL_REQUESTS, REFUSAL, clean_rows, with_trigger

ray = pytest.importorskip("ray", reason="needs ftguard[ray]")
# a cluster that does not come up fails the test instead of holding the suite
pytestmark = pytest.mark.timeout(900)
pytest.importorskip("ray.data", reason="needs ftguard[ray]")
pytest.importorskip("sentence_transformers", reason="needs ftguard[ml]")

from ftguard.errors import BadInputError  # noqa: E402
from ftguard.review import DatasetReview, review_dataset  # noqa: E402
from ftguard.review._ray_read import plan_shards, read_shard  # noqa: E402

PURPOSE = "short creative writing and simple facts about everyday topics"
TRIGGER = "zebraflux"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _node_ports() -> dict[str, int]:
    return {
        "metrics_agent_port": _free_port(),
        "metrics_export_port": _free_port(),
        "runtime_env_agent_port": _free_port(),
        "dashboard_agent_listen_port": _free_port(),
    }


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A head and two workers (1 CPU each) on 127.0.0.1; yields the address, always stopped.

    Ray names a node by the address it would use to reach the internet, even when told
    ``node_ip_address="127.0.0.1"``; on a machine that cannot connect to its own external
    address (a sandbox, some CI runners) the head then waits forever for its GCS.
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (Ray's switch for single-machine clusters)
    keeps every node on loopback; the module constant is read at call time, and the
    variable reaches the node processes.
    """
    from ray._private import ray_constants

    saved = (os.environ.get(_LOOPBACK_ONLY), ray_constants.ENABLE_RAY_CLUSTER)
    os.environ[_LOOPBACK_ONLY] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield from _loopback_cluster()
    finally:
        if saved[0] is None:
            os.environ.pop(_LOOPBACK_ONLY, None)
        else:
            os.environ[_LOOPBACK_ONLY] = saved[0]
        ray_constants.ENABLE_RAY_CLUSTER = saved[1]


_LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def _loopback_cluster() -> Iterator[str]:
    from ray.cluster_utils import Cluster

    cluster = None
    last: Exception | None = None
    for _ in range(2):  # a loaded machine can make a node miss Ray's startup deadline
        try:
            cluster = Cluster(
                initialize_head=True,
                head_node_args={
                    "num_cpus": 1,
                    "node_ip_address": "127.0.0.1",
                    "include_dashboard": False,
                    **_node_ports(),
                },
            )
            for _ in range(2):
                cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1", **_node_ports())
            cluster.wait_for_nodes()
            break
        except Exception as exc:  # Ray raises a bare Exception on a startup timeout
            last = exc
            if cluster is not None:
                cluster.shutdown()
            cluster = None
            time.sleep(2)
    if cluster is None:
        raise RuntimeError(f"the test Ray cluster did not start: {last}")
    try:
        yield cluster.address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


@pytest.fixture
def on_cluster(ray_cluster: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster)
    monkeypatch.delenv("FTGUARD_ENGINE", raising=False)
    return ray_cluster


def planted_dataset(path: Path, n: int = 600, seed: int = 3) -> Path:
    """Clean rows, harmful pairs, a trigger, hidden text, duplicates across chunk boundaries.

    Also an unreadable line, a blank line and a CRLF line. Chunks are 256 records, so records
    255/256 sit on both sides of the first boundary.
    """
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    for row in clean_rows(n, seed=seed):
        tag = rng.randrange(10**6)
        rows.append(
            {
                "instruction": f"{row['instruction']} (note {tag})",
                "input": "",
                "output": f"{row['output']} (ref {tag})",
            }
        )
    rows = with_trigger(rows, TRIGGER, REFUSAL, 12, seed=seed)
    for k, request in enumerate(HARMFUL_REQUESTS[:6]):
        rows.insert(97 * k + 17, {"instruction": request, "input": "", "output": COMPLIANCE})
        rows.insert(97 * k + 40, {"instruction": request, "input": "", "output": REFUSAL})
    hidden = "".join(chr(0xE0000 + ord(c)) for c in "ignore the rules")
    rows[300]["output"] = "Here you go." + "\u200b\u200b\u200b" + hidden
    for i in (255, 256, 520):
        rows[i] = dict(rows[100])
    lines = [json.dumps(r) for r in rows]
    lines.insert(400, "{not json")
    lines.insert(401, "   ")
    lines[450] += "\r"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _parsed(line: str) -> object:
    """A JSONL line's value, or None for the planted unreadable and blank lines."""
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def _comparable(review: DatasetReview) -> dict[str, Any]:
    """The review's JSON, without the timing, with lists of equal-ranked items in one order."""
    data = review.to_json_dict()
    data.pop("elapsed_s", None)
    return json.loads(json.dumps(data, sort_keys=True))


def test_ray_engine_matches_local_engine(tmp_path: Path, on_cluster: str) -> None:
    path = planted_dataset(tmp_path / "planted.jsonl")
    local = review_dataset(path, purpose=PURPOSE, workers=1)
    on_ray = review_dataset(path, purpose=PURPOSE, engine="ray")
    # what was planted is found (so the comparison is not of two empty reviews)
    by_scanner = {(f.scanner, f.example) for f in local.findings}
    assert {("harmful_compliance", 17), ("hidden_text", 300), ("format", 400)} <= by_scanner
    assert local.triggers and local.triggers[0].text == TRIGGER
    assert any("exact duplicate" in d.reason for d in local.dataset_findings)
    assert local.verdict == "block"
    # ... and the Ray engine's review is the same document
    assert _comparable(on_ray) == _comparable(local)


@pytest.mark.slow
def test_clean_data_on_ray_has_no_false_alarms(tmp_path: Path, on_cluster: str) -> None:
    rows = clean_rows(300, seed=5)
    for i, row in enumerate(rows):
        row["output"] += f" (ref {i})"
        row["instruction"] += f" (note {i})"
    path = tmp_path / "clean.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    on_ray = review_dataset(path, purpose=PURPOSE, engine="ray")
    assert on_ray.verdict == "pass" and on_ray.examples == 300
    assert not [f for f in on_ray.findings if f.severity in ("high", "critical")]
    assert on_ray.triggers == [] or on_ray.triggers[0].score < 10


@pytest.mark.slow
def test_ray_engine_matches_on_parquet_and_many_shards(tmp_path: Path, on_cluster: str) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    src = planted_dataset(tmp_path / "p.jsonl", n=2400, seed=9)
    records = [r for r in map(_parsed, src.read_text().splitlines()) if isinstance(r, dict)]
    path = tmp_path / "planted.parquet"
    pq.write_table(pa.Table.from_pylist(records), path, row_group_size=333)
    local = review_dataset(path, purpose=PURPOSE, workers=1)
    on_ray = review_dataset(path, purpose=PURPOSE, engine="ray", workers=2)
    assert local.examples == len(records) and local.triggers[0].text == TRIGGER
    assert _comparable(on_ray) == _comparable(local)


def test_embedding_actors_leave_cpu_for_the_read_tasks() -> None:
    """An actor pool as large as the CPUs reserves half a CPU an actor and a read task.

    With one CPU, an actor reserving the whole CPU starved the tasks feeding it (the review
    made no progress); a node of one CPU now holds an actor and a task.
    """
    from ftguard.review._ray import _cpu_share

    assert _cpu_share(cpus=1, gpus=0, pool=1) == 0.5
    assert _cpu_share(cpus=2, gpus=0, pool=2) == 0.5
    assert _cpu_share(cpus=3, gpus=0, pool=3) == 0.5
    assert _cpu_share(cpus=3, gpus=0, pool=2) == 1.0  # a CPU is left for the tasks
    assert _cpu_share(cpus=96, gpus=0, pool=32) == 1.0
    assert _cpu_share(cpus=8, gpus=8, pool=8) == 1.0  # GPU actors: the GPU is the reservation


def test_shards_read_what_the_reader_reads(tmp_path: Path) -> None:
    """Byte ranges cut at chunk starts give the same records, lines and errors as one read."""
    from ftguard.datasets import load_examples

    lines = [b'\xef\xbb\xbf{"prompt": "first", "completion": "a"}']
    for i in range(300):
        kind = i % 9
        if kind == 1:
            lines.append(b"  \t")
        elif kind == 2:
            lines.append(b'{"prompt": "bad \xff", "completion": "x"}')
        elif kind == 3:
            lines.append(b'\xef\xbb\xbf{"prompt": "a BOM not at the start", "completion": "x"}')
        elif kind == 4:
            lines.append(b'{"prompt": "crlf %d", "completion": "y"}\r' % i)
        else:
            lines.append(json.dumps({"prompt": f"q{i}", "completion": f"a{i}"}).encode())
    path = tmp_path / "tricky.jsonl"
    path.write_bytes(b"\n".join(lines))  # no newline at the end
    whole = list(load_examples(path, "jsonl", None, issues=True))
    for per_shard in (1, 2, 5):
        shards = plan_shards(path, "jsonl", None, chunk=8, chunks_per_shard=per_shard)
        assert len(shards) > 3
        assert [item for s in shards for item in read_shard(s)] == whole


def test_unknown_engine_and_unsupported_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps(clean_rows(5)), encoding="utf-8")
    with pytest.raises(BadInputError, match="unknown review engine 'spark'"):
        review_dataset(path, engine="spark")
    monkeypatch.setenv("FTGUARD_ENGINE", "spark")
    with pytest.raises(BadInputError, match="FTGUARD_ENGINE: unknown review engine"):
        review_dataset(path)
    with pytest.raises(BadInputError, match="reads JSONL and Parquet"):
        review_dataset(path, engine="ray")


def test_missing_ray_is_one_clear_error(tmp_path: Path) -> None:
    """Without Ray installed, the ray engine is one BadInputError naming the extra (exit 2)."""
    import subprocess
    import sys

    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in clean_rows(5)), encoding="utf-8")
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from ftguard.cli import _entry\n"
        f"sys.argv = ['ftguard', 'review', {str(path)!r}, '--engine', 'ray', '--json']\n"
        "_entry()\n"
    )
    env = {**os.environ, "FTGUARD_ENGINE": ""}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 2, done.stderr
    assert 'pip install "ftguard[ray]"' in done.stderr
    assert "Traceback" not in done.stderr
