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
import logging
import sys
from collections.abc import Iterable
from typing import Any

logger = logging.getLogger("taskwatch")

#: Seconds between two cancellations of a task that is still running.
RECANCEL_EVERY = 0.05
#: Seconds ``cancel_and_wait`` waits in all before it gives up on a task.
CLEANUP_BOUND = 10.0


if sys.version_info >= (3, 11):

    def raise_if_cancelling() -> None:
        """Raise CancelledError when the current task is being cancelled: a library awaited
        just before returned normally, swallowing the cancellation."""
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError

else:  # pragma: no cover - Python 3.10 has no Task.cancelling(); cancel_and_wait still helps

    def raise_if_cancelling() -> None:
        """Nothing to check on Python 3.10 (no ``Task.cancelling()``)."""


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
