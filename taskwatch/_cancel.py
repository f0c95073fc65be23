"""Cancellation that does not depend on every library below honouring it.

A library may swallow a cancellation: on Python 3.11, ``asyncio.wait_for`` (which redis-py uses
around a socket send) returns its result when the awaited call completes in the same step as
the cancellation, and the ``CancelledError`` is lost. The task then runs on as if nothing had
happened. Two defences:

- ``raise_if_cancelling()`` after every await that crosses a third-party library (aiohttp,
  redis-py): a task whose cancellation is still pending (``Task.cancelling()``, Python 3.11+)
  raises ``CancelledError`` there instead of carrying on;
- ``cancel_and_wait(tasks)``: cancel, wait, cancel again whatever still runs, within a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

logger = logging.getLogger("taskwatch")

_T = TypeVar("_T")

#: Seconds between two cancellations of a task that is still running.
RECANCEL_EVERY = 0.05
#: Seconds ``cancel_and_wait`` waits in all before it gives up on a task.
CLEANUP_BOUND = 10.0


if sys.version_info >= (3, 11):

    def raise_if_cancelling(loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Raise CancelledError when the current task is being cancelled: a library awaited
        just before returned normally, swallowing the cancellation. ``loop``: the running
        loop, when the caller knows it (it spares looking it up)."""
        task = asyncio.current_task(loop)
        if task is not None and task.cancelling():
            raise asyncio.CancelledError

    async def within(call: Awaitable[_T], seconds: float) -> _T:
        """Await ``call``, or raise TimeoutError after ``seconds``; a cancellation that
        ``call`` swallows is raised on return (see ``raise_if_cancelling``)."""
        async with asyncio.timeout(seconds):
            result = await call
        raise_if_cancelling()
        return result

else:  # pragma: no cover - exercised on Python 3.10 only

    def raise_if_cancelling(loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Nothing to check on Python 3.10 (no ``Task.cancelling()``): ``within`` guards the
        calls that need it."""

    async def within(call: Awaitable[_T], seconds: float) -> _T:
        """Await ``call``, or raise TimeoutError after ``seconds``. Python 3.10 cannot tell
        that a cancellation was swallowed below, so ``call`` runs as its own task and this
        one waits on a plain future, which a cancellation always reaches: the caller is
        cancelled whatever ``call`` does with it (``call`` is then cancelled too, and given
        a moment to end)."""
        loop = asyncio.get_running_loop()
        job = asyncio.ensure_future(call)
        woken: asyncio.Future[None] = loop.create_future()

        def wake(_: object = None) -> None:
            if not woken.done():
                woken.set_result(None)

        job.add_done_callback(wake)
        timer = loop.call_later(seconds, wake)
        try:
            await woken
        except asyncio.CancelledError:
            await _end(job)
            raise
        finally:
            timer.cancel()
            job.remove_done_callback(wake)
        if not job.done():
            await _end(job)
            raise asyncio.TimeoutError
        return job.result()

    async def _end(job: asyncio.Future[Any]) -> None:
        """Cancel ``job`` and wait (a moment at most) for it to end; its outcome is moot."""
        job.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({job}, timeout=RECANCEL_EVERY * 10)
        if job.done() and not job.cancelled():
            job.exception()  # retrieved: the caller has moved on


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]],
    *,
    recancel_every: float = RECANCEL_EVERY,
    bound: float = CLEANUP_BOUND,
) -> None:
    """Cancel ``tasks`` and wait until each has ended, cancelling again every
    ``recancel_every`` seconds those that still run (their cancellation was swallowed below).
    After ``bound`` seconds, logs a warning naming how many still run and returns: a clean-up
    never hangs. Exceptions of the ended tasks are retrieved (nothing is logged for them)."""
    pending = {task for task in tasks if not task.done()}
    for task in pending:
        task.cancel()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    while pending:
        finished, pending = await asyncio.wait(pending, timeout=recancel_every)
        for task in finished:
            if not task.cancelled():
                task.exception()  # retrieved: it was handed on elsewhere, or is moot now
        if not pending:
            return
        if loop.time() >= deadline:
            logger.warning(
                "%d task(s) still running %gs after being cancelled; leaving them",
                len(pending),
                bound,
            )
            return
        for task in pending:
            task.cancel()
