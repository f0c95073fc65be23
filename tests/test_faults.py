"""Fault injection over real sockets: what the client does with every way an HTTP exchange
can go wrong, and how many requests it spends on each.

Each scenario checks the typed error or the recovery the README promises, the requests seen
by the server (``api.stats``) and sent by the client (``client.stats()``), and that nothing
is left behind: no request in flight, no connection open once the client is closed (and the
conftest guards fail a test on any unclosed session, pending task or asyncio error).

Faults come from :class:`taskwatch.testing.SimulatedTaskAPI` where it has them, else from
``RawServer`` below, a few lines of asyncio that can misbehave below the HTTP layer (reset a
connection, stop mid-body without a Content-Length, accept and never read).

Counting note: aiohttp's client silently retries an idempotent GET once when the server
drops the connection before answering, so one ``Fault.drop()`` costs the server two requests
and the client (and taskwatch's counters) nothing visible.

Run with ``-s`` (or ``-rA``) to see the figures: one ``fault | outcome | requests`` line per
scenario of the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import select
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any

import aiohttp
import attrs
import pytest

from taskwatch import (
    APIError,
    AuthenticationError,
    BadRequestError,
    Client,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    Task,
    TaskwatchError,
    TransportError,
)
from taskwatch._protocol import MAX_BODY_BYTES
from taskwatch.testing import Fault, ScriptStep, SimulatedTaskAPI
from taskwatch.testing._server import peer_hung_up

from .conftest import SECRET, FakeTime, fixture_json, snapshots_by_task, until
from .conftest import fast_client as shared_fast_client

MAX_IN_FLIGHT = 100  # aiohttp's default pool: connections one client opens at most

DONE = [
    ScriptStep(
        at=0, status="completed", total_results=7, total_pages=1, is_done=True, done_reason="done"
    )
]


def progressing(results: int = 6, done_at: float = 0.3) -> list[ScriptStep]:
    """A task that runs and finishes ``done_at`` simulated seconds after it is added."""
    return [
        ScriptStep(at=0, status="running", total_results=1, total_pages=1),
        ScriptStep(at=done_at / 2, status="running", total_results=results // 2, total_pages=1),
        ScriptStep.done(done_at, "completed", total_results=results, total_pages=2),
    ]


def fast_client(base_url: str, **options: Any) -> Client:
    """The shared test client with this module's defaults: three retries, a 2 s timeout."""
    return shared_fast_client(base_url, **{"max_retries": 3, "timeout": 2.0, **options})


async def assert_nothing_left(api: SimulatedTaskAPI) -> None:
    """Once the client is closed: no request in flight and no connection open."""
    await until(lambda: api.stats.in_flight == 0 and api.stats.open_connections == 0)


# -- the table ---------------------------------------------------------------------------


@attrs.frozen
class Case:
    """One scenario: the faults given to the next requests, then one ``get_task``."""

    faults: tuple[tuple[Fault, int], ...]
    outcome: type[TaskwatchError] | None  # None: the task arrives
    server_requests: int
    client_requests: int
    options: tuple[tuple[str, Any], ...] = ()
    match: str | None = None


def case(
    faults: list[tuple[Fault, int]],
    outcome: type[TaskwatchError] | None,
    server: int,
    client: int | None = None,
    match: str | None = None,
    **options: Any,
) -> Case:
    return Case(
        faults=tuple(faults),
        outcome=outcome,
        server_requests=server,
        client_requests=server if client is None else client,
        options=tuple(options.items()),
        match=match,
    )


_JSON_START = b'{"hash_value": "'

