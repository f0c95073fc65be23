"""Four processes, one API key, one simulated API enforcing the key's limit server-side.

Each process (tests/fleet_worker.py) watches 40 busy tasks of its own, so together they want
far more than the budget. With local limiters each process paces itself for the whole key:
the fleet sends at several times the key's pace until the server's ``X-RateLimit-Remaining:
0`` and 429s stop it, spends each window's budget in its first seconds, and every window some
processes bump into the limit. With one RedisLimiter budget the fleet sends at the key's pace
and sees no 429 storm. Both sets of figures are printed (``pytest -s -k fleet`` shows them).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import pytest

from taskwatch.testing import ScriptStep, SimulatedTaskAPI

from .conftest import REDIS_URL, SECRET, cli_env

WORKER = Path(__file__).parent / "fleet_worker.py"
PROCESSES = 4
TASKS_PER_PROCESS = 40
LIMIT = 100  # requests per window per key, server-side
WINDOW = 10.0  # seconds: the key's budget is 600 requests a minute
PER_MINUTE = LIMIT * 60 / WINDOW
SECONDS = 20.0  # measured time
SAMPLE = 0.25  # seconds between readings of the server's request count
STARTUP = 3.0  # seconds allowed for the processes to import and connect before they start

pytestmark = pytest.mark.slow


@attrs.frozen
class FleetRun:
    mode: str
    requests: int  # sent by the fleet in the measured time, as the server counted them
    answered_429: int
    per_minute: float
    peak_per_second: float  # the most requests the server saw in one second
    workers: list[dict[str, Any]]

    def line(self) -> str:
        return (
            f"{self.mode:>5} limiters: {self.requests} requests in {SECONDS:g}s "
            f"= {self.per_minute:.0f}/min for a budget of {PER_MINUTE:.0f}/min "
            f"({self.per_minute / PER_MINUTE:.2f}x), peak {self.peak_per_second:.0f} in one second "
            f"for a pace of {PER_MINUTE / 60:.0f}/s, {self.answered_429} answered 429"
        )


def busy_script() -> list[ScriptStep]:
    """A task that runs, with results rising every simulated second, far beyond the test."""
    return [
        ScriptStep(at=second, status="running", total_results=second * 7, total_pages=second)
        for second in range(600)
    ]


async def run_fleet(sim: SimulatedTaskAPI, mode: str, prefix: str) -> FleetRun:
    hashes = [sim.add_task(busy_script()) for _ in range(PROCESSES * TASKS_PER_PROCESS)]
    start_at = time.time() + STARTUP
    processes = []
    for i in range(PROCESSES):
        settings = {
            "mode": mode,
            "base_url": sim.base_url,
            "redis_url": REDIS_URL,
            "prefix": prefix,
            "requests_per_minute": PER_MINUTE,
            "hashes": hashes[i * TASKS_PER_PROCESS : (i + 1) * TASKS_PER_PROCESS],
            "start_at": start_at,
            "seconds": SECONDS,
        }
        processes.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                str(WORKER),
                json.dumps(settings),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=cli_env(SECRET),
            )
        )
    await asyncio.sleep(max(0.0, start_at - time.time()))
    sim.reset_stats()
    counts = [0]  # requests seen by the server, every SAMPLE seconds
    while time.time() < start_at + SECONDS:
        await asyncio.sleep(SAMPLE)
        counts.append(sim.stats.requests)
    outputs = [await process.communicate() for process in processes]
    stats = sim.stats
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr.decode()
        assert stderr == b"", stderr.decode()  # no warnings, no tracebacks
    for task_hash in hashes:
        sim.remove_task(task_hash)
    return FleetRun(
        mode=mode,
        requests=stats.requests,
        answered_429=stats.responses_429,
        per_minute=stats.requests / SECONDS * 60,
        peak_per_second=max(
            later - earlier
            for earlier, later in zip(counts, counts[int(1 / SAMPLE) :], strict=False)
        ),
        workers=[json.loads(stdout) for stdout, _ in outputs],
    )


async def test_a_fleet_on_one_key_stays_within_budget_only_with_the_redis_limiter(
    redis_client: Any, redis_prefix: str
) -> None:
    runs = []
    for mode in ("local", "redis"):
        # A simulator of its own for each run: each starts with the key's budget unspent.
        async with SimulatedTaskAPI(rate_limit=LIMIT, rate_window=WINDOW, api_key=SECRET) as sim:
            runs.append(await run_fleet(sim, mode, redis_prefix))
    local, shared = runs
    print()
    print(local.line())
    print(shared.line())
    pace = PER_MINUTE / 60
    for run in runs:
        assert all(worker["yielded"] > 0 for worker in run.workers), run  # every process worked
    # Local limiters: each process paces itself for the whole key, so the fleet sends at
    # several times the key's pace until the server says stop, and in each window the
    # processes that did not see "Remaining: 0" bump into the limit.
    assert local.peak_per_second > 3 * pace
    assert local.answered_429 >= PROCESSES - 1
    # One budget on Redis: the key's pace (plus one second's burst), within the budget,
    # and at most a stray 429.
    assert shared.peak_per_second <= 2.5 * pace
    assert shared.per_minute <= 1.1 * PER_MINUTE
    assert shared.answered_429 <= 1
