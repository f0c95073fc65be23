"""The offline model of the freshness benchmark (``benchmarks._offline_fresh``) polls as the
real scheduler does: the same tasks watched by ``watch_many`` over real sockets, on a virtual
clock, give the same requests and the same snapshots at the same moments."""

from __future__ import annotations

import pytest

from benchmarks import _offline_fresh
from benchmarks._family import FAMILY, Member
from taskwatch import Client
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