TABLE: dict[str, Case] = {
    # 5xx: transient, retried; max_retries=3 allows 4 attempts.
    "500 x2 then ok": case([(Fault.status(500), 2)], None, 3),
    "502 x2 then ok": case([(Fault.status(502), 2)], None, 3),
    "503 x3 then ok": case([(Fault.status(503), 3)], None, 4),
    "504 x4: retries spent": case([(Fault.status(504), 4)], ServerError, 4, match="504"),
    "500,502,503 burst then ok": case(
        [(Fault.status(500), 1), (Fault.status(502), 1), (Fault.status(503), 1)], None, 4
    ),
    "502 html body x1": case(
        [(Fault.status(502, b"<html>Bad Gateway</html>", content_type="text/html"), 1)], None, 2
    ),
    "503 x9, max_retries=0": case([(Fault.status(503), 9)], ServerError, 1, max_retries=0),
    # 429 with a short Retry-After (seconds, fractional): retried after it.
    "429 retry-after 0.05 x2": case([(Fault.rate_limited(0.05), 2)], None, 3),
    "429 x4: retries spent": case([(Fault.rate_limited(0.01), 4)], RateLimitError, 4),
    # Permanent errors: one request, never retried.
    "400": case([(Fault.status(400), 5)], BadRequestError, 1),
    "401": case([(Fault.status(401), 5)], AuthenticationError, 1),
    "403": case([(Fault.status(403), 5)], PermissionDeniedError, 1),
    "404": case([(Fault.status(404), 5)], NotFoundError, 1),
    "409 empty body": case([(Fault.status(409, b""), 5)], APIError, 1),
    "302 redirect": case(
        [(Fault.redirect("https://elsewhere.example/v1/tasks/x"), 5)], APIError, 1, match="redirect"
    ),
    # The connection dropped before any answer: aiohttp resends once by itself.
    "drop x1 (aiohttp resends)": case([(Fault.drop(), 1)], None, 2, client=1),
    "drop x2": case([(Fault.drop(), 2)], None, 3, client=2),
    "drop x8: retries spent": case([(Fault.drop(), 8)], TransportError, 8, client=4),
    # A body cut off with a Content-Length mismatch: a payload error, retried.
    "truncated x1": case([(Fault.truncated(), 1)], None, 2),
    "truncated x4: retries spent": case([(Fault.truncated(), 4)], TransportError, 4),
    # A 200 that is not a task: permanent, except a JSON document cut off (retried).
    "200 html": case([(Fault.malformed(), 5)], ResponseFormatError, 1, match="not JSON"),
    "200 empty body": case([(Fault.malformed(b""), 5)], ResponseFormatError, 1),
    "200 json cut, length matches": case(
        [(Fault.malformed(_JSON_START + b"c5e2", "application/json"), 1)], None, 2
    ),
    "200 json array": case(
        [(Fault.malformed(b"[]", "application/json"), 5)], ResponseFormatError, 1
    ),
    # Sizes: the 1 MiB cap.
    "200 body 2 MiB": case([(Fault.large(2 << 20), 5)], ResponseFormatError, 1, match="byte limit"),
    "200 body just under 1 MiB": case([(Fault.large(MAX_BODY_BYTES - 4096), 1)], None, 1),
    # Time: delays, hangs and slow bodies against the per-attempt timeout.
    "delay 0.05s (timeout 1s)": case([(Fault.delay(0.05), 1)], None, 1, timeout=1.0),
    "delay 0.5s (timeout 0.15s)": case([(Fault.delay(0.5), 1)], None, 2, timeout=0.15),
    "hang (timeout 0.15s)": case([(Fault.hang(), 1)], None, 2, timeout=0.15),
    "hang x4: retries spent": case(
        [(Fault.hang(), 4)], TransportError, 4, match="per-attempt timeout", timeout=0.1
    ),
    "slow drip 0.2s (timeout 1s)": case([(Fault.slow_drip(0.2, 4), 1)], None, 1, timeout=1.0),
    "slow drip 2s (timeout 0.2s)": case([(Fault.slow_drip(2.0, 4), 1)], None, 2, timeout=0.2),
}


@pytest.mark.parametrize("name", list(TABLE))
async def test_fault_table(api: SimulatedTaskAPI, name: str) -> None:
    scenario = TABLE[name]
    task_hash = api.add_task(DONE)
    for fault, times in scenario.faults:
        api.inject(fault, times=times)
    outcome = "task"
    async with fast_client(api.base_url, **dict(scenario.options)) as client:
        if scenario.outcome is None:
            task = await client.get_task(task_hash)
            assert task.is_done
            assert task.total_results == 7
        else:
            with pytest.raises(scenario.outcome, match=scenario.match) as info:
                await client.get_task(task_hash)
            assert type(info.value) is scenario.outcome
            assert info.value.task_hash == task_hash
            outcome = type(info.value).__name__
        stats = client.stats()
    await assert_nothing_left(api)
    server = api.stats
    print(
        f"FIGURES fault={name:<30} | outcome={outcome:<20} | server requests={server.requests} "
        f"client requests={stats.requests} retries={stats.retries} "
        f"5xx={stats.server_errors} 429={stats.rate_limited} transport={stats.transport_errors}"
    )
    assert server.requests == scenario.server_requests
    assert api.requests_for(task_hash) == scenario.server_requests
    assert stats.requests == scenario.client_requests
    assert stats.retries == scenario.client_requests - 1
    assert stats.live_watches == 0


# -- Retry-After, on a virtual clock (nothing really waits) -------------------------------


def http_date(seconds_from_now: float) -> str:
    moment = datetime.fromtimestamp(time.time() + seconds_from_now, tz=timezone.utc)
    return format_datetime(moment, usegmt=True)


