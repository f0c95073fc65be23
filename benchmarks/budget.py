"""Benchmark 4: a binding budget on a heterogeneous workload.

    python -m benchmarks.budget [--quick]

The workload (``_workloads.budget_mix``): N tasks live at once, each pending for Exp(mean
10 min), then running 1-10 min with results rising every 3-30 s (log-uniform mean gap), then
completed; each finished task is replaced at once by a new one, which reaches the watcher
through an async iterable. The budget, 90 requests a minute for 200 tasks, polls each task
about every two minutes at best: it binds all the time.

Live, over real sockets and time-compressed: taskwatch's ``watch_many`` against a round-robin
poller (every live task in turn, new ones at the back) at exactly the same client-side budget,
each on its own simulated API process holding an identical copy of the workload, which
enforces a limit (100 a minute, so that its whole-second reset times, compressed, do not eat the
budget) and counts 429s. Both run side by side
in one event loop.

Offline, in simulated time with no sockets: the same workload polled slot by slot by
round-robin (new tasks at the back of the ring), by the index of ``taskwatch._priority``
learning its rates from its own polls as the scheduler does (a new task ranked as pending
since it arrived), and by that index given each task's true rates. The last is this
workload's estimate of the best possible, reported as a ratio to round-robin beside the live
ratio, also at the budget the live run actually spent (a busy machine's event loop spends a
little less than it is allowed), so that live and offline compare at one budget. The same
three run on a second mix (shorter pending and running spells, a wider spread of rates)
that the index was not designed on, and, offline, over a sweep of budgets on both mixes: the
figure of delay against the budget (``plots.delay_vs_budget``, the first mix:
docs/images/delay-vs-budget.png from a full run; ``--quick`` sweeps three budgets of its
smaller workload and writes the figure to benchmarks/results/), and the index's worst ratio
to round-robin over every budget of both. Last, the frontier of starts against the mean, offline
on both mixes: the pending tasks given 1.0 down to 0.7 times round-robin's share of the slots
(``_share_pick``), to show what seeing starts as soon as round-robin costs.

Detection delay: from a task's start (its first state other than pending), each rise of its
results, or its completion, to the first snapshot that shows it. Events in the measurement
window only; one still unseen at the end counts as seen at the end. Starts are also reported
by their p99 and their longest delay: a mean could hide a few pending tasks left waiting.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import contextlib
import random
import statistics
from collections.abc import AsyncIterator
from typing import Any

import taskwatch
from taskwatch import _priority
from taskwatch.testing import ScriptStep

from . import plots
from ._common import say, table, verdict, write_result
from ._sim_server import SimProcess
from ._workloads import budget_mix
from ._workloads import events as script_events

Seen = list[tuple[float, str, int, bool]]  # (simulated receive time, state, results, is_done)
Event = tuple[float, str, int]  # (simulated time, kind, total_results)

MIN_INTERVAL, MAX_INTERVAL = 1.0, 30.0  # taskwatch's defaults, in simulated seconds

# Round-robin's requests in flight at once: enough that latency never leaves a slot unspent
# (the budget, not the workers, sets its pace).
_RR_WORKERS = 32


def _shows(kind: str, results: int, state: str, total: int, done: bool) -> bool:
    if kind == "done":
        return done
    if kind == "start":
        return state != "pending"
    return total >= results


def delays(
    events: dict[str, list[Event]],
    seen: dict[str, Seen],
    window: tuple[float, float],
    end: float,
) -> dict[str, list[float]]:
    """Detection delays by kind (``start``, ``change``, ``done``) and ``all``."""
    out: dict[str, list[float]] = collections.defaultdict(list)
    for task_hash, task_events in events.items():
        snapshots = seen.get(task_hash, [])
        for at, kind, results in task_events:
            if not window[0] <= at <= window[1]:
                continue
            delay = end - at
            for received, state, total, done in snapshots:
                if received >= at - 0.5 and _shows(kind, results, state, total, done):
                    delay = max(0.0, received - at)
                    break
            out[kind].append(delay)
            out["all"].append(delay)
    return out


def summary(by_kind: dict[str, list[float]]) -> dict[str, float]:
    every = sorted(by_kind["all"])
    return {
        "mean_all": statistics.fmean(every),
        "mean_change": statistics.fmean(by_kind["change"]),
        "mean_done": statistics.fmean(by_kind["done"]),
        "mean_start": statistics.fmean(by_kind["start"]),
        "p99_all": _quantile(every, 0.99),
        "p99_start": _quantile(sorted(by_kind["start"]), 0.99),
        "max_start": max(by_kind["start"]),
        "events": len(every),
    }


def first_snapshots(
    created: dict[str, float], seen: dict[str, Seen], window: tuple[float, float], end: float
) -> dict[str, float]:
    """How long a watch of a task arriving in ``window`` waited for its first snapshot (a
    task never seen by ``end`` counts as waiting until then): the mean and the longest."""
    waits = [
        (snapshots[0][0] if (snapshots := seen.get(task_hash)) else end) - at
        for task_hash, at in created.items()
        if window[0] <= at <= window[1]
    ]
    return {"mean_first": statistics.fmean(waits), "max_first": max(waits)}


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- offline: slot by slot, in simulated time ----------------------------------------------


class _Offline:
    """One task as a poller knows it, for the offline run."""

    __slots__ = (
        "ats",
        "changes_seen",
        "created",
        "done",
        "last_pages",
        "last_poll",
        "last_results",
        "phase",
        "phase_since",
        "polled",
        "steps",
        "true_rate",
    )

    def __init__(self, created: float, steps: list[ScriptStep], true_rate: float) -> None:
        self.created = created
        self.steps = steps
        self.ats = [s.at for s in steps]
        self.true_rate = true_rate
        self.last_poll = created  # a new watch counts as pending since it was created
        self.polled = False
        self.done = False
        self.phase = _priority.Phase.PENDING
        self.phase_since = created
        self.changes_seen = 0
        self.last_pages = self.last_results = 0

    def poll(self, now: float, fleet: _Fleet) -> tuple[str, int, bool]:
        """What the scheduler's ``_learn`` does with a snapshot, the fleet's figures too."""
        step = self.steps[bisect.bisect_right(self.ats, now) - 1]
        since = now - self.last_poll if self.polled else None
        unseen_since = self.last_poll  # the creation time before the first poll
        self.polled = True
        self.last_poll = now
        phase = _priority.Phase.PENDING if step.status == "pending" else _priority.Phase.RUNNING
        if since is not None and self.phase is _priority.Phase.PENDING:
            fleet.pending_for += since
            fleet.starts += phase is not _priority.Phase.PENDING
        elif since is not None:
            changed = step.total_results != self.last_results or step.is_done
            changes = max(step.total_pages - self.last_pages, 1) if changed else 0
            self.changes_seen += changes
            fleet.changes += changes
            fleet.running_for += since
            fleet.ends += step.is_done
        if phase is not self.phase:
            self.phase = phase
            ran_for, self.changes_seen = _priority.started(
                step.total_pages, now - unseen_since, fleet.rate(), since is not None
            )
            self.phase_since = now - ran_for
        self.last_pages, self.last_results = step.total_pages, step.total_results
        self.done = step.is_done
        return step.status, step.total_results, step.is_done


def _true_rate(steps: list[ScriptStep]) -> float:
    running = [s for s in steps if s.status == "running"]
    if not running:
        return 1.0 / MAX_INTERVAL
    spell = steps[-1].at - running[0].at
    return max(len(running) - 1, 1) / max(spell, 1.0)


def _spell(steps: list[ScriptStep]) -> float:
    running = [s for s in steps if s.status == "running"]
    return steps[-1].at - running[0].at if running else 0.0


class _Fleet:
    """What the offline index knows across tasks, as the scheduler learns it: starts in
    seconds seen pending; changes and ends in seconds seen running. The oracle knows the true
    figures instead."""

    def __init__(self, policy: str, pending_mean: float, tasks: list[_Offline]) -> None:
        self.policy = policy
        self.starts = self.changes = self.ends = 0
        self.pending_for = self.running_for = 0.0
        self.true_hazard = 1.0 / pending_mean
        self.true_fleet = statistics.fmean(r.true_rate for r in tasks)
        self.true_ending = 1.0 / max(statistics.fmean(_spell(r.steps) for r in tasks), 1.0)

    def rate(self) -> float:
        """The fleet's rate of change as the scheduler learns it."""
        return _priority.fleet_rate(self.changes, self.running_for, MIN_INTERVAL, MAX_INTERVAL)

    def score(self, record: _Offline, now: float) -> float:
        since = now - record.last_poll
        if self.policy == "round-robin":
            return since
        low, high = MIN_INTERVAL, MAX_INTERVAL
        oracle = self.policy == "oracle"
        fleet = (
            self.true_fleet
            if oracle
            else _priority.fleet_rate(self.changes, self.running_for, low, high)
        )
        if record.phase is _priority.Phase.PENDING:
            rate = (
                self.true_hazard
                if oracle
                else _priority.start_hazard(self.starts, self.pending_for, low, high)
            )
            return _priority.index(record.phase, since, rate, low, high, started_rate=fleet)
        if oracle:
            rate, ending = record.true_rate, self.true_ending
        else:
            ending = _priority.end_hazard(self.ends, self.running_for, low, high)
            rate = _priority.change_rate(
                record.changes_seen,
                now - record.phase_since,
                fleet,
                low,
                high,
                prior_for=1 / ending if self.ends else None,
            )
        return _priority.index(record.phase, since, rate, low, high, ending=ending)


