"""The binding-budget benchmark's figures for a new watch's first snapshot (a table)."""

from __future__ import annotations

import pytest

from benchmarks.budget import first_snapshots


def test_a_first_snapshot_is_timed_from_the_task_arriving() -> None:
    created = {"early": 10.0, "a": 100.0, "b": 150.0, "never": 190.0, "late": 400.0}
    seen = {
        "early": [(11.0, "pending", 0, False)],  # before the window: not counted
        "a": [(130.0, "pending", 0, False), (200.0, "running", 3, False)],  # waited 30 s
        "b": [(155.0, "running", 1, False)],  # waited 5 s
        "late": [(401.0, "pending", 0, False)],  # after the window: not counted
    }
    figures = first_snapshots(created, seen, window=(50.0, 300.0), end=250.0)
    # "never" was still waiting at the end, 60 s after it arrived: it counts as 60 s
    assert figures == {"mean_first": pytest.approx((30.0 + 5.0 + 60.0) / 3), "max_first": 60.0}
