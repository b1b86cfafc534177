"""The authorisation matrix: every endpoint, every role, every kind of bad credential.

Refused requests answer 401 (no or a bad credential) or 403 (authenticated, not allowed),
and change nothing: not the audit chain, not a job, not a token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ftguard.control import _delegation, chain_state, service
from ftguard.errors import AuthenticationError, PermissionDeniedError
from tests.control.conftest import Env
from tests.server.conftest import USERS, Server, serving
from tests.server.oidc_issuer import TestIssuer

ANALYSTS = frozenset({"alice", "bob", "sec", "root"})
"""Who may analyse the matrix's job (carol and erin, approvers like bob, are added)."""

ROLES_OF = {
    "root": "admin",
    "alice": "requester",
    "dan": "data_preparer",
    "bob": "approver",
    "sec": "security_reviewer",
}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    body: dict[str, Any] | None
    allowed: frozenset[str] | None
    """Users who may (None: every authenticated user; reads)."""


def endpoints(job: str, pending_key: str) -> list[Endpoint]:
    submit = {
        "base_model": "data/job/model",
        "dataset": "data/job/train.jsonl",
        "config": "data/job/config.yaml",
        "purpose": "matrix",
        "prepared_by": "dan",
    }
    reads = [
        "/api/v1/whoami",
        "/api/v1/jobs",
        f"/api/v1/jobs/{job}",
        f"/api/v1/jobs/{job}/evidence/review",
        f"/api/v1/jobs/{job}/attestation",
        "/api/v1/audit",
        "/api/v1/audit/verify",
        "/api/v1/policy",
        "/api/v1/users",
        "/api/v1/tokens",
    ]
    writes = [
        Endpoint("POST", "/api/v1/jobs", submit, frozenset({"alice"})),
        Endpoint("GET", f"/api/v1/jobs/{job}/approval-statement", None, frozenset({"bob"})),
        Endpoint(
            "POST",
            f"/api/v1/jobs/{job}/approvals",
            {"envelope": _junk_envelope()},
            frozenset({"bob"}),
        ),
        Endpoint("POST", f"/api/v1/jobs/{job}/reject", {"reason": "no"}, frozenset({"bob", "sec"})),
        Endpoint(
            "POST", f"/api/v1/jobs/{job}/abort", {"reason": "launcher gone"}, frozenset({"root"})
        ),
        Endpoint("POST", f"/api/v1/jobs/{job}/cancel", None, frozenset({"alice", "root"})),
        # The analyses and the gate: the job's requester or an analyst role, not a preparer.
        *(
            Endpoint("POST", f"/api/v1/jobs/{job}/{what}", body, ANALYSTS)
            for what, body in (("review", None), ("weights", {}), ("eval", {}), ("gate", None))
        ),
        Endpoint(
            "POST", f"/api/v1/jobs/{job}/override", {"justification": "x"}, frozenset({"sec"})
        ),
        Endpoint(
            "POST", "/api/v1/users", {"name": "mallory", "roles": ["approver"]}, frozenset({"root"})
        ),
        Endpoint("POST", "/api/v1/users/bob/unbind", None, frozenset({"root"})),
        Endpoint(
            "POST",
            "/api/v1/users/carol/bind",
            {"issuer": "https://idp.example.com", "subject": "u-carol"},
            frozenset({"root"}),
        ),
        Endpoint("POST", f"/api/v1/keys/{pending_key}/confirm", None, frozenset({"root"})),
        Endpoint(
            "POST",
            f"/api/v1/keys/{pending_key}/revoke",
            {"reason": "x"},
            frozenset({"root", "erin"}),
        ),
        Endpoint("POST", "/api/v1/tokens", {"user": "bob"}, frozenset({"root"})),
    ]
    return [Endpoint("GET", p, None, None) for p in reads] + writes


def _junk_envelope() -> dict[str, Any]:
    return {"payloadType": "application/vnd.in-toto+json", "payload": "e30=", "signatures": []}


@dataclass
class Matrix:
    server: Server
    issuer: TestIssuer
    job: str
    pending_key: str
    credentials: dict[str, str]

    def snapshot(self) -> tuple[int, list[tuple[str, str]], int]:
        ws = self.server.cp.ws
        jobs = sorted((j.id, j.state) for j in service.list_jobs(ws))
        tokens = len(service.list_tokens(ws))
        return service.verify_audit(ws).head_seq, jobs, tokens


