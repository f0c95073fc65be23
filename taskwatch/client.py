"""The async client: a thin face on the request path (``_request``) and the watches.

``Client`` checks its settings, owns one ``RequestPath`` (session, budget, retries, counters)
and hands it to the watches of ``_watch``; nothing below imports this module.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterable, Mapping
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING

import aiohttp
import attrs

from . import _protocol
from ._config import resolve_api_key
from ._policy import ChangeKey
from ._request import RequestPath
from ._scheduler import Scheduler
from ._version import __version__
from ._watch import wait_task, watch_many, watch_task
from .errors import ConfigurationError, TaskwatchError
from .ratelimit import Limiter, RateLimiter

if TYPE_CHECKING:
    from .models import Task

__all__ = ["DEFAULT_BASE_URL", "Client", "ClientStats"]

DEFAULT_BASE_URL = "https://api.lobstr.io/v1"
"""The API root a Client talks to unless given ``base_url``."""


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
        self._path = RequestPath(
            self._base_url,
            self._headers,
            session,
            timeout=timeout,
            max_retries=max_retries,
            retry_initial_wait=retry_initial_wait,
            retry_max_wait=retry_max_wait,
            limiter=self._limiter,
        )
        self._scheduler = Scheduler(self._path)

    # The clock, sleep and random source of every layer (tests replace them).

    @property
    def _clock(self) -> Callable[[], float]:
        return self._path.clock

    @_clock.setter
    def _clock(self, clock: Callable[[], float]) -> None:
        self._path.clock = clock

    @property
    def _sleep(self) -> Callable[[float], Awaitable[None]]:
        return self._path.sleep

    @_sleep.setter
    def _sleep(self, sleep: Callable[[float], Awaitable[None]]) -> None:
        self._path.sleep = sleep

    @property
    def _random(self) -> Callable[[], float]:
        return self._path.random

    @_random.setter
    def _random(self, source: Callable[[], float]) -> None:
        self._path.random = source

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        self._path.check_open()
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
        await self._path.aclose()

    @property
    def closed(self) -> bool:
        """True after ``aclose()``."""
        return self._path.closed

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
        state = "closed" if self._path.closed else "open"
        return (
            f"<taskwatch.Client base_url={str(self._base_url)!r} "
            f"requests_per_minute={self._limiter.requests_per_minute!r} {state}>"
        )

    @property
    def _session(self) -> aiohttp.ClientSession | None:
        return self._path.session

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
        return await self._scheduler.get(task_hash)

    # -- telemetry -------------------------------------------------------------------------

    def stats(self) -> ClientStats:
        """The client's counters and budget right now (see ClientStats)."""
        path = self._path
        return ClientStats(
            requests=path.requests,
            retries=path.retries,
            rate_limited=path.rate_limited,
            server_errors=path.server_errors,
            transport_errors=path.transport_errors,
            requests_per_minute=self._limiter.requests_per_minute,
            server_limit=self._limiter.server_limit,
            server_remaining=path.server_remaining,
            server_reset=path.server_reset,
            paused_for=self._limiter.paused_for(),
            waiting=self._limiter.waiting,
            live_watches=self._scheduler.live_watches,
            off_contract_bodies=path.off_contract,
            deviations=MappingProxyType(dict(path.deviations)),
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
            self._scheduler,
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
            self._scheduler,
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
            self._scheduler,
            task_hashes,
            min_interval=min_interval,
            max_interval=max_interval,
            timeout=timeout,
            key=key,
            on_error=on_error,
        )
