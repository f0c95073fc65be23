"""The ceilings diagnostic (``benchmarks._ceilings``): its two known-distribution policies
follow the rules its docstring states, and the offline model runs exactly the policies given."""

from __future__ import annotations

import itertools
import statistics
from types import SimpleNamespace
from typing import Any

import pytest

from benchmarks import _ceilings, _offline_fresh
from benchmarks._family import FAMILY, seed
from taskwatch import _policy, _priority

PENDING_20_60 = FAMILY[2]
RUNNING_BURSTS = FAMILY[5]  # gaps of 3-10 s
NO_FLEET: Any = None  # (a running poll on the schedule reads no fleet)


def _running(last_change_at: float, window: float) -> Any:  # a stream, as the model keeps it
    return SimpleNamespace(
        phase=_priority.Phase.RUNNING,
        last_change_at=last_change_at,
        change_window=window,
        phase_since=50.0,
        changes_seen=3,
        pace=None,
    )


def test_gaps_known_waits_out_the_shortest_gap_then_shortens_by_the_price() -> None:
    interval = _ceilings.gaps_known(RUNNING_BURSTS, 2.0)
    # The change seen at 100 s in a 1 s window is dated 0.5 s earlier: the first poll comes
    # the shortest gap (3 s) plus 2 min_intervals (1 s) after that mark.
    assert interval(_running(100.0, 1.0), NO_FLEET, 100.0, 0.5, 20.0, 0.0) == pytest.approx(3.5)
    # At that first poll (4 s after the mark) the next interval is the first less the price.
    assert interval(_running(100.0, 1.0), NO_FLEET, 103.5, 0.5, 20.0, 0.0) == pytest.approx(
        1.0 - _policy.price(0.5)
    )


def test_pending_known_waits_the_longest_while_no_start_can_come() -> None:
    interval = _ceilings.pending_known(PENDING_20_60)
    stream: Any = SimpleNamespace(phase=_priority.Phase.PENDING)
    fleet: Any = SimpleNamespace(taught=_policy.Fleet)  # a fleet that has seen nothing
    # No task starts before 20 s: a poll at 0 s may wait the whole max_interval.
    assert interval(stream, fleet, 0.0, 0.5, 20.0, 0.0) == 20.0
    # With 5 s left of the longest wait, a start is near: a much shorter wait.
    late = interval(stream, fleet, 55.0, 0.5, 20.0, 0.0)
    assert 0.5 <= late < 5.0


def test_measure_runs_only_the_policies_given() -> None:
    policies = {"pending known": _ceilings.pending_known(PENDING_20_60)}
    result = _offline_fresh.measure(PENDING_20_60, 20, seed(2), bounds=False, policies=policies)
    assert result["settings"]
    for cell in result["settings"].values():
        assert set(cell) == {"pending known"}
        assert cell["pending known"]["requests_per_task"] > 0


def test_true_gaps_are_evenly_spaced_quantiles_of_the_members_gaps() -> None:
    gaps = _ceilings.true_gaps(RUNNING_BURSTS)  # uniform over 3-10 s
    assert len(gaps) == 256
    assert list(gaps) == sorted(gaps)
    assert 3.0 < gaps[0] < 3.05
    assert 9.95 < gaps[-1] < 10.0
    assert statistics.fmean(gaps) == pytest.approx(6.5)


def test_inspection_schedule_polls_a_known_gap_at_its_moment() -> None:
    # Every gap is 5 s: one poll exactly 5 s after the mark sees the change at no delay.
    step, best = _ceilings.inspection_schedule([5.0] * 10, 0.5, 20.0, 0.25)
    assert step == pytest.approx(0.05)
    assert best[0] == pytest.approx(5.0)
    assert best[round(2.0 / step)] == pytest.approx(3.0)  # 2 s in, 3 s to go
    # Past the gap, nothing is expected: the longest wait.
    assert best[-1] == 20.0