@pytest.fixture
def matrix(cp: Env, monkeypatch: pytest.MonkeyPatch) -> Iterator[Matrix]:
    with TestIssuer() as issuer:
        issuer.add_user("u-bob", "bob", ["approvers"])
        cp.set_policy(
            cp.ws.policy_path.read_text()
            + "server:\n  oidc:\n"
            + f"    - issuer: {issuer.url}\n      audience: {issuer.audience}\n"
            + "      user_claim: email\n"
        )
        with serving(cp, auth_failures_per_minute=10_000) as server:
            job = server.awaiting()
            erin_key = _pending_key(server)
            expiring = service.create_token(cp.ws, actor="root", user="bob", expires="1m")["token"]
            revoked = service.create_token(cp.ws, actor="root", user="bob")
            service.revoke_token(cp.ws, actor="root", token_id=revoked["token_id"])
            tampered = server.tokens["root"][:-1] + (
                "A" if server.tokens["root"][-1] != "A" else "B"
            )
            good_jwt = issuer.mint("bob")
            head, payload, signature = good_jwt.split(".")
            credentials = {
                "none": "",
                "garbage": "Bearer not-a-token",
                "basic": "Basic cm9vdDpyb290",
                "revoked token": f"Bearer {revoked['token']}",
                "tampered token": f"Bearer {tampered}",
                "expired token": f"Bearer {expiring}",
                "tampered jwt": f"Bearer {head}.{payload[:-2]}AA.{signature}",
                "jwt signed by another key": f"Bearer {issuer.mint('bob', sign_with=issuer.other_key())}",
                "jwt of the wrong audience": f"Bearer {issuer.mint('bob', audience='someone-else')}",
                "expired jwt": f"Bearer {issuer.mint('bob', expires_in=-3600)}",
            }
            # The one-minute token has expired by the time the matrix runs.
            later = datetime.now(UTC) + timedelta(minutes=5)
            monkeypatch.setattr(_delegation, "_now", lambda: later)
            yield Matrix(server, issuer, job, erin_key, credentials)


def _pending_key(server: Server) -> str:
    import base64

    from ftguard.attest import generate_key
    from ftguard.control._chain import key_request_message

    key = generate_key()
    proof = base64.b64encode(key.sign(key_request_message("erin", key.public.keyid))).decode()
    made = server.post("/api/v1/keys", "erin", json={"public_key": key.public.b64, "proof": proof})
    assert made.status_code == 201
    return key.public.keyid


def test_bad_credentials_get_401_on_every_endpoint_and_change_nothing(matrix: Matrix) -> None:
    before = matrix.snapshot()
    client = matrix.server.client
    for endpoint in endpoints(matrix.job, matrix.pending_key):
        for label, header in matrix.credentials.items():
            headers = {"Authorization": header} if header else {}
            answer = client.request(
                endpoint.method, endpoint.path, json=endpoint.body, headers=headers
            )
            assert answer.status_code == 401, (endpoint.path, label, answer.text)
            assert "ftg_" not in answer.text
    assert matrix.snapshot() == before


def test_a_wrong_issuer_is_refused(matrix: Matrix) -> None:
    with TestIssuer() as stranger:
        token = stranger.mint("bob")
    answer = matrix.server.client.get(
        "/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 401


def test_a_valid_oidc_token_authenticates_and_is_recorded(matrix: Matrix) -> None:
    token = matrix.issuer.mint("bob")
    answer = matrix.server.client.get(
        "/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200
    assert answer.json()["via"] == {
        "method": "oidc",
        "issuer": matrix.issuer.url,
        "subject": "u-bob",
    }


def test_every_role_is_refused_where_it_has_no_right_and_nothing_changes(matrix: Matrix) -> None:
    server = matrix.server
    for endpoint in endpoints(matrix.job, matrix.pending_key):
        for user in (*ROLES_OF, "carol", "erin"):
            if endpoint.allowed is None:
                continue
            approvers = {"carol", "erin"} if "bob" in endpoint.allowed else set()
            if user in endpoint.allowed | approvers:
                continue
            before = matrix.snapshot()
            answer = server.client.request(
                endpoint.method, endpoint.path, json=endpoint.body, headers=server.auth(user)
            )
            assert answer.status_code == 403, (endpoint.method, endpoint.path, user, answer.text)
            assert matrix.snapshot() == before


def test_every_role_may_read(matrix: Matrix) -> None:
    for endpoint in endpoints(matrix.job, matrix.pending_key):
        if endpoint.allowed is not None:
            continue
        for user in USERS:
            answer = matrix.server.client.get(endpoint.path, headers=matrix.server.auth(user))
            assert answer.status_code in (200, 404), (endpoint.path, user, answer.text)


def _whoami(matrix: Matrix, token: str) -> Any:
    return matrix.server.client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})


def _sso_of(matrix: Matrix, user: str) -> Any:
    users = matrix.server.get("/api/v1/users", "root").json()
    return next(u["sso"] for u in users if u["name"] == user)