def offline(
    tasks: list[tuple[float, list[ScriptStep]]],
    rate: float,
    horizon: float,
    window: tuple[float, float],
    policy: str,
    pending_mean: float,
) -> dict[str, float]:
    """Poll ``tasks`` one slot every ``1 / rate`` seconds by ``policy`` (``round-robin``,
    ``index``: taskwatch's estimates, ``oracle``: the index given the true rates, ``share
    F``: ``_share_pick``)."""
    records = sorted(
        (_Offline(c, steps, _true_rate(steps)) for c, steps in tasks), key=lambda r: r.created
    )
    share = float(policy.split()[1]) if policy.startswith("share") else None
    credit = 0.0
    fleet = _Fleet(policy, pending_mean, records)
    seen: dict[str, Seen] = {}
    live: list[_Offline] = []
    arriving = collections.deque(records)
    now = 0.0
    while now < horizon:
        while arriving and arriving[0].created <= now:
            live.append(arriving.popleft())
        due = [r for r in live if not r.polled or now - r.last_poll >= MIN_INTERVAL]
        if due:
            if share is None:
                best = max(due, key=lambda r: fleet.score(r, now))
            else:
                best, credit = _share_pick(live, due, now, share, credit)
            state, total, done = best.poll(now, fleet)
            seen.setdefault(str(id(best)), []).append((now, state, total, done))
            if done:
                live.remove(best)
        now += 1.0 / rate
    events = {str(id(r)): script_events(r.steps) for r in records}
    return summary(delays(events, seen, window, horizon))


