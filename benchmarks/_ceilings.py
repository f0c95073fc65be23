"""How far the freshness cells taskwatch misses could go if the policy knew the workload.

    python -m benchmarks._ceilings [--seeds K] [--tasks N] [--clients C]

The offline model (``benchmarks._offline_fresh``) bounds each cell with oracles that know
each task's true start and the exact time of every change seen. This asks a narrower
question, on the members where taskwatch misses the target: what would knowing each
*distribution* buy a policy that, like taskwatch, sees a start or a change only by polling
and dates it as taskwatch does? Two policies, each taskwatch's own in every other respect:

- **pending known**: a pending task's next poll comes when the delay expected to have piled
  up since the last poll reaches the price of a request, for the member's true pending time
  (uniform over ``Member.pending``; every task is created when it is first watched, so its
  age is the time watched) and a start's cost as in ``_policy.pending_interval`` (the fleet's
  fresh rate, after its quiet spell: ``_policy.fresh_start``);
- **gaps known (Barlow, f=k)**: a running task's next poll follows the optimal inspection
  schedule for its true gap (uniform over ``Member.gaps``; Barlow, Hunter & Proschan,
  "Optimum checking procedures", J. SIAM 11(4), 1963): no poll until the shortest gap and a
  first interval of ``k`` min_intervals have passed since the last change (dated to the middle
  of its window, ``_policy.since_dated_mark``), then each interval the one before it less the
  price of a request, at least ``min_interval``. Swept over ``k``, as each gives its own delay.
- **both known (f=k)**: the two above together, pending and running.

And two that ask whether the renewal rule (``_policy.renewal_interval``) loses by the gaps it
learns or by the schedule it draws from them:

- **true gaps (renewal rule)**: taskwatch, its renewal rule reading the member's true gap
  distribution (``true_gaps``) instead of the gaps its polls dated;
- **true gaps (optimal inspection)**: where that rule applies, the optimal schedule for the
  true gaps instead (``inspection_schedule``: the least expected price of the polls plus the
  delay of the next change, by backward induction), with taskwatch's cap for the end.

And one that asks whether the operating point is what misses: **taskwatch, price xk**, its own
policy with every request priced ``k`` times ``_policy.price(min_interval)``, which moves it
along its own curve of requests against delay (a lower price: more requests, less delay).

Ratios are the offline model's: requests over fixed polling's at the same mean delay.
"""

from __future__ import annotations

import argparse
import bisect
import math
import statistics
from collections.abc import Sequence
from typing import Any

import attrs

from taskwatch import _policy, _priority

from . import _offline_fresh as offline
from ._common import say, table
from ._family import FAMILY, Member, seed

_TASKWATCH = offline.POLICIES["taskwatch"]
_MEMBERS = (2, 5)  # pending 20-60 s, running 300-900 s: the cells missed where 0.5x may be
_FIRSTS = (2.0, 3.0, 4.0)


def _start_cost(wait: float, age: float, member: Member, fresh: float, quiet: float) -> float:
    """The delay expected to pile up over the next ``wait`` seconds from a start of a task
    pending for ``age`` seconds: ``fresh * (wait - s - quiet)**2 / 2`` for a start ``s``
    seconds from now, over the true pending time given that it has not started yet."""
    low, high = (bound * member.scale for bound in member.pending)
    earliest, latest = max(low - age, 0.0), high - age
    if latest <= 0.0:
        return float("inf")
    top = min(wait, latest)
    if top <= earliest:
        return 0.0

    def cubed(start: float) -> float:
        return max(wait - quiet - start, 0.0) ** 3

    return fresh * (cubed(earliest) - cubed(top)) / (6.0 * (latest - earliest))


def pending_known(member: Member) -> offline.Interval:
    """taskwatch, with a pending task's polls set by the member's true pending time."""

    def interval(
        stream: Any, fleet: Any, now: float, low: float, high: float, rand: float
    ) -> float:
        if stream.phase is not _priority.Phase.PENDING:
            return _TASKWATCH(stream, fleet, now, low, high, rand)
        fresh, quiet = _policy.fresh_start(fleet.taught(), low, high)
        target = _policy.price(low)
        if _start_cost(high, now, member, fresh, quiet) <= target:
            wait = high
        else:
            below, above = low, high
            for _ in range(60):
                middle = (below + above) / 2.0
                if _start_cost(middle, now, member, fresh, quiet) < target:
                    below = middle
                else:
                    above = middle
            wait = above
        return max(low, wait * (1.0 - _policy.JITTER * rand))

    return interval


