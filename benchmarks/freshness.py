"""Benchmark 3: freshness per request.

    python -m benchmarks.freshness [--quick]

Part 1, a family of queue-like workloads without a binding budget (tasks pending a varied
time, then running with results rising in bursts, then done; ``FAMILY`` varies the pending
length against ``max_interval``, the running length and the number of changes per task, and
the time scale). On each member, taskwatch's watch_many at three interval settings against
fixed-interval polling (what the official SDK and CLI do: a fixed 3 s loop; several
intervals swept), all side by side in one run on one simulated API in its own process. For
each: requests per task and mean detection delay (from each server-side change to the first
snapshot showing it), and taskwatch's requests divided by fixed polling's at the same mean
delay (interpolated). The worst ratio over the family is what counts, against <= 0.5x.
A member whose tasks change only a few times is measured on several samples of tasks, one
after another, pooled (with the spread over the samples), so that its figure rests on at
least ``MIN_CHANGES`` changes. Each cell (member and setting) gets a verdict: met, missed, or
infeasible where even the best possible on the same tasks (the offline model's oracles,
``_offline_fresh.bounds``) lies above the target, with how close taskwatch came to it.

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
import math
import statistics
from collections.abc import Awaitable
from typing import Any

import taskwatch

from . import _offline_fresh, plots
from ._common import say, table, verdict, write_result
from ._family import FAMILY, OURS, TARGET, Member, Seen, cell_verdict, detection_delays, seed
from ._sim_server import SimProcess
from ._workloads import changes


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


async def _sample(
    member: Member, tasks: int, speed: float, seed: int, reach: bool
) -> dict[str, Any]:
    """One sample of a member: every fixed interval and every taskwatch setting side by
    side, on one simulated API in its own process. Returns each strategy's requests and
    detection delays, the expected changes per task, and the server's counts."""
    sim = SimProcess(
        *member.args(), "--tasks", str(tasks), "--seed", str(seed), "--speed", f"{speed:g}"
    )
    try:
        runs: dict[str, Awaitable[Any]] = {}
        seen: dict[str, dict[str, Seen]] = {}
        for interval in member.fixed_intervals(reach=reach):
            name = f"fixed {interval:g}s"
            seen[name] = {}
            runs[name] = _run_fixed(sim, interval, seen[name])
        for low, high in OURS:
            name = f"taskwatch {low:g}-{high:g}s"
            seen[name] = {}
            runs[name] = _run_taskwatch(sim, low, high, seen[name])
        results = await asyncio.gather(*runs.values())
    finally:
        server = sim.close()
    strategies = {}
    for name, result in zip(runs, results, strict=True):
        requests = result if isinstance(result, int) else result.requests
        strategies[name] = {
            "requests": requests,
            "delays": detection_delays(sim.changes, seen[name]),
        }
    return {
        "seed": seed,
        "changes": [len(c) - 1 for c in sim.changes.values()],
        "server": server,
        "strategies": strategies,
    }


def _ratios(strategies: dict[str, dict[str, Any]], tasks: int) -> dict[str, dict[str, Any]]:
    """Requests per task and mean delay per strategy (pooled over samples: ``tasks`` tasks in
    all), and taskwatch's requests over fixed polling's at the same mean delay (interpolated
    on the fixed-polling curve; None when outside it)."""
    rows = {}
    for name, raw in strategies.items():
        rows[name] = {
            "requests_per_task": raw["requests"] / tasks,
            "mean_delay": statistics.fmean(raw["delays"]),
            "changes_seen": len(raw["delays"]),
        }
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
    return rows


def _offline(member: Member, scripts: list[list[Any]], seed: int) -> dict[str, float | None]:
    """The offline model's ratio per setting on the tasks of one sample (no latency)."""
    curve = _offline_fresh.fixed_curve(member, scripts, 0.0)
    expected = {str(i): changes(s) for i, s in enumerate(scripts)}
    out = {}
    for low, high in OURS:
        requests, seen = _offline_fresh.run_policy(
            scripts, _offline_fresh.POLICIES["taskwatch"], low, high, seed
        )
        delays = detection_delays(expected, {str(i): s for i, s in seen.items()})
        same = _offline_fresh.interpolate(curve, statistics.fmean(delays))
        out[f"{low:g}-{high:g}s"] = requests / len(scripts) / same if same else None
    return out


def repeats(member: Member, index: int, tasks: int, quick: bool) -> int:
    """How many samples of ``tasks`` tasks the member needs for ``MIN_CHANGES`` changes in
    all (at most ``MAX_REPEATS``; one in a quick run): a member whose tasks change only a
    few times is measured on several samples, so that its figure is not a handful of
    changes' luck."""
    if quick:
        return 1
    scripts = _offline_fresh.scripts(member, tasks, seed(index))
    per_sample = sum(len(changes(s)) for s in scripts)
    return max(1, min(MAX_REPEATS, math.ceil(MIN_CHANGES / per_sample)))


