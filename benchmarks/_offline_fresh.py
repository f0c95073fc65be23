"""The freshness family offline: a deterministic discrete-event model, in seconds of CPU.

    python -m benchmarks._offline_fresh [--tasks N] [--seeds K] [--clients C] [--json PATH]

The live benchmark (``benchmarks.freshness``) runs every strategy over real sockets against a
simulated API, on a shared machine: slow, and noisy. This model runs the same task scripts
(``_workloads.queue_like``, from the same seeds) through the same decisions without a socket
or a clock, so that every member and setting takes a fraction of a
second and a change of policy can be judged on the whole family at once (``_family.FAMILY``):

- **taskwatch**: each poll goes through what ``Scheduler._deliver`` does with a snapshot
  (``_policy.decide`` for the caller, ``_policy.update_pace``, and what ``Scheduler._learn``
  learns about the stream and the fleet, which is mirrored here and checked against the real
  scheduler by ``tests/test_offline_model.py``) and the next poll is
  ``_policy.poll_interval``'s figure: the real pure policy, not a copy.
- **previous**: the schedule taskwatch had before the sqrt-rule policy (exponential backoff
  by 1.6 from ``min_interval``, half the pace while running, backoff again after three quiet
  polls), kept here as the "before" of the before/after figures.
- **fixed**: a fixed-interval loop at every interval of a dense sweep, as the live benchmark's
  fixed pollers do (poll, sleep, poll).
- **phase oracle**: a bound. It knows each task's true phase and true change rate: it polls a
  pending task only as the ``max_interval`` promise demands, and a running one from the very
  moment it starts, at the delay-optimal square-root rule (Sia, Cho & Cho, TKDE 2007: interval
  ``sqrt(2 c / r)`` for change rate ``r``, within ``[min_interval, max_interval]``), swept
  over the common level ``c``. No policy that only sees snapshots can know more, so its best
  ratio is an optimistic bound for Poisson changes; its ratio at taskwatch's own mean delay
  shows what the policy loses at the operating point it chose.
- **renewal oracle**: a second bound, for changes that come at regular gaps rather than as a
  Poisson stream (the square-root rule's premise): it also knows the exact time of each change
  once it has seen it, and the member's shortest gap, so it waits that long after each change
  before polling again.
- **inspection oracle**: a third, with what the renewal oracle knows, that spends its polls
  after each change as the optimal inspection schedule for a uniform gap does (Barlow, Hunter
  & Proschan, 1963: with a constant density, each interval is the one before it less a
  constant): no poll until the shortest gap and a first interval have passed, then intervals
  shrinking by a constant share of the first, within ``[min_interval, max_interval]``, swept
  over the first interval and the share. A renewal oracle's poll at the very end of the
  shortest gap almost never finds anything, so this one needs fewer polls at equal delay.
- **two-interval**: what knowing the workload (not the moments) buys a policy that sees the
  start only by polling: the best pair of fixed intervals, one while pending and one while
  running, over a grid within ``[min_interval, max_interval]``. Achievable, so it bounds the
  best possible from above; the truth lies between it and the oracles.

A cell where no oracle meets 0.5x is taken as infeasible. An oracle is a policy that knows
more than taskwatch can, so the best policy of its kind bounds what taskwatch can reach; an
oracle's own schedule is only one of its kind, so its ratio estimates that bound from above
(a better oracle may lower it, as the inspection oracle lowered the renewal oracle's).

With ``--clients C`` the tasks are shared by C clients, each learning its fleet's rates from
its own share alone, as the live benchmark's clients of 20 tasks do (``--tasks 200 --clients
10``). Every ratio is the live benchmark's: requests per task over fixed polling's at the same mean
detection delay (interpolated on the fixed curve), over each server-side change (each rise of
``total_results``, and the end). Request latency is left out (``--latency`` adds a constant).
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import itertools
import json
import math
import random
import statistics
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from taskwatch import Task, TaskStatus, _policy, _priority
from taskwatch.testing import ScriptStep

from ._common import say, table
from ._family import FAMILY, OURS, TARGET, Member, cell_verdict, detection_delays, seed
from ._workloads import changes, queue_like

Seen = list[tuple[float, int, bool]]
Script = list[ScriptStep]

_PENDING, _RUNNING = _priority.Phase.PENDING, _priority.Phase.RUNNING


def scripts(member: Member, tasks: int, seed: int) -> list[Script]:
    """The member's task scripts, as the simulated API builds them from ``seed``."""
    rng = random.Random(seed)
    scale = member.scale

    def scaled(pair: tuple[float, float]) -> tuple[float, float]:
        return (float(f"{pair[0] * scale:g}"), float(f"{pair[1] * scale:g}"))

    return [
        queue_like(rng, scaled(member.pending), scaled(member.running), scaled(member.gaps))
        for _ in range(tasks)
    ]