def gaps_known(member: Member, first: float) -> offline.Interval:
    """taskwatch, with a running task's polls on Barlow's schedule for the member's true gap,
    its first interval ``first`` min_intervals."""
    shortest, longest = (bound * member.scale for bound in member.gaps)

    def interval(
        stream: Any, fleet: Any, now: float, low: float, high: float, rand: float
    ) -> float:
        if stream.phase is _priority.Phase.RUNNING:
            since = None if stream.last_change_at is None else now - stream.last_change_at
            mark = _policy.since_dated_mark(
                since, stream.change_window, now - stream.phase_since, stream.changes_seen
            )
            if mark is not None and mark < longest:
                step, less = first * low, _policy.price(low)
                at, made = shortest + step, 1
                while at <= mark + 1e-9:
                    at += max(low, step - less * made)
                    made += 1
                return min(max(at - mark, low), high)
        return _TASKWATCH(stream, fleet, now, low, high, rand)

    return interval


def both_known(member: Member, first: float) -> offline.Interval:
    """``pending_known`` while pending, ``gaps_known`` (first interval ``first``
    min_intervals) while running: both distributions known."""
    pending, running = pending_known(member), gaps_known(member, first)

    def interval(
        stream: Any, fleet: Any, now: float, low: float, high: float, rand: float
    ) -> float:
        known = pending if stream.phase is _priority.Phase.PENDING else running
        return known(stream, fleet, now, low, high, rand)

    return interval


def priced(factor: float) -> offline.Interval:
    """taskwatch with every request priced ``factor`` times its own price."""

    def interval(
        stream: Any, fleet: Any, now: float, low: float, high: float, rand: float
    ) -> float:
        cost = factor * _policy.price(low)
        return offline.taskwatch_taught(stream, fleet.taught(), now, low, high, rand, cost)

    return interval


_PRICES = (0.5, 0.7)  # taskwatch's price times these: lower delays than its own
_QUANTILES = 256  # as many gaps as a fleet keeps (``_policy.QUIET_WINDOW``)
_GRID_STEPS = 10  # grid points per min_interval in ``inspection_schedule``


def true_gaps(member: Member) -> tuple[float, ...]:
    """The member's gap between changes, uniform over ``Member.gaps``, as ``_QUANTILES``
    evenly spaced quantiles, sorted ascending (the form of ``_policy.Fleet.renewal_gaps``)."""
    low, high = (bound * member.scale for bound in member.gaps)
    return tuple(low + (high - low) * (i + 0.5) / _QUANTILES for i in range(_QUANTILES))


def with_true_gaps(member: Member) -> offline.Interval:
    """taskwatch, its renewal rule reading the member's true gaps."""
    gaps = true_gaps(member)

    def interval(
        stream: Any, fleet: Any, now: float, low: float, high: float, rand: float
    ) -> float:
        taught = attrs.evolve(fleet.taught(), renewal_gaps=gaps)
        return offline.taskwatch_taught(stream, taught, now, low, high, rand)

    return interval


