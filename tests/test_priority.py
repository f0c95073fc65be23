"""The pure priority policy, with tables: state in, index out."""

from __future__ import annotations

import functools
import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskwatch import _policy
from taskwatch._policy import QUIET_WINDOW, REGULAR_MIN_GAPS, note_poll
from taskwatch._priority import (
    COMPLETION_HAZARD_INTERVALS,
    PENDING_PRIOR_INTERVALS,
    RATE_FLOOR_INTERVALS,
    FleetLearning,
    Phase,
    change_rate,
    end_hazard,
    fleet_rate,
    index,
    start_hazard,
    started,
)

LOW, HIGH = 1.0, 30.0
FLOOR = 1 / (RATE_FLOOR_INTERVALS * HIGH)


@pytest.mark.parametrize(
    ("changes", "seen_for", "fleet", "expected"),
    [
        (0, 0.0, 1 / 30, 1 / 30),  # seen for no time: the fleet's rate
        (0, 0.0, 0.2, 0.2),
        (9, 60.0, 1 / 30, 10 / 90),  # (changes + 1) / (seconds + 1 / fleet)
        (9, 60.0, 0.2, 10 / 65),  # a faster fleet: the prior weighs less time
        (0, 600.0, 1 / 30, 1 / 630),  # seen long, changing never: slow, whatever the fleet
        (300, 600.0, 1 / 30, 301 / 630),  # seen long, changing often: fast
        (0, 0.0, 4.0, 1.0),  # never faster than one change per min_interval
        (0, 1e9, 1 / 30, FLOOR),  # never slower than the floor
        (-5, -1.0, 1 / 30, 1 / 30),  # nonsense counts are taken as none
        (0, 0.0, 0.0, FLOOR),  # a fleet rate out of range is clamped first
    ],
)
def test_change_rate(changes: int, seen_for: float, fleet: float, expected: float) -> None:
    assert change_rate(changes, seen_for, fleet, LOW, HIGH) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("changes", "seen_for", "fleet", "prior_for", "expected"),
    [
        # (changes + fleet * prior_for) / (seconds + prior_for): a prior worth prior_for s
        (0, 0.0, 0.1, 300.0, 0.1),  # seen for no time: the fleet's rate
        (3, 60.0, 0.1, 300.0, 33 / 360),  # three changes in a minute: still about typical
        (30, 60.0, 0.1, 300.0, 60 / 360),  # thirty: faster, not five times faster
        (3000, 6000.0, 0.1, 300.0, 3030 / 6300),  # seen for many spells: its own rate
        (0, 6000.0, 0.1, 300.0, 30 / 6300),
        (9, 60.0, 1 / 30, None, 10 / 90),  # no prior given: one change at the fleet's rate
        (9, 60.0, 1 / 30, 1.0, 10 / 90),  # never less than that
        (0, 0.0, 0.1, 1e12, 0.1),
    ],
)
def test_change_rate_with_a_prior_spell(
    changes: int, seen_for: float, fleet: float, prior_for: float | None, expected: float
) -> None:
    got = change_rate(changes, seen_for, fleet, LOW, HIGH, prior_for=prior_for)
    assert got == pytest.approx(expected)


def test_a_rate_read_from_a_short_spell_stays_near_the_fleets() -> None:
    """Two tasks seen for two polls of a minute each, one with twice the other's pages: with
    a prior of one typical spell (five minutes) their rates differ by far less than twice,
    with the default prior (one change) by almost twice; after many spells, by twice."""
    fleet, spell = 0.1, 300.0
    short = [change_rate(n, 120.0, fleet, LOW, HIGH, prior_for=spell) for n in (6, 12)]
    assert short[1] / short[0] < 1.25
    bare = [change_rate(n, 120.0, fleet, LOW, HIGH) for n in (6, 12)]
    assert bare[1] / bare[0] > 1.7
    long = [change_rate(n, 1e5, fleet, LOW, HIGH, prior_for=spell) for n in (5000, 10000)]
    assert long[1] / long[0] == pytest.approx(2.0, rel=0.01)


