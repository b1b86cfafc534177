"""Load test of the team server: concurrent API clients against the real server (uvicorn).

Builds a fresh workspace in a temp dir (root admin, requester alice, data preparer dan, security
reviewer sec, the approvers bob/carol/erin plus ``--approvers`` more, each with a confirmed
Ed25519 key in a temp FTGUARD_KEYS_DIR; the server key registered; one API token per user) on
SQLite, or on PostgreSQL (``--database-url URL``, or ``--backends sqlite,postgres`` with the URL
from FTGUARD_TEST_DATABASE_URL; the workspace lives in a fresh schema of that database, dropped
afterwards, so nothing else in it is touched). A tiny model folder, dataset and config are
written under the storage root ``data``.

The server is what a user runs: ``create_app(ServerSettings(...))`` served by uvicorn, one
worker, in a child process on 127.0.0.1 and a free port (it holds no user key). The clients run
in this process, one thread and one ``httpx.Client`` each; every client loops over a job's life:

    POST /jobs (alice)  ->  GET /jobs/{id}  ->  POST /jobs/{id}/review (sec: the real dataset
    review of 20 examples, embeddings on; ``--review override`` uses the security override)
    ->  for two approvers: GET approval-statement, sign it here with the approver's own key,
    POST approvals  ->  GET /jobs (the list)  ->  GET /whoami

for ``--seconds`` (and at most ``--max-requests`` requests in all). Measured in the same run:
a warm-up iteration (not timed: it loads the review's embedding model) and a baseline of
``--baseline`` iterations by a single client, whose p50 is the ``1 client`` column. The server's
own time per request (its request log, from the app's middleware) is the ``server`` columns:
the difference to the client's time is queueing in uvicorn/the thread pool and the clients.

After the run the server is stopped, ``service.verify_audit`` must pass and the audit events
appended must be exactly those the clients' successful writes imply (per action). Targets:
no 5xx (nor transport error), no 4xx, no lost or doubled event, p99 < 200 ms for each GET,
p99 < 500 ms for POST approvals. The exit status is 1 when a target fails.

Clients do not pause between requests (a closed loop: latency ~ clients / throughput);
``--think-ms`` adds a pause before each request. ``--breakdown`` times, inside the server, the
waits for a pooled connection and for the store's write lock, how long the lock is held, the
chain-state replay, the policy parse and the job listing (wall time summed over threads).
``--profile-server`` runs the server under cProfile (every thread) and prints its hottest
functions: timings are then inflated, use it to find where the time goes. The server CPU time
during the run is read from /proc (Linux).

    .venv/bin/python benchmarks/server_load.py [--seconds 30] [--clients 50] [--backends sqlite]
    .venv/bin/python benchmarks/server_load.py --database-url postgresql+psycopg://u:p@127.0.0.1/db
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HOST = "127.0.0.1"
CHILD = r"""
import cProfile, json, logging, pstats, signal, socket, sys, threading
from pathlib import Path
import uvicorn
from ftguard.server import ServerSettings, create_app, settle_heap

cfg = json.loads(sys.argv[1])
log = logging.getLogger("ftguard.server")
log.setLevel(logging.INFO)
log.propagate = False
handler = logging.FileHandler(cfg["log"])
handler.setFormatter(logging.Formatter("%(message)s"))
log.addHandler(handler)
profiles = []
if cfg["profile"]:
    def _hook(frame, event, arg):
        prof = cProfile.Profile()
        profiles.append(prof)
        prof.enable()  # replaces this hook in this thread
    threading.setprofile(_hook)
    main = cProfile.Profile()
    profiles.append(main)
    main.enable()
