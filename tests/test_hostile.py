"""Hostile and odd input: bodies, error answers, task hashes and rate-limit headers.

- The parser (``decode_task``) turns any bytes, any JSON value and any mutation of the
  documented body into a Task with the documented field types, or a ResponseFormatError;
  any error answer into an APIError subclass. Property-based, with both JSON decoders.
- Task hashes that are not one safe path segment are refused with InvalidTaskHashError
  (a ValueError) before any request, by get_task, wait, watch, watch_many and the CLI; odd
  but valid ones reach the server as exactly that one path segment.
- Rate-limit headers (Retry-After, X-RateLimit-*) that are negative, huge, fractional,
  garbage or dates are ignored or read as 0: every wait the client takes on the server's word
  is at most ``MAX_SERVER_WAIT`` (120 s), and one beyond that is treated as not given.
  Checked on a virtual clock: nothing really waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import pty
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskwatch import (
    APIError,
    Client,
    InvalidTaskHashError,
    RateLimiter,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    Task,
    TaskStatus,
    TaskwatchError,
    _protocol,
    cli,
)
from taskwatch._protocol import MAX_SERVER_WAIT, RateLimitInfo, decode_task, error_for
from taskwatch.testing import Fault, ScriptStep, SimulatedTaskAPI

from .conftest import DOCUMENTED_FIELDS, TASK_HASH, FakeTime, fixture_bytes, fixture_json

NOW = 1_700_000_000.0
DOCUMENTED = fixture_bytes("get-task-200.json")
DONE = [ScriptStep(at=0, status="completed", total_results=3, is_done=True)]

# -- the parser ------------------------------------------------------------------------------

DECODERS = ["default", "json"]
ZERO = timedelta(0)


@contextlib.contextmanager
def decoder(name: str) -> Iterator[None]:
    """Parse with the default decoder (orjson when installed) or the standard library's."""
    if name == "json" and hasattr(_protocol, "_loads"):
        with mock.patch.object(_protocol, "_loads", json.loads):
            yield
    else:
        yield


def decode(body: bytes) -> Task:
    return decode_task(200, "OK", {}, body, task_hash=TASK_HASH, now=NOW)


def check_task_or_format_error(body: bytes) -> Task | None:
    """Decode ``body``: a Task whose fields have the documented types, or None after a
    ResponseFormatError that names the task. Any other exception fails the test."""
    failure: ResponseFormatError | None = None
    try:
        task = decode(body)
    except ResponseFormatError as error:
        failure = error
    if failure is not None:
        assert failure.task_hash == TASK_HASH
        assert isinstance(str(failure), str)
        return None
    assert isinstance(task, Task)
    status = task.status
    assert isinstance(status, TaskStatus)
    assert task.hash_value == TASK_HASH  # identity: never another task's snapshot
    assert task.is_active is None or type(task.is_active) is bool
    assert type(task.params) is dict
    assert task.module is None or type(task.module) in (int, str)
    assert type(task.object) is str
    assert type(status.status) is str
    assert type(status.is_done) is bool
    assert type(status.total_results) is int
    assert type(status.total_pages) is int
    assert type(status.has_errors) is bool
    assert status.done_reason is None or type(status.done_reason) is str
    for moment in (task.created_at, status.started_at, status.ended_at):
        assert moment is None or (isinstance(moment, datetime) and moment.utcoffset() == ZERO)
    assert task.succeeded is (task.is_done and not task.failed)
    return task