@pytest.mark.parametrize(
    ("changes", "running_for", "expected"),
    [
        (0, 0.0, 1 / math.sqrt(30)),  # the prior: one change per sqrt(min * max_interval)
        (99, 1000.0 - math.sqrt(30), 100 / 1000),  # the prior weighs sqrt(30) s
        (0, 1e12, FLOOR),
        (10**9, 1.0, 1.0),
    ],
)
def test_fleet_rate(changes: int, running_for: float, expected: float) -> None:
    assert fleet_rate(changes, running_for, LOW, HIGH) == pytest.approx(expected)


@pytest.mark.parametrize(("low", "high"), [(0.5, 20.0), (1.0, 30.0), (2.0, 60.0), (5.0, 5.0)])
def test_the_fleet_rate_starts_from_the_poll_policys_prior(low: float, high: float) -> None:
    """One prior for both modules: before anything was seen, the priority's rate of change
    (and a pending index's default fresh rate) is the poll policy's prior."""
    prior = _policy.prior_rate(low, high)
    assert fleet_rate(0, 0.0, low, high) == pytest.approx(prior)
    assert index(Phase.PENDING, 7.0, 0.01, low, high) == pytest.approx(
        index(Phase.PENDING, 7.0, 0.01, low, high, started_rate=prior)
    )
    # one event's weight: after 1 / prior seconds seen without a change, half the prior
    assert fleet_rate(0, 1.0 / prior, low, high) == pytest.approx(prior / 2.0)


@pytest.mark.parametrize(
    ("starts", "pending_for", "expected"),
    [
        (0, 0.0, 1 / (PENDING_PRIOR_INTERVALS * 30)),
        (9, 5700.0, 10 / 6000),  # an exponential wait's rate, learnt with the prior
        (0, 1e12, FLOOR),
        (10**6, 0.0, 1.0),
    ],
)
def test_start_hazard(starts: int, pending_for: float, expected: float) -> None:
    assert start_hazard(starts, pending_for, LOW, HIGH) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("ends", "running_for", "expected"),
    [
        (0, 0.0, 1 / (COMPLETION_HAZARD_INTERVALS * 30)),
        (4, 1200.0, 5 / 1500),
        (0, 1e12, FLOOR),
    ],
)
def test_end_hazard(ends: int, running_for: float, expected: float) -> None:
    assert end_hazard(ends, running_for, LOW, HIGH) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("pages", "unseen_for", "fleet", "seen_pending", "expected"),
    [
        # seen pending 120 s ago, now running with 12 pages: it ran 60 s, on average
        (12, 120.0, 0.1, True, (60.0, 12)),
        (500, 120.0, 0.1, True, (60.0, 500)),  # the window is bounded: every page counts
        # never seen before: its pages count for at most what the fleet makes meanwhile
        (500, 120.0, 0.1, False, (60.0, 12)),
        (3, 120.0, 0.1, False, (60.0, 3)),
        (0, 0.0, 0.1, False, (0.0, 0)),
        (-1, -5.0, 0.1, True, (0.0, 0)),  # nonsense is taken as nothing
    ],
)
def test_started(
    pages: int, unseen_for: float, fleet: float, seen_pending: bool, expected: tuple[float, int]
) -> None:
    assert started(pages, unseen_for, fleet, seen_pending) == pytest.approx(expected)


def test_a_never_seen_task_is_taken_at_most_twice_as_fast_as_the_fleet() -> None:
    """However many pages a task shows on its first poll, its first estimate stays within
    twice the fleet's rate: it may have run for hours before anyone watched it."""
    fleet = 0.05
    for unseen_for in (1.0, 10.0, 100.0, 1000.0):
        ran_for, changes = started(10**6, unseen_for, fleet, seen_pending=False)
        assert change_rate(changes, ran_for, fleet, LOW, HIGH) <= 2 * fleet + 1e-9


ENDING = 1 / (COMPLETION_HAZARD_INTERVALS * 30)
PRIOR = 1 / math.sqrt(1 * 30)  # the default fresh rate: the prior, one change per sqrt(min * max)


