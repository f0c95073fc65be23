"""Cancellation that does not depend on the libraries below honouring it (taskwatch._cancel),
with tasks that swallow a cancellation the way a library can."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

import pytest

from taskwatch._cancel import cancel_and_wait, raise_if_cancelling, within


async def swallowing(times: int, stop: asyncio.Event) -> None:
    """Swallow the first ``times`` cancellations (as a library may), then honour them."""
    swallowed = 0
    while not stop.is_set():
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            if swallowed == times:
                raise
            swallowed += 1
            if sys.version_info >= (3, 11):
                current = asyncio.current_task()
                assert current is not None
                current.uncancel()  # as a library that loses the error leaves it


async def test_a_swallowed_cancellation_is_repeated_until_the_task_ends() -> None:
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(swallowing(n, stop)) for n in range(4)]
    await asyncio.sleep(0)
    await cancel_and_wait(tasks, recancel_every=0.02, bound=5.0)
    assert all(task.cancelled() for task in tasks)


async def test_the_clean_up_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    stop = asyncio.Event()
    stubborn = asyncio.ensure_future(swallowing(10**6, stop))
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with caplog.at_level(logging.WARNING, logger="taskwatch"):
        await cancel_and_wait([stubborn], recancel_every=0.02, bound=0.2)
    assert loop.time() - started < 1.0
    assert not stubborn.done()
    assert any("still running" in record.getMessage() for record in caplog.records)
    stop.set()
    await stubborn


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.cancelling() is 3.11+")
async def test_raise_if_cancelling_raises_only_while_a_cancellation_is_pending() -> None:
    raise_if_cancelling()  # nothing pending: nothing raised
    reached: list[str] = []

    async def victim() -> None:
        # Swallowed below, as redis-py's wait_for may: the task is still cancelling.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)
        reached.append("after the swallow")
        raise_if_cancelling()
        reached.append("carried on")

    task = asyncio.ensure_future(victim())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert reached == ["after the swallow"]


async def test_within_ends_its_caller_when_the_call_swallows_the_cancellation() -> None:
    """What redis-py's wait_for may do, on every Python: the call returns normally after
    the cancellation; the caller of ``within`` still ends cancelled, promptly."""

    async def swallows_then_returns() -> str:
        # As wait_for does when its inner call completes in the same step: the error is
        # dropped (the task's cancellation count stays raised on 3.11+).
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)
        return "a result after the cancellation"

    carried_on: list[str] = []

    async def caller() -> None:
        carried_on.append(await within(swallows_then_returns(), 5.0))

    task = asyncio.ensure_future(caller())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2.0)
    assert carried_on == []


async def test_within_times_out_and_returns_results() -> None:
    assert await within(asyncio.sleep(0, "ok"), 1.0) == "ok"
    with pytest.raises(asyncio.TimeoutError):
        await within(asyncio.sleep(10), 0.05)
