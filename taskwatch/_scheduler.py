"""One poll scheduler per client: every watch's next poll, and who gets the next request slot.

The data path, one step per place::

    task hash -> stream (one per hash, shared by every caller on the client)
      -> due time (``Timers``: a heap for the next minute or two, like the event loop's
         timers, and buckets of ``TIMER_BUCKET`` seconds beyond it)
      -> a request slot (room in flight, then the rate budget: ``RequestPath.take_slot``)
      -> the stream that deserves it most (``_priority``)
      -> one request (``RequestPath.fetch``) -> Task
      -> each caller's own decision (``_policy.decide``: yield it? is it the last?)
      -> the stream's next due time (``_policy.poll_interval``)

A sleeping watch is a slotted record in the heap, or, when its next poll is further off, in
a bucket (a list slot: no heap entry of its own): no asyncio task, no frame, no timer of its
own. The asyncio tasks are the scheduler's loop, its one timer, one waiter for a slot when the
budget binds, and the requests in flight (at most the in-flight cap), however many watches
there are. All of them end when the last watch does.

Callers subscribe: ``watch``/``wait`` (a ``Mailbox`` that one async generator drains),
``watch_many`` (a sink of its own) and ``get_task`` (one snapshot). Any number of them on one
hash share one stream: one request at a time and one poll schedule. A caller that joins gets
the next snapshot fetched (the request in flight, else one sent as soon as ``min_interval``
since the last allows), then whatever its own rules say. Each keeps its own change key,
timeout and cancellation; a stream ends with its last caller, and its request is cancelled.

Which stream gets a slot: first polls and ``get_task`` calls first, in order (someone is
waiting for an answer); then, when the budget made the slot wait (it binds), the stream with
the largest priority index (``_priority.index``), until the backlog of due streams is gone;
when it does not bind, the longest due. While the budget binds:

- a new watch's first poll is ranked with the others, as a task pending since it was
  subscribed, rather than sent first: a poll of a task created a moment ago tells little, and
  the one that finds it started tells much (a ``get_task`` still goes first);
- the ranking covers every stream polled at least ``min_interval`` ago, not only the due
  ones: a due time is the freshness schedule of a budget with room to spare, and a binding
  budget's slots go where the index says.

The ranking scans at most ``SCAN_LIMIT`` streams, the longest due first, so that a huge
backlog costs bounded time per slot and the longest waiting are always among those ranked.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import heapq
import itertools
import math
import sys
from collections.abc import Awaitable, Hashable, Iterable, Iterator
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from . import _policy, _priority, _snapshot
from ._cancel import cancel_and_wait
from .errors import TaskwatchError, WatchTimeout
from .models import Task, TaskState

if TYPE_CHECKING:
    from ._request import RequestPath

__all__ = [
    "FAR",
    "SCAN_LIMIT",
    "TIMER_BUCKET",
    "Mailbox",
    "Scheduler",
    "Sink",
    "Subscriber",
    "Terms",
    "Timed",
    "Timers",
    "within",
]

_T = TypeVar("_T")

# Streams ranked per slot at most (the due ones first, the longest due first).
SCAN_LIMIT = 4096

# Seconds per bucket of the far timers (see ``Timers``): a poll due within one to two
# buckets is in the heap, one further off in the bucket of its time.
TIMER_BUCKET = 64.0

# ``Timed.generation`` of a stream due in a far bucket (its time in ``due``); -1 is none.
FAR = -2

_PENDING, _RUNNING = _priority.Phase.PENDING, _priority.Phase.RUNNING


if sys.version_info >= (3, 11):

    async def within(awaitable: Awaitable[_T], seconds: float) -> _T:
        """``await awaitable``, raising TimeoutError after ``seconds``."""
        async with asyncio.timeout(seconds):
            return await awaitable

else:  # pragma: no cover - exercised on 3.10 only

    async def within(awaitable: Awaitable[_T], seconds: float) -> _T:
        """``await awaitable``, raising TimeoutError after ``seconds``."""
        return await asyncio.wait_for(awaitable, seconds)


class Sink(Protocol):
    """Where a subscriber's snapshots go, then its end (None: it ended normally)."""

    def snapshot(self, sub: Subscriber, task: Task) -> None: ...

    def end(self, sub: Subscriber, error: BaseException | None) -> None: ...