def test_the_first_sign_in_binds_the_name_and_another_identity_is_refused(
    matrix: Matrix,
) -> None:
    """Open finding of the 2026-12-07 review: OIDC users were bound by name alone, so a
    recycled address, or a second issuer that issues the same name, became the same user."""
    assert _sso_of(matrix, "bob") is None  # added by an admin, never signed in
    assert _whoami(matrix, matrix.issuer.mint("bob")).status_code == 200
    assert _sso_of(matrix, "bob") == {"issuer": matrix.issuer.url, "subject": "u-bob"}
    bound = matrix.snapshot()

    recycled = matrix.issuer.mint("bob", extra_claims={"sub": "u-someone-new"})
    answer = _whoami(matrix, recycled)
    assert answer.status_code == 401
    assert "another identity" in answer.json()["message"]
    assert "u-someone-new" not in answer.text
    # The bound identity still signs in, and nothing was written for the refused one.
    assert _whoami(matrix, matrix.issuer.mint("bob")).status_code == 200
    assert matrix.snapshot() == bound


def test_a_second_issuer_cannot_sign_in_as_a_name_the_first_one_bound(
    cp: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TestIssuer() as corp, TestIssuer() as partner:
        corp.add_user("u-bob", "bob", ["approvers"])
        partner.add_user("p-17", "bob", ["approvers"])  # the partner's own "bob"
        cp.set_policy(
            cp.ws.policy_path.read_text()
            + "server:\n  oidc:\n"
            + "".join(
                f"    - issuer: {i.url}\n      audience: {i.audience}\n"
                "      user_claim: email\n      group_roles: {approvers: [approver]}\n"
                for i in (corp, partner)
            )
        )
        with serving(cp) as server:
            client = server.client
            first = client.get(
                "/api/v1/whoami", headers={"Authorization": f"Bearer {corp.mint('bob')}"}
            )
            assert first.status_code == 200
            second = client.get(
                "/api/v1/whoami", headers={"Authorization": f"Bearer {partner.mint('bob')}"}
            )
            assert second.status_code == 401
            # Nor through the console's sign-in, which syncs through the same check.

            with (
                pytest.raises(AuthenticationError, match="another identity"),
                cp.ws.store.write() as session,
            ):
                service.sync_oidc_user(
                    cp.ws,
                    session,
                    chain_state(cp.ws, session),
                    server_key=cp.ws.server_key(),
                    user="bob",
                    issuer=partner.url,
                    subject="p-17",
                    roles=["approver"],
                )
            assert service.verify_audit(cp.ws).ok


def test_an_admin_unbinds_and_the_next_sign_in_binds_again(matrix: Matrix) -> None:
    server = matrix.server
    moved = matrix.issuer.mint("bob", extra_claims={"sub": "u-bob-recreated"})
    assert _whoami(matrix, matrix.issuer.mint("bob")).status_code == 200
    assert _whoami(matrix, moved).status_code == 401

    assert server.post("/api/v1/users/bob/unbind", "bob").status_code == 403
    answer = server.post("/api/v1/users/bob/unbind", "root")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"name": "bob", "issuer": matrix.issuer.url, "subject": "u-bob"}
    assert server.post("/api/v1/users/bob/unbind", "root").status_code == 409  # nothing bound

    assert _whoami(matrix, moved).status_code == 200
    assert _sso_of(matrix, "bob") == {"issuer": matrix.issuer.url, "subject": "u-bob-recreated"}
    assert _whoami(matrix, matrix.issuer.mint("bob")).status_code == 401
    events = [e.action for e in service.iter_audit(server.cp.ws)]
    assert events.count("user.sync") == 2 and events.count("user.unbind") == 1
    assert service.verify_audit(server.cp.ws).ok


def test_replay_refuses_an_event_by_an_identity_the_user_is_not_bound_to(matrix: Matrix) -> None:
    """A stolen server key, or a server bug, that acts as a bound user for another identity
    is caught by anyone who verifies the chain."""
    from ftguard.control._audit import append_event
    from ftguard.control._chain import Actor
    from ftguard.control._workspace import now_iso

    ws = matrix.server.cp.ws
    assert _whoami(matrix, matrix.issuer.mint("bob")).status_code == 200
    intruder = {"method": "oidc", "issuer": matrix.issuer.url, "subject": "u-intruder"}
    with ws.store.write() as session:
        chain_state(ws, session)
        append_event(
            session,
            ws.audit_key(),
            ts=now_iso(),
            actor=Actor(name="bob", key=ws.server_key(), via=intruder),
            action="user.sync",
            payload={"name": "bob", "roles": [], **{k: intruder[k] for k in ("issuer", "subject")}},
        )
    report = service.verify_audit(ws)
    assert not report.ok
    assert report.problem is not None and "another OIDC identity" in report.problem