def _share_pick(
    live: list[_Offline], due: list[_Offline], now: float, share: float, credit: float
) -> tuple[_Offline, float]:
    """The frontier of starts against the mean: the tasks last seen pending get ``share``
    times round-robin's share of the slots (their count over all, as a credit), the longest
    unpolled first, and the others the rest, the longest unpolled first. At ``share`` 1.0 a
    start is seen as soon as round-robin sees it; below, the running tasks get what the
    pending ones give up. Returns the task polled and the credit left."""
    pending = sum(r.phase is _priority.Phase.PENDING for r in live)
    credit = min(credit + share * pending / len(live), 2.0)
    waiting = [r for r in due if r.phase is _priority.Phase.PENDING]
    running = [r for r in due if r.phase is not _priority.Phase.PENDING]
    if waiting and (credit >= 1.0 or not running):
        return max(waiting, key=lambda r: now - r.last_poll), max(credit - 1.0, 0.0)
    return max(running, key=lambda r: now - r.last_poll), credit


# -- live: real sockets, compressed time ---------------------------------------------------


async def _arrivals(sim: SimProcess) -> AsyncIterator[str]:
    """Each task's hash at its creation time, in simulated time."""
    for task_hash, created in sorted(sim.created.items(), key=lambda kv: kv[1]):
        wait = (created - sim.sim_now()) / sim.speed
        if wait > 0:
            await asyncio.sleep(wait)
        yield task_hash


