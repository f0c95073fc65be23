"""Watching tasks: ``watch`` (one task, an async generator), ``wait`` and ``watch_many``.

What a watch yields: the first snapshot; then every snapshot whose change key (by default
``status.total_results``) differs from the last one yielded; then the first snapshot with
``status.is_done``, always, exactly once, and last. Terminal states are data: completed,
aborted and failed tasks all end a watch normally.

Polling: ``min_interval`` after the start and after each change (a change of key or of
``status.status``), growing while nothing changes up to ``max_interval`` (see ``_policy``).
The client's scheduler (``_scheduler``) owns every poll: watches of one hash on one client
share one stream of polls, and when the rate budget binds, its slots go to the due watches
most likely to hold an unseen change (``_priority``). Every poll follows the client's retry
rules: transient failures are retried (``max_retries`` consecutive ones are allowed per
poll), permanent ones raise at once.

Breaking out of ``async for`` early: wrap the generator in ``contextlib.aclosing`` so that it is
closed at once rather than when it is garbage collected::

    async with contextlib.aclosing(client.watch(task_hash)) as snapshots:
        async for task in snapshots:
            if task.total_results >= 100:
                break
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable

from . import _policy, _protocol
from ._cancel import cancel_and_wait
from ._scheduler import Mailbox, Scheduler, Subscriber, Terms, within
from .errors import TaskFailedError, TaskwatchError, WatchTimeout
from .models import Task

__all__ = ["wait_task", "watch_many", "watch_task"]

OnError = Callable[[str, TaskwatchError], object]


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be positive seconds or None, got {timeout!r}")


def watch_task(
    scheduler: Scheduler,
    task_hash: str,
    *,
    min_interval: float = 1.0,
    max_interval: float = 30.0,
    timeout: float | None = None,
    key: _policy.ChangeKey | None = None,
) -> AsyncGenerator[Task, None]:
    """Poll ``task_hash`` until it is done, yielding snapshots (see the module docstring).

    Arguments are checked at once (InvalidTaskHashError, ValueError); the generator raises:

    Raises:
        WatchTimeout: ``timeout`` seconds passed before the task was done (``.last`` holds the
            last snapshot fetched).
        APIError, TransportError, ResponseFormatError: a permanent error, or a transient one
            that persisted through the client's retries.
    """
    scheduler.validate(task_hash)
    _policy.check_intervals(min_interval, max_interval)
    _check_timeout(timeout)
    scheduler.check_open()
    mailbox = Mailbox()
    terms = Terms(mailbox, key or _policy.total_results, min_interval, max_interval, timeout)
    sub = Subscriber(task_hash, terms)
    return _snapshots(scheduler, sub, mailbox)


async def _snapshots(
    scheduler: Scheduler, sub: Subscriber, mailbox: Mailbox
) -> AsyncGenerator[Task, None]:
    """Yield what the scheduler hands ``sub``, ending after the terminal snapshot; leave the
    stream when closed or cancelled early."""
    scheduler.subscribe(sub)
    try:
        while True:
            deadline = sub.deadline
            if deadline is None or mailbox.has_news:
                task = await mailbox.next()
            else:
                # The scheduler times a sleeping watch out; this bounds a request in flight
                # that other callers share without a deadline of their own.
                remaining = deadline - scheduler.clock()
                try:
                    if remaining <= 0:
                        raise TimeoutError
                    task = await within(mailbox.next(), remaining)
                except (asyncio.TimeoutError, TimeoutError):
                    raise WatchTimeout(
                        f"task {sub.task_hash} was not done after {sub.timeout:g}s",
                        task_hash=sub.task_hash,
                        last=sub.last_snapshot(),
                    ) from None
            if task is None:
                return
            yield task
    finally:
        if sub.stream is not None:
            await scheduler.release([sub])


async def wait_task(
    scheduler: Scheduler,
    task_hash: str,
    *,
    min_interval: float = 1.0,
    max_interval: float = 30.0,
    timeout: float | None = None,
    raise_on_failure: bool = False,
) -> Task:
    """Wait until ``task_hash`` is done and return its terminal snapshot.

    A task that ended, well or not, is returned as data; with ``raise_on_failure=True`` a task
    that ended without success (``task.failed``: aborted, failed, error, see the table in
    ``taskwatch.models``) raises TaskFailedError (carrying the snapshot).
    Raises what ``watch_task`` raises.
    """
    last: Task | None = None
    async with contextlib.aclosing(
        watch_task(
            scheduler,
            task_hash,
            min_interval=min_interval,
            max_interval=max_interval,
            timeout=timeout,
        )
    ) as snapshots:
        async for task in snapshots:
            last = task
    if last is None or not last.is_done:  # pragma: no cover - watch_task always ends done
        raise AssertionError("a watch ended without its terminal snapshot")
    if raise_on_failure and not last.succeeded:
        raise TaskFailedError(
            f"task {last.hash_value} ended {last.status.status} "
            f"(done_reason={last.status.done_reason!r}, results={last.total_results})",
            task=last,
        )
    return last


class _Finished:
    __slots__ = ("error", "task_hash")

    def __init__(self, task_hash: str | None, error: BaseException | None) -> None:
        self.task_hash = task_hash
        self.error = error


def watch_many(
    scheduler: Scheduler,
    task_hashes: Iterable[str] | AsyncIterable[str],
    *,
    min_interval: float = 1.0,
    max_interval: float = 30.0,
    timeout: float | None = None,
    key: _policy.ChangeKey | None = None,
    on_error: OnError | None = None,
) -> AsyncGenerator[Task, None]:
    """Watch many tasks concurrently, yielding every task's snapshots as they are observed.

    ``task_hashes`` may be any iterable (checked at once: an invalid hash raises
    InvalidTaskHashError before any request) or an async iterable of hashes arriving over time
    (each is watched as it arrives; invalid ones are errors for that hash). Duplicates are
    watched once. Each task follows the rules of ``watch_task``, all on the client's one rate
    budget; ``timeout`` bounds each task's watch. The stream ends when the source is exhausted
    and every task is done; per task, snapshots keep their order and the terminal one
    (``task.is_done``) comes last.

    Errors: by default the first error for any hash (APIError, TransportError,
    ResponseFormatError, WatchTimeout; it carries ``.task_hash``) stops every watch and is raised.
    With ``on_error=callback``, ``callback(task_hash, error)`` is called instead and the other
    tasks go on. Errors that are not taskwatch's (bugs, a failing source iterable, an exception
    from ``key`` or the callback) always propagate.

    Closing or cancelling the stream stops every watch and waits for their requests: nothing
    is left running. Use ``contextlib.aclosing`` when breaking out early.
    """
    _policy.check_intervals(min_interval, max_interval)
    _check_timeout(timeout)
    scheduler.check_open()
    source: list[str] | AsyncIterable[str]
    if isinstance(task_hashes, AsyncIterable):
        source = task_hashes
    else:
        if isinstance(task_hashes, str):
            raise TypeError("watch_many takes an iterable of hashes, not one str")
        source = list(dict.fromkeys(task_hashes))
        for task_hash in source:
            _protocol.validate_task_hash(task_hash)
    fleet = _Fleet(scheduler, min_interval, max_interval, timeout, key or _policy.total_results)
    return fleet.stream(source, on_error)


class _Fleet:
    """The watches of one ``watch_many`` call: one subscriber per hash, one output queue.

    It is the sink of its subscribers: the scheduler pushes their snapshots, then one
    ``_Finished`` marker each, into the queue; ``stream`` yields snapshots and counts markers
    until no watch is open. No asyncio task per hash: only a feeder for an async source.
    """

    def __init__(
        self,
        scheduler: Scheduler,
        min_interval: float,
        max_interval: float,
        timeout: float | None,
        key: _policy.ChangeKey,
    ) -> None:
        self._scheduler = scheduler
        self._terms = Terms(self, key, min_interval, max_interval, timeout)  # one for all
        self._queue: asyncio.Queue[Task | _Finished] = asyncio.Queue()
        self._put = self._queue.put_nowait
        # Every hash it was given: the list (without duplicates), or the set of those an
        # async source gave so far (duplicates are watched once). Its watches are found on
        # the scheduler by these when closing: no table of its own.
        self._hashes: list[str] | set[str] = []
        self._seen: set[str] | None = None
        self._open = 0  # watches started and not finished, plus the feeder while it runs
        self._feeder: asyncio.Task[None] | None = None

    # the sink of every subscriber

    def snapshot(self, sub: Subscriber, task: Task) -> None:
        self._put(task)

    def end(self, sub: Subscriber, error: BaseException | None) -> None:
        self._put(_Finished(sub.task_hash, error))

    def start(self, task_hash: str) -> None:
        seen = self._seen
        if seen is not None:
            if task_hash in seen:
                return
            seen.add(task_hash)
        self._open += 1
        try:
            self._scheduler.validate(task_hash)
        except TaskwatchError as exc:  # from an async source: an error for that hash
            self._put(_Finished(task_hash, exc))
            return
        sub = Subscriber(task_hash, self._terms)
        self._scheduler.subscribe(sub)

    async def _feed(self, hashes: AsyncIterable[str]) -> None:
        error: BaseException | None = None
        try:
            async for task_hash in hashes:
                self.start(task_hash)
        except Exception as exc:
            error = exc
        self._put(_Finished(None, error))

    async def stream(
        self, source: list[str] | AsyncIterable[str], on_error: OnError | None
    ) -> AsyncGenerator[Task, None]:
        try:
            if isinstance(source, list):
                self._hashes = source
                for task_hash in source:
                    self.start(task_hash)
            else:
                self._hashes = self._seen = set()
                self._open += 1
                self._feeder = asyncio.ensure_future(self._feed(source))
            while self._open:
                item = await self._queue.get()
                if isinstance(item, Task):
                    yield item
                    continue
                self._open -= 1
                error = item.error
                if error is None:
                    continue
                if (
                    on_error is not None
                    and item.task_hash is not None
                    and isinstance(error, TaskwatchError)
                ):
                    on_error(item.task_hash, error)
                    continue
                raise error
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop the feeder and every open watch, and wait for them."""
        feeder, self._feeder = self._feeder, None
        if feeder is not None:
            # Re-cancelled until it ends (a source may swallow one cancellation), within a
            # bound: closing the stream never hangs.
            await cancel_and_wait([feeder])
        await self._scheduler.release(self._scheduler.subscribers(self._hashes, self._terms))
