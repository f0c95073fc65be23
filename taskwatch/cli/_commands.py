"""The commands: ``watch``, ``get``, ``demo``, ``simulate`` (each ``async (args, run) -> exit
code``), the Client they share, and how errors and waits are told to the user on stderr."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import attrs

from .. import _config, _convert, _protocol
from ..client import Client
from ..errors import (
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    TaskwatchError,
    WatchTimeout,
)
from ..models import Task
from ..ratelimit import Limiter, RateLimiter, RateLimitInfo
from ._display import (
    Board,
    Display,
    PlainDisplay,
    footer,
    inert,
    json_line,
    make_display,
    one_line,
    plural,
    utc_text,
)
from ._outcome import EXIT_ERROR, EXIT_OK, EXIT_TASK_FAILED, exit_code_for

__all__ = ["COMMANDS", "Run", "notice"]

logger = logging.getLogger("taskwatch.cli")


@attrs.define
class Run:
    """What one command run shares with the runner: the signal that stopped it, its board
    (for the exit code after a signal), and whether a signal means success (``simulate``)."""

    stopped_by: int | None = None
    board: Board | None = None
    stop_is_success: bool = False


def notice(text: str) -> None:
    """One line on stderr, ``taskwatch: ...`` (a closed stderr is not an error)."""
    with contextlib.suppress(OSError, ValueError):
        print(f"taskwatch: {text}", file=sys.stderr, flush=True)


class _Reporter:
    """Prints each error once, on stderr, with a hint when the options look wrong."""

    def __init__(self, base_url: str) -> None:
        self._base_url = base_url
        self._said: set[str] = set()
        self._hinted = False

    def report(self, error: TaskwatchError) -> None:
        text = one_line(error)
        # A refused key is told once, whichever task it came for.
        text_key = "refused key" if isinstance(error, AuthenticationError) else text
        if text_key in self._said:
            return
        self._said.add(text_key)
        notice(f"error: {text}")
        if isinstance(error, NotFoundError) and not self._hinted:
            path = _protocol.normalise_base_url(self._base_url).path
            if not re.search(r"/v\d+$", path) or error.error_type is None:
                self._hinted = True
                notice(
                    f"hint: is the base URL right? {self._base_url} answered 404 not in the "
                    "API's words; the API root ends in /v1, as in https://api.lobstr.io/v1"
                )


class _KeyRefused(Exception):
    """Raised from the watch's error callback: a refused key stops every watch."""

    def __init__(self, error: AuthenticationError) -> None:
        super().__init__(str(error))
        self.error = error


# -- the Client -----------------------------------------------------------------------------


class _TellingLimiter:
    """A Limiter that logs (on ``taskwatch.cli``, shown by ``--verbose``) each long wait for a
    request slot and each pause the server imposes, then does what the wrapped one does."""

    _LONG_WAIT = 0.5  # seconds; shorter waits are the pace working as meant

    def __init__(self, inner: Limiter) -> None:
        self._inner = inner

    def try_acquire(self) -> bool:
        return self._inner.try_acquire()

    async def acquire(self) -> None:
        started = time.monotonic()
        await self._inner.acquire()
        waited = time.monotonic() - started
        if waited >= self._LONG_WAIT and logger.isEnabledFor(logging.DEBUG):
            pace = self._inner.requests_per_minute
            logger.debug(
                "waited %.1fs for a request slot (pace %s, %d waiting)",
                waited,
                f"{pace:g}/minute" if pace is not None else "uncapped",
                self._inner.waiting,
            )

    def pause(self, seconds: float) -> Awaitable[None] | None:
        logger.debug("the server answered 429: every request waits %.1fs", seconds)
        return self._inner.pause(seconds)

    def observe(self, info: RateLimitInfo | None) -> Awaitable[None] | None:
        before = self._inner.paused_for()
        result = self._inner.observe(info)
        after = self._inner.paused_for()
        if after > before + self._LONG_WAIT:
            logger.debug(
                "the server's rate-limit window is spent: every request waits %.0fs for its reset",
                after,
            )
        return result

    @property
    def requests_per_minute(self) -> float | None:
        return self._inner.requests_per_minute

    @property
    def server_limit(self) -> int | None:
        return self._inner.server_limit

    @property
    def waiting(self) -> int:
        return self._inner.waiting

    def paused_for(self) -> float:
        return self._inner.paused_for()


def _api_key(args: argparse.Namespace) -> str:
    key = _config.find_api_key(args.token)
    if key is None:
        raise ConfigurationError(
            f"no Lobstr.io API key: set {_config.ENV_VAR}, or log in with the lobstr CLI "
            f"(lobstr config set-token KEY) so that {_config.config_path()} holds it "
            "(--token works too, but lands in shell history)"
        )
    return key