def test_every_api_route_names_the_scope_it_needs() -> None:
    """A route missing from the table refuses every scoped token; the table holds no stale
    route (each entry is a route the app serves)."""
    from fastapi.routing import APIRoute

    from ftguard.server._api import ROUTE_SCOPES, router

    served = {(m, r.path) for r in router.routes if isinstance(r, APIRoute) for m in r.methods}
    assert served == set(ROUTE_SCOPES)
    assert set(ROUTE_SCOPES.values()) == set(service.TOKEN_SCOPES)


def _scope_of(endpoint: Endpoint) -> str:
    from ftguard.server._api import ROUTE_SCOPES

    template = endpoint.path
    for (method, path), scope in ROUTE_SCOPES.items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"
        if method == endpoint.method and re.match(pattern, template):
            return scope
    raise AssertionError(f"no scope for {endpoint.method} {template}")


def test_a_scoped_token_is_refused_outside_its_scopes_and_changes_nothing(matrix: Matrix) -> None:
    """Open finding of the 2026-12-07 review: API tokens carried no scope, so a token made
    for a pipeline that only runs or only verifies could do all its user's roles allow."""
    server = matrix.server
    for endpoint in endpoints(matrix.job, matrix.pending_key):
        if endpoint.allowed is None:
            continue
        needed = _scope_of(endpoint)
        user = sorted(endpoint.allowed)[0]
        others = [s for s in service.TOKEN_SCOPES if s != needed]
        narrow = service.create_token(server.cp.ws, actor="root", user=user, scopes=others)
        before = matrix.snapshot()
        answer = server.client.request(
            endpoint.method,
            endpoint.path,
            json=endpoint.body,
            headers={"Authorization": f"Bearer {narrow['token']}"},
        )
        assert answer.status_code == 403, (endpoint.path, answer.text)
        assert f"needs the {needed} scope" in answer.json()["message"]
        assert matrix.snapshot()[:2] == before[:2]  # the token count rose by the one made

        exact = service.create_token(server.cp.ws, actor="root", user=user, scopes=[needed])
        answer = server.client.request(
            endpoint.method,
            endpoint.path,
            json=endpoint.body,
            headers={"Authorization": f"Bearer {exact['token']}"},
        )
        assert "scope" not in answer.json().get("message", ""), (endpoint.path, answer.text)


def test_a_read_scoped_token_reads_and_verifies_but_cannot_open_the_console(
    matrix: Matrix,
) -> None:
    from fastapi.testclient import TestClient

    server = matrix.server
    issued = service.create_token(server.cp.ws, actor="root", user="sec", scopes=["read"])
    assert issued["scopes"] == ["read"]
    headers = {"Authorization": f"Bearer {issued['token']}"}
    for endpoint in endpoints(matrix.job, matrix.pending_key):
        if endpoint.allowed is None:
            answer = server.client.get(endpoint.path, headers=headers)
            assert answer.status_code in (200, 404), (endpoint.path, answer.text)
    me = server.client.get("/api/v1/whoami", headers=headers).json()
    assert me["scopes"] == ["read"] and me["roles"] == ["security_reviewer"]

    browser = TestClient(server.client.app)
    login = browser.post("/login/token", data={"token": issued["token"]}, follow_redirects=False)
    assert login.status_code == 403 and "ftguard_session" not in login.headers.get("set-cookie", "")
    # The chain records the scopes, so they hold after a restart and show in listings.
    listed = next(
        t for t in service.list_tokens(server.cp.ws) if t["token_id"] == issued["token_id"]
    )
    assert listed["scopes"] == ["read"]
    assert service.verify_audit(server.cp.ws).ok


def test_token_scopes_are_checked_when_issued(matrix: Matrix) -> None:
    from ftguard.errors import BadInputError

    with pytest.raises(BadInputError, match="unknown token scope 'deploy'"):
        service.create_token(matrix.server.cp.ws, actor="root", user="bob", scopes=["deploy"])
    with pytest.raises(BadInputError, match="at least one scope"):
        service.create_token(matrix.server.cp.ws, actor="root", user="bob", scopes=[])
    # "read" always comes with a scope, in a fixed order
    issued = service.create_token(
        matrix.server.cp.ws, actor="root", user="bob", scopes=["run", "approve"]
    )
    assert issued["scopes"] == ["read", "approve", "run"]
    answer = matrix.server.post(
        "/api/v1/tokens", "root", json={"user": "bob", "scopes": ["everything"]}
    )
    assert answer.status_code == 422