def deep(depth: int, leaf: Any = 0) -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**200)
    | st.integers(max_value=-(2**63) + 2, min_value=-(2**200))
    | st.floats()  # NaN and infinities become bare NaN / Infinity tokens
    | st.text()
    | st.sampled_from(["", "2024-12-24T10:57:55.045567", "2024-13-45T99:99", "Z", "\x00", "🚀"])
)
_json_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
_hostile_values = (
    _json_values
    | st.integers(1_000, 300_000).map(lambda n: "x" * n)  # huge strings
    | st.integers(1, 3_000).map(deep)  # deep nesting, past both decoders' limits
    | st.integers(1, 2_000).map(lambda n: {f"k{i}": i for i in range(n)})  # wide objects
)
_DELETE = object()
_mutations = st.lists(
    st.tuples(st.sampled_from(DOCUMENTED_FIELDS), st.just(_DELETE) | st.none() | _hostile_values),
    min_size=1,
    max_size=4,
)
_extras = st.dictionaries(st.text(max_size=12), _json_values, max_size=4)


def mutate(mutations: list[tuple[tuple[str, ...], Any]], extras: dict[str, Any]) -> Any:
    data = fixture_json("get-task-200.json")
    for path, value in mutations:
        target = data
        for part in path[:-1]:
            target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue  # an earlier mutation replaced the parent
        if value is _DELETE:
            target.pop(path[-1], None)
        else:
            target[path[-1]] = value
    for name, value in extras.items():
        data.setdefault(name, value)
        if isinstance(data.get("status"), dict):
            data["status"].setdefault(name, value)
    return data


@pytest.mark.parametrize("name", DECODERS)
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=_mutations, extras=_extras)
def test_any_mutation_of_the_documented_body(
    name: str, mutations: list[tuple[tuple[str, ...], Any]], extras: dict[str, Any]
) -> None:
    data = mutate(mutations, extras)
    try:
        body = json.dumps(data).encode()
    except RecursionError:  # too deep even to write: send it by hand
        body = b'{"status": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    with decoder(name):
        check_task_or_format_error(body)


@pytest.mark.parametrize("name", DECODERS)
@settings(max_examples=200, deadline=None)
@given(value=_json_values)
def test_any_json_value(name: str, value: Any) -> None:
    with decoder(name):
        check_task_or_format_error(json.dumps(value).encode())


@pytest.mark.parametrize("name", DECODERS)
@settings(max_examples=200, deadline=None)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(DOCUMENTED) - 1), st.integers(0, 255), st.sampled_from("rid")),
        max_size=6,
    ),
    cut=st.integers(0, len(DOCUMENTED)),
)
def test_any_byte_level_damage_to_the_documented_body(
    name: str, edits: list[tuple[int, int, str]], cut: int
) -> None:
    body = bytearray(DOCUMENTED)
    for position, byte, op in edits:
        at = min(position, max(len(body) - 1, 0))
        if op == "r" and body:
            body[at] = byte
        elif op == "i":
            body.insert(at, byte)
        elif body:
            del body[at]
    with decoder(name):
        check_task_or_format_error(bytes(body[:cut]))


@pytest.mark.parametrize("name", DECODERS)
@settings(max_examples=150, deadline=None)
@given(body=st.binary(max_size=400))
def test_any_bytes(name: str, body: bytes) -> None:
    with decoder(name):
        check_task_or_format_error(body)


@pytest.mark.parametrize("name", DECODERS)
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="100k nested arrays"),
        pytest.param(b'{"a":' * 50_000 + b"1" + b"}" * 50_000, id="50k nested objects"),
        pytest.param(b"[" * 100_000, id="100k open arrays"),
        pytest.param(json.dumps({"x": "y" * 900_000}).encode(), id="900 kB string"),
        pytest.param(b"1" * 500_000, id="500k-digit integer"),
        pytest.param(b"\xef\xbb\xbf" + DOCUMENTED, id="UTF-8 BOM"),
        pytest.param(DOCUMENTED.decode().encode("utf-16"), id="UTF-16"),
        pytest.param(b"\x00" * 1000, id="NULs"),
        pytest.param(DOCUMENTED.replace(b"156", b"1e400"), id="results 1e400"),
        pytest.param(DOCUMENTED.replace(b"156", b"NaN"), id="results NaN"),
        pytest.param(DOCUMENTED.replace(b"156", b"156.0"), id="results 156.0"),
        pytest.param(DOCUMENTED.replace(b"156", b"-156"), id="results negative"),
        pytest.param(DOCUMENTED.replace(b"156", b"9" * 5000), id="results 5000 digits"),
        pytest.param(DOCUMENTED.replace(b"false", b'"false"'), id="bool as string"),
        pytest.param(DOCUMENTED + DOCUMENTED, id="two documents"),
        pytest.param(DOCUMENTED[:-1] + b',"status":null}', id="duplicate key"),
    ],
)
def test_odd_bodies(name: str, body: bytes) -> None:
    with decoder(name):
        check_task_or_format_error(body)


