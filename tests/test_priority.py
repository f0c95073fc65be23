"""The pure priority policy, with tables: state in, index out."""

from __future__ import annotations

import math

import pytest

from taskwatch._priority import (
    COMPLETION_HAZARD_INTERVALS,
    PENDING_PRIOR_INTERVALS,
    RATE_FLOOR_INTERVALS,
    Phase,
    change_rate,
    expected_delay,
    start_hazard,
)

LOW, HIGH = 1.0, 30.0


@pytest.mark.parametrize(
    ("changes", "seen_for", "pace", "expected"),
    [
        (0, 0.0, None, 1 / 30),  # the prior: one change per max_interval
        (9, 60.0, None, 10 / 90),  # (changes + 1) / (seconds + max_interval)
        (0, 600.0, None, 1 / 630),
        (3, 10.0, 4.0, 1 / 4),  # a known pace wins
        (0, 0.0, 0.25, 1.0),  # never faster than one change per min_interval
        (0, 1e9, None, 1 / (RATE_FLOOR_INTERVALS * 30)),  # never slower than the floor
        (-5, -1.0, None, 1 / 30),  # nonsense counts are taken as none
    ],
)
def test_change_rate(changes: int, seen_for: float, pace: float | None, expected: float) -> None:
    assert change_rate(changes, seen_for, pace, LOW, HIGH) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("starts", "pending_for", "expected"),
    [
        (0, 0.0, 1 / (PENDING_PRIOR_INTERVALS * 30)),
        (9, 5700.0, 10 / 6000),  # an exponential wait's rate, learnt with the prior
        (0, 1e12, 1 / (RATE_FLOOR_INTERVALS * 30)),
        (10**6, 0.0, 1.0),
    ],
)
def test_start_hazard(starts: int, pending_for: float, expected: float) -> None:
    assert start_hazard(starts, pending_for, LOW, HIGH) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("phase", "since", "rate", "started", "expected"),
    [
        (Phase.RUNNING, 0.0, 0.2, None, 0.0),
        (Phase.RUNNING, -3.0, 0.2, None, 0.0),
        # r t^2 / 2 for the changes, plus the completion's hazard
        (Phase.RUNNING, 10.0, 0.2, None, (0.2 + 1 / (COMPLETION_HAZARD_INTERVALS * 30)) * 50),
        # h t^2 / 2 for the start, plus h r0 t^3 / 6 for the changes made before it is seen
        (Phase.PENDING, 60.0, 0.01, None, 0.01 * 1800 + 0.01 * (1 / 30) * 36000),
        (Phase.PENDING, 60.0, 0.01, 0.5, 0.01 * 1800 + 0.01 * 0.5 * 36000),
    ],
)
def test_expected_delay(
    phase: Phase, since: float, rate: float, started: float | None, expected: float
) -> None:
    assert expected_delay(phase, since, rate, LOW, HIGH, started) == pytest.approx(expected)


def test_a_faster_task_is_polled_more_often_but_by_the_square_root() -> None:
    """At a common index level, polls come at a rate proportional to sqrt(change rate)."""

    def interval_at(level: float, rate: float) -> float:
        low, high = 0.0, 1e6
        for _ in range(200):
            mid = (low + high) / 2
            if expected_delay(Phase.RUNNING, mid, rate, LOW, HIGH) < level:
                low = mid
            else:
                high = mid
        return low

    completion = 1 / (COMPLETION_HAZARD_INTERVALS * HIGH)
    slow, fast = 0.01, 0.16
    ratio = interval_at(500.0, slow) / interval_at(500.0, fast)
    assert ratio == pytest.approx(math.sqrt((fast + completion) / (slow + completion)))
    assert 2.0 < ratio < 4.0  # sixteen times the rate: not sixteen times the polls


@pytest.mark.parametrize("phase", [Phase.PENDING, Phase.RUNNING])
def test_nobody_starves_the_index_grows_past_any_other(phase: Phase) -> None:
    """The slowest possible watch, left alone long enough, outranks the fastest one polled
    at min_interval: every watch gets a slot when the budget binds."""
    slowest = 1 / (RATE_FLOOR_INTERVALS * HIGH)
    fastest = expected_delay(Phase.RUNNING, 10 * LOW, 1 / LOW, LOW, HIGH)
    waits = [10.0**k for k in range(1, 8)]
    indices = [expected_delay(phase, t, slowest, LOW, HIGH) for t in waits]
    assert indices == sorted(indices)
    assert indices[-1] > fastest


def test_a_pending_task_that_waited_outranks_a_running_one_polled_just_now() -> None:
    hazard = start_hazard(0, 0.0, LOW, HIGH)
    assert expected_delay(Phase.PENDING, 300.0, hazard, LOW, HIGH) > expected_delay(
        Phase.RUNNING, 5.0, change_rate(0, 0.0, 2.0, LOW, HIGH), LOW, HIGH
    )