def _record(sim: SimProcess, seen: dict[str, Seen], task: taskwatch.Task) -> None:
    seen.setdefault(task.hash_value, []).append(
        (sim.sim_now(), task.status.status, task.total_results, task.is_done)
    )


def _budget(sim: SimProcess, rpm: float) -> taskwatch.RateLimiter:
    """The client's budget, time-compressed: ``rpm`` simulated requests a minute, with the
    limiter's burst of one second's worth counted in simulated seconds too. (Its default, one
    real second's worth, would be twenty simulated seconds of budget at once: enough to empty
    the server's window, whose whole-second reset, compressed, then pauses every caller for
    up to twenty simulated seconds, wasting a sixth of the budget of both strategies.)"""
    return taskwatch.RateLimiter(rpm * sim.speed, burst=max(1.0, rpm / 60.0))


async def _taskwatch(
    sim: SimProcess, rpm: float, seen: dict[str, Seen], stop: asyncio.Event
) -> taskwatch.ClientStats:
    async with taskwatch.Client(
        sim.api_key, base_url=sim.base_url, limiter=_budget(sim, rpm)
    ) as client:

        async def consume() -> None:
            stream = client.watch_many(
                _arrivals(sim),
                min_interval=MIN_INTERVAL / sim.speed,
                max_interval=MAX_INTERVAL / sim.speed,
                key=lambda task: (task.status.status, task.total_results),
            )
            async with contextlib.aclosing(stream):
                async for task in stream:
                    _record(sim, seen, task)

        consumer = asyncio.ensure_future(consume())
        await stop.wait()
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        return client.stats()


async def _round_robin(
    sim: SimProcess, rpm: float, seen: dict[str, Seen], stop: asyncio.Event
) -> taskwatch.ClientStats:
    """Every live task in turn, one request per budget slot; new tasks join at the back."""
    async with taskwatch.Client(
        sim.api_key, base_url=sim.base_url, limiter=_budget(sim, rpm)
    ) as client:
        ring: collections.deque[str] = collections.deque()
        arrived = asyncio.Event()

        async def feed() -> None:
            async for task_hash in _arrivals(sim):
                ring.append(task_hash)
                arrived.set()

        async def worker() -> None:
            while True:
                while not ring:
                    arrived.clear()
                    await arrived.wait()
                task_hash = ring.popleft()
                task = await client.get_task(task_hash)
                _record(sim, seen, task)
                if not task.is_done:
                    ring.append(task_hash)

        jobs = [asyncio.ensure_future(feed())]
        jobs += [asyncio.ensure_future(worker()) for _ in range(_RR_WORKERS)]
        await stop.wait()
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        return client.stats()


