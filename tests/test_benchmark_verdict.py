"""The freshness benchmark's verdict per cell and its sampling rule, with tables."""

from __future__ import annotations

import pytest

from benchmarks import _offline_fresh, freshness
from benchmarks._family import FAMILY, TARGET, cell_verdict, seed
from benchmarks._workloads import changes


@pytest.mark.parametrize(
    ("ratio", "bound", "expected"),
    [
        (0.30, 0.20, "met"),
        (0.50, 0.20, "met"),  # the target is inclusive
        (0.45, 0.60, "met"),  # a figure below the target is met, whatever the bound
        (0.51, 0.20, "MISSED"),
        (0.59, 0.50, "MISSED"),  # a bound at the target allows it
        (0.59, None, "MISSED"),  # no bound known: no excuse
        (None, 0.20, "MISSED (off the fixed curve)"),
        (1.06, 0.89, "infeasible (bound 0.89x > 0.5x, taskwatch 1.19x the bound)"),
        (0.86, 0.79, "infeasible (bound 0.79x > 0.5x, taskwatch 1.09x the bound)"),
        (None, 0.89, "infeasible (bound 0.89x > 0.5x)"),
        # a bound that rounds to the target is shown to three places
        (0.86, 0.503, "infeasible (bound 0.503x > 0.5x, taskwatch 1.71x the bound)"),
    ],
)
def test_a_cell_is_met_missed_or_infeasible(
    ratio: float | None, bound: float | None, expected: str
) -> None:
    assert TARGET == 0.5
    assert cell_verdict(ratio, bound) == expected


def test_a_member_with_few_changes_is_measured_on_several_samples() -> None:
    tasks = 20
    for index, member in enumerate(FAMILY):
        per_sample = sum(
            len(changes(s)) for s in _offline_fresh.scripts(member, tasks, seed(index))
        )
        samples = freshness.repeats(member, index, tasks, quick=False)
        assert 1 <= samples <= freshness.MAX_REPEATS
        # enough samples for MIN_CHANGES, unless the cap stops it; never one more than needed
        assert samples * per_sample >= freshness.MIN_CHANGES or samples == freshness.MAX_REPEATS
        assert (samples - 1) * per_sample < freshness.MIN_CHANGES
        assert freshness.repeats(member, index, tasks, quick=True) == 1
    few = [FAMILY.index(m) for m in FAMILY if "1-4 changes" in m.name]
    assert few
    assert all(freshness.repeats(FAMILY[i], i, tasks, quick=False) > 1 for i in few)


def test_each_sample_of_a_member_has_its_own_tasks() -> None:
    assert seed(0) == 7  # the first sample is the one the benchmark always measured
    seeds = {seed(i, k) for i in range(len(FAMILY)) for k in range(freshness.MAX_REPEATS)}
    assert len(seeds) == len(FAMILY) * freshness.MAX_REPEATS


def test_the_offline_model_shares_tasks_among_clients_that_learn_apart() -> None:
    member = next(m for m in FAMILY if "40-80 s" in m.name)
    tasks = _offline_fresh.scripts(member, 30, seed(FAMILY.index(member)))
    policy = _offline_fresh.POLICIES["taskwatch"]
    one = _offline_fresh.run_clients(tasks, policy, 1.0, 30.0, seed=5)
    assert one == _offline_fresh.run_policy(tasks, policy, 1.0, 30.0, 5)
    # three clients of ten: each its own run, its own fleet, jitter seeded 5, 6 and 7
    shares = [
        _offline_fresh.run_policy(tasks[10 * k : 10 * (k + 1)], policy, 1.0, 30.0, 5 + k)
        for k in range(3)
    ]
    requests, seen = _offline_fresh.run_clients(tasks, policy, 1.0, 30.0, seed=5, clients=3)
    assert requests == sum(sent for sent, _ in shares)
    assert seen == {10 * k + i: s for k, (_, share) in enumerate(shares) for i, s in share.items()}
    assert requests != one[0]  # a fleet that learns from ten tasks polls otherwise
    with pytest.raises(ValueError, match="clients must be at least 1"):
        _offline_fresh.run_clients(tasks, policy, 1.0, 30.0, clients=0)