_RICH = fixture_json("get-task-200.json")
_RICH["params"].update(q="t\u00e2che \u6771\u4eac \U0001f680", lat=-12.5, radius=1.5e3)


@pytest.mark.parametrize("name", DECODERS)
@pytest.mark.parametrize("ensure_ascii", [True, False], ids=["ASCII escapes", "raw UTF-8"])
def test_every_prefix_of_a_body_is_seen_as_cut_off(name: str, ensure_ascii: bool) -> None:
    """What a server that closes without a Content-Length leaves us: any prefix of a task
    body (here one with non-ASCII text and non-integer numbers) is a document cut off."""
    body = json.dumps(_RICH, ensure_ascii=ensure_ascii).encode()
    wrong = []
    with decoder(name):
        for end in range(1, len(body)):
            try:
                decode(body[:end])
            except ResponseFormatError as error:
                if not error.truncated:
                    wrong.append(body[max(0, end - 12) : end])
    assert wrong == []


# -- error answers ---------------------------------------------------------------------------

_header_names = st.sampled_from(
    [
        "Retry-After",
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "Location",
        "Content-Type",
    ]
) | st.text(min_size=1, max_size=20)
_header_values = (
    st.text(max_size=60)
    | st.integers().map(str)
    | st.floats().map(str)
    | st.sampled_from(
        [
            "",
            " ",
            "-1",
            "-0",
            "1e309",
            "nan",
            "inf",
            "0x10",
            "1_000",
            "\u0661\u0662",  # Arabic-Indic digits: float() reads them
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "Mon, 99 Foo 2015 25:61:00 GMT",
            "Wed, 21 Oct 2015 07:28:00 -0000",
        ]
    )
)


def _safe_dumps(value: Any) -> bytes:
    """``value`` as JSON, or (too deep for json.dumps) 5000 unclosed arrays."""
    try:
        return json.dumps(value).encode()
    except RecursionError:
        return b"[" * 5000


_error_bodies = (
    st.binary(max_size=300)
    | _json_values.map(lambda v: json.dumps(v).encode())
    | st.tuples(
        st.sampled_from(["detail", "error", "errors", "message", "type"]), _json_values
    ).map(lambda kv: json.dumps({kv[0]: kv[1]}).encode())
    | st.integers(1, 3_000).map(lambda n: _safe_dumps({"error": deep(n)}))
    | st.integers(0, 10_000).map(
        lambda n: json.dumps({"detail": f"Expected available in {'9' * n} seconds"}).encode()
    )
)


@settings(max_examples=400, deadline=None)
@given(
    status=st.integers(100, 599).filter(lambda s: not 200 <= s < 300),
    reason=st.none() | st.text(max_size=40),
    headers=st.dictionaries(_header_names, _header_values, max_size=6),
    body=_error_bodies,
)
def test_any_error_answer_is_an_api_error(
    status: int, reason: str | None, headers: dict[str, str], body: bytes
) -> None:
    error = error_for(status, reason, headers, body, task_hash=TASK_HASH, now=NOW)
    assert isinstance(error, APIError)
    assert error.status == status
    assert error.task_hash == TASK_HASH
    assert isinstance(error.message, str)
    assert error.message
    assert isinstance(str(error), str)
    assert isinstance(repr(error), str)
    if status == 429:
        assert isinstance(error, RateLimitError)
    if status >= 500:
        assert isinstance(error, ServerError)
    if isinstance(error, (RateLimitError, ServerError)):
        wait = error.retry_after
        assert wait is None or 0.0 <= wait <= MAX_SERVER_WAIT
    with pytest.raises(APIError):
        decode_task(status, reason, headers, body, task_hash=TASK_HASH, now=NOW)


