"""One process of the fleet in test_fleet.py: watches its own tasks on one shared API key.

Run as ``python tests/fleet_worker.py SETTINGS_JSON`` with the key in ``LOBSTR_TOKEN``. From
the wall-clock time ``start_at`` it watches ``hashes`` for ``seconds`` on a Client whose budget
is a RedisLimiter (``mode: "redis"``) or its own in-process RateLimiter (``mode: "local"``),
both at ``requests_per_minute``, then prints the client's counters as one JSON line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

import redis.asyncio as redis_asyncio

import taskwatch
from taskwatch.redis import RedisLimiter


async def watch_for_a_while(client: taskwatch.Client, hashes: list[str], seconds: float) -> int:
    """Watch until ``seconds`` have passed; returns how many snapshots were yielded."""
    yielded = 0

    async def consume() -> None:
        nonlocal yielded
        stream = client.watch_many(hashes, min_interval=0.2, max_interval=0.5)
        async with contextlib.aclosing(stream):
            async for _ in stream:
                yielded += 1

    # At the end of the measured time the tasks are still running: the watch is cut short.
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(consume(), seconds)
    return yielded


async def main(settings: dict[str, Any]) -> dict[str, Any]:
    connection = redis_asyncio.Redis.from_url(settings["redis_url"])
    try:
        limiter: taskwatch.Limiter
        if settings["mode"] == "redis":
            limiter = RedisLimiter(
                connection,
                prefix=settings["prefix"],
                requests_per_minute=settings["requests_per_minute"],
            )
        else:
            limiter = taskwatch.RateLimiter(settings["requests_per_minute"])
        async with taskwatch.Client(
            base_url=settings["base_url"],
            limiter=limiter,
            max_retries=20,
            retry_initial_wait=0.05,
            retry_max_wait=1.0,
        ) as client:
            await asyncio.sleep(max(0.0, settings["start_at"] - time.time()))
            yielded = await watch_for_a_while(client, settings["hashes"], settings["seconds"])
            stats = client.stats()
    finally:
        await connection.aclose()
    return {"requests": stats.requests, "rate_limited": stats.rate_limited, "yielded": yielded}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