async def measure(
    member: Member, index: int, tasks: int, speed: float, samples: int, reach: bool = True
) -> dict[str, Any]:
    """One member of ``FAMILY`` (``index``): ``samples`` samples of ``tasks`` tasks each, one
    after another (seeds ``_family.seed``), pooled: requests per task and mean detection delay
    per strategy over every sample, and taskwatch's ratio to fixed polling at the same mean
    delay, pooled and per sample (the spread). Beside it the best possible on the same tasks
    (``_offline_fresh.bounds``) and the offline model's ratio per sample."""
    found = [await _sample(member, tasks, speed, seed(index, k), reach) for k in range(samples)]
    pooled = {
        name: {
            "requests": sum(one["strategies"][name]["requests"] for one in found),
            "delays": [d for one in found for d in one["strategies"][name]["delays"]],
        }
        for name in found[0]["strategies"]
    }
    rows = _ratios(pooled, tasks * len(found))
    per_sample = [_ratios(one["strategies"], tasks) for one in found]
    every = [_offline_fresh.scripts(member, tasks, one["seed"]) for one in found]
    offline = [_offline(member, s, one["seed"]) for s, one in zip(every, found, strict=True)]
    for low, high in OURS:
        name, setting = f"taskwatch {low:g}-{high:g}s", f"{low:g}-{high:g}s"
        rows[name]["ratio_per_sample"] = [one[name]["ratio_vs_fixed"] for one in per_sample]
        rows[name]["offline_per_sample"] = [one[setting] for one in offline]
    changes_per_task = [c for one in found for c in one["changes"]]
    return {
        "member": member.name,
        "tasks": tasks * len(found),
        "samples": len(found),
        "seeds": [one["seed"] for one in found],
        "speed": speed,
        "bounds": _offline_fresh.bounds(member, [s for one in every for s in one], reach),
        "expected_changes": sum(changes_per_task) + len(changes_per_task),
        "changes_per_task": statistics.fmean(changes_per_task),
        "server": {
            key: sum(one["server"].get(key, 0) for one in found)
            for key in sorted({key for one in found for key in one["server"]})
        },
        "strategies": rows,
    }


LOAD = 400.0  # fixed pollers' requests per real second, at most, in a full run
MIN_CHANGES = 200  # changes in a member's live figure, at least (full run; see ``repeats``)
MAX_REPEATS = 6


async def part1(quick: bool) -> list[dict[str, Any]]:
    """The family, one member after another (quick: all at once, to check that it works).

    Simulated time runs fast enough that each member takes about ``target`` real seconds,
    unless the fixed pollers would then send more than ``LOAD`` requests a real second (in a
    full run; the quick one only checks that it works), but never slower than ``floor``: the
    request latency, in simulated seconds, grows with the speed and the load and blurs every
    strategy's delay alike, so the full run keeps it modest. A member whose tasks change only
    a few times is measured on several samples, one after another (``repeats``).
    """
    tasks, target, floor = (6, 4.0, 60.0) if quick else (20, 40.0, 10.0)

    def speed(member: Member) -> float:
        intervals = member.fixed_intervals(reach=not quick)
        slowest = member.lifetime() + intervals[-1]
        # the fixed pollers' requests per real second stay within LOAD (a busy server's
        # latency, in simulated seconds, would blur every strategy's delay)
        cap = math.inf if quick else LOAD / (tasks * sum(1.0 / i for i in intervals))
        return max(floor, round(min(slowest / target, cap)))

    def one(i: int, m: Member) -> Awaitable[dict[str, Any]]:
        return measure(m, i, tasks, speed(m), repeats(m, i, tasks, quick), not quick)

    if quick:
        return list(await asyncio.gather(*(one(i, m) for i, m in enumerate(FAMILY))))
    return [await one(i, m) for i, m in enumerate(FAMILY)]


def worst(family: list[dict[str, Any]]) -> tuple[float | None, str]:
    """The highest ratio over every member and setting, and where; None when none measured."""
    found = [
        (row["ratio_vs_fixed"], f"{one['member']}, {name.removeprefix('taskwatch ')}")
        for one in family
        for name, row in one["strategies"].items()
        if name.startswith("taskwatch") and row.get("ratio_vs_fixed")
    ]
    if not found:
        return None, "no member measured"
    return max(found)


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


def _spread(ratios: list[float | None]) -> str:
    """Several samples' ratios as "lowest-highest (n)"; "-" for one sample."""
    if len(ratios) < 2:
        return "-"
    if any(r is None for r in ratios):
        return "off curve in some"
    found = [r for r in ratios if r is not None]
    return f"{min(found):.2f}-{max(found):.2f}x ({len(found)})"


