"""The pure polling policy, with tables."""

from __future__ import annotations

import itertools
import math

import pytest

from taskwatch import Task, TaskStatus
from taskwatch._policy import (
    JITTER,
    PACE_WEIGHT,
    QUIET_MIN_SAMPLES,
    QUIET_SPEEDUP,
    REGULAR_MIN_GAPS,
    RENEWAL_MIN_LONGER,
    RENEWAL_RESOLUTION,
    Fleet,
    after_quiet,
    check_intervals,
    decide,
    fresh_start,
    learnt_rate,
    note_poll,
    pending_interval,
    poll_interval,
    price,
    prior_rate,
    quiet_for,
    regular,
    renewal_interval,
    running_interval,
    running_rate,
    total_results,
    unset,
    update_pace,
)


def snap(results: int, state: str = "running", done: bool = False) -> Task:
    return Task(
        hash_value="h", status=TaskStatus(status=state, is_done=done, total_results=results)
    )


LOW, HIGH = 1.0, 30.0

# What polls may have taught, from nothing to a lot: (changes seen, seconds seen running,
# pace, seconds since the last change).
RUNNING = [
    (0, 0.0, None, None),
    (1, 5.0, None, 0.0),
    (3, 60.0, 0.2, 0.1),  # faster than min_interval allows
    (3, 60.0, 8.0, 2.0),
    (3, 600.0, 8.0, 500.0),  # quiet far longer than its pace
    (50, 100_000.0, 5000.0, 5000.0),
]
FLEETS = [
    None,
    Fleet(),
    Fleet(starts=40, pending_for=100.0, running_changes=400, running_for=100.0),  # fast
    Fleet(starts=1, pending_for=1e7, running_changes=0, running_for=1e7),  # slow
    # quiet spells learnt: none seen (hidden gaps), long ones, and a spread of them
    Fleet(
        starts=3, pending_for=100.0, running_changes=9, running_for=90.0, quiet_after=(0.0,) * 50
    ),
    Fleet(
        starts=3, pending_for=100.0, running_changes=9, running_for=90.0, quiet_after=(15.0,) * 20
    ),
    Fleet(
        starts=3,
        pending_for=100.0,
        running_changes=9,
        running_for=90.0,
        quiet_after=tuple(float(i) for i in range(256)),
    ),
]
SETTINGS = [(0.5, 20.0), (1.0, 30.0), (2.0, 60.0), (3.0, 3.0)]


@pytest.mark.parametrize(("low", "high"), SETTINGS)
@pytest.mark.parametrize("rand", [0.0, 0.5, 0.999])
def test_never_below_min_nor_above_max(low: float, high: float, rand: float) -> None:
    for fleet in FLEETS:
        assert low <= poll_interval(low, high, rand, running=False, fleet=fleet) <= high
        for seen, running_for, pace, since in RUNNING:
            interval = poll_interval(
                low,
                high,
                rand,
                running=True,
                changes_seen=seen,
                running_for=running_for,
                pace=pace,
                since_change=since,
                fleet=fleet,
            )
            assert low <= interval <= high


@pytest.mark.parametrize("rand", [0.0, 0.3, 0.999])
def test_jitter_only_shortens_and_never_below_min(rand: float) -> None:
    for fleet in FLEETS:
        for running in (False, True):
            plain = poll_interval(LOW, HIGH, 0.0, running=running, fleet=fleet)
            jittered = poll_interval(LOW, HIGH, rand, running=running, fleet=fleet)
            assert max(LOW, plain * (1 - JITTER)) <= jittered <= plain


def test_equal_min_and_max_is_a_fixed_interval() -> None:
    intervals = {
        poll_interval(3.0, 3.0, 0.5, running=r, fleet=f) for r in (False, True) for f in FLEETS
    }
    assert intervals == {3.0}


