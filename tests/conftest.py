"""Shared fixtures: the documented bodies, a clean environment, and a real local HTTP server.

Every test also runs under three guards (see the end of this module):

- ``_no_asyncio_errors``: the test fails if asyncio logged an error while it ran (a task
  destroyed while pending, an exception never retrieved, an unclosed session or connection
  reported through the loop's exception handler), or if ``gc.collect()`` at teardown turns
  up a ResourceWarning;
- ``_asyncio_guard`` (async tests only): the test fails if the loop's exception handler was
  called, or if an asyncio task it started is still running once its fixtures are torn down
  (pytest-asyncio would otherwise cancel it silently);
- ``_key_never_logged`` (modules that import ``SECRET``): every log record, at every level,
  from every logger, is checked for the key.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import inspect
import json
import logging
import os
import socket
import sys
import time
import traceback
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import taskwatch
from taskwatch.testing import SimulatedTaskAPI

# The event loop the suite runs on: asyncio's own by default; TASKWATCH_TEST_LOOP=uvloop runs
# every test (and the loops the tests create themselves) on uvloop instead.
TEST_LOOP = os.environ.get("TASKWATCH_TEST_LOOP", "asyncio")
_TEST_LOOPS = ("asyncio", "uvloop")


def pytest_configure(config: pytest.Config) -> None:
    """Install the event loop policy TASKWATCH_TEST_LOOP asks for, before any loop exists.

    pytest-asyncio creates each test's loop from the current policy, and so do
    ``asyncio.run`` and ``asyncio.new_event_loop`` in the tests themselves.
    """
    if TEST_LOOP not in _TEST_LOOPS:
        raise pytest.UsageError(
            f"TASKWATCH_TEST_LOOP={TEST_LOOP!r}: expected one of {', '.join(_TEST_LOOPS)}"
        )
    if TEST_LOOP == "uvloop":
        try:
            import uvloop
        except ImportError as exc:
            raise pytest.UsageError(
                "TASKWATCH_TEST_LOOP=uvloop needs uvloop: pip install uvloop"
            ) from exc
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def pytest_report_header(config: pytest.Config) -> str:
    return f"event loop: {TEST_LOOP} (TASKWATCH_TEST_LOOP)"


FIXTURES = Path(__file__).parent / "fixtures"
TASK_HASH = "c5e29d2aba8b77cdc56391e7405302de"
SECRET = "sk-test-0123456789abcdef-DO-NOT-LEAK"


# Every field path of the documented task body (for tests that mutate it field by field).
DOCUMENTED_FIELDS: list[tuple[str, ...]] = [
    ("hash_value",),
    ("created_at",),
    ("is_active",),
    ("params",),
    ("module",),
    ("object",),
    ("status",),
    ("status", "status"),
    ("status", "started_at"),
    ("status", "ended_at"),
    ("status", "is_done"),
    ("status", "total_results"),
    ("status", "total_pages"),
    ("status", "done_reason"),
    ("status", "has_errors"),
    ("status", "errors"),
]


def fixture_bytes(name: str) -> bytes:
    """The verbatim bytes of a documented body in tests/fixtures/."""
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture_bytes(name))


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's real key or lobstr config file."""
    monkeypatch.delenv("LOBSTR_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ServeFactory = Callable[..., Awaitable[TestServer]]


@pytest.fixture
async def serve() -> AsyncIterator[ServeFactory]:
    """Start real aiohttp servers on 127.0.0.1: ``server = await serve({"/v1/tasks/{h}": h})``.

    Every server is closed at the end of the test.
    """
    servers: list[TestServer] = []

    async def start(routes: dict[str, Handler]) -> TestServer:
        app = web.Application()
        for path, handler in routes.items():
            app.router.add_route("GET", path, handler)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


def snapshots_by_task(
    snapshots: list[taskwatch.Task], hashes: list[str]
) -> dict[str, list[taskwatch.Task]]:
    """Group a stream's snapshots per task, asserting the watch promises on the way: every
    hash has exactly one terminal snapshot, it comes last, and results never go backwards."""
    by_task: dict[str, list[taskwatch.Task]] = {}
    for task in snapshots:
        by_task.setdefault(task.hash_value, []).append(task)
    assert set(by_task) == set(hashes), set(hashes) ^ set(by_task)
    for task_hash, seen in by_task.items():
        assert [t.is_done for t in seen].count(True) == 1, task_hash
        assert seen[-1].is_done, task_hash
        results = [t.total_results for t in seen]
        assert results == sorted(results), task_hash
    return by_task


async def until(condition: Callable[[], bool], seconds: float = 3.0) -> None:
    """Wait (polling every few ms, at most ``seconds``) until ``condition()`` holds."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


def cli_env(key: str | None) -> dict[str, str]:
    """The environment for running the CLI in a subprocess: never the developer's key, the
    given one in LOBSTR_TOKEN (if any), and warnings turned into errors."""
    env = {k: v for k, v in os.environ.items() if k != "LOBSTR_TOKEN"}
    if key is not None:
        env["LOBSTR_TOKEN"] = key
    env["PYTHONWARNINGS"] = "error"
    return env


# The CLI as ``python -m taskwatch``, with SIGINT back to Python's default first: a process
# started with SIGINT ignored (pytest run as a background job) would otherwise pass that on,
# and a test's Ctrl-C would not reach the CLI.
CLI_COMMAND = [
    sys.executable,
    "-c",
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('taskwatch', run_name='__main__', alter_sys=True)",
]


async def start_cli(
    args: Sequence[str],
    key: str | None,
    *,
    env: dict[str, str] | None = None,
    stdin: int | None = asyncio.subprocess.DEVNULL,
    stdout: int | None = asyncio.subprocess.PIPE,
) -> asyncio.subprocess.Process:
    """Start ``python -m taskwatch ARGS`` in ``cli_env(key)`` (plus ``env``), stdout and
    stderr piped, stdin empty unless given."""
    return await asyncio.create_subprocess_exec(
        *CLI_COMMAND,
        *args,
        stdin=stdin,
        stdout=stdout,
        stderr=asyncio.subprocess.PIPE,
        env={**cli_env(key), **(env or {})},
    )


def fast_client(base_url: str, **options: Any) -> taskwatch.Client:
    """A client with the test key, tiny retry waits and no client-side cap: retries cost
    milliseconds. ``options`` override any Client argument."""
    settings: dict[str, Any] = {
        "requests_per_minute": None,
        "retry_initial_wait": 0.001,
        "retry_max_wait": 0.01,
        "max_retries": 2,
        **options,
    }
    return taskwatch.Client(SECRET, base_url=base_url, **settings)


@pytest.fixture
async def api() -> AsyncIterator[SimulatedTaskAPI]:
    """A simulated API with no rate limit that accepts the test key (SECRET)."""
    async with SimulatedTaskAPI(rate_limit=None, api_key=SECRET) as sim:
        yield sim


# The Redis server the Redis tests use (.ci/run starts one on this address).
REDIS_URL = os.environ.get("TASKWATCH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def _require_redis(client: Any) -> None:
    """Skip (or, under .ci/run, fail) when no Redis server answers at REDIS_URL."""
    from redis.exceptions import RedisError

    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        reason = f"no Redis server answers at {REDIS_URL} ({type(exc).__name__}: {exc})"
        if os.environ.get("TASKWATCH_REQUIRE_REDIS") == "1":
            pytest.fail(f"{reason}; .ci/run should have started one", pytrace=False)
        pytest.skip(f"{reason}; .ci/run starts one, or set TASKWATCH_TEST_REDIS_URL")


def closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def redis_client() -> AsyncIterator[Any]:
    """A ``redis.asyncio.Redis`` on REDIS_URL, closed after the test (skips without Redis)."""
    import redis.asyncio as redis_asyncio

    client = redis_asyncio.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
    await _require_redis(client)
    yield client
    await client.aclose()


@pytest.fixture
async def redis_prefix(redis_client: Any) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"taskwatch-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    keys = [key async for key in redis_client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis_client.delete(*keys)


def base_url(server: TestServer) -> str:
    return str(server.make_url("/v1"))


class FakeTime:
    """A virtual monotonic clock for tests: ``sleep`` waits on it, and whenever every other
    task has had its turn the clock jumps to the earliest wake-up. Records each sleep."""

    # Loop iterations let pass before the clock jumps, so that ready tasks, and requests on
    # the wire to a server on this loop, run first. Each hop is a timer due at once, so that
    # each passes through the loop's poll for I/O. On uvloop a first request on a fresh
    # connection needed between 40 and 100 hops; with 20, the clock jumped while its answer
    # was on the wire.
    _HOPS = 300
    # And real time let pass, at least, before it jumps: on a loaded machine the kernel may
    # deliver a loopback packet later than 300 quick iterations (seen on uvloop: the running
    # task's first answer arrived 40 virtual seconds late).
    _IDLE_SECONDS = 0.003

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0
        self._scheduled = False
        self._idle_since = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._seq += 1
        heapq.heappush(self._waiters, (self.now + max(seconds, 0.0), self._seq, future))
        if not self._scheduled:
            self._scheduled = True
            self._idle_since = time.perf_counter()
            loop.call_later(0, self._advance, loop, self._HOPS)
        await future

    def _advance(self, loop: asyncio.AbstractEventLoop, hops: int) -> None:
        if hops or time.perf_counter() - self._idle_since < self._IDLE_SECONDS:
            loop.call_later(0, self._advance, loop, max(hops - 1, 0))
            return
        while self._waiters and self._waiters[0][2].done():  # cancelled sleepers
            heapq.heappop(self._waiters)
        if not self._waiters:
            self._scheduled = False
            return
        target = self._waiters[0][0]
        self.now = max(self.now, target)
        while self._waiters and self._waiters[0][0] <= target:
            future = heapq.heappop(self._waiters)[2]
            if not future.done():
                future.set_result(None)
        self._idle_since = time.perf_counter()
        loop.call_later(0, self._advance, loop, self._HOPS)

    def install(self, client: taskwatch.Client) -> FakeTime:
        """Make the client, its limiter and its watches run on this clock."""
        client._clock = self.clock
        client._sleep = self.sleep
        client._random = lambda: 0.0
        limiter = client.limiter
        assert isinstance(limiter, taskwatch.RateLimiter)
        limiter._clock = self.clock
        limiter._sleep = self.sleep
        return self


# -- guards: leaks, unhandled asyncio errors and the key in logs, for every test -----------


def render_record(record: logging.LogRecord) -> str:
    """Everything a log handler could print for ``record``: message, exception, stack."""
    try:
        message = record.getMessage()
    except Exception:  # a malformed record is still checked, as its raw parts
        message = f"{record.msg!r} % {record.args!r}"
    parts = [f"{record.name} {record.levelname}: {message}"]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append("".join(traceback.format_exception(record.exc_info[1])))
    if record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts)


class RecordingHandler(logging.Handler):
    """Keeps the rendered text of the records it sees (only those ``keep`` accepts)."""

    def __init__(self, level: int, keep: Callable[[str], bool] = lambda text: True) -> None:
        super().__init__(level)
        self.keep = keep
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = render_record(record)
        if self.keep(text):
            self.texts.append(text)


@pytest.fixture(autouse=True)
def _no_asyncio_errors() -> Iterator[None]:
    """Fail the test if asyncio logged at ERROR while it ran, or if a ResourceWarning turns
    up when ``gc.collect()`` runs at teardown.

    asyncio's default exception handler reports "Task was destroyed but it is pending!",
    "Task exception was never retrieved" and aiohttp's "Unclosed client session/connector"
    on the "asyncio" logger, not always as warnings, and often only when the object is
    garbage collected: hence the collection here, after the test's event loop is closed.
    What survives it is then frozen (``gc.freeze``), so that the next test's collection
    scans only the objects that test creates and costs milliseconds, not a full heap walk.
    """
    recorder = RecordingHandler(logging.ERROR)
    asyncio_logger = logging.getLogger("asyncio")
    asyncio_logger.addHandler(recorder)
    caught: list[warnings.WarningMessage] = []
    try:
        yield
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            gc.collect()
        gc.freeze()
    finally:
        asyncio_logger.removeHandler(recorder)
    problems = recorder.texts + [
        f"{w.category.__name__}: {w.message}"
        for w in caught
        if issubclass(w.category, ResourceWarning)
    ]
    if problems:
        pytest.fail(
            "asyncio reported a leak or an unhandled error during this test:\n"
            + "\n".join(problems),
            pytrace=False,
        )


async def _tasks_left_over() -> list[asyncio.Task[Any]]:
    """The loop's tasks other than the current one, after letting them settle a moment."""
    others: list[asyncio.Task[Any]] = []
    for attempt in range(40):
        current = asyncio.current_task()
        others = [task for task in asyncio.all_tasks() if task is not current]
        if not others:
            break
        await asyncio.sleep(0 if attempt < 10 else 0.01)
    return others


@pytest.fixture
async def _asyncio_guard() -> AsyncIterator[None]:
    """For async tests (added by ``pytest_collection_modifyitems``): fail if the loop's
    exception handler is called, or if a task outlives the test and its fixtures."""
    loop = asyncio.get_running_loop()
    contexts: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: contexts.append(context))
    leftover: list[asyncio.Task[Any]] = []
    try:
        yield
        leftover = await _tasks_left_over()
    finally:
        loop.set_exception_handler(previous)
    problems = [
        f"exception handler called: {context.get('message')!s} {context.get('exception')!r}"
        for context in contexts
    ]
    problems += [f"task still running after the test: {task!r}" for task in leftover]
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run every async test under ``_asyncio_guard``, set up right after the other guards
    (so it is torn down after the test's own fixtures: servers and clients are closed by
    then)."""
    for item in items:
        if not isinstance(item, pytest.Function) or not inspect.iscoroutinefunction(item.obj):
            continue
        names = item.fixturenames
        if "_asyncio_guard" in names:
            continue
        guards = [name for name in ("_no_asyncio_errors", "_key_never_logged") if name in names]
        at = max((names.index(name) + 1 for name in guards), default=0)
        names.insert(at, "_asyncio_guard")


_KEY_LOGGERS = ("", "taskwatch", "aiohttp", "asyncio")


@pytest.fixture(autouse=True)
def _key_never_logged(request: pytest.FixtureRequest) -> Iterator[None]:
    """In modules that import ``SECRET``: log everything at DEBUG (root, "taskwatch",
    "aiohttp", "asyncio") and fail if any record, rendered with its exception and stack,
    contains the key."""
    if getattr(request.module, "SECRET", None) != SECRET:
        yield
        return
    recorder = RecordingHandler(logging.DEBUG, keep=lambda text: SECRET in text)
    loggers = [logging.getLogger(name) for name in _KEY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(recorder)
    try:
        yield
    finally:
        root.removeHandler(recorder)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
    if recorder.texts:
        pytest.fail(
            f"the API key appeared in {len(recorder.texts)} log record(s), e.g.:\n"
            + recorder.texts[0].replace(SECRET, "<SECRET>"),
            pytrace=False,
        )
