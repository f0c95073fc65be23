"""The request budget that every request of one Client passes through.

Scheduling rule
---------------
Requests are granted **first come, first served** at a steady pace of ``requests_per_minute``
with a burst of about one second's worth (at least one request), by a GCRA token bucket.
Callers queue in arrival order; only the one at the head sleeps, until the bucket has a slot,
takes it on waking, and hands the turn straight to the next: no waiter is woken for a slot that
is not its own, and a later caller can never take an earlier caller's slot. Watchers ask only
when their own poll is due, so a due poll for a quiet task waits at most
``(callers ahead of it) / rate``, however busy the other tasks are: no task starves.

A slot is taken when the caller actually wakes, never planned ahead, so a stalled event loop
(a blocking call, a long GC pause) does not turn into a burst: slots that fell due during the
stall were not used and are not spent late in a crowd. The bucket's bound holds on the clock,
stalls included: in any window of ``w`` seconds at most ``burst + w * rate`` requests are
granted (in any one second, at most about two seconds' worth).

The limiter also takes the server's word:

- ``X-RateLimit-Limit`` lower than the configured pace lowers the pace to the server's;
- ``X-RateLimit-Remaining: 0`` pauses every caller until ``X-RateLimit-Reset``;
- a 429 pauses every caller until its ``Retry-After`` has passed, so many watchers sharing a
  client do not turn one 429 into a storm. The caller at the head, asleep when the pause
  began, wakes, sees the pause and sleeps on until it ends.

A wait the server suggests beyond ``MAX_SERVER_WAIT`` (120 s) is treated as not given: the
client then pauses for its default second, and ``X-RateLimit-Reset`` is ignored. ``pause()``
itself, called directly, caps what it is given at ``MAX_SERVER_WAIT``.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from ._protocol import MAX_SERVER_WAIT, RateLimitInfo, reset_wait

__all__ = ["Limiter", "RateLimitInfo", "RateLimiter"]


@runtime_checkable
class Limiter(Protocol):
    """What a Client asks of its rate budget; ``RateLimiter`` is the in-process one.

    Pass another implementation as ``Client(limiter=...)`` to share one budget more widely
    (for example across processes). Every request of the client calls ``try_acquire()`` and,
    when that returns False, awaits ``acquire()``; every response's ``X-RateLimit-*`` headers
    go to ``observe()``; a 429 calls ``pause()`` with its ``Retry-After`` (1 s when it sent none,
    or none within 120 s).
    When ``observe()`` or ``pause()`` returns an awaitable, the client awaits it before the
    response is handled further (so a shared budget can tell every process at once).
    """

    def try_acquire(self) -> bool:
        """Take a request slot if one is free now, without waiting."""

    async def acquire(self) -> None:
        """Wait for a request slot; cancellation must leave the budget consistent."""

    def pause(self, seconds: float) -> Awaitable[None] | None:
        """Hold every caller for ``seconds`` from now; may return an awaitable that spreads
        the pause further (the client awaits it)."""

    def observe(self, info: RateLimitInfo | None) -> Awaitable[None] | None:
        """Learn from one response's rate-limit headers (None: the response had none); may
        return an awaitable that spreads what was learnt (the client awaits it)."""

    @property
    def requests_per_minute(self) -> float | None:
        """The pace in force, for ``Client.stats()`` (None: no cap)."""

    @property
    def server_limit(self) -> int | None:
        """The last ``X-RateLimit-Limit`` seen, for ``Client.stats()``."""

    @property
    def waiting(self) -> int:
        """Callers waiting for a slot now, for ``Client.stats()``."""

    def paused_for(self) -> float:
        """Seconds left in a pause, for ``Client.stats()``."""


class RateLimiter:
    """A shared, fair request budget (see the module docstring for the rule).

    Args:
        requests_per_minute: the client-side cap; None for no cap (server pauses still apply).
        burst: requests that may go at once after a quiet spell; default one second's worth,
            at least one.
        clock: a monotonic clock in seconds (injectable for tests).
        wall_clock: UNIX time in seconds, to read ``X-RateLimit-Reset``.
        sleep: the coroutine used to wait (injectable for tests).
    """

    def __init__(
        self,
        requests_per_minute: float | None = 90.0,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if requests_per_minute is not None and not requests_per_minute > 0:
            raise ValueError("requests_per_minute must be positive, or None for no cap")
        if burst is not None and not burst >= 1:
            raise ValueError("burst must be at least 1")
        self._configured = requests_per_minute
        self._burst_setting = burst
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._tat = 0.0  # theoretical arrival time of the next free slot
        self._paused_until = 0.0
        self._server_limit: int | None = None
        self._interval = 0.0
        self._tolerance = 0.0
        self._waiting = 0
        self._turns = _Turns()
        self._set_pace(requests_per_minute)

    def _set_pace(self, requests_per_minute: float | None) -> None:
        self._pace = requests_per_minute
        self._interval, self._tolerance = _spacing(requests_per_minute, self._burst_setting)

    @property
    def requests_per_minute(self) -> float | None:
        """The pace in force: the configured cap, or the server's lower limit once seen."""
        return self._pace

    @property
    def waiting(self) -> int:
        """How many callers are waiting for a slot right now."""
        return self._waiting

    def paused_for(self) -> float:
        """Seconds left in a server-imposed pause (0.0 when none)."""
        return max(0.0, self._paused_until - self._clock())

    def try_acquire(self) -> bool:
        """Take a slot if one is free right now and nobody is waiting, without waiting;
        False when the caller must ``await acquire()``. Keeps the common unpaced path free
        of a coroutine."""
        if self._turns.busy:
            return False
        now = self._clock()
        if now < self._paused_until:
            return False
        if self._interval == 0.0:
            return True
        tat = max(self._tat, now)
        if tat - self._tolerance > now:
            return False
        self._tat = tat + self._interval
        return True

    async def acquire(self) -> None:
        """Wait for this caller's request slot; returns when the request may be sent.

        Callers are served in arrival order; the slot is taken at the moment it is granted.
        Cancellation while waiting holds nothing: the turn goes to the next caller.
        """
        self._waiting += 1
        try:
            await self._turns.take()
            try:
                await self._slot()
            finally:
                self._turns.give()
        finally:
            self._waiting -= 1

    async def _slot(self) -> None:
        """Sleep (holding the turn) until the bucket has a slot and no pause holds, then take
        it at the time read on waking."""
        while True:
            now = self._clock()
            start = self._paused_until
            if self._interval:
                start = max(start, self._tat - self._tolerance)
            if start <= now:
                break
            await self._sleep(start - now)  # the pace or a pause may change meanwhile
        if self._interval:
            self._tat = max(self._tat, now) + self._interval

    def pause(self, seconds: float) -> None:
        """Hold every caller for ``seconds`` (capped at MAX_SERVER_WAIT) from now."""
        seconds = min(max(seconds, 0.0), MAX_SERVER_WAIT)
        until = self._clock() + seconds
        self._paused_until = max(self._paused_until, until)

    def observe(self, info: RateLimitInfo | None) -> None:
        """Learn from one response's ``X-RateLimit-*`` headers (see the module docstring)."""
        if info is None:
            return
        # (the common answer repeats the known limit: one comparison)
        if info.limit != self._server_limit and _new_server_limit(info, self._server_limit):
            self._server_limit = info.limit
            self._set_pace(_pace_for(self._configured, info.limit))
        if info.remaining == 0:  # the window is spent: hold everyone until its reset
            wait = reset_wait(info, self._wall_clock())
            if wait is not None:
                self.pause(wait)

    @property
    def server_limit(self) -> int | None:
        """The last ``X-RateLimit-Limit`` the server sent, or None."""
        return self._server_limit