@pytest.mark.parametrize(
    ("gap", "expected"),
    [
        (1.0, 1.0),  # a change every min_interval: polled every min_interval
        (4.0, 2.0),  # the square-root rule: sqrt(min_interval * gap)
        (16.0, 4.0),  # four times slower, twice the interval
        (100.0, 10.0),
        (0.25, 1.0),  # faster than min_interval allows: min_interval
        (10_000.0, 30.0),  # slower than max_interval allows: max_interval
    ],
)
def test_a_running_task_follows_the_square_root_rule(gap: float, expected: float) -> None:
    assert running_interval(1.0 / gap, LOW, HIGH) == pytest.approx(expected)
    settled = Fleet(running_for=1e12)  # long watched: no end, no fresh change expected
    paced = poll_interval(LOW, HIGH, 0.0, running=True, pace=gap, since_change=0.0, fleet=settled)
    assert paced == pytest.approx(expected)


@pytest.mark.parametrize(
    ("hazard", "fresh", "expected"),
    [
        (1 / 600, 1 / 5, (3 * 0.5 * 600 * 5) ** (1 / 3)),  # about 16.5 s
        (8 / 600, 1 / 5, (3 * 0.5 * 600 * 5) ** (1 / 3) / 2),  # 8x the hazard: half
        (1 / 600, 8 / 5, (3 * 0.5 * 600 * 5) ** (1 / 3) / 2),  # or 8x the fresh rate
        (1e-9, 1 / 5, 30.0),  # a start is unlikely: max_interval
        (1.0, 1.0, 1.1447142425533319),  # both fast: (3 * 0.5) ** (1/3)
        (100.0, 100.0, 1.0),  # faster than min_interval allows
    ],
)
def test_a_pending_task_follows_the_cube_root_rule(
    hazard: float, fresh: float, expected: float
) -> None:
    assert pending_interval(hazard, fresh, LOW, HIGH) == pytest.approx(expected)


# (min, max, a fresh start's gap, mean pending), a start no likelier than a fresh change
PRICED = [
    (low, high, gap, mean)
    for low, high in SETTINGS[:3]
    for gap in (1.0, 3.0, 10.0, 100.0)
    for mean in (1.0, 10.0, 1000.0)
    if mean >= gap >= low
]


@pytest.mark.parametrize(("low", "high", "fresh_gap", "pending_mean"), PRICED)
def test_pending_is_polled_less_than_a_fresh_start_at_equal_price(
    low: float, high: float, fresh_gap: float, pending_mean: float
) -> None:
    pending = pending_interval(1.0 / pending_mean, 1.0 / fresh_gap, low, high)
    fresh = running_interval(1.0 / fresh_gap, low, high)
    assert pending >= fresh
    if low < fresh < high:
        assert pending > fresh


@pytest.mark.parametrize(
    ("seen", "running_for", "pace", "since", "expected"),
    [
        (0, 0.0, None, None, 0.2),  # just started: a fresh start's rate
        (0, 15.0, None, None, 1 / 20),  # quiet 15 s: one pseudo-change in 5 + 15 s
        (3, 15.0, None, 1.0, 4 / 20),
        (3, 60.0, 8.0, 2.0, 1 / 8),  # its pace
        (3, 60.0, 8.0, 8.0, 1 / 8),
        (3, 60.0, 8.0, 40.0, 1 / 40),  # quiet 5x its pace: slower than it said
    ],
)
def test_running_rate(
    seen: int, running_for: float, pace: float | None, since: float | None, expected: float
) -> None:
    assert running_rate(seen, running_for, pace, since, fresh_rate=0.2) == pytest.approx(expected)


def test_learnt_rate_goes_from_the_prior_to_what_was_seen() -> None:
    assert learnt_rate(0, 0.0, prior=0.1) == pytest.approx(0.1)
    assert learnt_rate(0, 90.0, prior=0.1) == pytest.approx(0.01)
    assert learnt_rate(999, 10_000.0, prior=10.0) == pytest.approx(0.1, rel=1e-4)