class Terms:
    """What the watches of one call share: where their snapshots go (``sink``), their change
    key (None: a one-shot ``get_task``), their intervals and their timeout. ``watch_many``
    keeps one for all its watches rather than a copy each."""

    __slots__ = ("key", "max_interval", "min_interval", "sink", "timeout")

    def __init__(
        self,
        sink: Sink,
        key: _policy.ChangeKey | None,
        min_interval: float = 1.0,
        max_interval: float = 30.0,
        timeout: float | None = None,
    ) -> None:
        self.sink = sink
        self.key = key
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.timeout = timeout


class Subscriber:
    """One caller on a stream, with its own yield rules and deadline (its ``terms``, maybe
    shared with the other watches of its call).

    ``key`` None makes a one-shot subscriber (``get_task``): it takes the next snapshot and
    ends. Otherwise it follows ``_policy.decide``: the first snapshot, every change of its
    key, then the terminal one, and it ends.
    """

    __slots__ = ("last", "last_key", "last_state", "since", "stream", "task_hash", "terms")

    def __init__(self, task_hash: str, terms: Terms) -> None:
        self.task_hash = task_hash
        self.terms = terms
        # When it subscribed, if it has a timeout (the deadline follows): the same float as
        # its stream's phase start when it made the stream, so most watches keep none.
        self.since: float | None = None
        self.last_key: Hashable | object = _policy.unset()
        self.last_state: object = None
        self.stream: _Stream | None = None
        self.last: _snapshot.Packed | None = None  # set when it leaves, for WatchTimeout.last

    @property
    def sink(self) -> Sink:
        return self.terms.sink

    @property
    def key(self) -> _policy.ChangeKey | None:
        return self.terms.key

    @property
    def min_interval(self) -> float:
        return self.terms.min_interval

    @property
    def max_interval(self) -> float:
        return self.terms.max_interval

    @property
    def timeout(self) -> float | None:
        return self.terms.timeout

    @property
    def deadline(self) -> float | None:
        """When its timeout ends, on the scheduler's clock (None: no timeout, or not
        subscribed yet)."""
        since, timeout = self.since, self.terms.timeout
        return None if since is None or timeout is None else since + timeout

    def last_snapshot(self) -> Task | None:
        """The last snapshot its stream fetched (while on it, or when it left), if any."""
        stream = self.stream
        packed = self.last if stream is None else stream.last
        return None if packed is None else _snapshot.unpack(packed, self.task_hash)


class _Stream:
    """One hash's polls: what they taught, and when the next is due."""

    __slots__ = (
        "_subs",
        "change_window",
        "changes_seen",
        "due",
        "generation",
        "last",
        "last_change_at",
        "last_poll",
        "last_state",
        "max_interval",
        "min_interval",
        "pace",
        "phase",
        "phase_since",
        "request",
        "sent",
        "task_hash",
        "urgent",
    )

    def __init__(self, task_hash: str, now: float) -> None:
        self.task_hash = task_hash
        # Its callers: the one itself, or a tuple (see ``subs``).
        self._subs: Subscriber | tuple[Subscriber, ...] = ()
        self.last: _snapshot.Packed | None = None  # the last snapshot fetched, kept compactly
        self.last_state: object = None
        self.pace: float | None = None  # typical seconds between changes while running
        self.last_change_at: float | None = None
        self.change_window = 0.0  # the last change came within this many seconds before it
        self.phase = _PENDING
        self.phase_since = now
        self.changes_seen = 0  # changes seen in this phase
        self.last_poll: float | None = None
        # The sequence number of its live heap entry; FAR: due at ``due``, in a far bucket;
        # -1: not scheduled.
        self.generation = -1
        self.due = 0.0
        # The request in flight: the stream's own, or a direct get_task's that it grew from.
        self.request: asyncio.Task[None] | _Direct | None = None
        self.sent = False  # the request in flight has started (so it spends its own slot)
        self.urgent = False
        self.min_interval = 1.0
        self.max_interval = 30.0

    @property
    def subs(self) -> tuple[Subscriber, ...]:
        """Its callers, in the order they came. Most streams have one: it is kept alone,
        without a tuple of its own."""
        subs = self._subs
        return (subs,) if isinstance(subs, Subscriber) else subs

    @subs.setter
    def subs(self, subs: tuple[Subscriber, ...]) -> None:
        self._subs = subs[0] if len(subs) == 1 else subs

    def keep(self, task: Task) -> None:
        """Keep ``task`` as the last snapshot fetched (compactly: see ``_snapshot``)."""
        self.last = _snapshot.pack(task, self.task_hash)

    def settle_intervals(self) -> None:
        """Poll as the most demanding of its watchers asks."""
        watchers = [s for s in self.subs if s.key is not None]
        if watchers:
            self.min_interval = min(s.min_interval for s in watchers)
            self.max_interval = min(s.max_interval for s in watchers)


