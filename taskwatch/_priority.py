"""The pure priority policy: which watch gets the next request slot. No I/O, no clock.

When the rate budget binds (more polls are wanted than the budget can send), a slot is a
scarce thing, and whoever asked first is no better a guess than anyone else of where a change
waits. This module ranks the watches instead. It sees only what the watch's own polls showed:
the task's phase (pending or running), how long since the last poll, how long the watch has
seen it run and how many changes it made meanwhile (counted by ``total_pages``, and at least
one whenever the change key moved), plus what the scheduler learnt from all its watches: how
fast tasks start, change and end. The caller passes those numbers in; the functions return
plain numbers.

The index
---------
Give the slot to the watch whose poll now saves the most expected detection delay at the
margin. For a watch polled every ``T`` seconds, let ``c(T)`` be the expected delay its
changes accumulate over one interval; spending a budget of polls so as to minimise the total
``sum c(T_i) / T_i`` puts every watch at one level of ``T * c'(T) - c(T)`` (the Lagrange
condition of that sum under ``sum 1 / T_i = budget``). That marginal cost, taken at the time
since the last poll, is the index:

- A task whose changes arrive as a Poisson stream at rate ``r`` (changes per second) holds on
  average ``r * t`` unseen changes ``t`` seconds after a poll, each waiting ``t / 2``: ``c(t) =
  r * t**2 / 2``, and its index is the same, ``r * t**2 / 2``. Its end, at hazard ``e``, is one
  more such change.
- A pending task's next change is its start, at hazard ``h``; a start unseen for ``d`` seconds
  costs ``d`` for itself plus the changes a freshly started task (at the fleet's rate ``r0``)
  makes meanwhile, ``r0 * d**2 / 2``. Over an interval ``c(t) = h * (t**2 / 2 + r0 * t**3 /
  6)``, and the index is ``h * t**2 / 2 + h * r0 * t**3 / 3``. Most of the delay a binding
  budget leaves is there: a task that started unseen piles up changes, all seen at once, late.
  (The delay accumulated so far, ``c(t)`` itself, is the Max-Weight rule; for a pending task
  it undervalues the poll by half the cubic term, and starves pending tasks: their starts are
  seen about 1.4 times later than round-robin sees them, where the marginal index sees them
  about 1.25 times later, at a lower mean delay and a lower p99.)
- A watch not polled yet counts as a task pending since it was subscribed: its first poll
  comes when a start is likely, not at once (the scheduler's rule while the budget binds).

For running tasks this is Max-Weight for age of information, which Kadota et al. prove near
optimal, close to their Whittle index policy ("Scheduling policies for minimizing age of
information in broadcast wireless networks", IEEE/ACM Transactions on Networking 26(6), 2018);
for pending ones, it is the Whittle-type marginal index of the renewal the start ends. Its
fixed point polls a running task of change rate ``r`` every ``sqrt(2 * c / r)`` seconds for a
common index level ``c``, that is, at a rate proportional to ``sqrt(r)``: the delay-optimal
allocation of a fixed budget that Sia, Cho and Cho derive for polling news feeds ("Efficient
monitoring algorithm for fast news alerts", IEEE TKDE 19(7), 2007). Estimating each source's
change rate from what polls saw, and spending more polls where changes are more frequent (but
not in proportion), follows Cho and Garcia-Molina's refresh policies for crawlers
("Synchronizing a database to improve freshness", SIGMOD 2000; "Effective page refresh
policies for web crawlers", ACM TODS 28(4), 2003).

What a binding budget cannot do is see starts as soon as round-robin while beating it on the
mean. Starts of a memoryless wait are seen, on average, half a poll interval late whatever the
order, so seeing them as soon as round-robin takes polling pending tasks as often as it does;
that leaves the running tasks round-robin's share of the budget, and the only gain left is
sharing it out by rate (about a tenth on a tenfold spread of rates). The index trades a later
start, by a bounded factor, for everything else.

Rates come from observations with a prior, never from a guess of the workload:

- the fleet's rate of change ``r0``: changes seen per second seen running, across the
  scheduler's watches, with the prior ``_policy.prior_rate`` (one change per
  ``sqrt(min_interval * max_interval)``, the median time scale the caller allows; the poll
  policy's own, so both modules start from one guess);
- a running task's rate: its changes seen per second seen running, shrunk towards the fleet's
  by a prior worth one typical running spell (``1 / e``, the end hazard's mean) at ``r0``, once
  tasks have been seen to end (before, when no spell is known, a prior of one change). A task
  is taken as typical until it has been watched about as long as tasks run: a few polls of a
  short spell cannot tell a fast task from a lucky one (a task found started has run for an
  unknown part of the time unseen), and a rate read from them gives slow-looking tasks polls
  minutes apart (the p99) and misses their ends; tasks that run on without end are told apart
  by their own pages. Changes are counted by pages: a poll sees at most
  one change of a key however many happened, so a count of changed polls could never exceed
  the poll rate, and a task polled rarely would look slow for being polled rarely. A task
  found started counts the pages it shows over half the time since it was last seen
  (``started``);
- the start and end hazards: starts (ends) seen per second seen pending (running), with
  priors of one per ``PENDING_PRIOR_INTERVALS`` (``COMPLETION_HAZARD_INTERVALS``)
  ``max_interval``.

``started_at`` and the other wall-clock fields are not used: the server's clock and the
client's need not agree, and the watches' own monotonic observations suffice.

Limits
------
- Never more often than ``min_interval``: a watch is ranked only ``min_interval`` after its
  last poll (the scheduler's rule).
- ``max_interval`` is kept whenever the budget allows: every watch is due at the latest
  ``max_interval`` after its last poll, and with slots to spare every due watch is polled.
- Nobody starves: every rate is clamped to ``[1 / (RATE_FLOOR_INTERVALS * max_interval),
  1 / min_interval]`` and the index grows without bound in ``t``, so a watch that is not polled
  overtakes the others; at equal index its interval exceeds the fastest watch's by at most
  ``sqrt(rate_max / rate_min)``.
"""