@pytest.mark.parametrize(("low", "high"), SETTINGS)
def test_prior_rate_lies_within_the_callers_range(low: float, high: float) -> None:
    assert 1.0 / high <= prior_rate(low, high) <= 1.0 / low
    assert prior_rate(3.0, 3.0) == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("low", "high", "gap"),
    [
        # one event per sqrt(min_interval * max_interval) seconds: the median time scale
        (0.5, 20.0, math.sqrt(10.0)),
        (1.0, 30.0, math.sqrt(30.0)),
        (2.0, 60.0, math.sqrt(120.0)),
        (1.0, 100.0, 10.0),
        (3.0, 3.0, 3.0),
    ],
)
def test_prior_rate_is_the_median_time_scale(low: float, high: float, gap: float) -> None:
    assert prior_rate(low, high) == pytest.approx(1.0 / gap)


@pytest.mark.parametrize(("low", "high"), [(0.5, 20.0), (1.0, 30.0), (2.0, 60.0), (1.0, 1e4)])
def test_prior_rate_is_the_median_of_a_log_uniform_gap_not_its_mean_rate(
    low: float, high: float
) -> None:
    """Half of a log-uniform gap's mass lies on either side of 1 / prior_rate; its mean rate
    (the fast end's) lies above it."""
    median_gap = 1.0 / prior_rate(low, high)
    below = math.log(median_gap / low) / math.log(high / low)
    assert below == pytest.approx(0.5)
    mean_rate = (1.0 / low - 1.0 / high) / math.log(high / low)
    assert prior_rate(low, high) < mean_rate


def _cost(guess: float, rate: float, low: float) -> float:
    """Seconds of delay plus priced requests per second, polling a source of ``rate`` at the
    square-root rule's interval for the ``guess``ed rate."""
    c = price(low)
    interval = math.sqrt(2.0 * c / guess)
    return c / interval + rate * interval / 2.0


@pytest.mark.parametrize("k", [1.5, 2.0, 4.0, 10.0])
def test_a_rate_misjudged_either_way_by_one_factor_costs_the_same(k: float) -> None:
    """Under the square-root rule, a rate k times too high or k times too low costs the same
    share more than the least."""
    rate = 0.1
    least = _cost(rate, rate, LOW)
    assert _cost(rate * k, rate, LOW) == pytest.approx(_cost(rate / k, rate, LOW))
    assert _cost(rate * k, rate, LOW) == pytest.approx(least * (k**0.5 + k**-0.5) / 2.0)


@pytest.mark.parametrize(("low", "high"), [(0.5, 20.0), (1.0, 30.0), (2.0, 60.0)])
def test_the_prior_keeps_the_worst_share_over_the_callers_range_least(
    low: float, high: float
) -> None:
    """Why the median: of every guess, the prior's worst cost over the least possible, for a
    true rate anywhere in [1 / max_interval, 1 / min_interval], is the lowest; the mean rate
    of the range (the previous prior) does worse on the slowest rates."""

    def worst(guess: float) -> float:
        rates = [1.0 / high, 1.0 / low]  # the share is largest at an end of the range
        return max(_cost(guess, r, low) / _cost(r, r, low) for r in rates)

    prior = prior_rate(low, high)
    mean_rate = (1.0 / low - 1.0 / high) / math.log(high / low)
    for other in (prior * 0.8, prior * 1.25, mean_rate, 1.0 / high, 1.0 / low):
        assert worst(prior) < worst(other)


def test_before_anything_was_seen_a_pending_task_is_priced_at_the_prior() -> None:
    """Nothing seen: the start hazard, a fresh start's rate and its end hazard are all the
    prior, so the pending interval is the cube-root rule at those rates."""
    for low, high in SETTINGS:
        prior = prior_rate(low, high)
        expected = pending_interval(prior, 2.0 * prior, low, high)
        assert poll_interval(low, high, 0.0, running=False, fleet=Fleet()) == pytest.approx(
            expected
        )


