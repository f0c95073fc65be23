"""The shared limiter on a fake clock: pacing, burst, FIFO fairness, pauses, server headers."""

from __future__ import annotations

import asyncio
import itertools
import time as time_module
from typing import Any

import aiohttp
import pytest

from taskwatch import Client, Limiter, RateLimiter
from taskwatch._protocol import MAX_SERVER_WAIT, RateLimitInfo

from .conftest import SECRET, FakeTime


def limiter_on(time: FakeTime, rpm: float | None = 60.0, **kwargs: float) -> RateLimiter:
    return RateLimiter(
        rpm, clock=time.clock, wall_clock=lambda: 1_000_000.0 + time.now, sleep=time.sleep, **kwargs
    )


async def grant_times(limiter: RateLimiter, time: FakeTime, count: int) -> list[float]:
    granted: list[tuple[int, float]] = []

    async def one(index: int) -> None:
        await limiter.acquire()
        granted.append((index, time.now))

    await asyncio.gather(*(one(i) for i in range(count)))
    return [at for _, at in sorted(granted)]


async def test_paces_at_the_configured_rate() -> None:
    time = FakeTime(start=0.0)
    limiter = limiter_on(time, rpm=60.0)  # one per second, burst of one
    times = await grant_times(limiter, time, 5)
    assert times == [0.0, 1.0, 2.0, 3.0, 4.0]


async def test_90_per_minute_allows_a_burst_of_about_one_second() -> None:
    time = FakeTime(start=0.0)
    limiter = limiter_on(time, rpm=90.0)
    times = await grant_times(limiter, time, 10)
    interval = 60 / 90
    # 1.5 tokens: the second request goes half an interval early, then the pace holds.
    assert times[0] == 0.0
    for k in range(1, 10):
        assert times[k] == pytest.approx((k - 0.5) * interval)


async def test_larger_burst_lets_that_many_go_at_once() -> None:
    time = FakeTime(start=0.0)
    limiter = limiter_on(time, rpm=60.0, burst=3)
    times = await grant_times(limiter, time, 5)
    assert times == [0.0, 0.0, 0.0, 1.0, 2.0]


async def test_grants_are_first_come_first_served() -> None:
    time = FakeTime(start=0.0)
    limiter = limiter_on(time, rpm=60.0)
    order: list[int] = []

    async def one(index: int) -> None:
        await limiter.acquire()
        order.append(index)

    await asyncio.gather(*(one(i) for i in range(20)))
    assert order == list(range(20))


async def test_each_waiter_sleeps_once_for_its_own_slot() -> None:
    time = FakeTime(start=0.0)
    limiter = limiter_on(time, rpm=60.0)
    await grant_times(limiter, time, 50)
    assert len(time.sleeps) == 49  # no herd of wake-ups: one sleep per waiting caller


async def test_no_cap_means_no_waiting() -> None:
    time = FakeTime(start=0.0)
    limiter = limiter_on(time, rpm=None)
    times = await grant_times(limiter, time, 100)
    assert set(times) == {0.0}
    assert time.sleeps == []


async def test_pause_holds_every_caller() -> None:
    time = FakeTime(start=0.0)
    limiter = limiter_on(time, rpm=None)
    limiter.pause(5.0)
    assert limiter.paused_for() == 5.0
    times = await grant_times(limiter, time, 3)
    assert times == [5.0, 5.0, 5.0]


async def test_pause_during_a_wait_requeues_behind_it() -> None:
    time = FakeTime(start=0.0)
    limiter = limiter_on(time, rpm=60.0)
    await limiter.acquire()  # t=0
    waiter = asyncio.ensure_future(limiter.acquire())  # asleep until its slot at t=1
    await asyncio.sleep(0)
    limiter.pause(10.0)  # a 429 arrives while it sleeps
    await waiter
    assert time.now >= 10.0


async def test_pause_is_capped() -> None:
    time = FakeTime(start=0.0)
    limiter = limiter_on(time)
    limiter.pause(10_000.0)
    assert limiter.paused_for() == MAX_SERVER_WAIT
    limiter.pause(-5)
    assert limiter.paused_for() == MAX_SERVER_WAIT


