"""The pure polling policy: what to yield, when to stop, when to poll next. No I/O, no clock.

When to poll next
-----------------
Without a binding budget, each poll is a trade between a request and the detection delay of
the changes it may find. Price a request at ``c`` seconds of delay; polling a source every
``T`` seconds then costs, per second, ``c / T`` in requests plus the delay its unseen changes
accumulate, and the best ``T`` balances the two.

- **Running**, changes arriving at rate ``r`` (a Poisson stream): ``r * T / 2`` seconds of
  delay per second, so ``T = sqrt(2 * c / r)``: a polling rate proportional to ``sqrt(r)``,
  the delay-optimal rule of Sia, Cho and Cho ("Efficient monitoring algorithm for fast news
  alerts", IEEE TKDE 19(7), 2007).
- **Pending**, the next change is the start, at a hazard ``h`` about constant while a task
  waits for a slot. An unnoticed start costs the changes the fresh task makes before a poll
  sees it: a start ``u`` seconds before the next poll brings ``r0 * u`` changes waiting
  ``u / 2`` on average, where ``r0`` is a fresh start's rate. Over an interval that is
  ``h * r0 * T**3 / 6``, so ``T = (3 * c / (h * r0)) ** (1 / 3)``: far longer than a running
  task's interval (a cube root instead of a square root), however long the task has waited,
  since the hazard does not grow with the wait. Exponential backoff from ``min_interval``
  would instead spend its first polls of every pending spell where nothing is likely.

The one price ``c`` balances both phases, as the square-root rule balances sources of
different rates. It is set by ``min_interval``, the shortest interval the caller allows: a
task that changes every ``min_interval`` is polled every ``min_interval`` (``c =
min_interval / 2``), so a running task is polled every ``sqrt(min_interval * gap)`` seconds,
the geometric mean of ``min_interval`` and its typical gap between changes. Nothing here is
fitted to a workload: the rates are learnt from the polls.

- ``r`` is a running task's rate: ``1 / pace`` once two changes have given it a pace (the
  exponentially weighted mean gap between the changes seen), slowed to ``1 / s`` while the
  task has been quiet ``s`` seconds, longer than its pace (it is slower than its pace said).
  Before that, the rate of a fresh start ``r0`` as one pseudo-change, updated by what this
  task showed: ``(changes seen + 1) / (seconds seen running + 1 / r0)``, a Gamma prior's mean
  (the scheduler counts a task's changes by the pages it processed between polls, and dates
  its start halfway between the last poll that saw it pending and the first that did not).
  Just after a start is seen that is about ``r0``: the first changes are expected at the
  fleet's pace, not after a backoff. A running task may also end at any moment, and its end
  is a change too: the hazard of an end is added to ``r`` (and to ``r0`` for a pending one).
- ``h``, ``r0`` and the end hazard are learnt across all the watches of one client
  (``Fleet``, the counts the scheduler keeps for its priority too): starts seen per second of
  watching tasks wait, and changes and ends seen per second of watching tasks run, each as
  a Gamma posterior's mean whose prior is one event at ``prior_rate``. While little is
  known, that prior makes the first pending polls of a fleet come sooner; as its tasks are
  seen waiting, the hazard learnt falls and the pending polls spread out, as a backoff
  would, but for a reason.

The prior
---------
Before anything was seen, every rate is ``prior_rate``: one event per ``sqrt(min_interval *
max_interval)`` seconds, the median time scale when every scale between the two bounds is as
likely as another (a log-uniform gap), and the only thing the caller said about them. The
median, not the mean rate. What a schedule is judged by is relative: its cost over the least
possible on each workload, and the worst of those. A rate misjudged by a factor ``k`` sets
an interval ``x = 1 / sqrt(k)`` times the best, whose cost is ``(x + 1 / x) / 2`` times the
least under the square-root rule (``c / T + r * T / 2`` at ``T = x * sqrt(2 * c / r)``), the
same for ``k`` as for ``1 / k``. So the guess whose worst ratio over every rate in the range
is least is the geometric mean of the range's ends, which is also the median, and it
minimises the mean ratio under the log-uniform prior too. (The cube-root rule's cost, ``(x**3
+ 3 / x) / 4``, is nearly as symmetric.) The mean rate of that gap, ``(1 / min_interval - 1 /
max_interval) / log(max_interval / min_interval)``, minimises the expected cost in seconds,
which the fastest rates dominate: 1.7 times the median at 0.5-20 s, it had a small client,
whose tasks had not run yet, poll its pending tasks as if they would change every two
seconds once started. ``_priority`` learns the fleet's rate of change from the same
prior, so the two modules start from one guess. The prior weighs one event, ``1 /
prior_rate`` seconds of watching (3 s at 0.5-20 s): the first few spells seen outweigh it.
Measured on the freshness family (``benchmarks._offline_fresh``), the median serves a client
of 20 tasks better than the mean on almost every workload and no worse on any, and a client
of 200 as well overall (worse on the fastest time scale, better on slow changes). No single
prior serves every workload before its first task has run: a lower one (one change per
``max_interval``) suits tasks that change rarely and sees the first starts of fast ones late.

Quiet after a change
--------------------
A task does not change as a Poisson stream: its results rise as pages are scraped, and a page
takes time, so right after a change (or a start) the next is unlikely for a while. The fleet
learns how long from what its polls saw: each time a running task's change is seen, the time
from the change (or the start) seen before it to the last poll that still showed nothing new
is a lower bound on that quiet spell (the next change came after that poll); a poll that finds
several pages done at once adds a bound of zero for each gap it hid. ``quiet_for`` reads a
quantile of the latest bounds (``QUIET_WINDOW``; none before ``QUIET_MIN_SAMPLES``). Lower
bounds only: polls coarser than the quiet spells give bounds of zero, so the rule cannot teach
itself a longer quiet than it saw, and where the gaps are not seen it is the Poisson rule.

Which quantile: holding back the dense polls one second longer saves ``1 / T`` polls (``c /
T`` in delay), and delays every change that came before the hold-back ended by that second,
a share ``F(D)`` of them. The best hold-back ``D`` has ``F(D) = c / T``: the quantile ``c /
T`` of the quiet spells, ``T`` the dense interval (at most one half, as ``T >= min_interval
= 2 * c``). So, while running:

- within ``D`` of the last change (or the start) seen, only the end is expected: the next poll
  comes at the square-root rule of the end hazard alone, or one dense interval after ``D``,
  whichever is sooner;
- after ``D``, the changes come faster than the mean gap says, as its quiet part is over: a
  mean gap ``1 / r`` is ``D`` of quiet and a Poisson remainder of mean ``1 / r - D`` (its rate
  at most ``QUIET_SPEEDUP`` times ``r``, since ``D`` is estimated);
- a pending task's start unseen for ``u`` seconds costs nothing for the first ``D`` of them
  (the fresh task's first change is at least that far off), so the cube-root rule above
  becomes ``T = D + x`` with ``2 * x**3 + 3 * D * x**2 = 6 * c / (h * r0)`` (the cost of a
  start ``u`` before the poll is ``r0 * (u - D)**2 / 2``, averaged over ``u`` in ``[0,
  T]``); ``T = (3 * c / (h * r0)) ** (1 / 3)`` at ``D = 0``.

Steady gaps: the renewal rule
-----------------------------
Where the gaps between changes are steadier than a Poisson stream's (a page takes about as
long as the one before it), knowing when the last change came says much more than a hold-back
does: the next one is likely at about one typical gap later, and unlikely before. The fleet
keeps the latest gaps seen, each change dated to the middle of the window between the poll
that showed it and the poll before (so a dense poll dates it to within half an interval, and
the start is dated the same way), and when their spread is at most ``REGULAR_SPREAD`` of
their mean (``regular``; an exponential gap's spread equals its mean), a running task is
polled by the renewal rule instead:

- the next change is taken to come one of the gaps seen that are longer than the time since
  the last dated change (or the start), each as likely: the empirical distribution, given that
  nothing came yet;
- the next poll comes when the delay expected to have piled up since the mark, the mean of
  ``t - gap`` over those gaps shorter than ``t``, reaches the price of a request ``c``
  (``renewal_interval``), or sooner if the square-root rule at the end hazard alone says so
  (an abort or a failure need not wait for a page to finish, as within the quiet spell).

For a Poisson stream that is the square-root rule again (at a small interval the delay piled
up is ``r * T**2 / 2``); for steady gaps it waits out the shortest gap and then polls ever
faster as a change grows likely, the shape of Barlow, Hunter and Proschan's optimal
inspection schedule for a known failure distribution ("Optimum checking procedures", J. SIAM
11(4), 1963), learnt from the fleet's own polls instead of known. Where it cannot judge (fewer
than ``RENEWAL_MIN_LONGER`` gaps seen longer than the time since the mark: a task slower than
any seen; or a median gap under ``RENEWAL_RESOLUTION`` times ``min_interval``, too short for
the polls to date), the Poisson rule above applies. Gaps mixing fast and slow tasks spread
more than exponential ones, so a fleet of tasks of different rates keeps each task's own
rate and the Poisson rule.

These are the estimates of Cho and Garcia-Molina's refresh policies, which learn each
source's change rate from what polls saw and spend more polls where changes are more
frequent, but not in proportion ("Synchronizing a database to improve freshness", SIGMOD
2000; "Effective page refresh policies for web crawlers", ACM TODS 28(4), 2003). When the
rate budget binds, ``_priority`` ranks the due watches by the delay they accumulated (the
Max-Weight index of Kadota et al., IEEE/ACM ToN 2018), whose fixed point is the same
square-root rule: the two modules spend polls by one principle.

Measured on a family of queue-like workloads (``benchmarks.freshness``, and offline, against
the best possible, ``benchmarks._offline_fresh``), the schedule needs well under half of fixed
polling's requests at equal mean delay wherever a task spends much of its life waiting or
changes at uneven rates; where a task mostly runs at a steady pace, fixed polling is already
near the best possible, and so is this.

Every interval lies within ``[min_interval, max_interval]``: never more often than
``min_interval``, never a longer gap than ``max_interval`` (a promise, whatever the estimates
say). A jitter of up to ``JITTER`` of the interval (downwards, never below ``min_interval``)
keeps many watchers that started together from polling in lockstep.

Poll scheduling is not a retry, so it is not a tenacity wait strategy (those take a
``RetryCallState``); request retries do use tenacity (see ``client.py``).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Hashable, Sequence
from typing import Protocol

import attrs

from .models import Task, TaskState

JITTER = 0.2
PACE_WEIGHT = 0.5  # weight of the newest gap in the pace's moving average
QUIET_WINDOW = 256  # the latest quiet bounds a fleet keeps (``quiet_for``)
QUIET_MIN_SAMPLES = 5  # no quiet spell is assumed before this many bounds
QUIET_SPEEDUP = 4.0  # after the quiet spell, at most this many times the mean rate
REGULAR_MIN_GAPS = 20  # gaps seen before their spread is judged (``regular``)
REGULAR_SPREAD = 0.75  # at most this standard deviation per mean gap: steadier than Poisson
RENEWAL_MIN_LONGER = 3  # gaps seen longer than the time since the mark, for the renewal rule
RENEWAL_RESOLUTION = 2.0  # the renewal rule needs a median gap of this many min_intervals

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


def price(min_interval: float) -> float:
    """What one request is worth, in seconds of detection delay: the price at which a task
    changing every ``min_interval`` seconds is polled every ``min_interval``."""
    return min_interval / 2.0


def prior_rate(min_interval: float, max_interval: float) -> float:
    """The rate expected of an event before any was seen: one per ``sqrt(min_interval *
    max_interval)`` seconds, the median of a gap log-uniform over ``[min_interval,
    max_interval]`` (every time scale the caller allows as likely as any other), not its mean
    rate, which the fast end dominates. A rate misjudged by one factor costs the same share
    more whether it was too high or too low (see the module docstring), so this guess keeps
    the worst share over the range least. The one prior of every rate both this module and
    ``_priority`` learn; ``1 / min_interval`` when the two bounds are equal."""
    return 1.0 / math.sqrt(min_interval * max_interval)


def learnt_rate(events: float, seen_for: float, prior: float) -> float:
    """Events per second after ``events`` were seen in ``seen_for`` seconds of watching: the
    mean of a Gamma posterior whose prior is one event per ``1 / prior`` seconds (so ``prior``
    before anything was seen, the observed rate once much was)."""
    return (max(events, 0.0) + 1.0) / (max(seen_for, 0.0) + 1.0 / prior)


def running_rate(
    changes_seen: int,
    running_for: float,
    pace: float | None,
    since_change: float | None,
    fresh_rate: float,
) -> float:
    """A running task's expected changes per second (see the module docstring).

    ``changes_seen`` changes were seen in ``running_for`` seconds of watching it run; ``pace``
    is its typical gap between changes once known, ``since_change`` the seconds since the last
    change seen (None before one); ``fresh_rate`` is the rate expected of a task just started.
    Always positive when ``fresh_rate`` is.
    """
    if pace is not None and pace > 0:
        quiet = since_change if since_change is not None else 0.0
        return 1.0 / max(pace, quiet)
    return learnt_rate(changes_seen, running_for, fresh_rate)


def running_interval(
    rate: float, min_interval: float, max_interval: float, cost: float | None = None
) -> float:
    """The square-root rule: ``sqrt(2 * cost / rate)``, within the bounds; ``cost`` is the
    price of a request (default ``price(min_interval)``), as in every rule below."""
    if cost is None:
        cost = price(min_interval)
    best = math.sqrt(2.0 * cost / rate) if rate > 0 else max_interval
    return min(max(best, min_interval), max_interval)


_NEWTON_STEPS = 50


def pending_interval(
    start_hazard: float,
    fresh_rate: float,
    min_interval: float,
    max_interval: float,
    quiet: float = 0.0,
    cost: float | None = None,
) -> float:
    """A pending task's interval, within the bounds: ``quiet + x`` where ``2 * x**3 + 3 *
    quiet * x**2 = 6 * cost / (start_hazard * fresh_rate)``, a fresh start's first change
    being at least ``quiet`` seconds off; ``(3 * cost / (start_hazard * fresh_rate)) **
    (1/3)`` at ``quiet`` 0."""
    product = start_hazard * fresh_rate
    if not product > 0:
        return max_interval
    if cost is None:
        cost = price(min_interval)
    target = 6.0 * cost / product
    x: float = (target / 2.0) ** (1.0 / 3.0)  # the root at no quiet, above all others
    quiet = max(quiet, 0.0)
    if quiet > 0:
        for _ in range(_NEWTON_STEPS):  # from above, Newton's steps fall monotonically
            excess = 2.0 * x**3 + 3.0 * quiet * x * x - target
            if excess <= target * 1e-9:
                break
            x -= excess / (6.0 * x * x + 6.0 * quiet * x)
    return min(max(quiet + x, min_interval), max_interval)


def since_quiet_mark(
    since_change: float | None, running_for: float, changes_seen: int
) -> float | None:
    """Seconds since the mark a running task's quiet spell counts from: its last change
    seen (``since_change`` ago), else its start (``running_for`` ago) if it has shown no
    change since; None for a task found started with changes already made, which has no
    mark. The fleet learns its quiet bounds from the same mark (``_priority``)."""
    if since_change is not None:
        return since_change
    return running_for if changes_seen == 0 else None


def since_dated_mark(
    since_change: float | None, change_window: float, running_for: float, changes_seen: int
) -> float | None:
    """``since_quiet_mark`` with the last change dated to the middle of its window: seen
    ``since_change`` seconds ago by a poll ``change_window`` seconds after the one before it.
    The mark the renewal rule counts from, and the fleet learns its gaps from."""
    return since_quiet_mark(
        None if since_change is None else since_change + change_window / 2.0,
        running_for,
        changes_seen,
    )


def quiet_for(quiet_after: Sequence[float], share: float) -> float:
    """The quiet spell to hold back for: the ``share`` quantile of ``quiet_after``, lower
    bounds on the seconds from a change seen (or a start) to the next change, sorted
    ascending; 0 with fewer than ``QUIET_MIN_SAMPLES`` of them."""
    count = len(quiet_after)
    if count < QUIET_MIN_SAMPLES:
        return 0.0
    return max(quiet_after[min(int(max(share, 0.0) * count), count - 1)], 0.0)


def after_quiet(rate: float, quiet: float) -> float:
    """The rate of change once a quiet spell of ``quiet`` seconds is over, for a mean rate
    ``rate``: ``1 / (1 / rate - quiet)``, at most ``QUIET_SPEEDUP * rate``."""
    return rate / max(1.0 - quiet * rate, 1.0 / QUIET_SPEEDUP)


def regular(gaps: Sequence[float]) -> bool:
    """Whether ``gaps`` (seconds between changes) look steadier than a Poisson stream's: at
    least ``REGULAR_MIN_GAPS`` of them, with a standard deviation at most ``REGULAR_SPREAD``
    of their mean (an exponential gap's equals it, a mixture of rates has more, and a
    sample of a few hundred exponential gaps seldom strays a tenth from it)."""
    count = len(gaps)
    if count < REGULAR_MIN_GAPS:
        return False
    mean = math.fsum(gaps) / count
    spread = math.fsum((gap - mean) ** 2 for gap in gaps) / count
    return spread <= (REGULAR_SPREAD * mean) ** 2


def renewal_interval(
    gaps: Sequence[float],
    since_mark: float,
    min_interval: float,
    max_interval: float,
    cost: float | None = None,
) -> float | None:
    """The renewal rule: seconds until the poll at which the delay expected to have piled up
    since the mark, ``since_mark`` seconds ago, reaches the price of a request (``cost``,
    default ``price(min_interval)``), within the bounds. ``gaps`` are the gaps between
    changes seen, sorted ascending: the next change is taken to come one of those longer than
    ``since_mark`` after the mark, each as likely (the empirical distribution, given that
    nothing came yet), so the delay by ``t`` seconds after the mark is the mean of ``t -
    gap`` over those gaps shorter than ``t``. None (the Poisson rule applies) when fewer
    than ``RENEWAL_MIN_LONGER`` gaps are longer than ``since_mark``, or when the median gap
    is under ``RENEWAL_RESOLUTION`` times ``min_interval``: polls that far apart cannot tell
    one moment of a gap from another."""
    count = len(gaps)
    if not count or gaps[count // 2] < RENEWAL_RESOLUTION * min_interval:
        return None
    first = bisect.bisect_right(gaps, since_mark)
    longer = count - first
    if longer < RENEWAL_MIN_LONGER:
        return None
    if cost is None:
        cost = price(min_interval)
    target = cost * longer  # the sum of ``t - gap`` that is worth a request
    total = 0.0
    at = math.inf
    for taken, position in enumerate(range(first, count), start=1):
        total += gaps[position]
        at = (target + total) / taken  # the root if it lies before the next gap
        if position + 1 == count or at <= gaps[position + 1]:
            break
    return min(max(at - since_mark, min_interval), max_interval)


def poll_interval(
    min_interval: float,
    max_interval: float,
    rand: float,
    *,
    running: bool,
    changes_seen: int = 0,
    running_for: float = 0.0,
    pace: float | None = None,
    since_change: float | None = None,
    change_window: float = 0.0,
    fleet: Fleet | None = None,
    cost: float | None = None,
) -> float:
    """Seconds until the next poll, within ``[min_interval, max_interval]``.

    ``running`` says whether the last snapshot showed the task started; ``changes_seen`` to
    ``since_change`` are what this task's polls taught (``running_rate``'s arguments), and
    ``change_window`` the seconds between the poll that saw the last change and the poll
    before it (the change came in that window); ``fleet`` is what all the client's watches
    did (None: nothing yet). ``rand`` is a uniform random number in [0, 1) (the caller's, so
    tests can fix it). ``cost`` is the price of a request in seconds of delay, default
    ``price(min_interval)`` (the scheduler's; another moves the schedule along its curve of
    requests against delay, as the benchmarks' diagnostics do).
    """
    if fleet is None:
        fleet = _NOTHING_SEEN
    prior = prior_rate(min_interval, max_interval)
    change_rate = learnt_rate(fleet.running_changes, fleet.running_for, prior)
    end_hazard = learnt_rate(fleet.ends, fleet.running_for, prior)
    if cost is None:
        cost = price(min_interval)
    low, high = min_interval, max_interval
    renewal = None
    if running and fleet.renewal_gaps:
        since_mark = since_dated_mark(since_change, change_window, running_for, changes_seen)
        if since_mark is not None:
            renewal = renewal_interval(fleet.renewal_gaps, since_mark, low, high, cost)
    if renewal is not None:  # the end may come between pages: its own rule caps the wait
        base = min(renewal, running_interval(end_hazard, low, high, cost))
    elif running:
        rate = running_rate(changes_seen, running_for, pace, since_change, change_rate)
        base = running_interval(rate + end_hazard, low, high, cost)
        quiet = quiet_for(fleet.quiet_after, cost / base)
        if quiet > 0:
            faster = after_quiet(rate, quiet) + end_hazard
            base = running_interval(faster, low, high, cost)
            since = since_quiet_mark(since_change, running_for, changes_seen)
            if since is not None and since < quiet:
                ending = running_interval(end_hazard, low, high, cost)
                base = min(ending, quiet - since + base)
    else:
        hazard = learnt_rate(fleet.starts, fleet.pending_for, prior)
        fresh, quiet = fresh_start(fleet, low, high, cost)
        base = pending_interval(hazard, fresh, low, high, quiet, cost)
    return max(min_interval, base * (1.0 - JITTER * rand))


def fresh_start(
    fleet: Fleet, min_interval: float, max_interval: float, cost: float | None = None
) -> tuple[float, float]:
    """What ``fleet`` expects of a task that has just started: its rate of change (changes
    and ends per second of running, each learnt from ``prior_rate``), and the quiet spell
    before its first change (``quiet_for`` at the share its dense interval sets, a request
    priced ``cost``, default ``price(min_interval)``). What a pending task's schedule weighs
    a start by (``pending_interval``)."""
    if cost is None:
        cost = price(min_interval)
    prior = prior_rate(min_interval, max_interval)
    fresh = learnt_rate(fleet.running_changes, fleet.running_for, prior)
    fresh += learnt_rate(fleet.ends, fleet.running_for, prior)
    dense = running_interval(fresh, min_interval, max_interval, cost)
    return fresh, quiet_for(fleet.quiet_after, cost / dense)


@attrs.frozen(slots=True)
class Fleet:
    """What the polls of all of one client's watches taught (the scheduler keeps the counts):
    ``starts`` seen in ``pending_for`` seconds of watching tasks wait, ``running_changes``
    changes and ``ends`` seen in ``running_for`` seconds of watching tasks run,
    ``quiet_after``, lower bounds on the quiet spells after a change or a start, and
    ``renewal_gaps``, the gaps between changes (or from a start to its first change) seen,
    when they are ``regular``, else empty, each sorted ascending (see the module
    docstring)."""

    starts: int = 0
    pending_for: float = 0.0
    running_changes: int = 0
    ends: int = 0
    running_for: float = 0.0
    quiet_after: Sequence[float] = ()
    renewal_gaps: Sequence[float] = ()


_NOTHING_SEEN = Fleet()


class Paced(Protocol):
    """What a poll stream keeps for its schedule, and ``note_poll`` updates."""

    pace: float | None  # typical seconds between changes while running (None: unknown)
    last_change_at: float | None  # when a change was last seen in this running spell
    change_window: float  # seconds from the poll before that one to it: the change came then
    last_state: object  # the state the last poll showed


def note_poll(
    stream: Paced, state: str, emitted: bool, now: float, polled_before: float | None
) -> None:
    """What one poll at ``now`` does to ``stream``'s schedule: it showed ``state``, and some
    caller yielded it (``emitted``: its key moved); the poll before it was at
    ``polled_before`` (None: none). A new state, or any but running, forgets the pace; a
    change while running updates it, and dates the change to the window between the two
    polls."""
    if state != stream.last_state or state != TaskState.RUNNING:
        stream.pace = stream.last_change_at = None  # a new phase: the pace no longer holds
        stream.change_window = 0.0
    elif emitted:
        if stream.last_change_at is not None:
            stream.pace = update_pace(stream.pace, now - stream.last_change_at)
        stream.last_change_at = now
        stream.change_window = 0.0 if polled_before is None else now - polled_before
    stream.last_state = state


def update_pace(pace: float | None, gap: float) -> float:
    """The pace after a change ``gap`` seconds after the previous one."""
    return gap if pace is None else pace + PACE_WEIGHT * (gap - pace)


@attrs.frozen(slots=True)
class PollDecision:
    """What the watcher does with one snapshot."""

    emit: bool  # yield this snapshot
    done: bool  # it is the terminal snapshot: stop after yielding it
    changed: bool  # the key or the state changed


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