def _at(script: Script, ats: list[float], now: float) -> ScriptStep:
    return script[max(bisect.bisect_right(ats, now) - 1, 0)]


def _snapshot(step: ScriptStep) -> Task:
    return Task(
        hash_value="h",
        status=TaskStatus(
            status=step.status,
            is_done=step.is_done,
            total_results=step.total_results,
            total_pages=step.total_pages,
        ),
    )


class _Stream:
    """What ``Scheduler`` keeps per stream (``_scheduler._Stream``), for one watch."""

    __slots__ = (
        "change_window",
        "changes_seen",
        "last",
        "last_change_at",
        "last_key",
        "last_poll",
        "last_state",
        "pace",
        "phase",
        "phase_since",
        "quiet",
        "sub_state",
    )

    def __init__(self) -> None:
        self.last_key: object = _policy.unset()
        self.sub_state: object = None
        self.last: Task | None = None
        self.last_state: object = None
        self.quiet = 0  # polls since the last change (the previous schedule's count)
        self.pace: float | None = None
        self.last_change_at: float | None = None
        self.change_window = 0.0
        self.phase = _PENDING
        self.phase_since = 0.0  # every watch is subscribed at time 0
        self.changes_seen = 0
        self.last_poll: float | None = None


class _Fleet(_priority.FleetLearning):
    """What ``Scheduler`` learns across its streams, through the same ``FleetLearning``."""

    __slots__ = ()

    def learn_from(
        self,
        stream: _Stream,
        previous: Task | None,
        task: Task,
        emitted: bool,
        now: float,
        interval: tuple[float, float],
    ) -> None:
        """``Scheduler._learn`` (``tests/test_offline_model.py`` checks that they agree);
        ``interval`` is the watch's (min_interval, max_interval)."""
        status = task.status
        self.learn(
            stream,
            _PENDING if status.status == "pending" else _RUNNING,
            status.total_pages,
            None if previous is None else previous.status.total_pages,
            status.is_done,
            emitted,
            now,
            *interval,
        )


Interval = Callable[[_Stream, _Fleet, float, float, float, float], float]


def _previous(
    stream: _Stream, fleet: _Fleet, now: float, low: float, high: float, rand: float
) -> float:
    """The schedule before the sqrt-rule policy (the "before" figures)."""
    growth, jitter, fraction, overdue_polls = 1.6, 0.2, 0.5, 3
    if stream.pace is None:
        base = low * growth ** min(stream.quiet, 64)
    else:
        base = max(low, fraction * stream.pace)
        overdue = stream.quiet - overdue_polls
        if overdue > 0:
            base *= growth ** min(overdue, 64)
    return max(low, min(base, high) * (1.0 - jitter * rand))


def _taskwatch(
    stream: _Stream, fleet: _Fleet, now: float, low: float, high: float, rand: float
) -> float:
    """taskwatch's policy, as ``Scheduler._deliver`` calls it."""
    return taskwatch_taught(stream, fleet.taught(), now, low, high, rand)


