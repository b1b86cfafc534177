"""The FastAPI application: middleware, error mapping, health, the API and the console.

Middleware gives each request an id, a JSON log line, a body limit and security headers.
"""

from __future__ import annotations

import gc
import json
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ftguard.control import AnalysisFailedError, chain_state, check_witness
from ftguard.errors import (
    AuthenticationError,
    BadInputError,
    ConflictError,
    DatabaseError,
    FtguardError,
    MissingDependencyError,
    NotFoundError,
    PermissionDeniedError,
    VerificationError,
)
from ftguard.server._auth import TooManyFailures
from ftguard.server._context import ServerContext
from ftguard.server._schemas import Health, Readiness
from ftguard.server._settings import ServerSettings

__all__ = ["create_app"]

_log = logging.getLogger("ftguard.server")

_STATUS: list[tuple[type[FtguardError], int, str]] = [
    (TooManyFailures, 429, "rate_limited"),
    (AuthenticationError, 401, "unauthenticated"),
    (PermissionDeniedError, 403, "forbidden"),
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (VerificationError, 422, "verification_failed"),
    (MissingDependencyError, 501, "missing_dependency"),
    (DatabaseError, 503, "database_unavailable"),
    (AnalysisFailedError, 503, "analysis_failed"),
    (BadInputError, 400, "bad_input"),
]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes (413), declared or streamed."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and not declared.isdigit():
            await _refuse(scope, receive, send, 400, "bad_request", "invalid Content-Length")
            return
        if declared is not None and int(declared) > self.limit:
            await _too_large(scope, receive, send, self.limit)
            return
        seen = 0

        async def counted() -> MutableMapping[str, Any]:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _BodyTooLarge:
            await _too_large(scope, receive, send, self.limit)


_WRITES_AT_ONCE = 8
"""Changing requests handled at once; more wait without holding a worker thread."""
_ANALYSIS_PATH = re.compile(r"/api/v1/jobs/[^/]+/(review|weights|eval)")


class WriteAdmission:
    """Let at most ``_WRITES_AT_ONCE`` changing requests take worker threads at a time.

    Writes are serialised by the store, so a burst of them would otherwise fill the worker
    threads with requests queued for the write lock, and a ``GET`` would wait behind them for
    a thread. Queued here, they wait in the event loop instead. Analyses (which run in
    threads of their own, :func:`ftguard.server._api._analysis`) are not counted.

    A request's body is read before it takes a slot, so that clients sending bodies slowly
    (or never finishing them, authenticated or not) cannot hold the slots and stop writes.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._slots: anyio.Semaphore | None = None

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") in ("GET", "HEAD", "OPTIONS")
            or _ANALYSIS_PATH.fullmatch(str(scope.get("path", "")))
        ):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)  # within BodyLimit: an oversized body stops here
        if body is None:  # the client went away before its body was complete
            return
        if self._slots is None:  # created in the server's event loop, on first use
            self._slots = anyio.Semaphore(_WRITES_AT_ONCE)
        given = False

        async def replay() -> MutableMapping[str, Any]:
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the client's disconnect

        async with self._slots:
            await self.app(scope, replay, send)


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class RequestLog:
    """Request ids, security headers and one JSON log line per request (plain ASGI)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = secrets.token_hex(8)
        state = scope.setdefault("state", {})
        state["rid"] = rid
        started = time.perf_counter()
        path = str(scope.get("path", ""))
        status = 500
        sent = False

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = int(message["status"])
                sent = True
                headers = list(message.get("headers") or [])
                headers += [(b"x-request-id", rid.encode()), *_HEADERS]
                if path.startswith("/api/"):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:  # the last line: one JSON error, never a traceback to clients
            _log.error(
                json.dumps({"event": "error", "request_id": rid, "error": type(exc).__name__})
            )
            if not sent:
                body = {
                    "error": "internal_error",
                    "message": "internal error (see the server log)",
                    "request_id": rid,
                }
                await JSONResponse(body, status_code=500)(scope, receive, send_with_headers)
        _log.info(
            json.dumps(
                {
                    "event": "request",
                    "request_id": rid,
                    "method": scope.get("method"),
                    "path": path,  # never the query: it may carry an OIDC code
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                    "user": state.get("user"),
                }
            )
        )


class _BodyTooLarge(Exception):
    pass


async def _too_large(
    scope: MutableMapping[str, Any], receive: Receive, send: Send, limit: int
) -> None:
    await _refuse(
        scope, receive, send, 413, "body_too_large", f"the request body is over {limit} bytes"
    )


async def _refuse(
    scope: MutableMapping[str, Any],
    receive: Receive,
    send: Send,
    status: int,
    code: str,
    message: str,
) -> None:
    response = JSONResponse({"error": code, "message": message}, status_code=status)
    await response(scope, receive, send)


def _error(status: int, code: str, message: str, request: Request) -> JSONResponse:
    first_line = message.strip().splitlines()[0] if message.strip() else code
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        {"error": code, "message": first_line, "request_id": getattr(request.state, "rid", None)},
        status_code=status,
        headers=headers,
    )


def settle_heap() -> int:
    """Collect once, then leave every object alive now out of later garbage collections.

    For the server's process, once its app is built: the modules, the app and its workspace
    live as long as the process, and a full collection would otherwise walk all of them
    while every request thread waits (about 70 ms each time on 2 cores; some 15 ms after
    this). Returns how many objects were set aside.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def create_app(settings: ServerSettings, *, context: ServerContext | None = None) -> FastAPI:
    """The server application for ``settings`` (loads the workspace and its keys now)."""
    from ftguard import __version__
    from ftguard.server._api import router

    owned = context is None
    ctx = context or ServerContext(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:  # a context passed in belongs to the caller
            ctx.close()

    app = FastAPI(
        lifespan=lifespan,
        title="ftguard",
        version=__version__,
        summary="Access controls around the fine-tuning of language models.",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
    )
    app.state.ctx = ctx
    app.include_router(router)
    try:
        from ftguard.server._console import console_router, mount_static

        app.include_router(console_router)
        mount_static(app)
    except ImportError:  # the console is optional (jinja2 is a core dependency, though)
        pass

    @app.exception_handler(FtguardError)
    async def _ftguard_error(request: Request, exc: FtguardError) -> JSONResponse:
        for kind, status, code in _STATUS:
            if isinstance(exc, kind):
                return _error(status, code, str(exc), request)
        return _error(400, "bad_input", str(exc), request)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg"))
        return _error(422, "invalid_request", message, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, "http_error", str(exc.detail), request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        _log.error(
            json.dumps(
                {
                    "event": "error",
                    "request_id": getattr(request.state, "rid", None),
                    "error": type(exc).__name__,
                }
            )
        )
        return _error(500, "internal_error", "internal error (see the server log)", request)

    @app.get("/healthz", tags=["health"])
    def healthz() -> Health:
        """The process answers."""
        return Health(status="ok")

    @app.get(
        "/readyz",
        tags=["health"],
        response_model=None,
        responses={
            200: {"model": Readiness},
            503: {"model": Readiness, "description": "not ready"},
        },
    )
    def readyz() -> JSONResponse:
        """The database answers and the audit chain verifies.

        Unauthenticated, so it names no count or head of the chain: that would let anyone
        count a team's activity.
        """
        try:
            with ctx.ws.store.read() as session:
                state = chain_state(ctx.ws, session)
                check_witness(ctx.ws, session, state)
        except FtguardError as exc:
            return JSONResponse({"status": "not ready", "reason": str(exc)}, status_code=503)
        return JSONResponse({"status": "ready"})

    app.add_middleware(WriteAdmission)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(RequestLog)
    return app
