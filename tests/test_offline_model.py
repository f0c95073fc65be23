"""The offline model of the freshness benchmark (``benchmarks._offline_fresh``) polls as the
real scheduler does: the same tasks watched by ``watch_many`` over real sockets, on a virtual
clock, give the same requests and the same snapshots at the same moments."""

from __future__ import annotations

import itertools

import pytest

from benchmarks import _offline_fresh
from benchmarks._family import FAMILY, Member
from benchmarks._workloads import changes
from taskwatch import Client, _policy
from taskwatch.testing import SimulatedTaskAPI

from .conftest import TEST_LOOP, FakeTime

# short-lived members, so that a run is a few hundred polls
MEMBERS = [FAMILY[1], FAMILY[3], FAMILY[6]]


# Polls due at one virtual moment are answered at once, and each interval depends on what the
# client's other watches taught before it, so the order the answers are handled in counts:
# the model takes them in the order asyncio's loop delivers concurrent answers on loopback.
# uvloop delivers them in another order (the scheduler is as right there; the model is not
# that run), so the comparison runs on asyncio's loop, on every Python CI tests.
@pytest.mark.skipif(
    TEST_LOOP == "uvloop", reason="the model follows asyncio's order of concurrent answers"
)
@pytest.mark.parametrize("member", MEMBERS, ids=[m.name for m in MEMBERS])
@pytest.mark.parametrize(("low", "high"), [(0.5, 20.0), (2.0, 60.0)])
async def test_the_offline_model_polls_as_the_scheduler_does(
    member: Member, low: float, high: float
) -> None:
    time = FakeTime()
    scripts = _offline_fresh.scripts(member, 5, seed=3)
    api = SimulatedTaskAPI(rate_limit=None, clock=time.clock)
    hashes = [api.add_task(script) for script in scripts]
    await api.start()
    try:
        async with Client(api.api_key, base_url=api.base_url, requests_per_minute=None) as client:
            time.install(client)
            start = time.now
            seen: dict[str, list[tuple[float, int, bool]]] = {h: [] for h in hashes}
            async for task in client.watch_many(hashes, min_interval=low, max_interval=high):
                seen[task.hash_value].append((time.now - start, task.total_results, task.is_done))
            requests = client.stats().requests
    finally:
        await api.close()
    model_requests, model_seen = _offline_fresh.run_policy(
        scripts, _offline_fresh.POLICIES["taskwatch"], low, high, rand=lambda: 0.0
    )
    assert requests == model_requests
    for i, task_hash in enumerate(hashes):
        live = seen[task_hash]
        model = model_seen[i]
        assert [(r, d) for _, r, d in live] == [(r, d) for _, r, d in model]
        assert [t for t, _, _ in live] == pytest.approx([t for t, _, _ in model], abs=1e-6)


@pytest.mark.parametrize(("low", "high"), [(0.5, 20.0), (2.0, 60.0)])
@pytest.mark.parametrize(("first", "share"), [(1.0, 0.0), (4.0, 0.2), (8.0, 0.5)])
def test_the_inspection_oracle_waits_out_the_shortest_gap_then_shrinks_its_intervals(
    low: float, high: float, first: float, share: float
) -> None:
    """After each change it saw (each ``changes`` entry), the inspection oracle sends nothing
    until the shortest gap and its first interval have passed (but for the max_interval
    promise), then polls at intervals that shrink by ``share * first`` down to
    ``min_interval``, until a poll shows the change; every interval lies within
    [min_interval, max_interval] and the end is seen."""
    member = FAMILY[1]  # pending 0-20 s, results every 3-10 s
    gap_min = member.gaps[0]
    for script in _offline_fresh.scripts(member, 5, seed=11):
        polls = _offline_fresh._inspection_polls(script, gap_min, first, share * first, low, high)
        gaps = [b - a for a, b in itertools.pairwise(polls)]
        assert all(low - 1e-9 <= g <= high + 1e-9 for g in gaps)
        assert polls[-1] >= script[-1].at  # the end is seen
        start = _offline_fresh._start(script)
        marks = [start] + [at for at, _, _ in changes(script)]
        for mark, change in itertools.pairwise(marks):
            after = [p for p in polls if mark < p <= change]
            quiet = [p for p in after if p < mark + gap_min + first - 1e-9]
            # before the first interval is over, only what max_interval demands
            assert all(b - a >= high - 1e-9 for a, b in itertools.pairwise(quiet))
            checks = [p for p in after if p >= mark + gap_min + first - 1e-9]
            steps = [b - a for a, b in itertools.pairwise(checks)]
            assert steps == sorted(steps, reverse=True)  # shrinking
            if share == 0.0 and steps:
                assert max(steps) - min(steps) <= 1e-9  # evenly spaced


@pytest.mark.parametrize(("low", "high"), [(0.5, 20.0), (2.0, 60.0)])
def test_the_comparison_covers_the_renewal_rule(
    low: float, high: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the member with steady pages the comparison above runs through the renewal rule:
    without it (no gaps judged steady) the same tasks are polled differently."""
    scripts = _offline_fresh.scripts(FAMILY[1], 5, seed=3)
    taskwatch = _offline_fresh.POLICIES["taskwatch"]
    with_rule = _offline_fresh.run_policy(scripts, taskwatch, low, high, rand=lambda: 0.0)
    monkeypatch.setattr(_policy, "REGULAR_SPREAD", 0.0)
    without = _offline_fresh.run_policy(scripts, taskwatch, low, high, rand=lambda: 0.0)
    assert with_rule[0] != without[0]