def test_inspection_schedule_waits_out_the_shortest_gap_then_polls_faster() -> None:
    gaps = _ceilings.true_gaps(RUNNING_BURSTS)
    step, best = _ceilings.inspection_schedule(gaps, 0.5, 20.0, _policy.price(0.5))
    first = best[0]
    assert first > 3.0  # no change comes before 3 s
    # Along the schedule the intervals shrink as the change grows likely, never below 0.5 s.
    intervals, at = [first], first
    while at < 9.9:
        interval = best[min(round(at / step), len(best) - 1)]
        intervals.append(interval)
        at += interval
    assert all(later <= earlier + 1e-9 for earlier, later in itertools.pairwise(intervals))
    assert min(intervals) >= 0.5 - 1e-9
    # The renewal rule's first poll, myopic, lies close to the optimum's.
    renewal = _policy.renewal_interval(gaps, 0.0, 0.5, 20.0)
    assert renewal is not None
    assert abs(renewal - first) < 1.0


def test_with_true_gaps_gives_the_renewal_rule_the_members_gaps() -> None:
    interval = _ceilings.with_true_gaps(RUNNING_BURSTS)
    fleet: Any = SimpleNamespace(taught=_policy.Fleet)  # its own polls taught nothing
    # Just after a dated change, taskwatch alone (no gaps learnt) would poll soon; with the
    # true gaps it waits out most of the shortest one.
    alone = _offline_fresh.POLICIES["taskwatch"](_running(100.0, 0.0), fleet, 100.0, 0.5, 20.0, 0.0)
    told = interval(_running(100.0, 0.0), fleet, 100.0, 0.5, 20.0, 0.0)
    expected = _policy.renewal_interval(_ceilings.true_gaps(RUNNING_BURSTS), 0.0, 0.5, 20.0)
    assert expected is not None
    end_cap = _policy.running_interval(_policy.prior_rate(0.5, 20.0), 0.5, 20.0)
    assert told == pytest.approx(min(expected, end_cap))
    assert told > alone


def test_optimal_inspection_follows_the_schedule_where_the_renewal_rule_applies() -> None:
    interval = _ceilings.optimal_inspection(RUNNING_BURSTS)
    fleet: Any = SimpleNamespace(taught=_policy.Fleet)
    gaps = _ceilings.true_gaps(RUNNING_BURSTS)
    step, best = _ceilings.inspection_schedule(gaps, 0.5, 20.0, _policy.price(0.5))
    end_cap = _policy.running_interval(_policy.prior_rate(0.5, 20.0), 0.5, 20.0)
    # 4 s after the dated change (seen at 104 s, a 0 s window): the schedule's interval there.
    got = interval(_running(100.0, 0.0), fleet, 104.0, 0.5, 20.0, 0.0)
    assert got == pytest.approx(min(best[round(4.0 / step)], end_cap))


def test_both_known_is_pending_known_while_pending_and_gaps_known_while_running() -> None:
    both = _ceilings.both_known(RUNNING_BURSTS, 2.0)
    pending = _ceilings.pending_known(RUNNING_BURSTS)
    running = _ceilings.gaps_known(RUNNING_BURSTS, 2.0)
    fleet: Any = SimpleNamespace(taught=_policy.Fleet)
    waiting: Any = SimpleNamespace(phase=_priority.Phase.PENDING)
    for now in (0.0, 40.0, 250.0):
        assert both(waiting, fleet, now, 0.5, 20.0, 0.0) == pending(
            waiting, fleet, now, 0.5, 20.0, 0.0
        )
    for now in (100.0, 103.5, 106.0):
        assert both(_running(100.0, 1.0), NO_FLEET, now, 0.5, 20.0, 0.0) == running(
            _running(100.0, 1.0), NO_FLEET, now, 0.5, 20.0, 0.0
        )


def test_priced_is_taskwatch_at_its_own_price_and_polls_more_at_a_lower_one() -> None:
    fleet: Any = SimpleNamespace(taught=_policy.Fleet)
    stream = _running(100.0, 1.0)
    own = _offline_fresh.POLICIES["taskwatch"](stream, fleet, 101.0, 0.5, 20.0, 0.0)
    assert _ceilings.priced(1.0)(stream, fleet, 101.0, 0.5, 20.0, 0.0) == own
    assert _ceilings.priced(0.5)(stream, fleet, 101.0, 0.5, 20.0, 0.0) < own