@pytest.mark.parametrize(
    ("make_fault", "low", "high"),
    [
        pytest.param(lambda: Fault.rate_limited(3), 3.0, 3.0, id="seconds"),
        # An HTTP-date has a resolution of one second.
        pytest.param(lambda: Fault.rate_limited(http_date(30)), 28.9, 30.0, id="HTTP-date"),
        pytest.param(lambda: Fault.rate_limited(http_date(-3600)), 0.0, 0.0, id="date in the past"),
        pytest.param(lambda: Fault.rate_limited(120), 120.0, 120.0, id="the cap itself"),
        pytest.param(lambda: Fault.throttled(4), 4.0, 4.0, id="throttled body"),
        # No advice: the client pauses every caller for 1 s (plus a backoff of milliseconds).
        pytest.param(lambda: Fault.status(429), 1.0, 1.011, id="429 without advice"),
        # Advice beyond the 120 s cap is absurd: read as no advice at all, never clamped.
        pytest.param(lambda: Fault.rate_limited(86_400), 1.0, 1.011, id="a day: not given"),
        pytest.param(lambda: Fault.rate_limited(99_999_999), 1.0, 1.011, id="99999999 s"),
        pytest.param(
            lambda: Fault.rate_limited(http_date(86_400 * 365)), 1.0, 1.011, id="date in a year"
        ),
        pytest.param(
            lambda: Fault.status(
                429, {"detail": "Request was throttled. Expected available in 86400 seconds."}
            ),
            1.0,
            1.011,
            id="throttled body: a day",
        ),
        pytest.param(
            lambda: Fault.status(503, headers={"Retry-After": "5"}), 5.0, 5.0, id="503 seconds"
        ),
        # A 5xx's absurd advice: taskwatch's own backoff (milliseconds here), no pause.
        pytest.param(
            lambda: Fault.status(503, headers={"Retry-After": "99999999"}),
            0.0,
            0.011,
            id="503 absurd",
        ),
    ],
)
async def test_retry_after_is_the_wait_taken(
    api: SimulatedTaskAPI, make_fault: Callable[[], Fault], low: float, high: float
) -> None:
    task_hash = api.add_task(DONE)
    api.inject(make_fault(), times=1)
    fake = FakeTime()
    async with fast_client(api.base_url) as client:
        fake.install(client)
        task = await client.get_task(task_hash)
        stats = client.stats()
    assert task.is_done
    assert api.stats.requests == 2
    # The wait is the server's; the shared budget's pause (if any) is over by then.
    assert low - 1e-6 <= sum(fake.sleeps) <= high + 1e-6, fake.sleeps
    assert stats.retries == 1


def finished_body(task_hash: str) -> dict[str, Any]:
    """The documented 200 body, for the task ``task_hash``, finished."""
    body: dict[str, Any] = fixture_json("get-task-200.json")
    body["hash_value"] = task_hash
    body["status"].update(status="completed", is_done=True)
    return body


@pytest.mark.parametrize(
    "reset",
    [
        pytest.param(lambda: str(int(time.time()) + 86_400 * 365 * 30), id="decades away"),
        pytest.param(lambda: "1" + "0" * 300, id="garbage-long"),
        pytest.param(lambda: str(int(time.time() * 1000) + 30_000), id="milliseconds"),
    ],
)
async def test_an_absurd_rate_limit_reset_holds_nobody(
    api: SimulatedTaskAPI, reset: Callable[[], str]
) -> None:
    """``X-RateLimit-Remaining: 0`` with a Reset beyond the 120 s cap is no advice: neither
    this call nor the next on the same client waits for it."""
    task_hash = api.add_task(DONE)
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset()}
    api.inject(Fault.status(200, finished_body(task_hash), headers=headers), times=1)
    fake = FakeTime()
    async with fast_client(api.base_url) as client:
        fake.install(client)
        first = await client.get_task(task_hash)
        assert client.stats().paused_for == 0.0
        second = await client.get_task(task_hash)
        stats = client.stats()
    assert first.is_done
    assert second.is_done
    assert fake.sleeps == []
    assert stats.server_remaining == 0  # seen and reported, just not obeyed
    assert api.stats.requests == 2


async def test_a_sane_rate_limit_reset_still_holds_the_next_call(api: SimulatedTaskAPI) -> None:
    task_hash = api.add_task(DONE)
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + 30)}
    api.inject(Fault.status(200, finished_body(task_hash), headers=headers), times=1)
    fake = FakeTime()
    async with fast_client(api.base_url) as client:
        fake.install(client)
        await client.get_task(task_hash)
        assert 28.0 < client.stats().paused_for <= 30.0
        await client.get_task(task_hash)
    assert 28.0 < sum(fake.sleeps) <= 30.0, fake.sleeps


async def test_an_absurd_retry_after_does_not_hold_the_next_call(api: SimulatedTaskAPI) -> None:
    task_hash = api.add_task(DONE)
    api.inject(Fault.rate_limited(99_999_999), times=1)
    fake = FakeTime()
    async with fast_client(api.base_url) as client:
        fake.install(client)
        await client.get_task(task_hash)  # the 429, the default 1 s pause, the retry
        slept = sum(fake.sleeps)
        await client.get_task(task_hash)
        stats = client.stats()
    assert slept <= 1.011, fake.sleeps
    assert sum(fake.sleeps) == slept  # the next call waits for nothing
    assert stats.rate_limited == 1
    assert stats.paused_for == 0.0


# -- many watchers, one client: 429 storms ------------------------------------------------


