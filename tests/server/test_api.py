"""The HTTP API against the real app: identities, approvals, storage roots, bad input."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from ftguard.attest import generate_key, load_private_key, sign_statement
from ftguard.control import note_token_use, service
from ftguard.control._identities import private_key_path
from ftguard.digests import sha256_bytes
from ftguard.store import ApiTokenRow, EvidenceRow
from tests.control.conftest import Env
from tests.server.conftest import Server, serving


def test_whoami_names_the_user_roles_and_how_they_were_authenticated(server: Server) -> None:
    answer = server.get("/api/v1/whoami", "bob")
    assert answer.status_code == 200
    body = answer.json()
    assert body["user"] == "bob" and body["roles"] == ["approver"]
    assert body["via"]["method"] == "token" and len(body["via"]["token_id"]) == 16


def test_a_quorum_of_remote_signatures_approves_and_the_chain_records_who_and_how(
    server: Server,
) -> None:
    job_id = server.awaiting()
    first = server.sign_approval("bob", job_id)
    assert first.status_code == 201, first.text
    assert first.json()["state"] == "awaiting_approval"
    second = server.sign_approval("carol", job_id)
    assert second.status_code == 201 and second.json()["state"] == "approved"
    events = service.iter_audit(server.cp.ws, job_id=job_id)
    approvals = [e for e in events if e.action == "job.approve"]
    assert [e.actor for e in approvals] == ["bob", "carol"]
    assert all(e.via and e.via["method"] == "token" for e in approvals)
    # The envelope is the approver's own signature, checked again offline.
    bob_key = load_private_key(private_key_path("bob")).public.keyid
    assert approvals[0].payload["keyid"] == bob_key
    assert service.verify_audit(server.cp.ws).ok


def test_an_approval_signed_with_another_users_key_is_refused(server: Server) -> None:
    job_id = server.awaiting()
    before = server.head_seq()
    answer = server.sign_approval("bob", job_id, key_of="carol")
    assert answer.status_code == 422
    assert "trusted key" in answer.json()["message"]
    assert server.head_seq() == before


def test_an_approval_statement_edited_after_fetching_is_refused(server: Server) -> None:
    job_id = server.awaiting()
    statement = server.get(f"/api/v1/jobs/{job_id}/approval-statement", "bob").json()
    statement["predicate"]["expires_at"] = (datetime.now(UTC) + timedelta(days=900)).isoformat()
    envelope = sign_statement(statement, load_private_key(private_key_path("bob")))
    answer = server.post(
        f"/api/v1/jobs/{job_id}/approvals", "bob", json={"envelope": envelope.model_dump()}
    )
    assert answer.status_code == 422 and "expiry" in answer.json()["message"]
    statement = server.get(f"/api/v1/jobs/{job_id}/approval-statement", "bob").json()
    statement["subject"][0]["digest"]["sha256"] = "0" * 64
    envelope = sign_statement(statement, load_private_key(private_key_path("bob")))
    answer = server.post(
        f"/api/v1/jobs/{job_id}/approvals", "bob", json={"envelope": envelope.model_dump()}
    )
    assert answer.status_code == 422 and "subjects" in answer.json()["message"]


def test_a_replayed_approval_counts_once(server: Server) -> None:
    job_id = server.awaiting()
    statement = server.get(f"/api/v1/jobs/{job_id}/approval-statement", "bob").json()
    envelope = sign_statement(statement, load_private_key(private_key_path("bob")))
    body = {"envelope": envelope.model_dump()}
    assert server.post(f"/api/v1/jobs/{job_id}/approvals", "bob", json=body).status_code == 201
    again = server.post(f"/api/v1/jobs/{job_id}/approvals", "bob", json=body)
    assert again.status_code == 409
    assert server.get(f"/api/v1/jobs/{job_id}", "bob").json()["state"] == "awaiting_approval"


def test_separation_of_duties_holds_over_the_api(server: Server) -> None:
    job_id = server.awaiting()
    for user in ("alice", "dan"):
        answer = server.get(f"/api/v1/jobs/{job_id}/approval-statement", user)
        assert answer.status_code == 403


def test_a_revoked_or_expired_token_authenticates_nobody(server: Server) -> None:
    token_id = server.tokens["bob"].split("_")[1]
    assert (
        server.client.delete(f"/api/v1/tokens/{token_id}", headers=server.auth("root")).status_code
        == 200
    )
    answer = server.get("/api/v1/whoami", "bob")
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"
    short = service.create_token(server.cp.ws, actor="root", user="carol", expires="1m")
    with server.cp.ws.store.write() as session:  # the index says it expired long ago...
        session.execute(update(ApiTokenRow).values(expires_at="2000-01-01T00:00:00+00:00"))
    # ...but the chain's record decides: the token is still valid for its minute.
    ok = server.client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {short['token']}"})
    assert ok.status_code == 200


def test_a_token_row_inserted_in_the_database_authenticates_nobody(server: Server) -> None:
    secret = "A" * 43
    with server.cp.ws.store.write() as session:
        session.add(
            ApiTokenRow(
                token_id="00112233445566aa",
                user_name="root",
                secret_hash=sha256_bytes(secret.encode()),
                created_at=datetime.now(UTC).isoformat(),
            )
        )
    forged = {"Authorization": f"Bearer ftg_00112233445566aa_{secret}"}
    assert server.client.get("/api/v1/users", headers=forged).status_code == 401
    assert (
        server.client.post(
            "/api/v1/users", headers=forged, json={"name": "mallory", "roles": ["approver"]}
        ).status_code
        == 401
    )


def test_only_admins_issue_tokens_and_a_token_is_never_listed(server: Server) -> None:
    assert server.post("/api/v1/tokens", "bob", json={"user": "bob"}).status_code == 403
    made = server.post("/api/v1/tokens", "root", json={"user": "erin", "expires": "30d"})
    assert made.status_code == 201 and made.json()["token"].startswith("ftg_")
    listed = server.get("/api/v1/tokens", "root").text
    assert made.json()["token"] not in listed and made.json()["token_id"] in listed
    assert [t["user"] for t in server.get("/api/v1/tokens", "erin").json()] == ["erin", "erin"]


def _last_use_stored(server: Server, user: str) -> str | None:
    token_id = server.tokens[user].split("_")[1]
    with server.cp.ws.store.read() as session:
        row = session.get(ApiTokenRow, token_id)
        assert row is not None
        return row.last_used_at


def test_a_tokens_use_is_written_off_the_request_path_and_listed_at_once(server: Server) -> None:
    before = datetime.now(UTC).isoformat(timespec="microseconds")
    assert server.get("/api/v1/whoami", "carol").status_code == 200
    # The request did not write: the use waits for the background writer...
    assert _last_use_stored(server, "carol") is None
    # ...but a listing writes what is noted first, so it never shows a stale last use.
    listed = {t["user"]: t["last_used_at"] for t in server.get("/api/v1/tokens", "root").json()}
    assert listed["carol"] is not None and listed["carol"] >= before
    assert listed["erin"] is None  # never used
    assert _last_use_stored(server, "carol") == listed["carol"]


def test_the_background_writer_records_uses_and_an_older_use_never_wins(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ftguard.server._context as context

    monkeypatch.setattr(context, "_TOKEN_USE_FLUSH_S", 0.05)
    assert server.get("/api/v1/whoami", "erin").status_code == 200
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while _last_use_stored(server, "erin") is None and datetime.now(UTC) < deadline:
        threading.Event().wait(0.05)
    stored = _last_use_stored(server, "erin")
    assert stored is not None
    with server.cp.ws.store.write() as session:  # a late writer with an older time
        note_token_use(session, server.tokens["erin"].split("_")[1], "2000-01-01T00:00:00+00:00")
    assert _last_use_stored(server, "erin") == stored


def test_uses_noted_before_shutdown_are_written_at_shutdown(cp: Env) -> None:
    with serving(cp) as running:
        assert running.get("/api/v1/whoami", "bob").status_code == 200
        assert _last_use_stored(running, "bob") is None
    assert _last_use_stored(running, "bob") is not None


def test_a_key_registered_over_the_api_needs_proof_and_an_admin(server: Server) -> None:
    import base64

    from ftguard.control._chain import key_request_message

    key = generate_key()
    good = base64.b64encode(key.sign(key_request_message("erin", key.public.keyid))).decode()
    wrong = base64.b64encode(key.sign(key_request_message("bob", key.public.keyid))).decode()
    refused = server.post(
        "/api/v1/keys", "erin", json={"public_key": key.public.b64, "proof": wrong}
    )
    assert refused.status_code == 422
    made = server.post("/api/v1/keys", "erin", json={"public_key": key.public.b64, "proof": good})
    assert made.status_code == 201 and made.json()["status"] == "pending"
    keyid = key.public.keyid
    assert server.post(f"/api/v1/keys/{keyid}/confirm", "erin").status_code == 403
    assert server.post(f"/api/v1/keys/{keyid}/confirm", "root").status_code == 200
    keys = {k for u in server.get("/api/v1/users", "erin").json() for k in u["keys"]}
    assert keyid in keys
    assert service.verify_audit(server.cp.ws).ok


@pytest.mark.parametrize(
    "reference",
    ["/etc/passwd", "data/../../etc", "elsewhere/x", "data", "data\\job\\model", "data/missing"],
)
def test_inputs_outside_the_storage_roots_are_refused(server: Server, reference: str) -> None:
    server.cp.inputs("job")
    body = {
        "base_model": reference,
        "dataset": "data/job/train.jsonl",
        "config": "data/job/config.yaml",
        "purpose": "x",
        "prepared_by": "dan",
    }
    answer = server.post("/api/v1/jobs", "alice", json=body)
    assert answer.status_code in (400, 403), answer.text
    assert "\n" not in answer.json()["message"]
    assert service.list_jobs(server.cp.ws) == []


def test_a_symlink_out_of_the_root_and_a_fifo_are_refused(
    server: Server, tmp_path_factory: pytest.TempPathFactory
) -> None:
    server.cp.inputs("job")
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.jsonl").write_text("{}\n")
    (server.cp.root / "job" / "link.jsonl").symlink_to(outside / "secret.jsonl")
    os.mkfifo(server.cp.root / "job" / "pipe.jsonl")
    for name in ("link.jsonl", "pipe.jsonl"):
        body = {
            "base_model": "data/job/model",
            "dataset": f"data/job/{name}",
            "config": "data/job/config.yaml",
            "purpose": "x",
            "prepared_by": "dan",
        }
        assert server.post("/api/v1/jobs", "alice", json=body).status_code == 403
    assert service.list_jobs(server.cp.ws) == []


def test_bad_bodies_get_one_line_4xx(server: Server) -> None:
    headers = server.auth("alice") | {"Content-Type": "application/json"}
    cases = [
        b"{not json",
        b'{"base_model": 1, "dataset": [], "config": null, "purpose": "x"}',
        b'{"base_model": "a/b", "dataset": "a/b", "config": "a/b", "purpose": "x", "evil": 1}',
    ]
    for body in cases:
        answer = server.client.post("/api/v1/jobs", content=body, headers=headers)
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"] == "invalid_request" and "\n" not in answer.json()["message"]
    big = b'{"purpose": "' + b"x" * (2 << 20) + b'"}'
    assert server.client.post("/api/v1/jobs", content=big, headers=headers).status_code == 413
    assert server.get("/api/v1/jobs/job-..%2F..%2Fetc", "alice").status_code in (404, 422)


def test_repeated_authentication_failures_are_rate_limited(server: Server) -> None:
    wrong = {"Authorization": "Bearer ftg_0011223344556677_" + "B" * 43}
    codes = [server.client.get("/api/v1/whoami", headers=wrong).status_code for _ in range(25)]
    assert codes[0] == 401 and codes[-1] == 429
    # The limit is per address: even a valid token from it waits out the minute.
    assert server.get("/api/v1/whoami", "bob").status_code == 429


def test_security_headers_and_request_ids(server: Server) -> None:
    answer = server.get("/api/v1/whoami", "bob")
    csp = answer.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert len(answer.headers["X-Request-ID"]) == 16
    assert answer.headers["Cache-Control"] == "no-store"


def test_health_and_readiness(server: Server) -> None:
    assert server.client.get("/healthz").json() == {"status": "ok"}
    ready = server.client.get("/readyz")
    # Unauthenticated: ready or not, and no count of the chain's events (review of
    # 2026-12-08: its head let anyone count a team's activity).
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


def test_the_openapi_schema_is_served(server: Server) -> None:
    schema = server.client.get("/api/v1/openapi.json").json()
    assert "/api/v1/jobs/{job_id}/approvals" in schema["paths"]


def test_an_oidc_caller_unknown_to_the_chain_cannot_act_or_break_the_log(server: Server) -> None:
    from ftguard.errors import NotFoundError

    ghost = service.ServerCaller(
        name="ghost",
        server_key=server.cp.ws.server_key(),
        via={"method": "oidc", "issuer": "http://127.0.0.1:1", "subject": "ghost"},
    )
    before = server.head_seq()
    with pytest.raises(NotFoundError):
        service.reject(server.cp.ws, actor=ghost, job_id=server.awaiting(), reason="x")
    after = service.verify_audit(server.cp.ws)
    assert after.ok and after.head_seq == before + 3  # submit, confirm, override: nothing more


def test_an_invalid_content_length_is_a_bad_request_not_an_oversized_body(server: Server) -> None:
    """Checked before the body is read, on the raw request (clients always send a valid one)."""
    import asyncio

    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    def call(length: bytes) -> tuple[int, dict[str, object]]:
        sent.clear()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/api/v1/jobs",
            "raw_path": b"/api/v1/jobs",
            "query_string": b"",
            "root_path": "",
            "client": ("127.0.0.1", 1),
            "server": ("testserver", 80),
            "headers": [
                (b"host", b"testserver"),
                (b"content-type", b"application/json"),
                (b"content-length", length),
            ],
        }
        asyncio.run(server.client.app(scope, receive, send))  # type: ignore[arg-type]
        start = next(m for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")  # type: ignore[misc]
        return int(start["status"]), json.loads(body)  # type: ignore[call-overload]

    for bad in (b"abc", b"-1", b"1e3", b""):
        status, answer = call(bad)
        assert (status, answer["error"]) == (400, "bad_request"), (bad, answer)
    status, answer = call(str((1 << 20) + 1).encode())
    assert (status, answer["error"]) == (413, "body_too_large")


def test_evidence_rows_added_in_the_database_are_never_served(server: Server) -> None:
    """Finding 10 of the 2026-12-07 review: approvers read evidence over the API, which used
    to serve the newest row of the table whether or not the chain recorded it."""
    job = server.awaiting()
    found = server.get(f"/api/v1/jobs/{job}/evidence/review", "bob")
    assert found.status_code == 404  # the override skipped the review: there is none
    body = json.dumps({"verdict": "pass"}, sort_keys=True, separators=(",", ":"))
    with server.cp.ws.store.write() as session:
        session.add(
            EvidenceRow(
                job_id=job,
                kind="review",
                digest=sha256_bytes(body.encode()),
                body=body,
                created_at=datetime.now(UTC).isoformat(),
            )
        )
    assert server.get(f"/api/v1/jobs/{job}/evidence/review", "bob").status_code == 404
    # What the chain records is served; edited in the table afterwards, it is refused.
    from ftguard.control import authenticate, chain_state
    from ftguard.control._jobs import store_evidence

    with server.cp.ws.store.write() as session:
        state = chain_state(server.cp.ws, session)
        digest = store_evidence(
            server.cp.ws,
            session,
            job_id=job,
            kind="review",
            body={"verdict": "block", "verdict_reasons": ["12 harmful-compliance examples"]},
            actor=authenticate(state, "sec"),
            payload={"subjects": {"dataset": state.job(job).digests["dataset"]}},
        )
    served = server.get(f"/api/v1/jobs/{job}/evidence/review", "bob")
    assert served.status_code == 200 and served.json()["digest"] == digest
    assert served.json()["body"]["verdict"] == "block"
    with server.cp.ws.store.write() as session:
        session.execute(update(EvidenceRow).where(EvidenceRow.digest == digest).values(body=body))
    edited = server.get(f"/api/v1/jobs/{job}/evidence/review", "bob")
    assert edited.status_code >= 400 and "altered" in edited.text


def test_the_gate_is_decided_over_the_api_and_names_who_decided(server: Server) -> None:
    """Review of 2026-12-08: ``POST /jobs/ID/gate`` answered 500 on every call (the decision
    was given the server's caller object where it records a name), so no gate could be
    decided through the server. A run started and ended over the API, then the gate: it
    blocks on the missing weight and behaviour evidence and records who decided."""
    import shutil

    job_id = server.awaiting()
    assert server.sign_approval("bob", job_id).status_code == 201
    assert server.sign_approval("carol", job_id).status_code == 201
    started = server.post(f"/api/v1/jobs/{job_id}/runs", "alice", json={})
    assert started.status_code == 201, started.text
    run = started.json()
    shutil.copytree(
        server.cp.root / "job" / "model", server.cp.root / "ftguard-runs" / job_id / "1"
    )
    ended = server.post(
        f"/api/v1/jobs/{job_id}/runs/{run['run']}/end",
        "alice",
        json={"token": run["token"], "exit_code": 0},
    )
    assert ended.status_code == 200 and ended.json()["state"] == "trained", ended.text
    before = server.head_seq()

    decided = server.post(f"/api/v1/jobs/{job_id}/gate", "sec")

    assert decided.status_code == 200, decided.text
    answer = decided.json()
    assert answer["decision"] == "block" and answer["attestation_url"] is None
    assert answer["decided_by"] == "sec"
    failed = {r["rule"] for r in answer["rules"] if not r["passed"]}
    assert "the weight report is missing" in answer["reasons"]
    assert "the behaviour comparison is missing" in answer["reasons"]
    assert "output.recorded" not in failed and "output.servable" not in failed
    assert server.get(f"/api/v1/jobs/{job_id}", "sec").json()["state"] == "blocked"
    assert server.head_seq() > before and service.verify_audit(server.cp.ws).ok


def test_storage_roots_may_not_overlap(tmp_path: Path) -> None:
    """Review of 2026-12-08: with ``shared=/data`` and ``secret=/data/secret``, the policy's
    storage_access on ``secret`` was bypassed as ``shared/secret/...``."""
    from pydantic import ValidationError

    from ftguard.server import ServerSettings

    outer, inner = tmp_path / "data", tmp_path / "data" / "secret"
    with pytest.raises(ValidationError, match="overlap"):
        ServerSettings(workspace=tmp_path / "ws", storage_roots={"shared": outer, "secret": inner})
    with pytest.raises(ValidationError, match="overlap"):
        ServerSettings(workspace=tmp_path / "ws", storage_roots={"a": outer, "b": outer})
    apart = ServerSettings(
        workspace=tmp_path / "ws", storage_roots={"a": outer / "a", "b": outer / "b"}
    )
    assert set(apart.storage_roots) == {"a", "b"}