def test_a_fleet_whose_tasks_end_soon_polls_its_running_tasks_more() -> None:
    def paced(fleet: Fleet) -> float:
        return poll_interval(LOW, HIGH, 0.0, running=True, pace=16.0, since_change=0.0, fleet=fleet)

    lasting = paced(Fleet(running_for=1e6))
    ending = paced(Fleet(ends=100, running_for=1600.0))
    assert lasting == pytest.approx(4.0, rel=1e-3)  # sqrt(1 * 16): the end is unlikely
    assert ending == pytest.approx(math.sqrt(1 / (1 / 16 + 1 / 16)), rel=0.02)


def test_waiting_without_a_start_spreads_the_pending_polls() -> None:
    short = poll_interval(LOW, HIGH, 0.0, running=False, fleet=Fleet(pending_for=10.0))
    longer = poll_interval(LOW, HIGH, 0.0, running=False, fleet=Fleet(pending_for=1000.0))
    sooner = poll_interval(
        LOW, HIGH, 0.0, running=False, fleet=Fleet(starts=50, pending_for=1000.0)
    )
    assert short < longer
    assert sooner < longer


@pytest.mark.parametrize(("low", "high"), [(0, 1), (-1, 1), (2, 1)])
def test_bad_intervals(low: float, high: float) -> None:
    with pytest.raises(ValueError, match="interval"):
        check_intervals(low, high)


@pytest.mark.parametrize(
    ("last_key", "last_state", "task", "emit", "done", "changed"),
    [
        (unset(), None, snap(0, "pending"), True, False, True),  # the first snapshot
        (0, "pending", snap(0, "pending"), False, False, False),  # quiet
        (0, "pending", snap(0, "running"), False, False, True),  # state change: reset only
        (0, "running", snap(5), True, False, True),  # new results
        (5, "running", snap(5), False, False, False),
        (5, "running", snap(5, "completed", done=True), True, True, True),  # terminal, same count
        (5, "running", snap(9, "failed", done=True), True, True, True),
        (unset(), None, snap(3, "aborted", done=True), True, True, True),  # done at once
    ],
)
def test_decide(
    last_key: object,
    last_state: object,
    task: Task,
    emit: bool,
    done: bool,
    changed: bool,
) -> None:
    decision = decide(last_key, last_state, task, total_results)
    assert (decision.emit, decision.done, decision.changed) == (emit, done, changed)


def test_custom_key() -> None:
    by_pages = decide(1, "running", snap(99), key=lambda t: t.status.total_pages)
    assert by_pages.emit is True  # total_pages is 0, last key was 1


def test_update_pace_is_a_moving_average() -> None:
    assert update_pace(None, 8.0) == 8.0
    assert update_pace(8.0, 4.0) == pytest.approx(8.0 + PACE_WEIGHT * (4.0 - 8.0))


class _Paced:
    """A stream's schedule state, as ``note_poll`` sees it."""

    def __init__(self) -> None:
        self.pace: float | None = None
        self.last_change_at: float | None = None
        self.change_window = 0.0
        self.last_state: object = None


def test_note_poll_learns_the_pace_of_a_running_task_and_forgets_it_on_a_new_state() -> None:
    stream = _Paced()
    note_poll(stream, "pending", True, 0.0, None)  # the first snapshot: a new state
    assert (stream.pace, stream.last_change_at, stream.change_window) == (None, None, 0.0)
    note_poll(stream, "pending", False, 10.0, 0.0)
    note_poll(stream, "running", False, 20.0, 10.0)  # started: no change of key yet
    assert (stream.pace, stream.last_change_at, stream.change_window) == (None, None, 0.0)
    note_poll(stream, "running", True, 24.0, 20.0)  # the first change seen running: no gap yet
    assert (stream.pace, stream.last_change_at, stream.change_window) == (None, 24.0, 4.0)
    note_poll(stream, "running", True, 30.0, 24.0)  # a gap of 6 s
    assert (stream.pace, stream.last_change_at, stream.change_window) == (6.0, 30.0, 6.0)
    note_poll(stream, "running", False, 32.0, 30.0)  # nothing new: the change stays dated
    assert (stream.last_change_at, stream.change_window) == (30.0, 6.0)
    note_poll(stream, "running", True, 40.0, 32.0)  # a gap of 10 s, weighted in
    assert stream.pace == pytest.approx(6.0 + PACE_WEIGHT * (10.0 - 6.0))
    assert (stream.last_change_at, stream.change_window) == (40.0, 8.0)
    note_poll(stream, "completed", True, 41.0, 40.0)  # a new state: the pace no longer holds
    assert (stream.pace, stream.last_change_at, stream.last_state) == (None, None, "completed")
    assert stream.change_window == 0.0


