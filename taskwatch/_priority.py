"""The pure priority policy: which due watch gets the next request slot. No I/O, no clock.

When the rate budget binds (more polls are due than the budget can send), a slot is a scarce
thing, and whoever asked first is no better a guess than anyone else of where a change waits.
This module ranks the due watches instead. It sees only what the watch's own polls showed:
the task's phase (pending or running), how long since the last poll, how long the watch has
seen it in that phase, and how many changes (of the change key, or of ``total_pages``) it has
seen meanwhile. The caller passes those numbers in; the functions return plain numbers.

The index
---------
Give the slot to the due watch with the largest **expected detection delay accumulated since
its last poll**: the sum, over the changes that may have happened unseen since then, of how
long each has waited so far.

- A task whose changes arrive as a Poisson stream at rate ``r`` (changes per second), last
  polled ``t`` seconds ago, holds on average ``r * t`` unseen changes, each waiting ``t / 2``:
  ``r * t**2 / 2`` seconds of delay.
- A pending task's next change is its start, at hazard ``h``: ``h * t**2 / 2`` for the start
  itself, plus ``h * r0 * t**3 / 6`` for the changes a freshly started task (at the prior rate
  ``r0``) makes before anyone notices it started. That second term is why a task that has
  waited long is polled somewhat more often than its hazard alone says.
- A running task may also end at any moment; its completion counts like one more change at the
  hazard ``COMPLETION_HAZARD_INTERVALS`` running spells of ``max_interval`` suggest.

Ranking by the delay accumulated so far is the Max-Weight policy for age of information, which
Kadota et al. prove near optimal, close to their Whittle index policy ("Scheduling policies
for minimizing age of information in broadcast wireless networks", IEEE/ACM Transactions on
Networking 26(6), 2018). Its fixed point polls a task of change rate ``r`` every
``sqrt(2 * c / r)`` seconds for a common index level ``c``, that is, at a rate proportional to
``sqrt(r)``: the delay-optimal allocation of a fixed budget that Sia, Cho and Cho derive for
polling news feeds ("Efficient monitoring algorithm for fast news alerts", IEEE TKDE 19(7),
2007). Estimating each source's change rate from what polls saw, and spending more polls where
changes are more frequent (but not in proportion), follows Cho and Garcia-Molina's refresh
policies for crawlers ("Synchronizing a database to improve freshness", SIGMOD 2000;
"Effective page refresh policies for web crawlers", ACM TODS 28(4), 2003).

Rates come from observations with a prior, never from a guess of the workload:

- a running task's rate is ``(changes seen + 1) / (seconds seen running + max_interval)``,
  or ``1 / pace`` once the watch knows a pace (the typical gap between changes, ``_policy``);
- the start hazard is learnt across all the watches of one scheduler, as an exponential wait's
  rate: ``(starts seen + 1) / (seconds seen pending + PENDING_PRIOR_INTERVALS * max_interval)``;
- a fresh start's rate ``r0`` is the mean rate of the running watches (the caller's figure),
  else one change per ``max_interval``.

``started_at`` and the other wall-clock fields are not used: the server's clock and the
client's need not agree, and the watches' own monotonic observations suffice.

Limits
------
- Never more often than ``min_interval``: a watch is not due until ``min_interval`` after its
  last poll (the scheduler's rule; the index ranks only due watches).
- ``max_interval`` is kept whenever the budget allows: every watch is due at the latest
  ``max_interval`` after its last poll, and with slots to spare every due watch is polled.
- Nobody starves: every rate is clamped to ``[1 / (RATE_FLOOR_INTERVALS * max_interval),
  1 / min_interval]`` and the index grows without bound in ``t``, so a watch that is not polled
  overtakes the others; at equal index its interval exceeds the fastest watch's by at most
  ``sqrt(rate_max / rate_min)``.
"""

from __future__ import annotations

import enum

__all__ = [
    "COMPLETION_HAZARD_INTERVALS",
    "PENDING_PRIOR_INTERVALS",
    "RATE_FLOOR_INTERVALS",
    "Phase",
    "change_rate",
    "expected_delay",
    "start_hazard",
]

# A pending task's prior: one start per this many max_intervals of waiting.
PENDING_PRIOR_INTERVALS = 10.0
# A running task's prior hazard of ending: one end per this many max_intervals of running.
COMPLETION_HAZARD_INTERVALS = 10.0
# No rate is taken below one change per this many max_intervals (so nobody starves).
RATE_FLOOR_INTERVALS = 100.0


class Phase(enum.IntEnum):
    """What the last poll showed of a task, as the index distinguishes it."""

    PENDING = 0  # waiting for a slot: its next change is its start
    RUNNING = 1  # scraping: changes arrive, and it may end


def _clamp(rate: float, min_interval: float, max_interval: float) -> float:
    return min(max(rate, 1.0 / (RATE_FLOOR_INTERVALS * max_interval)), 1.0 / min_interval)


def change_rate(
    changes_seen: int,
    seen_for: float,
    pace: float | None,
    min_interval: float,
    max_interval: float,
) -> float:
    """A running task's expected changes per second.

    ``changes_seen`` changes were seen in ``seen_for`` seconds of watching it run; ``pace`` is
    its typical seconds between changes once known (None before). Always within
    ``[1 / (RATE_FLOOR_INTERVALS * max_interval), 1 / min_interval]``.
    """
    if pace is not None and pace > 0:
        rate = 1.0 / pace
    else:
        rate = (max(changes_seen, 0) + 1.0) / (max(seen_for, 0.0) + max_interval)
    return _clamp(rate, min_interval, max_interval)


def start_hazard(
    starts_seen: int, pending_seen_for: float, min_interval: float, max_interval: float
) -> float:
    """A pending task's expected starts per second, learnt across the watches of one
    scheduler: ``starts_seen`` starts in ``pending_seen_for`` seconds of watching tasks wait
    (the maximum-likelihood rate of an exponential wait, with a prior of one start per
    ``PENDING_PRIOR_INTERVALS * max_interval``)."""
    prior = PENDING_PRIOR_INTERVALS * max_interval
    rate = (max(starts_seen, 0) + 1.0) / (max(pending_seen_for, 0.0) + prior)
    return _clamp(rate, min_interval, max_interval)


def expected_delay(
    phase: Phase,
    since_poll: float,
    rate: float,
    min_interval: float,
    max_interval: float,
    started_rate: float | None = None,
) -> float:
    """The index: the expected detection delay (seconds, summed over the changes that may
    have happened unseen) accumulated in the ``since_poll`` seconds since the last poll.

    ``rate`` is ``change_rate(...)`` for a running task and ``start_hazard(...)`` for a pending
    one; ``started_rate`` is the rate of change expected of a task that has just started
    (default one change per ``max_interval``). Grows without bound in ``since_poll``; 0.0 at 0.
    """
    t = max(since_poll, 0.0)
    if phase is Phase.PENDING:
        if started_rate is None:
            started_rate = 1.0 / max_interval  # a fresh start's prior rate of change
        return rate * t * t / 2.0 + rate * started_rate * t * t * t / 6.0
    completion = 1.0 / (COMPLETION_HAZARD_INTERVALS * max_interval)
    return (rate + completion) * t * t / 2.0
