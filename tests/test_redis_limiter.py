"""RedisLimiter against a real Redis server: one budget shared by several limiters (each with
its own connection, as separate processes would have), shared pauses, and what happens when
Redis cannot be consulted. The multi-process fleet test is in test_fleet.py."""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as redis_asyncio
import redis.exceptions

import taskwatch
from taskwatch import RateBudgetUnavailableError, RateLimiter, RateLimitInfo
from taskwatch.redis import RedisLimiter, budget_name
from taskwatch.testing import Fault, ScriptStep, SimulatedTaskAPI

from .conftest import REDIS_URL, SECRET, closed_port, fast_client, until

OTHER_KEY = "sk-another-key-0000"


@pytest.fixture
async def second_connection(redis_client: Any) -> AsyncIterator[Any]:
    """Another connection to the same Redis: a limiter on it stands for another process."""
    client = redis_asyncio.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
    yield client
    await client.aclose()


@pytest.fixture
async def unpause_redis(redis_client: Any) -> AsyncIterator[None]:
    """For tests that stall Redis with CLIENT PAUSE: always unpause afterwards."""
    yield
    await redis_client.execute_command("CLIENT", "UNPAUSE")


DONE = ScriptStep.done(0, "completed", total_results=3)


def limiter_on(connection: Any, prefix: str, **options: Any) -> RedisLimiter:
    return RedisLimiter(connection, api_key=SECRET, prefix=prefix, **options)


async def published(connection: Any, key: str, seconds: float = 3.0) -> bool:
    """True once ``key`` exists in Redis (polled every few ms), False after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not await connection.exists(key):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


async def acquire_n(limiter: RedisLimiter, n: int) -> None:
    for _ in range(n):
        await limiter.acquire()


# -- names ---------------------------------------------------------------------------------


def test_budget_name_is_a_digest_never_the_key() -> None:
    name = budget_name(SECRET)
    assert name == budget_name(SECRET)  # every process finds the same budget
    assert SECRET not in name
    assert name != budget_name(OTHER_KEY)
    assert name.startswith("taskwatch:{")
    assert name.endswith("}")
    assert len(name) == len("taskwatch:{}") + 32
    assert budget_name(SECRET, "fleet-a").startswith("fleet-a:{")


async def test_keys_and_values_in_redis_never_hold_the_key(
    redis_client: Any, redis_prefix: str
) -> None:
    limiter = limiter_on(redis_client, redis_prefix)
    await limiter.acquire()
    await limiter.pause(5.0)
    keys = sorted([key async for key in redis_client.scan_iter(match=f"{redis_prefix}:*")])
    assert [key.decode() for key in keys] == [f"{limiter.name}:next", f"{limiter.name}:paused"]
    for key in keys:
        assert SECRET.encode() not in key
        assert SECRET.encode() not in await redis_client.get(key)
        assert 0 < await redis_client.pttl(key) <= 6_000  # idle keys expire on their own
    assert SECRET not in repr(limiter)
    assert limiter.name in repr(limiter)


# -- one budget for many limiters ----------------------------------------------------------


async def test_two_limiters_share_one_pace(
    redis_client: Any, second_connection: Any, redis_prefix: str
) -> None:
    """Two limiters, each with its own connection, at 1200/min (20/s) with no burst: 30
    grants between them take at least 29 intervals, as one limiter's would."""
    one = limiter_on(redis_client, redis_prefix, requests_per_minute=1200, burst=1)
    two = limiter_on(second_connection, redis_prefix, requests_per_minute=1200, burst=1)
    started = time.monotonic()
    await asyncio.gather(acquire_n(one, 15), acquire_n(two, 15))
    assert time.monotonic() - started >= 29 / 20 - 0.01