async def test_429_burst_while_many_watchers_share_a_client(api: SimulatedTaskAPI) -> None:
    """Ten 429s in a row: every one pauses the whole client, none is lost, no snapshot is
    lost, and the storm costs exactly one extra request per 429."""
    hashes = [api.add_task(progressing(done_at=0.4)) for _ in range(40)]
    api.inject(Fault.rate_limited(0.05), times=10)
    async with fast_client(api.base_url, max_retries=10) as client:
        snapshots = [
            t async for t in client.watch_many(hashes, min_interval=0.02, max_interval=0.1)
        ]
        stats = client.stats()
    await assert_nothing_left(api)
    snapshots_by_task(snapshots, hashes)
    assert stats.rate_limited == api.stats.responses_429 == 10
    assert stats.retries == 10
    assert api.stats.requests == stats.requests


@pytest.mark.parametrize(
    ("watchers", "pool"),
    [(150, None), (30, 5)],
    ids=["own session: 150 watchers", "caller's session: pool of 5"],
)
async def test_429_pause_holds_requests_when_watchers_outnumber_the_pool(
    api: SimulatedTaskAPI, watchers: int, pool: int | None
) -> None:
    """README: "a 429 holds every caller until its Retry-After has passed". With more
    watches than connections and no client-side pace, polls wait for a connection; once the
    first 429 arrives, none of them may be sent before its Retry-After has passed. Only the
    requests already under way may still reach the server: those the client had sent (and
    counted) but the server had not yet read when the 429 was handled, and never more than
    the connections there are."""
    hashes = [
        api.add_task([ScriptStep(at=0, status="running", total_results=1)]) for _ in range(watchers)
    ]
    api.inject_randomly([Fault.delay(0.03)], probability=1.0, seed=1)  # keep the pool busy
    async with contextlib.AsyncExitStack() as stack:
        session = None
        if pool is not None:
            connector = aiohttp.TCPConnector(limit=pool)
            session = await stack.enter_async_context(aiohttp.ClientSession(connector=connector))
        client = await stack.enter_async_context(
            fast_client(api.base_url, session=session, max_retries=10)
        )
        # Note both counters at the very moment the client handles the 429.
        marks: dict[str, int] = {}
        pause = client.limiter.pause

        def noting_pause(seconds: float) -> None:
            marks.setdefault("sent", client.stats().requests)
            marks.setdefault("arrived", api.stats.requests)
            pause(seconds)

        client.limiter.pause = noting_pause  # type: ignore[method-assign]
        snapshots = await stack.enter_async_context(
            contextlib.aclosing(client.watch_many(hashes, min_interval=0.01, max_interval=0.01))
        )
        consumer = asyncio.ensure_future(consume(snapshots))
        await until(lambda: api.stats.requests >= 2 * watchers)  # every poll waits its turn
        api.inject(Fault.rate_limited(1), times=1)
        await until(lambda: "arrived" in marks)
        await asyncio.sleep(0.5)  # well inside the 1 s pause
        arrived_later = api.stats.requests - marks["arrived"]
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
    under_way = min(marks["sent"] - marks["arrived"], pool or MAX_IN_FLIGHT)
    print(
        f"FIGURES 429 pause, {watchers} watchers, pool {pool or 100}: {arrived_later} "
        f"requests reached the server during it ({under_way} were under way)"
    )
    assert arrived_later <= under_way


async def consume(snapshots: AsyncIterator[Task]) -> list[Task]:
    return [task async for task in snapshots]


# -- a refused key: one request, then every call fails fast ------------------------------


async def test_a_refused_key_costs_one_request_for_twenty_watches(api: SimulatedTaskAPI) -> None:
    """A 401 is about the key, not the task: watching 20 hashes with a wrong key sends one
    request; every hash gets an AuthenticationError naming it, and later calls on the
    client fail at once without a request, until a new Client is made."""
    hashes = [api.add_task(progressing()) for _ in range(20)]
    failures: dict[str, TaskwatchError] = {}
    async with Client(
        "sk-wrong-key", base_url=api.base_url, requests_per_minute=None, max_retries=3
    ) as client:
        async for _ in client.watch_many(
            hashes, min_interval=0.01, max_interval=0.01, on_error=failures.__setitem__
        ):
            pass
        assert api.stats.requests == 1
        assert set(failures) == set(hashes)
        for task_hash, error in failures.items():
            assert isinstance(error, AuthenticationError)
            assert error.status == 401
            assert error.task_hash == task_hash
        with pytest.raises(AuthenticationError) as fast:
            await client.get_task(hashes[0])
        with pytest.raises(AuthenticationError):
            await client.wait(hashes[1])
        assert fast.value.task_hash == hashes[0]
        assert "create a new Client" in str(fast.value)
        assert "sk-wrong-key" not in str(fast.value)
        stats = client.stats()
    assert api.stats.requests == 1
    assert stats.requests == 1
    async with fast_client(api.base_url) as fixed:  # what the user does: a valid key
        assert (await fixed.get_task(hashes[0])).total_results >= 1


