"""watch_many against the simulated API over real sockets: hundreds of tasks, one budget,
a server-side rate limit with the documented headers and 429 bodies, errors and early exit."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from typing import TypedDict

import pytest
import redis.asyncio as redis_asyncio

from taskwatch import (
    AuthenticationError,
    Client,
    ClientClosedError,
    InvalidTaskHashError,
    NotFoundError,
    PermissionDeniedError,
    RateBudgetUnavailableError,
    ResponseFormatError,
    Task,
    TaskwatchError,
    TransportError,
    WatchTimeout,
)
from taskwatch.redis import RedisLimiter
from taskwatch.testing import Fault, ScriptStep, SimulatedTaskAPI

from .conftest import closed_port, snapshots_by_task


class _Intervals(TypedDict):
    min_interval: float
    max_interval: float


FAST: _Intervals = {"min_interval": 0.05, "max_interval": 0.3}


def quick_script(results: int, state: str = "completed") -> list[ScriptStep]:
    return [
        ScriptStep(at=0, status="pending"),
        ScriptStep(at=0.1, status="running", total_results=results // 2, total_pages=1),
        ScriptStep.done(0.3, state, total_results=results, total_pages=2),
    ]


def client_for(api: SimulatedTaskAPI, **kwargs: object) -> Client:
    options: dict[str, object] = {
        "requests_per_minute": None,
        "retry_initial_wait": 0.01,
        "retry_max_wait": 0.05,
    }
    options.update(kwargs)
    return Client(api.api_key, base_url=api.base_url, **options)  # type: ignore[arg-type]


def taskwatch_tasks() -> list[asyncio.Task[object]]:
    """Live asyncio tasks that run taskwatch code (a watch_many's feeder, the client's
    scheduler and its requests in flight)."""
    return [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "").startswith(("_Fleet.", "Scheduler."))
    ]


def assert_well_formed(snapshots: list[Task], hashes: list[str]) -> None:
    """Per task: snapshots in order, exactly one terminal snapshot, and it comes last; only
    the terminal snapshot may repeat the count before it."""
    for seen in snapshots_by_task(snapshots, hashes).values():
        counts = [t.total_results for t in seen]
        assert len(set(counts)) == len(counts) or seen[-1].total_results == seen[-2].total_results


@pytest.mark.slow
async def test_hundreds_of_tasks_within_a_server_rate_limit() -> None:
    async with SimulatedTaskAPI(speed=20, seed=1, rate_limit=1200, rate_window=60) as api:
        hashes = api.add_random_tasks(300, pending=(1, 20), running=(10, 40))
        async with client_for(api, requests_per_minute=6000) as client:
            snapshots = [t async for t in client.watch_many(hashes, min_interval=0.2)]
            stats = client.stats()
        server = api.stats
    print(f"300 tasks: {stats.requests} requests, {server.responses_429} 429s, {stats}")
    assert_well_formed(snapshots, hashes)
    assert stats.live_watches == 0
    assert stats.server_limit == 1200
    # The client capped itself at the server's limit as soon as it read X-RateLimit-Limit.
    assert stats.requests_per_minute == 1200
    assert server.responses_429 <= 3
    assert server.peak_in_flight <= 100  # aiohttp's pool, not one connection per task


async def test_client_budget_paces_every_watch() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        hashes = [api.add_task(quick_script(10)) for _ in range(20)]
        started = asyncio.get_running_loop().time()
        async with client_for(api, requests_per_minute=1200) as client:  # 20/s
            snapshots = [t async for t in client.watch_many(hashes, **FAST)]
            requests = client.stats().requests
        elapsed = asyncio.get_running_loop().time() - started
    assert_well_formed(snapshots, hashes)
    # requests beyond the one-second burst needed at least (n - 20) / 20 seconds
    assert elapsed >= (requests - 20) / 20 * 0.9


async def test_429_storm_pauses_every_watcher() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        hashes = [api.add_task(quick_script(5)) for _ in range(30)]
        api.inject(Fault.rate_limited(retry_after="0.5"), times=1)
        async with client_for(api) as client:
            snapshots = [t async for t in client.watch_many(hashes, **FAST)]
            stats = client.stats()
        server = api.stats
    assert_well_formed(snapshots, hashes)
    assert stats.rate_limited == 1  # one 429, not a storm: the pause held the others back
    assert server.responses_429 == 1


async def test_duplicates_are_watched_once() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        one = api.add_task(quick_script(3))
        two = api.add_task(quick_script(4))
        async with client_for(api) as client:
            snapshots = [t async for t in client.watch_many([one, two, one, two, one], **FAST)]
    done = Counter(t.hash_value for t in snapshots if t.is_done)
    assert done == {one: 1, two: 1}


async def test_async_iterable_source_starts_watches_as_hashes_arrive() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        hashes = [api.add_task(quick_script(n + 1)) for n in range(5)]
        first_seen: dict[str, float] = {}
        loop = asyncio.get_running_loop()

        async def arriving() -> AsyncIterator[str]:
            for task_hash in [*hashes, hashes[0]]:
                yield task_hash
                await asyncio.sleep(0.1)

        async with client_for(api) as client:
            snapshots = []
            async for task in client.watch_many(arriving(), **FAST):
                snapshots.append(task)
                first_seen.setdefault(task.hash_value, loop.time())
    assert_well_formed(snapshots, hashes)
    order = sorted(first_seen, key=first_seen.__getitem__)
    assert order == hashes


async def test_permanent_error_raises_and_stops_everything() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        slow = [
            api.add_task([ScriptStep(at=0, status="running", total_results=1)]) for _ in range(5)
        ]
        async with client_for(api) as client:
            with pytest.raises(NotFoundError) as info:
                async for _ in client.watch_many([*slow, "0" * 32], **FAST):
                    pass
            assert client.stats().live_watches == 0
            assert taskwatch_tasks() == []
    assert info.value.task_hash == "0" * 32
    assert all(t is asyncio.current_task() for t in asyncio.all_tasks())


async def test_on_error_keeps_the_others_going() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        good = [api.add_task(quick_script(7)) for _ in range(3)]
        failures: dict[str, TaskwatchError] = {}
        async with client_for(api) as client:
            snapshots = [
                t
                async for t in client.watch_many(
                    [*good, "f" * 32], on_error=failures.__setitem__, **FAST
                )
            ]
    assert_well_formed(snapshots, good)
    assert list(failures) == ["f" * 32]
    assert isinstance(failures["f" * 32], NotFoundError)


async def test_per_task_timeout_is_reported_for_that_task() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        stuck = api.add_task([ScriptStep(at=0, status="running", total_results=2)])
        fine = api.add_task(quick_script(2))
        failures: dict[str, TaskwatchError] = {}
        async with client_for(api) as client:
            snapshots = [
                t
                async for t in client.watch_many(
                    [stuck, fine], timeout=1.0, on_error=failures.__setitem__, **FAST
                )
            ]
    assert isinstance(failures[stuck], WatchTimeout)
    last = failures[stuck].last  # type: ignore[attr-defined]
    assert last is not None
    assert last.total_results == 2
    assert [t.hash_value for t in snapshots if t.is_done] == [fine]


async def test_invalid_hash_in_a_list_is_refused_before_any_request() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        good = api.add_task(quick_script(1))
        async with client_for(api) as client:
            with pytest.raises(InvalidTaskHashError):
                client.watch_many([good, "../me"])
        assert api.stats.requests == 0


async def test_breaking_out_early_cancels_every_watch() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        hashes = [
            api.add_task([ScriptStep(at=0, status="running", total_results=1)]) for _ in range(50)
        ]
        async with client_for(api) as client:
            async with contextlib.aclosing(client.watch_many(hashes, **FAST)) as snapshots:
                async for _ in snapshots:
                    break
            assert client.stats().live_watches == 0
            assert taskwatch_tasks() == []  # at once, before the server goes away
    assert all(t is asyncio.current_task() for t in asyncio.all_tasks()), asyncio.all_tasks()


async def test_closing_one_watch_many_leaves_the_others_on_the_client_watching() -> None:
    # Two watch_many calls and a watch on one client, sharing a hash: closing the first
    # stops its own watches only; the others still get every snapshot, up to the terminal.
    async with SimulatedTaskAPI(rate_limit=None) as api:
        shared = api.add_task(quick_script(3))
        own = api.add_task(quick_script(3))
        other = api.add_task(quick_script(3))
        async with client_for(api) as client:
            first = client.watch_many([shared, own], **FAST)
            second = client.watch_many([shared, other], **FAST)
            single = client.watch(own, **FAST)
            async with (
                contextlib.aclosing(first),
                contextlib.aclosing(second),
                contextlib.aclosing(single),
            ):
                await anext(first)
                rest = [await anext(second)]
                await anext(single)
                assert client.stats().live_watches == 5
                await first.aclose()
                assert client.stats().live_watches == 3  # second's two and the single one
                rest += [t async for t in second]
                tail = [t async for t in single]
            assert client.stats().live_watches == 0
    done = Counter(t.hash_value for t in rest if t.is_done)
    assert done == {shared: 1, other: 1}
    assert tail[-1].is_done


async def test_cancelling_the_consumer_cancels_every_watch() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        hashes = [
            api.add_task([ScriptStep(at=0, status="running", total_results=1)]) for _ in range(50)
        ]
        async with client_for(api) as client:
            first = asyncio.Event()

            async def consume() -> None:
                async for _ in client.watch_many(hashes, **FAST):
                    first.set()

            job = asyncio.ensure_future(consume())
            await first.wait()
            # No asyncio task per watched hash: the scheduler's loop, and requests in flight.
            running = taskwatch_tasks()
            requests = [
                t for t in running if "_request" in getattr(t.get_coro(), "__qualname__", "")
            ]
            assert len(running) - len(requests) == 1
            assert len(requests) <= 50  # one request at a time per hash, at most
            job.cancel()
            with pytest.raises(asyncio.CancelledError):
                await job
            assert client.stats().live_watches == 0
            assert taskwatch_tasks() == []  # at once, before the server goes away
    assert all(t is asyncio.current_task() for t in asyncio.all_tasks()), asyncio.all_tasks()


async def test_a_bug_in_the_key_function_propagates() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        task_hash = api.add_task(quick_script(1))

        def broken_key(task: Task) -> object:
            raise ZeroDivisionError("bug")

        async with client_for(api) as client:
            with pytest.raises(ZeroDivisionError):
                async for _ in client.watch_many([task_hash], key=broken_key, **FAST):
                    pass


async def test_transient_faults_do_not_lose_terminal_snapshots() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        hashes = [api.add_task(quick_script(n)) for n in range(20)]
        api.inject(Fault.status(503), times=10)
        api.inject(Fault.truncated(), times=5)
        api.inject(Fault.status(502), times=5, task_hash=hashes[0])
        async with client_for(api, max_retries=10) as client:
            snapshots = [t async for t in client.watch_many(hashes, **FAST)]
            stats = client.stats()
    assert_well_formed(snapshots, hashes)
    assert stats.retries >= 20


def test_a_single_string_is_refused() -> None:
    client = Client("k", base_url="http://127.0.0.1:1/v1")
    with pytest.raises(TypeError, match="not one str"):
        client.watch_many("c5e29d2aba8b77cdc56391e7405302de")


# -- every per-task error carries its task_hash ---------------------------------------------


@contextlib.asynccontextmanager
async def failing_setup(kind: str) -> AsyncIterator[tuple[Client, list[str], type[TaskwatchError]]]:
    """A client and two hashes whose watches fail with one kind of error each."""
    async with contextlib.AsyncExitStack() as stack:
        api = await stack.enter_async_context(SimulatedTaskAPI(rate_limit=None))
        running = [ScriptStep(at=0, status="running", total_results=1)]
        hashes = [api.add_task(running), api.add_task(running)]
        options: dict[str, object] = {"max_retries": 1}
        expected: type[TaskwatchError]
        if kind == "not found":
            hashes = ["0" * 32, "1" * 32]
            expected = NotFoundError
        elif kind == "refused key":
            options["api_key"] = "not-the-key"
            expected = AuthenticationError
        elif kind == "forbidden":
            api.inject(Fault.status(403), times=None)
            expected = PermissionDeniedError
        elif kind == "not a task":
            api.inject(Fault.status(200, b"<html>"), times=None)
            expected = ResponseFormatError
        elif kind == "no answer":
            options["base_url"] = f"http://127.0.0.1:{closed_port()}/v1"
            expected = TransportError
        elif kind == "budget unavailable":
            dead = redis_asyncio.Redis(host="127.0.0.1", port=closed_port())
            stack.push_async_callback(dead.aclose)
            options["limiter"] = RedisLimiter(dead, api_key=api.api_key)
            expected = RateBudgetUnavailableError
        else:
            raise AssertionError(kind)
        key = options.pop("api_key", api.api_key)
        url = options.pop("base_url", api.base_url)
        settings = {"requests_per_minute": None, "retry_initial_wait": 0.0, **options}
        client = Client(key, base_url=url, **settings)  # type: ignore[arg-type]
        await stack.enter_async_context(client)
        yield client, hashes, expected


ERROR_KINDS = [
    "not found",
    "refused key",
    "forbidden",
    "not a task",
    "no answer",
    "budget unavailable",
]


@pytest.mark.parametrize("kind", ERROR_KINDS)
async def test_every_per_task_error_carries_its_hash(kind: str) -> None:
    """Through watch_many (raised, and handed to on_error), wait and watch: the error names
    the hash it is about, whichever layer raised it (the limiter knows no hash)."""
    async with failing_setup(kind) as (client, hashes, expected):
        with pytest.raises(expected) as raised:
            async for _ in client.watch_many(hashes, **FAST):
                pass
        assert raised.value.task_hash in hashes
        failures: dict[str, TaskwatchError] = {}
        async for _ in client.watch_many(hashes, on_error=failures.__setitem__, **FAST):
            pass
        assert set(failures) == set(hashes)
        for task_hash, error in failures.items():
            assert isinstance(error, expected)
            assert error.task_hash == task_hash
        with pytest.raises(expected) as waited:
            await client.wait(hashes[0], **FAST)
        assert waited.value.task_hash == hashes[0]
        with pytest.raises(expected) as fetched:
            await client.get_task(hashes[1])
        assert fetched.value.task_hash == hashes[1]


async def test_a_client_closed_under_a_watch_names_the_hash() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        task_hash = api.add_task([ScriptStep(at=0, status="running", total_results=1)])
        failures: dict[str, TaskwatchError] = {}
        client = client_for(api)
        async with client:
            stream = client.watch_many([task_hash], on_error=failures.__setitem__, **FAST)
            async with contextlib.aclosing(stream) as snapshots:
                async for _ in snapshots:
                    await client.aclose()  # the watch's next poll meets a closed client
        with pytest.raises(ClientClosedError) as caught:
            await client.get_task(task_hash)
    assert caught.value.task_hash == task_hash
    assert isinstance(failures[task_hash], ClientClosedError)
    assert failures[task_hash].task_hash == task_hash


async def test_an_invalid_hash_from_an_async_source_names_itself() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        good = api.add_task(quick_script(1))
        failures: dict[str, TaskwatchError] = {}

        async def arriving() -> AsyncIterator[str]:
            yield "../me"
            yield good

        async with client_for(api) as client:
            async for _ in client.watch_many(arriving(), on_error=failures.__setitem__, **FAST):
                pass
    assert list(failures) == ["../me"]
    assert isinstance(failures["../me"], InvalidTaskHashError)
    assert failures["../me"].task_hash == "../me"