async def test_different_keys_have_different_budgets(redis_client: Any, redis_prefix: str) -> None:
    ours = limiter_on(redis_client, redis_prefix, requests_per_minute=60, burst=1)
    theirs = RedisLimiter(
        redis_client, api_key=OTHER_KEY, prefix=redis_prefix, requests_per_minute=60, burst=1
    )
    assert ours.name != theirs.name
    await ours.acquire()
    # Our budget is spent for a second; the other key's is untouched.
    await asyncio.wait_for(theirs.acquire(), 0.5)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(ours.acquire(), 0.5)


async def test_many_callers_in_one_process_are_served_in_order(
    redis_client: Any, redis_prefix: str
) -> None:
    limiter = limiter_on(redis_client, redis_prefix, requests_per_minute=3000, burst=1)
    order: list[int] = []

    async def caller(i: int) -> None:
        await limiter.acquire()
        order.append(i)

    tasks = []
    for i in range(12):
        tasks.append(asyncio.create_task(caller(i)))
        await asyncio.sleep(0)  # each caller queues before the next one starts
    assert limiter.waiting > 0
    await asyncio.gather(*tasks)
    assert order == list(range(12))
    assert limiter.waiting == 0


async def test_a_cancelled_waiter_holds_no_part_of_the_budget(
    redis_client: Any, redis_prefix: str
) -> None:
    limiter = limiter_on(redis_client, redis_prefix, requests_per_minute=60, burst=1)
    await limiter.acquire()
    next_slot = await redis_client.get(f"{limiter.name}:next")
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.1)
    assert limiter.waiting == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limiter.waiting == 0
    assert await redis_client.get(f"{limiter.name}:next") == next_slot  # nothing reserved


# -- shared pauses -------------------------------------------------------------------------


async def test_a_429_in_one_process_pauses_the_other(
    redis_client: Any, second_connection: Any, redis_prefix: str
) -> None:
    ours = limiter_on(redis_client, redis_prefix, requests_per_minute=None)
    theirs = limiter_on(second_connection, redis_prefix, requests_per_minute=None)
    await theirs.acquire()  # no cap, no pause: immediate
    await ours.pause(0.6)  # what the Client awaits on a 429
    assert ours.paused_for() > 0.4
    started = time.monotonic()
    await theirs.acquire()
    assert time.monotonic() - started >= 0.5
    assert theirs.paused_for() == 0.0  # the pause is over once granted


async def test_remaining_zero_pauses_the_fleet_until_reset(
    redis_client: Any, second_connection: Any, redis_prefix: str
) -> None:
    ours = limiter_on(redis_client, redis_prefix, requests_per_minute=None)
    theirs = limiter_on(second_connection, redis_prefix, requests_per_minute=None)
    publishing = ours.observe(RateLimitInfo(limit=90, remaining=0, reset=time.time() + 0.8))
    assert ours.paused_for() > 0.6
    assert publishing is not None  # the Client awaits it before handling the response
    await publishing
    started = time.monotonic()
    await theirs.acquire()
    assert time.monotonic() - started >= 0.5
    assert ours.observe(RateLimitInfo(limit=90, remaining=5, reset=time.time() + 60)) is None


@pytest.mark.parametrize("key", ["paused", "next"])
async def test_an_absurd_wait_stored_on_redis_holds_nobody(
    redis_client: Any, redis_prefix: str, key: str
) -> None:
    """A pause end or a next slot years ahead on Redis (a foreign value, or the clock of a
    failed-over server far behind) is absurd: the limiter grants at once, as if none."""
    limiter = limiter_on(redis_client, redis_prefix, requests_per_minute=600)
    seconds, micros = await redis_client.time()
    years_ahead = (seconds + 86_400 * 365 * 10) * 1_000_000 + micros
    await redis_client.set(f"{limiter.name}:{key}", str(years_ahead))
    started = time.monotonic()
    await asyncio.wait_for(limiter.acquire(), 2.0)
    assert time.monotonic() - started < 1.0
    assert limiter.paused_for() == 0.0