async def test_a_key_revoked_mid_run_stops_the_client_at_its_first_401(
    api: SimulatedTaskAPI,
) -> None:
    hashes = [api.add_task(DONE) for _ in range(22)]
    async with fast_client(api.base_url) as client:
        await client.get_task(hashes[0])  # the key works
        api.inject(Fault.status(401), times=None)  # ... and is revoked
        with pytest.raises(AuthenticationError):
            await client.get_task(hashes[1])
        assert api.stats.requests == 2
        failures: dict[str, TaskwatchError] = {}
        async for _ in client.watch_many(hashes[2:], on_error=failures.__setitem__):
            pass
    assert api.stats.requests == 2  # nothing sent after the first 401
    assert sorted(failures) == sorted(hashes[2:])
    assert all(isinstance(error, AuthenticationError) for error in failures.values())
    assert all(error.task_hash == task_hash for task_hash, error in failures.items())


async def test_a_valid_key_is_not_held_to_one_request_at_a_time() -> None:
    """Until the first answer, one attempt at a time; after it, watches go concurrently."""
    async with SimulatedTaskAPI(rate_limit=None, api_key=SECRET) as api:
        hashes = [api.add_task(DONE) for _ in range(20)]
        api.inject_randomly([Fault.delay(0.2)], probability=1.0, seed=1)
        async with fast_client(api.base_url) as client:
            started = time.monotonic()
            done = [t async for t in client.watch_many(hashes) if t.is_done]
            elapsed = time.monotonic() - started
    assert len(done) == 20
    assert elapsed < 2.0  # about two delays (the probe, then all the rest), not twenty


async def test_a_403_is_about_its_task_and_the_others_go_on(api: SimulatedTaskAPI) -> None:
    """403 stays per task: taskwatch cannot tell a task of another account from a blocked
    key, and a key-wide stop would end watches that would succeed."""
    forbidden = api.add_task(DONE)
    others = [api.add_task(DONE) for _ in range(5)]
    api.inject(Fault.status(403), task_hash=forbidden, times=None)
    failures: dict[str, TaskwatchError] = {}
    async with fast_client(api.base_url) as client:
        done = [
            t.hash_value
            async for t in client.watch_many([forbidden, *others], on_error=failures.__setitem__)
            if t.is_done
        ]
        assert (await client.get_task(others[0])).is_done
    assert sorted(done) == sorted(others)
    assert list(failures) == [forbidden]
    assert isinstance(failures[forbidden], PermissionDeniedError)
    assert api.stats.requests == 7


# -- outages: connection refused, then the server is back on the same port ---------------


async def test_watch_survives_an_outage_shorter_than_its_retries() -> None:
    async with SimulatedTaskAPI(rate_limit=None, api_key=SECRET) as first:
        port = int(first.base_url.rsplit(":", 1)[1].split("/")[0])
        script = [
            ScriptStep(at=0, status="running", total_results=1),
            ScriptStep(at=0.5, status="completed", total_results=9, is_done=True),
        ]
        task_hash = first.add_task(script)
        client = fast_client(
            first.base_url, retry_initial_wait=0.05, retry_max_wait=0.2, max_retries=10
        )
        async with (
            client,
            contextlib.aclosing(
                client.watch(task_hash, min_interval=0.02, max_interval=0.05)
            ) as watch,
        ):
            snapshots = [await anext(watch)]
            await first.close()  # the outage begins: connections refused
            rest = asyncio.ensure_future(consume(watch))
            await until(lambda: client.stats().transport_errors >= 2)
            async with SimulatedTaskAPI(rate_limit=None, api_key=SECRET, port=port) as second:
                second.add_task(script, task_hash=task_hash)
                snapshots += await rest
                stats = client.stats()
            await assert_nothing_left(second)
    assert [t.is_done for t in snapshots] == [False] * (len(snapshots) - 1) + [True]
    assert snapshots[-1].total_results == 9
    assert first.stats.requests >= 1
    assert second.stats.requests >= 1
    assert stats.transport_errors >= 2
    # Every failed attempt during the outage was retried: none ended the watch.
    assert stats.retries >= stats.transport_errors


async def test_outage_longer_than_the_retries_raises_transport_error() -> None:
    async with SimulatedTaskAPI(rate_limit=None, api_key=SECRET) as gone:
        url = gone.base_url
        task_hash = gone.add_task(DONE)
    async with fast_client(url, max_retries=3) as client:
        with pytest.raises(TransportError, match="could not reach the API") as info:
            await client.get_task(task_hash)
        stats = client.stats()
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectorError)
    assert stats.requests == 4
    assert stats.transport_errors == 4
    assert gone.stats.requests == 0


