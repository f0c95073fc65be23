"""Watching tasks: ``watch`` (one task, an async generator), ``wait`` and ``watch_many``.

What a watch yields: the first snapshot; then every snapshot whose change key (by default
``status.total_results``) differs from the last one yielded; then the first snapshot with
``status.is_done``, always, exactly once, and last. Terminal states are data: completed,
aborted and failed tasks all end a watch normally.

Polling: ``min_interval`` after the start and after each change (a change of key or of
``status.status``), growing while nothing changes up to ``max_interval`` (see ``_policy``).
Every poll goes through the client's shared rate budget and its retry rules: transient
failures are retried (``max_retries`` consecutive ones are allowed per poll), permanent ones
raise at once.

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
import sys
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from . import _policy, _protocol
from ._cancel import cancel_and_wait
from .errors import TaskFailedError, TaskwatchError, WatchTimeout
from .models import Task, TaskState

if TYPE_CHECKING:
    from yarl import URL

    from .client import Client

__all__ = ["wait_task", "watch_many", "watch_task"]

_T = TypeVar("_T")

OnError = Callable[[str, TaskwatchError], object]


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be positive seconds or None, got {timeout!r}")


if sys.version_info >= (3, 11):

    async def _within(awaitable: Awaitable[_T], seconds: float) -> _T:
        async with asyncio.timeout(seconds):
            return await awaitable

else:  # pragma: no cover - exercised on 3.10 only

    async def _within(awaitable: Awaitable[_T], seconds: float) -> _T:
        return await asyncio.wait_for(awaitable, seconds)


def watch_task(
    client: Client,
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
    url = _protocol.task_url(client._base_url, task_hash)
    _policy.check_intervals(min_interval, max_interval)
    _check_timeout(timeout)
    client._check_open()
    watch = _Watch(
        client, url, task_hash, min_interval, max_interval, timeout, key or _policy.total_results
    )
    return watch.snapshots()


class _Watch:
    """One task's watch: what it remembers between polls, and its poll loop.

    Slotted, because thousands may be live at once. ``snapshots()`` drives it as an async
    generator (``watch``); ``run_into(put)`` drives the same steps as a plain coroutine that
    hands each snapshot to ``put`` (``watch_many``), so a fleet needs no generator per task.
    """

    __slots__ = (
        "_client",
        "_deadline",
        "_key",
        "_last_change_at",
        "_last_key",
        "_last_state",
        "_max_interval",
        "_min_interval",
        "_pace",
        "_quiet",
        "_timeout",
        "_url",
        "last",
        "task_hash",
    )

    def __init__(
        self,
        client: Client,
        url: URL,
        task_hash: str,
        min_interval: float,
        max_interval: float,
        timeout: float | None,
        key: _policy.ChangeKey,
    ) -> None:
        self._client = client
        self._url = url
        self.task_hash = task_hash
        self._min_interval = min_interval
        self._max_interval = max_interval
        self._timeout = timeout
        self._deadline = None if timeout is None else client._clock() + timeout
        self._key = key
        self._last_key = _policy.unset()
        self._last_state: object = None
        self.last: Task | None = None  # the last snapshot fetched
        self._quiet = 0  # polls since the last change
        self._pace: float | None = None  # typical seconds between changes while running
        self._last_change_at: float | None = None

    async def snapshots(self) -> AsyncGenerator[Task, None]:
        """Yield what the watch emits, ending after the terminal snapshot."""
        self._client._live_watches += 1
        try:
            while True:
                task, emit, done = await self._poll()
                if emit:
                    yield task
                if done:
                    return
                await self._client._sleep(self._next_delay())
        finally:
            self._client._live_watches -= 1

    async def run_into(self, put: Callable[[Task], object]) -> None:
        """The loop of ``snapshots``, handing each emitted snapshot to ``put``."""
        self._client._live_watches += 1
        try:
            while True:
                task, emit, done = await self._poll()
                if emit:
                    put(task)
                if done:
                    return
                await self._client._sleep(self._next_delay())
        finally:
            self._client._live_watches -= 1

    async def _poll(self) -> tuple[Task, bool, bool]:
        """Fetch a snapshot (within the deadline) and decide: (task, emit it, it is the last)."""
        client = self._client
        if self._deadline is None:
            task = await client._fetch(self._url, self.task_hash)
        else:
            remaining = self._deadline - client._clock()
            try:
                if remaining <= 0:
                    raise asyncio.TimeoutError
                task = await _within(client._fetch(self._url, self.task_hash), remaining)
            except asyncio.TimeoutError:
                raise WatchTimeout(
                    f"task {self.task_hash} was not done after {self._timeout:g}s",
                    task_hash=self.task_hash,
                    last=self.last,
                ) from None
        self.last = task
        state = task.status.status
        decision = _policy.decide(self._last_key, self._last_state, task, self._key)
        if state != self._last_state or state != TaskState.RUNNING:
            # A new phase: what was learnt of the pace no longer holds.
            self._pace = self._last_change_at = None
        elif decision.emit:
            now = client._clock()
            if self._last_change_at is not None:
                self._pace = _policy.update_pace(self._pace, now - self._last_change_at)
            self._last_change_at = now
        self._last_state = state
        if decision.emit:
            self._last_key = self._key(task)
        self._quiet = 0 if decision.changed else self._quiet + 1
        return task, decision.emit, decision.done

    def _next_delay(self) -> float:
        """Seconds until the next poll is due (never past the deadline). A plain function,
        so that a sleeping watch holds no frame for it."""
        client = self._client
        delay = _policy.poll_interval(
            self._quiet, self._min_interval, self._max_interval, client._random(), self._pace
        )
        if self._deadline is not None:
            delay = min(delay, max(0.0, self._deadline - client._clock()))
        return delay


async def wait_task(
    client: Client,
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
            client,
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
    client: Client,
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

    Closing or cancelling the stream cancels every watch and waits for them: nothing is left
    running. Use ``contextlib.aclosing`` when breaking out early.
    """
    _policy.check_intervals(min_interval, max_interval)
    _check_timeout(timeout)
    client._check_open()
    source: list[str] | AsyncIterable[str]
    if isinstance(task_hashes, AsyncIterable):
        source = task_hashes
    else:
        if isinstance(task_hashes, str):
            raise TypeError("watch_many takes an iterable of hashes, not one str")
        source = list(dict.fromkeys(task_hashes))
        for task_hash in source:
            _protocol.validate_task_hash(task_hash)
    return _watch_many(
        client, source, min_interval, max_interval, timeout, key or _policy.total_results, on_error
    )


