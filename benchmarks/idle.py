"""Benchmark 5: what an idle watch costs, at tens of thousands of watches.

    python -m benchmarks.idle [--quick] [--watches N]

N tasks that stay pending on the simulated API (in its own process); one ``watch_many`` over
all of them, with ``min_interval`` of 50 minutes and a ``timeout`` (so each watch keeps a
deadline and its last snapshot for ``WatchTimeout.last``), until every watch has yielded its
first snapshot and gone to sleep. Then: the client's extra resident memory per watch
(everything a sleeping watch holds) and the live asyncio tasks. The same at N / 10, to show
whether tasks grow with the number of watches.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import time
from typing import Any

import taskwatch

from ._common import say, table, verdict, write_result
from ._sim_server import SimProcess
from .scale import rss_bytes


async def measure(sim: SimProcess, hashes: list[str]) -> dict[str, Any]:
    """Watch ``hashes`` until each has had its first poll; measure while they all sleep."""
    async with taskwatch.Client(
        sim.api_key, base_url=sim.base_url, requests_per_minute=None, timeout=120
    ) as client:
        await client.get_task(hashes[0])  # open the pool before the baseline
        # The hashes still to see their first snapshot, built before the baseline: the
        # benchmark's own bookkeeping is not counted as the client's.
        unseen = set(hashes)
        gc.collect()
        baseline_rss, baseline_tasks = rss_bytes(), len(asyncio.all_tasks())
        started = time.perf_counter()
        stream = client.watch_many(hashes, min_interval=3000.0, max_interval=3600.0, timeout=1e6)
        async with contextlib.aclosing(stream):
            async for task in stream:
                unseen.discard(task.hash_value)
                if not unseen:
                    break
            warmup = time.perf_counter() - started
            await asyncio.sleep(0.2)  # let the last requests finish: every watch asleep
            gc.collect()
            rss, tasks = rss_bytes(), len(asyncio.all_tasks())
            stats = client.stats()
    return {
        "watches": len(hashes),
        "bytes_per_watch": (rss - baseline_rss) / len(hashes),
        "extra_rss_mb": (rss - baseline_rss) / 1e6,
        "asyncio_tasks": tasks,
        "baseline_asyncio_tasks": baseline_tasks,
        "live_watches": stats.live_watches,
        "first_polls_s": warmup,
    }


async def run(watches: int) -> dict[str, Any]:
    sim = SimProcess(
        "--workload", "queue", "--tasks", str(watches), "--seed", "3", "--speed", "1",
        "--pending-min", "1e7", "--pending-max", "2e7",
    )  # fmt: skip
    try:
        hashes = list(sim.changes)
        small = await measure(sim, hashes[: max(1, watches // 10)])
        large = await measure(sim, hashes)
    finally:
        sim.close()
    return {"small": small, "large": large}


def report(result: dict[str, Any], quick: bool) -> None:
    small, large = result["small"], result["large"]
    say(f"\nIdle watches: {large['watches']} pending tasks, every watch asleep")
    per_watch = large["bytes_per_watch"]
    grew = large["asyncio_tasks"] - small["asyncio_tasks"]
    rows = [
        (
            "bytes per idle watch (deadline and last snapshot kept)",
            f"{per_watch:.0f}",
            f"<= 1024 ({verdict(per_watch, 1024)}), aim 500 ({verdict(per_watch, 500)})",
        ),
        ("extra RSS", f"{large['extra_rss_mb']:.1f} MB", ""),
        (
            f"live asyncio tasks at {small['watches']} / {large['watches']} watches",
            f"{small['asyncio_tasks']} / {large['asyncio_tasks']}",
            f"must not grow with watches ({verdict(float(grew), 0.0)})",
        ),
        ("live watches", large["live_watches"], large["watches"]),
        ("first poll of every watch", f"{large['first_polls_s']:.1f} s", ""),
    ]
    say(table(rows, ["figure", "measured", "target"]))
    write_result("idle-quick" if quick else "idle", result)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run that checks it works")
    parser.add_argument("--watches", type=int, default=None)
    args = parser.parse_args(argv)
    watches = args.watches or (2_000 if args.quick else 100_000)
    report(asyncio.run(run(watches)), args.quick)


if __name__ == "__main__":
    main()
