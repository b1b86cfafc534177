"""The server's chain cache: one replay per new event, shared states that are never changed,
and tampering that stops every request once the full verification sees it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from ftguard.control import ChainCache, Workspace, service
from ftguard.control import _audit as audit
from ftguard.control._chain import ChainState, JobRecord
from ftguard.control._identities import chain_state, chain_view
from ftguard.errors import VerificationError

from .conftest import Env


@pytest.fixture
def cached(cp: Env) -> Iterator[Workspace]:
    """The same workspace, opened as the team server opens it (with a chain cache)."""
    ws = Workspace(cp.ws.path, chain_cache=ChainCache(full_every_s=3600))
    yield ws
    ws.store.dispose()


@pytest.fixture
def replays(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The first event each real replay of the chain reads (1: from the start)."""
    calls: list[int] = []
    real = audit.replay_chain

    def counting(session, key, *, since=None):  # type: ignore[no-untyped-def]
        calls.append(1 if since is None else since.seq + 1)
        return real(session, key, since=since)

    monkeypatch.setattr(audit, "replay_chain", counting)
    return calls


def _view(ws: Workspace) -> ChainState:
    with ws.store.read() as session:
        return chain_view(ws, session)


def test_an_unchanged_head_reads_no_event_and_shares_one_state(
    cp: Env, cached: Workspace, replays: list[int]
) -> None:
    first = _view(cached)
    assert replays == [1]  # the verification at start
    assert _view(cached) is first and _view(cached) is first
    assert replays == [1]


def test_new_events_are_replayed_once_and_the_old_state_is_left_alone(
    cp: Env, cached: Workspace, replays: list[int]
) -> None:
    before = _view(cached)
    seq = before.seq
    job = cp.submit("late")
    after = _view(cached)
    assert job in after.jobs and job not in before.jobs
    assert replays == [1, seq + 1]  # only the events after the verified point
    assert after.seq > seq and before.seq == seq


def test_concurrent_readers_share_one_catch_up(
    cp: Env, cached: Workspace, replays: list[int]
) -> None:
    seq = _view(cached).seq
    job = cp.submit("late")
    barrier = threading.Barrier(8)
    seen: list[ChainState] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            barrier.wait()
            seen.append(_view(cached))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(job in s.jobs for s in seen)
    assert len({id(s) for s in seen}) == 1  # one verified state, shared
    assert replays == [1, seq + 1]  # eight readers, one replay of the new events


def test_a_writer_gets_a_copy_it_may_change(cp: Env, cached: Workspace) -> None:
    job = cp.submit("w")
    shared = _view(cached)
    with cached.store.write() as session:
        mine = chain_state(cached, session)
    assert mine is not shared
    assert mine.jobs[job] is shared.jobs[job]  # records are shared until one is changed
    record = mine._changed_job(job)
    assert record is not None and record is not shared.jobs[job]
    record.state = "rejected"
    assert shared.jobs[job].state != "rejected"
    assert _view(cached) is shared  # the shared state did not move
    earlier = shared.jobs[job].state
    service.reject(cached, actor="bob", job_id=job, reason="not needed")  # a real write
    assert _view(cached).jobs[job].state == "rejected"
    assert shared.jobs[job].state == earlier  # what earlier readers hold is unchanged


def test_tampering_found_by_the_full_verification_stops_every_later_request(
    cp: Env, replays: list[int]
) -> None:
    cp.approved("a")
    ws = Workspace(cp.ws.path, chain_cache=ChainCache(full_every_s=3600))
    try:
        assert _view(ws).seq > 5
        with ws.store.engine.begin() as conn:  # a database-only attacker edits an old event
            conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 5"))
        assert _view(ws).seq > 5  # between full verifications only new events are checked
        ws.chain_cache._full_every_s = 0.0  # type: ignore[union-attr]  # now it is due
        for _ in range(3):
            with pytest.raises(VerificationError, match="event #5"):
                _view(ws)
        ws.chain_cache._full_every_s = 3600  # type: ignore[union-attr]
        with pytest.raises(VerificationError, match="event #5"):  # no stale state to go on
            _view(ws)
    finally:
        ws.store.dispose()


def test_copy_on_write_keeps_states_apart() -> None:
    state = ChainState(jobs={"job-1": _job("job-1")}, _owned_jobs={"job-1"})
    copy = state.copy()
    assert copy.jobs["job-1"] is state.jobs["job-1"]
    changed = copy._changed_job("job-1")
    assert changed is not None and changed is not state.jobs["job-1"]
    changed.state = "rejected"
    assert state.jobs["job-1"].state == "submitted"
    # The original shares its records with the copy too: its own change copies first.
    mine = state._changed_job("job-1")
    assert mine is not None and mine is not changed
    mine.digests["dataset"] = "0" * 64
    assert copy.jobs["job-1"].digests == {}
    assert state._changed_job("job-1") is mine  # copied once, then changed in place


def _job(job_id: str) -> JobRecord:
    return JobRecord(
        id=job_id,
        state="submitted",
        requester="alice",
        preparer="dan",
        digests={},
        policy_digest="p",
    )


def test_service_reads_agree_with_an_uncached_workspace(cp: Env, cached: Workspace) -> None:
    job = cp.approved("a")
    assert service.get_job(cached, job).state == service.get_job(cp.ws, job).state == "approved"
    assert _view(cached).jobs[job].state == "approved"


def test_a_read_is_one_snapshot_while_others_write(cp: Env, cached: Workspace) -> None:
    """A reader that reads the head and then the events must not see events past its head.

    PostgreSQL's default isolation (READ COMMITTED) would show each statement what committed
    since the last: a replay then finds an event "added without the workspace key" and the
    server refuses to act (found under load by benchmarks/server_load.py).
    """
    _view(cached)
    head = text("SELECT seq FROM audit_head WHERE id = 1")
    with cached.store.read() as session:
        before = session.execute(head).scalar_one()
        writer = threading.Thread(target=cp.submit, args=("meanwhile",))
        writer.start()
        writer.join()
        assert session.execute(head).scalar_one() == before
        events = session.execute(text("SELECT max(seq) FROM audit_events")).scalar_one()
        assert events == before
        assert chain_view(cached, session).seq == before  # and the replay holds
    assert _view(cached).seq > before


def test_a_database_made_under_another_audit_key_is_refused_before_and_after_caching(
    cp: Env, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as env:  # another workspace, in a SQLite file of its own
        env.delenv("FTGUARD_DATABASE_URL", raising=False)
        other = service.init_workspace(tmp_path_factory.mktemp("other") / "ws", admin="root")
        other_url = other.database_url
        other.store.dispose()
    cache = ChainCache(full_every_s=3600)
    ours = Workspace(cp.ws.path, chain_cache=cache)
    swapped = Workspace(cp.ws.path, database_url_override=other_url, chain_cache=cache)
    plain = Workspace(cp.ws.path, database_url_override=other_url)
    try:
        with plain.store.write() as session, pytest.raises(VerificationError, match="audit key"):
            chain_state(plain, session)
        with ours.store.write() as session:  # checked once, then remembered by the cache...
            chain_state(ours, session)
        assert cache.database_audit_key == cp.ws.audit_public_key().b64
        # ...and a database swapped in later still fails: its chain is not signed by our key.
        with swapped.store.write() as session, pytest.raises(VerificationError):
            chain_state(swapped, session)
    finally:
        for ws in (ours, swapped, plain):
            ws.store.dispose()
