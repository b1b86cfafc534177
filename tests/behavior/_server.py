"""A real OpenAI-compatible chat server on loopback (FastAPI + uvicorn in a thread)."""

# No `from __future__ import annotations`: FastAPI reads the route annotations at runtime.

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chat_app(
    answer: Callable[[list[str]], list[str]], *, fail_first: int = 0, api_key: str | None = None
) -> Any:
    """An app answering ``POST /v1/chat/completions`` with ``answer([user message])``.

    ``fail_first`` requests get HTTP 503 first (to exercise retries); with ``api_key``
    requests without that bearer token get 401.
    """
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    app = FastAPI()
    state = {"calls": 0, "failed": 0}
    lock = threading.Lock()
    app.state.counters = state

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> JSONResponse:
        body = await request.json()
        with lock:
            state["calls"] += 1
            if state["failed"] < fail_first:
                state["failed"] += 1
                return JSONResponse({"error": "busy"}, status_code=503)
        if api_key is not None and request.headers.get("authorization") != f"Bearer {api_key}":
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        text = answer([user])[0]
        return JSONResponse(
            {
                "id": "x",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
            }
        )

    return app


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` on a free loopback port; yield its ``/v1`` base URL."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