@pytest.mark.parametrize(
    ("phase", "since", "rate", "started_rate", "ending", "expected"),
    [
        (Phase.RUNNING, 0.0, 0.2, None, None, 0.0),
        (Phase.RUNNING, -3.0, 0.2, None, None, 0.0),
        # (r + ending) t^2 / 2: the changes and the end accumulated since the last poll
        (Phase.RUNNING, 10.0, 0.2, None, None, (0.2 + ENDING) * 50),
        (Phase.RUNNING, 10.0, 0.2, None, 0.01, 0.21 * 50),
        # h t^2 / 2 for the start, plus h r0 t^3 / 3 for the changes made before it is seen
        # (the marginal cost of the interval: see test_the_index_is_the_marginal_cost)
        (Phase.PENDING, 60.0, 0.01, None, None, 0.01 * 1800 + 0.01 * PRIOR * 72000),
        (Phase.PENDING, 60.0, 0.01, 0.5, None, 0.01 * 1800 + 0.01 * 0.5 * 72000),
        (Phase.PENDING, 0.0, 0.01, 0.5, None, 0.0),
    ],
)
def test_index(
    phase: Phase,
    since: float,
    rate: float,
    started_rate: float | None,
    ending: float | None,
    expected: float,
) -> None:
    got = index(phase, since, rate, LOW, HIGH, started_rate=started_rate, ending=ending)
    assert got == pytest.approx(expected)


def _interval_cost(phase: Phase, t: float, rate: float, started_rate: float) -> float:
    """c(t): the expected detection delay one poll interval of ``t`` seconds leaves.
    Running: r t changes, each t / 2 late. Pending: a start at hazard h, uniform in the
    interval, seen d = U(0, t) late, with r0 d changes meanwhile, each d / 2 late."""
    if phase is Phase.RUNNING:
        return rate * t * t / 2
    return rate * (t * t / 2 + started_rate * t**3 / 6)


@pytest.mark.parametrize(
    ("phase", "since", "rate", "started_rate"),
    [
        (Phase.RUNNING, 10.0, 0.2, 0.1),
        (Phase.RUNNING, 300.0, 0.01, 0.1),
        (Phase.PENDING, 60.0, 1 / 600, 0.1),
        (Phase.PENDING, 200.0, 1 / 600, 0.3),
        (Phase.PENDING, 5.0, 0.01, 1 / 30),
    ],
)
def test_the_index_is_the_marginal_cost(
    phase: Phase, since: float, rate: float, started_rate: float
) -> None:
    """The index is t c'(t) - c(t): the level at which the budget is spent best (the
    Lagrange condition of the total delay per second, sum c(T) / T, under a fixed number of
    polls a second)."""
    step = 1e-4 * since
    cost = functools.partial(_interval_cost, phase, rate=rate, started_rate=started_rate)
    slope = (cost(since + step) - cost(since - step)) / (2 * step)
    marginal = since * slope - cost(since)
    got = index(phase, since, rate, LOW, HIGH, started_rate=started_rate, ending=0.0)
    assert got == pytest.approx(marginal, rel=1e-6)


def test_the_marginal_index_polls_a_pending_task_sooner_than_the_delay_accumulated() -> None:
    """Ranking by the delay accumulated so far, c(t), reaches a level later for a pending
    task than the marginal index does: it would leave starts unseen longer."""
    hazard, fleet, level = 1 / 600, 0.13, 50.0
    marginal = _interval_at(level, Phase.PENDING, hazard, started_rate=fleet)
    low, high = 0.0, 1e6
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (
            (mid, high) if _interval_cost(Phase.PENDING, mid, hazard, fleet) < level else (low, mid)
        )
    assert marginal < 0.85 * low


def _interval_at(level: float, phase: Phase, rate: float, started_rate: float = 0.1) -> float:
    """The time since the last poll at which the index reaches ``level``."""
    low, high = 0.0, 1e7
    for _ in range(200):
        mid = (low + high) / 2
        if index(phase, mid, rate, LOW, HIGH, started_rate=started_rate, ending=0.0) < level:
            low = mid
        else:
            high = mid
    return low


def test_a_faster_task_is_polled_more_often_but_by_the_square_root() -> None:
    """At a common index level, polls come at a rate proportional to sqrt(change rate)."""
    slow, fast = 0.01, 0.16
    ratio = _interval_at(500.0, Phase.RUNNING, slow) / _interval_at(500.0, Phase.RUNNING, fast)
    assert ratio == pytest.approx(math.sqrt(fast / slow))
    assert ratio == pytest.approx(4.0)  # sixteen times the rate: four times the polls