# -- quiet after a change ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bounds", "share", "expected"),
    [
        ((), 0.1, 0.0),
        ((9.0, 9.0, 9.0, 9.0), 0.5, 0.0),  # fewer than QUIET_MIN_SAMPLES: no quiet assumed
        ((1.0, 2.0, 3.0, 4.0, 5.0), 0.0, 1.0),
        ((1.0, 2.0, 3.0, 4.0, 5.0), 0.39, 2.0),  # int(0.39 * 5) = 1
        ((1.0, 2.0, 3.0, 4.0, 5.0), 0.5, 3.0),
        ((1.0, 2.0, 3.0, 4.0, 5.0), 1.0, 5.0),  # never past the last
        ((0.0,) * 4 + (7.0,) * 6, 0.3, 0.0),  # hidden gaps count
        ((0.0,) * 4 + (7.0,) * 6, 0.4, 7.0),
    ],
)
def test_quiet_for_reads_a_quantile_of_the_bounds(
    bounds: tuple[float, ...], share: float, expected: float
) -> None:
    assert quiet_for(bounds, share) == expected
    assert QUIET_MIN_SAMPLES == 5


@pytest.mark.parametrize(
    ("rate", "quiet", "expected"),
    [
        (0.1, 0.0, 0.1),
        (0.1, 5.0, 0.2),  # a 10 s mean gap: 5 s quiet, then 5 s on average
        (1 / 30, 15.0, 1 / 15),
        (0.1, 9.0, 0.1 * QUIET_SPEEDUP),  # 1 s left of 10: capped
        (0.1, 50.0, 0.1 * QUIET_SPEEDUP),  # a quiet bound longer than the mean gap
    ],
)
def test_after_quiet_is_the_rate_of_the_rest_of_the_gap(
    rate: float, quiet: float, expected: float
) -> None:
    assert after_quiet(rate, quiet) == pytest.approx(expected)


@pytest.mark.parametrize("quiet", [0.5, 2.0, 5.0, 15.0, 40.0])
@pytest.mark.parametrize(("hazard", "fresh"), [(1 / 165, 1 / 20), (1 / 30, 0.5), (1e-3, 1e-2)])
def test_a_quiet_start_solves_the_shifted_cube_root_rule(
    quiet: float, hazard: float, fresh: float
) -> None:
    low, high = 0.5, 1e6  # wide bounds, so the rule is not clamped
    interval = pending_interval(hazard, fresh, low, high, quiet)
    x = interval - quiet
    assert x > 0
    assert 2 * x**3 + 3 * quiet * x**2 == pytest.approx(6 * price(low) / (hazard * fresh))
    # longer than without the quiet, by less than the quiet itself
    plain = pending_interval(hazard, fresh, low, high)
    assert plain < interval < plain + quiet
    assert pending_interval(hazard, fresh, low, high, 0.0) == plain


def test_a_quiet_pending_interval_keeps_the_bounds() -> None:
    assert pending_interval(1 / 165, 1 / 20, 0.5, 20.0, 15.0) == 20.0
    assert pending_interval(1.0, 10.0, 0.5, 20.0, 0.0) == 0.5
    assert pending_interval(0.0, 10.0, 0.5, 20.0, 5.0) == 20.0