@settings(max_examples=300, deadline=None)
@given(value=st.none() | _header_values, now=st.floats(0, 2e10))
def test_any_retry_after_is_none_or_a_capped_wait(value: str | None, now: float) -> None:
    wait = _protocol.parse_retry_after(value, now)
    assert wait is None or (math.isfinite(wait) and 0.0 <= wait <= MAX_SERVER_WAIT)


@settings(max_examples=300, deadline=None)
@given(
    headers=st.fixed_dictionaries(
        {},
        optional={
            "X-RateLimit-Limit": _header_values,
            "X-RateLimit-Remaining": _header_values,
            "X-RateLimit-Reset": _header_values,
        },
    ),
    configured=st.none() | st.floats(1, 1e6),
)
def test_any_rate_limit_headers_give_a_bounded_pause_and_a_positive_pace(
    headers: dict[str, str], configured: float | None
) -> None:
    info = RateLimitInfo.from_headers(headers)
    limiter = RateLimiter(configured, clock=lambda: 1000.0, wall_clock=lambda: NOW)
    limiter.observe(info)
    assert 0.0 <= limiter.paused_for() <= MAX_SERVER_WAIT
    pace = limiter.requests_per_minute
    if configured is None:
        assert pace is None
    else:
        assert pace is not None
        assert 0 < pace <= configured
    if info is not None:
        for number in (info.limit, info.remaining, info.reset):
            assert number is None or (math.isfinite(number) and number >= 0)


# -- task hashes -----------------------------------------------------------------------------

REFUSED = [
    "",
    " ",
    "\t",
    "a b",
    " c5e29d2aba8b77cdc56391e7405302de",
    "c5e29d2aba8b77cdc56391e7405302de\n",
    ".",
    "..",
    "/",
    "a/b",
    "../etc/passwd",
    "..%2F..%2Fetc",
    "%2F",
    "a%2Fb",
    "%2e%2e",
    "%2E%2E",
    "%00",
    "a\\b",
    "a?b=1",
    "?",
    "a#frag",
    "#",
    "a;b",
    "a,b",
    "a:b",
    "a@b",
    "a&b=c",
    "a+b",
    "a=b",
    "a*",
    "a'b",
    'a"b',
    "<script>",
    "{a}",
    "a|b",
    "a`b",
    "a^b",
    "[a]",
    "a\x00b",
    "\x00",
    "a\r\nX-Injected: 1",
    "\x7f",
    "tâche",
    "東京",
    "😀",
    "\u200b",  # zero-width space
    "\uff0f",  # fullwidth solidus
    "\u2215",  # division slash
    "\uff41\uff42\uff43",  # fullwidth letters
    "x" * 257,
    "x" * 100_000,
]
ACCEPTED = ["...", "..a", "a..", ".hidden", "~", "-", "_", "A" * 256, "a.b~c_d-e", "0"]


@pytest.fixture
async def api() -> AsyncIterator[SimulatedTaskAPI]:
    async with SimulatedTaskAPI(rate_limit=None) as sim:
        yield sim


def client_for(api: SimulatedTaskAPI, **options: Any) -> Client:
    settings_: dict[str, Any] = {"requests_per_minute": None, "max_retries": 1}
    settings_.update(options)
    return Client(api.api_key, base_url=api.base_url, **settings_)