# -- below HTTP: a purpose-built server ---------------------------------------------------

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A TCP server on 127.0.0.1 that answers each connection with the next behaviour of a
    list (the last one repeats). Counts connections and HTTP request heads read."""

    def __init__(self, behaviours: list[Behaviour]) -> None:
        self.behaviours = behaviours
        self.connections = 0
        self.requests = 0
        self.closing = asyncio.Event()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.closing.set()  # behaviours still waiting return now (never cancelled: on 3.11
        await asyncio.gather(*self._handlers)  # asyncio.streams reports that as an error)
        await self._server.wait_closed()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def read_head(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests += 1
        return head

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        behaviour = self.behaviours[min(self.connections, len(self.behaviours) - 1)]
        self.connections += 1
        try:
            await behaviour(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away first: fine
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self._handlers.discard(handler)


def task_body(task_hash: str = "c5e29d2aba8b77cdc56391e7405302de", **params: Any) -> bytes:
    body = {
        "hash_value": task_hash,
        "created_at": "2024-12-24T10:57:55.045567",
        "is_active": False,
        "params": {"url": "https://www.example.com/search?q=x", **params},
        "module": 5,
        "object": "task",
        "status": {
            "status": "completed",
            "started_at": "2024-12-24T10:58:00.000000",
            "ended_at": "2024-12-24T11:00:00.000000",
            "is_done": True,
            "total_results": 156,
            "total_pages": 3,
            "done_reason": "completed",
            "has_errors": False,
            "errors": None,
        },
    }
    return json.dumps(body).encode()


def answer(server: RawServer, body: bytes = b"", *, close_delimited: bool = False) -> Behaviour:
    """Read one request head, send ``body`` as a 200 (with Content-Length unless
    ``close_delimited``: then the end of the body is the end of the connection), close."""

    async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_head(reader)
        head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        if not close_delimited:
            head += f"Content-Length: {len(body)}\r\n"
        writer.write(head.encode() + b"\r\n" + body)
        await writer.drain()

    return behaviour


def reset_after(server: RawServer, sent: bytes) -> Behaviour:
    """Send the head of a full answer and part of its body, then reset the connection."""

    async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_head(reader)
        full = task_body()
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(full)}"
        writer.write(head.encode() + b"\r\n\r\n" + sent)
        await writer.drain()
        await asyncio.sleep(0.05)  # the client is reading the body by now
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST, not FIN

    return behaviour


def never_answer(server: RawServer) -> Behaviour:
    """Accept the connection and never read or write: only the client's timeout ends it."""

    async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.closing.wait()

    return behaviour


def stream_forever(server: RawServer, chunk: bytes, limit: int) -> Behaviour:
    """A 200 without Content-Length whose body keeps coming (up to ``limit`` bytes)."""

    async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_head(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
        )
        sent = 0
        while sent < limit:
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)

    return behaviour


async def test_reset_mid_response_is_retried() -> None:
    server = RawServer([])
    server.behaviours = [reset_after(server, task_body()[:100]), answer(server, task_body())]
    async with server, fast_client(server.base_url) as client:
        task = await client.get_task("c5e29d2aba8b77cdc56391e7405302de")
        stats = client.stats()
    assert task.total_results == 156
    assert server.requests == 2
    assert stats.requests == 2
    assert stats.transport_errors == 1


async def test_reset_every_time_ends_in_transport_error() -> None:
    server = RawServer([])
    server.behaviours = [reset_after(server, task_body()[:10])]
    async with server, fast_client(server.base_url, max_retries=2) as client:
        with pytest.raises(TransportError) as info:
            await client.get_task("c5e29d2aba8b77cdc56391e7405302de")
        stats = client.stats()
    assert isinstance(info.value.__cause__, aiohttp.ClientError)
    assert server.requests == 3
    assert stats.requests == 3


async def test_server_that_accepts_and_never_answers_hits_the_timeout() -> None:
    server = RawServer([])
    server.behaviours = [never_answer(server)]
    started = time.monotonic()
    async with server, fast_client(server.base_url, timeout=0.2, max_retries=1) as client:
        with pytest.raises(TransportError, match="per-attempt timeout"):
            await client.get_task("c5e29d2aba8b77cdc56391e7405302de")
        stats = client.stats()
    elapsed = time.monotonic() - started
    assert server.connections == 2
    assert server.requests == 0  # the server never even read the request
    assert stats.requests == 2
    assert stats.transport_errors == 2
    assert 0.4 <= elapsed < 2.0  # two attempts, each cut at 0.2 s


async def test_huge_body_without_content_length_is_refused_while_streaming() -> None:
    server = RawServer([])
    server.behaviours = [stream_forever(server, b" " * 65536, limit=4 << 20)]
    async with server, fast_client(server.base_url) as client:
        with pytest.raises(ResponseFormatError, match="byte limit"):
            await client.get_task("c5e29d2aba8b77cdc56391e7405302de")
        stats = client.stats()
    assert server.requests == 1
    assert stats.requests == 1


def _cut(body: bytes, marker: bytes, extra: int) -> bytes:
    """``body`` cut ``extra`` bytes after the start of ``marker``."""
    return body[: body.index(marker) + extra]