QUIET = tuple([15.0] * 20)  # every quiet spell seen lasted at least 15 s


def test_running_polls_hold_back_through_the_quiet_spell_then_come_faster() -> None:
    fleet = Fleet(running_changes=40, ends=20, running_for=1200.0, quiet_after=QUIET)
    plain = Fleet(running_changes=40, ends=20, running_for=1200.0)
    low, high = 0.5, 20.0

    def after(since: float, fleet: Fleet) -> float:
        return poll_interval(
            low,
            high,
            0.0,
            running=True,
            changes_seen=2,
            running_for=60.0,
            pace=None,
            since_change=since,
            fleet=fleet,
        )

    change_rate = learnt_rate(40, 1200.0, prior_rate(low, high))
    end = learnt_rate(20, 1200.0, prior_rate(low, high))
    rate = running_rate(2, 60.0, None, 1.0, change_rate)
    dense = running_interval(after_quiet(rate, 15.0) + end, low, high)
    ending = running_interval(end, low, high)
    # 1 s after a change: only the end is expected until 15 s
    assert after(1.0, fleet) == pytest.approx(min(ending, 14.0 + dense))
    assert after(1.0, fleet) > after(1.0, plain)
    # past the quiet spell: denser than the mean rate alone would poll
    assert after(16.0, fleet) == pytest.approx(dense)
    assert after(16.0, fleet) < after(16.0, plain)


def test_a_fresh_start_is_held_back_too_unless_it_showed_changes() -> None:
    fleet = Fleet(running_changes=40, ends=20, running_for=1200.0, quiet_after=QUIET)
    plain = Fleet(running_changes=40, ends=20, running_for=1200.0)

    def fresh(changes_seen: int, fleet: Fleet) -> float:
        return poll_interval(
            0.5,
            20.0,
            0.0,
            running=True,
            changes_seen=changes_seen,
            running_for=2.0,
            fleet=fleet,
        )

    assert fresh(0, fleet) > fresh(0, plain)
    # found started with changes made: no mark to count the quiet from, so only the faster rate
    assert fresh(3, fleet) <= fresh(3, plain)


def test_pending_polls_spread_by_the_quiet_a_fresh_start_keeps() -> None:
    fleet = Fleet(
        starts=2,
        pending_for=330.0,
        running_changes=40,
        ends=20,
        running_for=1200.0,
        quiet_after=QUIET,
    )
    plain = Fleet(starts=2, pending_for=330.0, running_changes=40, ends=20, running_for=1200.0)
    quiet = poll_interval(0.5, 60.0, 0.0, running=False, fleet=fleet)
    assert poll_interval(0.5, 60.0, 0.0, running=False, fleet=plain) < quiet <= 60.0


@pytest.mark.parametrize(
    ("fleet", "fresh", "quiet"),
    [
        # nothing seen: a change and an end at the prior rate, one per sqrt(0.5 * 20) s
        (Fleet(), 2.0 / math.sqrt(10.0), 0.0),
        # 40 changes and 20 ends in 1200 s: (40 + 1) and (20 + 1) in 1200 s + sqrt(10) s
        (
            Fleet(running_changes=40, ends=20, running_for=1200.0),
            62.0 / (1200.0 + math.sqrt(10.0)),
            0.0,
        ),
        # with quiet bounds (every one 15 s): whichever quantile is read, 15 s
        (
            Fleet(running_changes=40, ends=20, running_for=1200.0, quiet_after=QUIET),
            62.0 / (1200.0 + math.sqrt(10.0)),
            15.0,
        ),
    ],
)
def test_a_fresh_start_is_weighed_by_the_fleets_rates_and_quiet_spell(
    fleet: Fleet, fresh: float, quiet: float
) -> None:
    got_fresh, got_quiet = fresh_start(fleet, 0.5, 20.0)
    assert got_fresh == pytest.approx(fresh)
    assert got_quiet == pytest.approx(quiet)
    # and the pending schedule weighs a start by exactly these
    hazard = learnt_rate(fleet.starts, fleet.pending_for, prior_rate(0.5, 20.0))
    expected = pending_interval(hazard, got_fresh, 0.5, 20.0, got_quiet)
    assert poll_interval(0.5, 20.0, 0.0, running=False, fleet=fleet) == pytest.approx(expected)