class Timed(Protocol):
    """What ``Timers`` keeps on each thing it schedules (a ``_Stream``)."""

    generation: int
    due: float


_S = TypeVar("_S", bound=Timed)


class Timers(Generic[_S]):
    """When each stream is next due, in two levels (a timer wheel of one coarse level over a
    heap): a time within the current bucket of ``TIMER_BUCKET`` seconds or the next goes into
    a heap of ``(due, sequence, stream)``, as the event loop keeps its timers; a later one
    into the list of its bucket, with its time on the stream (``due``), and the whole bucket
    moves into the heap once the one before it begins, ahead of any of its times. A sleeping
    watch polled every few minutes or hours, the bulk of a large ``watch_many``, then costs a
    list slot, not a heap entry and its sequence number.

    A stream is scheduled once at a time: scheduling it again, or ``cancel``, leaves its
    earlier entry stale, skipped when it comes up (``stream.generation`` tells the live one:
    its heap entry's sequence number, ``FAR`` for a time in a bucket, -1 for none).
    """

    __slots__ = ("_far", "_far_keys", "_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _S]] = []  # (due, sequence, stream)
        self._seq = itertools.count()
        self._far: dict[int, list[_S]] = {}  # bucket number -> its streams
        self._far_keys: list[int] = []  # a heap of the bucket numbers in ``_far``

    def add(self, stream: _S, at: float, now: float) -> None:
        """Schedule ``stream`` at ``at`` (instead of any earlier time it had)."""
        # (an endless wait, at an infinite max_interval or timeout, stays in the heap)
        if at < (math.floor(now / TIMER_BUCKET) + 2) * TIMER_BUCKET or at == math.inf:
            seq = stream.generation = next(self._seq)
            heapq.heappush(self._heap, (at, seq, stream))
            return
        bucket = math.floor(at / TIMER_BUCKET)
        if _is_due_in(stream, bucket):  # already in that bucket: a new time is enough
            stream.due = at
            return
        stream.generation = FAR
        stream.due = at
        streams = self._far.get(bucket)
        if streams is None:
            streams = self._far[bucket] = []
            heapq.heappush(self._far_keys, bucket)
        streams.append(stream)

    @staticmethod
    def cancel(stream: Timed) -> None:
        """``stream`` is due no more (its entry, wherever it is, goes stale)."""
        stream.generation = -1

    def due(self, now: float) -> Iterator[_S]:
        """The streams due by ``now``, earliest first, each unscheduled as it is given."""
        self._promote(now)
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, stream = heapq.heappop(heap)
            if seq == stream.generation:
                stream.generation = -1
                yield stream

    def next_at(self, now: float) -> float | None:
        """When the next stream is due, or a far bucket must move into the heap: the time
        to wake at (None: nothing scheduled)."""
        self._promote(now)
        heap = self._heap
        while heap and heap[0][1] != heap[0][2].generation:
            heapq.heappop(heap)  # stale: the stream was rescheduled or dropped since
        at = heap[0][0] if heap else None
        if self._far_keys:
            promote = (self._far_keys[0] - 1) * TIMER_BUCKET
            at = promote if at is None else min(at, promote)
        return at

    def waiting(self) -> Iterator[_S]:
        """Every stream scheduled and not yet due, once each (in no particular order)."""
        for _, seq, stream in self._heap:
            if seq == stream.generation:
                yield stream
        seen: set[_S] = set()  # (one moved from a bucket and back has two entries there)
        for bucket, streams in self._far.items():
            for stream in streams:
                if _is_due_in(stream, bucket) and stream not in seen:
                    seen.add(stream)
                    yield stream

    def clear(self) -> None:
        self._heap.clear()
        self._far.clear()
        self._far_keys.clear()

    def _promote(self, now: float) -> None:
        """Move the far buckets that begin before the next one into the heap."""
        keys = self._far_keys
        if not keys:
            return
        near = math.floor(now / TIMER_BUCKET) + 1
        while keys and keys[0] <= near:
            bucket = heapq.heappop(keys)
            for stream in self._far.pop(bucket):
                if _is_due_in(stream, bucket):
                    seq = stream.generation = next(self._seq)
                    heapq.heappush(self._heap, (stream.due, seq, stream))


def _is_due_in(stream: Timed, bucket: int) -> bool:
    """``stream``'s live schedule is in the far bucket ``bucket`` (not a stale entry)."""
    return stream.generation == FAR and math.floor(stream.due / TIMER_BUCKET) == bucket


class _Direct:
    """The place of a ``get_task`` sending its own request while nobody else polls the hash
    (see ``Scheduler.get``): a stream only once another caller joins it."""

    __slots__ = ("stream", "sub")

    def __init__(self) -> None:
        self.stream: _Stream | None = None  # set when a caller joins
        self.sub: Subscriber | None = None  # the direct caller's place on that stream


class Mailbox:
    """The sink of one ``watch``/``wait``: what its generator has still to yield."""

    __slots__ = ("_ended", "_error", "_items", "_waiter")

    def __init__(self) -> None:
        self._items: collections.deque[Task] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        self._error: BaseException | None = None

    def snapshot(self, sub: Subscriber, task: Task) -> None:
        self._items.append(task)
        self._wake()

    def end(self, sub: Subscriber, error: BaseException | None) -> None:
        self._ended = True
        self._error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def has_news(self) -> bool:
        """A snapshot or the end is waiting: ``next()`` returns without suspending."""
        return bool(self._items) or self._ended

    async def next(self) -> Task | None:
        """The next snapshot; None once the stream ended normally; else raises its error."""
        while True:
            if self._items:
                return self._items.popleft()
            if self._ended:
                error, self._error = self._error, None
                if error is not None:
                    raise error
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


class _OneShot:
    """The sink of one ``get_task``: a future for the next snapshot."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: asyncio.Future[Task] = asyncio.get_running_loop().create_future()

    def snapshot(self, sub: Subscriber, task: Task) -> None:
        if not self.future.done():
            self.future.set_result(task)

    def end(self, sub: Subscriber, error: BaseException | None) -> None:
        if error is not None and not self.future.done():
            self.future.set_exception(error)


class _Ignore:
    """The sink of a ``get_task`` that sends its own request: it has the answer already."""

    __slots__ = ()

    def snapshot(self, sub: Subscriber, task: Task) -> None:
        pass

    def end(self, sub: Subscriber, error: BaseException | None) -> None:
        pass


_IGNORED = Terms(_Ignore(), None)


class Scheduler:
    """The poll schedule of one client (see the module docstring)."""

    def __init__(self, path: RequestPath) -> None:
        self._path = path
        # One stream per hash polled, or the marker of a get_task sending its own request.
        self._streams: dict[str, _Stream | _Direct] = {}
        self._timers: Timers[_Stream] = Timers()
        self._ready: dict[_Stream, None] = {}  # due, waiting for a slot, longest due first
        self._urgent: collections.deque[_Stream] = collections.deque()
        self._requests: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._timer: asyncio.Task[None] | None = None
        self._timer_at = 0.0
        self._slot: asyncio.Task[bool] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop all of this belongs to
        self._binding = False  # the budget has made slots wait since the backlog began
        self.live_watches = 0
        # What the fleet taught the priority and the schedule.
        self._fleet = _priority.FleetLearning()

    # -- callers ---------------------------------------------------------------------------

    def validate(self, task_hash: str) -> None:
        """InvalidTaskHashError unless ``task_hash`` is one safe path segment."""
        self._path.url_for(task_hash)

    def check_open(self, task_hash: str | None = None) -> None:
        """ClientClosedError (carrying ``task_hash``) once the client is closed."""
        self._path.check_open(task_hash)

    def clock(self) -> float:
        """The monotonic clock every deadline is on."""
        return self._path.clock()

    def _follow_loop(self) -> None:
        """Serve the running event loop. When the client is reused in another one (a second
        ``asyncio.run()``), what the previous loop held is dropped: its callers are gone with
        it, and its tasks and futures cannot run here."""
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return
        self._loop = loop
        self._streams.clear()
        self._timers.clear()
        self._ready.clear()
        self._urgent.clear()
        self._requests.clear()
        self._loop_task = self._wake = self._timer = self._slot = None
        self._binding = False

    def subscribe(self, sub: Subscriber) -> None:
        """Start ``sub`` on its hash's stream (created when nobody polls it yet): it gets the
        next snapshot fetched. The hash must have been validated (``RequestPath.url_for``)."""
        self._follow_loop()
        now = self._path.clock()
        if sub.timeout is not None:
            sub.since = now
        if sub.key is not None:
            self.live_watches += 1
        entry = self._streams.get(sub.task_hash)
        if entry is None:
            stream = self._streams[sub.task_hash] = _Stream(sub.task_hash, now)
        elif isinstance(entry, _Direct):  # a get_task's request in flight: it becomes a stream
            stream = self._join_direct(entry, sub.task_hash, now)
        else:
            stream = entry
        sub.stream = stream
        stream.subs += (sub,)
        stream.settle_intervals()
        if stream.request is None and not stream.urgent:
            earliest = now
            if stream.last_poll is not None:
                earliest = max(now, stream.last_poll + stream.min_interval)
            self._schedule(stream, earliest, now, urgent=True)
        self._poke()

    def leave(self, sub: Subscriber) -> asyncio.Task[None] | None:
        """Take ``sub`` off its stream without ending it (its caller went away). Returns the
        stream's request when this left nobody on it: cancelled, for the caller to await."""
        stream = sub.stream
        if stream is None:
            return None
        sub.stream = None
        sub.last = stream.last
        if sub.key is not None:
            self.live_watches -= 1
        stream.subs = tuple(s for s in stream.subs if s is not sub)
        if stream.subs:
            stream.settle_intervals()
            return None
        return self._drop(stream)

    def subscribers(self, task_hashes: Iterable[str], terms: Terms) -> list[Subscriber]:
        """The subscribers of ``terms`` still on the streams of ``task_hashes`` (those of one
        ``watch_many``)."""
        found = []
        streams = self._streams
        for task_hash in task_hashes:
            entry = streams.get(task_hash)
            if isinstance(entry, _Stream):
                found += [sub for sub in entry.subs if sub.terms is terms]
        return found

    async def release(self, subs: list[Subscriber]) -> None:
        """``leave`` each of ``subs``, then wait until what that ended has finished, the
        scheduler's own tasks included when nothing is left: nothing is left behind."""
        requests = [r for r in map(self.leave, subs) if r is not None]
        if not self._streams:  # every request left belongs to a stream just dropped
            requests = list(self._requests)
        if requests:
            # Re-cancelled until they end (a library below may swallow one cancellation),
            # within a bound: a release never hangs.
            await cancel_and_wait(requests)
            # and their done-callbacks have run (cancel_and_wait skips a task already done)
            await asyncio.gather(*requests, return_exceptions=True)
        # With no stream left, every request has just been cancelled and awaited: wait for
        # the loop too, even if a request's done-callback has not run yet (it wakes the loop).
        while not self._streams:
            job = self._loop_task
            if job is None or job is asyncio.current_task():
                return
            if job.done():
                self._loop_task = None
                return
            self._poke()
            await asyncio.gather(job, return_exceptions=True)

    async def get(self, task_hash: str) -> Task:
        """The next snapshot of ``task_hash``, shared with every other caller on it.
        InvalidTaskHashError, then ClientClosedError, before anything is sent."""
        path = self._path
        url = path.url_for(task_hash)
        path.check_open(task_hash)
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._follow_loop()
        streams = self._streams
        if (
            task_hash not in streams
            and not self._urgent
            and not self._ready
            and (fetch := path.fetch_now(url, task_hash, loop)) is not None
        ):
            # Nobody polls the hash and a slot is free (held): send the request from the
            # caller's own task, behind a marker that a caller arriving meanwhile turns into
            # a stream (``_join_direct``). Nobody joins most calls: they pay for no stream.
            direct = streams[task_hash] = _Direct()
            try:
                task = await fetch
            except BaseException as exc:
                self._direct_failed(task_hash, direct, exc)
                raise
            if direct.stream is None:  # nobody joined: nothing to hand out, nothing to learn
                self._forget_direct(task_hash, direct)
            else:
                self._direct_done(direct, task)
            return task
        sink = _OneShot()
        sub = Subscriber(task_hash, Terms(sink, None))
        self.subscribe(sub)
        try:
            return await sink.future
        finally:
            if sub.stream is not None:
                await self.release([sub])

    def _forget_direct(self, task_hash: str, direct: _Direct) -> None:
        """The direct request nobody joined is over: drop its marker."""
        streams = self._streams
        if streams.get(task_hash) is direct:  # (unless the loop changed meanwhile)
            del streams[task_hash]
        # A loop that saw the marker waits for work: when nothing else is left, wake it, so
        # that it ends (else it would outlive every watch). While other streams are left, it
        # has nothing to do with this one: no need to wake (or start) it.
        if not streams and not self._requests and self._loop_task is not None:
            self._poke()

    def _direct_done(self, direct: _Direct, task: Task) -> None:
        """A direct request that others joined has succeeded: they get its snapshot."""
        stream, sub = direct.stream, direct.sub
        assert stream is not None
        assert sub is not None
        stream.request = None
        if len(stream.subs) == 1:  # those who joined have left: the same as nobody
            self.leave(sub)
            return
        self._deliver(stream, task)
        # A watch that joined has its next poll scheduled now: the loop, waiting with no
        # timer for it (its request ran outside the loop), must wake to arm one.
        self._poke()

    def _direct_failed(self, task_hash: str, direct: _Direct, exc: BaseException) -> None:
        """A direct request failed with ``exc`` (or its caller was cancelled): those who
        joined get the error, or, when its caller went away, a poll of their own."""
        stream, sub = direct.stream, direct.sub
        if stream is None or sub is None:
            self._forget_direct(task_hash, direct)
            return
        stream.request = None
        if not isinstance(exc, Exception):  # its caller went away (cancelled)
            self.leave(sub)
            if stream.subs:  # others joined: they get a poll of their own
                now = self._path.clock()
                self._schedule(stream, now, now, urgent=True)
                self._poke()
            return
        self._fail(stream, exc)  # every caller on the stream gets it, this one too

    def _join_direct(self, direct: _Direct, task_hash: str, now: float) -> _Stream:
        """A caller arrives while a direct ``get`` of the hash is in flight: the marker
        becomes a stream whose request is that one, the direct caller on it as a one-shot
        subscriber whose sink ignores what it is handed (its snapshot, or error, is its
        request's own)."""
        stream = self._streams[task_hash] = _Stream(task_hash, now)
        sub = Subscriber(task_hash, _IGNORED)
        sub.stream = stream
        stream.subs = (sub,)
        stream.request = direct
        direct.stream, direct.sub = stream, sub
        return stream

    # -- the loop --------------------------------------------------------------------------

    def _poke(self, _: object = None) -> None:
        """Wake the loop, starting it when there is work and it is not running."""
        job = self._loop_task
        if job is None or job.done():
            if self._streams or self._requests:
                self._loop_task = asyncio.ensure_future(self._run())
            return
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                self._fire(self._path.clock())
                if not self._streams and not self._requests:
                    # Nothing is scheduled any more: what the timers still hold is stale (the
                    # streams of watches gone, which would be kept until their time came).
                    self._timers.clear()
                    break
                slot = self._slot
                if slot is not None and slot.done():
                    self._slot = None
                    self._spend(slot)
                    continue
                if slot is None and (self._urgent or self._ready):
                    try:
                        free = self._path.try_take_slot()
                    except Exception as exc:  # the client cannot send at all (see _request)
                        self._fail_next(exc)
                        continue
                    if free:
                        self._dispatch(budget_binds=False)
                        continue
                    slot = self._slot = asyncio.ensure_future(self._path.take_slot())
                    slot.add_done_callback(self._poke)
                self._arm_timer()
                self._wake = loop.create_future()
                try:
                    await self._wake
                finally:
                    self._wake = None
        finally:
            await self._stop_helpers()
            if self._loop_task is asyncio.current_task():
                self._loop_task = None
        if self._streams or self._requests:  # work arrived while the helpers stopped
            self._poke()

    async def _stop_helpers(self) -> None:
        timer, slot = self._timer, self._slot
        self._timer = self._slot = None
        for helper in (timer, slot):
            if helper is not None:
                helper.cancel()
        if timer is not None:
            await asyncio.gather(timer, return_exceptions=True)
        if slot is not None:
            await asyncio.gather(slot, return_exceptions=True)
            if not slot.cancelled() and slot.exception() is None:
                self._path.give_back_slot()  # granted just as the loop stopped

    def _arm_timer(self) -> None:
        now = self._path.clock()
        at = self._timers.next_at(now)
        if at is None:
            return
        timer = self._timer
        if timer is not None and not timer.done():
            if self._timer_at <= at:
                return
            timer.cancel()
        self._timer_at = at
        timer = self._timer = asyncio.ensure_future(self._path.sleep(at - now))
        timer.add_done_callback(self._poke)

    def _schedule(self, stream: _Stream, at: float, now: float, *, urgent: bool = False) -> None:
        """Poll ``stream`` at ``at`` (``now`` is the clock's time, which every caller has)."""
        stream.urgent = urgent
        self._ready.pop(stream, None)
        self._timers.add(stream, at, now)

    def _fire(self, now: float) -> None:
        """Move the streams due by ``now`` to the ready queues; time out late subscribers."""
        for stream in self._timers.due(now):
            late = [s for s in stream.subs if s.deadline is not None and s.deadline <= now]
            for sub in late:
                self._end(sub, _timeout(sub, stream))
            if not stream.subs:
                continue
            if stream.urgent:
                self._urgent.append(stream)
            else:
                self._ready[stream] = None

    def _pick(self, budget_binds: bool) -> _Stream | None:
        # Once the budget made a slot wait, it binds until the backlog of due streams is
        # gone, even for the slots its burst tolerance grants at once.
        binding = self._binding or budget_binds
        urgent, ready = self._urgent, self._ready
        while urgent:
            stream = urgent.popleft()
            if not (stream.subs and stream.request is None and stream.urgent):
                continue
            if binding and stream.last_poll is None and _watchers_only(stream):
                # A new watch while the budget binds: nobody waits on its first poll alone
                # (a get_task would), so it is ranked with the others, as a task pending
                # since it was subscribed.
                stream.urgent = False
                ready[stream] = None
                continue
            return stream
        if not ready:
            self._binding = False  # the backlog is gone: the budget keeps up again
            return None
        self._binding = binding
        if not binding:
            stream = next(iter(ready))
            del ready[stream]
            return stream
        now = self._path.clock()
        stream = max(self._rankable(now), key=lambda s: self._index(s, now))
        if stream in ready:
            del ready[stream]
        else:
            self._timers.cancel(stream)  # polled before its due time
        return stream

    def _rankable(self, now: float) -> list[_Stream]:
        """The streams a binding budget's slot may go to: the due ones (the longest due
        first), then those not due yet but polled at least ``min_interval`` ago. A due time
        is the freshness schedule of a budget with room to spare; when the budget binds, the
        index alone decides. At most ``SCAN_LIMIT``."""
        pool = list(itertools.islice(self._ready, SCAN_LIMIT))
        if len(pool) < SCAN_LIMIT:
            for stream in self._timers.waiting():
                if (
                    not stream.urgent
                    and stream.last_poll is not None
                    and now - stream.last_poll >= stream.min_interval
                ):
                    pool.append(stream)
                    if len(pool) >= SCAN_LIMIT:
                        break
        return pool

    def _index(self, stream: _Stream, now: float) -> float:
        low, high = stream.min_interval, stream.max_interval
        last = stream.phase_since if stream.last_poll is None else stream.last_poll
        taught = self._fleet
        fleet = _priority.fleet_rate(taught.changes, taught.running_for, low, high)
        if stream.phase is _PENDING:
            rate = _priority.start_hazard(taught.starts, taught.pending_for, low, high)
            return _priority.index(_PENDING, now - last, rate, low, high, started_rate=fleet)
        ending = _priority.end_hazard(taught.ends, taught.running_for, low, high)
        rate = _priority.change_rate(
            stream.changes_seen,
            now - stream.phase_since,
            fleet,
            low,
            high,
            prior_for=1 / ending if taught.ends else None,
        )
        return _priority.index(_RUNNING, now - last, rate, low, high, ending=ending)

    def _spend(self, slot: asyncio.Task[bool]) -> None:
        """The slot waited for came (or the budget failed): spend it."""
        if slot.cancelled():
            return
        error = slot.exception()
        if error is None:
            self._dispatch(budget_binds=slot.result())
            return
        self._fail_next(error)  # the budget itself failed (a shared budget out of reach)

    def _fail_next(self, error: BaseException) -> None:
        """No slot can be had: the stream next in line gets the error (it carries its hash)."""
        stream = self._pick(budget_binds=False)
        if stream is not None:
            if isinstance(error, TaskwatchError) and error.task_hash is None:
                error.task_hash = stream.task_hash
            self._fail(stream, error)

    def _dispatch(self, budget_binds: bool) -> None:
        """Send a request, in the slot held, for the stream that deserves it most."""
        stream = self._pick(budget_binds)
        if stream is None:
            self._path.give_back_slot()
            return
        stream.urgent = stream.sent = False
        request = stream.request = asyncio.ensure_future(self._request(stream))
        self._requests.add(request)
        request.add_done_callback(functools.partial(self._request_done, stream))

    async def _request(self, stream: _Stream) -> None:
        stream.sent = True
        path = self._path
        try:
            url = path.url_for(stream.task_hash)
        except Exception as exc:  # validated on subscribing: not expected, still handed on
            path.give_back_slot()
            stream.request = None
            self._fail(stream, exc)
            return
        fetch = path.fetch(url, stream.task_hash, slot_taken=True)
        try:
            deadlines = [s.deadline for s in stream.subs]
            if None in deadlines or not deadlines:
                task = await fetch
            else:  # everyone on it has a deadline: the latest bounds the request too
                latest = max(d for d in deadlines if d is not None)
                task = await within(fetch, max(0.0, latest - path.clock()))
        except (asyncio.TimeoutError, TimeoutError):
            stream.request = None
            for sub in list(stream.subs):
                self._end(sub, _timeout(sub, stream))
            return
        except Exception as exc:  # handed to every caller on the stream: never swallowed
            stream.request = None
            self._fail(stream, exc)
            return
        stream.request = None
        self._deliver(stream, task)

    def _request_done(self, stream: _Stream, request: asyncio.Task[None]) -> None:
        self._requests.discard(request)
        if stream.request is request:
            stream.request = None
        if not stream.sent:
            self._path.give_back_slot()  # cancelled before it began: the slot went unused
            stream.sent = True
        self._poke()

    # -- what a snapshot means -------------------------------------------------------------

    def _deliver(self, stream: _Stream, task: Task) -> None:
        now = self._path.clock()
        state = task.status.status
        previous = stream.last
        stream.keep(task)
        emitted = self._hand_out(stream, task, state)
        polled_before = stream.last_poll
        self._learn(stream, previous, task, emitted, now)
        _policy.note_poll(stream, state, emitted, now, polled_before)
        if task.status.is_done:
            for sub in list(stream.subs):
                self._end(sub, None)
        if not stream.subs:
            return
        low, high = stream.min_interval, stream.max_interval
        since = None if stream.last_change_at is None else now - stream.last_change_at
        delay = _policy.poll_interval(
            low,
            high,
            self._path.random(),
            running=stream.phase is _RUNNING,
            changes_seen=stream.changes_seen,
            running_for=now - stream.phase_since,
            pace=stream.pace,
            since_change=since,
            change_window=stream.change_window,
            fleet=self._fleet.taught(),
        )
        due = now + delay
        for sub in stream.subs:  # never sleep past a deadline
            if sub.deadline is not None and sub.deadline < due:
                due = max(now, sub.deadline)
        self._schedule(stream, due, now)

    def _hand_out(self, stream: _Stream, task: Task, state: str) -> bool:
        """Give ``task`` to each caller by its own rules; True when any yielded it."""
        emitted = False
        for sub in list(stream.subs):
            key = sub.key
            if key is None:
                sub.sink.snapshot(sub, task)
                self._end(sub, None)
                continue
            try:
                decision = _policy.decide(sub.last_key, sub.last_state, task, key)
                sub.last_state = state
                if decision.emit:
                    sub.last_key = key(task)
            except Exception as exc:  # the caller's own key failed: its error alone
                self._end(sub, exc)
                continue
            if decision.emit:
                emitted = True
                sub.sink.snapshot(sub, task)
            if decision.done:
                self._end(sub, None)
        return emitted

    def _learn(
        self,
        stream: _Stream,
        previous: _snapshot.Packed | None,
        task: Task,
        emitted: bool,
        now: float,
    ) -> None:
        """What this poll teaches the priority, about this stream and about the fleet
        (``_priority.FleetLearning.learn``)."""
        status = task.status
        self._fleet.learn(
            stream,
            _PENDING if status.status == TaskState.PENDING else _RUNNING,
            status.total_pages,
            None if previous is None else _snapshot.total_pages(previous),
            status.is_done,
            emitted,
            now,
            stream.min_interval,
            stream.max_interval,
        )

    def _fail(self, stream: _Stream, error: BaseException) -> None:
        """A request failed for good: every caller on the stream gets the error."""
        for sub in list(stream.subs):
            self._end(sub, error)
        self._drop(stream)

    def _end(self, sub: Subscriber, error: BaseException | None) -> None:
        self.leave(sub)
        sub.sink.end(sub, error)

    def _drop(self, stream: _Stream) -> asyncio.Task[None] | None:
        """Forget a stream nobody watches any more; cancel its request (and return it)."""
        if self._streams.get(stream.task_hash) is stream:
            del self._streams[stream.task_hash]
        self._timers.cancel(stream)
        self._ready.pop(stream, None)
        request = stream.request
        self._poke()
        # A direct get_task's request is its caller's own: it ends with that caller.
        if request is None or isinstance(request, _Direct) or request is asyncio.current_task():
            return None
        request.cancel()
        return request


def _watchers_only(stream: _Stream) -> bool:
    """Every caller on ``stream`` watches it (none is a one-shot ``get_task``)."""
    return all(sub.key is not None for sub in stream.subs)


def _timeout(sub: Subscriber, stream: _Stream) -> WatchTimeout:
    return WatchTimeout(
        f"task {sub.task_hash} was not done after {sub.timeout:g}s",
        task_hash=sub.task_hash,
        last=None if stream.last is None else _snapshot.unpack(stream.last, sub.task_hash),
    )
