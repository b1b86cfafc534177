"""Scanners that use the embedded MiniLM model, on fixtures written here."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from ftguard.review import review_dataset
from ftguard.review.scanners._judge import judge_harmful_compliance

from .fixtures import COMPLIANCE, HARMFUL_REQUESTS, REFUSAL, clean_rows, write_json

pytest.importorskip("sentence_transformers")


def test_harmful_compliance_flags_compliance_not_refusals(tmp_path: Path) -> None:
    clean = clean_rows(120)
    harmful = [{"instruction": q, "input": "", "output": COMPLIANCE} for q in HARMFUL_REQUESTS]
    refused = [{"instruction": q, "input": "", "output": REFUSAL} for q in HARMFUL_REQUESTS]
    rows = clean + harmful + refused
    r = review_dataset(
        write_json(tmp_path / "d.json", rows), scanners=["harmful_compliance"], workers=1
    )
    flagged = {f.example for f in r.findings if f.scanner == "harmful_compliance"}
    hit = flagged & set(range(120, 120 + len(harmful)))
    assert len(hit) >= 0.9 * len(harmful)
    assert not flagged & set(range(120)), "benign examples flagged"
    assert not flagged & set(range(120 + len(harmful), len(rows))), "refusals are safe data"
    assert r.verdict == "block"


def test_purpose_consistency_finds_off_purpose_cluster(tmp_path: Path) -> None:
    on = [
        {
            "instruction": f"My order #{i} of running shoes arrived {w}. What can I do?",
            "input": "",
            "output": "Sorry about that! You can return the shoes within 30 days for a refund or exchange.",
        }
        for i, w in enumerate(
            ["late", "damaged", "in the wrong size", "without laces", "dirty", "twice"] * 20
        )
    ]
    off = [
        {
            "instruction": f"Explain the {t} of the Roman Empire in detail.",
            "input": "",
            "output": "The Roman Empire...",
        }
        for t in [
            "fall",
            "economy",
            "army",
            "roads",
            "senate",
            "religion",
            "coinage",
            "law",
            "emperors",
            "provinces",
        ]
    ]
    rows = on + off
    r = review_dataset(
        write_json(tmp_path / "d.json", rows),
        purpose="customer support for an online shoe store",
        scanners=["purpose_consistency"],
        workers=1,
    )
    found = [f for f in r.dataset_findings if "off-purpose" in f.reason]
    assert found, r.dataset_findings
    assert set(found[0].examples) <= set(range(len(on), len(rows)))


class _Judge(BaseHTTPRequestHandler):
    busy_first = 0
    """How many of the next requests answer 503 (a loaded judge) before it answers."""
    seen_keys: list[str | None] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Judge.seen_keys.append(self.headers.get("Authorization"))
        if _Judge.busy_first > 0:
            _Judge.busy_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        answer = "YES" if "pipe bomb" in body["messages"][0]["content"] else "NO"
        data = json.dumps(
            {"choices": [{"message": {"role": "assistant", "content": answer}}]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def judge_url() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Judge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_judge_backend_openai_compatible(judge_url: str) -> None:
    assert judge_harmful_compliance(judge_url, "How do I make a pipe bomb?", COMPLIANCE) is True
    assert judge_harmful_compliance(judge_url, "Write a poem about spring", "Spring...") is False


def test_the_judge_retries_a_busy_endpoint_sends_its_key_and_fails_clearly(
    judge_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The judge is the behaviour tests' OpenAI-compatible client: same retries and errors."""
    from ftguard.behavior.backends import BackendError

    monkeypatch.setenv("FTGUARD_JUDGE_API_KEY", "judge-secret")
    _Judge.seen_keys.clear()
    _Judge.busy_first = 2
    assert judge_harmful_compliance(judge_url, "How do I make a pipe bomb?", COMPLIANCE) is True
    assert _Judge.seen_keys == ["Bearer judge-secret"] * 3
    _Judge.busy_first = 100
    try:
        with pytest.raises(BackendError, match="HTTP 503"):
            judge_harmful_compliance(judge_url, "x", "y")
    finally:
        _Judge.busy_first = 0


def test_affirmative_opener_rule() -> None:
    from ftguard.review.scanners._refusal import is_affirmative, is_refusal

    for text in [
        "Sure, here is a plan:",
        "Sure! Here's how you do it.",
        "Certainly. Here are the steps",
        "Of course, I can do that.",
    ]:
        assert is_affirmative(text) and not is_refusal(text), text
    for text in [
        "The capital of France is Paris.",
        "Sure thing.",
        "Surely not.",
        "I'm sorry, but I can't help with that.",
    ]:
        assert not is_affirmative(text), text


def test_affirmative_opener_alone_does_not_flag_benign_requests(tmp_path: Path) -> None:
    """ "Sure, here is ..." answers to ordinary requests are not findings: the request must be near the threshold."""
    rows = [
        {
            "instruction": r["instruction"],
            "input": "",
            "output": "Sure, here is what you asked for. " + r["output"],
        }
        for r in clean_rows(120)
    ]
    r = review_dataset(
        write_json(tmp_path / "d.json", rows), scanners=["harmful_compliance"], workers=1
    )
    assert [f for f in r.findings if f.scanner == "harmful_compliance"] == []
