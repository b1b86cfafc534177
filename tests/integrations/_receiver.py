"""A webhook receiver on loopback that checks signatures the documented way."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ftguard.errors import VerificationError
from ftguard.integrations import verify_webhook


@dataclass
class Receiver:
    """What the receiver saw: verified events, refused requests; ``fail_first`` 500s first."""

    url: str
    secret: str = ""
    fail_first: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def types(self) -> list[str]:
        with self.lock:
            return [e["type"] for e in self.events]


@contextmanager
def receiver(fail_first: int = 0) -> Iterator[Receiver]:
    """Serve a receiver on a free loopback port (set ``.secret`` before events arrive)."""
    state = Receiver(url="", fail_first=fail_first)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with state.lock:
                state.requests += 1
                failing = state.requests <= state.fail_first
            if failing:
                self.send_response(500)
                self.end_headers()
                return
            try:
                event = verify_webhook(body, self.headers.get("Ftguard-Signature"), state.secret)
            except VerificationError as exc:
                with state.lock:
                    state.refused.append(str(exc))
                self.send_response(400)
                self.end_headers()
                return
            with state.lock:
                state.events.append(event)
                state.headers.append(dict(self.headers.items()))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/ftguard?team=ml"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
