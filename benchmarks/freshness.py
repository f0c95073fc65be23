"""Benchmark 3: freshness per request.

    python -m benchmarks.freshness [--quick]

Part 1, a queue-like workload (tasks pending a long, varied time, then running briefly with
results rising in quick bursts, then done): taskwatch's watch_many against fixed-interval
polling (what the official SDK and CLI do: a fixed 3 s loop; several intervals swept), all
side by side in one run on one simulated API in its own process. For each: requests per task
and mean detection delay (from each server-side change to the first snapshot showing it), and
taskwatch's requests divided by fixed polling's at the same mean delay (interpolated).

Part 2, a binding budget (200 tasks, 90 requests/minute, the server enforcing it): taskwatch
must see zero 429s, and its mean detection delay is compared with the bound a round-robin
poller could reach with the same budget, N / R / 2.

Simulated time runs ``speed`` times faster than real time; every figure is in simulated
seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import statistics
from collections.abc import Awaitable
from typing import Any

import taskwatch

from . import plots
from ._common import say, table, verdict, write_result
from ._sim_server import SimProcess

Seen = list[tuple[float, int, bool]]  # (simulated receive time, total_results, is_done)


def detection_delays(
    expected: dict[str, list[tuple[float, int, bool]]],
    seen: dict[str, Seen],
    window: tuple[float, float] | None = None,
) -> list[float]:
    """For each expected change, the time until the first received snapshot showing it."""
    delays = []
    for task_hash, changes in expected.items():
        snapshots = seen.get(task_hash, [])
        for at, results, done in changes:
            if window is not None and not window[0] <= at <= window[1]:
                continue
            for received, total, is_done in snapshots:
                if (is_done if done else total >= results) and received >= at - 0.5:
                    delays.append(max(0.0, received - at))
                    break
    return delays


async def _fixed_poller(
    client: taskwatch.Client, task_hash: str, interval: float, sim: SimProcess, seen: Seen
) -> None:
    """A fixed-interval loop, as the official SDK and CLI poll: sleep, get, repeat."""
    last: int | None = None
    while True:
        task = await client.get_task(task_hash)
        if task.total_results != last or task.is_done:
            seen.append((sim.sim_now(), task.total_results, task.is_done))
            last = task.total_results
        if task.is_done:
            return
        await asyncio.sleep(interval / sim.speed)


async def _run_fixed(sim: SimProcess, interval: float, seen: dict[str, Seen]) -> int:
    async with taskwatch.Client(
        sim.api_key, base_url=sim.base_url, requests_per_minute=None
    ) as client:
        await asyncio.gather(
            *(_fixed_poller(client, h, interval, sim, seen.setdefault(h, [])) for h in sim.changes)
        )
        return client.stats().requests


async def _run_taskwatch(
    sim: SimProcess,
    min_interval: float,
    max_interval: float,
    seen: dict[str, Seen],
    requests_per_minute: float | None = None,
    stop: asyncio.Event | None = None,
) -> taskwatch.ClientStats:
    async with taskwatch.Client(
        sim.api_key, base_url=sim.base_url, requests_per_minute=requests_per_minute
    ) as client:
        snapshots = client.watch_many(
            list(sim.changes),
            min_interval=min_interval / sim.speed,
            max_interval=max_interval / sim.speed,
        )

        async def consume() -> None:
            async with contextlib.aclosing(snapshots):
                async for task in snapshots:
                    seen.setdefault(task.hash_value, []).append(
                        (sim.sim_now(), task.total_results, task.is_done)
                    )

        if stop is None:
            await consume()
        else:
            consumer = asyncio.ensure_future(consume())
            await stop.wait()
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
        return client.stats()


def _interpolate(points: list[tuple[float, float]], delay: float) -> float | None:
    """Requests at ``delay`` on the fixed-polling curve (points: (delay, requests))."""
    points = sorted(points)
    for (d0, r0), (d1, r1) in itertools.pairwise(points):
        if d0 <= delay <= d1:
            return r0 + (r1 - r0) * (delay - d0) / (d1 - d0)
    return None


async def part1(quick: bool) -> dict[str, Any]:
    # Time runs 10x (quick: 60x) faster; the request latency, in simulated seconds, grows
    # with it and blurs every strategy's delay alike, so the full run keeps it modest.
    tasks, speed = (15, 60.0) if quick else (60, 10.0)
    fixed_intervals = [2.0, 3.0, 5.0, 10.0, 20.0, 40.0]
    ours = [(0.5, 20.0), (1.0, 30.0), (2.0, 60.0)]
    pending = ("--pending-min", "60", "--pending-max", "300" if quick else "900")
    sim = SimProcess(
        "--workload", "queue", "--tasks", str(tasks), "--seed", "7", "--speed", str(speed), *pending
    )
    try:
        runs: dict[str, Awaitable[Any]] = {}
        seen: dict[str, dict[str, Seen]] = {}
        for interval in fixed_intervals:
            name = f"fixed {interval:g}s"
            seen[name] = {}
            runs[name] = _run_fixed(sim, interval, seen[name])
        for low, high in ours:
            name = f"taskwatch {low:g}-{high:g}s"
            seen[name] = {}
            runs[name] = _run_taskwatch(sim, low, high, seen[name])
        results = await asyncio.gather(*runs.values())
    finally:
        server = sim.close()
    rows = {}
    for ((name, result),) in zip(((n, r) for n, r in zip(runs, results, strict=True)), strict=True):
        requests = result if isinstance(result, int) else result.requests
        delays = detection_delays(sim.changes, seen[name])
        rows[name] = {
            "requests_per_task": requests / tasks,
            "mean_delay": statistics.fmean(delays),
            "changes_seen": len(delays),
        }
    expected_changes = sum(len(c) for c in sim.changes.values())
    curve = [
        (r["mean_delay"], r["requests_per_task"]) for n, r in rows.items() if n.startswith("fixed")
    ]
    for name, row in rows.items():
        if name.startswith("taskwatch"):
            fixed_at_same = _interpolate(curve, row["mean_delay"])
            row["fixed_requests_at_same_delay"] = fixed_at_same
            row["ratio_vs_fixed"] = (
                row["requests_per_task"] / fixed_at_same if fixed_at_same else None
            )
    return {
        "tasks": tasks,
        "speed": speed,
        "expected_changes": expected_changes,
        "server": server,
        "strategies": rows,
    }


async def part2(quick: bool) -> dict[str, Any]:
    # Slower simulated time than part 1: the server's window must stay long in real seconds,
    # since X-RateLimit-Reset and Retry-After are whole seconds, as documented.
    tasks, rpm, speed = (20, 90.0, 6.0) if quick else (200, 90.0, 4.0)
    measure = (20.0, 100.0) if quick else (200.0, 800.0)
    sim = SimProcess(
        "--workload",
        "queue",
        "--tasks",
        str(tasks),
        "--seed",
        "11",
        "--speed",
        str(speed),
        "--pending-min",
        "0",
        "--pending-max",
        "1",
        "--running-min",
        "5000",
        "--running-max",
        "6000",
        "--rate-limit",
        str(int(rpm)),
        "--rate-window",
        str(60.0 / speed),
    )
    seen: dict[str, Seen] = {}
    stop = asyncio.Event()
    try:
        # Each task runs for a long time so that all N stay live for the whole window.
        loop = asyncio.get_running_loop()
        loop.call_later((measure[1] + 60.0) / speed, stop.set)
        stats = await _run_taskwatch(
            sim, 1.0, 30.0, seen, requests_per_minute=rpm * speed, stop=stop
        )
    finally:
        server = sim.close()
    live = {h: [c for c in changes if not c[2]] for h, changes in sim.changes.items()}
    delays = detection_delays(live, seen, window=measure)
    bound = tasks / (rpm / 60.0) / 2
    return {
        "tasks": tasks,
        "requests_per_minute": rpm,
        "speed": speed,
        "window": measure,
        "mean_delay": statistics.fmean(delays),
        "changes_measured": len(delays),
        "round_robin_bound": bound,
        "client_429s": stats.rate_limited,
        "server_429s": server.get("429"),
        "requests": stats.requests,
    }


def report(one: dict[str, Any], two: dict[str, Any], quick: bool) -> None:
    say(
        f"\nFreshness on a queue-like workload: {one['tasks']} tasks, "
        f"{one['expected_changes']} changes, simulated time x{one['speed']:g} "
        "(all figures in simulated seconds)"
    )
    rows = []
    for name, row in one["strategies"].items():
        ratio = row.get("ratio_vs_fixed")
        rows.append(
            (
                name,
                f"{row['requests_per_task']:.1f}",
                f"{row['mean_delay']:.2f}",
                row["changes_seen"],
                f"{ratio:.2f}x" if ratio else "-",
            )
        )
    say(
        table(
            rows,
            [
                "strategy",
                "requests/task",
                "mean delay s",
                "changes seen",
                "requests vs fixed at same delay",
            ],
        )
    )
    best = [
        r["ratio_vs_fixed"]
        for n, r in one["strategies"].items()
        if n.startswith("taskwatch") and r.get("ratio_vs_fixed")
    ]
    if best:
        say(
            f"taskwatch / fixed polling at equal mean delay: {min(best):.2f}x to "
            f"{max(best):.2f}x (target <= 0.5x: {verdict(max(best), 0.5)})"
        )
    say(
        f"\nBinding budget: {two['tasks']} tasks at {two['requests_per_minute']:g} "
        f"requests/minute (server-enforced), changes in {two['window'][0]:g}-"
        f"{two['window'][1]:g}s"
    )
    ratio = two["mean_delay"] / two["round_robin_bound"]
    say(
        f"mean detection delay {two['mean_delay']:.1f}s over {two['changes_measured']} changes; "
        f"round-robin bound N/R/2 = {two['round_robin_bound']:.1f}s; ratio {ratio:.2f}x "
        f"(target <= 1.25x: {verdict(ratio, 1.25)})"
    )
    say(
        f"429s: client {two['client_429s']}, server {two['server_429s']} (target 0: "
        f"{verdict(float(two['server_429s'] or 0), 0.0)})"
    )
    write_result(
        "freshness-quick" if quick else "freshness", {"queue_like": one, "binding_budget": two}
    )
    path = plots.requests_vs_delay(one, plots.images_dir(quick) / "requests-vs-delay.png")
    say(f"figure: {path}")


async def run(quick: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    return await part1(quick), await part2(quick)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run that checks it works")
    args = parser.parse_args(argv)
    one, two = asyncio.run(run(args.quick))
    report(one, two, args.quick)


if __name__ == "__main__":
    main()
