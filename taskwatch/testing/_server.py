"""The simulated API's server: a real aiohttp server on localhost, its clock, its rate
window, its counters and its handler."""

from __future__ import annotations

import asyncio
import bisect
import copy
import itertools
import json
import math
import random
import secrets
import select
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from types import TracebackType
from typing import Any, Literal

import attrs
from aiohttp import web

from .._dialects import DIALECTS, Dialect
from ._bodies import (
    INVALID_TOKEN,
    JSON_CT,
    NO_CREDENTIALS,
    RATE_LIMITED,
    default_error_body,
    dumps,
    iso,
)
from ._faults import ArmedFault, Fault, RandomFaults
from ._script import DEFAULT_OUTCOMES, OUTCOMES, PENDING, ScriptStep, random_script

_DOCUMENTED = Dialect()


@attrs.frozen
class SimulatorStats:
    """A snapshot of the simulator's counters, taken by :attr:`SimulatedTaskAPI.stats`.

    Every request that reached the task endpoint counts, whatever its outcome.
    """

    requests: int
    """All requests to ``/v1/tasks/{task_hash}``."""
    by_status: Mapping[int, int]
    """Responses by HTTP status, for every response whose status line was sent
    (including truncated and slowly dripped ones)."""
    responses_429: int
    """Responses with status 429, from the rate limit or from injected faults."""
    faults_injected: int
    """Requests that were given an injected fault."""
    by_hash: Mapping[str, int]
    """Requests per task hash (as decoded from the path), known or not."""
    in_flight: int
    """Requests being handled when the snapshot was taken."""
    peak_in_flight: int
    """The largest number of requests handled at the same time."""
    disconnects: int
    """Connections the server closed without a complete response (drop, truncated,
    and hangs, delays or drips cut short by :meth:`SimulatedTaskAPI.close`)."""
    random_faults: int = 0
    """How many of ``faults_injected`` were drawn by :meth:`SimulatedTaskAPI.inject_randomly`."""
    faults_by_kind: Mapping[str, int] = attrs.Factory(dict)
    """Injected faults by :attr:`Fault.kind` (``"status"``, ``"drop"``, ...), whether
    injected with :meth:`SimulatedTaskAPI.inject` or at random."""
    open_connections: int = 0
    """Client connections open to the server when the snapshot was taken (idle
    keep-alive connections included; 0 once the server is closed)."""
    peak_connections: int = 0
    """The most client connections seen open at once, sampled as each request arrives.
    A connection the client has already hung up on is not counted, even while the
    server has yet to read its end: the figure is what the client holds."""


@attrs.define
class _Counters:
    requests: int = 0
    by_status: dict[int, int] = attrs.Factory(dict)
    responses_429: int = 0
    faults_injected: int = 0
    by_hash: dict[str, int] = attrs.Factory(dict)
    in_flight: int = 0
    peak_in_flight: int = 0
    disconnects: int = 0
    random_faults: int = 0
    faults_by_kind: dict[str, int] = attrs.Factory(dict)
    peak_connections: int = 0


@attrs.define
class _Task:
    task_hash: str
    script: tuple[ScriptStep, ...]
    ats: list[float]
    added_at: float
    params: dict[str, Any]
    module: int
    started_index: int | None
    done_index: int | None


@attrs.define
class _Window:
    start: float
    count: int = 0


@attrs.define
class _RateDecision:
    allowed: bool
    headers: dict[str, str]
    retry_after: int