async def test_a_sane_pause_stored_on_redis_still_holds(
    redis_client: Any, redis_prefix: str
) -> None:
    limiter = limiter_on(redis_client, redis_prefix, requests_per_minute=None)
    seconds, micros = await redis_client.time()
    await redis_client.set(
        f"{limiter.name}:paused", str((seconds + 1) * 1_000_000 + micros), px=5_000
    )
    started = time.monotonic()
    await limiter.acquire()
    assert time.monotonic() - started >= 0.8


async def test_a_lower_server_limit_lowers_the_pace(redis_client: Any, redis_prefix: str) -> None:
    limiter = limiter_on(redis_client, redis_prefix, requests_per_minute=1200)
    limiter.observe(RateLimitInfo(limit=600, remaining=10, reset=None))
    assert limiter.requests_per_minute == 600
    assert limiter.server_limit == 600
    limiter.observe(RateLimitInfo(limit=6000, remaining=10, reset=None))
    assert limiter.requests_per_minute == 1200  # never above the configured cap
    limiter.observe(None)
    assert limiter.requests_per_minute == 1200


async def test_a_client_on_a_redis_budget_shares_its_429_pause(
    redis_client: Any, second_connection: Any, redis_prefix: str
) -> None:
    async with SimulatedTaskAPI(rate_limit=None, api_key=SECRET) as sim:
        task_hash = sim.add_task([DONE])
        sim.inject(Fault.rate_limited(1))
        ours = limiter_on(redis_client, redis_prefix, requests_per_minute=None)
        theirs = limiter_on(second_connection, redis_prefix, requests_per_minute=None)
        async with (
            fast_client(sim.base_url, limiter=ours, retry_initial_wait=0.01) as first,
            fast_client(sim.base_url, limiter=theirs) as second,
        ):
            fetch = asyncio.create_task(first.get_task(task_hash))
            await until(lambda: sim.stats.responses_429 == 1)
            await asyncio.sleep(0.05)  # the 429 has been handled: its pause is on Redis
            started = time.monotonic()
            task = await second.get_task(task_hash)  # another process: held by the pause
            assert time.monotonic() - started >= 0.7
            assert task.total_results == 3
            assert (await fetch).total_results == 3
        assert first.stats().rate_limited == 1
        assert second.stats().rate_limited == 0
        assert sim.stats.responses_429 == 1


async def test_client_stats_read_the_redis_budget(redis_client: Any, redis_prefix: str) -> None:
    async with SimulatedTaskAPI(api_key=SECRET) as sim:  # the documented 90 a minute
        task_hash = sim.add_task([DONE])
        limiter = limiter_on(redis_client, redis_prefix, requests_per_minute=600)
        async with fast_client(sim.base_url, limiter=limiter) as client:
            await client.get_task(task_hash)
            stats = client.stats()
    assert stats.requests == 1
    assert stats.server_limit == 90
    assert stats.requests_per_minute == 90  # lowered to the server's limit
    assert stats.waiting == 0
    assert stats.paused_for == 0.0


# -- when Redis cannot be consulted ----------------------------------------------------------


async def test_unreachable_redis_is_a_clear_error_and_nothing_is_sent(
    api: SimulatedTaskAPI,
) -> None:
    task_hash = api.add_task([DONE])
    dead = redis_asyncio.Redis(host="127.0.0.1", port=closed_port(), socket_connect_timeout=1)
    try:
        limiter = RedisLimiter(dead, api_key=SECRET)
        async with fast_client(api.base_url, limiter=limiter) as client:
            with pytest.raises(RateBudgetUnavailableError) as caught:
                await client.get_task(task_hash)
            assert client.stats().requests == 0
    finally:
        await dead.aclose()
    assert api.stats.requests == 0
    message = str(caught.value)
    assert limiter.name in message
    assert "could not be consulted" in message
    assert "request was not sent" in message
    assert SECRET not in message
    assert isinstance(caught.value.__cause__, redis.exceptions.ConnectionError)
    assert isinstance(caught.value, taskwatch.TaskwatchError)


