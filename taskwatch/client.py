"""The async client: one aiohttp session, one rate budget, typed results and errors.

A request goes: limiter -> one GET on a pooled connection (the only place aiohttp and asyncio
exceptions are turned into ``TransportError``) -> bytes -> ``_protocol.decode_task``. Transient
failures are retried with tenacity; the first attempt runs outside tenacity so that a poll that
succeeds pays nothing for the retry machinery.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import random
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
)
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any

import aiohttp
import attrs
import tenacity
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from . import _protocol
from ._cancel import raise_if_cancelling
from ._config import resolve_api_key
from ._policy import ChangeKey
from ._version import __version__
from ._watch import wait_task, watch_many, watch_task
from .errors import (
    APIError,
    AuthenticationError,
    ClientClosedError,
    ConfigurationError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    TaskwatchError,
    TransportError,
)
from .ratelimit import Limiter, RateLimiter

if TYPE_CHECKING:
    from .models import Task

__all__ = ["DEFAULT_BASE_URL", "Client", "ClientStats"]

DEFAULT_BASE_URL = "https://api.lobstr.io/v1"
"""The API root a Client talks to unless given ``base_url``."""

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

_CLOSED = "this taskwatch Client is closed; create a new one"

_TRANSIENT = (TransportError, ServerError, RateLimitError, ResponseFormatError)


def _is_transient(exc: BaseException) -> bool:
    """Transient: no HTTP answer, 5xx, 429, or a 200 body cut off mid-JSON. Nothing else:
    a 4xx or a programming error must surface, never be retried forever."""
    if isinstance(exc, ResponseFormatError):
        return exc.truncated
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


class _Gate:
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


@attrs.frozen(slots=True)
class ClientStats:
    """A snapshot of one client's traffic and budget, for progress displays and metrics.

    Attributes:
        requests: HTTP requests sent (every attempt counts).
        retries: attempts that were retries of a transient failure.
        rate_limited: 429 answers received.
        server_errors: 5xx answers received.
        transport_errors: attempts that got no HTTP answer (connection failures, timeouts).
        requests_per_minute: the pace in force (None: no client-side cap).
        server_limit / server_remaining / server_reset: the last ``X-RateLimit-*`` values seen
            (reset is a UNIX timestamp), or None.
        paused_for: seconds left in a server-imposed pause.
        waiting: requests waiting for a slot in the budget right now.
        live_watches: watches currently running on this client.
        off_contract_bodies: task bodies that deviated from the documented shape (each was
            still read; see ``deviations``).
        deviations: how many bodies showed each kind of deviation, by field and kind (for
            example ``"status.is_done: absent, done-ness read from the state"``); empty while
            every answer has the documented shape.
    """

    requests: int
    retries: int
    rate_limited: int
    server_errors: int
    transport_errors: int
    requests_per_minute: float | None
    server_limit: int | None
    server_remaining: int | None
    server_reset: float | None
    paused_for: float
    waiting: int
    live_watches: int
    off_contract_bodies: int = 0
    deviations: Mapping[str, int] = attrs.field(factory=dict)


class Client:
    """An async client for the Lobstr.io task API.

    Use it as ``async with Client() as client: ...`` (or call ``aclose()``). One client holds
    one connection pool and one rate budget shared by every call and every watch on it.

    Args:
        api_key: the API key; else ``$LOBSTR_TOKEN``; else ``[auth] token`` in
            ``$XDG_CONFIG_HOME/lobstr/config.toml``. ConfigurationError when none is found.
        base_url: the API root (default ``https://api.lobstr.io/v1``).
        session: an ``aiohttp.ClientSession`` you own and close yourself; by default the client
            creates one on first use and closes it in ``aclose()``.
        timeout: seconds allowed for one attempt (connect, send, read the whole body).
        max_retries: retries after a transient failure (so at most ``max_retries + 1``
            requests per call); 0 disables retries.
        requests_per_minute: the client-side cap shared by all calls (default 90, the documented
            limit of /v1/tasks); None for no cap.
        retry_initial_wait: the first wait of the exponential backoff between retries, in
            seconds (jittered; a server's ``Retry-After`` of at most 120 s takes precedence, a
            longer one is ignored).
        retry_max_wait: the longest wait of that backoff, in seconds.
        allow_insecure_http: allow ``http://`` to a host other than loopback (the key would
            travel in clear text); refused by default.
        limiter: the rate budget to use instead of a ``RateLimiter(requests_per_minute)`` of
            the client's own (any ``taskwatch.Limiter``; ``requests_per_minute`` is then not
            used).

    Raises:
        ConfigurationError: no key, or a base_url/setting that cannot work.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 30.0,
        max_retries: int = 5,
        requests_per_minute: float | None = 90.0,
        retry_initial_wait: float = 0.5,
        retry_max_wait: float = 30.0,
        allow_insecure_http: bool = False,
        limiter: Limiter | None = None,
    ) -> None:
        try:
            self._base_url = _protocol.normalise_base_url(base_url)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if (
            self._base_url.scheme == "http"
            and not allow_insecure_http
            and not _protocol.is_loopback_host(self._base_url.host)
        ):
            raise ConfigurationError(
                f"refusing to send the API key in clear text to {self._base_url.host}: use "
                "https, or pass allow_insecure_http=True if you really mean it"
            )
        if not timeout > 0:
            raise ConfigurationError("timeout must be a positive number of seconds")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError("max_retries must be a non-negative integer")
        if not 0 <= retry_initial_wait <= retry_max_wait:
            raise ConfigurationError("need 0 <= retry_initial_wait <= retry_max_wait")
        try:
            self._limiter: Limiter = (
                limiter if limiter is not None else RateLimiter(requests_per_minute)
            )
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        self._headers = _protocol.auth_headers(
            resolve_api_key(api_key), user_agent=f"taskwatch/{__version__}"
        )
        self._session = session
        # Sent with each request only on a caller's session (ours has them as defaults).
        self._request_headers: dict[str, str] | None = self._headers
        self._urls: dict[str, URL] = {}
        self._in_flight = _Gate(_in_flight_size(session))
        self._owns_session = session is None
        self._closed = False
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._timeout_seconds = timeout
        self._max_retries = max_retries
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self._random: Callable[[], float] = random.random
        self._clock: Callable[[], float] = time.monotonic
        self._wall_clock: Callable[[], float] = time.time
        self._retry_stop = tenacity.stop_after_attempt(max_retries + 1)
        self._retry_wait = _PreferRetryAfter(
            # wait_exponential + wait_random rather than wait_exponential_jitter, whose
            # arguments changed across tenacity releases.
            tenacity.wait_exponential(multiplier=retry_initial_wait, max=retry_max_wait)
            + tenacity.wait_random(0, retry_initial_wait)
        )
        self._retry_if = tenacity.retry_if_exception(_is_transient)
        self._requests = 0
        self._retries = 0
        self._rate_limited = 0
        self._server_errors = 0
        self._transport_errors = 0
        self._server_remaining: int | None = None
        self._server_reset: float | None = None
        self._live_watches = 0
        self._deviations: dict[str, int] = {}
        self._off_contract = 0
        # A refused key (401) is about every task: the first refusal, kept to fail fast.
        self._refused: AuthenticationError | None = None
        self._key_proven = False  # an answer has shown the API accepts the key
        self._probe: asyncio.Future[None] | None = None  # the attempt that may prove it
        # The event loop the session, the gate and the probe belong to (see _adopt_loop).
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client: its own session is closed, a caller's session is left open.

        Idempotent. Any later call raises ClientClosedError.
        """
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session and not session.closed:
            await session.close()

    @property
    def closed(self) -> bool:
        """True after ``aclose()``."""
        return self._closed

    @property
    def base_url(self) -> str:
        """The API root every request goes to."""
        return str(self._base_url)

    @property
    def limiter(self) -> Limiter:
        """The rate budget shared by every request of this client."""
        return self._limiter

    def __repr__(self) -> str:
        # Never the key: it lives only in the request headers.
        state = "closed" if self._closed else "open"
        return (
            f"<taskwatch.Client base_url={str(self._base_url)!r} "
            f"requests_per_minute={self._limiter.requests_per_minute!r} {state}>"
        )

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError(_CLOSED)

    def _get_session(self) -> aiohttp.ClientSession:
        self._check_open()
        session = self._session
        if session is None:
            # Our own session carries the headers, so a request need not merge them in again.
            session = aiohttp.ClientSession(headers=self._headers)
            self._session = session
            self._request_headers = None
        elif session.closed:
            raise ClientClosedError("the aiohttp session given to this Client is closed")
        return session

    # -- requests --------------------------------------------------------------------------

    async def get_task(self, task_hash: str) -> Task:
        """Fetch one task.

        Returns the Task as the API reports it now. Transient failures (no answer, timeouts,
        5xx, 429, a body cut off) are retried up to ``max_retries`` times with backoff, honouring
        ``Retry-After``; then the last failure is raised.

        Raises:
            InvalidTaskHashError: the hash is not one safe path segment (nothing is sent).
            APIError: a permanent error (``AuthenticationError``, ``PermissionDeniedError``,
                ``NotFoundError``, ``BadRequestError``, ...), raised after exactly one request.
                A 401 refuses the key, so it holds for the whole client: from then on every
                call raises AuthenticationError at once, without a request (make a new Client
                with a valid key). Until a first answer shows the key is accepted, the client
                sends one attempt at a time, so a refused key costs one request.
            TaskwatchError: ``RateLimitError``, ``ServerError``, ``TransportError`` or
                ``ResponseFormatError``, after the retries.
            ClientClosedError: the client is closed.
        """
        url = self._urls.get(task_hash)
        if url is None:
            url = self._url_for(task_hash)
        if self._closed:
            raise ClientClosedError(_CLOSED, task_hash=task_hash)
        return await self._fetch(url, task_hash)

    def _url_for(self, task_hash: str) -> URL:
        """The task's URL (validating the hash), remembered for the next call."""
        url = _protocol.task_url(self._base_url, task_hash)
        if len(self._urls) >= _URL_CACHE_SIZE:
            self._urls.clear()
        self._urls[task_hash] = url
        return url

    async def _fetch(self, url: URL, task_hash: str) -> Task:
        """One task through the budget and the retries (what get_task and every watch poll
        do). Every TaskwatchError it raises carries ``task_hash``, whichever layer raised it
        (the limiter's RateBudgetUnavailableError and ClientClosedError know no hash)."""
        try:
            try:
                if self._key_proven and asyncio.get_running_loop() is self._loop:
                    return await self._send(url, task_hash)
                return await self._attempt(url, task_hash)
            except _TRANSIENT as exc:
                if self._max_retries == 0 or not _is_transient(exc):
                    raise
                first_failure: TaskwatchError = exc
            return await self._retry(url, task_hash, first_failure)
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
            sleep=self._sleep,
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
        self._retries += 1
        outcome = retry_state.outcome
        if outcome is not None and logger.isEnabledFor(logging.INFO):
            # The error's text never holds the key; headers are never logged.
            logger.info(
                "retrying in %.2fs after attempt %d failed: %s",
                retry_state.upcoming_sleep,
                retry_state.attempt_number,
                outcome.exception(),
            )

    async def _before_attempt(self, task_hash: str) -> asyncio.Future[None] | None:
        """What an attempt does first, off the common path: move to a new event loop, fail
        fast on a refused key, and, until an answer shows the API accepts the key, let one
        attempt at a time through (a refused key costs one request however many watches
        start at once). Returns the future to resolve once the answer is in when this attempt
        is the one that may prove the key, else None."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            await self._adopt_loop(task_hash)
        while True:
            if self._refused is not None:
                raise self._refusal(task_hash)
            if self._key_proven:
                return None
            probe = self._probe
            if probe is None:
                probe = self._probe = loop.create_future()
                return probe
            await asyncio.wait([probe])  # never cancels the probe itself

    async def _adopt_loop(self, task_hash: str) -> None:
        """Serve the running event loop from now on. A session, its connections and every
        future the client waits on belong to one loop; when a Client is reused in another
        (a second ``asyncio.run()``), its own session is replaced by a new one on this loop
        (the old one closed as far as a dead loop allows). A caller's session cannot be
        replaced: that raises ConfigurationError."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            return
        if not self._owns_session:
            raise ConfigurationError(
                "the aiohttp session given to this Client belongs to another event loop (was "
                "the Client reused in a second asyncio.run()?): create the session and the "
                "Client inside the event loop that uses them",
                task_hash=task_hash,
            )
        self._check_open()
        self._loop = loop
        old, self._session = self._session, None
        self._in_flight = _Gate(MAX_IN_FLIGHT)
        self._probe = None
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

    async def _attempt(self, url: URL, task_hash: str) -> Task:
        """One attempt in any state of the client (``_fetch`` calls ``_send`` itself on the
        common path: the key accepted, on the same event loop)."""
        probe = await self._before_attempt(task_hash)
        try:
            return await self._send(url, task_hash)
        finally:
            if probe is not None:
                self._probe = None
                probe.set_result(None)

    async def _send(self, url: URL, task_hash: str) -> Task:
        # The gate first, the budget second: a request that had to wait for a free
        # connection still meets a pause that began meanwhile (a 429 holds every caller
        # whose request is not on the wire yet).
        gate = self._in_flight
        if not gate.try_enter():
            await gate.enter()
        try:
            if not self._limiter.try_acquire():
                await self._limiter.acquire()
                raise_if_cancelling()  # a limiter may sit on a library that swallows it
            session = self._session_for(task_hash)
        except BaseException:
            gate.leave()
            raise
        self._requests += 1
        try:
            async with session.get(
                url,
                headers=self._request_headers,
                timeout=self._timeout,
                allow_redirects=False,  # the key never follows a redirect anywhere
                raise_for_status=False,
            ) as response:
                body = await _read_body(response, task_hash)
                status, reason, headers = response.status, response.reason, response.headers
        except (asyncio.TimeoutError, TimeoutError) as exc:  # one class from Python 3.11 on
            self._transport_errors += 1
            raise TransportError(
                f"no complete answer within {self._timeout_seconds:g}s (per-attempt timeout)",
                task_hash=task_hash,
            ) from exc
        except aiohttp.ClientPayloadError as exc:
            self._transport_errors += 1
            raise TransportError(f"the response was cut off: {exc}", task_hash=task_hash) from exc
        except aiohttp.ClientResponseError as exc:  # a malformed answer (bad status line...)
            self._transport_errors += 1
            _redact(exc)
            raise TransportError(
                f"the API sent a malformed answer: {type(exc).__name__}: {exc}",
                task_hash=task_hash,
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            self._transport_errors += 1
            raise TransportError(
                f"could not reach the API: {_describe(exc)}", task_hash=task_hash
            ) from exc
        finally:
            gate.leave()
        if not self._key_proven and _proves_the_key(status):
            self._key_proven = True
        # What the answer says of the budget is learnt even by a call being cancelled; then a
        # cancellation that aiohttp or a limiter below swallowed is raised, not ignored.
        if status == 200:
            info = _protocol.RateLimitInfo.from_headers(headers)
            if info is not None and (learning := self._learn(info)) is not None:
                await learning
            raise_if_cancelling()
            task, deviations = _protocol.read_task(body, task_hash)
            if deviations:
                self._note_deviations(deviations)
            return task
        error = await self._error(status, reason, headers, body, task_hash)
        raise_if_cancelling()
        raise error

    def _note_deviations(self, deviations: list[str]) -> None:
        """Count each kind of deviation from the documented body; log the kinds never seen
        before on this client in one WARNING (fields and kinds only, never values)."""
        counts = self._deviations
        new = [kind for kind in dict.fromkeys(deviations) if kind not in counts]
        for kind in deviations:
            counts[kind] = counts.get(kind, 0) + 1
        self._off_contract += 1
        if new:
            logger.warning(
                "the API's task body differs from the documented shape (each kind is logged "
                "once per client and counted in Client.stats().deviations): %s",
                "; ".join(new),
            )

    def _learn(self, info: _protocol.RateLimitInfo) -> Awaitable[None] | None:
        """Pass the headers to the limiter; returns what a shared limiter needs awaited."""
        self._server_remaining = info.remaining
        self._server_reset = info.reset
        return self._limiter.observe(info)

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
            status, reason, headers, body, task_hash=task_hash, now=self._wall_clock()
        )
        if isinstance(error, RateLimitError):
            self._rate_limited += 1
            pause = error.retry_after
            publishing = self._limiter.pause(_DEFAULT_RATE_LIMIT_PAUSE if pause is None else pause)
            if publishing is not None:
                await publishing
        elif isinstance(error, ServerError):
            self._server_errors += 1
        elif isinstance(error, AuthenticationError) and self._refused is None:
            self._refused = error  # every later call fails fast, without a request
            self._key_proven = False  # off the common path, onto the one that refuses
        return error

    # -- telemetry -------------------------------------------------------------------------

    def stats(self) -> ClientStats:
        """The client's counters and budget right now (see ClientStats)."""
        return ClientStats(
            requests=self._requests,
            retries=self._retries,
            rate_limited=self._rate_limited,
            server_errors=self._server_errors,
            transport_errors=self._transport_errors,
            requests_per_minute=self._limiter.requests_per_minute,
            server_limit=self._limiter.server_limit,
            server_remaining=self._server_remaining,
            server_reset=self._server_reset,
            paused_for=self._limiter.paused_for(),
            waiting=self._limiter.waiting,
            live_watches=self._live_watches,
            off_contract_bodies=self._off_contract,
            deviations=MappingProxyType(dict(self._deviations)),
        )

    # -- watching (see watch.py) -----------------------------------------------------------

    def watch(
        self,
        task_hash: str,
        *,
        min_interval: float = 1.0,
        max_interval: float = 30.0,
        timeout: float | None = None,
        key: ChangeKey | None = None,
    ) -> AsyncGenerator[Task, None]:
        """Poll one task until it is done, yielding snapshots; see ``taskwatch.watch``."""
        return watch_task(
            self,
            task_hash,
            min_interval=min_interval,
            max_interval=max_interval,
            timeout=timeout,
            key=key,
        )

    async def wait(
        self,
        task_hash: str,
        *,
        min_interval: float = 1.0,
        max_interval: float = 30.0,
        timeout: float | None = None,
        raise_on_failure: bool = False,
    ) -> Task:
        """Wait until one task is done and return its terminal snapshot; see ``taskwatch.wait``."""
        return await wait_task(
            self,
            task_hash,
            min_interval=min_interval,
            max_interval=max_interval,
            timeout=timeout,
            raise_on_failure=raise_on_failure,
        )

    def watch_many(
        self,
        task_hashes: Iterable[str] | AsyncIterable[str],
        *,
        min_interval: float = 1.0,
        max_interval: float = 30.0,
        timeout: float | None = None,
        key: ChangeKey | None = None,
        on_error: Callable[[str, TaskwatchError], object] | None = None,
    ) -> AsyncGenerator[Task, None]:
        """Watch many tasks concurrently on this client's budget; see ``taskwatch.watch_many``."""
        return watch_many(
            self,
            task_hashes,
            min_interval=min_interval,
            max_interval=max_interval,
            timeout=timeout,
            key=key,
            on_error=on_error,
        )


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
        if "Content-Encoding" not in response.headers:
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
