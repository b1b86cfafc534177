"""A small OpenAI-compatible server for a local model (a development and test utility).

It serves ``POST /v1/chat/completions``, ``POST /v1/completions`` (a prompt or a list of
prompts) and ``GET /v1/models`` on FastAPI/uvicorn, greedy decoding only, and batches
concurrent requests dynamically: a worker thread takes every prompt queued while the model
was busy (up to ``max_batch_size``, waiting ``batch_window_s`` after the first) and generates
them as one left-padded batch. The benchmark ``benchmarks/behavior_speed.py`` and the tests
start it on loopback; it is not a production server (use vLLM, TGI or llama.cpp's server).

    python -m ftguard.behavior.backends._local_server [--model DIR] [--port 8000]

Prompts sent to ``/v1/completions`` are tokenized as they are (no special tokens added): a
chat prompt rendered by the client already carries the template's tokens.
"""

# No `from __future__ import annotations`: FastAPI reads the route annotations at runtime.

import argparse
import asyncio
import queue
import socket
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftguard.behavior.backends._local_engine import (
    Completion,
    CompletionEngine,
    TransformersEngine,
)

__all__ = [
    "Completion",
    "CompletionEngine",
    "TransformersEngine",
    "create_app",
    "main",
    "serve",
]


@dataclass
class _Item:
    text: str
    max_new_tokens: int
    future: "Future[Completion]" = field(default_factory=Future)


class _Batcher:
    """A worker thread generating queued prompts in batches (dynamic batching)."""

    def __init__(self, engine: CompletionEngine, max_batch_size: int, window_s: float) -> None:
        self.engine = engine
        self.max_batch_size = max_batch_size
        self.window_s = window_s
        self.batch_sizes: list[int] = []
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="ftguard-batcher", daemon=True)
        self._thread.start()

    def submit(self, text: str, max_new_tokens: int) -> "Future[Completion]":
        item = _Item(text, max_new_tokens)
        self._queue.put(item)
        return item.future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _take(self) -> tuple[list[_Item], bool]:
        """The next batch (blocking for its first prompt), and whether to stop after it."""
        first = self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        deadline = time.monotonic() + self.window_s
        while len(batch) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                item = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _loop(self) -> None:
        stop = False
        while not stop:
            batch, stop = self._take()
            if not batch:
                continue
            self.batch_sizes.append(len(batch))
            try:
                results = self.engine.complete(
                    [i.text for i in batch], [i.max_new_tokens for i in batch]
                )
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                for item in batch:
                    item.future.set_exception(exc)
                continue
            for item, result in zip(batch, results, strict=True):
                item.future.set_result(result)


class _BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _cut_at_stop(completion: Completion, stop: list[str]) -> Completion:
    cuts = [completion.text.find(s) for s in stop if s and s in completion.text]
    if not cuts:
        return completion
    return completion._replace(text=completion.text[: min(cuts)])


def _common_fields(body: Any, model_name: str) -> tuple[int, list[str]]:
    """Check the fields every generation request shares; its max tokens and stop list."""
    if not isinstance(body, dict):
        raise _BadRequest("the request body must be a JSON object")
    if body.get("model") != model_name:
        raise _BadRequest(f"The model `{body.get('model')}` does not exist.", status=404)
    if float(body.get("temperature") or 0.0) > 0:
        raise _BadRequest("this server decodes greedily only: temperature must be 0")
    if int(body.get("n") or 1) != 1:
        raise _BadRequest("n must be 1")
    max_tokens = body.get("max_tokens", 16)
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise _BadRequest("max_tokens must be a positive integer")
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _BadRequest("stop must be a string or a list of strings")
    return max_tokens, stop


def _chat_messages(body: dict[str, Any]) -> list[dict[str, str]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest("messages must be a non-empty list")
    for m in messages:
        if not (isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("role")):
            raise _BadRequest("each message needs a role and a string content")
    return [{"role": str(m["role"]), "content": m["content"]} for m in messages]


def _prompt_list(body: dict[str, Any]) -> list[str]:
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise _BadRequest("prompt must be a string or a non-empty list of strings")
    return prompts


def _usage(completions: list[Completion]) -> dict[str, int]:
    prompt = sum(c.prompt_tokens for c in completions)
    generated = sum(c.completion_tokens for c in completions)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": generated,
        "total_tokens": prompt + generated,
    }