def test_a_pending_task_is_polled_more_often_when_started_tasks_change_faster() -> None:
    """A start unseen costs the changes the task makes before anyone notices: the faster the
    fleet changes once started, the sooner a pending task is worth a poll."""
    hazard = 1 / 600
    lazy = _interval_at(100.0, Phase.PENDING, hazard, started_rate=0.01)
    busy = _interval_at(100.0, Phase.PENDING, hazard, started_rate=0.3)
    assert busy < lazy / 2


@pytest.mark.parametrize("phase", [Phase.PENDING, Phase.RUNNING])
def test_nobody_starves_the_index_grows_past_any_other(phase: Phase) -> None:
    """The slowest possible watch, left alone long enough, outranks the fastest one polled
    at min_interval: every watch gets a slot when the budget binds."""
    fastest = index(Phase.RUNNING, 10 * LOW, 1 / LOW, LOW, HIGH)
    waits = [10.0**k for k in range(1, 8)]
    indices = [index(phase, t, FLOOR, LOW, HIGH, started_rate=FLOOR, ending=FLOOR) for t in waits]
    assert indices == sorted(indices)
    assert indices[-1] > fastest


def test_a_pending_task_that_waited_outranks_a_running_one_polled_just_now() -> None:
    hazard = start_hazard(0, 0.0, LOW, HIGH)
    fleet = fleet_rate(0, 0.0, LOW, HIGH)
    running = change_rate(0, 0.0, 0.5, LOW, HIGH)
    assert index(Phase.PENDING, 300.0, hazard, LOW, HIGH, started_rate=fleet) > index(
        Phase.RUNNING, 5.0, running, LOW, HIGH
    )


class _Stream:
    """A poll stream as ``FleetLearning.learn`` sees it."""

    def __init__(self) -> None:
        self.phase = Phase.PENDING
        self.phase_since = 0.0
        self.last_poll: float | None = None
        self.changes_seen = 0
        self.last_change_at: float | None = None
        self.change_window = 0.0


def test_fleet_learning_counts_waits_starts_changes_by_pages_and_ends() -> None:
    fleet, stream = FleetLearning(), _Stream()
    learn = fleet.learn
    # subscribed at 0, first poll at 5: pending, nothing learnt about waiting yet
    learn(stream, Phase.PENDING, 0, None, False, True, 5.0, 1.0, 30.0)
    assert (fleet.starts, fleet.pending_for, stream.last_poll) == (0, 0.0, 5.0)
    # still pending at 15: 10 s of waiting, no start
    learn(stream, Phase.PENDING, 0, 0, False, False, 15.0, 1.0, 30.0)
    assert (fleet.starts, fleet.pending_for) == (0, 10.0)
    # running at 25 with 3 pages: a start, dated halfway through the 10 s unseen
    learn(stream, Phase.RUNNING, 3, 0, False, True, 25.0, 1.0, 30.0)
    assert (fleet.starts, fleet.pending_for) == (1, 20.0)
    assert (stream.phase, stream.phase_since, stream.changes_seen) == (Phase.RUNNING, 20.0, 3)
    # 7 pages later a key moved: 7 changes in 5 s of running
    learn(stream, Phase.RUNNING, 10, 3, False, True, 30.0, 1.0, 30.0)
    assert (stream.changes_seen, fleet.changes, fleet.running_for) == (10, 7, 5.0)
    # pages moved but no key did: no change counted; still running time
    learn(stream, Phase.RUNNING, 12, 10, False, False, 32.0, 1.0, 30.0)
    assert (stream.changes_seen, fleet.changes, fleet.running_for) == (10, 7, 7.0)
    # a key moved without a page (results rose within one): one change; and the end
    learn(stream, Phase.RUNNING, 12, 12, True, True, 33.0, 1.0, 30.0)
    assert (fleet.changes, fleet.ends, fleet.running_for) == (8, 1, 8.0)


def test_a_task_found_running_at_its_first_poll_counts_no_start() -> None:
    fleet, stream = FleetLearning(), _Stream()
    fleet.learn(stream, Phase.RUNNING, 50, None, False, True, 4.0, 1.0, 30.0)
    assert (fleet.starts, fleet.pending_for) == (0, 0.0)
    # never seen pending: its pages count for at most the fleet's rate over the 4 s unseen
    fleet_rate_now = fleet_rate(0, 0.0, 1.0, 30.0)
    assert stream.changes_seen == math.ceil(fleet_rate_now * 4.0)
    assert stream.phase_since == 2.0