_UNICODE_BODY = task_body(q="tâche 東京", lat=-12.5)
_UNICODE_BODY_RAW = json.dumps(json.loads(_UNICODE_BODY), ensure_ascii=False).encode()


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(_cut(task_body(), b'"status"', 3), id="inside a key"),
        pytest.param(_cut(task_body(), b"156", 2), id="inside an integer"),
        pytest.param(_cut(task_body(), b"true", 2), id="inside a literal"),
        pytest.param(_cut(task_body(), b"2024", 4), id="inside a string"),
        pytest.param(_cut(task_body(), b'"status": {', 11), id="after an opening brace"),
        pytest.param(
            _cut(_UNICODE_BODY, b"-12.5", 1),
            id="after a minus sign",
        ),
        pytest.param(
            _cut(_UNICODE_BODY, b"-12.5", 4),
            id="after a decimal point",
        ),
        pytest.param(
            _cut(_UNICODE_BODY, b"\\u00e2", 4),
            id="inside a \\u escape",
        ),
        pytest.param(
            _cut(_UNICODE_BODY_RAW, "東".encode(), 2),
            id="inside a UTF-8 character",
        ),
    ],
)
async def test_body_cut_off_without_content_length_is_retried(cut: bytes) -> None:
    """The server closes the connection mid-JSON and never said how long the body was, so
    the transport sees a complete response: only the JSON shows it was cut off. The README
    promises that a body cut off is retried, wherever the cut falls."""
    server = RawServer([])
    server.behaviours = [
        answer(server, cut, close_delimited=True),
        answer(server, task_body(), close_delimited=True),
    ]
    async with server, fast_client(server.base_url) as client:
        task = await client.get_task("c5e29d2aba8b77cdc56391e7405302de")
        stats = client.stats()
    assert task.total_results == 156
    assert server.requests == 2
    assert stats.retries == 1


async def test_close_delimited_complete_body_is_a_task() -> None:
    server = RawServer([])
    server.behaviours = [answer(server, task_body(), close_delimited=True)]
    async with server, fast_client(server.base_url) as client:
        task = await client.get_task("c5e29d2aba8b77cdc56391e7405302de")
    assert task.total_results == 156
    assert server.requests == 1


# -- redirects: never followed ------------------------------------------------------------


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"], ids=["other host", "other port"])
async def test_redirect_elsewhere_is_not_followed(api: SimulatedTaskAPI, host: str) -> None:
    async with SimulatedTaskAPI(rate_limit=None, api_key=SECRET) as other:
        target_hash = other.add_task(DONE)
        port = other.base_url.rsplit(":", 1)[1]
        location = f"http://{host}:{port}/tasks/{target_hash}"
        task_hash = api.add_task(DONE)
        api.inject(Fault.redirect(location, status=307), times=None)
        async with fast_client(api.base_url) as client:
            with pytest.raises(APIError, match="redirect") as info:
                await client.get_task(task_hash)
            stats = client.stats()
        assert other.stats.requests == 0
    assert info.value.status == 307
    assert location in str(info.value)
    assert api.stats.requests == 1
    assert stats.requests == 1


# -- a watch through every transient fault ------------------------------------------------


async def test_one_watch_through_every_transient_fault(api: SimulatedTaskAPI) -> None:
    task_hash = api.add_task(progressing(results=12, done_at=0.6))
    faults = [
        Fault.status(500),
        Fault.status(502),
        Fault.status(503),
        Fault.status(504),
        Fault.rate_limited(0.01),
        Fault.drop(),
        Fault.truncated(),
        Fault.malformed(_JSON_START, "application/json"),
        Fault.delay(0.3),
        Fault.slow_drip(0.3, 3),
        Fault.hang(),
    ]
    for fault in faults:
        api.inject(fault, task_hash=task_hash)
    # One poll meets them all in a row (the retries allow it), later polls meet none.
    async with fast_client(api.base_url, timeout=0.2, max_retries=len(faults)) as client:
        snapshots = [t async for t in client.watch(task_hash, min_interval=0.02, max_interval=0.05)]
        stats = client.stats()
    await assert_nothing_left(api)
    assert [t.is_done for t in snapshots].count(True) == 1
    assert snapshots[-1].is_done
    assert snapshots[-1].total_results == 12
    assert api.stats.faults_injected == len(faults)
    assert api.stats.faults_by_kind["status"] == 4
    assert stats.server_errors == 4
    assert stats.rate_limited == 1
    # aiohttp resent the dropped request by itself, and that resend met the truncated body;
    # then the delay, the drip and the hang met the per-attempt timeout.
    assert stats.transport_errors == 4
    assert stats.retries == len(faults) - 1
    assert stats.requests == api.stats.requests - 1


# -- the simulator's random faults (used by the soak) -------------------------------------