timing = {}
if cfg["breakdown"]:
    # Wall time (summed over threads) inside the parts of a request that may serialise it.
    import collections, time
    from sqlalchemy import event
    from sqlalchemy.pool import QueuePool
    from ftguard.control import service
    from ftguard.control._audit import ChainCache
    from ftguard.control._workspace import Workspace
    import contextvars, re
    lock = threading.Lock()
    timing = collections.defaultdict(lambda: [0, 0.0, 0.0])
    # Per request: where a slow one (over 100 ms in the server) spent its time.
    this_request = contextvars.ContextVar("this_request", default=None)
    slow = []

    def note(what, started):
        took = time.perf_counter() - started
        parts = this_request.get()
        with lock:
            entry = timing[what]
            entry[0] += 1
            entry[1] += took
            entry[2] = max(entry[2], took)
            if parts is not None:
                parts[what] = parts.get(what, 0.0) + took

    class Attribute:
        def __init__(self, inner):
            self.inner = inner

        async def __call__(self, scope, receive, send):
            if scope["type"] != "http":
                return await self.inner(scope, receive, send)
            parts = {}
            token = this_request.set(parts)
            started = time.perf_counter()
            try:
                await self.inner(scope, receive, send)
            finally:
                took = time.perf_counter() - started
                this_request.reset(token)
                if took > 0.1:
                    route = re.sub(r"/jobs/[^/]+", "/jobs/{id}", scope["path"].removeprefix("/api/v1"))
                    with lock:
                        slow.append([f"{scope['method']} {route}", took, parts])

    def timed(owner, name, what):
        fn = getattr(owner, name, None)
        if fn is None:  # the server changed: time what is still there
            return

        def wrapper(*a, **kw):
            started = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                note(what, started)
        setattr(owner, name, wrapper)

    timed(ChainCache, "replay", "chain_state: ChainCache.replay (deepcopy + new events)")
    timed(ChainCache, "view", "ChainCache.view (incl. replays and its first query's pool and lock waits)")
    timed(QueuePool, "_do_get", "waiting for a pooled DB connection")
    timed(Workspace, "policy", "policy_in_force: Workspace.policy() (YAML parse)")
    timed(Workspace, "audit_key", "Workspace.audit_key() (key file read)")
    timed(service, "list_jobs", "service.list_jobs (job_view per job)")
    from contextlib import contextmanager
    import anyio.to_thread
    from ftguard.store import Store

    plain_write = Store.write

    @contextmanager
    def timed_write(self):
        started = time.perf_counter()
        with plain_write(self) as session:
            note("Store.write entry (writer queue + BEGIN/FOR UPDATE)", started)
            yield session

    Store.write = timed_write
    plain_run_sync = anyio.to_thread.run_sync

    async def timed_run_sync(func, *args, limiter=None, **kwargs):
        queued = time.perf_counter()
        tokens = limiter or anyio.to_thread.current_default_thread_limiter()
        if tokens.available_tokens == 0:  # every thread of this limiter is taken: a queue
            note("a request found every worker thread of its limiter taken", queued)

        def started(*a):
            note("waiting for a worker thread (anyio limiter)", queued)
            return func(*a)

        return await plain_run_sync(started, *args, limiter=limiter, **kwargs)

    anyio.to_thread.run_sync = timed_run_sync
    import types

    import ftguard.server._app as app_module

    class TimedSlots:  # WriteAdmission's semaphore, timed while a request waits for a slot
        def __init__(self, slots):
            self.inner = anyio.Semaphore(slots)

        async def __aenter__(self):
            queued = time.perf_counter()
            await self.inner.acquire()
            note("waiting for a write slot (WriteAdmission)", queued)

        async def __aexit__(self, *exc):
            self.inner.release()

    app_module.anyio = types.SimpleNamespace(Semaphore=TimedSlots)
    import gc

    collecting = {}

    def timed_gc(phase, info):  # a collection stops every thread of the server
        if phase == "start":
            collecting["at"] = time.perf_counter()
        elif "at" in collecting:
            note(f"garbage collection, generation {info['generation']} (every thread waits)", collecting.pop("at"))

    gc.callbacks.append(timed_gc)
    # SIGUSR1: forget what was measured so far (the warm-up and the baseline).
    signal.signal(signal.SIGUSR1, lambda *_: (timing.clear(), slow.clear()))
app = create_app(ServerSettings(**cfg["settings"]))
settle_heap()  # as 'ftguard server' does once its app is built
if cfg["breakdown"]:
    engine = app.state.ctx.ws.store.engine

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, params, context, many):
        conn.info["t0"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn, cursor, statement, params, context, many):
        locking = statement.startswith("BEGIN") or (
            "FOR UPDATE" in statement and "audit_head" in statement
        )
        if locking:
            note("waiting for the store lock (BEGIN IMMEDIATE / audit_head FOR UPDATE)", conn.info["t0"])
            conn.info["held"] = time.perf_counter()
        elif "held" in conn.info:
            note("SQL statements under the store lock", conn.info["t0"])
        else:
            note("other SQL statements", conn.info["t0"])

    def _end(conn):
        if "held" in conn.info:
            note("store lock held (lock taken -> commit/rollback)", conn.info.pop("held"))

    event.listen(engine, "commit", _end)
    event.listen(engine, "rollback", _end)
# proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on such sockets (as uvicorn.run(host, port)
# gets them); a plain socket.socket() leaves Nagle on and adds ~40 ms (delayed ACK) per answer.
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", 0))
# The options 'ftguard server' runs uvicorn with (src/ftguard/cli/server.py).
config = uvicorn.Config(
    Attribute(app) if cfg["breakdown"] else app, workers=1, log_level="warning", access_log=False, timeout_graceful_shutdown=30
)
server = uvicorn.Server(config)
Path(cfg["port_file"]).write_text(str(sock.getsockname()[1]))
try:
    server.run(sockets=[sock])
finally:  # uvicorn re-raises the SIGINT it caught once it has shut down
    if cfg["breakdown"]:
        with lock:
            Path(cfg["breakdown"]).write_text(json.dumps({"parts": timing, "slow": slow}))
    if profiles:
        stats = pstats.Stats(profiles[0])
        for prof in profiles[1:]:
            stats.add(prof)
        stats.dump_stats(cfg["profile"])
"""

ENDPOINTS = (
    "POST /jobs",
    "GET /jobs/{id}",
    "POST /jobs/{id}/review",
    "POST /jobs/{id}/override",
    "GET /jobs/{id}/approval-statement",
    "POST /jobs/{id}/approvals",
    "GET /jobs",
    "GET /whoami",
)
JOB_ID = re.compile(r"job-[0-9a-f]{10}")
BASE_USERS = {
    "alice": ["requester"],
    "dan": ["data_preparer"],
    "bob": ["approver"],
    "carol": ["approver"],
    "erin": ["approver"],
    "sec": ["security_reviewer"],
}


class Stop(Exception):
    """The run's time or request budget is spent."""


@dataclass
class Budget:
    deadline: float
    max_requests: int
    used: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> None:
        with self.lock:
            if self.used >= self.max_requests or time.monotonic() >= self.deadline:
                raise Stop
            self.used += 1


@dataclass
class Recorder:
    """Latencies and statuses per endpoint; the audit events successful writes imply."""

    ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    listed: list[tuple[int, float]] = field(default_factory=list)
    bad_bodies: list[str] = field(default_factory=list)
    samples: dict[str, str] = field(default_factory=dict)
    """The first error answer per endpoint and status (its body)."""
    """Successful answers whose body lacks what the API promises (label, status, body)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, label: str, status: str, ms: float) -> None:
        with self.lock:
            self.ms[label].append(ms)
            self.statuses[label][status] += 1


@dataclass
class Tally:
    """The audit events the clients' successful writes imply, per action."""

    events: Counter[str] = field(default_factory=Counter)
    ambiguous: int = 0
    """Writes whose outcome is unknown (transport error, timeout): they may have committed."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, *actions: str) -> None:
        with self.lock:
            self.events.update(actions)

    def unknown(self) -> None:
        with self.lock:
            self.ambiguous += 1


@dataclass
class Bench:
    """A workspace ready for the server: tokens, users' keys, inputs."""

    root: Path
    workspace: Path
    data: Path
    database_url: str | None
    tokens: dict[str, str]
    keys: dict[str, Any]
    approvers: list[str]
    initial_events: int


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


# -- workspace ---------------------------------------------------------------------------------