from __future__ import annotations

import bisect
import collections
import enum
import math
from typing import Protocol

from ._policy import (
    QUIET_WINDOW,
    Fleet,
    prior_rate,
    regular,
    since_dated_mark,
    since_quiet_mark,
)

__all__ = [
    "COMPLETION_HAZARD_INTERVALS",
    "PENDING_PRIOR_INTERVALS",
    "RATE_FLOOR_INTERVALS",
    "FleetLearning",
    "Phase",
    "Watched",
    "change_rate",
    "end_hazard",
    "fleet_rate",
    "index",
    "start_hazard",
    "started",
]

# A pending task's prior: one start per this many max_intervals of waiting.
PENDING_PRIOR_INTERVALS = 10.0
# A running task's prior hazard of ending: one end per this many max_intervals of running.
COMPLETION_HAZARD_INTERVALS = 10.0
# No rate is taken below one change per this many max_intervals (so nobody starves).
RATE_FLOOR_INTERVALS = 100.0


class Phase(enum.IntEnum):
    """What the last poll showed of a task, as the index distinguishes it."""

    PENDING = 0  # waiting for a slot (or never polled yet): its next change is its start
    RUNNING = 1  # scraping: changes arrive, and it may end


def _clamp(rate: float, min_interval: float, max_interval: float) -> float:
    return min(max(rate, 1.0 / (RATE_FLOOR_INTERVALS * max_interval)), 1.0 / min_interval)


def _learnt(events: int, seen_for: float, prior_for: float) -> float:
    """``events`` seen in ``seen_for`` seconds, with a prior of one event per ``prior_for``
    seconds: the rate of a Poisson stream (or an exponential wait), estimated."""
    return (max(events, 0) + 1.0) / (max(seen_for, 0.0) + prior_for)


def fleet_rate(
    changes_seen: int, running_seen_for: float, min_interval: float, max_interval: float
) -> float:
    """The mean rate of change (per second) of the running tasks of one scheduler:
    ``changes_seen`` changes in ``running_seen_for`` seconds of watching tasks run, with a
    prior of one change at ``_policy.prior_rate``. It is also the rate expected of a task that
    has just started. Always within ``[1 / (RATE_FLOOR_INTERVALS * max_interval), 1 /
    min_interval]``."""
    prior_for = 1.0 / prior_rate(min_interval, max_interval)
    return _clamp(_learnt(changes_seen, running_seen_for, prior_for), min_interval, max_interval)


def change_rate(
    changes_seen: int,
    seen_for: float,
    fleet: float,
    min_interval: float,
    max_interval: float,
    *,
    prior_for: float | None = None,
) -> float:
    """A running task's expected changes per second: ``changes_seen`` changes in ``seen_for``
    seconds of running, shrunk towards the ``fleet`` rate (``fleet_rate``) by a prior worth
    ``prior_for`` seconds of running at that rate (default ``1 / fleet``: one change). A task
    seen briefly is taken as typical; one seen long, by what it did. Always within ``[1 /
    (RATE_FLOOR_INTERVALS * max_interval), 1 / min_interval]``.
    """
    fleet = _clamp(fleet, min_interval, max_interval)
    if prior_for is None:
        prior_for = 1.0 / fleet
    prior_for = max(prior_for, 1.0 / fleet)
    seen = max(changes_seen, 0) + fleet * prior_for
    rate = seen / (max(seen_for, 0.0) + prior_for)
    return _clamp(rate, min_interval, max_interval)