class _Paced(_Stream):
    """A poll stream as the scheduler keeps it for both the priority and the schedule."""

    def __init__(self) -> None:
        super().__init__()
        self.pace: float | None = None
        self.last_state: object = None
        self.change_window = 0.0


def _poll(
    fleet: FleetLearning,
    stream: _Paced,
    at: float,
    state: str,
    pages: int,
    before: int | None,
    emitted: bool,
    done: bool = False,
) -> None:
    """One poll as ``Scheduler._deliver`` handles it: learn, then note it for the schedule."""
    phase = Phase.PENDING if state == "pending" else Phase.RUNNING
    polled_before = stream.last_poll
    fleet.learn(stream, phase, pages, before, done, emitted, at, 1.0, 30.0)
    note_poll(stream, "completed" if done else state, emitted, at, polled_before)


def test_fleet_learning_bounds_the_quiet_after_each_change_seen() -> None:
    fleet, stream = FleetLearning(), _Paced()
    _poll(fleet, stream, 0.0, "pending", 0, None, True)
    _poll(fleet, stream, 10.0, "running", 0, 0, False)  # started in (0, 10]: dated at 5
    assert not fleet.quiet_after
    _poll(fleet, stream, 13.0, "running", 0, 0, False)
    _poll(fleet, stream, 16.0, "running", 1, 0, True)  # the first change, after 13
    assert list(fleet.quiet_after) == [8.0]  # quiet from the dated start (5) to at least 13
    _poll(fleet, stream, 19.0, "running", 1, 1, False)
    _poll(fleet, stream, 22.0, "running", 1, 1, False)
    _poll(fleet, stream, 25.0, "running", 4, 1, True)  # three pages: two gaps hidden
    assert list(fleet.quiet_after) == [0.0, 0.0, 6.0, 8.0]  # from 16 to at least 22
    _poll(fleet, stream, 26.0, "running", 5, 4, True)  # no quiet poll between: at least 0
    assert list(fleet.quiet_after) == [0.0, 0.0, 0.0, 6.0, 8.0]
    _poll(fleet, stream, 40.0, "running", 6, 5, True, done=True)  # an end is no change
    assert list(fleet.quiet_after) == [0.0, 0.0, 0.0, 6.0, 8.0]
    assert fleet.taught().quiet_after == fleet.quiet_after


def test_fleet_learning_dates_each_change_to_the_middle_of_its_window() -> None:
    fleet, stream = FleetLearning(), _Paced()
    _poll(fleet, stream, 0.0, "pending", 0, None, True)
    _poll(fleet, stream, 10.0, "running", 0, 0, False)  # started in (0, 10]: dated at 5
    _poll(fleet, stream, 13.0, "running", 0, 0, False)
    _poll(fleet, stream, 16.0, "running", 1, 0, True)  # in (13, 16]: dated at 14.5
    assert list(fleet.change_gaps) == [9.5]
    _poll(fleet, stream, 19.0, "running", 1, 1, False)
    _poll(fleet, stream, 25.0, "running", 3, 1, True)  # in (19, 25]: dated at 22, one gap
    assert list(fleet.change_gaps) == [7.5, 9.5]
    _poll(fleet, stream, 40.0, "running", 4, 3, True, done=True)  # an end is no change
    assert list(fleet.change_gaps) == [7.5, 9.5]
    # a task found started with changes made has no mark until its next change
    found = _Paced()
    _poll(fleet, found, 0.0, "pending", 0, None, True)
    _poll(fleet, found, 10.0, "running", 2, 0, True)
    _poll(fleet, found, 14.0, "running", 3, 2, True)  # in (10, 14]: dated at 12
    assert list(fleet.change_gaps) == [7.5, 9.5]
    _poll(fleet, found, 18.0, "running", 3, 3, False)
    _poll(fleet, found, 22.0, "running", 4, 3, True)  # in (18, 22]: dated at 20
    assert list(fleet.change_gaps) == [7.5, 8.0, 9.5]