@pytest.mark.usefixtures("unpause_redis")
async def test_a_stalled_redis_times_out(redis_client: Any, redis_prefix: str) -> None:
    limiter = limiter_on(redis_client, redis_prefix, timeout=0.2)
    await redis_client.execute_command("CLIENT", "PAUSE", 5000, "WRITE")  # scripts stall
    started = time.monotonic()
    with pytest.raises(RateBudgetUnavailableError) as caught:
        await limiter.acquire()
    assert time.monotonic() - started < 2
    assert isinstance(caught.value.__cause__, asyncio.TimeoutError)
    assert limiter.waiting == 0


@pytest.mark.usefixtures("unpause_redis")
async def test_fallback_while_redis_is_away_then_back(
    redis_client: Any, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    fallback = RateLimiter(None)
    limiter = limiter_on(
        redis_client, redis_prefix, timeout=0.2, fallback=fallback, recheck_after=0.3
    )
    await redis_client.execute_command("CLIENT", "PAUSE", 5000, "WRITE")
    with caplog.at_level(logging.INFO, logger="taskwatch"):
        await limiter.acquire()  # times out on Redis, then granted by the fallback
        assert limiter.on_fallback
        started = time.monotonic()
        for _ in range(20):
            await limiter.acquire()  # straight to the fallback: Redis is not asked again yet
        assert time.monotonic() - started < 0.2
        await limiter.pause(1.0)  # the fallback is paused too; Redis hears of it later
        assert fallback.paused_for() > 0.9
        fallback_pause = limiter.paused_for()
        assert fallback_pause > 0.9
        await redis_client.execute_command("CLIENT", "UNPAUSE")
        await asyncio.sleep(0.35)
        await limiter.acquire()  # Redis again: the pending pause is published and waited
        assert not limiter.on_fallback
    assert time.monotonic() - started >= 1.0
    assert await redis_client.exists(f"{limiter.name}:paused") == 1
    away = [r for r in caplog.records if "could not be consulted" in r.getMessage()]
    back = [r for r in caplog.records if "answers again" in r.getMessage()]
    assert len(away) == 1
    assert away[0].levelno == logging.WARNING
    assert "TimeoutError" in away[0].getMessage()
    assert len(back) == 1
    assert all(SECRET not in r.getMessage() for r in caplog.records)


@pytest.mark.usefixtures("unpause_redis")
async def test_a_pause_that_cannot_reach_redis_goes_with_the_next_ask(
    redis_client: Any, second_connection: Any, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    ours = limiter_on(redis_client, redis_prefix, requests_per_minute=None, timeout=0.2)
    theirs = limiter_on(second_connection, redis_prefix, requests_per_minute=None)
    await redis_client.execute_command("CLIENT", "PAUSE", 5000, "WRITE")  # scripts stall
    with caplog.at_level(logging.INFO, logger="taskwatch"):
        await ours.pause(2.0)  # never raises: the 429 itself is what the caller sees
    assert ours.paused_for() > 1.5
    assert any("could not tell Redis of a pause yet" in r.getMessage() for r in caplog.records)
    await redis_client.execute_command("CLIENT", "UNPAUSE")
    await asyncio.wait_for(theirs.acquire(), 0.5)  # not told yet: the pause never arrived
    ours_next = asyncio.create_task(ours.acquire())  # our next ask carries the pause
    await until(lambda: ours.waiting == 1)
    assert await published(redis_client, f"{ours.name}:paused")  # that ask's script call
    started = time.monotonic()
    await theirs.acquire()
    assert time.monotonic() - started >= 1.0  # held by the pause, now on Redis
    await ours_next


# -- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("requests_per_minute", 0, "requests_per_minute must be positive"),
        ("requests_per_minute", float("inf"), "requests_per_minute must be positive"),
        ("requests_per_minute", float("nan"), "requests_per_minute must be positive"),
        ("burst", 0.5, "burst must be at least 1"),
        ("timeout", 0, "timeout must be a positive"),
        ("recheck_after", -1, "recheck_after must be a positive"),
        ("prefix", "", "prefix must be non-empty"),
        ("prefix", "a{b}", "without braces"),
    ],
)
async def test_settings_that_cannot_work_are_refused(option: str, value: Any, message: str) -> None:
    connection = redis_asyncio.Redis()
    try:
        with pytest.raises(taskwatch.ConfigurationError, match=message):
            RedisLimiter(connection, api_key=SECRET, **{option: value})
    finally:
        await connection.aclose()