def started(pages: int, unseen_for: float, fleet: float, seen_pending: bool) -> tuple[float, int]:
    """A task found running with ``pages`` processed, last seen ``unseen_for`` seconds ago
    (pending when ``seen_pending``; else never seen, that long ago subscribed): how long it
    has probably run (half that time: it started at some point in it) and how many changes to
    count for that time. A task never seen pending may have run long before anyone watched
    it, so its pages count for at most what the ``fleet`` rate makes in that time (at most
    twice the fleet's rate, estimated); its next polls tell the rest.
    """
    unseen_for = max(unseen_for, 0.0)
    pages = max(pages, 0)
    if not seen_pending:
        pages = min(pages, math.ceil(fleet * unseen_for))
    return unseen_for / 2.0, pages


class Watched(Protocol):
    """What a poll stream remembers for the priority, and ``FleetLearning.learn`` updates."""

    phase: Phase
    phase_since: float  # when it probably entered that phase (monotonic seconds)
    last_poll: float | None  # None: never polled
    changes_seen: int  # in this phase
    last_change_at: float | None  # when a change was last seen in this running spell
    change_window: float  # seconds from the poll before that one to it: the change came then


class _Window:
    """The latest ``QUIET_WINDOW`` of a series of seconds, kept sorted."""

    __slots__ = ("_order", "_sorted", "view")

    def __init__(self) -> None:
        self._order: collections.deque[float] = collections.deque(maxlen=QUIET_WINDOW)
        self._sorted: list[float] = []
        self.view: tuple[float, ...] = ()  # the values kept, sorted ascending

    def add(self, value: float, zeros: int = 0) -> None:
        """Keep ``value``, then ``zeros`` zeros, the oldest leaving once the window is full."""
        order = self._order
        zeros = min(zeros, QUIET_WINDOW)
        if zeros:  # zeros are the least values: rebuild once instead of one insert each
            order.append(value)
            order.extend([0.0] * zeros)
            self._sorted = sorted(order)
        else:
            if len(order) == QUIET_WINDOW:  # the oldest value leaves as this one comes
                del self._sorted[bisect.bisect_left(self._sorted, order[0])]
            order.append(value)
            bisect.insort(self._sorted, value)
        self.view = tuple(self._sorted)