def test_a_session_or_caller_of_an_unbound_identity_can_no_longer_act(matrix: Matrix) -> None:
    """Review of these controls: a console session (8 hours) or a long analysis started by an
    identity that is unbound meanwhile must neither act nor write an event replay refuses."""
    from fastapi.testclient import TestClient

    server = matrix.server
    assert _whoami(matrix, matrix.issuer.mint("bob")).status_code == 200  # binds u-bob
    via = {"method": "oidc", "issuer": matrix.issuer.url, "subject": "u-bob"}
    ctx = server.client.app.state.ctx  # type: ignore[attr-defined]
    sid, _ = ctx.sessions.open("bob", dict(via))
    browser = TestClient(server.client.app, cookies={"ftguard_session": sid})
    assert browser.get("/api/v1/whoami").status_code == 200
    assert server.post("/api/v1/users/bob/unbind", "root").status_code == 200
    head = matrix.snapshot()
    assert browser.get("/api/v1/whoami").status_code == 401
    assert browser.get("/queue", follow_redirects=False).status_code in (302, 303)
    stale = service.ServerCaller(name="bob", server_key=server.cp.ws.server_key(), via=via)
    with pytest.raises(PermissionDeniedError, match="no longer bound"):
        service.reject(server.cp.ws, actor=stale, job_id=matrix.job, reason="stale")
    assert matrix.snapshot() == head and service.verify_audit(server.cp.ws).ok


def test_an_admin_name_is_never_bound_by_a_sign_in(matrix: Matrix) -> None:
    answer = _whoami(matrix, matrix.issuer.mint("root"))
    assert answer.status_code == 401 and "is an admin" in answer.json()["message"]
    assert _sso_of(matrix, "root") is None


def test_a_token_without_the_admin_scope_cannot_use_its_users_admin_role(matrix: Matrix) -> None:
    """Review of these controls: an admin's token limited to `keys` revoked everyone's keys and
    tokens, and one limited to `submit` cancelled everyone's jobs."""
    server = matrix.server
    keys_only = service.create_token(server.cp.ws, actor="root", user="root", scopes=["keys"])
    headers = {"Authorization": f"Bearer {keys_only['token']}"}
    submit_only = service.create_token(server.cp.ws, actor="root", user="root", scopes=["submit"])
    bobs = next(t for t in service.list_tokens(server.cp.ws, user="bob"))
    before = matrix.snapshot()
    answer = server.client.delete(f"/api/v1/tokens/{bobs['token_id']}", headers=headers)
    assert answer.status_code == 403 and "needs the admin scope" in answer.json()["message"]
    bob = next(u for u in service.list_users(server.cp.ws) if u["name"] == "bob")
    answer = server.client.post(
        f"/api/v1/keys/{bob['keys'][0]}/revoke", json={"reason": "x"}, headers=headers
    )
    assert answer.status_code == 403 and "needs the admin scope" in answer.json()["message"]
    answer = server.client.post(
        f"/api/v1/jobs/{matrix.job}/cancel",
        headers={"Authorization": f"Bearer {submit_only['token']}"},
    )
    # Without the admin scope it reads as a non-admin: another's job is not even found.
    assert answer.status_code == 404 and "unknown job" in answer.json()["message"]
    assert matrix.snapshot()[:2] == before[:2]
    # Its own token it may revoke with the keys scope.
    answer = server.client.delete(f"/api/v1/tokens/{keys_only['token_id']}", headers=headers)
    assert answer.status_code == 200


def test_an_admin_binds_a_name_before_its_first_sign_in(matrix: Matrix) -> None:
    """The first sign-in under a name an admin added binds it, whoever makes it; binding the
    name first leaves that race to no one."""
    server = matrix.server
    issuer = matrix.issuer.url
    answer = server.post(
        "/api/v1/users/bob/bind", "root", json={"issuer": issuer, "subject": "u-bob"}
    )
    assert answer.status_code == 200, answer.text
    assert _sso_of(matrix, "bob") == {"issuer": issuer, "subject": "u-bob"}
    head = matrix.snapshot()
    first = _whoami(matrix, matrix.issuer.mint("bob", extra_claims={"sub": "u-squatter"}))
    assert first.status_code == 401 and matrix.snapshot() == head
    assert _whoami(matrix, matrix.issuer.mint("bob")).status_code == 200
    again = server.post("/api/v1/users/bob/bind", "root", json={"issuer": issuer, "subject": "x"})
    assert again.status_code == 409
    unknown = server.post(
        "/api/v1/users/carol/bind", "root", json={"issuer": "https://other.example", "subject": "c"}
    )
    assert unknown.status_code == 400 and "names no OIDC issuer" in unknown.json()["message"]
    events = [e.action for e in service.iter_audit(server.cp.ws)]
    assert events.count("user.bind") == 1 and service.verify_audit(server.cp.ws).ok


