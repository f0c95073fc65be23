"""A get_task nobody else polls sends its own request; callers arriving while it is in flight
join it (one request, the same Task or the same error); cancelling any of them leaves the
others served and nothing behind.

Against a real aiohttp server on 127.0.0.1 that holds each answer until the test lets it go.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from taskwatch import Client, NotFoundError, RateBudgetUnavailableError, RateLimiter, Task

from .conftest import ServeFactory, base_url, fast_client, fixture_json, until
from .test_watch_many import taskwatch_tasks

HELD = "c5e29d2aba8b77cdc56391e7405302de"  # the hash whose answers the test holds
OTHER = "0" * 32


@dataclass
class HeldServer:
    """Answers every task at once, but ``HELD``'s only once ``release`` is set; 404 for
    hashes in ``missing``. Counts requests per hash; each answer has one result more."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    missing: set[str] = field(default_factory=set)
    requests: dict[str, int] = field(default_factory=dict)
    total_results: int = 0
    running: bool = False  # answer a running task (whose results rise) instead of a done one

    async def handle(self, request: web.Request) -> web.Response:
        task_hash = request.match_info["task_hash"]
        self.requests[task_hash] = self.requests.get(task_hash, 0) + 1
        if task_hash == HELD:
            await self.release.wait()
        headers = {"X-RateLimit-Limit": "90", "X-RateLimit-Remaining": "80"}
        if task_hash in self.missing:
            return web.json_response({"detail": "Not found."}, status=404, headers=headers)
        self.total_results += 1
        body = fixture_json("get-task-200.json")
        body["hash_value"] = task_hash
        body["status"]["total_results"] = self.total_results
        if self.running:
            body["status"].update(status="running", is_done=False, ended_at=None)
        return web.Response(
            body=json.dumps(body).encode(), content_type="application/json", headers=headers
        )


@pytest.fixture
async def held(serve: ServeFactory) -> AsyncIterator[tuple[HeldServer, Client]]:
    server = HeldServer()
    app_server = await serve({"/v1/tasks/{task_hash}": server.handle})
    async with fast_client(base_url(app_server)) as client:
        await client.get_task(OTHER)  # the key is proven: every later call takes the fast path
        yield server, client
    server.release.set()


async def _in_flight(server: HeldServer) -> None:
    await until(lambda: server.requests.get(HELD, 0) == 1)


async def _settled() -> None:
    for _ in range(20):  # a few loop turns for the scheduler to notice what ended
        await asyncio.sleep(0)


async def test_callers_arriving_meanwhile_join_the_direct_request(
    held: tuple[HeldServer, Client],
) -> None:
    server, client = held
    first = asyncio.ensure_future(client.get_task(HELD))
    await _in_flight(server)
    joiners = [asyncio.ensure_future(client.get_task(HELD)) for _ in range(5)]
    waiter = asyncio.ensure_future(client.wait(HELD, min_interval=0.01, max_interval=0.05))
    await _settled()
    server.release.set()
    task = await first
    joined = await asyncio.gather(*joiners)
    assert all(t is task for t in joined)  # the very snapshot the request fetched
    assert (await waiter) is task  # the wait's first snapshot was done: it ended with it
    assert server.requests[HELD] == 1
    assert client.stats().requests == 2  # the warm-up and the one shared request
    await _settled()
    assert taskwatch_tasks() == []


async def test_a_direct_request_nobody_joins_leaves_nothing_behind(
    held: tuple[HeldServer, Client],
) -> None:
    server, client = held
    server.release.set()
    tasks = [await client.get_task(HELD) for _ in range(3)]
    assert [t.total_results for t in tasks] == [2, 3, 4]  # each call its own request
    assert server.requests[HELD] == 3
    await _settled()
    assert taskwatch_tasks() == []
    # and the hash is free: a watch starts a stream of its own
    watched = await client.wait(HELD, min_interval=0.01, max_interval=0.05)
    assert watched.total_results == 5


