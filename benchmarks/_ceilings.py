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
  fresh rate, after its quiet spell);
- **gaps known (Barlow, f=k)**: a running task's next poll follows the optimal inspection
  schedule for its true gap (uniform over ``Member.gaps``; Barlow, Hunter & Proschan,
  "Optimum checking procedures", J. SIAM 11(4), 1963): no poll until the shortest gap and a
  first interval of ``k`` min_intervals have passed since the last change (dated to the middle
  of its window, ``_policy.since_dated_mark``), then each interval the one before it less the
  price of a request, at least ``min_interval``. Swept over ``k``, as each gives its own delay.

Ratios are the offline model's: requests over fixed polling's at the same mean delay.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

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
        taught = fleet.taught()
        prior = _policy.prior_rate(low, high)
        fresh = _policy.learnt_rate(taught.running_changes, taught.running_for, prior)
        fresh += _policy.learnt_rate(taught.ends, taught.running_for, prior)
        dense = _policy.running_interval(fresh, low, high)
        quiet = _policy.quiet_for(taught.quiet_after, _policy.price(low) / dense)
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
            "pending known": pending_known(member),
            **{f"gaps known (Barlow, f={k:g})": gaps_known(member, k) for k in _FIRSTS},
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
        rows = []
        for setting in samples[0]["settings"]:
            row = [setting]
            for name in policies:
                cells = [sample["settings"][setting][name] for sample in samples]
                ratios = [cell["ratio"] for cell in cells if cell["ratio"] is not None]
                delay = statistics.fmean(cell["mean_delay"] for cell in cells)
                shown = f"{statistics.fmean(ratios):.2f}x" if ratios else "off the curve"
                if ratios and len(ratios) < len(cells):  # a mean over fewer samples: say so
                    shown += f" ({len(ratios)} of {len(cells)} samples on the curve)"
                row.append(f"{shown} (delay {delay:.2f} s)")
            rows.append(row)
        say(f"\n{member.name}: requests / fixed polling's at equal mean delay")
        say(table(rows, ["setting", *policies]))


if __name__ == "__main__":
    main()