async def refused_everywhere(client: Client, bad: str, good: str) -> None:
    """Every entry point refuses ``bad`` before sending anything."""
    with pytest.raises(InvalidTaskHashError, match="invalid task hash") as info:
        await client.get_task(bad)
    assert isinstance(info.value, ValueError)
    assert len(str(info.value)) < 400  # a 100 kB hash is shortened in the message
    with pytest.raises(InvalidTaskHashError):
        await client.wait(bad)
    with pytest.raises(InvalidTaskHashError):
        client.watch(bad)  # refused when called, before the first poll
    with pytest.raises(InvalidTaskHashError):
        client.watch_many([good, bad])


@pytest.mark.parametrize("bad", REFUSED, ids=[f"{h[:16]!r}({len(h)})" for h in REFUSED])
async def test_unsafe_hash_is_refused_before_any_request(api: SimulatedTaskAPI, bad: str) -> None:
    good = api.add_task(DONE)
    async with client_for(api) as client:
        await refused_everywhere(client, bad, good)
        assert client.stats().requests == 0
    assert api.stats.requests == 0


async def test_unsafe_hashes_from_a_stream_are_errors_for_that_hash(api: SimulatedTaskAPI) -> None:
    good = api.add_task(DONE)

    async def arriving() -> AsyncIterator[str]:
        for task_hash in [REFUSED[3], good, *REFUSED[4:12]]:
            yield task_hash

    failures: dict[str, TaskwatchError] = {}
    async with client_for(api) as client:
        snapshots = [
            t
            async for t in client.watch_many(
                arriving(), min_interval=0.01, max_interval=0.01, on_error=failures.__setitem__
            )
        ]
    assert [t.hash_value for t in snapshots] == [good]
    assert set(failures) == {REFUSED[3], *REFUSED[4:12]}
    assert all(isinstance(error, InvalidTaskHashError) for error in failures.values())
    assert api.stats.requests == 1
    assert api.stats.by_hash == {good: 1}


@pytest.mark.parametrize("odd", ACCEPTED)
async def test_odd_valid_hash_is_sent_as_exactly_one_segment(
    api: SimulatedTaskAPI, odd: str
) -> None:
    api.add_task(DONE, task_hash=odd)
    async with client_for(api) as client:
        task = await client.get_task(odd)
        final = await client.wait(odd, min_interval=0.01)
        watched = [t async for t in client.watch_many([odd], min_interval=0.01)]
    assert task.hash_value == final.hash_value == watched[-1].hash_value == odd
    # The route only matches /v1/tasks/{one segment}: three requests, all for that segment.
    assert api.stats.by_hash == {odd: 3}
    assert api.stats.by_status == {200: 3}


@contextlib.contextmanager
def simulator_in_a_thread() -> Iterator[tuple[SimulatedTaskAPI, Callable[..., Any]]]:
    """A simulator on its own event loop in a thread, for the CLI (which runs its own loop
    in this thread). Yields the simulator and ``call(fn, *args)`` to run code on its loop."""
    loop = asyncio.new_event_loop()
    api = SimulatedTaskAPI(rate_limit=None)
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(api.start())
        started.set()
        loop.run_forever()
        loop.run_until_complete(api.close())
        loop.close()

    def call(fn: Callable[..., Any], *args: Any) -> Any:
        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=10)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield api, call
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


# On the command line '-' means "the hashes on stdin".
CLI_ACCEPTED = [h for h in ACCEPTED if h != "-"]
CLI_REFUSED = [h for h in REFUSED if "\x00" not in h and not h.startswith("-") and len(h) < 1000]