def test_the_schedule_is_taught_the_gaps_only_once_they_look_steadier_than_poisson() -> None:
    fleet = FleetLearning()
    for number in range(REGULAR_MIN_GAPS):
        stream = _Paced()
        _poll(fleet, stream, 0.0, "pending", 0, None, True)
        _poll(fleet, stream, 2.0, "running", 0, 0, False)  # dated at 1
        _poll(fleet, stream, 6.0, "running", 0, 0, False)
        _poll(fleet, stream, 8.0, "running", 1, 0, True)  # dated at 7: a gap of 6 s
        taught = fleet.taught().renewal_gaps
        assert taught == (() if number + 1 < REGULAR_MIN_GAPS else (6.0,) * REGULAR_MIN_GAPS)
    # gaps of every length: a mixture of rates, not steady; the Poisson rule again
    for gap in (0.5, 60.0) * QUIET_WINDOW:
        stream = _Paced()
        _poll(fleet, stream, 0.0, "pending", 0, None, True)
        _poll(fleet, stream, 2.0, "running", 0, 0, False)  # dated at 1
        _poll(fleet, stream, 2.0 + gap, "running", 1, 0, True)  # dated at 2 + gap / 2
    assert len(fleet.change_gaps) == QUIET_WINDOW
    assert fleet.taught().renewal_gaps == ()


def test_a_task_found_started_with_changes_teaches_no_quiet_until_its_next_change() -> None:
    fleet, stream = FleetLearning(), _Paced()
    _poll(fleet, stream, 0.0, "pending", 0, None, True)
    _poll(fleet, stream, 10.0, "running", 2, 0, True)  # its changes came before any mark
    _poll(fleet, stream, 14.0, "running", 3, 2, True)
    assert not fleet.quiet_after
    _poll(fleet, stream, 18.0, "running", 3, 3, False)
    _poll(fleet, stream, 22.0, "running", 4, 3, True)
    assert fleet.quiet_after == (4.0,)  # from the change seen at 14 to at least 18


def test_the_quiet_window_keeps_the_latest_bounds() -> None:
    fleet = FleetLearning()
    for number in range(QUIET_WINDOW + 40):
        stream = _Paced()
        _poll(fleet, stream, 0.0, "pending", 0, None, True)
        _poll(fleet, stream, 2.0, "running", 0, 0, False)  # dated at 1
        _poll(fleet, stream, 2.0 + number, "running", 0, 0, False)
        _poll(fleet, stream, 3.0 + number, "running", 1, 0, True)
    assert fleet.quiet_after == tuple(float(n + 1) for n in range(40, QUIET_WINDOW + 40))
    stream = _Paced()
    _poll(fleet, stream, 0.0, "pending", 0, None, True)
    _poll(fleet, stream, 2.0, "running", 0, 0, False)
    _poll(fleet, stream, 3.0, "running", 10_000, 0, True)  # a flood of pages: bounded
    assert len(fleet.quiet_after) == QUIET_WINDOW
    assert fleet.quiet_after == (0.0,) * QUIET_WINDOW


@settings(max_examples=300, deadline=None)
@given(
    gaps=st.lists(st.floats(0.01, 50.0), min_size=1, max_size=12),
    polls=st.lists(st.floats(0.01, 30.0), min_size=2, max_size=60),
    start=st.floats(0.0, 100.0),
)
def test_quiet_bounds_never_exceed_the_true_quiet_spell(
    gaps: list[float], polls: list[float], start: float
) -> None:
    """Whatever the polls, each bound is at most the time from the mark it counts from (the
    dated start, or the poll that saw the change before) to the change that came next."""
    changes = list(itertools.accumulate(gaps, initial=start))[1:]
    fleet, stream = FleetLearning(), _Paced()
    at, before = 0.0, None
    checked = 0
    for step in polls:
        pages = sum(1 for change in changes if change <= at)
        state = "pending" if at < start else "running"
        emitted = before is None or (pages != before and state == "running")
        mark = stream.last_change_at
        if mark is None and stream.changes_seen == 0:
            mark = stream.phase_since
        kept = fleet.quiet_after
        _poll(fleet, stream, at, state, pages, before, emitted)
        if fleet.quiet_after != kept:
            assert mark is not None
            new = list(fleet.quiet_after)
            for bound in kept:
                new.remove(bound)
            following = min(change for change in changes if change > mark)
            assert max(new) <= following - mark
            checked += 1
        before = pages
        at += step
    assert checked <= len(changes)