def taskwatch_taught(
    stream: _Stream,
    taught: _policy.Fleet,
    now: float,
    low: float,
    high: float,
    rand: float,
    cost: float | None = None,
) -> float:
    """taskwatch's policy for ``stream``, given what its fleet ``taught`` (and a request's
    price, ``cost``: the policy's own by default)."""
    since = None if stream.last_change_at is None else now - stream.last_change_at
    return _policy.poll_interval(
        low,
        high,
        rand,
        running=stream.phase is _RUNNING,
        changes_seen=stream.changes_seen,
        running_for=now - stream.phase_since,
        pace=stream.pace,
        since_change=since,
        change_window=stream.change_window,
        fleet=taught,
        cost=cost,
    )


POLICIES: dict[str, Interval] = {"previous": _previous, "taskwatch": _taskwatch}


def _deliver(
    stream: _Stream, fleet: _Fleet, step: ScriptStep, now: float, interval: tuple[float, float]
) -> tuple[bool, bool]:
    """``Scheduler._deliver`` on one snapshot: (emitted, done)."""
    task = _snapshot(step)
    state = step.status
    previous, stream.last = stream.last, task
    decision = _policy.decide(stream.last_key, stream.sub_state, task, _policy.total_results)
    stream.sub_state = state
    if decision.emit:
        stream.last_key = _policy.total_results(task)
    emitted = decision.emit
    stream.quiet = 0 if emitted or state != stream.last_state else stream.quiet + 1
    polled_before = stream.last_poll
    fleet.learn_from(stream, previous, task, emitted, now, interval)
    _policy.note_poll(stream, state, emitted, now, polled_before)
    return emitted, decision.done


def run_policy(
    tasks: list[Script],
    interval: Interval,
    low: float,
    high: float,
    seed: int = 0,
    latency: float = 0.0,
    rand: Callable[[], float] | None = None,
) -> tuple[int, dict[int, Seen]]:
    """One client watching every task from time 0 (``watch_many``): requests, and the
    snapshots yielded per task as (time, total_results, is_done). The jitter's random
    numbers come from ``rand``, else from a generator seeded with ``seed``."""
    if rand is None:
        rand = random.Random(seed).random
    fleet = _Fleet()
    streams = [_Stream() for _ in tasks]
    ats = [[s.at for s in script] for script in tasks]
    heap = [(0.0, i) for i in range(len(tasks))]
    seen: dict[int, Seen] = {i: [] for i in range(len(tasks))}
    requests = 0
    while heap:
        sent, i = heapq.heappop(heap)
        now = sent + latency
        requests += 1
        step = _at(tasks[i], ats[i], sent)
        emitted, done = _deliver(streams[i], fleet, step, now, (low, high))
        if emitted:
            seen[i].append((now, step.total_results, step.is_done))
        if done:
            continue
        delay = interval(streams[i], fleet, now, low, high, rand())
        assert low - 1e-9 <= delay <= high + 1e-9, (delay, low, high)
        heapq.heappush(heap, (now + delay, i))
    return requests, seen


def _poll_times(script: Script, grid: Iterator[float]) -> Iterator[float]:
    end = script[-1].at
    for at in grid:
        yield at
        if at >= end:
            return


def _delays_and_requests(tasks: list[Script], polls: list[list[float]]) -> tuple[float, float]:
    """Mean detection delay and requests per task when task i is polled at ``polls[i]``."""
    delays: list[float] = []
    requests = 0
    for script, times in zip(tasks, polls, strict=True):
        requests += len(times)
        for at, _, _ in changes(script):
            k = bisect.bisect_left(times, at)
            delays.append(times[k] - at if k < len(times) else math.inf)
    return statistics.fmean(delays), requests / len(tasks)


def fixed(tasks: list[Script], interval: float, latency: float = 0.0) -> tuple[float, float]:
    """A fixed loop: (mean delay, requests per task)."""
    step = interval + latency
    polls = [list(_poll_times(s, (k * step + latency for k in itertools.count()))) for s in tasks]
    return _delays_and_requests(tasks, polls)