class FleetLearning:
    """What the polls of all of one scheduler's watches taught: ``starts`` seen in
    ``pending_for`` seconds of watching tasks wait, ``changes`` and ``ends`` seen in
    ``running_for`` seconds of watching tasks run, the latest ``_policy.QUIET_WINDOW`` lower
    bounds on a task's quiet spell after a change or a start (``_policy.quiet_for``), and as
    many of the gaps between the changes seen, each change dated to the middle of the window
    between the poll that saw it and the poll before (``_policy.renewal_interval``).
    ``learn`` also updates the stream polled. The scheduler and the benchmarks' offline model
    both learn through it."""

    __slots__ = (
        "_gaps",
        "_quiet",
        "_regular",
        "changes",
        "ends",
        "pending_for",
        "running_for",
        "starts",
    )

    def __init__(self) -> None:
        self.starts = 0
        self.pending_for = 0.0
        self.changes = 0
        self.ends = 0
        self.running_for = 0.0
        self._quiet = _Window()
        self._gaps = _Window()
        self._regular = False

    @property
    def quiet_after(self) -> tuple[float, ...]:
        """The quiet bounds kept, sorted ascending."""
        return self._quiet.view

    @property
    def change_gaps(self) -> tuple[float, ...]:
        """The gaps between changes kept, sorted ascending."""
        return self._gaps.view

    def taught(self) -> Fleet:
        """What the poll policy needs of it (``_policy.poll_interval``'s ``fleet``): the gaps
        only when they are ``_policy.regular``."""
        return Fleet(
            self.starts,
            self.pending_for,
            self.changes,
            self.ends,
            self.running_for,
            self._quiet.view,
            self._gaps.view if self._regular else (),
        )

    def learn(
        self,
        stream: Watched,
        phase: Phase,
        pages: int,
        pages_before: int | None,
        is_done: bool,
        emitted: bool,
        now: float,
        min_interval: float,
        max_interval: float,
    ) -> None:
        """What one poll at ``now`` taught: it found the task in ``phase`` with ``pages``
        processed (``pages_before`` at the previous poll; None: no previous snapshot), done
        or not, and some caller yielded it (``emitted``: its key moved).

        A poll that shows a change of a key saw at least one change, and as many as the
        pages processed since the last poll (each page is a chance for the results to
        change): a poll sees at most one change of a key, however many happened, so a count
        of changed polls alone could never exceed the poll rate.
        """
        last = stream.phase_since if stream.last_poll is None else stream.last_poll
        seen_before = stream.last_poll is not None
        stream.last_poll = now
        if seen_before and stream.phase is Phase.PENDING:
            self.pending_for += now - last
            self.starts += phase is not Phase.PENDING
        elif seen_before and pages_before is not None:  # it was running, and ran on
            changes = max(pages - pages_before, 1) if emitted else 0
            if changes and not is_done:
                self._note_quiet(stream, last, changes)
                self._note_gap(stream, (last + now) / 2.0)
            stream.changes_seen += changes
            self.changes += changes
            self.running_for += now - last
            self.ends += is_done
        if phase is not stream.phase:
            stream.phase = phase
            fleet = fleet_rate(self.changes, self.running_for, min_interval, max_interval)
            ran_for, stream.changes_seen = started(pages, now - last, fleet, seen_before)
            stream.phase_since = now - ran_for

    def _note_quiet(self, stream: Watched, quiet_until: float, changes: int) -> None:
        """A running task showed ``changes`` new changes, none of which the poll before it,
        at ``quiet_until``, showed: its quiet spell since the change (or the start) seen
        before lasted at least until then, and each further change hid a gap of at least
        zero. A task found started with changes already made has no such mark, and teaches
        nothing. Keeps the latest ``QUIET_WINDOW`` bounds, sorted."""
        last_change = stream.last_change_at
        since = since_quiet_mark(
            None if last_change is None else quiet_until - last_change,
            quiet_until - stream.phase_since,
            stream.changes_seen,
        )
        if since is None:
            return
        self._quiet.add(max(since, 0.0), changes - 1)

    def _note_gap(self, stream: Watched, dated: float) -> None:
        """A running task showed a change, dated to ``dated``: the gap since the change seen
        before it (dated likewise), or since its dated start if it showed none before. A task
        found started with changes already made has no such mark, and teaches nothing."""
        last_change = stream.last_change_at
        since = since_dated_mark(
            None if last_change is None else dated - last_change,
            stream.change_window,
            dated - stream.phase_since,
            stream.changes_seen,
        )
        if since is None:
            return
        self._gaps.add(max(since, 0.0))
        self._regular = regular(self._gaps.view)


def start_hazard(
    starts_seen: int, pending_seen_for: float, min_interval: float, max_interval: float
) -> float:
    """A pending task's expected starts per second, learnt across the watches of one
    scheduler: ``starts_seen`` starts in ``pending_seen_for`` seconds of watching tasks wait
    (the maximum-likelihood rate of an exponential wait, with a prior of one start per
    ``PENDING_PRIOR_INTERVALS * max_interval``)."""
    prior = PENDING_PRIOR_INTERVALS * max_interval
    return _clamp(_learnt(starts_seen, pending_seen_for, prior), min_interval, max_interval)


def end_hazard(
    ends_seen: int, running_seen_for: float, min_interval: float, max_interval: float
) -> float:
    """A running task's expected ends per second, learnt across the watches of one scheduler
    as ``start_hazard`` is, with a prior of one end per ``COMPLETION_HAZARD_INTERVALS *
    max_interval`` of running."""
    prior = COMPLETION_HAZARD_INTERVALS * max_interval
    return _clamp(_learnt(ends_seen, running_seen_for, prior), min_interval, max_interval)


def index(
    phase: Phase,
    since_poll: float,
    rate: float,
    min_interval: float,
    max_interval: float,
    *,
    started_rate: float | None = None,
    ending: float | None = None,
) -> float:
    """The index of a watch last polled ``since_poll`` seconds ago: the detection delay
    (seconds) its poll now would save at the margin, ``T * c'(T) - c(T)`` at ``T =
    since_poll`` (see the module docstring). The slot goes to the largest.

    ``rate`` is ``change_rate(...)`` for a running task and ``start_hazard(...)`` for a pending
    one. ``started_rate`` is the rate of change expected of a task that has just started
    (``fleet_rate``; default its prior, ``_policy.prior_rate``); ``ending`` a running task's
    hazard of ending (``end_hazard``; default its prior). Grows without bound in
    ``since_poll``; 0.0 at 0.
    """
    t = max(since_poll, 0.0)
    if phase is Phase.PENDING:
        if started_rate is None:
            started_rate = prior_rate(min_interval, max_interval)
        return rate * t * t / 2.0 + rate * started_rate * t * t * t / 3.0
    if ending is None:
        ending = 1.0 / (COMPLETION_HAZARD_INTERVALS * max_interval)
    return (rate + ending) * t * t / 2.0