def inspection_schedule(
    gaps: Sequence[float], min_interval: float, max_interval: float, cost: float
) -> tuple[float, list[float]]:
    """The optimal inspection schedule for one change that comes one of ``gaps`` (sorted
    ascending, each as likely) after a mark: ``(step, best)``, ``best[j]`` the interval to the
    next poll from ``j * step`` seconds after the mark with no change seen yet, on a grid of
    ``min_interval / _GRID_STEPS``. It minimises ``cost`` per poll plus the detection delay,
    by backward induction: with ``W(u)`` that least cost times the gaps longer than ``u``,
    ``W(u) = min over T of cost * longer(u) + sum of (u + T - gap) over the gaps in (u, u +
    T] + W(u + T)``, ``T`` in ``[min_interval, max_interval]``, and ``W = 0`` past the
    longest gap."""
    step = min_interval / _GRID_STEPS
    count = len(gaps)
    prefix = [0.0]
    for gap in gaps:
        prefix.append(prefix[-1] + gap)
    last = math.ceil(gaps[-1] / step) + 1
    least = [0.0] * (last + 1)
    best = [max_interval] * (last + 1)
    shortest, longest = _GRID_STEPS, int(max_interval / step + 1e-9)
    for j in range(last - 1, -1, -1):
        first = bisect.bisect_right(gaps, j * step)
        if first == count:
            continue
        for k in range(shortest, longest + 1):
            at = (j + k) * step
            end = bisect.bisect_right(gaps, at, lo=first)
            value = cost * (count - first) + (end - first) * at - (prefix[end] - prefix[first])
            value += least[j + k] if j + k <= last else 0.0
            if k == shortest or value < least[j]:
                least[j], best[j] = value, k * step
            if end == count:  # every gap is in: a later poll only adds delay
                break
    return step, best


def optimal_inspection(member: Member) -> offline.Interval:
    """taskwatch with its true gaps, but where its renewal rule applies, the optimal
    schedule for them (``inspection_schedule``), capped as the rule is by the end's."""
    gaps = true_gaps(member)
    schedules: dict[tuple[float, float], tuple[float, list[float]]] = {}

    def interval(
        stream: Any, fleet: Any, now: float, low: float, high: float, rand: float
    ) -> float:
        taught = attrs.evolve(fleet.taught(), renewal_gaps=gaps)
        if stream.phase is _priority.Phase.RUNNING:
            since = None if stream.last_change_at is None else now - stream.last_change_at
            mark = _policy.since_dated_mark(
                since, stream.change_window, now - stream.phase_since, stream.changes_seen
            )
            if mark is not None and _policy.renewal_interval(gaps, mark, low, high) is not None:
                if (low, high) not in schedules:
                    schedules[low, high] = inspection_schedule(gaps, low, high, _policy.price(low))
                step, best = schedules[low, high]
                j = min(int(mark / step), len(best) - 1)
                prior = _policy.prior_rate(low, high)
                ending = _policy.learnt_rate(taught.ends, taught.running_for, prior)
                wait = min(best[j] - (mark - j * step), _policy.running_interval(ending, low, high))
                return min(max(wait, low), high)
        return offline.taskwatch_taught(stream, taught, now, low, high, rand)

    return interval


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--clients", type=int, default=10)
    args = parser.parse_args(argv)
    for number in _MEMBERS:
        member = FAMILY[number]
        policies = {
            "taskwatch": _TASKWATCH,
            **{f"taskwatch, price x{k:g}": priced(k) for k in _PRICES},
            "pending known": pending_known(member),
            **{f"gaps known (Barlow, f={k:g})": gaps_known(member, k) for k in _FIRSTS},
            **{f"both known (f={k:g})": both_known(member, k) for k in _FIRSTS},
            "true gaps (renewal rule)": with_true_gaps(member),
            "true gaps (optimal inspection)": optimal_inspection(member),
        }
        samples = [
            offline.measure(
                member,
                args.tasks,
                seed(number, repeat),
                bounds=False,
                clients=args.clients,
                policies=policies,
            )
            for repeat in range(args.seeds)
        ]
        settings = list(samples[0]["settings"])
        rows = []
        for name in policies:  # one row per policy: the table stays as wide as the settings
            row = [name]
            for setting in settings:
                cells = [sample["settings"][setting][name] for sample in samples]
                ratios = [cell["ratio"] for cell in cells if cell["ratio"] is not None]
                delay = statistics.fmean(cell["mean_delay"] for cell in cells)
                shown = f"{statistics.fmean(ratios):.2f}x" if ratios else "off the curve"
                if ratios and len(ratios) < len(cells):  # a mean over fewer samples: say so
                    shown += f" ({len(ratios)} of {len(cells)} samples on the curve)"
                row.append(f"{shown} (delay {delay:.2f} s)")
            rows.append(row)
        say(f"\n{member.name}: requests / fixed polling's at equal mean delay")
        say(table(rows, ["policy", *settings]))


if __name__ == "__main__":
    main()