def test_the_price_of_a_request_defaults_to_half_the_min_interval_everywhere() -> None:
    fleet = Fleet(starts=2, pending_for=330.0, running_changes=40, ends=20, running_for=1200.0)
    for running in (False, True):
        default = poll_interval(0.5, 60.0, 0.3, running=running, running_for=30.0, fleet=fleet)
        given = poll_interval(
            0.5, 60.0, 0.3, running=running, running_for=30.0, fleet=fleet, cost=price(0.5)
        )
        assert given == default
    assert renewal_interval(UNIFORM, 1.0, 0.5, 20.0, price(0.5)) == renewal_interval(
        UNIFORM, 1.0, 0.5, 20.0
    )


def test_a_lower_price_moves_each_rule_by_its_own_power() -> None:
    # square-root rule: half the price, 1/sqrt(2) the interval (unclamped)
    assert running_interval(0.01, 0.5, 60.0, 0.125) == pytest.approx(
        running_interval(0.01, 0.5, 60.0) / math.sqrt(2.0)
    )
    # cube-root rule, no quiet spell: half the price, 2 ** (-1/3) the interval
    assert pending_interval(0.001, 0.1, 0.5, 60.0, 0.0, 0.125) == pytest.approx(
        pending_interval(0.001, 0.1, 0.5, 60.0) * 2.0 ** (-1.0 / 3.0)
    )
    # renewal rule: the delay piled up by the poll is the price given
    interval = renewal_interval(UNIFORM, 0.0, 0.5, 20.0, 0.1)
    assert interval is not None
    assert _piled_up(UNIFORM, 0.0, interval) == pytest.approx(0.1)


# -- the renewal rule ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gaps", "expected"),
    [
        ((), False),
        ((5.0,) * (REGULAR_MIN_GAPS - 1), False),  # too few to tell
        ((5.0,) * REGULAR_MIN_GAPS, True),  # clockwork
        ((2.0, 8.0) * REGULAR_MIN_GAPS, True),  # two gaps in turn: spread 0.6 of the mean
        (tuple(3.0 + 7.0 * k / 99 for k in range(100)), True),  # uniform 3-10 s
        (tuple(-10.0 * math.log(1 - (k + 0.5) / 100) for k in range(100)), False),  # exponential
        ((1.0,) * 50 + (100.0,) * 5, False),  # a mixture of fast and slow tasks
    ],
)
def test_regular_tells_gaps_steadier_than_a_poisson_stream(
    gaps: tuple[float, ...], expected: bool
) -> None:
    assert regular(sorted(gaps)) is expected


def _piled_up(gaps: list[float], since: float, at: float) -> float:
    """The delay expected to have piled up ``at`` seconds after the mark, given no change
    in the first ``since``: the mean of ``at - gap`` over the gaps longer than ``since``."""
    longer = [g for g in gaps if g > since]
    return sum(max(at - g, 0.0) for g in longer) / len(longer)


UNIFORM = sorted(3.0 + 7.0 * k / 49 for k in range(50))  # gaps of 3-10 s


@pytest.mark.parametrize("since", [0.0, 1.0, 2.9, 3.0, 5.0, 8.0, 9.5])
@pytest.mark.parametrize(("low", "high"), [(0.5, 20.0), (1.0, 30.0), (0.1, 2.0)])
def test_the_renewal_rule_polls_when_the_delay_piled_up_is_worth_a_request(
    since: float, low: float, high: float
) -> None:
    interval = renewal_interval(UNIFORM, since, low, high)
    assert interval is not None
    assert low <= interval <= high
    at = since + interval
    if low < interval < high:  # not held by a bound: exactly one request's worth by then
        assert _piled_up(UNIFORM, since, at) == pytest.approx(price(low))
    else:
        assert (_piled_up(UNIFORM, since, at) >= price(low) - 1e-9) == (interval == low)