@contextlib.asynccontextmanager
async def _client(args: argparse.Namespace) -> AsyncIterator[Client]:
    """The command's Client with the options' settings: on its own budget, or with
    ``--redis-url`` on the key's budget shared on Redis (the URL is never printed)."""
    key = _api_key(args)
    settings: dict[str, Any] = {
        "base_url": args.base_url,
        "timeout": args.request_timeout,
        "max_retries": args.max_retries,
        "allow_insecure_http": args.allow_insecure_http,
    }
    if not args.redis_url:
        limiter = _TellingLimiter(RateLimiter(args.requests_per_minute))
        async with Client(key, limiter=limiter, **settings) as client:
            yield client
        return
    import redis.asyncio as redis_asyncio  # present: the URL was checked

    from ..redis import RedisLimiter

    connection = redis_asyncio.Redis.from_url(
        args.redis_url, socket_connect_timeout=5, socket_timeout=5
    )
    try:
        shared = RedisLimiter(connection, api_key=key, requests_per_minute=args.requests_per_minute)
        async with Client(key, limiter=_TellingLimiter(shared), **settings) as client:
            yield client
    finally:
        await connection.aclose()


# -- watch and demo -------------------------------------------------------------------------


async def _watch_all(
    client: Client,
    args: argparse.Namespace,
    display: Display,
    board: Board,
    reporter: _Reporter,
) -> None:
    # The live view shows the aggregate line; plain and JSON output log it (seen with -v).
    progress_lines = len(board.rows) > 1 and logger.isEnabledFor(logging.DEBUG)

    def on_error(task_hash: str, error: TaskwatchError) -> None:
        display.show(board.fail(task_hash, error))
        reporter.report(error)
        if isinstance(error, AuthenticationError):
            raise _KeyRefused(error)  # every other task would be refused too

    snapshots = client.watch_many(
        list(board.rows),
        min_interval=args.min_interval,
        max_interval=args.max_interval,
        timeout=args.timeout,
        on_error=on_error,
    )
    try:
        async with contextlib.aclosing(snapshots):
            async for task in snapshots:
                row = board.update(task)
                display.show(row)
                if progress_lines and task.is_done:
                    logger.debug("%s", board.progress(client.stats()))
    except _KeyRefused as refused:
        board.fail_unfinished(refused.error)


async def _watch_board(
    client: Client, board: Board, args: argparse.Namespace, run: Run, speed: float | None = None
) -> None:
    """Watch every task on the board with a display, then print the summary (also when
    stopped by a signal or a deadline; on stderr if stdout is gone by then)."""
    run.board = board
    display, note = make_display(json_output=args.json, plain=args.plain, quiet=args.quiet)
    if note is not None:
        notice(note)
    reporter = _Reporter(client.base_url)
    display.start(board, client.stats)
    try:
        work = _watch_all(client, args, display, board, reporter)
        if args.deadline is None:
            await work
        else:
            try:
                await asyncio.wait_for(work, args.deadline)
            except asyncio.TimeoutError:
                expired = WatchTimeout(
                    f"the --deadline of {args.deadline:g}s passed", task_hash=None, last=None
                )
                board.fail_unfinished(expired)
                notice(f"error: {expired}")
    finally:
        display.stop()
        text = footer(client.stats(), speed=speed)
        try:
            display.summary(board, text)
        except BrokenPipeError:
            if run.stopped_by is None:
                raise
            PlainDisplay(sys.stderr).summary(board, text)  # the reader died with the Ctrl-C


async def watch(args: argparse.Namespace, run: Run) -> int:
    async with _client(args) as client:
        board = Board(args.hashes)
        await _watch_board(client, board, args, run)
    return board.exit_code()


async def demo(args: argparse.Namespace, run: Run) -> int:
    from ..testing import SimulatedTaskAPI

    speed = args.speed
    # Simulated time runs `speed` times faster, so the simulated minute's budget does too.
    budget = max(1, round(90 * speed))
    async with SimulatedTaskAPI(
        rate_limit=budget, speed=speed, seed=args.seed, dialect=args.dialect
    ) as api:
        hashes = api.add_random_tasks(args.tasks, pending=(5.0, 40.0), running=(40.0, 160.0))
        limiter = _TellingLimiter(RateLimiter(float(budget)))
        async with Client(api.api_key, base_url=api.base_url, limiter=limiter) as client:
            board = Board(hashes)
            if not args.json and not args.quiet:
                print(
                    f"taskwatch demo: {plural(len(hashes), 'simulated task')} at {speed:g}x "
                    f"speed on {api.base_url} (no key, no network needed)",
                    flush=True,
                )
            await _watch_board(client, board, args, run, speed=speed)
    code = board.exit_code()
    # Simulated tasks may fail or abort on purpose; the demo itself succeeded.
    return EXIT_OK if code == EXIT_TASK_FAILED else code