def _start(script: Script) -> float:
    return next(s.at for s in script if s.status != "pending")


def _true_rate(script: Script) -> float:
    """Changes per second over the running spell (the end counted as one)."""
    start = _start(script)
    return len(changes(script)) / max(script[-1].at - start, 1e-9)


def _pending_polls(start: float, every: float) -> list[float]:
    """Polls every ``every`` s from the first, at 0, while the task is pending (before
    ``start``), as an oracle that knows the start polls until it."""
    times: list[float] = []
    at = 0.0
    while at < start:
        times.append(at)
        at += every
    return times


def _two_phase_polls(script: Script, pending: float, running: float, know: bool) -> list[float]:
    """Poll every ``pending`` s while pending, every ``running`` s from the start: from the
    true start when ``know``, else from the first poll that shows it."""
    start, end = _start(script), script[-1].at
    times = _pending_polls(start, pending)
    at = start if know else (times[-1] + pending if times else 0.0)
    while True:
        times.append(at)
        if at >= end:
            return times
        at += running


def fixed_curve(
    member: Member, tasks: list[Script], latency: float, reach: bool = True
) -> list[tuple[float, float]]:
    """(mean delay, requests per task) of fixed polling, swept densely over the intervals the
    live benchmark sweeps in a full run (from its shortest to its longest, 24 steps per factor of
    10): a ratio off the live curve is off this one too."""
    intervals = member.fixed_intervals(reach)
    low, high = min(intervals), max(intervals)
    count = int(24 * math.log10(high / low)) + 1
    sweep = [low * (high / low) ** (k / (count - 1)) for k in range(count)]
    return sorted(fixed(tasks, i, latency) for i in sweep)


def interpolate(curve: list[tuple[float, float]], delay: float) -> float | None:
    """Requests at ``delay`` on the fixed-polling curve, None off it."""
    for (d0, r0), (d1, r1) in itertools.pairwise(curve):
        if d0 <= delay <= d1:
            return r0 + (r1 - r0) * (delay - d0) / (d1 - d0) if d1 > d0 else r0
    return None


def _ratio(curve: list[tuple[float, float]], delay: float, requests: float) -> float | None:
    same = interpolate(curve, delay)
    return requests / same if same else None


def _levels(low: float, high: float) -> list[float]:
    """Running intervals to sweep within [low, high] (20 per factor of 10)."""
    count = max(2, int(20 * math.log10(high / low)) + 1)
    return [low * (high / low) ** (k / (count - 1)) for k in range(count)]


def oracle(
    tasks: list[Script], curve: list[tuple[float, float]], low: float, high: float
) -> list[tuple[float, float]]:
    """The phase oracle's (mean delay, requests per task) over the square-root level, swept
    so that the fastest task's running interval covers ``[low, high]`` (see the module
    docstring)."""
    rates = [_true_rate(s) for s in tasks]
    fastest = max(rates)
    points = []
    for level in _levels(low, high):
        # the level c that polls the fastest task every ``level`` s: level = sqrt(2 c / r_max)
        c = level * level * fastest / 2.0
        polls = [
            _two_phase_polls(s, high, min(high, max(low, math.sqrt(2 * c / r))), know=True)
            for s, r in zip(tasks, rates, strict=True)
        ]
        points.append(_delays_and_requests(tasks, polls))
    return sorted(points)


def _renewal_polls(
    script: Script, gap_min: float, every: float, low: float, high: float
) -> list[float]:
    """The renewal oracle's polls of one task (see ``renewal``)."""
    start = _start(script)
    times = _pending_polls(start, high)
    anchor, last = start, times[-1] - low if times else start - low
    for change, _, _ in changes(script):
        at = max(anchor, last)
        while at + high < anchor + gap_min:  # the max_interval promise, even when quiet
            at += high
            times.append(at)
        at = max(anchor + gap_min, times[-1] + low if times else anchor)
        while True:
            times.append(at)
            if at >= change:
                break
            at += every
        anchor, last = change, at
    return times