class _Fleet:
    """The watches of one ``watch_many`` call: one asyncio task per hash, one output queue.

    Each watch pushes its snapshots, then one ``_Finished`` marker, into the queue; the
    consumer (``stream``) yields snapshots and counts markers until none is open.
    """

    def __init__(
        self,
        client: Client,
        min_interval: float,
        max_interval: float,
        timeout: float | None,
        key: _policy.ChangeKey,
    ) -> None:
        self._client = client
        self._settings = (min_interval, max_interval, timeout, key)
        self._queue: asyncio.Queue[Task | _Finished] = asyncio.Queue()
        self._running: set[asyncio.Task[None]] = set()
        self._seen: set[str] = set()
        self._open = 0  # watches started and not finished, plus the feeder while it runs

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._open += 1
        self._running.add(asyncio.ensure_future(coro))

    def start(self, task_hash: str) -> None:
        if task_hash not in self._seen:
            self._seen.add(task_hash)
            self._spawn(self._run_one(task_hash))

    def _done(self) -> None:
        # Instead of a done-callback per task: one fewer allocation per watched hash.
        job = asyncio.current_task()
        if job is not None:
            self._running.discard(job)

    async def _run_one(self, task_hash: str) -> None:
        error: BaseException | None = None
        try:
            url = _protocol.task_url(self._client._base_url, task_hash)
            await _Watch(self._client, url, task_hash, *self._settings).run_into(
                self._queue.put_nowait
            )
        except Exception as exc:  # handed to the consumer, which decides: never swallowed
            error = exc
        self._done()
        self._queue.put_nowait(_Finished(task_hash, error))

    async def _feed(self, hashes: AsyncIterable[str]) -> None:
        error: BaseException | None = None
        try:
            async for task_hash in hashes:
                self.start(task_hash)
        except Exception as exc:
            error = exc
        self._done()
        self._queue.put_nowait(_Finished(None, error))

    def feed(self, hashes: AsyncIterable[str]) -> None:
        self._spawn(self._feed(hashes))

    async def stream(self, on_error: OnError | None) -> AsyncGenerator[Task, None]:
        try:
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
            await self.cancel_all()

    async def cancel_all(self) -> None:
        # Re-cancelled until they end (a library below may swallow one cancellation), within
        # a bound: closing the stream never hangs.
        await cancel_and_wait(list(self._running))


async def _watch_many(
    client: Client,
    source: list[str] | AsyncIterable[str],
    min_interval: float,
    max_interval: float,
    timeout: float | None,
    key: _policy.ChangeKey,
    on_error: OnError | None,
) -> AsyncGenerator[Task, None]:
    fleet = _Fleet(client, min_interval, max_interval, timeout, key)
    if isinstance(source, list):
        for task_hash in source:
            fleet.start(task_hash)
    else:
        fleet.feed(source)
    async with contextlib.aclosing(fleet.stream(on_error)) as snapshots:
        async for task in snapshots:
            yield task