async def test_cancelled_waiter_gives_its_slot_back() -> None:
    time = FakeTime(start=0.0)
    limiter = limiter_on(time, rpm=60.0)
    await limiter.acquire()
    gate = asyncio.Event()

    async def blocked_sleep(seconds: float) -> None:
        await gate.wait()

    limiter._sleep = blocked_sleep
    waiter = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0)
    assert limiter.waiting == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limiter.waiting == 0
    limiter._sleep = time.sleep
    times = await grant_times(limiter, time, 1)
    assert times == [1.0]  # the cancelled caller's slot went to the next one


async def test_server_limit_lowers_the_pace() -> None:
    time = FakeTime(start=0.0)
    limiter = limiter_on(time, rpm=90.0)
    limiter.observe(RateLimitInfo(limit=30, remaining=29, reset=None))
    assert limiter.requests_per_minute == 30.0
    assert limiter.server_limit == 30
    limiter.observe(RateLimitInfo(limit=1000, remaining=999, reset=None))
    assert limiter.requests_per_minute == 90.0  # never above the configured cap


async def test_remaining_zero_pauses_until_reset() -> None:
    time = FakeTime(start=0.0)
    limiter = limiter_on(time, rpm=None)
    wall_now = 1_000_000.0
    limiter.observe(RateLimitInfo(limit=90, remaining=0, reset=wall_now + 12))
    assert limiter.paused_for() == pytest.approx(12.0)
    limiter2 = limiter_on(FakeTime(start=0.0), rpm=None)
    limiter2.observe(RateLimitInfo(limit=90, remaining=0, reset=wall_now - 5))  # already reset
    assert limiter2.paused_for() == 0.0
    limiter2.observe(None)
    assert limiter2.paused_for() == 0.0


@pytest.mark.parametrize(("rpm", "burst"), [(0, None), (-1, None), (60, 0.5)])
def test_bad_settings(rpm: float, burst: float | None) -> None:
    with pytest.raises(ValueError, match="must"):
        RateLimiter(rpm, burst=burst)


async def test_try_acquire_takes_only_a_free_slot() -> None:
    time = FakeTime(start=0.0)
    limiter = limiter_on(time, rpm=60.0)
    assert limiter.try_acquire() is True
    assert limiter.try_acquire() is False  # the next slot is a second away
    time.now = 1.0
    assert limiter.try_acquire() is True
    limiter.pause(5.0)
    time.now = 3.0
    assert limiter.try_acquire() is False  # paused
    unlimited = limiter_on(time, rpm=None)
    assert all(unlimited.try_acquire() for _ in range(100))
    unlimited.pause(1.0)
    assert unlimited.try_acquire() is False


async def test_try_acquire_and_acquire_share_one_queue() -> None:
    time = FakeTime(start=0.0)
    limiter = limiter_on(time, rpm=60.0)
    assert limiter.try_acquire()
    times = await grant_times(limiter, time, 2)
    assert times == [1.0, 2.0]
    assert limiter.try_acquire() is False


class CountingLimiter:
    """A Limiter of the test's own: counts what the client asks of it, never waits."""

    def __init__(self) -> None:
        self.acquired = 0
        self.observed: list[RateLimitInfo | None] = []
        self.pauses: list[float] = []

    def try_acquire(self) -> bool:
        self.acquired += 1
        return True

    async def acquire(self) -> None:
        raise AssertionError("try_acquire always grants a slot here")

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)

    def observe(self, info: RateLimitInfo | None) -> None:
        self.observed.append(info)

    @property
    def requests_per_minute(self) -> float | None:
        return 12.0

    @property
    def server_limit(self) -> int | None:
        return None

    @property
    def waiting(self) -> int:
        return 0

    def paused_for(self) -> float:
        return 0.0


async def test_a_client_uses_the_limiter_it_is_given() -> None:
    from taskwatch.testing import Fault, ScriptStep, SimulatedTaskAPI

    limiter = CountingLimiter()
    assert isinstance(limiter, Limiter)
    async with SimulatedTaskAPI(rate_limit=90) as api:
        task_hash = api.add_task([ScriptStep(at=0, status="completed", is_done=True)])
        api.inject(Fault.rate_limited(retry_after=0), times=1)
        async with Client(
            api.api_key, base_url=api.base_url, limiter=limiter, retry_initial_wait=0.0
        ) as client:
            assert client.limiter is limiter
            await client.get_task(task_hash)
            await client.wait(task_hash)
            stats = client.stats()
    assert limiter.acquired == 3  # the 429, its retry, and the watch's poll
    assert limiter.pauses == [0.0]  # the 429's Retry-After went to the limiter
    assert [info.limit for info in limiter.observed if info] == [90, 90, 90]
    assert stats.requests_per_minute == 12.0