def test_cli_refuses_unsafe_hashes_before_any_request(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with simulator_in_a_thread() as (api, call):
        good = call(api.add_task, DONE)
        monkeypatch.setenv("LOBSTR_TOKEN", api.api_key)
        for bad in CLI_REFUSED:
            for argv in (
                ["get", bad],
                ["watch", good, bad, "--plain"],
                ["watch", bad, "--json"],
            ):
                code = cli.main([*argv, "--base-url", api.base_url])
                out, err = capsys.readouterr()
                assert code == cli.EXIT_USAGE, (bad, argv, out, err)
                assert "invalid task hash" in err, (bad, argv, err)
                assert len(err.strip().splitlines()) == 1, err  # one line, no traceback
        assert call(lambda: api.stats.requests) == 0


def test_cli_sends_odd_valid_hashes_as_one_segment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with simulator_in_a_thread() as (api, call):
        for odd in ACCEPTED:
            call(lambda h=odd: api.add_task(DONE, task_hash=h))
        monkeypatch.setenv("LOBSTR_TOKEN", api.api_key)
        for odd in CLI_ACCEPTED:
            argv = ["get", "--json", "--base-url", api.base_url, "--", odd]
            assert cli.main(argv) == cli.EXIT_OK, capsys.readouterr().err
            assert json.loads(capsys.readouterr().out)["hash_value"] == odd
        by_hash = call(lambda: api.stats.by_hash)
    assert by_hash == dict.fromkeys(CLI_ACCEPTED, 1)


# -- rate-limit headers over a socket, on a virtual clock --------------------------------------


def http_date(seconds_from_now: float) -> str:
    moment = datetime.fromtimestamp(time.time() + seconds_from_now, tz=timezone.utc)
    return format_datetime(moment, usegmt=True)


RETRY_AFTER = [
    # (Retry-After value or a function of now, expected total wait range)
    ("-5", 0.0, 0.0),
    ("-0", 0.0, 0.0),
    ("0", 0.0, 0.0),
    ("0.25", 0.25, 0.25),
    ("1.5", 1.5, 1.5),
    ("7", 7.0, 7.0),
    ("120", 120.0, 120.0),
    # Beyond the 120 s cap is absurd, and garbage is no advice: the client pauses 1 s (its
    # default for a 429) plus a backoff.
    ("121", 1.0, 1.02),
    ("99999999999999999999", 1.0, 1.02),
    ("1e308", 1.0, 1.02),
    ("1e999", 1.0, 1.02),
    ("nan", 1.0, 1.02),
    ("inf", 1.0, 1.02),
    ("soon", 1.0, 1.02),
    ("", 1.0, 1.02),
    ("0x10", 1.0, 1.02),
    ("Mon, 99 Foo 2015 25:61:00 GMT", 1.0, 1.02),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0, 0.0),  # a date in the past
    ("Fri, 31 Dec 9999 23:59:59 GMT", 1.0, 1.02),  # the far future: absurd
    ("future:45", 43.9, 45.0),  # an HTTP-date 45 s ahead (1 s resolution)
    ("future:-45", 0.0, 0.0),
]


@pytest.mark.parametrize(("value", "low", "high"), RETRY_AFTER, ids=[r[0] for r in RETRY_AFTER])
async def test_retry_after_values_give_bounded_waits(
    api: SimulatedTaskAPI, value: str, low: float, high: float
) -> None:
    if value.startswith("future:"):
        value = http_date(float(value.split(":")[1]))
    task_hash = api.add_task(DONE)
    api.inject(Fault.rate_limited(value), times=1)
    fake = FakeTime()
    async with client_for(api, retry_initial_wait=0.01, retry_max_wait=0.01) as client:
        fake.install(client)
        task = await client.get_task(task_hash)
    assert task.is_done
    assert api.stats.requests == 2
    assert all(0.0 <= wait <= MAX_SERVER_WAIT for wait in fake.sleeps), fake.sleeps
    assert low - 1e-6 <= sum(fake.sleeps) <= high + 1e-6, fake.sleeps


