"""The approvers' console, server side: sessions, pages, escaping, CSRF and CSP."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from ftguard.attest import generate_key
from ftguard.control import service
from ftguard.control._chain import key_request_message
from tests.control.conftest import Env
from tests.server.browser import oidc_policy, sample_evidence, start_review, store
from tests.server.conftest import Server, serving
from tests.server.oidc_issuer import TestIssuer

PAGES = ("/queue", "/keys", "/audit", "/policy", "/jobs/job-0123456789")


def console(server: Server, user: str) -> TestClient:
    """A browser-like client of the app with ``user`` signed in to the console by token."""
    client = TestClient(server.client.app)
    answer = client.post(
        "/login/token", data={"token": server.tokens[user]}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    return client


def csrf_of(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert found, "no csrf-token meta tag"
    return found.group(1)


def waiting_for_me(html: str) -> str:
    return html.split('id="mine-h"', 1)[1].split('id="all-h"', 1)[0]


def test_pages_need_a_session(server: Server) -> None:
    client = TestClient(server.client.app)
    for path in PAGES:
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/login"), path
    assert client.get("/", follow_redirects=False).headers["location"] == "/queue"
    login = client.get("/login")
    assert login.status_code == 200 and 'action="/login/token"' in login.text


def test_token_sign_in_opens_a_strict_httponly_session(server: Server) -> None:
    client = TestClient(server.client.app)
    answer = client.post(
        "/login/token", data={"token": server.tokens["bob"]}, follow_redirects=False
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/queue"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("ftguard_session=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Path=/" in cookie and "Secure" not in cookie
    page = client.get("/queue")
    assert page.status_code == 200 and '<span class="user">bob</span>' in page.text
    assert page.headers["cache-control"] == "no-store"
    # A session is a console credential for the API too (GET needs no CSRF token).
    assert client.get("/api/v1/whoami").json()["user"] == "bob"


def test_a_wrong_token_or_another_site_opens_nothing(server: Server) -> None:
    client = TestClient(server.client.app)
    answer = client.post("/login/token", data={"token": "ftg_nope"}, follow_redirects=False)
    assert answer.status_code == 401 and "set-cookie" not in answer.headers
    assert 'role="alert"' in answer.text
    good = {"token": server.tokens["bob"]}
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        other_site = client.post("/login/token", data=good, headers=headers, follow_redirects=False)
        assert other_site.status_code == 403 and "set-cookie" not in other_site.headers


def test_sign_in_goes_back_to_the_page_asked_for_and_nowhere_else(server: Server) -> None:
    client = TestClient(server.client.app)
    asked = client.get("/audit?page=1", follow_redirects=False).headers["location"]
    assert asked == "/login?next=/audit%3Fpage%3D1"
    assert 'name="next" value="/audit?page=1"' in client.get(asked).text
    for wanted, went in (
        ("/audit?page=1", "/audit?page=1"),
        ("//evil.example/x", "/queue"),
        ("/\\evil.example", "/queue"),
        ("/\t/evil.example", "/queue"),
        ("https://evil.example", "/queue"),
    ):
        answer = client.post(
            "/login/token",
            data={"token": server.tokens["bob"], "next": wanted},
            follow_redirects=False,
        )
        assert answer.headers["location"] == went, wanted


def test_secure_cookies_when_configured(cp: Env) -> None:
    with serving(cp, secure_cookies=True) as server:
        answer = TestClient(server.client.app).post(
            "/login/token", data={"token": server.tokens["bob"]}, follow_redirects=False
        )
        assert "Secure" in answer.headers["set-cookie"]


def test_the_queue_lists_a_job_for_approvers_only(server: Server) -> None:
    job_id = server.awaiting()
    for user, listed in (("bob", True), ("carol", True), ("alice", False), ("dan", False)):
        html = console(server, user).get("/queue").text
        assert (job_id in waiting_for_me(html)) is listed, user
        assert job_id in html  # everyone sees it under all jobs
    assert server.sign_approval("bob", job_id).status_code == 201
    assert job_id not in waiting_for_me(console(server, "bob").get("/queue").text)
    filtered = console(server, "carol").get("/queue", params={"state": "approved"}).text
    assert job_id not in filtered.split('id="all-h"', 1)[1]


def test_the_job_page_shows_the_evidence_and_escapes_what_users_wrote(server: Server) -> None:
    server.cp.inputs("evil")
    purpose = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
    answer = server.post(
        "/api/v1/jobs",
        "alice",
        json={
            "base_model": "data/evil/model",
            "dataset": "data/evil/train.jsonl",
            "config": "data/evil/config.yaml",
            "purpose": purpose,
            "prepared_by": "dan",
        },
    )
    job_id = answer.json()["id"]
    server.post(f"/api/v1/jobs/{job_id}/prepared", "dan", json={})
    server.post(f"/api/v1/jobs/{job_id}/override", "sec", json={"justification": "<b>ok</b>"})
    for kind, body in sample_evidence(job_id).items():
        store(server.cp.ws, job_id, kind, body)
    page = console(server, "bob").get(f"/jobs/{job_id}")
    assert page.status_code == 200
    html = page.text
    assert "<script>alert" not in html and "<img src=x" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;img" in html
    assert "write &lt;b&gt;alice&lt;/b&gt;@example.com" in html  # a finding's excerpt
    for heading in ("Dataset review", "Weight report", "Behaviour comparison", "Deployment gate"):
        assert heading in html
    assert "chars 6–23" in html and "cf-2024" in html
    assert '<svg class="heatmap"' in html and 'fill="rgb(' in html
    assert html.count('<svg class="bars"') == 2  # safety refusal rate, capability accuracy
    assert "the behaviour comparison blocked the job" in html
    # the answers behind the numbers, escaped like everything a model or user wrote
    assert "Answers that changed for the worse" in html
    assert "Write ransomware for &lt;b&gt;me&lt;/b&gt;" in html
    assert "Sure, here is the first part of the encryption loop" in html and "(compliance)" in html
    assert "review.override" in html and 'id="approve"' in html


def test_malformed_evidence_shows_dashes_not_errors(server: Server) -> None:
    job_id = server.awaiting()
    store(server.cp.ws, job_id, "review", {"verdict": 3, "findings": "x", "examples": None})
    store(server.cp.ws, job_id, "weights", {"tensors": [{"layer": "a"}, 5], "flags": {"a": 1}})
    store(
        server.cp.ws, job_id, "behavior", {"metrics": [{"before_rate": "x"}, {"before_rate": 0.5}]}
    )
    store(server.cp.ws, job_id, "gate", {"rules": [None, {"passed": "?"}], "override": "no"})
    page = console(server, "bob").get(f"/jobs/{job_id}")
    assert page.status_code == 200 and "—" in page.text


def test_no_approve_button_for_the_requester_or_preparer(server: Server) -> None:
    job_id = server.awaiting()
    for user, offered in (("alice", False), ("dan", False), ("sec", False), ("bob", True)):
        html = console(server, user).get(f"/jobs/{job_id}").text
        assert ('id="approve"' in html) is offered, user
    assert 'id="reject-form"' in console(server, "sec").get(f"/jobs/{job_id}").text
    assert 'id="reject-form"' not in console(server, "alice").get(f"/jobs/{job_id}").text


def test_a_job_waiting_for_its_preparer_is_not_offered_for_approval(server: Server) -> None:
    server.cp.inputs("unconfirmed")
    made = server.post(
        "/api/v1/jobs",
        "alice",
        json={
            "base_model": "data/unconfirmed/model",
            "dataset": "data/unconfirmed/train.jsonl",
            "config": "data/unconfirmed/config.yaml",
            "purpose": "support",
            "prepared_by": "dan",
        },
    )
    job_id = made.json()["id"]
    assert made.json()["awaits_preparer"] is True
    server.post(f"/api/v1/jobs/{job_id}/override", "sec", json={"justification": "t"})
    bob = console(server, "bob")
    assert job_id not in waiting_for_me(bob.get("/queue").text)
    page = bob.get(f"/jobs/{job_id}").text
    assert 'id="approve"' not in page and "has not confirmed the dataset" in page
    assert server.post(f"/api/v1/jobs/{job_id}/prepared", "dan", json={}).status_code == 200
    assert job_id in waiting_for_me(bob.get("/queue").text)
    page = bob.get(f"/jobs/{job_id}").text
    assert 'id="approve"' in page and "has not confirmed the dataset" not in page


def test_a_job_in_a_long_step_shows_progress_and_is_polled(server: Server) -> None:
    job_id = server.submit()
    start_review(server.cp.ws, job_id)
    html = console(server, "bob").get(f"/jobs/{job_id}").text
    assert 'data-poll="1"' in html and 'id="progress"' in html and "in review" in html
    assert service.verify_audit(server.cp.ws).ok
    other = server.awaiting("other")
    assert "data-poll" not in console(server, "bob").get(f"/jobs/{other}").text


def test_an_api_post_from_a_console_session_needs_the_csrf_token(server: Server) -> None:
    job_id = server.awaiting()
    client = console(server, "bob")
    csrf = csrf_of(client.get(f"/jobs/{job_id}").text)
    before = server.head_seq()
    forged = client.post(f"/api/v1/jobs/{job_id}/reject", json={"reason": "forged"})
    assert forged.status_code == 403 and "CSRF" in forged.json()["message"]
    wrong = client.post(
        f"/api/v1/jobs/{job_id}/reject", json={"reason": "x"}, headers={"X-CSRF-Token": "nope"}
    )
    assert wrong.status_code == 403
    assert server.head_seq() == before
    assert service.get_job(server.cp.ws, job_id).state == "awaiting_approval"
    real = client.post(
        f"/api/v1/jobs/{job_id}/reject", json={"reason": "not now"}, headers={"X-CSRF-Token": csrf}
    )
    assert real.status_code == 200 and real.json()["state"] == "rejected"
    events = service.iter_audit(server.cp.ws, job_id=job_id)
    assert events[-1].action == "job.reject" and events[-1].via["method"] == "token"


def test_sign_out_ends_the_session(server: Server) -> None:
    client = console(server, "bob")
    sid = client.cookies["ftguard_session"]
    csrf = csrf_of(client.get("/queue").text)
    refused = client.post("/logout", data={"csrf": "wrong"}, follow_redirects=False)
    assert refused.status_code == 403
    assert client.get("/queue", follow_redirects=False).status_code == 200
    answer = client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    assert client.get("/queue", follow_redirects=False).status_code == 303
    stale = TestClient(server.client.app, cookies={"ftguard_session": sid})
    assert stale.get("/api/v1/whoami").status_code == 401
    assert stale.get("/queue", follow_redirects=False).status_code == 303


def test_pages_have_no_inline_script_or_style_and_carry_the_csp(server: Server) -> None:
    job_id = server.awaiting()
    for kind, body in sample_evidence(job_id).items():
        store(server.cp.ws, job_id, kind, body)
    client = console(server, "root")
    pages = ["/queue", f"/jobs/{job_id}", "/keys", "/audit", "/policy", "/jobs/job-ffffffffff"]
    answers = [client.get(p) for p in pages] + [TestClient(server.client.app).get("/login")]
    for answer in answers:
        html = answer.text
        assert "script-src 'self'" in answer.headers["content-security-policy"]
        for attrs, content in re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.S):
            assert 'src="/static/' in attrs and not content.strip(), answer.url
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=", html, flags=re.I), answer.url
    assert answers[-2].status_code == 404
    for asset in ("console.js", "console.css", "favicon.svg"):
        static = client.get(f"/static/{asset}")
        assert static.status_code == 200 and "content-security-policy" in static.headers


def test_keys_page_registration_status_and_admin_confirmation(server: Server) -> None:
    key = generate_key()
    proof = key.sign(key_request_message("bob", key.public.keyid))
    answer = server.post(
        "/api/v1/keys",
        "bob",
        json={"public_key": key.public.b64, "proof": base64.b64encode(proof).decode()},
    )
    assert answer.status_code == 201
    mine = console(server, "bob").get("/keys").text
    assert key.public.keyid in mine and "pending until an admin confirms it" in mine
    assert "confirm-key" not in mine  # not an admin
    admin = console(server, "root")
    html = admin.get("/keys").text
    assert f'data-keyid="{key.public.keyid}"' in html
    confirmed = admin.post(
        f"/api/v1/keys/{key.public.keyid}/confirm", headers={"X-CSRF-Token": csrf_of(html)}
    )
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "active"
    assert f'data-keyid="{key.public.keyid}"' not in admin.get("/keys").text


def test_audit_and_policy_pages(server: Server) -> None:
    server.awaiting()
    client = console(server, "carol")
    audit = client.get("/audit").text
    assert "The audit chain verifies" in audit and "job.submit" in audit
    assert "API token" in audit and "own key" in audit
    policy = client.get("/policy").text
    digest = server.get("/api/v1/policy", "carol").json()["digest"]
    assert digest in policy and "quorum" in policy


@pytest.fixture
def issuer() -> Iterator[TestIssuer]:
    with TestIssuer() as running:
        running.add_user("bob-sub", "bob@example.com", ["approvers"])
        running.default_login = "bob@example.com"
        yield running


def oidc_sign_in(client: TestClient) -> httpx.Response:
    """Sign ``client`` in through the issuer (its default login); the callback's answer."""
    start = client.get("/login/oidc", params={"issuer": 0}, follow_redirects=False)
    assert start.status_code == 303, start.text
    back = httpx.get(start.headers["location"], follow_redirects=False)
    assert back.status_code == 302, back.text
    callback = urlsplit(back.headers["location"])
    return client.get(f"{callback.path}?{callback.query}", follow_redirects=False)