async def test_a_failed_direct_request_fails_every_joiner_alike(
    held: tuple[HeldServer, Client],
) -> None:
    server, client = held
    server.missing.add(HELD)
    first = asyncio.ensure_future(client.get_task(HELD))
    await _in_flight(server)
    joiners = [asyncio.ensure_future(client.get_task(HELD)) for _ in range(3)]
    await _settled()
    server.release.set()
    with pytest.raises(NotFoundError) as direct_error:
        await first
    assert direct_error.value.task_hash == HELD
    for joiner in joiners:
        with pytest.raises(NotFoundError) as error:
            await joiner
        assert error.value is direct_error.value
    assert server.requests[HELD] == 1  # a 404 is not retried, and nobody sent another
    await _settled()
    assert taskwatch_tasks() == []


async def test_cancelling_the_direct_caller_leaves_the_joiners_served(
    held: tuple[HeldServer, Client],
) -> None:
    server, client = held
    first = asyncio.ensure_future(client.get_task(HELD))
    await _in_flight(server)
    joiners = [asyncio.ensure_future(client.get_task(HELD)) for _ in range(3)]
    await _settled()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await until(lambda: server.requests[HELD] == 2)  # the joiners' own poll, sent at once
    server.release.set()
    joined = await asyncio.gather(*joiners)
    assert all(isinstance(t, Task) for t in joined)
    assert all(t is joined[0] for t in joined)  # one request for the three of them
    assert server.requests[HELD] == 2
    await _settled()
    assert taskwatch_tasks() == []


async def test_cancelling_a_joiner_leaves_the_direct_caller_served(
    held: tuple[HeldServer, Client],
) -> None:
    server, client = held
    first = asyncio.ensure_future(client.get_task(HELD))
    await _in_flight(server)
    joiner = asyncio.ensure_future(client.get_task(HELD))
    staying = asyncio.ensure_future(client.get_task(HELD))
    await _settled()
    joiner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await joiner
    server.release.set()
    task = await first
    assert (await staying) is task
    assert server.requests[HELD] == 1
    await _settled()
    assert taskwatch_tasks() == []


async def test_when_every_joiner_left_the_direct_request_ends_as_if_nobody_joined(
    held: tuple[HeldServer, Client],
) -> None:
    server, client = held
    first = asyncio.ensure_future(client.get_task(HELD))
    await _in_flight(server)
    joiner = asyncio.ensure_future(client.get_task(HELD))
    await _settled()
    joiner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await joiner
    server.release.set()
    assert (await first).total_results == 2
    await _settled()
    assert taskwatch_tasks() == []
    assert (await client.get_task(HELD)).total_results == 3  # a request of its own again
    assert server.requests[HELD] == 2


class _FailingOnce(RateLimiter):
    """The in-process budget, whose first ``try_acquire`` fails as a shared one may."""

    def __init__(self) -> None:
        super().__init__(requests_per_minute=None)
        self.failed = False

    def try_acquire(self) -> bool:
        if not self.failed:
            self.failed = True
            raise RateBudgetUnavailableError("the shared budget did not answer")
        return super().try_acquire()


async def test_a_budget_failing_before_the_direct_request_holds_no_room_in_flight(
    serve: ServeFactory,
) -> None:
    server = HeldServer()
    server.release.set()
    app_server = await serve({"/v1/tasks/{task_hash}": server.handle})
    # One request in flight at most: room kept by the failure would block every later call.
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session,
        fast_client(base_url(app_server), limiter=_FailingOnce(), session=session) as client,
    ):
        with pytest.raises(RateBudgetUnavailableError) as error:
            await client.get_task(HELD)
        assert error.value.task_hash == HELD
        task = await asyncio.wait_for(client.get_task(HELD), 5)
        assert task.hash_value == HELD


async def test_a_watch_that_joined_a_direct_request_goes_on_polling(
    held: tuple[HeldServer, Client],
) -> None:
    server, client = held
    server.running = True
    first = asyncio.ensure_future(client.get_task(HELD))
    await _in_flight(server)
    seen: list[Task] = []

    async def watch() -> None:
        async for task in client.watch(HELD, min_interval=0.01, max_interval=0.02):
            seen.append(task)
            if len(seen) == 3:
                return

    watcher = asyncio.ensure_future(watch())
    await _settled()
    server.release.set()
    task = await first
    await asyncio.wait_for(watcher, 5)
    assert seen[0] is task  # the direct request's snapshot, then polls of the watch's own
    assert [t.total_results for t in seen] == [2, 3, 4]
    assert server.requests[HELD] == 3
    await _settled()
    assert taskwatch_tasks() == []