def task_answer(task_hash: str, headers: dict[str, str]) -> Fault:
    """The documented 200 body for ``task_hash`` with these headers (the simulator sends no
    X-RateLimit-* of its own here: it has no rate limit)."""
    body = {**fixture_json("get-task-200.json"), "hash_value": task_hash}
    return Fault.status(200, body, headers)


PAUSE_HEADERS = [
    # (headers on one 200 answer, the pause every later request waits for)
    # A reset beyond the 120 s cap is absurd: no pause at all.
    ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1e12"}, 0.0),
    ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "99999999999999999999"}, 0.0),
    ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "-5"}, 0.0),
    ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1e999"}, 0.0),
    ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "nan"}, 0.0),
    ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "soon"}, 0.0),
    ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "0"}, 0.0),  # long past
    ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": ""}, 0.0),
    ({"X-RateLimit-Remaining": "-1", "X-RateLimit-Reset": "1e12"}, 0.0),
    ({"X-RateLimit-Remaining": "lots", "X-RateLimit-Reset": "1e12"}, 0.0),
    ({"X-RateLimit-Remaining": "0.5", "X-RateLimit-Reset": "1e12"}, 0.0),
]


@pytest.mark.parametrize(
    ("headers", "pause"), PAUSE_HEADERS, ids=[repr(h)[:60] for h, _ in PAUSE_HEADERS]
)
async def test_rate_limit_reset_gives_bounded_pauses(
    api: SimulatedTaskAPI, headers: dict[str, str], pause: float
) -> None:
    task_hash = api.add_task(DONE)
    fake = FakeTime()
    async with client_for(api) as client:  # no client-side pace: only the server's word
        fake.install(client)
        api.inject(task_answer(task_hash, headers), times=1)
        await client.get_task(task_hash)
        await client.get_task(task_hash)
        assert fake.now - 1000.0 == pytest.approx(pause)
        await client.get_task(task_hash)  # one pause, not one per request
        stats = client.stats()
    assert fake.now - 1000.0 == pytest.approx(pause)
    assert api.stats.requests == 3
    assert stats.paused_for == 0.0


PACE_HEADERS = [
    # (headers on one 200 answer, the pace afterwards, for a client configured at 90/min)
    ({"X-RateLimit-Limit": "0"}, 90.0),
    ({"X-RateLimit-Limit": "-90"}, 90.0),
    ({"X-RateLimit-Limit": "many"}, 90.0),
    ({"X-RateLimit-Limit": "90.5"}, 90.0),
    ({"X-RateLimit-Limit": ""}, 90.0),
    ({"X-RateLimit-Limit": "1" + "0" * 30}, 90.0),
    ({"X-RateLimit-Limit": "120"}, 90.0),  # a higher server limit: the client's cap holds
    ({"X-RateLimit-Limit": "30"}, 30.0),  # a lower one lowers the pace
    ({"X-RateLimit-Limit": "1"}, 1.0),  # one a minute: slow, but every wait is bounded
]


@pytest.mark.parametrize(
    ("headers", "pace"), PACE_HEADERS, ids=[h["X-RateLimit-Limit"][:12] for h, _ in PACE_HEADERS]
)
async def test_rate_limit_limit_sets_a_bounded_pace(
    api: SimulatedTaskAPI, headers: dict[str, str], pace: float
) -> None:
    task_hash = api.add_task(DONE)
    fake = FakeTime()
    async with client_for(api, requests_per_minute=90.0) as client:
        fake.install(client)
        api.inject(task_answer(task_hash, headers), times=1)
        starts = []
        for _ in range(5):  # past the burst, requests go one interval apart
            await client.get_task(task_hash)
            starts.append(fake.now)
        stats = client.stats()
    assert stats.requests_per_minute == pace
    assert starts[-1] - starts[-2] == pytest.approx(60.0 / pace)
    assert all(0.0 <= wait <= 60.0 for wait in fake.sleeps), fake.sleeps
    assert api.stats.requests == 5


# -- server text in the command line ---------------------------------------------------------