def test_oidc_sign_in_with_pkce(server: Server, issuer: TestIssuer) -> None:
    server.cp.set_policy(oidc_policy(issuer.url, issuer.audience, issuer.client_id))
    client = TestClient(server.client.app)
    login = client.get("/login").text
    assert 'href="/login/oidc?issuer=0' in login
    start = client.get("/login/oidc", params={"issuer": 0}, follow_redirects=False)
    assert start.status_code == 303
    cookie = start.headers["set-cookie"]
    assert cookie.startswith("ftguard_login=") and "HttpOnly" in cookie
    assert "SameSite=lax" in cookie.replace("Lax", "lax") and "Path=/auth" in cookie
    url = urlsplit(start.headers["location"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert url.path == "/authorize" and query["code_challenge_method"] == "S256"
    assert query["redirect_uri"] == "http://testserver/auth/callback"
    back = httpx.get(start.headers["location"], follow_redirects=False)
    assert back.status_code == 302
    callback = urlsplit(back.headers["location"])
    # Another state than the one this browser started with is refused.
    wrong = client.get("/auth/callback?code=x&state=other", follow_redirects=False)
    assert wrong.status_code == 400 and "ftguard_session" not in wrong.headers.get("set-cookie", "")
    client.cookies.clear()
    start = client.get("/login/oidc", params={"issuer": 0}, follow_redirects=False)
    back = httpx.get(start.headers["location"], follow_redirects=False)
    callback = urlsplit(back.headers["location"])
    done = client.get(f"{callback.path}?{callback.query}", follow_redirects=False)
    assert done.status_code == 200 and 'data-go="/queue"' in done.text
    assert "ftguard_session=" in done.headers["set-cookie"]
    page = client.get("/queue")
    assert '<span class="user">bob@example.com</span>' in page.text and "approver" in page.text
    # The code and the sign-in are single use.
    again = client.get(f"{callback.path}?{callback.query}", follow_redirects=False)
    assert again.status_code == 400
    users = {u["name"]: u for u in server.get("/api/v1/users", "root").json()}
    assert users["bob@example.com"]["roles"] == ["approver"]
    sync = [e for e in service.iter_audit(server.cp.ws) if e.action == "user.sync"]
    assert sync[-1].via == {"method": "oidc", "issuer": issuer.url, "subject": "bob-sub"}


def test_oidc_sign_in_refusals(server: Server, issuer: TestIssuer) -> None:
    client = TestClient(server.client.app)
    assert client.get("/login/oidc", params={"issuer": 0}).status_code == 404  # none configured
    server.cp.set_policy(oidc_policy(issuer.url, issuer.audience, issuer.client_id))
    assert client.get("/login/oidc", params={"issuer": 1}).status_code == 404
    denied = client.get("/auth/callback", params={"error": "access_denied", "state": "s"})
    assert denied.status_code == 401 and "access_denied" in denied.text
    issuer.default_login = None  # the issuer signs no one in
    start = client.get("/login/oidc", params={"issuer": 0}, follow_redirects=False)
    assert httpx.get(start.headers["location"]).status_code == 400
    issuer.default_login = "bob@example.com"
    start = client.get("/login/oidc", params={"issuer": 0}, follow_redirects=False)
    callback = urlsplit(httpx.get(start.headers["location"]).headers["location"])
    issuer.stop()  # the code cannot be redeemed
    answer = client.get(f"{callback.path}?{callback.query}", follow_redirects=False)
    assert answer.status_code == 401 and "cannot reach the OIDC issuer" in answer.text
    assert "ftguard_session" not in answer.headers.get("set-cookie", "")


def test_a_user_known_only_through_sso_registers_a_key(server: Server, issuer: TestIssuer) -> None:
    server.cp.set_policy(oidc_policy(issuer.url, issuer.audience, issuer.client_id))
    client = TestClient(server.client.app, raise_server_exceptions=False)
    assert oidc_sign_in(client).status_code == 200
    csrf = csrf_of(client.get("/keys").text)
    key = generate_key()
    proof = key.sign(key_request_message("bob@example.com", key.public.keyid))
    answer = client.post(
        "/api/v1/keys",
        json={"public_key": key.public.b64, "proof": base64.b64encode(proof).decode()},
        headers={"X-CSRF-Token": csrf},
    )
    assert answer.status_code == 201, answer.text
