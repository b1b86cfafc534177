"""Write admission: a burst of changing requests queues in the event loop, not in threads."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from ftguard.server._app import _WRITES_AT_ONCE, WriteAdmission

pytestmark = pytest.mark.anyio


class _Counting:
    """An ASGI app that answers after ``release`` is set, counting requests inside it."""

    def __init__(self) -> None:
        self.inside = 0
        self.most_inside = 0
        self.release = anyio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        try:
            if scope["method"] == "POST":
                await self.release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": scope["path"].encode()})
        finally:
            self.inside -= 1


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_burst_of_writes_is_admitted_a_few_at_a_time_and_reads_pass() -> None:
    inner = _Counting()
    transport = httpx.ASGITransport(app=WriteAdmission(inner))
    answers: list[int] = []
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

        async def post(n: int) -> None:
            answers.append((await client.post(f"/api/v1/jobs/{n}/approvals")).status_code)

        async with anyio.create_task_group() as tg:
            for n in range(3 * _WRITES_AT_ONCE):
                tg.start_soon(post, n)
            with anyio.fail_after(10):
                while inner.inside < _WRITES_AT_ONCE:
                    await anyio.sleep(0.01)
            await anyio.sleep(0.05)
            assert inner.inside == _WRITES_AT_ONCE  # the rest wait outside the app
            # Reads and analyses are not held behind the queued writes.
            assert (await client.get("/api/v1/jobs")).status_code == 200
            inner.release.set()
    assert answers == [200] * (3 * _WRITES_AT_ONCE)
    assert inner.most_inside == _WRITES_AT_ONCE + 1  # the writes admitted, and the read


async def test_analyses_are_not_counted_as_writes() -> None:
    inner = _Counting()
    transport = httpx.ASGITransport(app=WriteAdmission(inner))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
        anyio.create_task_group() as tg,
    ):
        for n in range(_WRITES_AT_ONCE):
            tg.start_soon(client.post, f"/api/v1/jobs/{n}/approvals")
        for n in range(3):
            tg.start_soon(client.post, f"/api/v1/jobs/a{n}/review")
        with anyio.fail_after(10):
            while inner.inside < _WRITES_AT_ONCE + 3:
                await anyio.sleep(0.01)
        inner.release.set()
    assert inner.most_inside == _WRITES_AT_ONCE + 3


async def test_slow_bodies_hold_no_slot() -> None:
    """Clients that never finish their bodies (an attacker needs no token) do not stop writes."""
    inner = _Counting()
    inner.release.set()
    transport = httpx.ASGITransport(app=WriteAdmission(inner))
    never = anyio.Event()

    async def stalled_body() -> Any:
        yield b'{"partial": '
        await never.wait()
        yield b"1}"

    async with (
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
        anyio.create_task_group() as tg,
    ):
        for n in range(2 * _WRITES_AT_ONCE):
            tg.start_soon(
                lambda n=n: client.post(f"/api/v1/jobs/{n}/reject", content=stalled_body())
            )
        await anyio.sleep(0.05)
        with anyio.fail_after(5):  # an approval still gets through, body and all
            answer = await client.post("/api/v1/jobs/x/approvals", content=b'{"ok": 1}')
        assert answer.status_code == 200 and answer.text == "/api/v1/jobs/x/approvals"
        assert inner.most_inside == 1  # the stalled requests never reached the app
        never.set()
