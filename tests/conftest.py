"""Shared fixtures: the documented bodies, a clean environment, and a real local HTTP server."""

from __future__ import annotations

import asyncio
import heapq
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import taskwatch

FIXTURES = Path(__file__).parent / "fixtures"
TASK_HASH = "c5e29d2aba8b77cdc56391e7405302de"
SECRET = "sk-test-0123456789abcdef-DO-NOT-LEAK"


def fixture_bytes(name: str) -> bytes:
    """The verbatim bytes of a documented body in tests/fixtures/."""
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture_bytes(name))


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's real key or lobstr config file."""
    monkeypatch.delenv("LOBSTR_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ServeFactory = Callable[..., Awaitable[TestServer]]


@pytest.fixture
async def serve() -> AsyncIterator[ServeFactory]:
    """Start real aiohttp servers on 127.0.0.1: ``server = await serve({"/v1/tasks/{h}": h})``.

    Every server is closed at the end of the test.
    """
    servers: list[TestServer] = []

    async def start(routes: dict[str, Handler]) -> TestServer:
        app = web.Application()
        for path, handler in routes.items():
            app.router.add_route("GET", path, handler)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


def base_url(server: TestServer) -> str:
    return str(server.make_url("/v1"))


class FakeTime:
    """A virtual monotonic clock for tests: ``sleep`` waits on it, and whenever every other
    task has had its turn the clock jumps to the earliest wake-up. Records each sleep."""

    _HOPS = 20  # loop iterations let pass before the clock jumps, so ready tasks run first

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0
        self._scheduled = False

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._seq += 1
        heapq.heappush(self._waiters, (self.now + max(seconds, 0.0), self._seq, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._advance, loop, self._HOPS)
        await future

    def _advance(self, loop: asyncio.AbstractEventLoop, hops: int) -> None:
        if hops:
            loop.call_soon(self._advance, loop, hops - 1)
            return
        while self._waiters and self._waiters[0][2].done():  # cancelled sleepers
            heapq.heappop(self._waiters)
        if not self._waiters:
            self._scheduled = False
            return
        target = self._waiters[0][0]
        self.now = max(self.now, target)
        while self._waiters and self._waiters[0][0] <= target:
            future = heapq.heappop(self._waiters)[2]
            if not future.done():
                future.set_result(None)
        loop.call_soon(self._advance, loop, self._HOPS)

    def install(self, client: taskwatch.Client) -> FakeTime:
        """Make the client, its limiter and its watches run on this clock."""
        client._clock = self.clock
        client._sleep = self.sleep
        client._random = lambda: 0.0
        client.limiter._clock = self.clock
        client.limiter._sleep = self.sleep
        return self