def write_inputs(data: Path) -> None:
    model = data / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text('{"model_type": "llama"}')
    (model / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    topics = ["billing", "refunds", "shipping", "passwords", "invoices"]
    with (data / "train.jsonl").open("w") as fh:
        for i in range(20):
            topic = topics[i % len(topics)]
            fh.write(
                json.dumps(
                    {
                        "messages": [
                            {"role": "user", "content": f"How do I find my {topic} page ({i})?"},
                            {"role": "assistant", "content": f"Open Settings, then {topic}."},
                        ]
                    }
                )
                + "\n"
            )
    (data / "config.yaml").write_text("learning_rate: 0.001\nsteps: 10\n")


def build_workspace(root: Path, database_url: str | None, extra_approvers: int) -> Bench:
    os.environ["FTGUARD_KEYS_DIR"] = str(root / "keys")
    os.environ["FTGUARD_HOME"] = str(root / "ws")
    os.environ.pop("FTGUARD_USER", None)
    if database_url:
        os.environ["FTGUARD_DATABASE_URL"] = database_url
    else:
        os.environ.pop("FTGUARD_DATABASE_URL", None)
    from ftguard.attest import load_private_key
    from ftguard.control import service
    from ftguard.control._identities import private_key_path

    ws = service.init_workspace(root / "ws", admin="root")
    users = dict(BASE_USERS)
    users.update({f"ap{i:02d}": ["approver"] for i in range(extra_approvers)})
    for name, roles in users.items():
        service.add_user(ws, actor="root", name=name, roles=roles)
        key = service.create_key(ws, user=name)
        service.confirm_key(ws, actor="root", keyid=key.keyid)
    service.register_server(ws, actor="root")
    tokens = {u: service.create_token(ws, actor="root", user=u)["token"] for u in ["root", *users]}
    keys = {u: load_private_key(private_key_path(u)) for u in users}
    data = root / "data"
    write_inputs(data)
    initial = service.verify_audit(ws)
    if not initial.ok:
        sys.exit(f"the fresh workspace's audit chain does not verify: {initial.problem}")
    ws.store.dispose()
    approvers = [u for u, roles in users.items() if roles == ["approver"]]
    return Bench(root, root / "ws", data, database_url, tokens, keys, approvers, initial.events)


@contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A fresh schema in the database at ``url`` (dropped afterwards); yields its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    schema = f"ftguard_load_{secrets.token_hex(4)}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield scoped.render_as_string(hide_password=False)
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


# -- server ------------------------------------------------------------------------------------


@dataclass
class RunningServer:
    url: str
    log: Path
    proc: subprocess.Popen[bytes]

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def reset_breakdown(self) -> None:
        self.proc.send_signal(signal.SIGUSR1)


@contextmanager
def serve(bench: Bench, profile: Path | None, breakdown: Path | None) -> Iterator[RunningServer]:
    """The real server (uvicorn, one worker) in a child process on 127.0.0.1."""
    port_file = bench.root / "port"
    log = bench.root / "server.log"
    cfg = {
        "settings": {
            "workspace": str(bench.workspace),
            "database_url": bench.database_url,
            "storage_roots": {"data": str(bench.data)},
        },
        "log": str(log),
        "port_file": str(port_file),
        "profile": str(profile) if profile else None,
        "breakdown": str(breakdown) if breakdown else None,
    }
    env = dict(os.environ)
    env["FTGUARD_KEYS_DIR"] = str(bench.root / "server-keys")  # the server holds no user key
    env.pop("FTGUARD_DATABASE_URL", None)  # it gets the URL from its settings only
    stderr = (bench.root / "server.err").open("wb")
    proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(cfg)], env=env, stderr=stderr)
    try:
        url = _wait_ready(proc, port_file, bench.root / "server.err")
        yield RunningServer(url, log, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        stderr.close()


def _wait_ready(proc: subprocess.Popen[bytes], port_file: Path, err: Path) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the server exited ({proc.returncode}):\n{err.read_text()[-3000:]}")
        if port_file.exists() and port_file.read_text().strip():
            url = f"http://{HOST}:{int(port_file.read_text())}"
            try:
                with httpx.Client(base_url=url, trust_env=False, timeout=2) as http:
                    if http.get("/healthz").status_code == 200:
                        return url
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    proc.kill()
    sys.exit(f"the server did not answer within 60 s:\n{err.read_text()[-3000:]}")


def server_times(log: Path) -> dict[str, list[float]]:
    """Milliseconds per endpoint from the app's request log."""
    out: dict[str, list[float]] = defaultdict(list)
    if not log.exists():
        return out
    for line in log.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("event") != "request":
            continue
        path = JOB_ID.sub("{id}", str(rec["path"])).removeprefix("/api/v1")
        out[f"{rec['method']} {path}"].append(float(rec["ms"]))
    return out


# -- clients -----------------------------------------------------------------------------------


@dataclass
class Client:
    http: httpx.Client
    bench: Bench
    rec: Recorder
    tally: Tally
    budget: Budget
    review: str
    index: int
    think_s: float = 0.0

    def call(
        self, method: str, label: str, path: str, user: str, body: Any = None
    ) -> httpx.Response | None:
        if self.think_s:
            time.sleep(self.think_s)
        self.budget.take()
        headers = {"Authorization": f"Bearer {self.bench.tokens[user]}"}
        started = time.perf_counter()
        try:
            response = self.http.request(method, "/api/v1" + path, headers=headers, json=body)
        except httpx.HTTPError as exc:
            self.rec.record(label, type(exc).__name__, (time.perf_counter() - started) * 1000)
            if method != "GET":
                self.tally.unknown()
            return None
        ms = (time.perf_counter() - started) * 1000
        self.rec.record(label, str(response.status_code), ms)
        if response.status_code >= 400:
            with self.rec.lock:
                self.rec.samples.setdefault(f"{label} {response.status_code}", response.text[:300])
        if label == "GET /jobs" and response.status_code == 200:
            with self.rec.lock:
                self.rec.listed.append((len(response.json()), ms))
        return response

    def state_of(self, label: str, r: httpx.Response) -> str | None:
        """The job state a successful answer reports (None, and noted, when it has none)."""
        try:
            body = r.json()
            job = body.get("job", body)  # the review answers {"review": ..., "job": ...}
            return str(job["state"])
        except (ValueError, KeyError, TypeError, AttributeError):
            with self.rec.lock:
                self.rec.bad_bodies.append(f"{label} {r.status_code}: {r.text[:300]}")
            return None

    def iteration(self, n: int) -> None:
        from ftguard.attest import sign_statement

        r = self.call(
            "POST",
            "POST /jobs",
            "/jobs",
            "alice",
            {
                "base_model": "data/model",
                "dataset": "data/train.jsonl",
                "config": "data/config.yaml",
                "purpose": "customer support answers",
                "prepared_by": "dan",
            },
        )
        if r is None or r.status_code != 201:
            return
        self.tally.add("job.submit")
        state = self.state_of("POST /jobs", r)
        if state is None:
            return
        job_id = str(r.json()["id"])
        if state == "awaiting_approval":
            self.tally.add("review.not_required")
        self.call("GET", "GET /jobs/{id}", f"/jobs/{job_id}", "alice")
        if state != "awaiting_approval" and self.review == "review":
            r = self.call("POST", "POST /jobs/{id}/review", f"/jobs/{job_id}/review", "sec")
            if r is None or r.status_code != 200:
                return
            state = self.state_of("POST /jobs/{id}/review", r)
            if state is None:
                return
            verdict = "review.pass" if state == "awaiting_approval" else "review.block"
            self.tally.add("review.start", "evidence.review", verdict)
        if state != "awaiting_approval":
            r = self.call(
                "POST",
                "POST /jobs/{id}/override",
                f"/jobs/{job_id}/override",
                "sec",
                {"justification": "load test"},
            )
            if r is None or r.status_code != 200:
                return
            self.tally.add("review.override")
        pool = self.bench.approvers
        first = (2 * (self.index + n)) % len(pool)
        for approver in (pool[first], pool[(first + 1) % len(pool)]):
            r = self.call(
                "GET",
                "GET /jobs/{id}/approval-statement",
                f"/jobs/{job_id}/approval-statement",
                approver,
            )
            if r is None or r.status_code != 200:
                return
            envelope = sign_statement(r.json(), self.bench.keys[approver])
            r = self.call(
                "POST",
                "POST /jobs/{id}/approvals",
                f"/jobs/{job_id}/approvals",
                approver,
                {"envelope": envelope.model_dump(mode="json")},
            )
            if r is None or r.status_code != 201:
                return
            self.tally.add("job.approve")
            if self.state_of("POST /jobs/{id}/approvals", r) == "approved":
                self.tally.add("job.approved")
        self.call("GET", "GET /jobs", "/jobs", "alice")
        users = ["alice", "sec", "dan", *pool]
        self.call("GET", "GET /whoami", "/whoami", users[(self.index + n) % len(users)])

    def loop(self, iterations: int | None = None) -> None:
        n = 0
        try:
            while iterations is None or n < iterations:
                self.iteration(n)
                n += 1
        except Stop:
            return


def run_clients(
    url: str,
    bench: Bench,
    *,
    clients: int,
    seconds: float,
    max_requests: int,
    review: str,
    tally: Tally,
    iterations: int | None = None,
    think_ms: float = 0.0,
) -> tuple[Recorder, float]:
    rec = Recorder()
    budget = Budget(time.monotonic() + seconds, max_requests)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        try:
            with httpx.Client(
                base_url=url, trust_env=False, timeout=httpx.Timeout(60.0), limits=limits
            ) as http:
                Client(http, bench, rec, tally, budget, review, i, think_ms / 1000).loop(iterations)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(1.0, started + seconds + 120 - time.perf_counter()))
    elapsed = time.perf_counter() - started
    if any(t.is_alive() for t in threads):
        print("  warning: some clients did not finish within the run + 120 s", file=sys.stderr)
    for exc in errors[:3]:
        print(f"  client error: {type(exc).__name__}: {exc}", file=sys.stderr)
    if errors:
        sys.exit(f"{len(errors)} client thread(s) failed")
    return rec, elapsed