def create_app(
    engine: CompletionEngine,
    *,
    model_name: str = "local",
    max_batch_size: int = 16,
    batch_window_s: float = 0.005,
    fail_after: int | None = None,
) -> Any:
    """The FastAPI app serving ``engine`` under ``model_name``.

    Args:
        engine: What generates (:class:`TransformersEngine` or any :class:`CompletionEngine`).
        model_name: The served model name requests must give.
        max_batch_size: Most prompts generated together.
        batch_window_s: How long the batcher waits for more prompts after the first.
        fail_after: Answer HTTP 503 to every generation request after this many (to test
            interrupted runs); ``None``: never.

    ``app.state.received`` lists each generation request's prompts (the last user message
    of a chat request, the texts of a completion request), ``app.state.batcher.batch_sizes``
    the size of every batch generated.

    """
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    batcher = _Batcher(engine, max_batch_size, batch_window_s)

    @asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        yield
        batcher.close()

    app = FastAPI(title="ftguard local OpenAI-compatible server", lifespan=lifespan)
    app.state.batcher = batcher
    app.state.received = []
    lock = threading.Lock()

    def admit(prompts: list[str]) -> bool:
        with lock:
            if fail_after is not None and len(app.state.received) >= fail_after:
                return False
            app.state.received.append(prompts)
            return True

    async def generate(texts: list[str], max_tokens: int, stop: list[str]) -> list[Completion]:
        futures = [asyncio.wrap_future(batcher.submit(t, max_tokens)) for t in texts]
        return [_cut_at_stop(c, stop) for c in await asyncio.gather(*futures)]

    def refuse(message: str, status: int) -> JSONResponse:
        error = {"message": message, "type": "invalid_request_error", "code": status}
        return JSONResponse({"error": error}, status_code=status)

    @app.get("/v1/models")
    async def models() -> JSONResponse:
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": model_name, "object": "model", "owned_by": "ftguard"}],
            }
        )

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> JSONResponse:
        try:
            body = await request.json()
            max_tokens, stop = _common_fields(body, model_name)
            messages = _chat_messages(body)
        except (_BadRequest, ValueError, TypeError) as exc:
            return refuse(str(exc), getattr(exc, "status", 400))
        try:
            text = engine.render_chat(messages)
        except Exception as exc:  # noqa: BLE001 - a template that fails on these messages
            return refuse(f"chat template: {exc}", 400)
        user = [m["content"] for m in messages if m["role"] == "user"]
        if not admit(user[-1:]):
            return refuse("the server is failing on purpose (fail_after)", 503)
        [done] = await generate([text], max_tokens, stop)
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": done.text},
            "finish_reason": "stop",
        }
        return JSONResponse(
            {
                "id": f"chatcmpl-{time.monotonic_ns()}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model_name,
                "choices": [choice],
                "usage": _usage([done]),
            }
        )

    @app.post("/v1/completions")
    async def completions(request: Request) -> JSONResponse:
        try:
            body = await request.json()
            max_tokens, stop = _common_fields(body, model_name)
            prompts = _prompt_list(body)
        except (_BadRequest, ValueError, TypeError) as exc:
            return refuse(str(exc), getattr(exc, "status", 400))
        if not admit(prompts):
            return refuse("the server is failing on purpose (fail_after)", 503)
        done = await generate(prompts, max_tokens, stop)
        choices = [
            {"index": i, "text": c.text, "finish_reason": "stop"} for i, c in enumerate(done)
        ]
        return JSONResponse(
            {
                "id": f"cmpl-{time.monotonic_ns()}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": model_name,
                "choices": choices,
                "usage": _usage(done),
            }
        )

    return app


def _listening_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


@contextmanager
def serve(app: Any, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run ``app`` in a thread on ``host`` (a free port unless given); yield its ``/v1`` URL."""
    import uvicorn

    sock = _listening_socket(host, port)
    url = f"http://{host}:{sock.getsockname()[1]}/v1"
    server = uvicorn.Server(uvicorn.Config(app, log_level="error"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the local server did not start")
        time.sleep(0.02)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def main(argv: list[str] | None = None) -> int:
    """Serve a model folder (default: the embedded model) until interrupted.

    Prints ``ready <base URL>`` on stdout once it accepts requests.
    """
    ap = argparse.ArgumentParser(prog="python -m ftguard.behavior.backends._local_server")
    ap.add_argument("--model", type=Path, help="model folder (default: the embedded model)")
    ap.add_argument("--adapter", type=Path, help="PEFT adapter folder")
    ap.add_argument("--served-model-name", default="local")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000, help="0: a free port")
    ap.add_argument("--max-batch-size", type=int, default=16)
    ap.add_argument("--batch-window-ms", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default=None)
    args = ap.parse_args(argv)
    import uvicorn

    if args.model is None:
        from ftguard.models import embedded_model_dir

        args.model = embedded_model_dir()
    engine = TransformersEngine(
        args.model, args.adapter, device=args.device, num_threads=args.threads or None
    )
    app = create_app(
        engine,
        model_name=args.served_model_name,
        max_batch_size=args.max_batch_size,
        batch_window_s=args.batch_window_ms / 1000,
    )
    sock = _listening_socket(args.host, args.port)
    print(f"ready http://{args.host}:{sock.getsockname()[1]}/v1", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    with suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