def renewal(
    member: Member, tasks: list[Script], low: float, high: float
) -> list[tuple[float, float]]:
    """A second oracle, for changes that come at regular gaps rather than as a Poisson
    stream: it knows each task's start and the exact time of each change once it has seen it,
    and that the next change comes at least the member's shortest gap later. It polls a
    pending task only as ``max_interval`` demands, then from the shortest gap after each
    change every ``every`` seconds until it sees the next, swept over ``[low, high]``.
    Returns its (mean delay, requests per task) points."""
    gap_min = member.gaps[0] * member.scale
    points = []
    for every in _levels(low, high):
        polls = [_renewal_polls(s, gap_min, every, low, high) for s in tasks]
        points.append(_delays_and_requests(tasks, polls))
    return sorted(points)


def _inspection_polls(
    script: Script, gap_min: float, first: float, shrink: float, low: float, high: float
) -> list[float]:
    """The inspection oracle's polls of one task (see ``inspection``)."""
    start = _start(script)
    times = _pending_polls(start, high)
    anchor = start
    for change, _, _ in changes(script):
        if times and times[-1] >= change:  # its last poll has shown this change already
            anchor = change
            continue
        # No poll before the shortest gap and the first interval have passed, but for the
        # max_interval promise.
        due = anchor + gap_min + first
        while times and times[-1] + high < due and times[-1] < change:
            times.append(times[-1] + high)
        if times and times[-1] >= change:
            anchor = change
            continue
        at = min(max(due, times[-1] + low), times[-1] + high) if times else due
        step = first
        while True:
            times.append(at)
            if at >= change:
                break
            step = max(low, step - shrink)
            at += min(high, step)
        anchor = change
    return times


# The shares of the first interval by which the inspection oracle's intervals shrink.
_SHRINK_SHARES = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)


def inspection(
    member: Member, tasks: list[Script], low: float, high: float
) -> list[tuple[float, float]]:
    """A third oracle (see the module docstring): what the renewal oracle knows, and after
    each change no poll until the member's shortest gap and a first interval have passed,
    then intervals shrinking by a share of the first (the optimal inspection schedule of a
    uniform gap), swept over the first interval (within ``[low, high]`` and the spread of
    the gaps) and the share. Returns its (mean delay, requests per task) points."""
    gap_min = member.gaps[0] * member.scale
    spread = (member.gaps[1] - member.gaps[0]) * member.scale
    points = []
    for first in _levels(low, max(low, min(high, spread))):
        for share in _SHRINK_SHARES:
            polls = [_inspection_polls(s, gap_min, first, share * first, low, high) for s in tasks]
            points.append(_delays_and_requests(tasks, polls))
    return sorted(points)


def best_ratio(points: list[tuple[float, float]], curve: list[tuple[float, float]]) -> float | None:
    """The lowest ratio to fixed polling over ``points`` (mean delay, requests per task)."""
    ratios = [r for r in (_ratio(curve, d, q) for d, q in points) if r is not None]
    return min(ratios, default=None)


def ratio_at(
    points: list[tuple[float, float]], curve: list[tuple[float, float]], delay: float
) -> float | None:
    """The ratio to fixed polling of the frontier ``points`` at ``delay`` (None off either)."""
    requests = interpolate(points, delay)
    return _ratio(curve, delay, requests) if requests is not None else None


def two_interval(
    tasks: list[Script], curve: list[tuple[float, float]], low: float, high: float
) -> float | None:
    """The best pair of (pending, running) fixed intervals for a poller that sees the start
    only by polling."""
    best: float | None = None
    for pending in _levels(low, high)[::2]:
        for running in _levels(low, min(high, pending))[::2]:
            polls = [_two_phase_polls(s, pending, running, know=False) for s in tasks]
            ratio = _ratio(curve, *_delays_and_requests(tasks, polls))
            if ratio is not None and (best is None or ratio < best):
                best = ratio
    return best