async def live(quick: bool) -> dict[str, Any]:
    tasks, rpm, speed, horizon = (60, 27.0, 20.0, 900.0) if quick else (200, 90.0, 20.0, 3000.0)
    args = ["--workload", "budget", "--tasks", str(tasks), "--seed", "5", "--speed", str(speed)]
    # The server enforces a little more than the clients' budget (whose burst is compressed
    # too, see _budget): its X-RateLimit-Reset is whole seconds, which time compression would
    # turn into pauses of up to 20 simulated seconds and a budget that neither strategy could
    # spend. A burst past the budget still gets its 429s, and they are counted.
    args += ["--horizon", str(horizon), "--rate-limit", str(int(rpm * 10 / 9))]
    args += ["--rate-window", str(60.0 / speed)]
    sims = {"taskwatch": SimProcess(*args), "round-robin": SimProcess(*args)}
    seen: dict[str, dict[str, Seen]] = {name: {} for name in sims}
    stops = {name: asyncio.Event() for name in sims}
    loop = asyncio.get_running_loop()
    for name, sim in sims.items():
        loop.call_later((horizon - sim.sim_now()) / speed, stops[name].set)
    servers: dict[str, dict[str, int]] = {}
    try:
        stats = await asyncio.gather(
            _taskwatch(sims["taskwatch"], rpm, seen["taskwatch"], stops["taskwatch"]),
            _round_robin(sims["round-robin"], rpm, seen["round-robin"], stops["round-robin"]),
        )
    finally:
        for name, sim in sims.items():
            servers[name] = sim.close()
    window = (300.0, horizon - 300.0)
    sim = sims["taskwatch"]
    out: dict[str, Any] = {
        "tasks_live": tasks,
        "requests_per_minute": rpm,
        "speed": speed,
        "horizon": horizon,
        "window": window,
        "tasks_total": len(sim.created),
    }
    for (name, run_seen), client_stats in zip(seen.items(), stats, strict=True):
        row = summary(delays(sims[name].events, run_seen, window, horizon))
        row |= first_snapshots(sims[name].created, run_seen, window, horizon)
        row["requests"] = client_stats.requests
        row["client_429s"] = client_stats.rate_limited
        row["server_429s"] = servers[name].get("429", 0)
        out[name] = row
    return out


# The workloads of the offline runs: the live run's mix, and a second one (tasks pending half
# as long, running shorter, changing at a wider spread of rates) that the index was not
# designed on, so that a gain on the first is not an artefact of its shape.
MIXES: dict[str, dict[str, Any]] = {
    "default": {},
    "second": {"pending_mean": 300.0, "running": (30.0, 300.0), "gaps": (2.0, 60.0)},
}


def _workload(
    mix: str, quick: bool
) -> tuple[list[tuple[float, list[ScriptStep]]], float, tuple[float, float], float]:
    """(tasks, horizon, window, pending mean) of ``mix`` at the run's size."""
    tasks, horizon = (60, 900.0) if quick else (200, 3000.0)
    kwargs = MIXES[mix]
    workload = budget_mix(random.Random(5), tasks, horizon, **kwargs)
    return workload, horizon, (300.0, horizon - 300.0), kwargs.get("pending_mean", 600.0)


POLICIES = ("round-robin", "index", "oracle")


def offline_runs(
    quick: bool, rpm: float | None = None, mix: str = "default"
) -> dict[str, dict[str, float]]:
    """The three policies offline on ``mix`` at ``rpm`` requests a minute (default: the
    live run's budget)."""
    if rpm is None:
        rpm = 27.0 if quick else 90.0
    workload, horizon, window, pending_mean = _workload(mix, quick)
    return {
        policy: offline(workload, rpm / 60.0, horizon, window, policy, pending_mean)
        for policy in POLICIES
    }


SHARES = (1.0, 0.9, 0.8, 0.7)  # the pending tasks' share of slots, times round-robin's


def frontier(quick: bool, mix: str = "default") -> dict[str, dict[str, float]]:
    """Starts against the mean, offline on ``mix`` at the live run's budget: round-robin,
    the index, and the pending tasks given each of ``SHARES`` times round-robin's share of
    the slots (``_share_pick``)."""
    rpm = 27.0 if quick else 90.0
    workload, horizon, window, pending_mean = _workload(mix, quick)
    policies = ("round-robin", "index", *(f"share {f:g}" for f in SHARES))
    return {
        policy: offline(workload, rpm / 60.0, horizon, window, policy, pending_mean)
        for policy in policies
    }


