"""watch() and wait() against a real local server whose task advances one step per poll;
the client's clock and sleeps are virtual (FakeTime) so nothing really waits."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

import taskwatch
from taskwatch import (
    AuthenticationError,
    Client,
    NotFoundError,
    ServerError,
    Task,
    TaskFailedError,
    WatchTimeout,
    _policy,
)

from .conftest import SECRET, TASK_HASH, FakeTime, ServeFactory, base_url, fixture_json

Step = tuple[str, int] | int  # (state, total_results), or an HTTP error status


def body_for(state: str, results: int) -> bytes:
    data = fixture_json("get-task-200.json")
    done = state in {"completed", "aborted", "failed"}
    data["status"].update(
        status=state,
        is_done=done,
        total_results=results,
        done_reason={"completed": "completed", "aborted": "run_aborted", "failed": "error"}.get(
            state
        ),
        ended_at=data["status"]["ended_at"] if done else None,
    )
    return json.dumps(data).encode()


class ScriptedTask:
    """Serves one step of the script per request; the last step repeats."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps
        self.polls = 0

    async def handler(self, request: web.Request) -> web.Response:
        step = self.steps[min(self.polls, len(self.steps) - 1)]
        self.polls += 1
        if isinstance(step, int):
            return web.json_response({"detail": f"status {step}"}, status=step)
        return web.Response(body=body_for(*step), content_type="application/json")


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def scripted(
    serve: ServeFactory, time: FakeTime
) -> AsyncIterator[Callable[[list[Step]], Any]]:
    clients: list[Client] = []

    async def make(steps: list[Step]) -> tuple[Client, ScriptedTask]:
        script = ScriptedTask(steps)
        server = await serve({"/v1/tasks/{task_hash}": script.handler})
        client = Client(
            SECRET,
            base_url=base_url(server),
            requests_per_minute=None,
            retry_initial_wait=0.01,
            retry_max_wait=0.01,
            max_retries=2,
        )
        time.install(client)
        clients.append(client)
        return client, script

    yield make
    for client in clients:
        await client.aclose()


def summary(tasks: list[Task]) -> list[tuple[str, int]]:
    return [(t.state, t.total_results) for t in tasks]


async def test_yields_first_changes_and_terminal_once(scripted: Any) -> None:
    client, script = await scripted(
        [
            ("pending", 0),
            ("pending", 0),
            ("running", 0),
            ("running", 5),
            ("running", 5),
            ("running", 9),
            ("completed", 9),
        ]
    )
    seen = [task async for task in client.watch(TASK_HASH)]
    assert summary(seen) == [("pending", 0), ("running", 5), ("running", 9), ("completed", 9)]
    assert seen[-1].is_done
    assert sum(t.is_done for t in seen) == 1
    assert script.polls == 7
    assert client.stats().live_watches == 0


@pytest.mark.parametrize("terminal", ["completed", "aborted", "failed"])
async def test_terminal_states_are_data(scripted: Any, terminal: str) -> None:
    client, _ = await scripted([("running", 1), (terminal, 3)])
    seen = [task async for task in client.watch(TASK_HASH)]
    assert summary(seen) == [("running", 1), (terminal, 3)]


async def test_already_done_task_yields_once(scripted: Any) -> None:
    client, script = await scripted([("completed", 156)])
    seen = [task async for task in client.watch(TASK_HASH)]
    assert summary(seen) == [("completed", 156)]
    assert script.polls == 1


async def test_a_quiet_running_task_is_polled_less_and_a_change_brings_polls_back(
    scripted: Any, time: FakeTime
) -> None:
    steps: list[Step] = [("running", 0)] * 8
    steps += [("running", 1)] * 4
    client, _ = await scripted([*steps, ("completed", 1)])
    await client.wait(TASK_HASH, min_interval=1.0, max_interval=10.0)
    assert all(1.0 <= s <= 10.0 for s in time.sleeps)
    # the first poll's answer says running, nothing learnt yet: a fresh start's interval
    fresh = _policy.poll_interval(1.0, 10.0, 0.0, running=True)
    assert time.sleeps[0] == pytest.approx(fresh)
    # quiet polls: the rate learnt falls, the interval grows
    quiet = time.sleeps[:8]
    assert all(a < b for a, b in itertools.pairwise(quiet))
    # the change at poll 9 raises the rate: the next poll comes sooner
    assert time.sleeps[8] < time.sleeps[7]


async def test_a_running_task_is_polled_at_its_pace(scripted: Any, time: FakeTime) -> None:
    steps: list[Step] = [("running", 0), ("running", 1)]
    steps += [("running", 1)] * 4 + [("running", 2)] + [("running", 2)] * 5
    client, _ = await scripted([*steps, ("completed", 2)])
    await client.wait(TASK_HASH, min_interval=1.0, max_interval=30.0)
    pace = sum(time.sleeps[1:6])  # seconds between the two changes seen (polls 1 and 6)
    assert pace > 1.0
    # the square-root rule at the price min_interval / 2, sqrt(min_interval / rate), while
    # the task has been quiet for less than its pace: the rate is its pace's, plus the
    # hazard of its end learnt so far (no end seen in the seconds watched running)
    prior = _policy.prior_rate(1.0, 30.0)
    for poll in (6, 7):
        end = _policy.learnt_rate(0, sum(time.sleeps[:poll]), prior)
        assert time.sleeps[poll] == pytest.approx(math.sqrt(1.0 / (1.0 / pace + end)))
    # then the quiet spell says it is slower than its pace: the interval grows
    assert time.sleeps[10] > time.sleeps[6]
    assert all(a <= b for a, b in itertools.pairwise(time.sleeps[6:12]))


