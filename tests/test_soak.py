"""Soak: thousands of tasks on one client, through random faults and a server rate limit.

``test_soak`` watches 2,000 tasks with one ``Client.watch_many`` against the simulated API,
which gives about 10% of requests a random transient fault (5xx, 429, dropped connections,
bodies cut off, delays, slow bodies, hangs past the per-attempt timeout) and enforces the
documented per-minute rate limit with its ``X-RateLimit-*`` headers. It checks that every
task's terminal snapshot arrives exactly once, last, and equal to the task's real end; that
429s stay within a bound the rate-limit rule implies; and that connections and asyncio tasks
return to their baseline. It then runs rounds of watches on the same client and checks that
memory does not grow from round to round.

Time runs faster: the simulator, the client's clock and its sleeps all run on one clock
``SPEEDUP`` times faster than real time, so the API's one-minute rate window lasts 3 real
seconds and the run crosses several windows, with the client reading the documented
headers exactly as it would in production (limit per minute, reset as a UNIX time,
Retry-After in seconds). Network I/O, the per-attempt timeout and the simulator's injected
delays stay in real time.

``TASKWATCH_SOAK=long`` runs the long version: 10,000 tasks running 5 to 20 simulated minutes
(about 25 rate windows), then 12 rounds of 1,000 (a few minutes in all). Run with ``-s`` (or
``-rA``) to see the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import resource
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

from taskwatch import Client, RateLimiter, Task
from taskwatch.testing import Fault, SimulatedTaskAPI

from .conftest import snapshots_by_task

pytestmark = pytest.mark.slow

LONG = os.environ.get("TASKWATCH_SOAK", "").lower() == "long"

SPEEDUP = 20.0  # simulated (and client) seconds per real second
LIMIT = 1800  # requests per (simulated) minute: 600 real requests a second
CONFIGURED = 3600.0  # the client's own cap, above the server's: it must learn the lower one
FAULT_RATE = 0.1
TASKS = 10_000 if LONG else 2_000
RUNNING = (300.0, 1_200.0) if LONG else (30.0, 150.0)  # simulated seconds a task runs
ROUNDS, ROUND_TASKS = (12, 1_000) if LONG else (5, 300)


@attrs.frozen
class Settings:
    """Everything timing-related, in one place, so the figures can print it."""

    min_interval: float = 1.0  # simulated seconds: 50 ms real
    max_interval: float = 10.0
    timeout: float = 1.0  # the per-attempt timeout (real seconds: aiohttp's own clock)
    max_retries: int = 8
    retry_initial_wait: float = 0.5  # simulated seconds
    retry_max_wait: float = 8.0


SETTINGS = Settings()

FAULTS: list[tuple[Fault, float]] = [
    (Fault.status(500), 2.0),
    (Fault.status(502), 1.5),
    (Fault.status(503), 1.5),
    (Fault.status(504), 1.0),
    (Fault.rate_limited(1), 1.0),  # Retry-After: 1 (simulated second)
    (Fault.drop(), 1.0),
    (Fault.truncated(), 1.0),
    (Fault.malformed(b'{"hash_value": "c5e2', "application/json"), 0.5),  # JSON cut off
    (Fault.delay(0.05), 1.0),  # real seconds
    (Fault.slow_drip(0.05, 3), 0.5),
    (Fault.hang(), 0.05),  # until the 1 s per-attempt timeout
]


class ScaledClock:
    """A monotonic clock ``SPEEDUP`` times faster than real time, and a sleep that waits
    that many times less. The wall clock (UNIX time, for ``X-RateLimit-Reset``) stays real:
    the simulator writes the reset as real time plus simulated seconds left."""

    def clock(self) -> float:
        return time.monotonic() * SPEEDUP

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0) / SPEEDUP)

    def install(self, client: Client) -> None:
        """The client, its budget and its watches run on this clock (as FakeTime does)."""
        client._clock = self.clock
        client._sleep = self.sleep
        limiter = client.limiter
        assert isinstance(limiter, RateLimiter)
        limiter._clock = self.clock
        limiter._sleep = self.sleep


def rss_mib() -> float:
    """Resident memory now (Linux), in MiB; 0.0 where /proc is not available."""
    statm = Path("/proc/self/statm")
    if not statm.exists():
        return 0.0
    return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


# Objects each poll or watch creates and must let go of: asyncio tasks and futures, aiohttp
# requests, responses and connections, snapshots, errors, coroutines and generators. (The
# simulator's server keeps one asyncio task per open connection: those are counted too, and
# may only go down as the client's pool settles.)
_TRACKED = {
    "_asyncio.Task",
    "_asyncio.Future",
    "aiohttp.client_reqrep.ClientRequest",
    "aiohttp.client_reqrep.ClientResponse",
    "aiohttp.connector.Connection",
    "taskwatch.models.Task",
    "taskwatch.models.TaskStatus",
    "builtins.coroutine",
    "builtins.async_generator",
    "tenacity.RetryCallState",
}


def live_objects() -> Counter[str]:
    """Live instances of the tracked types, and of every exception type, after a full
    collection (exceptions that survive keep their tracebacks and frames alive)."""
    gc.collect()
    counts: Counter[str] = Counter()
    for obj in gc.get_objects():
        kind = type(obj)
        name = f"{kind.__module__}.{kind.__qualname__}"
        if name in _TRACKED or isinstance(obj, BaseException):
            counts[name] += 1
    return counts


def assert_well_formed(snapshots: list[Task], api: SimulatedTaskAPI, hashes: list[str]) -> None:
    """Per task: exactly one terminal snapshot, last, equal to the script's end; results
    never go backwards."""
    for task_hash, seen in snapshots_by_task(snapshots, hashes).items():
        final, end = seen[-1], api.script(task_hash)[-1]
        assert (final.state, final.total_results) == (end.status, end.total_results), task_hash


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    box: list[float] = []
    started = time.perf_counter()
    yield box
    box.append(time.perf_counter() - started)


def fresh_client(api: SimulatedTaskAPI) -> Client:
    client = Client(
        api.api_key,
        base_url=api.base_url,
        requests_per_minute=CONFIGURED,
        timeout=SETTINGS.timeout,
        max_retries=SETTINGS.max_retries,
        retry_initial_wait=SETTINGS.retry_initial_wait,
        retry_max_wait=SETTINGS.retry_max_wait,
    )
    ScaledClock().install(client)
    return client


async def test_soak() -> None:
    scaled = ScaledClock()
    api = SimulatedTaskAPI(rate_limit=LIMIT, rate_window=60, speed=1.0, seed=7, clock=scaled.clock)
    async with api:
        baseline_tasks = len(asyncio.all_tasks())
        hashes = api.add_random_tasks(TASKS, pending=(5, 30), running=RUNNING)
        api.inject_randomly(
            [fault for fault, _ in FAULTS],
            weights=[weight for _, weight in FAULTS],
            probability=FAULT_RATE,
            seed=11,
        )
        client = fresh_client(api)
        started_units = scaled.clock()
        with timed() as wall:
            async with client:
                snapshots = [
                    t
                    async for t in client.watch_many(
                        hashes,
                        min_interval=SETTINGS.min_interval,
                        max_interval=SETTINGS.max_interval,
                    )
                ]
                stats = client.stats()
        elapsed_units = scaled.clock() - started_units
        server = api.stats
        drained = await until(lambda: api.stats.open_connections == 0)
        tasks_after = len(asyncio.all_tasks())

    injected_429 = server.faults_by_kind.get("rate_limited", 0)
    window_429 = server.responses_429 - injected_429
    windows = math.ceil(elapsed_units / 60) + 1
    burst_bound = windows * max(CONFIGURED, LIMIT) / 60
    print(
        f"\nFIGURES soak: {TASKS} tasks, {len(snapshots)} snapshots, wall {wall[0]:.1f}s "
        f"({elapsed_units:.0f} simulated s, {windows - 1} rate windows)\n"
        f"FIGURES soak: client requests {stats.requests}, retries {stats.retries}, "
        f"5xx {stats.server_errors}, 429 {stats.rate_limited}, transport {stats.transport_errors}, "
        f"pace {stats.requests_per_minute}/min (server limit {stats.server_limit})\n"
        f"FIGURES soak: server requests {server.requests}, faults injected "
        f"{server.faults_injected} ({server.faults_injected / server.requests:.1%}) "
        f"{dict(sorted(server.faults_by_kind.items()))}\n"
        f"FIGURES soak: 429s {server.responses_429} ({injected_429} injected, {window_429} from "
        f"the rate limit; bound {burst_bound:.0f}), peak connections {server.peak_connections}, "
        f"peak in flight {server.peak_in_flight}, peak RSS {peak_rss_mib():.0f} MiB"
    )
    assert_well_formed(snapshots, api, hashes)
    assert stats.live_watches == 0
    assert stats.waiting == 0
    # The client read the server's limit from the first answer and paced itself to it.
    assert stats.server_limit == LIMIT
    assert stats.requests_per_minute == LIMIT
    # Random faults hit about FAULT_RATE of the requests (a binomial: 3 sigma is ~1%).
    assert abs(server.faults_injected / server.requests - FAULT_RATE) < 0.02
    assert set(server.faults_by_kind) >= {"status", "rate_limited", "drop", "truncated"}
    # 429s: every injected one, plus the rate limit's. A client pacing itself by the rule
    # (GCRA, at most one burst ahead of its pace) can overrun a fixed window by at most one
    # burst: the configured one before the first answer, the learnt one after. Without a
    # client-side pace the same run collects thousands of 429s from the limit.
    assert window_429 <= burst_bound
    assert stats.rate_limited <= server.responses_429  # a truncated 429 is a transport error
    # One pooled session: at most aiohttp's default pool of 100 connections, whatever the
    # number of tasks; all of them closed with the client, and no asyncio task left over.
    assert server.peak_connections <= 100
    assert drained, api.stats
    assert tasks_after == baseline_tasks
    # At least one request per task, and one retry at most per failed attempt: a fault
    # or a 429 from the limit (a dropped request that aiohttp resent may not fail at all).
    assert server.requests >= TASKS
    assert stats.retries <= server.faults_injected + window_429


# Faults that do not close connections: the client's pool keeps a steady size from round to
# round (the soak above covers the ones that do).
STEADY_FAULTS = [
    fault for fault, _ in FAULTS if fault.kind not in {"drop", "truncated", "hang", "slow_drip"}
]
# What one open connection costs, on both sides (the simulator's server runs in this process):
# about 250 allocated blocks, and an asyncio task, a future and a coroutine on the server.
PER_CONNECTION_BLOCKS = 300
PER_CONNECTION_OBJECTS = 3


async def test_memory_is_flat_across_rounds() -> None:
    """Rounds of watches on one client, over the same task hashes (re-added each round, so
    the simulator and the client's bounded caches stay the same size): after a warm-up
    round, neither the Python heap nor the live objects of a watch may grow.

    Measured after a full collection at the end of each round: ``sys.getallocatedblocks()``
    (every block Python's allocator hands out; not disturbed by other processes) and live
    instances of the objects a poll or a watch creates. Without a leak, blocks move by a few
    dozen between rounds, plus about PER_CONNECTION_BLOCKS for each connection the pool
    gained; keeping every snapshot (one Task per poll) adds about 6,000 blocks a round at
    this size, so 2,000 is a threshold that noise does not reach and a leak of one small
    object per poll does. RSS is printed and checked loosely (8 MiB): it also sees memory
    Python does not allocate, but moves in whole arenas and pages.
    """
    scaled = ScaledClock()
    api = SimulatedTaskAPI(rate_limit=LIMIT, rate_window=60, speed=1.0, seed=3, clock=scaled.clock)
    async with api:
        hashes = api.add_random_tasks(ROUND_TASKS, pending=(1, 4), running=(4, 16))
        scripts = {task_hash: api.script(task_hash) for task_hash in hashes}
        api.inject_randomly(STEADY_FAULTS, probability=FAULT_RATE, seed=5)
        figures: list[tuple[int, int, float, int, Counter[str]]] = []
        async with fresh_client(api) as client:
            for round_number in range(ROUNDS):
                if round_number:
                    for task_hash in hashes:
                        api.remove_task(task_hash)
                        api.add_task(scripts[task_hash], task_hash=task_hash)
                api.reset_stats()
                snapshots = [
                    t
                    async for t in client.watch_many(
                        hashes,
                        min_interval=SETTINGS.min_interval,
                        max_interval=SETTINGS.max_interval,
                    )
                ]
                assert_well_formed(snapshots, api, hashes)
                del snapshots
                objects = live_objects()
                figures.append(
                    (
                        api.stats.requests,
                        sys.getallocatedblocks(),
                        rss_mib(),
                        api.stats.open_connections,
                        objects,
                    )
                )
    for number, (requests, blocks, rss, connections, objects) in enumerate(figures, 1):
        print(
            f"FIGURES memory round {number}: {ROUND_TASKS} tasks, {requests} requests, "
            f"{blocks} allocated blocks, RSS {rss:.1f} MiB, {connections} connections, "
            f"live {dict(sorted(objects.items()))}"
        )
    # Round 1 warms up (imports, pools, caches, interned strings): compare with round 2.
    _, warm_blocks, warm_rss, warm_connections, warm_objects = figures[1]
    for _, blocks, rss, connections, objects in figures[2:]:
        gained = max(0, connections - warm_connections)
        assert blocks - warm_blocks <= 2_000 + PER_CONNECTION_BLOCKS * gained, blocks
        assert rss - warm_rss <= 8.0, (rss, warm_rss)
        for name, count in objects.items():
            allowed = warm_objects.get(name, 0) + 5 + PER_CONNECTION_OBJECTS * gained
            assert count <= allowed, (name, count, warm_objects)
    assert sum(requests for requests, *_ in figures[2:]) >= (ROUNDS - 2) * ROUND_TASKS