BUDGETS = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)  # requests a second for the 200 tasks


def sweep(quick: bool, mix: str = "default") -> dict[str, dict[str, float]]:
    """Mean detection delay against the budget, offline on ``mix`` (quick: its smaller
    workload, at three budgets scaled to its 60 tasks)."""
    workload, horizon, window, pending_mean = _workload(mix, quick)
    budgets = tuple(rate * 60 / 200 for rate in BUDGETS[::3]) if quick else BUDGETS
    out: dict[str, dict[str, float]] = {}
    for policy in POLICIES:
        out[policy] = {
            str(rate): offline(workload, rate, horizon, window, policy, pending_mean)["mean_all"]
            for rate in budgets
        }
    return out


def report(result: dict[str, Any], quick: bool) -> None:
    run = result["live"]
    ours, rr = run["taskwatch"], run["round-robin"]
    say(
        f"\nBinding budget: {run['tasks_live']} live tasks at {run['requests_per_minute']:g} "
        f"requests/minute, {run['tasks_total']} tasks in {run['horizon']:g} simulated s "
        f"(x{run['speed']:g}), events in {run['window'][0]:g}-{run['window'][1]:g} s"
    )
    rows = []
    for name in ("mean_all", "mean_change", "mean_done", "mean_start", "p99_start", "p99_all"):
        rows.append((name, f"{ours[name]:.1f}", f"{rr[name]:.1f}", f"{ours[name] / rr[name]:.2f}x"))
    rows.append(("requests", ours["requests"], rr["requests"], "-"))
    rows.append(("429s (server)", ours["server_429s"], rr["server_429s"], "-"))
    say(table(rows, ["figure (simulated s)", "taskwatch", "round-robin", "ratio"]))
    ratio_all = ours["mean_all"] / rr["mean_all"]
    ratio_done = ours["mean_done"] / rr["mean_done"]
    p99_vs_mean = ours["p99_all"] / rr["mean_all"]
    say(f"mean delay vs round-robin {ratio_all:.2f}x (target <= 0.85x: {verdict(ratio_all, 0.85)})")
    say(
        f"completion delay vs round-robin {ratio_done:.2f}x "
        f"(target <= 0.65x: {verdict(ratio_done, 0.65)})"
    )
    say(f"p99 / round-robin's mean {p99_vs_mean:.2f}x (target <= 3x: {verdict(p99_vs_mean, 3.0)})")
    start = ours["mean_start"] / rr["mean_start"]
    start_tail = ours["p99_start"] / rr["p99_start"]
    say(
        f"start delay vs round-robin {start:.2f}x, its p99 {start_tail:.2f}x, the longest "
        f"{ours['max_start']:.0f} s against {rr['max_start']:.0f} s (reported: starts must "
        "not starve)"
    )
    say(
        f"a new watch's first snapshot: after {ours['mean_first']:.1f} s on average, "
        f"{ours['max_first']:.0f} s at the longest, against round-robin's {rr['mean_first']:.1f} "
        f"s and {rr['max_first']:.0f} s (reported: while the budget binds, a first poll is "
        "ranked with the others)"
    )
    say(
        f"429s: {ours['server_429s']} (target 0: {verdict(float(ours['server_429s']), 0.0)}); "
        f"requests {ours['requests']} vs round-robin {rr['requests']}"
    )
    say(
        "\nOffline, slot by slot in simulated time (ratios vs round-robin; p99 vs round-robin's "
        "mean):"
    )
    spent = result["offline_spent"]
    runs = {
        f"{mix} mix, {run['requests_per_minute']:g}/min": off
        for mix, off in result["offline"].items()
    }
    runs[f"default mix at the {spent['rpm']:.1f}/min the live run spent"] = spent["policies"]
    for title, off in runs.items():
        say(f"  {title}:")
        base = off["round-robin"]
        for name in POLICIES:
            row = off[name]
            say(
                f"    {name:12s} mean {row['mean_all']:6.1f}s "
                f"({row['mean_all'] / base['mean_all']:.2f}x)"
                f"  completions {row['mean_done'] / base['mean_done']:.2f}x"
                f"  starts {row['mean_start'] / base['mean_start']:.2f}x"
                f" (p99 {row['p99_start'] / base['p99_start']:.2f}x)"
                f"  changes {row['mean_change'] / base['mean_change']:.2f}x"
                f"  p99 {row['p99_all'] / base['mean_all']:.2f}x"
            )
    base = spent["policies"]["round-robin"]
    bound = spent["policies"]["oracle"]["mean_all"] / base["mean_all"]
    own = spent["policies"]["index"]["mean_all"] / base["mean_all"]
    say(
        f"best possible on this workload (the index given the true rates, at the budget the "
        f"live run spent): about {bound:.2f}x round-robin; the index with its own estimates "
        f"{own:.2f}x; taskwatch live {ratio_all:.2f}x (live / bound {ratio_all / bound:.2f})"
    )
    if "frontier" in result:
        say(
            "\nOffline, starts against the mean (ratios vs round-robin): the pending tasks "
            "given a share of the slots, times round-robin's, the longest unpolled first:"
        )
        for mix, rows in result["frontier"].items():
            say(f"  {mix} mix:")
            base = rows["round-robin"]
            for name, row in rows.items():
                say(
                    f"    {name:12s} mean {row['mean_all'] / base['mean_all']:.2f}x"
                    f"  completions {row['mean_done'] / base['mean_done']:.2f}x"
                    f"  starts {row['mean_start'] / base['mean_start']:.2f}x"
                    f" (p99 {row['p99_start'] / base['p99_start']:.2f}x)"
                    f"  p99 {row['p99_all'] / base['mean_all']:.2f}x"
                )
    if "sweep" in result:
        say(
            f"\nOffline, mean delay against the budget ({run['tasks_live']} tasks; "
            "requests/minute: s, and the ratio to round-robin):"
        )
        worst = 0.0
        for mix, points_by_policy in result["sweep"].items():
            say(f"  {mix} mix:")
            base_points = points_by_policy["round-robin"]
            for name, points in points_by_policy.items():
                cells = "  ".join(
                    f"{float(r) * 60:g}: {d:.1f} ({d / base_points[r]:.2f}x)"
                    for r, d in points.items()
                )
                say(f"    {name:12s} {cells}")
            worst = max(worst, *(d / base_points[r] for r, d in points_by_policy["index"].items()))
        say(
            f"the index's worst ratio to round-robin over the sweep: {worst:.2f}x "
            f"(never much worse at any budget, <= 1.10x: {verdict(worst, 1.10)})"
        )
        path = plots.delay_vs_budget(
            result["sweep"]["default"], run, plots.images_dir(quick) / "delay-vs-budget.png"
        )
        say(f"figure: {path}")
    path = write_result("budget-quick" if quick else "budget", result)
    say(f"results: {path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run that checks it works")
    parser.add_argument("--offline-only", action="store_true", help="skip the live run")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"offline": {mix: offline_runs(args.quick, mix=mix) for mix in MIXES}}
    if args.offline_only:
        for mix, runs in result["offline"].items():
            for name, row in runs.items():
                say(f"{mix} {name}: {row}")
        return
    result["live"] = asyncio.run(live(args.quick))
    # The live run's own bound: the offline policies at the budget it actually spent (a busy
    # machine's event loop spends a little less than the configured one).
    rpm = result["live"]["taskwatch"]["requests"] / result["live"]["horizon"] * 60.0
    result["offline_spent"] = {"rpm": rpm, "policies": offline_runs(args.quick, rpm)}
    result["frontier"] = {mix: frontier(args.quick, mix) for mix in MIXES}
    result["sweep"] = {mix: sweep(args.quick, mix) for mix in MIXES}
    report(result, args.quick)


if __name__ == "__main__":
    main()
