"""The pure polling policy: what to yield, when to stop, when to poll next. No I/O, no clock.

The schedule: after a change (and at the start) the next poll is ``min_interval`` away; each
quiet poll multiplies the interval by ``GROWTH`` up to ``max_interval``. A pending task (or a
running one whose pace is not known yet) follows that exponential backoff.

A running task whose results have risen at least twice has a pace: the typical time between
its changes (an exponentially weighted mean of the gaps seen). Its polls then come every
``PACE_FRACTION`` of that pace (within ``[min_interval, max_interval]``), so each burst of
results is seen about a quarter of a gap after it lands, at about two polls per burst; after
``OVERDUE_POLLS`` quiet polls the task is slower than its pace said and the interval grows
again by ``GROWTH`` per quiet poll. Polls go where the changes are: few while a task waits
for a slot, more while it scrapes.

A jitter of up to ``JITTER`` of the interval (downwards, never below ``min_interval``) keeps
many watchers that started together from polling in lockstep.

Poll scheduling is not a retry, so it is not a tenacity wait strategy (those take a
``RetryCallState``); request retries do use tenacity (see ``client.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import attrs

from .models import Task

GROWTH = 1.6
JITTER = 0.2
PACE_FRACTION = 0.5
PACE_WEIGHT = 0.5  # weight of the newest gap in the pace's moving average
OVERDUE_POLLS = 3

ChangeKey = Callable[[Task], Hashable]


def total_results(task: Task) -> Hashable:
    """The default change key: the number of results scraped so far."""
    return task.status.total_results


def check_intervals(min_interval: float, max_interval: float) -> None:
    """Raise ValueError unless 0 < min_interval <= max_interval."""
    if not min_interval > 0:
        raise ValueError(f"min_interval must be positive, got {min_interval!r}")
    if not max_interval >= min_interval:
        raise ValueError(
            f"max_interval ({max_interval!r}) must be at least min_interval ({min_interval!r})"
        )


def poll_interval(
    quiet_polls: int,
    min_interval: float,
    max_interval: float,
    rand: float,
    pace: float | None = None,
) -> float:
    """Seconds until the next poll after ``quiet_polls`` polls without a change.

    ``pace`` is the running task's typical seconds between changes (None: unknown, or the
    task is not running). ``rand`` is a uniform random number in [0, 1) (the caller's, so tests
    can fix it).
    """
    if pace is None:
        # min() before ** keeps the exponent bounded however long a task stays quiet.
        base = min_interval * GROWTH ** min(quiet_polls, 64)
    else:
        base = max(min_interval, PACE_FRACTION * pace)
        overdue = quiet_polls - OVERDUE_POLLS
        if overdue > 0:
            base *= GROWTH ** min(overdue, 64)
    base = min(base, max_interval)
    return max(min_interval, base * (1.0 - JITTER * rand))


def update_pace(pace: float | None, gap: float) -> float:
    """The pace after a change ``gap`` seconds after the previous one."""
    return gap if pace is None else pace + PACE_WEIGHT * (gap - pace)


@attrs.frozen(slots=True)
class PollDecision:
    """What the watcher does with one snapshot."""

    emit: bool  # yield this snapshot
    done: bool  # it is the terminal snapshot: stop after yielding it
    changed: bool  # reset the schedule to min_interval


_UNSET: object = object()


def decide(last_key: object, last_state: object, task: Task, key: ChangeKey) -> PollDecision:
    """Decide for a new snapshot given the last yielded key and the last seen state.

    The first snapshot (``last_key`` is the module's unset marker) is emitted; then every
    snapshot whose key differs; the first done snapshot is always emitted and ends the watch.
    A change of ``status.status`` (pending -> running) resets the schedule without emitting.
    """
    if task.status.is_done:
        return PollDecision(emit=True, done=True, changed=True)
    changed_key = last_key is _UNSET or key(task) != last_key
    changed_state = task.status.status != last_state
    return PollDecision(emit=changed_key, done=False, changed=changed_key or changed_state)


def unset() -> object:
    """The marker for "nothing yielded yet" that ``decide`` understands."""
    return _UNSET
