"""A rate budget shared on Redis by every process that uses one Lobstr.io key.

The API's limit (90 requests a minute on /v1/tasks) is per key, not per process. Give every
process's Client the same ``RedisLimiter`` settings and the fleet spends one budget::

    import redis.asyncio as redis
    from taskwatch.redis import RedisLimiter

    connection = redis.Redis.from_url("redis://localhost:6379/0")
    limiter = RedisLimiter(connection)                  # key from LOBSTR_TOKEN, like Client()
    async with taskwatch.Client(limiter=limiter) as client:
        task = await client.wait(task_hash)             # every request: a slot from Redis

Needs the ``redis`` extra: ``pip install 'lobstr-taskwatch[redis]'``.

How it works
------------
Two Redis keys hold the budget, both named from a SHA-256 digest of the API key (never the
key itself) and sharing one hash tag, so they live on one Redis Cluster slot:

- ``<prefix>:{<digest>}:next``: the next free request slot (a GCRA token bucket at
  ``requests_per_minute``, with a burst of about one second's worth);
- ``<prefix>:{<digest>}:paused``: the end of a fleet-wide pause.

One Lua script, run atomically by Redis on Redis's own clock, grants a slot or answers how long
to wait; it also publishes the pause this process knows of, so one 429 (or an
``X-RateLimit-Remaining: 0``) anywhere pauses every process before its next request.

Redis may lose its state (a restart without persistence, a failover to a replica that had not
caught up, an eviction). A pause this process knows of holds this process whatever Redis then
says, and since every script call carries it, Redis has it again as soon as it answers. (The
request slots are not restored: a budget that lost its state starts again with a burst.)

Nothing is reserved ahead of time: a process that dies or is cancelled holds no part of the
budget, and the keys expire on their own once idle. Inside one process, callers queue first
come, first served and one at a time ask Redis, so a process sends at most one script call per
granted request plus one per wake-up.

When Redis cannot be consulted
------------------------------
By default a request whose slot cannot be obtained (Redis unreachable, slower than ``timeout``,
or refusing the script) is not sent and the call raises ``RateBudgetUnavailableError``, with
the redis error as its ``__cause__``: over-spending a shared key silently is worse than a clear
failure. Pass ``fallback=`` (any ``taskwatch.Limiter``, typically a ``RateLimiter`` with this
process's share of the budget) to keep going instead: the limiter logs a warning on the
``taskwatch`` logger once per outage, uses the fallback, asks Redis again every
``recheck_after`` seconds and logs when Redis answers again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

try:
    import redis.asyncio as _redis
    import redis.exceptions as _redis_errors
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "taskwatch.redis needs redis-py: pip install 'lobstr-taskwatch[redis]'"
    ) from exc

from ._cancel import within
from ._config import resolve_api_key
from ._protocol import MAX_SERVER_WAIT, RateLimitInfo, reset_wait
from .errors import ConfigurationError, RateBudgetUnavailableError
from .ratelimit import Limiter, _new_server_limit, _pace_for, _spacing, _Turns

__all__ = ["RedisLimiter", "budget_name"]

logger = logging.getLogger("taskwatch")

_MICROS = 1_000_000
_CAP_US = int(MAX_SERVER_WAIT * _MICROS)

# KEYS[1]: next free slot, KEYS[2]: pause end (both microseconds of Redis TIME).
# ARGV[1]: microseconds between slots (0: no cap), ARGV[2]: burst tolerance in microseconds,
# ARGV[3]: a pause to publish, in microseconds from now (0: none), ARGV[4]: the longest wait
# Redis may hand out (MAX_SERVER_WAIT): a stored pause or slot further away than that is
# absurd (a foreign value, or the clock of a failed-over server) and is ignored.
# Returns {wait, paused}: wait 0 means a slot was granted; otherwise microseconds to wait
# before asking again; paused is the shared pause left, in microseconds.
_ACQUIRE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local pause = tonumber(ARGV[3])
local cap = tonumber(ARGV[4])
local paused_until = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if paused_until - now > cap then
  paused_until = 0  -- absurd (a foreign value, or a clock that jumped): not a pause
end
if pause > 0 and now + pause > paused_until then
  paused_until = now + pause
  redis.call('SET', KEYS[2], string.format('%d', paused_until),
             'PX', math.ceil(pause / 1000) + 1000)
end
if paused_until > now then
  return {paused_until - now, paused_until - now}
end
if interval <= 0 then
  return {0, 0}
end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now or tat - now > cap then
  tat = now
end
local wait = tat - tolerance - now
if wait > 0 then
  return {wait, 0}
end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', next_tat),
           'PX', math.ceil((next_tat - now) / 1000) + 1000)
return {0, 0}
"""