def test_a_scoped_caller_that_skips_the_routes_still_cannot_write_outside_its_scopes(
    matrix: Matrix,
) -> None:
    """Defence in depth: a use case called with a scoped caller past the route table (a new
    route, or code that forgets it) is refused at the one place events are written."""
    from ftguard.control._audit import ACTION_SCOPES

    assert set(ACTION_SCOPES.values()) <= set(service.TOKEN_SCOPES)
    server = matrix.server
    issued = service.create_token(server.cp.ws, actor="root", user="bob", scopes=["run"])
    caller = service.ServerCaller(
        name="bob",
        server_key=server.cp.ws.server_key(),
        via={"method": "token", "token_id": issued["token_id"]},
        scopes=frozenset(issued["scopes"]),
    )
    before = matrix.snapshot()
    with pytest.raises(PermissionDeniedError, match="job.reject needs the approve scope"):
        service.reject(server.cp.ws, actor=caller, job_id=matrix.job, reason="past the routes")
    assert matrix.snapshot() == before and service.verify_audit(server.cp.ws).ok


def test_replay_refuses_an_event_made_with_a_token_outside_its_scopes(matrix: Matrix) -> None:
    """The open finding "token scopes are not checked on replay": an event the server key
    signed for a `run` token, but that only the `approve` scope may write (what a thief of
    the server's key could append), no longer verifies."""
    from ftguard.control._audit import append_event
    from ftguard.control._chain import Actor
    from ftguard.control._workspace import now_iso
    from ftguard.errors import VerificationError

    server = matrix.server
    issued = service.create_token(server.cp.ws, actor="root", user="bob", scopes=["run"])
    ws = server.cp.ws
    with ws.store.write() as session:
        state = chain_state(ws, session)
        record = state.job(matrix.job)
        append_event(
            session,
            ws.audit_key(),
            ts=now_iso(),
            actor=Actor(
                name="bob",
                key=ws.server_key(),
                via={"method": "token", "token_id": issued["token_id"]},
            ),
            action="job.reject",
            job_id=matrix.job,
            payload={"reason": "x", "from": record.state, "to": "rejected"},
        )
    with pytest.raises(VerificationError, match="without the approve scope"), ws.store.read() as s:
        chain_state(ws, s)


def test_a_read_or_analyze_token_of_an_admin_does_not_use_the_admin_role(matrix: Matrix) -> None:
    """Review of 2026-12-08: an admin's `read` token listed everyone's tokens, and its
    `analyze` token analysed any job by the admin role."""
    server = matrix.server
    read_only = service.create_token(server.cp.ws, actor="root", user="root", scopes=["read"])
    listed = server.client.get(
        "/api/v1/tokens", headers={"Authorization": f"Bearer {read_only['token']}"}
    )
    assert listed.status_code == 200 and {t["user"] for t in listed.json()} == {"root"}
    assert {t["user"] for t in server.get("/api/v1/tokens", "root").json()} > {"root", "bob"}
    analyze = service.create_token(server.cp.ws, actor="root", user="root", scopes=["analyze"])
    before = matrix.snapshot()
    answer = server.client.post(
        f"/api/v1/jobs/{matrix.job}/weights",
        json={},
        headers={"Authorization": f"Bearer {analyze['token']}"},
    )
    # It reads as a non-admin too: another's job is not even found.
    assert answer.status_code == 404 and "unknown job" in answer.json()["message"]
    assert matrix.snapshot() == before


def test_a_console_session_ends_with_the_token_that_opened_it(matrix: Matrix) -> None:
    """Review of 2026-12-08: a session opened with an API token kept reading every page for
    its 8 hours after the token was revoked (writes were refused)."""
    from fastapi.testclient import TestClient

    server = matrix.server
    browser = TestClient(server.client.app)
    login = browser.post(
        "/login/token", data={"token": server.tokens["bob"]}, follow_redirects=False
    )
    assert login.status_code == 303
    assert browser.get("/queue", follow_redirects=False).status_code == 200
    assert browser.get("/api/v1/jobs").status_code == 200
    token_id = next(t["token_id"] for t in service.list_tokens(server.cp.ws, user="bob"))
    assert server.client.delete(
        f"/api/v1/tokens/{token_id}", headers=server.auth("root")
    ).is_success
    assert browser.get("/api/v1/jobs").status_code == 401
    page = browser.get("/queue", follow_redirects=False)
    assert page.status_code in (302, 303) and "/login" in page.headers["location"]
    assert browser.get("/api/v1/whoami").status_code == 401  # the session itself was closed