# -- a stalled event loop, over real sockets ---------------------------------------------------


def most_in_any_window(times: list[float], seconds: float) -> int:
    """The largest number of ``times`` inside one window ``[t, t + seconds)``."""
    ordered = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(ordered):
        while ordered[first] <= at - seconds:
            first += 1
        most = max(most, last - first + 1)
    return most


async def test_slots_that_fell_due_in_a_stall_are_not_spent_at_once() -> None:
    """On a fake clock: 10 a second, burst 10, 40 callers; at t=1 the loop is blocked for
    2 s. Afterwards the bucket allows its burst, then its pace: never the slots it missed."""
    time = FakeTime(start=0.0)
    limiter = limiter_on(time, rpm=600.0)

    async def stall() -> None:
        await time.sleep(1.0)
        time.now += 2.0  # a synchronous call: the clock moves, nothing runs

    granted, _ = await asyncio.gather(grant_times(limiter, time, 40), stall())
    after = [at for at in granted if at >= 3.0]
    at_once = len([at for at in after if at < 3.0 + 1e-9])
    assert at_once == 10  # the burst, once
    gaps = [b - a for a, b in itertools.pairwise(after[at_once - 1 :])]
    assert gaps == pytest.approx([0.1] * len(gaps))  # then the pace
    assert most_in_any_window(granted, 1.0) <= 20


async def send_through_a_stall(limiter: Limiter) -> list[float]:
    """Send 40 requests through ``limiter`` while the loop is blocked for 2 s (a synchronous
    call) one second in; return when each request was sent."""
    from taskwatch.testing import ScriptStep, SimulatedTaskAPI

    sent: list[float] = []

    async def on_request_start(*_: object) -> None:
        sent.append(time_module.monotonic())

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    async with SimulatedTaskAPI(rate_limit=None, api_key=SECRET) as api:
        done = ScriptStep.done(0, "completed", total_results=1)
        hashes = [api.add_task([done]) for _ in range(40)]
        async with (
            aiohttp.ClientSession(trace_configs=[trace]) as session,
            Client(
                SECRET, base_url=api.base_url, session=session, limiter=limiter, max_retries=0
            ) as client,
        ):
            asyncio.get_running_loop().call_later(1.0, time_module.sleep, 2.0)  # the stall
            await asyncio.gather(*(client.get_task(h) for h in hashes))
    assert len(sent) == 40
    assert max(b - a for a, b in itertools.pairwise(sorted(sent))) >= 1.9  # it did stall
    return sent


def assert_the_burst_held(sent: list[float], budget: str) -> None:
    """At 10 a second with a burst of 10, the GCRA bound is burst + w * rate: 20 in any
    second, 12 in any fifth of one (checked with one of margin)."""
    per_second, per_fifth = most_in_any_window(sent, 1.0), most_in_any_window(sent, 0.2)
    print(f"FIGURES stall, {budget}: {per_second} in 1 s, {per_fifth} in 0.2 s (10/s, burst 10)")
    assert per_second <= 21
    assert per_fifth <= 13


async def test_a_stalled_loop_does_not_become_a_burst() -> None:
    """Slots that fell due while the loop was blocked are not spent in a crowd afterwards:
    the burst holds in every window, measured where requests are sent."""
    assert_the_burst_held(await send_through_a_stall(RateLimiter(600)), "RateLimiter")


async def test_a_stalled_loop_does_not_become_a_burst_on_redis(
    redis_client: Any, redis_prefix: str
) -> None:
    from taskwatch.redis import RedisLimiter

    limiter = RedisLimiter(
        redis_client, api_key=SECRET, prefix=redis_prefix, requests_per_minute=600
    )
    assert_the_burst_held(await send_through_a_stall(limiter), "RedisLimiter")