def task_body_for(task_hash: str, **status: Any) -> dict[str, Any]:
    """The documented body for ``task_hash`` with ``status`` fields replaced."""
    body = fixture_json("get-task-200.json")
    body["hash_value"] = task_hash
    body["status"].update(status)
    return dict(body)


@pytest.mark.parametrize("command", ["get", "watch"])
def test_cli_json_output_survives_deeply_nested_params(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with simulator_in_a_thread() as (api, call):
        task_hash = call(api.add_task, DONE)
        body = task_body_for(task_hash)
        body["params"] = {"filters": deep(500)}
        call(api.inject, Fault.status(200, json.dumps(body)))
        monkeypatch.setenv("LOBSTR_TOKEN", api.api_key)
        code = cli.main([command, task_hash, "--json", "--base-url", api.base_url])
    out, err = capsys.readouterr()
    assert code == cli.EXIT_OK, err
    assert json.loads(out.splitlines()[-1])["hash_value"] == task_hash


HOSTILE_TEXT = "running\x1b[2J\x1b]0;pwned\x07\nFAKE 00:00:00  c5e29d2aba8b  completed"


def test_cli_prints_server_text_inert(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with simulator_in_a_thread() as (api, call):
        steps = [
            ScriptStep(at=0, status=HOSTILE_TEXT, total_results=1),
            ScriptStep(
                at=0.2, status="completed", total_results=2, is_done=True, done_reason=HOSTILE_TEXT
            ),
        ]
        task_hash = call(api.add_task, steps)
        refused = call(api.add_task, DONE)
        call(lambda: api.inject(Fault.status(400, {"detail": HOSTILE_TEXT}), task_hash=refused))
        monkeypatch.setenv("LOBSTR_TOKEN", api.api_key)
        url = ["--base-url", api.base_url]
        code = cli.main(["watch", task_hash, "--plain", "--min-interval", "0.05", *url])
        watched = capsys.readouterr()
        error_code = cli.main(["get", refused, *url])
        failed = capsys.readouterr()
    assert code == cli.EXIT_OK
    assert error_code == cli.EXIT_ERROR
    printed = watched.out + failed.err
    assert "\x1b" not in printed
    assert "\x07" not in printed
    assert not any(line.startswith("FAKE") for line in printed.splitlines())


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pseudo-terminals")
async def test_cli_live_display_survives_markup_in_server_text() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        # Done at once: the first poll (whenever the process gets to it) shows it.
        task_hash = api.add_task(
            [ScriptStep(at=0, status="[/]done", total_results=2, is_done=True, done_reason="[/]")]
        )
        code, screen, err = await asyncio.to_thread(
            run_on_a_terminal,
            ["watch", task_hash, "--min-interval", "0.05", "--base-url", api.base_url],
            api.api_key,
        )
    assert "Traceback" not in err, err
    assert code == cli.EXIT_TASK_FAILED, err  # a terminal state other than completed
    assert "taskwatch summary" in screen
    assert "[/]done" in screen  # shown as text


def run_on_a_terminal(args: list[str], key: str) -> tuple[int, str, str]:
    """Run the CLI with stdout on a pseudo-terminal (so it shows its live display)."""
    main, child = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "LOBSTR_TOKEN"}
    env.update(LOBSTR_TOKEN=key, COLUMNS="120", TERM="xterm")
    with subprocess.Popen(
        [sys.executable, "-m", "taskwatch", *args],
        stdout=child,
        stderr=subprocess.PIPE,
        env=env,
    ) as process:
        os.close(child)
        screen = b""
        with contextlib.suppress(OSError):  # EIO once the child has closed the terminal
            while chunk := os.read(main, 65536):
                screen += chunk
        os.close(main)
        assert process.stderr is not None
        err = process.stderr.read()
        code = process.wait(timeout=30)
    return code, screen.decode(errors="replace"), err.decode(errors="replace")