# What "Redis could not be consulted" looks like: any redis-py error (connection refused or
# reset, auth, a script error such as WRONGTYPE on a foreign key), a socket error, our own
# per-call timeout, or the RuntimeError redis-py raises when its connections belong to another
# event loop (a Redis client reused in a second asyncio.run(): "Event loop is closed").
_UNAVAILABLE = (_redis_errors.RedisError, OSError, asyncio.TimeoutError, RuntimeError)


def budget_name(api_key: str, prefix: str = "taskwatch") -> str:
    """The Redis key stem of the budget for ``api_key``: ``<prefix>:{<digest>}``.

    The digest is SHA-256 over a taskwatch-specific label and the key, cut to 32 hex digits:
    the same key always gives the same name, and the name does not reveal the key.
    """
    digest = hashlib.sha256(b"taskwatch rate budget\x00" + api_key.encode()).hexdigest()
    return f"{prefix}:{{{digest[:32]}}}"


class RedisLimiter:
    """A ``taskwatch.Limiter`` whose budget lives on Redis, shared by every process using it.

    Args:
        redis: a ``redis.asyncio.Redis`` you own and close yourself (an arq worker's
            ``ctx["redis"]`` works too).
        api_key: the Lobstr.io key whose budget this is; resolved like ``Client(api_key)``
            (argument, ``LOBSTR_TOKEN``, then the lobstr config file). Only its digest is kept.
        requests_per_minute: the fleet-wide pace (default 90, the documented limit); None for
            no cap (pauses are still shared). Give every process the same value.
        burst: requests that may go at once after a quiet spell; default one second's worth,
            at least one.
        prefix: the first part of the Redis key names.
        timeout: seconds allowed for one call to Redis before it counts as unavailable.
        fallback: the limiter to use while Redis cannot be consulted; None (the default)
            raises ``RateBudgetUnavailableError`` instead.
        recheck_after: while on the fallback, seconds between attempts to reach Redis again.

    Raises:
        ConfigurationError: no API key anywhere, or a setting that cannot work.
    """

    def __init__(
        self,
        redis: _redis.Redis,
        *,
        api_key: str | None = None,
        requests_per_minute: float | None = 90.0,
        burst: float | None = None,
        prefix: str = "taskwatch",
        timeout: float = 5.0,
        fallback: Limiter | None = None,
        recheck_after: float = 5.0,
    ) -> None:
        if requests_per_minute is not None and not 0 < requests_per_minute < math.inf:
            raise ConfigurationError("requests_per_minute must be positive, or None for no cap")
        if burst is not None and not 1 <= burst < math.inf:
            raise ConfigurationError("burst must be at least 1")
        if not timeout > 0:
            raise ConfigurationError("timeout must be a positive number of seconds")
        if not recheck_after > 0:
            raise ConfigurationError("recheck_after must be a positive number of seconds")
        if not prefix or any(c in prefix for c in "{} \t\r\n"):
            raise ConfigurationError("prefix must be non-empty, without braces or whitespace")
        self._name = budget_name(resolve_api_key(api_key), prefix)
        self._keys = [f"{self._name}:next", f"{self._name}:paused"]
        self._script = redis.register_script(_ACQUIRE_SCRIPT)
        self._configured = requests_per_minute
        self._burst_setting = burst
        self._timeout = timeout
        self._fallback = fallback
        self._recheck_after = recheck_after
        self._clock: Callable[[], float] = time.monotonic
        self._wall_clock: Callable[[], float] = time.time
        self._sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
        self._turns = _Turns()  # FIFO: one caller per process asks Redis at a time
        self._waiting = 0
        # The end of the fleet-wide pause as this process knows it: its own pauses and those
        # Redis told it of. Never shortened by Redis (which may have lost its state), and
        # sent with every script call, so Redis has it again as soon as it answers.
        self._paused_until = 0.0
        self._server_limit: int | None = None
        self._unavailable_until: float | None = None  # on the fallback until then
        self._pace: float | None = None
        self._interval_us = 0
        self._tolerance_us = 0
        self._set_pace(requests_per_minute)

    def _set_pace(self, requests_per_minute: float | None) -> None:
        self._pace = requests_per_minute
        interval, tolerance = _spacing(requests_per_minute, self._burst_setting)
        self._interval_us = math.ceil(interval * _MICROS)
        self._tolerance_us = math.floor(tolerance * _MICROS)

    def __repr__(self) -> str:
        state = "on fallback" if self._unavailable_until is not None else "shared"
        return f"<RedisLimiter {self._name!r} requests_per_minute={self._pace!r} {state}>"

    # -- read-outs -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The Redis key stem of this budget (from a digest of the API key, see budget_name)."""
        return self._name

    @property
    def requests_per_minute(self) -> float | None:
        """The fleet-wide pace in force: the configured cap, or the server's lower limit."""
        return self._pace

    @property
    def server_limit(self) -> int | None:
        """The last ``X-RateLimit-Limit`` this process saw, or None."""
        return self._server_limit

    @property
    def waiting(self) -> int:
        """How many of this process's callers are waiting for a slot right now."""
        return self._waiting

    @property
    def on_fallback(self) -> bool:
        """True while Redis could not be consulted and the fallback limiter is in use."""
        return self._unavailable_until is not None

    def paused_for(self) -> float:
        """Seconds left in the fleet-wide pause, as this process last heard of it."""
        return max(0.0, self._paused_until - self._clock())

    # -- the Limiter protocol --------------------------------------------------------------

    def try_acquire(self) -> bool:
        """Always False: a shared slot is only ever granted by Redis, in ``acquire()``."""
        return False

    async def acquire(self) -> None:
        """Wait for a slot granted by Redis (or by the fallback while Redis is away).

        Raises:
            RateBudgetUnavailableError: Redis could not be consulted and there is no fallback.
        """
        self._waiting += 1
        try:
            await self._turns.take()
            try:
                while True:
                    fallback = self._active_fallback()
                    if fallback is not None:
                        await fallback.acquire()
                        return
                    wait = await self._ask()
                    if wait is None:
                        continue  # Redis is away: the fallback takes over
                    if wait <= 0:
                        return
                    await self._sleep(wait)
            finally:
                self._turns.give()
        finally:
            self._waiting -= 1

    def pause(self, seconds: float) -> Awaitable[None]:
        """Pause the fleet for ``seconds`` (capped at 120 when called directly; the Client
        never passes more, see ``ratelimit``): this process at once; the awaitable
        returned tells Redis, hence every other process before its next request (the Client
        awaits it). Should Redis not take it, the pause goes with this process's next ask."""
        seconds = self._hold(seconds)
        fallback = None if self._fallback is None else self._fallback.pause(seconds)
        return self._publish(fallback)

    def observe(self, info: RateLimitInfo | None) -> Awaitable[None] | None:
        """Learn from one response's ``X-RateLimit-*`` headers, as ``RateLimiter`` does: a
        lower server limit lowers the pace; ``Remaining: 0`` pauses the fleet until ``Reset``
        (the awaitable then returned tells Redis; the Client awaits it)."""
        fallback = None if self._fallback is None else self._fallback.observe(info)
        if info is None:
            return fallback
        if _new_server_limit(info, self._server_limit):
            self._server_limit = info.limit
            self._set_pace(_pace_for(self._configured, info.limit))
        wait = reset_wait(info, self._wall_clock())
        if wait is None:
            return fallback
        self._hold(wait)  # the fallback saw the headers itself, above
        return self._publish(fallback)

    def _hold(self, seconds: float) -> float:
        """Record a pause (capped at 120 s) to publish; returns the capped seconds."""
        seconds = min(max(seconds, 0.0), MAX_SERVER_WAIT)
        self._paused_until = max(self._paused_until, self._clock() + seconds)
        return seconds

    def _pause_to_send(self) -> int:
        """Microseconds left in the pause this process knows of (0: none), for the script."""
        return max(0, math.ceil((self._paused_until - self._clock()) * _MICROS))

    # -- Redis -----------------------------------------------------------------------------

    def _active_fallback(self) -> Limiter | None:
        """The fallback, while it stands in for Redis (until the next time to ask Redis)."""
        until = self._unavailable_until
        return self._fallback if until is not None and self._clock() < until else None

    async def _publish(self, fallback: Awaitable[None] | None) -> None:
        """Tell Redis of the pause this process knows at once (a script call that takes no
        slot). A failure is logged and left for the next ``acquire()``, which has to reach
        Redis anyway (and raises or falls back if it cannot)."""
        if fallback is not None:
            await fallback
        if self._active_fallback() is not None:
            return  # Redis is away: the pause goes with the first ask once it is back
        pause_us = self._pause_to_send()
        if pause_us <= 0:
            return
        try:
            reply = await self._call(0, 0, pause_us)
        except _UNAVAILABLE as exc:
            logger.info(
                "shared rate budget %s: could not tell Redis of a pause yet (%s)",
                self._name,
                _describe(exc),
            )
            return
        self._heard(reply[1])

    async def _call(self, interval_us: int, tolerance_us: int, pause_us: int) -> tuple[int, int]:
        """One run of the script, within ``timeout``; a reply of any other shape is a
        ``redis.exceptions.ResponseError``."""
        # redis-py's asyncio.wait_for may swallow a cancellation that lands as the send
        # completes: `within` raises it rather than carry on granting slots.
        reply: Any = await within(
            self._script(keys=self._keys, args=[interval_us, tolerance_us, pause_us, _CAP_US]),
            self._timeout,
        )
        try:
            return int(reply[0]), int(reply[1])
        except (TypeError, ValueError, IndexError, KeyError) as exc:
            raise _redis_errors.ResponseError(f"unexpected script reply {reply!r:.80}") from exc

    def _heard(self, paused_us: int) -> None:
        """Learn the shared pause from one script call: a longer one (another process's)
        extends what this process knows; a shorter one or none (Redis restarted empty, failed
        over, or evicted the key) changes nothing: a pause this process knows holds it."""
        if paused_us > 0:
            self._paused_until = max(self._paused_until, self._clock() + paused_us / _MICROS)

    async def _ask(self) -> float | None:
        """One script call: seconds to wait (0: granted), or None when Redis is away and the
        fallback takes over."""
        pause_us = self._pause_to_send()
        try:
            wait_us, paused_us = await self._call(self._interval_us, self._tolerance_us, pause_us)
        except _UNAVAILABLE as exc:
            self._unavailable(exc)
            return None
        self._heard(paused_us)
        if self._unavailable_until is not None:
            self._unavailable_until = None
            logger.warning("shared rate budget %s: Redis answers again; back on it", self._name)
        if wait_us <= 0:
            return 0.0
        return wait_us / _MICROS + 0.001  # a hair past the slot, so one ask is enough

    def _unavailable(self, exc: BaseException) -> None:
        """Raise RateBudgetUnavailableError, or (with a fallback) switch to it for a while."""
        reason = _describe(exc)
        if isinstance(exc, RuntimeError):
            reason += (
                "; a redis.asyncio client serves the event loop it was first used in: create "
                "it (and this limiter) inside the asyncio.run() that uses it"
            )
        if self._fallback is None:
            raise RateBudgetUnavailableError(
                f"the shared rate budget on Redis ({self._name}) could not be consulted "
                f"({reason}); the request was not sent"
            ) from exc
        if self._unavailable_until is None:
            logger.warning(
                "shared rate budget %s: Redis could not be consulted (%s); using the "
                "fallback limiter, asking Redis again every %gs",
                self._name,
                reason,
                self._recheck_after,
            )
        self._unavailable_until = self._clock() + self._recheck_after


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