# -- shared by every limiter that follows this module's rules ------------------------------


class _Turns:
    """One holder at a time, first come, first served, the turn handed straight to the next
    in line (the queue of a limiter).

    Its futures belong to the event loop it was last used on. Used from another loop (a Client
    reused in a second ``asyncio.run()``), it forgets the old loop's turns: their holders died
    with that loop, and a future of a closed loop can never be awaited or woken.
    """

    __slots__ = ("_loop", "_queue", "busy")

    def __init__(self) -> None:
        # True while someone holds the turn; when False, nobody is queued either.
        self.busy = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: collections.deque[asyncio.Future[None]] = collections.deque()

    async def take(self) -> None:
        """Return holding the turn; cancellation while queued holds nothing."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self.busy = False
            self._queue.clear()
        if not self.busy:
            self.busy = True
            return
        turn = loop.create_future()
        self._queue.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.give()  # handed the turn just as we were cancelled: pass it on
            raise

    def give(self) -> None:
        """Hand the turn to the next live caller in line, or free it."""
        while self._queue:
            turn = self._queue.popleft()
            if not turn.done():  # a cancelled caller's future is done: skip it
                turn.set_result(None)
                return
        self.busy = False


def _spacing(requests_per_minute: float | None, burst: float | None) -> tuple[float, float]:
    """The GCRA (emission interval, burst tolerance) in seconds for a pace; no cap: (0, 0).
    The burst defaults to one second's worth, at least one request."""
    if requests_per_minute is None:
        return 0.0, 0.0
    per_second = requests_per_minute / 60.0
    interval = 1.0 / per_second
    return interval, ((burst or max(1.0, per_second)) - 1.0) * interval


def _new_server_limit(info: RateLimitInfo, known: int | None) -> bool:
    """Whether ``info`` brings a usable ``X-RateLimit-Limit`` different from the known one."""
    return info.limit is not None and info.limit > 0 and info.limit != known


def _pace_for(configured: float | None, server_limit: int | None) -> float | None:
    """The pace in force: the configured cap, lowered to the server's limit (no cap stays
    no cap: the server's pauses still apply)."""
    if configured is None or server_limit is None:
        return configured
    return min(configured, float(server_limit))
