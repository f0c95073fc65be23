"""The request path: fetch one task, within the in-flight cap and the rate budget, with retries.

Everything above it (``Client.get_task``, the watches) asks it for one thing through one narrow
interface: ``url_for(task_hash)`` once, then ``fetch(url, task_hash) -> Task`` per poll (or
``fetch_now``, which sends only if room in flight and a budget slot are free at once). A fetch
goes: the in-flight gate -> the limiter -> one GET on a pooled connection (the only place aiohttp
and asyncio exceptions are turned into ``TransportError``) -> bytes -> ``_protocol.read_task``.
Transient failures are retried with tenacity; the first attempt is one coroutine, outside
tenacity, so that a poll that succeeds pays nothing for the retry machinery.

It owns the session (unless the caller gave one), the counters ``Client.stats()`` reports, and
the clock, sleep and random source every layer above uses (injectable for tests).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import tenacity
from multidict import CIMultiDict, CIMultiDictProxy, istr

from . import _protocol
from ._cancel import raise_if_cancelling
from .errors import (
    APIError,
    AuthenticationError,
    ClientClosedError,
    ConfigurationError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    TaskwatchError,
    TLSError,
    TransportError,
)

if TYPE_CHECKING:
    from yarl import URL

    from .models import Task
    from .ratelimit import Limiter

__all__ = ["MAX_IN_FLIGHT", "Gate", "RequestPath"]

logger = logging.getLogger("taskwatch")

# A 429 without Retry-After (or the throttled message), or with one beyond the 120 s cap
# (read as none given), still pauses every caller this long.
_DEFAULT_RATE_LIMIT_PAUSE = 1.0

# get_task remembers this many URLs (one per hash) so that a poll does not rebuild its URL.
_URL_CACHE_SIZE = 1024

# Requests in flight at once per client (aiohttp's default connection pool size). Callers past
# it wait on a semaphore, which costs a few hundred bytes, instead of holding a half-built
# aiohttp request each: ten thousand watches polling at once stay small.
MAX_IN_FLIGHT = 100

CLOSED = "this taskwatch Client is closed; create a new one"

# Looked up in every answer's headers: folded once, not on each lookup.
_CONTENT_ENCODING = istr("Content-Encoding")

_TRANSIENT = (TransportError, ServerError, RateLimitError, ResponseFormatError)

_MAX_BODY_BYTES = _protocol.MAX_BODY_BYTES

# What a send holds when it starts: nothing yet (it takes room in flight and a budget slot);
# both, taken ahead (``take_slot``: a pause begun since still holds it); both, granted just
# now with nothing awaited since (``fetch_now``: no pause can have begun).
_TAKE, _HELD, _HELD_NOW = 0, 1, 2


def _is_transient(exc: BaseException) -> bool:
    """Transient: no HTTP answer (but a failed TLS handshake, which fails again the same
    way), 5xx, 429, or a 200 body cut off mid-JSON. Nothing else: a 4xx or a programming
    error must surface, never be retried forever."""
    if isinstance(exc, ResponseFormatError):
        return exc.truncated
    if isinstance(exc, TLSError):
        return False
    return isinstance(exc, _TRANSIENT)


class _PreferRetryAfter(tenacity.wait.wait_base):
    """Wait what the server asked for, else back off. An absurd wait (beyond MAX_SERVER_WAIT)
    never gets here: ``_protocol`` reads it as no advice, so the backoff applies."""

    def __init__(self, fallback: tenacity.wait.wait_base) -> None:
        self._fallback = fallback

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return float(retry_after)
        return self._fallback(retry_state)


class Gate:
    """At most ``size`` holders at once, first come, first served. On the uncontended path a
    pass costs one comparison, where asyncio.Semaphore costs several coroutine calls."""

    __slots__ = ("_free", "_waiters")

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def try_enter(self) -> bool:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def enter(self) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.leave()  # a slot was handed over just as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(future)
            raise

    def leave(self) -> None:
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)  # the slot goes straight to the next in line
                return
        self._free += 1


class RequestPath:
    """Fetch one task at a time for one Client: its session, budget, retries and counters.

    Args:
        base_url: the normalised API root.
        headers: the headers every request carries (the key among them; never logged).
        session: a caller's session (left open), or None to create one on first use.
        timeout: seconds allowed for one attempt.
        max_retries, retry_initial_wait, retry_max_wait: the retry rules (see ``Client``).
        limiter: the rate budget.
    """

    def __init__(
        self,
        base_url: URL,
        headers: dict[str, str],
        session: aiohttp.ClientSession | None,
        *,
        timeout: float,
        max_retries: int,
        retry_initial_wait: float,
        retry_max_wait: float,
        limiter: Limiter,
    ) -> None:
        self._base_url = base_url
        self._headers = headers
        self._session = session
        # Sent with each request only on a caller's session (ours has them as defaults).
        self._request_headers: dict[str, str] | None = headers
        self._urls: dict[str, URL] = {}
        self._in_flight = Gate(_in_flight_size(session))
        self._owns_session = session is None
        self._closed = False
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._timeout_seconds = timeout
        self._max_retries = max_retries
        self.limiter = limiter
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self.random: Callable[[], float] = random.random
        self.clock: Callable[[], float] = time.monotonic
        self.wall_clock: Callable[[], float] = time.time
        self._retry_stop = tenacity.stop_after_attempt(max_retries + 1)
        self._retry_wait = _PreferRetryAfter(
            # wait_exponential + wait_random rather than wait_exponential_jitter, whose
            # arguments changed across tenacity releases.
            tenacity.wait_exponential(multiplier=retry_initial_wait, max=retry_max_wait)
            + tenacity.wait_random(0, retry_initial_wait)
        )
        self._retry_if = tenacity.retry_if_exception(_is_transient)
        self.requests = 0
        self.retries = 0
        self.rate_limited = 0
        self.server_errors = 0
        self.transport_errors = 0
        self.server_remaining: int | None = None
        self.server_reset: float | None = None
        self.deviations: dict[str, int] = {}
        self.off_contract = 0
        # A refused key (401) is about every task: the first refusal, kept to fail fast.
        self._refused: AuthenticationError | None = None
        self._key_proven = False  # an answer has shown the API accepts the key
        self._probe: asyncio.Future[None] | None = None  # the attempt that may prove it
        # The event loop the session, the gate and the probe belong to (see _follow_loop), and
        # a session of a previous loop still to close.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stale_session: aiohttp.ClientSession | None = None

    @property
    def base_url(self) -> URL:
        return self._base_url

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The session in use, if one was created or given."""
        return self._session

    def check_open(self, task_hash: str | None = None) -> None:
        """Raise ClientClosedError (carrying ``task_hash``) once closed."""
        if self._closed:
            raise ClientClosedError(CLOSED, task_hash=task_hash)

    async def aclose(self) -> None:
        """Refuse further requests; close the session if it is ours. Idempotent."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session and not session.closed:
            await session.close()

    def _get_session(self) -> aiohttp.ClientSession:
        self.check_open()
        session = self._session
        if session is None:
            # Our own session carries the headers, so a request need not merge them in again.
            session = aiohttp.ClientSession(headers=self._headers)
            self._session = session
            self._request_headers = None
        elif session.closed:
            raise ClientClosedError("the aiohttp session given to this Client is closed")
        return session

    def url_for(self, task_hash: str) -> URL:
        """The task's URL (InvalidTaskHashError unless the hash is one safe path segment),
        remembered for the next call."""
        url = self._urls.get(task_hash)
        if url is not None:
            return url
        url = _protocol.task_url(self._base_url, task_hash)
        if len(self._urls) >= _URL_CACHE_SIZE:
            self._urls.clear()
        self._urls[task_hash] = url
        return url

    async def take_slot(self) -> bool:
        """Wait for room in flight, then for a budget slot, as a fetch does; hold both for
        ``fetch(..., slot_taken=True)`` (or ``give_back_slot()``). Returns whether the budget
        made the caller wait (it binds). Cancelled or failing, it holds nothing."""
        self._follow_loop()
        gate = self._in_flight
        if not gate.try_enter():
            await gate.enter()
        try:
            if self.limiter.try_acquire():
                return False
            await self.limiter.acquire()
            raise_if_cancelling()  # a limiter may sit on a library that swallows it
        except BaseException:
            gate.leave()
            raise
        return True

    def try_take_slot(self) -> bool:
        """``take_slot`` without waiting: True when both were free now (and are held)."""
        self._follow_loop()
        if not self._in_flight.try_enter():
            return False
        try:
            if self.limiter.try_acquire():
                return True
        except BaseException:
            self._in_flight.leave()
            raise
        self._in_flight.leave()
        return False

    def give_back_slot(self) -> None:
        """Release the room in flight that ``take_slot`` held (the budget slot is spent)."""
        self._in_flight.leave()

    def fetch(self, url: URL, task_hash: str, *, slot_taken: bool = False) -> Awaitable[Task]:
        """One task from ``url`` through the budget and the retries (see ``Client.get_task``
        for what is retried and raised). Every TaskwatchError it raises carries
        ``task_hash``, whichever layer raised it (the limiter's RateBudgetUnavailableError
        and ClientClosedError know no hash).

        With ``slot_taken``, the first attempt uses the slot ``take_slot()`` returned with
        (released on every path); retries take slots of their own."""
        # The common case (the key accepted, nothing refused, the same event loop) is one
        # coroutine, the send itself: no frame for the probe, the loop check or the retries
        # until an attempt fails.
        if (
            self._key_proven
            and self._refused is None
            and self._stale_session is None
            and asyncio.get_running_loop() is self._loop
        ):
            return self._send(url, task_hash, _HELD if slot_taken else _TAKE, True)
        return self._fetch(url, task_hash, slot_taken)

    def fetch_now(
        self, url: URL, task_hash: str, loop: asyncio.AbstractEventLoop
    ) -> Awaitable[Task] | None:
        """``fetch(url, task_hash)`` when room in flight and a budget slot are both free now
        (then held for it; the first attempt need not look for a pause begun since), else
        None, holding nothing. Raises at once when the client cannot send (closed, the
        session of another event loop) or the budget fails, the error carrying
        ``task_hash``. ``loop``: the running loop (the caller has looked it up already)."""
        try:
            if loop is not self._loop:
                self._follow_loop()
            gate = self._in_flight
            if not gate.try_enter():
                return None
            try:
                free = self.limiter.try_acquire()
            except BaseException:
                gate.leave()
                raise
            if not free:
                gate.leave()
                return None
        except TaskwatchError as exc:
            if exc.task_hash is None:
                exc.task_hash = task_hash
            raise
        if self._key_proven and self._refused is None and self._stale_session is None:
            return self._send(url, task_hash, _HELD_NOW, True)
        return self._fetch(url, task_hash, True)

    async def _fetch(self, url: URL, task_hash: str, slot_taken: bool) -> Task:
        """``fetch`` on the way of a client not yet known to be usable as it is (the key not
        proven yet, or refused; another event loop)."""
        try:
            try:
                return await self._attempt(url, task_hash, slot_taken)
            except _TRANSIENT as exc:
                if self._max_retries == 0 or not _is_transient(exc):
                    raise
                first_failure: TaskwatchError = exc
            return await self._retry(url, task_hash, first_failure)
        except TaskwatchError as exc:
            if exc.task_hash is None:
                exc.task_hash = task_hash
            raise

    async def _after_failure(self, url: URL, task_hash: str, failure: TaskwatchError) -> Task:
        """What a fetch whose first attempt failed with ``failure`` goes on to: the retries
        when it is transient, else ``failure`` raised (carrying ``task_hash``)."""
        try:
            if self._max_retries == 0 or not _is_transient(failure):
                raise failure
            return await self._retry(url, task_hash, failure)
        except TaskwatchError as exc:
            if exc.task_hash is None:
                exc.task_hash = task_hash
            raise

    async def _retry(self, url: URL, task_hash: str, first_failure: TaskwatchError) -> Task:
        retrying = tenacity.AsyncRetrying(
            stop=self._retry_stop,
            wait=self._retry_wait,
            retry=self._retry_if,
            reraise=True,
            sleep=self.sleep,
            before_sleep=self._before_retry,
        )
        pending: TaskwatchError | None = first_failure
        async for attempt in retrying:
            with attempt:
                if pending is not None:
                    failure, pending = pending, None
                    raise failure
                return await self._attempt(url, task_hash)
        raise AssertionError("tenacity ended without a result")  # pragma: no cover

    def _before_retry(self, retry_state: tenacity.RetryCallState) -> None:
        self.retries += 1
        outcome = retry_state.outcome
        if outcome is not None and logger.isEnabledFor(logging.INFO):
            # The error's text never holds the key; headers are never logged.
            logger.info(
                "retrying in %.2fs after attempt %d failed: %s",
                retry_state.upcoming_sleep,
                retry_state.attempt_number,
                outcome.exception(),
            )

    async def _attempt(self, url: URL, task_hash: str, slot_taken: bool = False) -> Task:
        handed = False  # the held slot (if any) went on to _send, which releases it
        slot = _HELD if slot_taken else _TAKE
        try:
            if asyncio.get_running_loop() is not self._loop or self._stale_session is not None:
                await self._adopt_loop()
            if self._refused is not None:
                raise self._refusal(task_hash)
            if self._key_proven:
                handed = True
                return await self._send(url, task_hash, slot, False)
            # Until one answer shows the API accepts the key, one attempt at a time: a
            # refused key costs one request, however many watches start at once.
            while not self._key_proven:
                probe = self._probe
                if probe is None:
                    probe = self._probe = asyncio.get_running_loop().create_future()
                    try:
                        handed = True
                        return await self._send(url, task_hash, slot, False)
                    finally:
                        self._probe = None
                        probe.set_result(None)
                await asyncio.wait([probe])  # never cancels the probe itself
                if self._refused is not None:
                    raise self._refusal(task_hash)
            handed = True
            return await self._send(url, task_hash, slot, False)
        except BaseException:
            if slot_taken and not handed:
                self._in_flight.leave()
            raise

    def _follow_loop(self) -> None:
        """Serve the running event loop from now on. A session, its connections and every
        future the client waits on belong to one loop; when a Client is reused in another
        (a second ``asyncio.run()``), its own session is set aside for a new one on this loop
        (``_adopt_loop`` closes it), and the gate and the probe start afresh. A caller's
        session cannot be replaced: that raises ConfigurationError."""
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return
        if self._loop is None:
            self._loop = loop
            return
        if not self._owns_session:
            raise ConfigurationError(
                "the aiohttp session given to this Client belongs to another event loop (was "
                "the Client reused in a second asyncio.run()?): create the session and the "
                "Client inside the event loop that uses them"
            )
        self.check_open()
        self._loop = loop
        self._stale_session, self._session = self._session, None
        self._in_flight = Gate(MAX_IN_FLIGHT)
        self._probe = None

    async def _adopt_loop(self) -> None:
        """``_follow_loop``, then close the previous loop's session as far as a dead loop
        allows."""
        self._follow_loop()
        old, self._stale_session = self._stale_session, None
        if old is not None and not old.closed:
            try:
                await old.close()
            except RuntimeError as exc:  # its loop is gone: nothing more can be done for it
                logger.debug("could not close the session of a previous event loop: %s", exc)
            logger.debug("the client moved to another event loop, on a new session")

    def _refusal(self, task_hash: str) -> AuthenticationError:
        """The error of a call on a client whose key the API refused: raised at once, without
        a request (the refusal is about the key, so it holds for every task)."""
        first = self._refused
        assert first is not None
        return AuthenticationError(
            f"{first.message} (the API refused this client's key earlier; nothing was sent: "
            "create a new Client with a valid key)",
            status=first.status,
            body=first.body,
            error_type=first.error_type,
            task_hash=task_hash,
        )

    def _session_for(self, task_hash: str) -> aiohttp.ClientSession:
        """The session to send on, once a request has its slot; raises when the key was
        refused while it waited (or the client was closed)."""
        if self._refused is not None:
            raise self._refusal(task_hash)
        session = self._session
        if session is None or session.closed or self._closed:
            session = self._get_session()
        return session

    async def _budget_slot(self) -> None:
        """A slot in the budget for the request about to be sent (see ``_send``)."""
        if not self.limiter.try_acquire():
            await self.limiter.acquire()
            raise_if_cancelling()  # a limiter may sit on a library that swallows it

    # One frame on every poll's path, on purpose: each helper split off would cost a call.
    async def _send(  # noqa: PLR0912
        self, url: URL, task_hash: str, slot: int, first: bool
    ) -> Task:
        """One attempt. ``slot``: ``_TAKE`` (take room in flight and a budget slot),
        ``_HELD`` (both held: see ``take_slot``) or ``_HELD_NOW`` (held, just granted). With
        ``first``, a failure goes on to the retries (``_after_failure``)."""
        try:
            # The gate first, the budget second: a request that had to wait for a free
            # connection still meets a pause that began meanwhile (a 429 holds every caller
            # whose request is not on the wire yet).
            gate = self._in_flight
            if slot == _TAKE and not gate.try_enter():
                await gate.enter()
            try:
                # A slot taken ahead (``take_slot``) before a pause began (a 429 handled
                # since) is not enough: the pause holds this request too, as it holds every
                # request not yet on the wire. One granted just now cannot predate a pause.
                if slot == _TAKE or (slot == _HELD and self.limiter.paused_for() > 0):
                    await self._budget_slot()
                session = self._session
                if session is None or self._refused is not None or self._closed or session.closed:
                    session = self._session_for(task_hash)
            except BaseException:
                gate.leave()
                raise
            self.requests += 1
            try:
                async with session.get(
                    url,
                    headers=self._request_headers,
                    timeout=self._timeout,
                    allow_redirects=False,  # the key never follows a redirect anywhere
                    raise_for_status=False,
                ) as response:
                    # A declared, uncompressed body under the cap: aiohttp's own read (it
                    # raises ClientPayloadError if what arrives is not what was declared).
                    declared = response.content_length
                    headers = response.headers
                    body = await (
                        response.read()
                        if declared is not None
                        and declared <= _MAX_BODY_BYTES
                        and _CONTENT_ENCODING not in headers
                        else _read_body(response, task_hash)
                    )
                    status, reason = response.status, response.reason
            except (asyncio.TimeoutError, TimeoutError, aiohttp.ClientError, OSError) as exc:
                self.transport_errors += 1
                raise self._transport_error(exc, task_hash) from exc
            finally:
                gate.leave()
            if not self._key_proven and _proves_the_key(status):
                self._key_proven = True
            # What the answer says of the budget is learnt even by a call being cancelled;
            # then a cancellation that aiohttp or a limiter below swallowed is raised, not
            # ignored.
            if status == 200:
                info = _protocol.RateLimitInfo.from_headers(headers)
                if info is not None:  # (``_learn``, without its frame)
                    self.server_remaining = info.remaining
                    self.server_reset = info.reset
                    learning = self.limiter.observe(info)
                    if learning is not None:
                        await learning
                # (every way here has checked that the loop running is ``self._loop``)
                raise_if_cancelling(self._loop)
                task, deviations = _protocol.read_task(body, task_hash)
                if deviations:
                    self._note_deviations(deviations)
                return task
            error = await self._error(status, reason, headers, body, task_hash)
            raise_if_cancelling()
            raise error
        except TaskwatchError as exc:
            if not first:
                raise
            failure = exc
        return await self._after_failure(url, task_hash, failure)

    def _transport_error(self, exc: BaseException, task_hash: str) -> TransportError:
        """What an attempt that got no usable HTTP answer raises (the key redacted first)."""
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):  # one class from 3.11 on
            return TransportError(
                f"no complete answer within {self._timeout_seconds:g}s (per-attempt timeout)",
                task_hash=task_hash,
            )
        if isinstance(exc, aiohttp.ClientSSLError):  # the handshake: certificate or protocol
            return TLSError(f"could not reach the API: {_describe(exc)}", task_hash=task_hash)
        if isinstance(exc, aiohttp.ClientPayloadError):
            return TransportError(f"the response was cut off: {exc}", task_hash=task_hash)
        if isinstance(exc, aiohttp.ClientResponseError):  # a malformed answer (bad status...)
            _redact(exc)
            return TransportError(
                f"the API sent a malformed answer: {type(exc).__name__}: {exc}",
                task_hash=task_hash,
            )
        return TransportError(f"could not reach the API: {_describe(exc)}", task_hash=task_hash)

    def _note_deviations(self, deviations: list[str]) -> None:
        """Count each kind of deviation from the documented body; log the kinds never seen
        before on this client in one WARNING (fields and kinds only, never values)."""
        counts = self.deviations
        new = [kind for kind in dict.fromkeys(deviations) if kind not in counts]
        for kind in deviations:
            counts[kind] = counts.get(kind, 0) + 1
        self.off_contract += 1
        if new:
            logger.warning(
                "the API's task body differs from the documented shape (each kind is logged "
                "once per client and counted in Client.stats().deviations): %s",
                "; ".join(new),
            )

    def _learn(self, info: _protocol.RateLimitInfo) -> Awaitable[None] | None:
        """Pass the headers to the limiter; returns what a shared limiter needs awaited."""
        self.server_remaining = info.remaining
        self.server_reset = info.reset
        return self.limiter.observe(info)

    async def _error(
        self,
        status: int,
        reason: str | None,
        headers: Any,
        body: bytes,
        task_hash: str,
    ) -> APIError:
        """The error an answer means, after learning what it says about the budget (a 429
        pauses the limiter, and a shared limiter has told the other processes on return)."""
        info = _protocol.RateLimitInfo.from_headers(headers)
        if info is not None and (learning := self._learn(info)) is not None:
            await learning
        error = _protocol.error_for(
            status, reason, headers, body, task_hash=task_hash, now=self.wall_clock()
        )
        if isinstance(error, RateLimitError):
            self.rate_limited += 1
            pause = error.retry_after
            publishing = self.limiter.pause(_DEFAULT_RATE_LIMIT_PAUSE if pause is None else pause)
            if publishing is not None:
                await publishing
        elif isinstance(error, ServerError):
            self.server_errors += 1
        elif isinstance(error, AuthenticationError) and self._refused is None:
            self._refused = error  # every later call fails fast, without a request
        return error


def _proves_the_key(status: int) -> bool:
    """Whether an answer shows the API accepted the key: a 2xx, or a 4xx about the request
    rather than the key (400, 403, 404...). A 401 refuses it; a 429, a 5xx or a redirect may
    come before authentication, so they prove nothing."""
    return 200 <= status < 300 or (400 <= status < 500 and status not in (401, 429))


def _in_flight_size(session: aiohttp.ClientSession | None) -> int:
    """Requests in flight at once: MAX_IN_FLIGHT, or fewer when a caller's session pools
    fewer connections (else the surplus would queue inside aiohttp, past the gate)."""
    connector = session.connector if session is not None else None
    limits = [MAX_IN_FLIGHT]
    if connector is not None:
        limits += [n for n in (connector.limit, connector.limit_per_host) if n > 0]
    return min(limits)


def _describe(exc: BaseException) -> str:
    """A connection failure in words: where, and why (aiohttp's own text says ``ssl:default``
    even for plain http)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        error = exc.certificate_error
        reason = getattr(error, "verify_message", None) or getattr(error, "reason", None) or error
        return (
            f"the TLS handshake with {exc.host}:{exc.port} failed: its certificate was refused "
            f"({reason}); give the Client a session whose SSL context trusts it"
        )
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        reason = getattr(exc.os_error, "reason", None) or exc.os_error
        return (
            f"the TLS handshake with {exc.host}:{exc.port} failed ({reason}); "
            "is the server speaking https?"
        )
    if isinstance(exc, aiohttp.ClientConnectorError) and not isinstance(
        exc, aiohttp.ClientConnectorCertificateError
    ):
        error = exc.os_error
        why = os.strerror(error.errno) if error.errno else str(error) or type(error).__name__
        return f"could not connect to {exc.host}:{exc.port}: {why}"
    return f"{type(exc).__name__}: {exc}"


def _redact(exc: aiohttp.ClientResponseError) -> None:
    """aiohttp's error keeps the request's headers (``request_info``, also in ``args`` and
    so in its repr): replace the Authorization value before the error goes anywhere."""
    info = exc.request_info
    headers = CIMultiDict(info.headers)
    if "Authorization" in headers:
        headers["Authorization"] = "Token <redacted>"
    exc.request_info = aiohttp.RequestInfo(
        info.url, info.method, CIMultiDictProxy(headers), info.real_url
    )
    exc.args = (exc.request_info, *exc.args[1:])


async def _read_body(response: aiohttp.ClientResponse, task_hash: str) -> bytes:
    """The whole body, refusing more than MAX_BODY_BYTES (checked as it streams in, so a
    compressed or chunked body cannot exhaust memory either)."""
    limit = _protocol.MAX_BODY_BYTES
    declared = response.content_length
    if declared is not None:
        if declared > limit:
            raise _protocol.too_large(task_hash, declared)
        if _CONTENT_ENCODING not in response.headers:
            # Declared, uncompressed and under the cap: what arrives is what was declared
            # (aiohttp raises ClientPayloadError on a mismatch), so read it in one go.
            return await response.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise _protocol.too_large(task_hash, size)
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
