"""Audit tampering done directly in the database is detected, with its position."""

from __future__ import annotations

from sqlalchemy import text

from ftguard.control import service

from .conftest import Env


def _fill(cp: Env) -> None:
    job = cp.approved("a")
    service.reject(cp.ws, actor="bob", job_id=cp.submit("b"), reason="not needed")
    assert service.get_job(cp.ws, job).state == "approved"
    assert service.verify_audit(cp.ws).ok


def _sql(cp: Env, statement: str, **params: object) -> None:
    with cp.ws.store.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_intact_chain_verifies(cp: Env) -> None:
    _fill(cp)
    result = service.verify_audit(cp.ws)
    assert result.ok and result.events >= 20


def test_edited_event_is_named(cp: Env) -> None:
    _fill(cp)
    _sql(cp, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 12")
    result = service.verify_audit(cp.ws)
    assert not result.ok and result.first_bad_seq == 12
    assert "modified" in (result.problem or "")


def test_edited_payload_is_named(cp: Env) -> None:
    _fill(cp)
    _sql(cp, "UPDATE audit_events SET payload = '{}' WHERE seq = 15")
    result = service.verify_audit(cp.ws)
    assert result.first_bad_seq == 15


def test_deleted_event_is_named(cp: Env) -> None:
    _fill(cp)
    _sql(cp, "DELETE FROM audit_events WHERE seq = 9")
    result = service.verify_audit(cp.ws)
    assert not result.ok and result.first_bad_seq == 9
    assert "missing" in (result.problem or "")


def test_swapped_events_are_named(cp: Env) -> None:
    _fill(cp)
    with cp.ws.store.engine.begin() as conn:
        a = conn.execute(
            text("SELECT actor, action, payload, ts FROM audit_events WHERE seq=7")
        ).one()
        b = conn.execute(
            text("SELECT actor, action, payload, ts FROM audit_events WHERE seq=8")
        ).one()
        for seq, row in ((7, b), (8, a)):
            conn.execute(
                text("UPDATE audit_events SET actor=:a, action=:b, payload=:c, ts=:d WHERE seq=:s"),
                {"a": row[0], "b": row[1], "c": row[2], "d": row[3], "s": seq},
            )
    assert service.verify_audit(cp.ws).first_bad_seq == 7


def test_inserted_event_is_detected(cp: Env) -> None:
    _fill(cp)
    with cp.ws.store.engine.begin() as conn:
        last, head = conn.execute(
            text("SELECT seq, hash FROM audit_events ORDER BY seq DESC")
        ).first()
        conn.execute(
            text(
                "INSERT INTO audit_events (seq, ts, actor, action, job_id, payload, prev_hash, hash) "
                "VALUES (:s, '2026-01-01T00:00:00+00:00', 'mallory', 'job.approve', NULL, '{}', :p, :h)"
            ),
            {"s": last + 1, "p": head, "h": "f" * 64},
        )
    result = service.verify_audit(cp.ws)
    assert not result.ok and result.first_bad_seq == last + 1


def test_rewritten_chain_is_caught_by_the_actors_signatures(cp: Env) -> None:
    """Someone recomputes every hash after an edit: the edited event's actor signature fails."""
    from ftguard.control._audit import event_hash

    _fill(cp)
    with cp.ws.store.engine.begin() as conn:
        rows = conn.execute(
            text(
                "SELECT seq, ts, actor, action, job_id, payload, keyid FROM audit_events ORDER BY seq"
            )
        ).all()
        prev = "0" * 64
        for seq, ts, actor, action, job_id, payload, keyid in rows:
            if seq == 3:
                actor = "mallory"
            h = event_hash(
                seq=seq,
                ts=ts,
                actor=actor,
                action=action,
                job_id=job_id,
                payload=payload,
                prev_hash=prev,
                keyid=keyid,
            )
            conn.execute(
                text("UPDATE audit_events SET actor=:a, prev_hash=:p, hash=:h WHERE seq=:s"),
                {"a": actor, "p": prev, "h": h, "s": seq},
            )
            prev = h
    result = service.verify_audit(cp.ws)
    assert not result.ok and result.first_bad_seq == 3
    assert "mallory" in (result.problem or "")


def test_truncated_log_is_detected(cp: Env) -> None:
    _fill(cp)
    with cp.ws.store.engine.begin() as conn:
        last = conn.execute(text("SELECT max(seq) FROM audit_events")).scalar_one()
        conn.execute(text("DELETE FROM audit_events WHERE seq > :s"), {"s": last - 3})
    result = service.verify_audit(cp.ws)
    assert not result.ok and result.first_bad_seq == last - 2
    assert "truncated" in (result.problem or "")


def test_cli_verify_and_export(cp: Env, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    from ftguard.cli import main

    _fill(cp)
    assert main(["audit", "verify"]) == 0
    assert main(["audit", "export", "--format", "jsonl"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()[1:]
    events = [json.loads(line) for line in lines]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["action"] == "workspace.init"
    _sql(cp, "DELETE FROM audit_events WHERE seq = 4")
    assert main(["audit", "verify"]) == 6
    assert "event #4 is missing" in capsys.readouterr().err
