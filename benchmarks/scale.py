"""Benchmark 2: watch_many over thousands of simulated tasks that finish at random times.

    python -m benchmarks.scale [--quick] [--tasks N] [--sweep]

The simulated API runs in its own process. Reports the client's peak extra RSS (MB and bytes
per watched task), the peak number of live asyncio tasks, total requests, client CPU per
request, and checks that every task's terminal snapshot arrived exactly once.

``--sweep`` first measures smaller sizes, each in a fresh process of its own (so that no
run reuses memory an earlier one freed), and draws peak extra RSS against the number of
watches (benchmarks.plots.memory_vs_watches).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import taskwatch

from . import plots
from ._common import RESULTS, say, table, verdict, write_result
from ._sim_server import SimProcess

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """This process's resident set size now (Linux /proc)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


async def run(tasks: int, speed: float) -> dict[str, Any]:
    sim = SimProcess(
        "--workload", "random", "--tasks", str(tasks), "--seed", "5", "--speed", str(speed)
    )
    try:
        hashes = list(sim.changes)
        async with taskwatch.Client(
            sim.api_key, base_url=sim.base_url, requests_per_minute=None, timeout=60
        ) as client:
            await client.get_task(hashes[0])  # open the pool before the baseline
            gc.collect()
            baseline_rss, baseline_tasks = rss_bytes(), len(asyncio.all_tasks())
            peak = {"rss": baseline_rss, "tasks": baseline_tasks}
            done = asyncio.Event()

            async def sample() -> None:
                while not done.is_set():
                    peak["rss"] = max(peak["rss"], rss_bytes())
                    peak["tasks"] = max(peak["tasks"], len(asyncio.all_tasks()))
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(done.wait(), 0.05)

            sampler = asyncio.ensure_future(sample())
            terminal: Counter[str] = Counter()
            snapshots = 0
            cpu, wall = time.process_time(), time.perf_counter()
            requests_before = client.stats().requests
            stream = client.watch_many(hashes, min_interval=2.0, max_interval=20.0)
            async with contextlib.aclosing(stream):
                async for task in stream:
                    snapshots += 1
                    if task.is_done:
                        terminal[task.hash_value] += 1
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            done.set()
            await sampler
            stats = client.stats()
    finally:
        server = sim.close()
    requests = stats.requests - requests_before
    return {
        "tasks": tasks,
        "speed": speed,
        "snapshots": snapshots,
        "terminal_exactly_once": len(terminal) == tasks and set(terminal.values()) == {1},
        "requests": requests,
        "server_requests": server.get("requests"),
        "client_cpu_us_per_request": cpu / requests * 1e6,
        "wall_s": wall,
        "peak_extra_rss_mb": (peak["rss"] - baseline_rss) / 1e6,
        "bytes_per_task": (peak["rss"] - baseline_rss) / tasks,
        "peak_asyncio_tasks": peak["tasks"],
        "baseline_asyncio_tasks": baseline_tasks,
        "retries": stats.retries,
    }


def report(result: dict[str, Any], quick: bool, name: str | None = None) -> None:
    n = result["tasks"]
    say(f"\nScale: watch_many over {n} simulated tasks (server in its own process)")
    rss_target = 50 * n / 10_000  # 50 MB for 10,000 watches, pro rata
    rows = [
        ("terminal snapshot exactly once per task", result["terminal_exactly_once"], "yes"),
        (
            "peak extra RSS",
            f"{result['peak_extra_rss_mb']:.1f} MB",
            f"<= {rss_target:.0f} MB ({verdict(result['peak_extra_rss_mb'], rss_target)})",
        ),
        (
            "bytes per watched task",
            f"{result['bytes_per_task']:.0f}",
            f"aim <= 4096 ({verdict(result['bytes_per_task'], 4096)})",
        ),
        (
            "peak asyncio tasks",
            result["peak_asyncio_tasks"],
            f"<= {n} + constant (baseline {result['baseline_asyncio_tasks']})",
        ),
        ("requests", result["requests"], f"{result['requests'] / n:.1f} per task"),
        ("client CPU per request", f"{result['client_cpu_us_per_request']:.0f} µs", ""),
        ("wall time", f"{result['wall_s']:.1f} s", ""),
    ]
    say(table(rows, ["figure", "measured", "target"]))
    write_result(name or ("scale-quick" if quick else "scale"), result)


def _sweep(sizes: list[int], quick: bool) -> list[dict[str, Any]]:
    """Measure each size in a fresh process; their results."""
    results = []
    for size in sizes:
        name = f"scale-{size}" + ("-quick" if quick else "")
        command = [sys.executable, "-m", "benchmarks.scale", "--tasks", str(size)]
        command += ["--quick"] * quick + ["--result-name", name]
        subprocess.run(command, check=True)
        results.append(json.loads((RESULTS / f"{name}.json").read_text()))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run that checks it works")
    parser.add_argument("--tasks", type=int, default=None)
    parser.add_argument(
        "--sweep", action="store_true", help="also smaller sizes, and the memory figure"
    )
    parser.add_argument("--result-name", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    tasks = args.tasks or (500 if args.quick else 10_000)
    smaller = [tasks // 10, tasks // 4, tasks // 2] if args.sweep else []
    swept = _sweep(smaller, args.quick)
    result = asyncio.run(run(tasks, speed=20.0 if args.quick else 2.0))
    report(result, args.quick, args.result_name)
    if not result["terminal_exactly_once"]:
        raise SystemExit("a terminal snapshot was lost or repeated")
    if args.sweep:
        path = plots.memory_vs_watches(
            [*swept, result], plots.images_dir(args.quick) / "memory-vs-watches.png"
        )
        say(f"figure: {path}")


if __name__ == "__main__":
    main()