async def test_no_key_anywhere_is_a_configuration_error() -> None:
    connection = redis_asyncio.Redis()
    try:
        with pytest.raises(taskwatch.ConfigurationError, match="LOBSTR_TOKEN"):
            RedisLimiter(connection)
    finally:
        await connection.aclose()


async def test_the_key_comes_from_the_environment_like_the_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOBSTR_TOKEN", SECRET)
    connection = redis_asyncio.Redis()
    try:
        assert RedisLimiter(connection).name == budget_name(SECRET)
    finally:
        await connection.aclose()


async def test_a_redis_limiter_is_a_limiter() -> None:
    connection = redis_asyncio.Redis()
    try:
        assert isinstance(RedisLimiter(connection, api_key=SECRET), taskwatch.Limiter)
    finally:
        await connection.aclose()


def test_taskwatch_imports_without_redis_and_the_extra_is_named() -> None:
    code = (
        "import sys\n"
        "sys.modules['redis'] = None  # as if redis-py were not installed\n"
        "import taskwatch\n"
        "try:\n"
        "    import taskwatch.redis\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.strip()
        == "taskwatch.redis needs redis-py: pip install 'lobstr-taskwatch[redis]'"
    )


def test_a_limiter_reused_in_a_second_asyncio_run_queues_on_the_new_loop() -> None:
    """The limiter's queue of callers belongs to one event loop; a second asyncio.run()
    (with the Redis connections given back in between) queues afresh on its own loop."""
    prefix = f"taskwatch-test-{uuid.uuid4().hex[:12]}"
    box: dict[str, Any] = {}

    async def first() -> None:
        box["redis"] = connection = redis_asyncio.Redis.from_url(REDIS_URL, socket_timeout=5)
        try:
            await connection.ping()
        except (redis.exceptions.RedisError, OSError):
            await connection.aclose()
            pytest.skip(f"no Redis server answers at {REDIS_URL}")
        box["limiter"] = limiter_on(connection, prefix, requests_per_minute=6000)
        await asyncio.gather(*(box["limiter"].acquire() for _ in range(5)))  # they queue
        await connection.connection_pool.disconnect()

    async def second() -> None:
        connection = box["redis"]
        try:
            await asyncio.gather(*(box["limiter"].acquire() for _ in range(5)))
            assert box["limiter"].waiting == 0
        finally:
            keys = [key async for key in connection.scan_iter(match=f"{prefix}:*")]
            if keys:
                await connection.delete(*keys)
            await connection.aclose()

    asyncio.run(first())
    asyncio.run(second())


# -- Redis losing its state: a restart empty, a failover, an eviction ------------------------


class PrivateRedis:
    """A redis-server of this test's own, without persistence, that it can restart empty."""

    def __init__(self) -> None:
        self.port = closed_port()
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        probe = redis_asyncio.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
        try:
            for _ in range(200):
                try:
                    await probe.ping()
                    return
                except (redis.exceptions.RedisError, OSError):
                    await asyncio.sleep(0.02)
            raise AssertionError("the private redis-server did not start")
        finally:
            await probe.aclose()

    async def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            await asyncio.wait_for(self._process.wait(), 10)
            self._process = None

    async def restart(self) -> None:
        """Stop and start again: every key is gone."""
        await self.stop()
        await self.start()

    def connect(self) -> Any:
        """A client that reconnects once after the server went away (as a failover needs)."""
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        return redis_asyncio.Redis(
            host="127.0.0.1",
            port=self.port,
            socket_connect_timeout=1,
            socket_timeout=2,
            retry=Retry(NoBackoff(), 3),
            retry_on_error=[redis.exceptions.ConnectionError],
        )


