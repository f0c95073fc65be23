"""The ceilings diagnostic (``benchmarks._ceilings``): its two known-distribution policies
follow the rules its docstring states, and the offline model runs exactly the policies given."""

from __future__ import annotations

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