def bounds(member: Member, tasks: list[Script], reach: bool = True) -> dict[str, dict[str, Any]]:
    """The best possible per setting of ``OURS`` on ``tasks`` (the member's scripts), against
    the fixed curve the live benchmark sweeps (``reach`` as it does): the phase, renewal and
    inspection oracles' best ratios, and the lowest of them as ``best``."""
    curve = fixed_curve(member, tasks, 0.0, reach)
    out: dict[str, dict[str, Any]] = {}
    for low, high in OURS:
        phase = best_ratio(oracle(tasks, curve, low, high), curve)
        renewal_best = best_ratio(renewal(member, tasks, low, high), curve)
        inspection_best = best_ratio(inspection(member, tasks, low, high), curve)
        found = [r for r in (phase, renewal_best, inspection_best) if r is not None]
        out[f"{low:g}-{high:g}s"] = {
            "phase": phase,
            "renewal": renewal_best,
            "inspection": inspection_best,
            "best": min(found) if found else None,
        }
    return out


def run_clients(
    tasks: list[Script],
    interval: Interval,
    low: float,
    high: float,
    seed: int = 0,
    latency: float = 0.0,
    clients: int = 1,
) -> tuple[int, dict[int, Seen]]:
    """``run_policy`` with the tasks split into ``clients`` consecutive shares as even as can
    be, each watched by a client of its own (its own fleet learning, its jitter seeded with
    ``seed`` plus its number): requests in all, and the snapshots per task."""
    if clients < 1:
        raise ValueError(f"clients must be at least 1, got {clients!r}")
    requests, seen = 0, dict[int, Seen]()
    for number in range(clients):
        first, last = len(tasks) * number // clients, len(tasks) * (number + 1) // clients
        sent, share = run_policy(tasks[first:last], interval, low, high, seed + number, latency)
        requests += sent
        seen.update({first + i: s for i, s in share.items()})
    return requests, seen


def measure(
    member: Member,
    tasks: int,
    seed: int,
    latency: float = 0.0,
    bounds: bool = True,
    clients: int = 1,
    policies: dict[str, Interval] | None = None,
) -> dict[str, Any]:
    """One member: every policy (``POLICIES`` unless ``policies`` are given) and setting,
    with the bounds, as ratios at equal delay; the policies' tasks watched by ``clients``
    clients (``run_clients``)."""
    family = scripts(member, tasks, seed)
    curve = fixed_curve(member, family, latency)
    expected = {str(i): changes(s) for i, s in enumerate(family)}
    out: dict[str, Any] = {"member": member.name, "settings": {}}
    for low, high in OURS:
        cell: dict[str, Any] = {}
        for name, interval in (POLICIES if policies is None else policies).items():
            requests, seen = run_clients(family, interval, low, high, seed, latency, clients)
            delays = detection_delays(expected, {str(i): s for i, s in seen.items()})
            delay = statistics.fmean(delays)
            cell[name] = {
                "requests_per_task": requests / tasks,
                "mean_delay": delay,
                "ratio": _ratio(curve, delay, requests / tasks),
            }
        if bounds:
            points = oracle(family, curve, low, high)
            cell["oracle"] = best_ratio(points, curve)
            cell["oracle_at_delay"] = ratio_at(points, curve, cell["taskwatch"]["mean_delay"])
            cell["renewal"] = best_ratio(renewal(member, family, low, high), curve)
            cell["inspection"] = best_ratio(inspection(member, family, low, high), curve)
            cell["two_interval"] = two_interval(family, curve, low, high)
        out["settings"][f"{low:g}-{high:g}s"] = cell
    return out


def _best(cell: dict[str, Any]) -> float | None:
    """The lowest of the oracles' ratios: the best possible (None when not computed)."""
    found = [cell.get(name) for name in ("oracle", "renewal", "inspection")]
    return min((r for r in found if r is not None), default=None)