def _fmt(ratio: float | None) -> str:
    return f"{ratio:.2f}x" if ratio is not None else "off curve"


def verdicts(family: list[dict[str, Any]]) -> list[tuple[str, str, float | None, Any, str]]:
    """Every cell: (member, setting, taskwatch's ratio, its bounds, verdict)."""
    out = []
    for one in family:
        for low, high in OURS:
            setting = f"{low:g}-{high:g}s"
            ratio = one["strategies"][f"taskwatch {setting}"].get("ratio_vs_fixed")
            bound = one["bounds"][setting]
            out.append((one["member"], setting, ratio, bound, cell_verdict(ratio, bound["best"])))
    return out


def report(family: list[dict[str, Any]], two: dict[str, Any], quick: bool) -> None:
    for one in family:
        say(
            f"\nFreshness, {one['member']}: {one['tasks']} tasks in {one['samples']} "
            f"sample(s), {one['changes_per_task']:.1f} changes each after the start, "
            f"{one['expected_changes']} changes in all, "
            f"{one['server'].get('requests', 0)} requests served, "
            f"simulated time x{one['speed']:g} (all figures in simulated seconds)"
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
                    f"{ratio:.2f}x"
                    if ratio
                    else ("-" if name.startswith("fixed") else "off curve"),
                    _spread(row.get("ratio_per_sample", [])),
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
                    "per sample",
                ],
            )
        )
    say(
        f"\nFreshness over the family, against the target: taskwatch's requests / fixed "
        f"polling's at equal mean delay <= {TARGET:g}x on every cell. The bound is the best "
        "possible on the same tasks, as far as it is known (the lowest of the offline "
        "model's phase, renewal and inspection oracles); where it lies above the target, no "
        "policy is known to meet it. Per sample: the "
        "spread over the samples pooled in the figure; offline: the offline model on the "
        "same tasks (no latency)."
    )
    cells = verdicts(family)
    by_cell = {(one["member"], s): one for one in family for s in one["bounds"]}
    summary = []
    for member, setting, ratio, bound, said in sorted(
        cells, key=lambda c: -(c[2] if c[2] is not None else math.inf)
    ):
        row = by_cell[(member, setting)]["strategies"][f"taskwatch {setting}"]
        offline = [r for r in row["offline_per_sample"] if r is not None]
        summary.append(
            (
                member,
                setting,
                f"<= {TARGET:g}x",
                _fmt(bound["best"]),
                _fmt(ratio),
                _spread(row["ratio_per_sample"]),
                _fmt(statistics.fmean(offline)) if offline else "off curve",
                said,
            )
        )
    say(
        table(
            summary,
            [
                "workload",
                "setting",
                "target",
                "bound",
                "taskwatch",
                "per sample",
                "offline",
                "verdict",
            ],
        )
    )
    met = sum(c[4] == "met" for c in cells)
    infeasible = [c for c in cells if c[4].startswith("infeasible")]
    missed = [c for c in cells if c[4].startswith("MISSED")]
    highest, where = worst(family)
    if highest is None:
        say(f"worst case: none measured (target <= {TARGET:g}x on every cell: MISSES)")
    else:
        say(
            f"worst case {highest:.2f}x ({where}); target <= {TARGET:g}x on every cell: "
            f"{verdict(highest, TARGET) if not missed else 'MISSES'}"
        )
    say(
        f"{met} of {len(cells)} cells met, {len(missed)} missed, {len(infeasible)} infeasible "
        f"(bound above {TARGET:g}x)"
        + (
            ": taskwatch within "
            + f"{max(c[2] / c[3]['best'] for c in infeasible if c[2] is not None):.2f}x"
            + " of the bound on them"
            if any(c[2] is not None for c in infeasible)
            else ""
        )
    )
    feasible = [c for c in cells if not c[4].startswith("infeasible")]
    if feasible:
        high = max(feasible, key=lambda c: c[2] if c[2] is not None else math.inf)
        say(
            f"where the bound allows {TARGET:g}x ({len(feasible)} of {len(cells)}): worst "
            f"{_fmt(high[2])} ({high[0]}, {high[1]})"
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
        "freshness-quick" if quick else "freshness",
        {"queue_like": family[0], "family": family, "binding_budget": two},
    )
    path = plots.requests_vs_delay(family[0], plots.images_dir(quick) / "requests-vs-delay.png")
    say(f"figure: {path}")


async def run(quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    return await part1(quick), await part2(quick)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run that checks it works")
    args = parser.parse_args(argv)
    family, two = asyncio.run(run(args.quick))
    report(family, two, args.quick)


if __name__ == "__main__":
    main()