async def fetch_statuses(api: SimulatedTaskAPI, task_hash: str, n: int) -> list[int]:
    """``n`` plain GETs, one at a time: the status of each (0 when the connection failed)."""
    statuses = []
    headers = {"Authorization": f"Token {api.api_key}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        for _ in range(n):
            try:
                async with session.get(f"{api.base_url}/tasks/{task_hash}", headers=headers) as r:
                    await r.read()
                    statuses.append(r.status)
            except aiohttp.ClientError:
                statuses.append(0)
    return statuses


async def test_random_faults_are_reproducible_and_counted() -> None:
    runs = []
    for _ in range(2):
        async with SimulatedTaskAPI(rate_limit=None, seed=1) as sim:
            task_hash = sim.add_task(DONE)
            sim.inject_randomly(
                [Fault.status(503), Fault.status(429)], weights=[3, 1], probability=0.3, seed=42
            )
            runs.append((await fetch_statuses(sim, task_hash, 200), sim.stats))
    (first, stats), (second, _) = runs
    assert first == second  # same seed, same order of requests: the same faults
    assert stats.faults_injected == stats.random_faults == first.count(503) + first.count(429)
    assert stats.faults_by_kind == {"status": stats.faults_injected}
    assert 0.2 < stats.faults_injected / 200 < 0.4
    assert first.count(503) > first.count(429) > 0
    assert stats.requests == 200


async def test_random_faults_never_hit_other_hashes_or_fifo_faults(api: SimulatedTaskAPI) -> None:
    target, other = api.add_task(DONE), api.add_task(DONE)
    api.inject_randomly([Fault.status(500)], probability=1.0, task_hash=target, seed=1)
    api.inject(Fault.status(404), task_hash=target, times=2)  # inject() goes first
    assert await fetch_statuses(api, target, 4) == [404, 404, 500, 500]
    assert await fetch_statuses(api, other, 3) == [200, 200, 200]
    assert api.stats.random_faults == 2
    assert api.stats.faults_by_kind == {"status": 4}
    api.clear_faults()  # stops the random faults too
    assert await fetch_statuses(api, target, 2) == [200, 200]
    api.inject_randomly([Fault.status(500)], probability=0.0)
    assert await fetch_statuses(api, target, 2) == [200, 200]


@pytest.mark.parametrize(
    ("faults", "options"),
    [
        ([Fault.drop()], {"probability": 1.5}),
        ([Fault.drop()], {"probability": -0.1}),
        ([], {"probability": 0.5}),
        ([Fault.drop()], {"probability": 0.5, "weights": [1, 2]}),
        ([Fault.drop()], {"probability": 0.5, "weights": [0]}),
        ([Fault.drop()], {"probability": 0.5, "weights": [-1]}),
    ],
)
def test_random_faults_refuse_bad_settings(faults: list[Fault], options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"probability|faults|weights"):
        SimulatedTaskAPI().inject_randomly(faults, **options)


@pytest.mark.skipif(not hasattr(select, "POLLRDHUP"), reason="Linux poll(2) shows a peer close")
async def test_a_connection_the_client_has_closed_is_not_counted_as_held() -> None:
    # The server can read a new connection's request before an old connection's end, which
    # the client closed just before: the peak counts what the client holds, not that one.
    accepted: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()
    server = await asyncio.start_server(
        lambda _reader, writer: accepted.put_nowait(writer), "127.0.0.1", 0
    )
    async with server:
        port = server.sockets[0].getsockname()[1]
        held = socket.create_connection(("127.0.0.1", port))
        dropped = socket.create_connection(("127.0.0.1", port))
        ports = {held.getsockname()[1]: "held", dropped.getsockname()[1]: "dropped"}
        writers = {}
        for _ in range(2):
            writer = await accepted.get()
            writers[ports[writer.get_extra_info("peername")[1]]] = writer
        assert not peer_hung_up(writers["held"].transport)
        assert not peer_hung_up(writers["dropped"].transport)
        dropped.close()  # nothing awaited from here on: the server has not read this end
        assert peer_hung_up(writers["dropped"].transport)
        assert not peer_hung_up(writers["held"].transport)
        held.close()
        for writer in writers.values():
            writer.close()
            await writer.wait_closed()
    assert peer_hung_up(writers["held"].transport)  # and one closing here


async def test_connections_are_counted_and_tasks_can_be_removed(api: SimulatedTaskAPI) -> None:
    task_hash = api.add_task(DONE)
    async with fast_client(api.base_url) as client:
        await asyncio.gather(*(client.get_task(task_hash) for _ in range(8)))
        assert 1 <= api.stats.open_connections <= 8
        assert api.stats.peak_connections >= api.stats.open_connections
        api.remove_task(task_hash)
        with pytest.raises(NotFoundError):
            await client.get_task(task_hash)
        api.add_task(DONE, task_hash=task_hash)  # the hash may be used again
        assert (await client.get_task(task_hash)).hash_value == task_hash
    await assert_nothing_left(api)
    api.reset_stats()
    assert api.stats.peak_connections == 0
    with pytest.raises(KeyError):
        api.remove_task(task_hash + "0")