def _fmt(ratio: float | str | None) -> str:
    if ratio == "-":
        return "-"
    return f"{ratio:.2f}x" if isinstance(ratio, float) else "off"


def _spread(ratios: list[float | None]) -> str:
    """Several samples' ratios as mean (lowest-highest); "off" if any is off the curve."""
    if any(r is None for r in ratios):
        return "off"
    found = [r for r in ratios if r is not None]
    if len(found) == 1:
        return _fmt(found[0])
    return f"{statistics.fmean(found):.2f}x ({min(found):.2f}-{max(found):.2f})"


def _ratios(samples: list[dict[str, Any]], setting: str, name: str) -> list[float | None]:
    return [one["settings"][setting][name]["ratio"] for one in samples]


def report(results: list[list[dict[str, Any]]]) -> None:
    """One table per setting (each member's samples: the first in full, taskwatch over all),
    then the worst case per policy and the verdict per cell against ``TARGET``."""
    settings = [f"{low:g}-{high:g}s" for low, high in OURS]
    seeds = len(results[0])
    for setting in settings:
        rows = []
        for samples in results:
            cell = samples[0]["settings"][setting]
            mean = _mean_ratio(_ratios(samples, setting, "taskwatch"))
            rows.append(
                (
                    samples[0]["member"],
                    _fmt(cell["previous"]["ratio"]),
                    _fmt(cell["taskwatch"]["ratio"]),
                    _spread(_ratios(samples, setting, "taskwatch")),
                    f"{cell['taskwatch']['mean_delay']:.2f}",
                    _fmt(cell.get("oracle", "-")),
                    _fmt(cell.get("oracle_at_delay", "-")),
                    _fmt(cell.get("two_interval", "-")),
                    _fmt(cell.get("renewal", "-")),
                    _fmt(cell.get("inspection", "-")),
                    "-" if "oracle" not in cell else cell_verdict(mean, _best(cell)),
                )
            )
        say(f"\nOffline, setting {setting}: requests / fixed polling's at equal mean delay")
        say(
            table(
                rows,
                [
                    "workload",
                    "previous",
                    "taskwatch",
                    f"taskwatch, {seeds} seed(s)",
                    "delay s",
                    "oracle bound",
                    "oracle at delay",
                    "two-interval",
                    "renewal oracle",
                    "inspection oracle",
                    f"verdict (target <= {TARGET:g}x)",
                ],
            )
        )
    for name in POLICIES:
        found = [
            (_mean_ratio(_ratios(samples, s, name)), f"{samples[0]['member']}, {s}")
            for samples in results
            for s in settings
        ]
        met = sum(r <= TARGET for r, _ in found)
        highest, where = max(found)
        say(
            f"{name}: worst {_fmt(highest)} ({where}); {met} of {len(found)} cells "
            f"<= {TARGET:g}x (mean over {seeds} seed(s))"
        )


def _mean_ratio(ratios: list[float | None]) -> float:
    """The mean of several samples' ratios, infinite if any is off the curve."""
    return (
        math.inf
        if any(r is None for r in ratios)
        else statistics.fmean(r for r in ratios if r is not None)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=200, help="tasks per member")
    parser.add_argument("--seeds", type=int, default=1, help="samples per member (seeds)")
    parser.add_argument("--latency", type=float, default=0.0, help="request latency, s")
    parser.add_argument(
        "--clients", type=int, default=1, help="clients sharing the tasks (10 of 20: live)"
    )
    parser.add_argument("--no-bounds", action="store_true", help="skip the oracle and grid")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    results = [
        [
            measure(
                m,
                args.tasks,
                seed(i, k),
                args.latency,
                not args.no_bounds and k == 0,
                args.clients,
            )
            for k in range(args.seeds)
        ]
        for i, m in enumerate(FAMILY)
    ]
    report(results)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