async def test_a_start_brings_the_polls_closer(scripted: Any, time: FakeTime) -> None:
    client, _ = await scripted(
        [("pending", 0), ("pending", 0), ("pending", 0), ("running", 0), ("completed", 0)]
    )
    await client.wait(TASK_HASH, min_interval=1.0, max_interval=10.0)
    assert len(time.sleeps) == 4
    assert all(1.0 <= s <= 10.0 for s in time.sleeps)
    # pending: the start hazard's interval, longer than a fresh start's
    assert min(time.sleeps[:3]) > time.sleeps[3]


async def test_custom_key(scripted: Any) -> None:
    client, _ = await scripted([("pending", 0), ("running", 0), ("completed", 0)])
    seen = [t async for t in client.watch(TASK_HASH, key=lambda t: t.state)]
    assert summary(seen) == [("pending", 0), ("running", 0), ("completed", 0)]


async def test_transient_failures_do_not_end_the_watch(scripted: Any) -> None:
    client, script = await scripted([("running", 1), 503, 502, ("running", 2), ("completed", 2)])
    seen = [t async for t in client.watch(TASK_HASH)]
    assert summary(seen) == [("running", 1), ("running", 2), ("completed", 2)]
    assert client.stats().retries == 2
    assert script.polls == 5


async def test_persistent_transient_failure_raises_after_max_retries(scripted: Any) -> None:
    client, script = await scripted([("running", 1), 503])
    seen: list[Task] = []

    async def consume() -> None:
        async for task in client.watch(TASK_HASH):
            seen.append(task)

    with pytest.raises(ServerError):
        await consume()
    assert summary(seen) == [("running", 1)]
    assert script.polls == 1 + 3  # max_retries=2: three consecutive failures


@pytest.mark.parametrize(("status", "cls"), [(404, NotFoundError), (401, AuthenticationError)])
async def test_permanent_errors_raise_at_once(
    scripted: Any, status: int, cls: type[Exception]
) -> None:
    client, script = await scripted([("running", 1), status])
    with pytest.raises(cls) as info:
        async for _ in client.watch(TASK_HASH):
            pass
    assert script.polls == 2
    assert getattr(info.value, "task_hash", None) == TASK_HASH


async def test_timeout_carries_the_last_snapshot(scripted: Any, time: FakeTime) -> None:
    client, _ = await scripted([("running", 4)])
    start = time.now
    with pytest.raises(WatchTimeout) as info:
        async for _ in client.watch(TASK_HASH, timeout=20.0, max_interval=5.0):
            pass
    assert info.value.task_hash == TASK_HASH
    assert info.value.last is not None
    assert info.value.last.total_results == 4
    assert time.now - start == pytest.approx(20.0)
    assert isinstance(info.value, TimeoutError)


async def test_wait_returns_the_terminal_snapshot(scripted: Any) -> None:
    client, _ = await scripted([("running", 1), ("aborted", 7)])
    final = await client.wait(TASK_HASH)
    assert (final.state, final.total_results, final.is_done) == ("aborted", 7, True)


@pytest.mark.parametrize("terminal", ["aborted", "failed"])
async def test_wait_can_raise_on_failure(scripted: Any, terminal: str) -> None:
    client, _ = await scripted([("running", 1), (terminal, 7)])
    with pytest.raises(TaskFailedError) as info:
        await client.wait(TASK_HASH, raise_on_failure=True)
    assert info.value.task.total_results == 7
    assert info.value.task_hash == TASK_HASH


async def test_wait_raise_on_failure_passes_completed(scripted: Any) -> None:
    client, _ = await scripted([("completed", 2)])
    assert (await client.wait(TASK_HASH, raise_on_failure=True)).state == "completed"


async def test_breaking_out_with_aclosing_is_clean(scripted: Any) -> None:
    client, script = await scripted([("running", n) for n in range(100)])
    async with contextlib.aclosing(client.watch(TASK_HASH)) as snapshots:
        async for task in snapshots:
            if task.total_results >= 3:
                break
    assert client.stats().live_watches == 0
    assert script.polls == 4


async def test_cancelling_the_consumer_is_clean(scripted: Any) -> None:
    client, _ = await scripted([("running", n) for n in range(1000)])
    seen: list[Task] = []
    three = asyncio.Event()

    async def consume() -> None:
        async for task in client.watch(TASK_HASH, min_interval=0.001, max_interval=0.001):
            seen.append(task)
            if len(seen) == 3:
                three.set()

    job = asyncio.ensure_future(consume())
    await three.wait()
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert client.stats().live_watches == 0


async def test_arguments_are_checked_before_any_request(scripted: Any) -> None:
    client, script = await scripted([("running", 1)])
    with pytest.raises(ValueError, match="task hash"):
        client.watch("a/b")
    with pytest.raises(ValueError, match="min_interval"):
        client.watch(TASK_HASH, min_interval=0)
    with pytest.raises(ValueError, match="max_interval"):
        client.watch(TASK_HASH, min_interval=5, max_interval=1)
    with pytest.raises(ValueError, match="timeout"):
        client.watch(TASK_HASH, timeout=-1)
    assert script.polls == 0


async def test_module_level_helpers_own_their_client(
    serve: ServeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = ScriptedTask([("running", 1), ("completed", 2)])
    server = await serve({"/v1/tasks/{task_hash}": script.handler})
    monkeypatch.setenv("LOBSTR_TOKEN", SECRET)
    seen = [
        t
        async for t in taskwatch.watch(
            TASK_HASH, base_url=base_url(server), min_interval=0.01, max_interval=0.01
        )
    ]
    assert summary(seen) == [("running", 1), ("completed", 2)]
    script.polls = 0
    final = await taskwatch.wait(
        TASK_HASH, base_url=base_url(server), min_interval=0.01, max_interval=0.01
    )
    assert final.total_results == 2