def test_the_renewal_rule_waits_out_the_shortest_gap_then_polls_ever_faster() -> None:
    low, high = 0.5, 20.0
    polls = [0.0]
    while polls[-1] < 10.0:
        interval = renewal_interval(UNIFORM, polls[-1], low, high)
        if interval is None:
            break
        polls.append(polls[-1] + interval)
    # no poll before the shortest gap, then intervals that shrink as a change grows likely
    assert polls[1] > 3.0
    steps = [b - a for a, b in itertools.pairwise(polls[1:])]
    assert steps
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(steps))
    assert len(polls) < 10.0 / low  # fewer polls than every min_interval through the gap


def test_the_renewal_rule_leaves_a_task_slower_than_all_seen_to_the_poisson_rule() -> None:
    since = 9.95
    assert 0 < len([g for g in UNIFORM if g > since]) < RENEWAL_MIN_LONGER
    assert renewal_interval(UNIFORM, since, 0.5, 60.0) is None


@pytest.mark.parametrize(
    ("gaps", "low"),
    [
        ((), 0.5),  # nothing seen
        (UNIFORM, 6.5 / RENEWAL_RESOLUTION + 0.1),  # polls too coarse for the gaps
    ],
)
def test_the_renewal_rule_leaves_it_to_the_poisson_rule(gaps: list[float], low: float) -> None:
    assert renewal_interval(gaps, 0.0, low, 60.0) is None


def _running(fleet: Fleet, since_change: float | None, window: float = 0.0) -> float:
    return poll_interval(
        0.5,
        20.0,
        0.0,
        running=True,
        changes_seen=3,
        running_for=40.0,
        pace=6.0,
        since_change=since_change,
        change_window=window,
        fleet=fleet,
    )


def test_running_polls_follow_the_renewal_rule_from_the_dated_change() -> None:
    taught = Fleet(running_changes=40, ends=5, running_for=300.0, renewal_gaps=UNIFORM)
    plain = Fleet(running_changes=40, ends=5, running_for=300.0)
    # the change came within the 2 s before the poll that saw it 1 s ago: dated 2 s ago
    assert _running(taught, 1.0, 2.0) == renewal_interval(UNIFORM, 2.0, 0.5, 20.0)
    # the end may come between pages: the end hazard's own rule caps a long wait
    ending = running_interval(learnt_rate(5, 300.0, prior_rate(0.5, 20.0)), 0.5, 20.0)
    slow = tuple(g * 10 for g in UNIFORM)
    held = Fleet(running_changes=40, ends=5, running_for=300.0, renewal_gaps=slow)
    assert (renewal_interval(slow, 2.0, 0.5, 20.0) or 0.0) > ending
    assert _running(held, 1.0, 2.0) == pytest.approx(ending)
    assert _running(taught, 1.0, 2.0) != _running(plain, 1.0, 2.0)
    # quiet longer than every gap seen: the Poisson rule, as without the gaps
    assert _running(taught, 12.0) == _running(plain, 12.0)
    # a task found started with changes made has no mark: the Poisson rule
    found = poll_interval(
        0.5, 20.0, 0.0, running=True, changes_seen=3, running_for=5.0, fleet=taught
    )
    assert found == poll_interval(
        0.5, 20.0, 0.0, running=True, changes_seen=3, running_for=5.0, fleet=plain
    )
    # a pending task is not judged by its gaps
    assert poll_interval(0.5, 20.0, 0.0, running=False, fleet=taught) == poll_interval(
        0.5, 20.0, 0.0, running=False, fleet=plain
    )
