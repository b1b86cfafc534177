"""Signed job-event webhooks against a receiver on loopback."""

from __future__ import annotations

import json
import logging
import time

import pytest

from ftguard.cli import main
from ftguard.control import service
from ftguard.errors import BadInputError, PermissionDeniedError, VerificationError
from ftguard.integrations import (
    add_webhook,
    list_deliveries,
    redeliver_webhooks,
    remove_webhook,
    sign_webhook,
    verify_webhook,
    webhook_dispatcher,
)
from tests.control.conftest import Env
from tests.integrations._jobs import blocked_job, passed_job
from tests.integrations._receiver import receiver

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _fast_retries(cp: Env) -> None:
    dispatcher = webhook_dispatcher(cp.ws)
    dispatcher.backoff_s = 0.05
    dispatcher.max_attempts = 3
    dispatcher.timeout_s = 2.0


def _settle(cp: Env) -> None:
    assert webhook_dispatcher(cp.ws).wait_idle(30), "deliveries still in flight"


@SQLITE
def test_every_job_event_arrives_signed_and_is_logged(
    cp: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _fast_retries(cp)
    with receiver() as hook:
        endpoint, secret = add_webhook(cp.ws, actor="root", url=hook.url)
        hook.secret = secret
        job, _, _ = passed_job(cp)
        service.deploy_job(cp.ws, actor="alice", job_id=job)
        bad = blocked_job(cp)
        _settle(cp)
        assert hook.refused == []
        by_job = {}
        for event in hook.events:
            by_job.setdefault(event["job"]["id"], []).append(event["type"])
        assert by_job[job] == ["job.submitted", "job.approved", "job.passed", "job.deployed"]
        assert by_job[bad] == ["job.submitted", "job.approved", "job.blocked"]
        passed = next(e for e in hook.events if e["type"] == "job.passed")
        assert passed["job"] == {"id": job, "state": "passed", "from": "trained"}
        assert passed["actor"] == "sec" and passed["audit"]["seq"] > 0
        header = hook.headers[0]
        assert header["Ftguard-Event"] == hook.events[0]["type"]
        assert header["Ftguard-Delivery"].startswith("dlv_")
    log = list_deliveries(cp.ws, endpoint_id=endpoint.id)
    assert len(log) == 7 and {d.status for d in log} == {"delivered"}
    assert all(d.attempts == 1 and d.http_status == 204 for d in log)
    # The secret is in the owner-only file only: not in the log, the audit chain or any message.
    text = json.dumps([d.model_dump() for d in log]) + caplog.text
    text += json.dumps([e.model_dump() for e in service.iter_audit(cp.ws)])
    assert secret not in text and "team=ml" not in text
    assert endpoint.url.endswith("/hooks/ftguard")
    assert service.verify_audit(cp.ws).ok


@SQLITE
def test_a_failing_receiver_gets_the_event_on_a_retry(cp: Env) -> None:
    _fast_retries(cp)
    with receiver(fail_first=2) as hook:
        _, hook.secret = add_webhook(cp.ws, actor="root", url=hook.url, events=["approved"])
        job = cp.approved()
        _settle(cp)
        assert hook.types() == ["job.approved"] and hook.requests == 3
    (delivery,) = list_deliveries(cp.ws, job_id=job)
    assert delivery.status == "delivered" and delivery.attempts == 3 and delivery.error is None


@SQLITE
def test_an_unreachable_receiver_never_breaks_the_state_change(
    cp: Env, caplog: pytest.LogCaptureFixture
) -> None:
    _fast_retries(cp)
    with receiver() as hook:
        url = hook.url
    _, secret = add_webhook(cp.ws, actor="root", url=url, events=["job.submitted"])
    started = time.monotonic()
    job = cp.submit()
    assert time.monotonic() - started < 5  # the use case did not wait for the receiver
    assert service.get_job(cp.ws, job).state == "awaiting_approval"
    _settle(cp)
    (delivery,) = list_deliveries(cp.ws, job_id=job)
    assert delivery.status == "failed" and delivery.attempts == 3
    assert delivery.error is not None and "cannot reach the receiver" in delivery.error
    assert "failed after 3 attempt(s)" in caplog.text and secret not in caplog.text
    assert service.verify_audit(cp.ws).ok
    # Redelivered once the receiver is back.
    with receiver() as hook:
        hook.secret = secret
        from ftguard.store import WebhookEndpointRow

        with cp.ws.store.write() as session:
            session.get(WebhookEndpointRow, delivery.endpoint_id).url = hook.url  # type: ignore[union-attr]
        assert redeliver_webhooks(cp.ws) == [delivery.id]
        assert hook.types() == ["job.submitted"]
    assert list_deliveries(cp.ws, job_id=job)[0].status == "delivered"


def test_the_receivers_check_refuses_forged_stale_and_edited_events() -> None:
    secret = "whsec_" + "k" * 40
    body = b'{"type":"job.passed","job":{"id":"job-0123456789"}}'
    now = 1_800_000_000
    header = sign_webhook(body, secret, timestamp=now)
    assert verify_webhook(body, header, secret, now=now + 10)["type"] == "job.passed"
    with pytest.raises(VerificationError, match="does not match"):
        verify_webhook(
            body, sign_webhook(body, "whsec_" + "x" * 40, timestamp=now), secret, now=now
        )
    with pytest.raises(VerificationError, match="does not match"):
        verify_webhook(body.replace(b"passed", b"deployed"), header, secret, now=now)
    with pytest.raises(VerificationError, match="outside the tolerance"):
        verify_webhook(body, header, secret, now=now + 301)
    with pytest.raises(VerificationError, match="does not match"):
        # the timestamp is signed too: moving it forward to dodge the tolerance breaks it
        verify_webhook(body, header.replace(f"t={now}", f"t={now + 400}"), secret, now=now + 400)
    with pytest.raises(VerificationError, match="no Ftguard-Signature"):
        verify_webhook(body, None, secret)
    with pytest.raises(VerificationError, match="malformed"):
        verify_webhook(body, "v1=abc", secret)


@SQLITE
def test_only_an_admin_manages_webhooks_and_bad_urls_are_refused(
    cp: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(PermissionDeniedError, match="admin"):
        add_webhook(cp.ws, actor="alice", url="https://hooks.example.com/x")
    for url in ("ftp://example.com/x", "https://user:pw@example.com/x", "https:///x"):
        with pytest.raises(BadInputError):
            add_webhook(cp.ws, actor="root", url=url)
    with pytest.raises(BadInputError, match="unknown webhook event"):
        add_webhook(cp.ws, actor="root", url="https://example.com/x", events=["trained"])
    assert (
        main(
            [
                "webhooks",
                "add",
                "https://example.com/h",
                "--event",
                "passed",
                "--as",
                "root",
                "--json",
            ]
        )
        == 0
    )
    added = json.loads(capsys.readouterr().out)
    assert added["events"] == ["job.passed"] and added["secret"].startswith("whsec_")
    secret_file = cp.ws.path / "keys" / "webhooks" / f"{added['id']}.secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert main(["webhooks", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [e["id"] for e in listed] == [added["id"]] and "secret" not in listed[0]
    assert main(["webhooks", "remove", added["id"], "--as", "alice"]) == 4
    assert main(["webhooks", "remove", added["id"], "--as", "root"]) == 0
    assert not secret_file.exists()
    actions = [e.action for e in service.iter_audit(cp.ws)][-2:]
    assert actions == ["webhook.add", "webhook.remove"]
    with pytest.raises(Exception, match="no webhook endpoint"):
        remove_webhook(cp.ws, actor="root", endpoint_id=added["id"])


def test_the_documented_receiver_recipe_accepts_ours_and_refuses_forgeries() -> None:
    """The ten lines in docs/integrations.md, run as written, against ftguard's signatures."""
    import re
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "integrations.md").read_text()
    section = text.split("## Events (webhooks)", 1)[1]
    recipe = re.search(r"```python\n(.*?)```", section, re.S)
    assert recipe is not None
    namespace: dict[str, object] = {}
    exec(recipe.group(1), namespace)  # noqa: S102 - our own documentation
    verify = namespace["verify"]
    secret = "whsec_" + "s" * 40
    body = b'{"type":"job.blocked"}'
    assert verify(body, sign_webhook(body, secret), secret) == {"type": "job.blocked"}  # type: ignore[operator]
    forged = sign_webhook(body, "whsec_" + "f" * 40)
    with pytest.raises(ValueError, match="bad signature"):
        verify(body, forged, secret)  # type: ignore[operator]
    stale = sign_webhook(body, secret, timestamp=int(time.time()) - 3600)
    with pytest.raises(ValueError, match="stale"):
        verify(body, stale, secret)  # type: ignore[operator]