def test_a_log_rolled_back_behind_the_witness_serves_no_reads(cp: Env) -> None:
    """Review of 2026-12-08: only decisions compared the log with the witness, so a database
    restored from a snapshot taken before a token's revocation let that token read again
    (after a restart) and /readyz said ready."""
    from fastapi.testclient import TestClient
    from sqlalchemy import text

    from ftguard.server import ServerSettings, create_app

    with serving(cp) as server:
        with cp.ws.store.engine.begin() as conn:
            saved = conn.execute(text("SELECT seq, hash, signature FROM audit_head")).one()
        token_id = next(t["token_id"] for t in service.list_tokens(cp.ws, user="bob"))
        assert server.client.delete(f"/api/v1/tokens/{token_id}", headers=server.auth("root"))
        assert server.get("/api/v1/jobs", "bob").status_code == 401
        tokens = server.tokens
    with cp.ws.store.engine.begin() as conn:  # the snapshot from before the revocation
        conn.execute(text("DELETE FROM audit_events WHERE seq > :s"), {"s": saved.seq})
        conn.execute(text("DELETE FROM audit_checkpoints WHERE seq > :s"), {"s": saved.seq})
        conn.execute(
            text("UPDATE audit_head SET seq=:s, hash=:h, signature=:g"),
            {"s": saved.seq, "h": saved.hash, "g": saved.signature},
        )
        conn.execute(text("UPDATE api_tokens SET revoked_at=NULL"))
    assert service.verify_audit(cp.ws).ok  # the chain alone cannot tell
    app = create_app(
        ServerSettings(
            workspace=cp.root / "ws",
            database_url=cp.env.get("FTGUARD_DATABASE_URL"),
            storage_roots={"data": cp.root},
        )
    )
    with TestClient(app) as client:
        for user in ("bob", "root"):
            answer = client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {tokens[user]}"})
            assert answer.status_code == 422 and "rolled back" in answer.json()["message"]
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "rolled back" in ready.json()["reason"]


def test_a_user_without_a_team_role_reads_only_their_own_jobs(matrix: Matrix) -> None:
    """Review of 2026-12-08: any signed-in user read every job, its evidence and its audit
    events, whoever requested it. A user whose only role is requester now reads their own jobs
    and nothing of anyone else's; a job they may not read answers as one that does not exist."""
    from tests.server.test_console import console

    server, job = matrix.server, matrix.job
    ws = server.cp.ws
    service.add_user(ws, actor="root", name="zed", roles=["requester", "data_preparer"])
    server.tokens["zed"] = service.create_token(ws, actor="root", user="zed")["token"]
    own = server.submit("zeds", requester="zed", preparer="zed")
    unknown = "job-0000000000" if job != "job-0000000000" else "job-0000000001"

    for endpoint in endpoints(job, matrix.pending_key):
        if f"/jobs/{job}" not in endpoint.path:
            continue
        before = matrix.snapshot()
        answer = server.client.request(
            endpoint.method, endpoint.path, json=endpoint.body, headers=server.auth("zed")
        )
        assert answer.status_code == 404, (endpoint.method, endpoint.path, answer.text)
        assert "alice" not in answer.text and "dan" not in answer.text
        probe = server.client.request(
            endpoint.method,
            endpoint.path.replace(job, unknown),
            json=endpoint.body,
            headers=server.auth("zed"),
        )
        assert probe.status_code == 404
        assert answer.json()["message"].replace(job, "?") == probe.json()["message"].replace(
            unknown, "?"
        )
        assert matrix.snapshot() == before

    listed = server.get("/api/v1/jobs", "zed")
    assert listed.status_code == 200 and [j["id"] for j in listed.json()] == [own]
    assert server.get(f"/api/v1/audit?job_id={job}", "zed").status_code == 404
    events = server.get("/api/v1/audit?limit=1000", "zed").json()
    assert own in {e["job_id"] for e in events} <= {own, None}
    assert all(e["actor"] == "zed" for e in events if e["job_id"] is None)
    assert server.get(f"/api/v1/jobs/{own}", "zed").status_code == 200

    # The people the job concerns and the team roles still read it.
    for user in ("alice", "dan", "bob", "sec", "root"):
        assert server.get(f"/api/v1/jobs/{job}", user).status_code == 200, user
    everyone = {j["id"] for j in server.get("/api/v1/jobs", "bob").json()}
    assert {job, own} <= everyone
    assert own not in {j["id"] for j in server.get("/api/v1/jobs", "alice").json()}

    # The console shows the same: no trace of alice's job in zed's queue, audit or job pages.
    browser = console(server, "zed")
    for page in ("/queue", "/audit"):
        html = browser.get(page).text
        assert own in html and job not in html, page
    assert browser.get(f"/jobs/{job}").status_code == 404
    assert browser.get(f"/jobs/{own}").status_code == 200


def test_verify_by_job_id_answers_only_for_a_job_the_caller_may_read(matrix: Matrix) -> None:
    """Review of 2026-12-08: ``POST /verify`` with a job id read the job without the reader
    rule, so its answer told a user without a team role which ids were jobs, which passed the
    gate and which files each attested model holds."""
    server, job = matrix.server, matrix.job
    ws = server.cp.ws
    service.add_user(ws, actor="root", name="zed", roles=["requester"])
    server.tokens["zed"] = service.create_token(ws, actor="root", user="zed")["token"]
    body = {"model": "data/job/model", "attestation": job}
    hidden = server.post("/api/v1/verify", "zed", json=body)
    unknown = server.post("/api/v1/verify", "zed", json=body | {"attestation": "job-0000000000"})
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["message"].replace(job, "?") == unknown.json()["message"].replace(
        "job-0000000000", "?"
    )
    answered = server.post("/api/v1/verify", "alice", json=body)  # her own job: an answer
    assert answered.status_code == 200 and answered.json()["allowed"] is False


