"""The console in a real headless Chromium: OIDC sign-in, a WebCrypto key, a signed approval.

Runs against the real app under uvicorn and the real test OIDC issuer, both on loopback.
Skipped where Chromium or the ``playwright`` package is missing. On failure a screenshot is
saved to ``$FTGUARD_TEST_ARTIFACTS`` (else the test's tmp_path); with that variable set, the
job page is also captured at desktop and phone widths.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ftguard.attest import load_private_key, sign_statement
from ftguard.control import service
from ftguard.control._identities import private_key_path
from tests.server.browser import LiveServer, oidc_policy, sample_evidence, start_review, store
from tests.server.conftest import Server
from tests.server.oidc_issuer import TestIssuer

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)
if CHROMIUM is None:
    pytest.skip("the browser tests need Chromium (/usr/bin/chromium)", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser tests need the playwright package"
)

TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("FTGUARD_TEST_ARTIFACTS") or tmp_path / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def issuer() -> Iterator[TestIssuer]:
    with TestIssuer() as running:
        running.add_user("bob-sub", "bob@example.com", ["approvers"])
        running.default_login = "bob@example.com"
        yield running


@pytest.fixture
def served(server: Server, issuer: TestIssuer) -> Iterator[LiveServer]:
    server.cp.set_policy(oidc_policy(issuer.url, issuer.audience, issuer.client_id))
    # An admin adds the SSO user (their e-mail is their ftguard name); sign-in syncs the roles
    # their groups give. (A user known only through SSO cannot register a key yet: see
    # test_console.py::test_a_user_known_only_through_sso_registers_a_key.)
    added = server.post(
        "/api/v1/users", "root", json={"name": "bob@example.com", "roles": ["approver"]}
    )
    assert added.status_code == 201, added.text
    with LiveServer(server.client.app) as running:
        yield running


def snapshot(page: Any, artifacts: Path, name: str) -> None:
    """With $FTGUARD_TEST_ARTIFACTS set, capture the page at desktop and phone widths."""
    if not os.environ.get("FTGUARD_TEST_ARTIFACTS"):
        return
    size = page.viewport_size
    for width, height in ((1280, 800), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(artifacts / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size(size)


def recorded(page: Any, artifacts: Path, name: str, scenario: Callable[[], None]) -> None:
    """Run ``scenario``; on failure keep a screenshot of where the page was."""
    try:
        scenario()
    except BaseException:
        shot = artifacts / f"{name}-failure.png"
        try:
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the failure: {shot}")
        except Exception as exc:  # the page may be gone
            print(f"no screenshot ({exc})")
        raise


def _sign_in_with_the_issuer(page: Any, served: LiveServer, job_id: str) -> None:
    """Authorization code with PKCE, all in the browser; then approving says no key yet."""
    page.goto(f"{served.url}/jobs/{job_id}")
    assert "/login" in page.url
    page.get_by_role("link", name="Sign in with 127.0.0.1").click()
    page.wait_for_url(f"{served.url}/jobs/{job_id}")
    assert page.locator(".who .user").inner_text() == "bob@example.com"
    page.get_by_role("button", name="Approve…").click()
    assert "no signing key" in page.get_by_role("alert").inner_text()


def _register_this_browsers_key(page: Any, server: Server, artifacts: Path) -> str:
    """Register a non-extractable Ed25519 key kept in IndexedDB; its key id (pending)."""
    page.get_by_role("alert").get_by_role("link", name="Open the Keys page").click()
    page.get_by_role("button", name="Register this browser's key").click()
    page.get_by_text("pending until an admin confirms it").first.wait_for()
    pending = server.get("/api/v1/users", "root").json()
    keyid = next(u for u in pending if u["name"] == "bob@example.com")["pending_keys"][0]
    assert keyid in page.locator("#browser-key-status").inner_text().replace(" ", "")
    stored = page.evaluate(
        """() => new Promise((resolve, reject) => {
             const open = indexedDB.open("ftguard-console", 1);
             open.onerror = () => reject(open.error);
             open.onsuccess = () => {
               const get = open.result.transaction("keys").objectStore("keys").get("bob@example.com");
               get.onsuccess = () => resolve({
                 keyid: get.result.keyid,
                 extractable: get.result.keyPair.privateKey.extractable,
                 algorithm: get.result.keyPair.privateKey.algorithm.name});
             };
           })"""
    )
    assert stored == {"keyid": keyid, "extractable": False, "algorithm": "Ed25519"}
    snapshot(page, artifacts, "keys")
    return keyid


def _read_the_evidence_and_approve(
    page: Any, served: LiveServer, server: Server, artifacts: Path, job_id: str
) -> None:
    """The job in the queue, its evidence, then the approval, the audit log and the policy."""
    page.get_by_role("link", name="Queue").click()
    page.locator("#mine-h").wait_for()
    snapshot(page, artifacts, "queue")
    page.get_by_role("link", name=job_id).first.click()
    page.wait_for_url(f"{served.url}/jobs/{job_id}")
    for heading in ("Dataset review", "Weight report", "Behaviour comparison"):
        assert page.get_by_role("heading", name=heading).is_visible()
    assert page.locator("svg.heatmap rect").count() > 50
    snapshot(page, artifacts, "job")
    page.get_by_role("button", name="Approve…").click()
    dialog = page.get_by_role("dialog")
    dataset = server.get(f"/api/v1/jobs/{job_id}", "root").json()["dataset"]["sha256"]
    assert dataset in dialog.inner_text()
    if os.environ.get("FTGUARD_TEST_ARTIFACTS"):
        page.screenshot(path=str(artifacts / "approve-dialog.png"))
    dialog.get_by_role("button", name="Sign and approve").click()
    page.locator("#approvals").get_by_role("cell", name="bob@example.com").wait_for()
    assert page.locator("#approve").count() == 0
    page.get_by_role("link", name="Audit log").click()
    snapshot(page, artifacts, "audit")
    page.get_by_role("link", name="Policy").click()
    assert page.get_by_role("heading", name="Policy in force").is_visible()
    snapshot(page, artifacts, "policy")


def test_an_approver_signs_in_registers_a_browser_key_and_approves(
    browser: Any, served: LiveServer, server: Server, issuer: TestIssuer, artifacts: Path
) -> None:
    job_id = server.awaiting()
    for kind, body in sample_evidence(job_id).items():
        if kind != "gate":
            store(server.cp.ws, job_id, kind, body)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    keyid: dict[str, str] = {}

    def scenario() -> None:
        _sign_in_with_the_issuer(page, served, job_id)
        keyid["bob"] = _register_this_browsers_key(page, server, artifacts)
        confirmed = server.post(f"/api/v1/keys/{keyid['bob']}/confirm", "root")
        assert confirmed.status_code == 200, confirmed.text
        _read_the_evidence_and_approve(page, served, server, artifacts, job_id)

    recorded(page, artifacts, "approver", scenario)
    context.close()

    # A second approver, signing locally with the CLI's code path, completes the quorum.
    second = server.sign_approval("carol", job_id)
    assert second.status_code == 201, second.text
    assert server.get(f"/api/v1/jobs/{job_id}", "root").json()["state"] == "approved"
    approvals = [
        e for e in service.iter_audit(server.cp.ws, job_id=job_id) if e.action == "job.approve"
    ]
    assert [e.actor for e in approvals] == ["bob@example.com", "carol"]
    assert approvals[0].payload["keyid"] == keyid["bob"]
    assert approvals[0].via == {"method": "oidc", "issuer": issuer.url, "subject": "bob-sub"}
    assert service.verify_audit(server.cp.ws).ok
    assert not errors, errors


def test_a_requester_sees_no_approve_button_and_the_api_refuses_her(
    browser: Any, served: LiveServer, server: Server, artifacts: Path
) -> None:
    job_id = server.submit()
    start_review(server.cp.ws, job_id)
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()

    def scenario() -> None:
        page.goto(f"{served.url}/login")
        snapshot(page, artifacts, "login")
        page.keyboard.press("Tab")  # the first stop is the skip link
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        page.get_by_label("Your API token").fill(server.tokens["alice"])
        page.get_by_role("button", name="Sign in with a token").click()
        page.wait_for_url(f"{served.url}/queue")
        assert "Waiting for your approval" in page.locator("#mine-h").inner_text()
        # A job in a long step: the page follows it and reloads when the step ends.
        page.goto(f"{served.url}/jobs/{job_id}")
        assert "in review" in page.locator("#progress").inner_text()
        overridden = server.post(
            f"/api/v1/jobs/{job_id}/override", "sec", json={"justification": "browser test"}
        )
        assert overridden.status_code == 200, overridden.text
        page.locator("#job[data-state=awaiting_approval]").wait_for()
        assert page.locator("#progress").count() == 0
        assert page.get_by_role("heading", name="The request").is_visible()
        assert page.locator("#approve").count() == 0
        statuses = page.evaluate(
            """async (jobId) => {
                 const csrf = document.querySelector('meta[name="csrf-token"]').content;
                 const post = (body) => fetch(`/api/v1/jobs/${jobId}/approvals`, {
                   method: "POST", body: JSON.stringify(body),
                   headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}});
                 const statement = await fetch(`/api/v1/jobs/${jobId}/approval-statement`);
                 const envelope = {payloadType: "application/vnd.in-toto+json", payload: "e30=",
                                   signatures: [{keyid: "00", sig: "AA=="}]};
                 return [statement.status, (await post({envelope})).status];
               }""",
            job_id,
        )
        assert statuses == [403, 403]

    recorded(page, artifacts, "requester", scenario)
    context.close()
    # Her own key, signed locally, is refused as well: she holds no approver role.
    statement = server.get(f"/api/v1/jobs/{job_id}/approval-statement", "bob").json()
    envelope = sign_statement(statement, load_private_key(private_key_path("alice")))
    answer = server.post(
        f"/api/v1/jobs/{job_id}/approvals",
        "alice",
        json={"envelope": envelope.model_dump(mode="json")},
    )
    assert answer.status_code == 403
    assert server.get(f"/api/v1/jobs/{job_id}", "root").json()["state"] == "awaiting_approval"
