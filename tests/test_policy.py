"""The pure polling policy, with tables."""

from __future__ import annotations

import pytest

from taskwatch import Task, TaskStatus
from taskwatch._policy import (
    GROWTH,
    JITTER,
    PACE_WEIGHT,
    check_intervals,
    decide,
    poll_interval,
    total_results,
    unset,
    update_pace,
)


def snap(results: int, state: str = "running", done: bool = False) -> Task:
    return Task(
        hash_value="h", status=TaskStatus(status=state, is_done=done, total_results=results)
    )


@pytest.mark.parametrize(
    ("quiet", "expected"),
    [(0, 1.0), (1, GROWTH), (2, GROWTH**2), (5, GROWTH**5), (8, 30.0), (1000, 30.0)],
)
def test_interval_grows_to_the_cap(quiet: int, expected: float) -> None:
    assert poll_interval(quiet, 1.0, 30.0, rand=0.0) == pytest.approx(min(expected, 30.0))


@pytest.mark.parametrize("rand", [0.0, 0.3, 0.999])
def test_jitter_only_shortens_and_never_below_min(rand: float) -> None:
    for quiet in range(12):
        plain = poll_interval(quiet, 1.0, 30.0, rand=0.0)
        jittered = poll_interval(quiet, 1.0, 30.0, rand=rand)
        assert max(1.0, plain * (1 - JITTER)) <= jittered <= plain


def test_equal_min_and_max_is_a_fixed_interval() -> None:
    assert {poll_interval(q, 3.0, 3.0, rand=0.5) for q in range(10)} == {3.0}


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


def test_pace_sets_the_interval_of_a_running_task() -> None:
    assert poll_interval(0, 1.0, 30.0, rand=0.0, pace=10.0) == pytest.approx(5.0)
    assert poll_interval(3, 1.0, 30.0, rand=0.0, pace=10.0) == pytest.approx(5.0)
    assert poll_interval(4, 1.0, 30.0, rand=0.0, pace=10.0) == pytest.approx(5.0 * GROWTH)
    assert poll_interval(5, 1.0, 30.0, rand=0.0, pace=10.0) == pytest.approx(5.0 * GROWTH**2)
    assert poll_interval(0, 1.0, 30.0, rand=0.0, pace=0.5) == 1.0  # never below min_interval
    assert poll_interval(0, 1.0, 30.0, rand=0.0, pace=500.0) == 30.0  # nor above max_interval
    assert poll_interval(10_000, 1.0, 30.0, rand=0.0, pace=10.0) == 30.0


def test_update_pace_is_a_moving_average() -> None:
    assert update_pace(None, 8.0) == 8.0
    assert update_pace(8.0, 4.0) == pytest.approx(8.0 + PACE_WEIGHT * (4.0 - 8.0))