# -- get ------------------------------------------------------------------------------------


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else "yes" if value else "no"


def _task_text(task: Task) -> list[str]:
    status = task.status
    errors = status.errors
    errors_text = errors if isinstance(errors, str) else json_line(errors)
    fields = [
        ("hash_value", task.hash_value),
        ("status", status.status),
        ("is_done", _yes_no(status.is_done)),
        ("total_results", status.total_results),
        ("total_pages", status.total_pages),
        ("done_reason", status.done_reason or "-"),
        ("has_errors", _yes_no(status.has_errors)),
        ("errors", "-" if errors is None else errors_text),
        ("started_at", utc_text(status.started_at)),
        ("ended_at", utc_text(status.ended_at)),
        ("created_at", utc_text(task.created_at)),
        ("is_active", _yes_no(task.is_active)),
        ("module", "-" if task.module is None else task.module),
        ("params", json_line(task.params)),
    ]
    width = max(len(name) for name, _ in fields)
    return [f"{name:<{width}}  {inert(value)}" for name, value in fields]


async def get(args: argparse.Namespace, run: Run) -> int:
    hashes: Sequence[str] = args.hashes
    code = EXIT_OK
    async with _client(args) as client:
        reporter = _Reporter(client.base_url)
        # The first alone: a refused key is sent once, not once per hash.
        jobs = [asyncio.ensure_future(client.get_task(hashes[0]))]
        try:
            for index in range(len(hashes)):
                try:
                    task = await jobs[index]
                except TaskwatchError as error:
                    reporter.report(error)
                    code = max(code, exit_code_for(error))
                    if isinstance(error, AuthenticationError):
                        break
                    task = None
                if index == 0:
                    jobs += [asyncio.ensure_future(client.get_task(h)) for h in hashes[1:]]
                if task is None:
                    continue
                if args.json:
                    print(json_line(_convert.unstructure_task(task)), flush=True)
                else:
                    if index:
                        print()
                    print("\n".join(_task_text(task)), flush=True)
        finally:
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)
    return code


# -- simulate -------------------------------------------------------------------------------


async def simulate(args: argparse.Namespace, run: Run) -> int:
    from ..testing import Fault, SimulatedTaskAPI

    run.stop_is_success = True
    api = SimulatedTaskAPI(
        api_key=args.key,
        rate_limit=args.rate_limit or None,
        speed=args.speed,
        seed=args.seed,
        host=args.host,
        port=args.port,
        dialect=args.dialect,
    )
    try:
        await api.start()
    except OSError as exc:
        await api.close()
        notice(f"error: could not listen on {inert(args.host)}:{args.port}: {exc.strerror or exc}")
        return EXIT_ERROR
    try:
        hashes = api.add_random_tasks(args.tasks)
        if args.faults:
            api.inject_randomly(
                [
                    Fault.status(500),
                    Fault.status(503),
                    Fault.rate_limited(1),
                    Fault.drop(),
                    Fault.truncated(),
                    Fault.malformed(),
                ],
                probability=args.faults,
                seed=args.seed,
            )
        _print_simulation(args, api.base_url, api.api_key, hashes)
        await asyncio.Event().wait()  # until a signal cancels the run
    finally:
        stats = api.stats
        await api.close()
        if not args.quiet:
            notice(f"simulate: stopped after {plural(stats.requests, 'request')}")
    return EXIT_OK  # pragma: no cover - only a signal ends the wait


def _print_simulation(
    args: argparse.Namespace, base_url: str, key: str, hashes: Sequence[str]
) -> None:
    if args.json:
        record = {"base_url": base_url, "api_key": key, "tasks": list(hashes)}
        print(json_line(record), flush=True)
        return
    limit = f"{args.rate_limit} requests/minute" if args.rate_limit else "no rate limit"
    faults = f", {args.faults:.0%} of requests faulty" if args.faults else ""
    lines = [
        f"taskwatch simulate: the Lobstr.io task API, simulated at {args.speed:g}x speed "
        f"({limit}{faults}); Ctrl-C stops it",
        f"  base URL  {base_url}",
        f"  key       {key}",
        f"  tasks     {' '.join(hashes)}",
        "try:",
        f"  LOBSTR_TOKEN={key} taskwatch watch --base-url {base_url} {' '.join(hashes[:3])}",
        f"  curl -H 'Authorization: Token {key}' {base_url}/tasks/{hashes[0]}",
    ]
    print("\n".join(lines), flush=True)


Command = Callable[[argparse.Namespace, Run], Awaitable[int]]

COMMANDS: dict[str, Command] = {"watch": watch, "get": get, "demo": demo, "simulate": simulate}