def test_the_policy_keeps_a_storage_root_to_the_users_and_roles_it_names(server: Server) -> None:
    """Review of 2026-12-08: the server reads every storage root with its own rights, so any
    requester could submit another team's dataset as their own job's input and have the
    server hash and review it (its findings quote the data), or list another team's folders
    through ``/verify``. ``server.storage_access`` names who may use each root; the refusal
    comes before the path is looked at."""
    ws = server.cp.ws
    server.cp.set_policy(
        ws.policy_path.read_text()
        + "server:\n  storage_access:\n    data: [alice, dan, 'role:approver']\n"
    )
    service.add_user(ws, actor="root", name="zed", roles=["requester", "data_preparer"])
    server.tokens["zed"] = service.create_token(ws, actor="root", user="zed")["token"]
    server.cp.inputs("teama")
    body = {
        "base_model": "data/teama/model",
        "dataset": "data/teama/train.jsonl",
        "config": "data/teama/config.yaml",
        "purpose": "someone else's data",
        "prepared_by": "zed",
    }
    before = server.head_seq()
    for probe in (
        body,
        body | {"dataset": "data/teama/no-such-file.jsonl"},
        body | {"dataset": "./data/teama/train.jsonl"},  # the root read as the resolver reads it
        body | {"dataset": " data/teama/train.jsonl"},
    ):
        refused = server.post("/api/v1/jobs", "zed", json=probe)
        assert refused.status_code == 403, refused.text
        assert "storage_access" in refused.json()["message"]
        assert "no-such" not in refused.json()["message"]
    listing = server.post(
        "/api/v1/verify", "zed", json={"model": "data/teama", "attestation": "data/x.json"}
    )
    assert listing.status_code == 403 and "storage_access" in listing.json()["message"]
    assert server.head_seq() == before
    # The users and the role the root names use it as before.
    assert (
        server.post("/api/v1/jobs", "alice", json=body | {"prepared_by": "dan"}).status_code == 201
    )
    looked = server.post(
        "/api/v1/verify", "bob", json={"model": "data/teama/model", "attestation": "data/x.json"}
    )
    assert looked.status_code == 400 and "does not exist" in looked.json()["message"]


def test_a_runner_reads_and_analyses_a_job_only_from_its_approval_on(matrix: Matrix) -> None:
    """Review of 2026-12-08: the runner role (a training service's identity, whose token
    is often limited to ``run``, and every scoped token reads) read every team's queue with its
    purposes and review findings, and could start the review of any submitted job. It now
    reads and analyses the jobs it may run: from their approval on."""
    server, job = matrix.server, matrix.job
    ws = server.cp.ws
    service.add_user(ws, actor="root", name="rita", roles=["runner"])
    service.confirm_key(ws, actor="root", keyid=service.create_key(ws, user="rita").keyid)
    server.tokens["rita"] = service.create_token(ws, actor="root", user="rita", scopes=["run"])[
        "token"
    ]
    assert service.get_job(ws, job).state == "awaiting_approval"
    assert server.get(f"/api/v1/jobs/{job}", "rita").status_code == 404
    assert job not in {j["id"] for j in server.get("/api/v1/jobs", "rita").json()}
    with pytest.raises(PermissionDeniedError, match="may not review"):  # past the routes too
        service.review_job(ws, actor="rita", job_id=job)

    assert server.sign_approval("bob", job).status_code == 201
    assert server.sign_approval("carol", job).status_code == 201
    assert server.get(f"/api/v1/jobs/{job}", "rita").json()["state"] == "approved"
    assert job in {j["id"] for j in server.get("/api/v1/jobs", "rita").json()}
    started = server.post(f"/api/v1/jobs/{job}/runs", "rita", json={})
    assert started.status_code == 201, started.text


def test_a_token_without_the_admin_scope_reads_as_a_non_admin(matrix: Matrix) -> None:
    """Review of 2026-12-08: the job reader and the storage check used every role of the
    caller, so an admin's ``run`` token read every team's jobs and audit events."""
    server, job = matrix.server, matrix.job
    ws = server.cp.ws
    scoped = service.create_token(ws, actor="root", user="root", scopes=["run"])["token"]
    headers = {"Authorization": f"Bearer {scoped}"}
    assert server.client.get(f"/api/v1/jobs/{job}", headers=headers).status_code == 404
    assert server.client.get("/api/v1/jobs", headers=headers).json() == []
    assert server.get(f"/api/v1/jobs/{job}", "root").status_code == 200  # unscoped: admin