# -- report ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    name: str
    passed: bool
    detail: str


def report(
    backend: str,
    args: argparse.Namespace,
    rec: Recorder,
    base: Recorder,
    elapsed: float,
    srv: dict[str, list[float]],
    checks: list[Outcome],
    notes: list[str],
) -> None:
    print(
        f"\n== backend: {backend}  clients: {args.clients}  think: {args.think_ms:g} ms  run: {elapsed:.1f} s"
    )
    for note in notes:
        print(f"   {note}")
    head = (
        f"{'endpoint':35} {'count':>6} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        f" {'1 client':>9} {'server p50':>10} {'server p99':>10}  errors"
    )
    print(head)
    print("-" * len(head))
    every: list[float] = []
    all_errors: Counter[str] = Counter()
    for label in [e for e in ENDPOINTS if e in rec.ms]:
        ms = rec.ms[label]
        every += ms
        errs = Counter({s: c for s, c in rec.statuses[label].items() if not s.startswith("2")})
        all_errors += errs
        s_ms = srv.get(label, [])
        print(
            f"{label:35} {len(ms):6d} {len(ms) / elapsed:7.1f} {percentile(ms, 50):8.1f}"
            f" {percentile(ms, 99):8.1f} {max(ms):8.1f} {percentile(base.ms.get(label, []), 50):9.1f}"
            f" {percentile(s_ms, 50):10.1f} {percentile(s_ms, 99):10.1f}  "
            + (", ".join(f"{s}: {c}" for s, c in sorted(errs.items())) or "-")
        )
    srv_all = [m for label, v in srv.items() if label in ENDPOINTS for m in v]
    print(
        f"{'all':35} {len(every):6d} {len(every) / elapsed:7.1f} {percentile(every, 50):8.1f}"
        f" {percentile(every, 99):8.1f} {max(every, default=float('nan')):8.1f} {'':9}"
        f" {percentile(srv_all, 50):10.1f} {percentile(srv_all, 99):10.1f}  "
        + (", ".join(f"{s}: {c}" for s, c in sorted(all_errors.items())) or "-")
    )
    if rec.listed:
        top = max(n for n, _ in rec.listed)
        step = max(50, -(-top // 5 // 50) * 50)
        parts = []
        for lo in range(0, top + 1, step):
            ms = [m for n, m in rec.listed if lo <= n < lo + step]
            if ms:
                parts.append(
                    f"{lo}-{lo + step - 1}: p50 {percentile(ms, 50):.0f} / p99 {percentile(ms, 99):.0f} ms (n={len(ms)})"
                )
        print("GET /jobs latency by jobs listed: " + "; ".join(parts))
    for what, body in sorted(rec.samples.items()):
        print(f"first {what}: {body}")
    for c in checks:
        print(f"{'PASS' if c.passed else 'FAIL'}  {c.name}: {c.detail}")


def audit_check(bench: Bench, tally: Tally) -> list[Outcome]:
    from ftguard.control import Workspace, service
    from ftguard.control._workspace import find_workspace

    ws = Workspace(find_workspace(bench.workspace).path, database_url_override=bench.database_url)
    try:
        result = service.verify_audit(ws)
        actions = Counter(e.action for e in service.iter_audit(ws) if e.seq > bench.initial_events)
        jobs = Counter(j.state for j in service.list_jobs(ws))
    finally:
        ws.store.dispose()
    expected = sum(tally.events.values())
    appended = result.events - bench.initial_events
    diff = {
        a: (actions.get(a, 0), tally.events.get(a, 0))
        for a in sorted(set(actions) | set(tally.events))
    }
    detail = ", ".join(f"{a} {got}/{want}" for a, (got, want) in diff.items())
    exact = appended == expected and all(got == want for got, want in diff.values())
    approved = jobs.get("approved", 0) == tally.events.get("job.approved", 0)
    note = f" ({tally.ambiguous} write(s) of unknown outcome)" if tally.ambiguous else ""
    return [
        Outcome(
            "audit chain verifies",
            result.ok,
            f"{result.events} events, head #{result.head_seq}"
            + (f": {result.problem}" if not result.ok else ""),
        ),
        Outcome(
            "no lost or doubled audit event",
            exact and approved,
            f"+{appended} appended, +{expected} implied by the clients' writes{note}; "
            f"per action (stored/implied): {detail}; approved jobs {jobs.get('approved', 0)}",
        ),
    ]


def latency_checks(rec: Recorder) -> list[Outcome]:
    out = []
    reads = {label: percentile(v, 99) for label, v in rec.ms.items() if label.startswith("GET")}
    slow = {label: p for label, p in reads.items() if not p < 200}
    out.append(
        Outcome(
            "p99 < 200 ms for each GET",
            not slow,
            ", ".join(f"{label} {p:.0f} ms" for label, p in sorted(reads.items())),
        )
    )
    p = percentile(rec.ms.get("POST /jobs/{id}/approvals", []), 99)
    out.append(Outcome("p99 < 500 ms for POST approvals", p < 500, f"{p:.0f} ms"))
    return out


def status_checks(rec: Recorder) -> list[Outcome]:
    five: Counter[str] = Counter()
    four: Counter[str] = Counter()
    for label, statuses in rec.statuses.items():
        for s, c in statuses.items():
            if s.startswith("5") or not s.isdigit():
                five[f"{label} {s}"] += c
            elif s.startswith("4"):
                four[f"{label} {s}"] += c
    return [
        Outcome(
            "no 5xx or transport error",
            not five,
            ", ".join(f"{k}: {c}" for k, c in five.items()) or "none",
        ),
        Outcome(
            "no 4xx (every write succeeded)",
            not four,
            ", ".join(f"{k}: {c}" for k, c in four.items()) or "none",
        ),
        Outcome(
            "every 2xx answer carries the job",
            not rec.bad_bodies,
            f"{len(rec.bad_bodies)} did not, first: {rec.bad_bodies[0]}"
            if rec.bad_bodies
            else "all did",
        ),
    ]


def print_profile(path: Path, top: int) -> None:
    import io
    import pstats

    if not path.exists():
        print("  (no server profile was written)")
        return
    for order, note in (
        ("cumulative", "wall time, summed over threads: includes waits for locks and connections"),
        ("tottime", "own time: where the CPU goes"),
    ):
        buf = io.StringIO()
        stats = pstats.Stats(str(path), stream=buf)
        stats.sort_stats(order).print_stats(top)
        print(f"\n-- server profile by {order} ({note}) --")
        lines = buf.getvalue().splitlines()
        start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
        print("\n".join(lines[start:]))


def run_backend(backend: str, url: str | None, args: argparse.Namespace) -> bool:
    with tempfile.TemporaryDirectory(prefix="ftguard-load-") as td:
        root = Path(td)
        t0 = time.perf_counter()
        bench = build_workspace(root, url, args.approvers)
        notes = [
            f"workspace: {len(bench.tokens)} users, {len(bench.approvers)} approvers, "
            f"{bench.initial_events} audit events before the run (built in {time.perf_counter() - t0:.1f} s)"
        ]
        if args.review == "review":
            notes.append(
                "review: POST /jobs/{id}/review runs the real dataset review (20 examples, embeddings on)"
            )
        else:
            notes.append(
                "review: NOT run; the security override (POST /jobs/{id}/override) stands in for it"
            )
        tally = Tally()
        profile = root / "server.prof" if args.profile_server else None
        breakdown = root / "breakdown.json" if args.breakdown else None
        with serve(bench, profile, breakdown) as server:
            t0 = time.perf_counter()
            run_clients(
                server.url,
                bench,
                clients=1,
                seconds=300,
                max_requests=100,
                review=args.review,
                tally=tally,
                iterations=1,
            )
            notes.append(
                f"warm-up: 1 iteration, {time.perf_counter() - t0:.1f} s (the review loads its embedding model)"
            )
            base, _ = run_clients(
                server.url,
                bench,
                clients=1,
                seconds=120,
                max_requests=1000,
                review=args.review,
                tally=tally,
                iterations=args.baseline,
            )
            skip = {label: len(v) for label, v in server_times(server.log).items()}
            if breakdown is not None:
                server.reset_breakdown()
            cpu0, own0 = server.cpu_seconds(), time.process_time()
            rec, elapsed = run_clients(
                server.url,
                bench,
                clients=args.clients,
                seconds=args.seconds,
                max_requests=args.max_requests,
                review=args.review,
                tally=tally,
                think_ms=args.think_ms,
            )
            cpu, own = server.cpu_seconds() - cpu0, time.process_time() - own0
            srv_all = server_times(server.log)
            srv = {label: v[skip.get(label, 0) :] for label, v in srv_all.items()}
        notes.append(
            f"CPU during the run ({os.cpu_count()} cores here): server {cpu:.1f} s "
            f"({100 * cpu / elapsed:.0f}% of one core), clients {own:.1f} s ({100 * own / elapsed:.0f}%)"
        )
        checks = status_checks(rec) + audit_check(bench, tally) + latency_checks(rec)
        report(backend, args, rec, base, elapsed, srv, checks, notes)
        if breakdown is not None:
            print_breakdown(breakdown, sum(len(v) for v in rec.ms.values()))
        if profile is not None:
            print_profile(profile, args.profile_top)
        return all(c.passed for c in checks)


def print_breakdown(path: Path, requests: int) -> None:
    if not path.exists():
        print("  (the server wrote no time breakdown)")
        return
    written = json.loads(path.read_text())
    timing: dict[str, list[float]] = written["parts"]
    print(
        f"\n-- server time breakdown over the loaded run ({requests} requests; wall time summed over threads) --"
    )
    print(
        f"{'part':76} {'calls':>7} {'total s':>8} {'ms/call':>8} {'max ms':>8} {'ms/request':>10}"
    )
    for what, (calls, total, most) in sorted(timing.items(), key=lambda kv: -kv[1][1]):
        print(
            f"{what:76} {int(calls):7d} {total:8.1f} {1000 * total / max(calls, 1):8.2f}"
            f" {1000 * most:8.0f} {1000 * total / max(requests, 1):10.2f}"
        )
    print_slow_requests(written["slow"])


def print_slow_requests(slow: list[tuple[str, float, dict[str, float]]]) -> None:
    """Where the requests that took over 100 ms in the server spent it, per endpoint."""
    by_route: dict[str, list[tuple[float, dict[str, float]]]] = {}
    for route, took, parts in slow:
        by_route.setdefault(route, []).append((took, parts))
    print("\n-- requests over 100 ms in the server: mean ms per part (parts may overlap) --")
    for route, rows in sorted(by_route.items(), key=lambda kv: -len(kv[1])):
        if route.endswith("/review"):
            continue  # the review's own analysis is the time, by design
        mean = sum(t for t, _ in rows) / len(rows)
        print(f"{route}: {len(rows)} requests, mean {1000 * mean:.0f} ms")
        totals: dict[str, float] = {}
        for _, parts in rows:
            for what, took in parts.items():
                totals[what] = totals.get(what, 0.0) + took
        for what, total in sorted(totals.items(), key=lambda kv: -kv[1])[:5]:
            print(f"    {1000 * total / len(rows):7.0f}  {what}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--max-requests", type=int, default=50_000, help="hard cap over all clients")
    ap.add_argument(
        "--think-ms", type=float, default=0.0, help="pause before each request (default: none)"
    )
    ap.add_argument("--approvers", type=int, default=10, help="approvers beyond bob, carol, erin")
    ap.add_argument("--baseline", type=int, default=5, help="single-client iterations (baseline)")
    ap.add_argument(
        "--backends", default=None, help="sqlite,postgres (postgres: FTGUARD_TEST_DATABASE_URL)"
    )
    ap.add_argument("--database-url", default=None, help="PostgreSQL URL (a fresh schema is used)")
    ap.add_argument("--review", choices=["review", "override"], default="review")
    ap.add_argument(
        "--breakdown", action="store_true", help="time the server's locks, pool, chain state"
    )
    ap.add_argument("--profile-server", action="store_true")
    ap.add_argument("--profile-top", type=int, default=30)
    args = ap.parse_args()
    if not 1 <= args.clients <= 500 or not 0 < args.seconds <= 3600:
        sys.exit("--clients must be 1..500 and --seconds 0..3600")
    plan: list[tuple[str, str | None]] = []
    if args.database_url:
        plan.append(("postgres", args.database_url))
    for name in (args.backends or ("" if args.database_url else "sqlite")).split(","):
        if name == "sqlite":
            plan.append(("sqlite", None))
        elif name == "postgres":
            pg = os.environ.get("FTGUARD_TEST_DATABASE_URL")
            if not pg:
                sys.exit(
                    "--backends postgres needs FTGUARD_TEST_DATABASE_URL (or use --database-url)"
                )
            plan.append(("postgres", pg))
        elif name:
            sys.exit(f"unknown backend {name!r}")
    ok = True
    for backend, url in plan:
        if url is None:
            ok = run_backend(backend, None, args) and ok
        else:
            with postgres_schema(url) as scoped:
                ok = run_backend(backend, scoped, args) and ok
    print("\nall targets met" if ok else "\nsome targets FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