@pytest.fixture
async def private_redis() -> AsyncIterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server on PATH")
    server = PrivateRedis()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.mark.parametrize("loss", ["restart empty", "eviction"])
async def test_a_pause_this_process_knows_survives_redis_losing_it(
    private_redis: PrivateRedis, loss: str
) -> None:
    """A 429 with Retry-After: 2 is published; then Redis loses its state. The pause still
    holds this process (the next request waits for it), and Redis has it again once it
    answers, so other processes are held as well."""
    connection = private_redis.connect()
    other = private_redis.connect()
    try:
        limiter = limiter_on(connection, "lost", requests_per_minute=None)
        theirs = limiter_on(other, "lost", requests_per_minute=None)
        async with SimulatedTaskAPI(rate_limit=None, api_key=SECRET) as sim:
            first, second = sim.add_task([DONE]), sim.add_task([DONE])
            sim.inject(Fault.rate_limited(2), times=1, task_hash=first)
            async with fast_client(
                sim.base_url, limiter=limiter, retry_initial_wait=0.01
            ) as client:
                retrying = asyncio.create_task(client.get_task(first))
                await until(lambda: client.stats().rate_limited == 1)
                await until(lambda: limiter.paused_for() > 0)
                hit = time.monotonic()
                # The pause holds this process at once; Redis hears of it one script call
                # later (the client awaits that call, this test does not): wait for it, so
                # that the loss below comes after the publish, not during it.
                assert await published(connection, f"{limiter.name}:paused")
                if loss == "restart empty":
                    await private_redis.restart()
                else:
                    await connection.delete(f"{limiter.name}:paused")
                assert client.stats().paused_for > 1.5  # what the process knows
                await client.get_task(second)
                waited = time.monotonic() - hit
                await retrying
            requests = sim.stats.requests
        assert waited >= 1.8, waited  # held by the pause, not sent 0.05 s later
        assert requests == 3
        # Published again as soon as Redis answered: another process was held too.
        await limiter.pause(1.0)  # published, then lost again
        if loss == "restart empty":
            await private_redis.restart()
        else:
            await connection.delete(f"{limiter.name}:paused")
        ours = asyncio.create_task(limiter.acquire())  # the first ask after the loss
        await until(lambda: ours.done() or limiter.waiting == 1)
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await theirs.acquire()
        assert time.monotonic() - started >= 0.5
        await ours
    finally:
        await connection.aclose()
        await other.aclose()


# -- cancellation, when a library below swallows it -------------------------------------------


@pytest.mark.parametrize("how", ["watch_many", "wait"])
async def test_cancelling_watches_on_a_redis_budget_never_hangs(
    redis_client: Any, redis_prefix: str, how: str
) -> None:
    """redis-py's asyncio.wait_for (Python 3.11) can swallow a cancellation that lands as a
    send completes; the watch must end anyway. Cancelled at random moments, 300 times: each
    cancellation is over within 2 s and leaves nothing running."""
    rng = random.Random(13)
    running = [ScriptStep(at=0, status="running", total_results=1)]
    async with SimulatedTaskAPI(rate_limit=None, api_key=SECRET) as sim:
        hashes = [sim.add_task(running) for _ in range(20)]
        limiter = limiter_on(redis_client, redis_prefix, requests_per_minute=None)
        async with fast_client(sim.base_url, limiter=limiter) as client:

            async def consume() -> None:
                if how == "wait":
                    await client.wait(hashes[0], min_interval=0.001, max_interval=0.002)
                    return
                async for _ in client.watch_many(hashes, min_interval=0.001, max_interval=0.002):
                    pass

            for round_number in range(300):
                job = asyncio.ensure_future(consume())
                await asyncio.sleep(rng.uniform(0.0, 0.02))
                job.cancel()
                finished, _ = await asyncio.wait([job], timeout=2.0)
                assert finished, f"round {round_number}: the cancelled watch kept running"
                assert job.cancelled()
                assert client.stats().live_watches == 0
                assert limiter.waiting == 0