@attrs.define
class _Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class SimulatedTaskAPI:
    """A simulated Lobstr.io task API: a real aiohttp server on ``host:port``.

    It serves ``GET /v1/tasks/{task_hash}`` as documented:

    * ``Authorization: Token KEY`` must match :attr:`api_key` exactly, else 401 with
      ``{"detail": "Authentication credentials were not provided."}`` (no header) or
      ``{"detail": "Invalid token."}`` (any other value).
    * An unknown hash gets 404 with the documented not-found body (500 in a dialect with
      ``unknown_hash_status=500``); the hash is the percent-decoded path segment
      (``/v1/tasks/a%2Fb`` looks up ``"a/b"``).
    * A known hash gets 200 with the documented task body (see :meth:`snapshot`).
    * With a ``rate_limit``, every response carries ``X-RateLimit-Limit`` (per minute, as
      documented: ``rate_limit * 60 / rate_window``, so a compressed window states the
      same budget), ``X-RateLimit-Remaining`` (in the window) and ``X-RateLimit-Reset``
      (integer UNIX time of the current window's end). Every request reaching the
      handler counts in a fixed window of ``rate_window`` seconds that starts at a key's
      first request, per
      presented ``Authorization`` value. Over the limit, a request gets 429 with
      ``Retry-After`` (whole seconds to the window's end, at least 1) and the
      documented rate-limit body. A 401 takes precedence over a 429, a 429 over a 404.

    Simulated time runs ``speed`` times faster than ``clock`` (real seconds by default)
    and starts at 0 when the simulator is created. Rate-limit windows and fault delays
    use real seconds (``clock`` and the event loop respectively). Pass a fake ``clock``
    to drive tasks and rate windows deterministically without sleeping.

    Use it with ``async with`` or call :meth:`start` and :meth:`close`. A simulator can be
    started once; tasks can be added and faults injected before or after starting.
    Not thread-safe: use it from the event loop that started it.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        rate_limit: int | None = 90,
        rate_window: float = 60.0,
        speed: float = 1.0,
        seed: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
        dialect: Dialect | str = "documented",
    ) -> None:
        """Configure the simulator; nothing listens until :meth:`start`.

        ``api_key`` defaults to ``"sim-"`` plus 32 random hex characters.
        ``rate_limit`` is requests per window per key (``None``: unlimited).
        ``speed`` (>= 0) is simulated seconds per real second. ``seed`` makes generated
        task hashes and :meth:`add_random_tasks` reproducible. ``port`` 0 picks a free port.
        ``dialect`` shapes the answers as the real service does beside its documentation: a
        :class:`Dialect`, or the name of one in :data:`DIALECTS` (``"documented"``,
        ``"sdk"``, ``"cli-live"``, ``"run-task"``, ``"everything"``).
        """
        if rate_limit is not None and rate_limit < 1:
            raise ValueError(f"rate_limit must be >= 1 or None, got {rate_limit!r}")
        if rate_window <= 0:
            raise ValueError(f"rate_window must be > 0, got {rate_window!r}")
        if speed < 0:
            raise ValueError(f"speed must be >= 0, got {speed!r}")
        if isinstance(dialect, str):
            if dialect not in DIALECTS:
                raise ValueError(f"dialect must be one of {sorted(DIALECTS)}, got {dialect!r}")
            dialect = DIALECTS[dialect]
        self._dialect = dialect
        self._api_key = api_key if api_key is not None else "sim-" + secrets.token_hex(16)
        self._rate_limit = rate_limit
        self._rate_window = float(rate_window)
        self._speed = float(speed)
        self._rng = random.Random(seed)
        self._host = host
        self._requested_port = port
        self._clock = clock
        self._clock_anchor = clock()
        self._sim_anchor = 0.0
        self._wall_origin = datetime.now(timezone.utc).replace(tzinfo=None)
        self._tasks: dict[str, _Task] = {}
        self._faults: list[ArmedFault] = []
        self._random_faults: RandomFaults | None = None
        self._windows: dict[str, _Window] = {}
        self._counters = _Counters()
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self._port: int | None = None
        self._url_host = host
        self._state: Literal["new", "started", "closed"] = "new"

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening. Raises ``RuntimeError`` if already started or closed."""
        if self._state != "new":
            raise RuntimeError(f"SimulatedTaskAPI cannot be started: it is {self._state}")
        self._state = "started"
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_get("/v1/tasks/{task_hash}", self._handle)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=2.0
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._requested_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            self._state = "closed"
            raise
        self._runner = runner
        address = runner.addresses[0]
        bound = str(address[0])
        self._url_host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(bound, bound)
        self._port = int(address[1])

    async def close(self) -> None:
        """Stop the server and close every connection; calling it again does nothing.

        Requests held by :meth:`Fault.hang`, :meth:`Fault.delay` or
        :meth:`Fault.slow_drip` are ended at once by closing their connections, so no
        handler, task or transport outlives this call.
        """
        if self._state != "started":
            self._state = "closed"
            return
        self._state = "closed"
        if self._closing is not None:
            self._closing.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> SimulatedTaskAPI:
        """Start the server (see :meth:`start`) and return the simulator."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the server (see :meth:`close`)."""
        await self.close()

    # -- properties --------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The API root, ``"http://HOST:PORT/v1"``; tasks are at ``{base_url}/tasks/{hash}``.

        HOST is the address the server is bound to (the loopback address when bound to a
        wildcard). Raises ``RuntimeError`` before :meth:`start`.
        """
        if self._port is None:
            raise RuntimeError("SimulatedTaskAPI is not started")
        host = f"[{self._url_host}]" if ":" in self._url_host else self._url_host
        return f"http://{host}:{self._port}/v1"

    @property
    def dialect(self) -> Dialect:
        """How the answers are shaped (see :class:`Dialect`)."""
        return self._dialect

    @property
    def api_key(self) -> str:
        """The key the server accepts, sent as ``Authorization: Token KEY``."""
        return self._api_key

    @property
    def rate_limit(self) -> int | None:
        """Requests allowed per window per key, or ``None`` for no limit."""
        return self._rate_limit

    @property
    def rate_window(self) -> float:
        """The rate-limit window length, in real (``clock``) seconds."""
        return self._rate_window

    @property
    def speed(self) -> float:
        """Simulated seconds per real second. Setting it keeps :meth:`now` continuous."""
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        if value < 0:
            raise ValueError(f"speed must be >= 0, got {value!r}")
        self._sim_anchor = self.now()
        self._clock_anchor = self._clock()
        self._speed = float(value)

    @property
    def stats(self) -> SimulatorStats:
        """A snapshot of the request counters (see :class:`SimulatorStats`)."""
        c = self._counters
        return SimulatorStats(
            requests=c.requests,
            by_status=dict(c.by_status),
            responses_429=c.responses_429,
            faults_injected=c.faults_injected,
            by_hash=dict(c.by_hash),
            in_flight=c.in_flight,
            peak_in_flight=c.peak_in_flight,
            disconnects=c.disconnects,
            random_faults=c.random_faults,
            faults_by_kind=dict(c.faults_by_kind),
            open_connections=self._open_connections(),
            peak_connections=c.peak_connections,
        )

    # -- time --------------------------------------------------------------------------

    def now(self) -> float:
        """Simulated seconds since the simulator was created (``speed`` times real time,
        plus any :meth:`advance`)."""
        return self._sim_anchor + (self._clock() - self._clock_anchor) * self._speed

    def advance(self, seconds: float) -> None:
        """Jump simulated time forward by ``seconds``: every task moves on at once.

        Rate-limit windows are unaffected (they follow real time).
        """
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        self._sim_anchor += seconds

    # -- tasks -------------------------------------------------------------------------

    def add_task(
        self,
        script: Sequence[ScriptStep],
        *,
        task_hash: str | None = None,
        params: Mapping[str, Any] | None = None,
        module: int = 5,
    ) -> str:
        """Add a task that follows ``script`` from now on and return its hash.

        ``script`` must be non-empty with non-decreasing ``at`` (simulated seconds since
        the task was added). ``task_hash`` defaults to 32 random hex characters (from the
        simulator's seeded generator); any non-empty string is accepted, but a hash
        already in use raises ``ValueError``. ``params`` (JSON-serialisable, copied) and
        ``module`` are reported in the body as given.
        """
        steps = tuple(script)
        if not steps:
            raise ValueError("script must have at least one step")
        ats = [step.at for step in steps]
        if any(later < earlier for earlier, later in itertools.pairwise(ats)):
            raise ValueError("script steps must be ordered by non-decreasing `at`")
        for step in steps:
            dumps(step.errors)
        params_copy: dict[str, Any] = copy.deepcopy(dict(params or {}))
        dumps(params_copy)
        if task_hash is None:
            task_hash = self._new_hash()
        elif not task_hash:
            raise ValueError("task_hash must be a non-empty string")
        elif task_hash in self._tasks:
            raise ValueError(f"task {task_hash!r} already exists")
        started = next((i for i, s in enumerate(steps) if s.status != "pending"), None)
        done = next((i for i, s in enumerate(steps) if s.is_done), None)
        self._tasks[task_hash] = _Task(
            task_hash=task_hash,
            script=steps,
            ats=ats,
            added_at=self.now(),
            params=params_copy,
            module=module,
            started_index=started,
            done_index=done,
        )
        return task_hash

    def add_random_tasks(
        self,
        n: int,
        *,
        pending: tuple[float, float] = (5.0, 30.0),
        running: tuple[float, float] = (50.0, 150.0),
        outcomes: Mapping[str, float] | None = None,
    ) -> list[str]:
        """Add ``n`` realistic random tasks and return their hashes, in order.

        Each task is pending for a uniform random time in ``pending`` (simulated
        seconds), then running for up to a uniform random time in ``running``, with
        ``total_results`` and ``total_pages`` rising in 4-10 bursts at a per-task rate,
        then ends with an outcome drawn with the weights in ``outcomes`` (keys among
        ``"completed"``, ``"aborted"``, ``"failed"``; default 0.8/0.1/0.1):

        * completed: status and done_reason ``"completed"``, after the whole run;
        * aborted: status ``"aborted"``, done_reason ``"run_aborted"``, part-way through
          the run, keeping the partial results;
        * failed: status ``"failed"``, done_reason ``"error"``, ``has_errors`` true and
          ``errors`` a string or ``{"message": ..., "code": ...}``, part-way through.

        With the defaults a task takes about 1 to 3 simulated minutes. The same ``seed``
        and the same sequence of calls give the same hashes and scripts.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n!r}")
        for name, (lo, hi) in (("pending", pending), ("running", running)):
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} must be (lo, hi) with 0 <= lo <= hi")
        weights_map = dict(DEFAULT_OUTCOMES if outcomes is None else outcomes)
        unknown = set(weights_map) - set(OUTCOMES)
        if unknown:
            raise ValueError(f"unknown outcomes: {sorted(unknown)}; use {list(OUTCOMES)}")
        if any(w < 0 for w in weights_map.values()) or sum(weights_map.values()) <= 0:
            raise ValueError("outcome weights must be >= 0 with a positive sum")
        kinds = [k for k in OUTCOMES if weights_map.get(k, 0) > 0]
        weights = [weights_map[k] for k in kinds]
        hashes = []
        for _ in range(n):
            outcome = self._rng.choices(kinds, weights)[0]
            script = random_script(self._rng, pending, running, outcome)
            params = {"url": f"https://www.example.com/search?q=item-{self._rng.randrange(10**6)}"}
            module = self._rng.choice((5, 12, 23, 41))
            hashes.append(self.add_task(script, params=params, module=module))
        return hashes

    def remove_task(self, task_hash: str) -> None:
        """Forget task ``task_hash``: later requests for it get the documented 404, and
        the hash may be given to :meth:`add_task` again. Raises ``KeyError`` for an
        unknown hash. A long-running simulator (a soak test) can so keep its memory flat.
        """
        del self._tasks[task_hash]

    def script(self, task_hash: str) -> tuple[ScriptStep, ...]:
        """The script of task ``task_hash``. Raises ``KeyError`` for an unknown hash."""
        return self._tasks[task_hash].script

    def snapshot(self, task_hash: str) -> dict[str, Any]:
        """The 200 body the server would send for ``task_hash`` now (a fresh dict).

        In the default dialect it has the documented shape (another :attr:`dialect`
        reshapes it as :meth:`Dialect.render` says): ``hash_value``, ``created_at`` (naive
        ISO 8601 UTC with microseconds), ``is_active``, ``params``, ``module``, ``status``
        (``status``, ``started_at``, ``ended_at``, ``is_done``, ``total_results``,
        ``total_pages``, ``done_reason``, ``has_errors``, ``errors``) and ``object``
        (``"task"``).
        ``started_at`` is set once the task has left ``pending``, ``ended_at`` once it is
        done; timestamps are on the simulated timeline. Raises ``KeyError`` for an
        unknown hash.
        """
        task = self._tasks[task_hash]
        elapsed = self.now() - task.added_at
        index = bisect.bisect_right(task.ats, elapsed) - 1
        step = task.script[index] if index >= 0 else PENDING
        started_at = ended_at = None
        if task.started_index is not None and task.started_index <= index:
            started_at = iso(self._wall(task.added_at + task.script[task.started_index].at))
        if task.done_index is not None and task.done_index <= index:
            ended_at = iso(self._wall(task.added_at + task.script[task.done_index].at))
        is_active = step.is_active if step.is_active is not None else not step.is_done
        body = {
            "hash_value": task.task_hash,
            "created_at": iso(self._wall(task.added_at)),
            "is_active": is_active,
            "params": copy.deepcopy(task.params),
            "module": task.module,
            "status": {
                "status": step.status,
                "started_at": started_at,
                "ended_at": ended_at,
                "is_done": step.is_done,
                "total_results": step.total_results,
                "total_pages": step.total_pages,
                "done_reason": step.done_reason,
                "has_errors": step.has_errors,
                "errors": copy.deepcopy(step.errors),
            },
            "object": "task",
        }
        return body if self._dialect == _DOCUMENTED else self._dialect.render(body)

    # -- faults and stats --------------------------------------------------------------

    def inject(self, fault: Fault, *, task_hash: str | None = None, times: int | None = 1) -> None:
        """Give ``fault`` to the next ``times`` requests for ``task_hash`` (any hash if
        ``None``); ``times=None`` keeps it until :meth:`clear_faults`.

        A request takes at most one fault: the earliest injected fault for its hash if
        any, else the earliest global one (first in, first out). The request counts in
        ``stats.faults_injected`` and in the rate-limit window.
        """
        if times is not None and times < 1:
            raise ValueError(f"times must be >= 1 or None, got {times!r}")
        self._faults.append(ArmedFault(fault=fault, task_hash=task_hash, remaining=times))

    def inject_randomly(
        self,
        faults: Sequence[Fault],
        *,
        probability: float,
        weights: Sequence[float] | None = None,
        seed: int | None = None,
        task_hash: str | None = None,
    ) -> None:
        """Give a random fault to a random share of the requests from now on.

        Each request for ``task_hash`` (any hash if ``None``) that :meth:`inject` has not
        given a fault gets one with probability ``probability`` (0 to 1), drawn from
        ``faults`` (uniformly, or with ``weights``, one per fault). With a ``seed`` the
        sequence of draws is reproducible: the n-th request to arrive gets the same
        decision in every run (which request arrives n-th depends on the client). A new
        call replaces the previous one; :meth:`clear_faults` (or ``probability=0``) stops
        it. Random faults count in ``stats.faults_injected``, ``stats.random_faults`` and
        ``stats.faults_by_kind``, and in the rate-limit window.

        For example, 10% of requests failing in a realistic mix::

            api.inject_randomly(
                [Fault.status(503), Fault.rate_limited(0.05), Fault.drop(), Fault.truncated()],
                probability=0.1,
                seed=7,
            )
        """
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {probability!r}")
        chosen = tuple(faults)
        if probability > 0 and not chosen:
            raise ValueError("faults must not be empty")
        if any(not isinstance(fault, Fault) for fault in chosen):
            raise TypeError("faults must be Fault instances (see the Fault class methods)")
        weights_tuple: tuple[float, ...] | None = None
        if weights is not None:
            weights_tuple = tuple(float(w) for w in weights)
            if len(weights_tuple) != len(chosen):
                raise ValueError("weights must have one number per fault")
            if any(w < 0 for w in weights_tuple) or sum(weights_tuple) <= 0:
                raise ValueError("weights must be >= 0 with a positive sum")
        if probability == 0:
            self._random_faults = None
            return
        self._random_faults = RandomFaults(
            probability=float(probability),
            faults=chosen,
            weights=weights_tuple,
            task_hash=task_hash,
            rng=random.Random(seed),
        )

    def clear_faults(self) -> None:
        """Forget every injected fault that has not been used up, and stop random faults."""
        self._faults.clear()
        self._random_faults = None

    def requests_for(self, task_hash: str) -> int:
        """How many requests asked for ``task_hash`` (0 if none)."""
        return self._counters.by_hash.get(task_hash, 0)

    def reset_stats(self) -> None:
        """Zero the counters (``in_flight`` keeps counting requests still running, and the
        peaks start again from what is in flight and open now)."""
        in_flight = self._counters.in_flight
        self._counters = _Counters(
            in_flight=in_flight,
            peak_in_flight=in_flight,
            peak_connections=self._open_connections(),
        )

    # -- internals ---------------------------------------------------------------------

    def _new_hash(self) -> str:
        while True:
            candidate = f"{self._rng.getrandbits(128):032x}"
            if candidate not in self._tasks:
                return candidate

    def _wall(self, sim_seconds: float) -> datetime:
        return self._wall_origin + timedelta(seconds=sim_seconds)

    def _open_connections(self) -> int:
        runner = self._runner
        server = runner.server if runner is not None else None
        return len(server.connections) if server is not None else 0

    def _held_connections(self) -> int:
        """Open connections the client still holds: those whose peer has hung up are left
        out. A client that closes one connection and opens another at once can have the
        new one's request read before the server has read the old one's end."""
        runner = self._runner
        server = runner.server if runner is not None else None
        if server is None:
            return 0
        return sum(not peer_hung_up(handler.transport) for handler in server.connections)

    def _random_fault(self, task_hash: str) -> Fault | None:
        armed = self._random_faults
        if armed is None or (armed.task_hash is not None and armed.task_hash != task_hash):
            return None
        rng = armed.rng
        if rng.random() >= armed.probability:
            return None
        self._counters.random_faults += 1
        return rng.choices(armed.faults, armed.weights)[0]

    def _take_fault(self, task_hash: str) -> Fault | None:
        chosen = next((a for a in self._faults if a.task_hash == task_hash), None)
        if chosen is None:
            chosen = next((a for a in self._faults if a.task_hash is None), None)
        if chosen is None:
            return self._random_fault(task_hash)
        if chosen.remaining is not None:
            chosen.remaining -= 1
            if chosen.remaining <= 0:
                self._faults.remove(chosen)
        return chosen.fault

    def _account(self, key: str) -> _RateDecision:
        limit = self._rate_limit
        if limit is None:
            return _RateDecision(allowed=True, headers={}, retry_after=0)
        now = self._clock()
        window = self._windows.get(key)
        if window is None or now >= window.start + self._rate_window:
            window = _Window(start=now)
            self._windows[key] = window
        window.count += 1
        until_reset = window.start + self._rate_window - now
        headers = {
            # Documented as requests per minute: with a window of another length (a test's
            # compressed minute) the same budget is stated per minute.
            "X-RateLimit-Limit": str(round(limit * 60.0 / self._rate_window)),
            "X-RateLimit-Remaining": str(max(0, limit - window.count)),
            "X-RateLimit-Reset": str(math.ceil(time.time() + until_reset)),
        }
        return _RateDecision(
            allowed=window.count <= limit,
            headers=headers,
            retry_after=max(1, math.ceil(until_reset)),
        )

    def _json_reply(self, status: int, body: object, decision: _RateDecision) -> _Reply:
        headers = {**decision.headers, "Content-Type": JSON_CT}
        return _Reply(status=status, headers=headers, body=dumps(body))

    def _normal_reply(
        self, task_hash: str, authorization: str | None, decision: _RateDecision
    ) -> _Reply:
        if authorization is None:
            reply = self._json_reply(401, NO_CREDENTIALS, decision)
        elif authorization != f"Token {self._api_key}":
            reply = self._json_reply(401, INVALID_TOKEN, decision)
        else:
            if not decision.allowed:
                reply = self._json_reply(429, RATE_LIMITED, decision)
                reply.headers["Retry-After"] = str(decision.retry_after)
                return reply
            if task_hash not in self._tasks:
                status = self._dialect.unknown_hash_status
                return self._json_reply(status, default_error_body(status), decision)
            return self._json_reply(200, self.snapshot(task_hash), decision)
        reply.headers["WWW-Authenticate"] = "Token"
        return reply

    def _record_status(self, status: int) -> None:
        counters = self._counters
        counters.by_status[status] = counters.by_status.get(status, 0) + 1
        if status == 429:
            counters.responses_429 += 1

    def _send(self, reply: _Reply) -> web.Response:
        self._record_status(reply.status)
        return web.Response(status=reply.status, headers=reply.headers, body=reply.body)

    def _disconnect(self, request: web.Request) -> web.Response:
        """Close the connection; aiohttp's attempt to send the returned response then
        fails quietly as a premature disconnection."""
        self._counters.disconnects += 1
        transport = request.transport
        if transport is not None:
            transport.close()
        return web.Response(status=200)

    async def _sleep_unless_closing(self, seconds: float | None) -> bool:
        """Sleep ``seconds`` (forever if ``None``); return True if the server is closing."""
        closing = self._closing
        if closing is None:  # pragma: no cover - handlers only run once started
            return True
        if closing.is_set():
            return True
        if seconds is None:
            await closing.wait()
            return True
        try:
            await asyncio.wait_for(closing.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            return False
        return True

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        task_hash = request.match_info["task_hash"]
        counters = self._counters
        counters.requests += 1
        counters.by_hash[task_hash] = counters.by_hash.get(task_hash, 0) + 1
        counters.in_flight += 1
        counters.peak_in_flight = max(counters.peak_in_flight, counters.in_flight)
        if self._open_connections() > counters.peak_connections:  # only then look closer
            counters.peak_connections = max(counters.peak_connections, self._held_connections())
        try:
            authorization = request.headers.get("Authorization")
            decision = self._account(authorization if authorization is not None else "")
            fault = self._take_fault(task_hash)
            if fault is None:
                return self._send(self._normal_reply(task_hash, authorization, decision))
            counters.faults_injected += 1
            counters.faults_by_kind[fault.kind] = counters.faults_by_kind.get(fault.kind, 0) + 1
            return await self._apply(fault, request, task_hash, authorization, decision)
        finally:
            # The counters object may have been replaced by reset_stats() meanwhile.
            self._counters.in_flight -= 1

    async def _apply(
        self,
        fault: Fault,
        request: web.Request,
        task_hash: str,
        authorization: str | None,
        decision: _RateDecision,
    ) -> web.StreamResponse:
        kind = fault.kind
        if kind in ("status", "rate_limited", "malformed", "redirect"):
            headers = dict(decision.headers)
            if fault.content_type is not None:
                headers["Content-Type"] = fault.content_type
            headers.update(fault.headers)
            return self._send(_Reply(status=fault.code, headers=headers, body=fault.body))
        if kind in ("drop", "hang", "delay"):
            wait = None if kind == "hang" else fault.seconds
            if kind == "drop" or await self._sleep_unless_closing(wait):
                return self._disconnect(request)
        reply = self._normal_reply(task_hash, authorization, decision)
        if kind == "large":
            reply.body = _pad(reply.body, fault.nbytes)
        elif kind == "truncated":
            return self._send_truncated(request, reply)
        elif kind == "slow_drip":
            return await self._drip(request, reply, fault.seconds, fault.chunks)
        return self._send(reply)

    def _send_truncated(self, request: web.Request, reply: _Reply) -> web.Response:
        transport = request.transport
        if transport is None:
            return self._disconnect(request)
        try:
            reason = HTTPStatus(reply.status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [f"HTTP/1.1 {reply.status} {reason}"]
        lines += [f"{name}: {value}" for name, value in reply.headers.items()]
        lines.append(f"Content-Length: {len(reply.body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        transport.write(head + reply.body[: len(reply.body) // 2])
        self._record_status(reply.status)
        return self._disconnect(request)

    async def _drip(
        self, request: web.Request, reply: _Reply, seconds: float, chunks: int
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=reply.status, headers=reply.headers)
        response.content_length = len(reply.body)
        await response.prepare(request)
        self._record_status(reply.status)
        size = math.ceil(len(reply.body) / chunks) if reply.body else 0
        for i in range(chunks):
            if await self._sleep_unless_closing(seconds / chunks):
                self._disconnect(request)
                return response
            piece = reply.body[i * size : (i + 1) * size]
            if piece:
                await response.write(piece)
        return response


def _pad(body: bytes, nbytes: int) -> bytes:
    try:
        document = json.loads(body)
    except ValueError:
        document = {"body": body.decode("utf-8", "replace")}
    if not isinstance(document, dict):
        document = {"body": document}
    target = document["params"] if isinstance(document.get("params"), dict) else document
    target["padding"] = ""
    missing = nbytes - len(dumps(document))
    target["padding"] = "x" * max(0, missing)
    return dumps(document)


# What poll(2) reports once a peer has closed its end: POLLRDHUP is Linux's (elsewhere only a
# connection closed both ways shows, and a connection the client is closing is still counted).
_PEER_CLOSED = getattr(select, "POLLRDHUP", 0) | getattr(select, "POLLHUP", 0)


def peer_hung_up(transport: asyncio.BaseTransport | None) -> bool:
    """True if this connection is closing here, or its peer has closed its end, whether or
    not the server has read that end yet."""
    if transport is None or transport.is_closing():
        return True
    sock = transport.get_extra_info("socket")
    if not hasattr(select, "poll"):  # pragma: no cover - Windows: counted while open here
        return False
    fileno = sock.fileno() if sock is not None else -1
    if fileno < 0:
        return sock is not None
    poller = select.poll()
    poller.register(fileno, _PEER_CLOSED)
    return bool(poller.poll(0))
