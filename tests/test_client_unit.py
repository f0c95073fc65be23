"""Request/response mapping at unit level, with aioresponses (no sockets)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
import yarl
from aioresponses import aioresponses

from taskwatch import (
    APIError,
    AuthenticationError,
    BadRequestError,
    Client,
    ClientClosedError,
    ConfigurationError,
    InvalidTaskHashError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    TransportError,
)
from taskwatch._request import Gate as _Gate

from .conftest import SECRET, TASK_HASH, FakeTime, fixture_bytes

BASE = "https://api.lobstr.io/v1"
URL = f"{BASE}/tasks/{TASK_HASH}"


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def client(time: FakeTime) -> AsyncIterator[Client]:
    async with Client(SECRET, requests_per_minute=None, max_retries=3) as client:
        time.install(client)
        yield client


class _FinishedUpload:
    output_size = 0


class _CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 builds responses without the ``stream_writer`` argument that
    aiohttp 3.14 requires (pnuckowski/aioresponses#289); supply a finished one."""

    def __init__(self, method: str, url: yarl.URL, **kwargs: Any) -> None:
        if "stream_writer" in _RESPONSE_PARAMETERS:
            kwargs.setdefault("stream_writer", _FinishedUpload())
        super().__init__(method, url, **kwargs)


_RESPONSE_PARAMETERS = inspect.signature(aiohttp.ClientResponse.__init__).parameters


class _Mock(aioresponses):
    def add(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("response_class", _CompatResponse)
        super().add(*args, **kwargs)


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with _Mock() as mock:
        yield mock


def requests_made(mocked: aioresponses) -> int:
    return sum(len(calls) for calls in mocked.requests.values())


async def test_get_task_sends_the_documented_request(client: Client, mocked: aioresponses) -> None:
    mocked.get(URL, body=fixture_bytes("get-task-200.json"), content_type="application/json")
    task = await client.get_task(TASK_HASH)
    assert task.total_results == 156
    ((method, url), calls) = next(iter(mocked.requests.items()))
    assert method == "GET"
    assert str(url) == URL
    kwargs = calls[0].kwargs
    assert kwargs["headers"]["Authorization"] == f"Token {SECRET}"
    assert kwargs["allow_redirects"] is False
    assert client.stats().requests == 1


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (400, b'{"detail": "bad"}', BadRequestError),
        (401, fixture_bytes("error-401-detail.json"), AuthenticationError),
        (403, b'{"detail": "You do not have permission."}', PermissionDeniedError),
        (404, fixture_bytes("get-task-404.json"), NotFoundError),
        (409, b"", APIError),
    ],
)
async def test_permanent_errors_raise_after_exactly_one_request(
    client: Client,
    mocked: aioresponses,
    time: FakeTime,
    status: int,
    body: bytes,
    cls: type[APIError],
) -> None:
    mocked.get(URL, status=status, body=body, repeat=True)
    with pytest.raises(cls) as info:
        await client.get_task(TASK_HASH)
    assert type(info.value) is cls
    assert info.value.task_hash == TASK_HASH
    assert requests_made(mocked) == 1
    assert time.sleeps == []


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (500, b'{"detail": "Internal"}', ServerError),
        (502, b"<html>bad gateway</html>", ServerError),
        (503, b"", ServerError),
        (504, b"", ServerError),
        (429, fixture_bytes("error-429-ratelimit.json"), RateLimitError),
    ],
)
async def test_transient_errors_are_retried_then_raised(
    client: Client,
    mocked: aioresponses,
    time: FakeTime,
    status: int,
    body: bytes,
    cls: type[APIError],
) -> None:
    mocked.get(URL, status=status, body=body, repeat=True)
    with pytest.raises(cls):
        await client.get_task(TASK_HASH)
    assert requests_made(mocked) == 4  # 1 + max_retries
    assert client.stats().retries == 3
    if status == 429:
        # No Retry-After: each 429 also pauses the shared budget for 1 s.
        assert sum(time.sleeps) >= 3.0
    else:
        assert len(time.sleeps) == 3


async def test_transient_then_success(client: Client, mocked: aioresponses) -> None:
    mocked.get(URL, status=503)
    mocked.get(URL, status=502)
    mocked.get(URL, body=fixture_bytes("get-task-200.json"))
    task = await client.get_task(TASK_HASH)
    assert task.hash_value == TASK_HASH
    assert client.stats().server_errors == 2


async def test_backoff_grows(client: Client, mocked: aioresponses, time: FakeTime) -> None:
    mocked.get(URL, status=500, repeat=True)
    with pytest.raises(ServerError):
        await client.get_task(TASK_HASH)
    waits = time.sleeps
    # 0.5 * 2**n plus up to 0.5 of jitter
    for n, wait in enumerate(waits):
        assert 0.5 * 2**n <= wait <= 0.5 * 2**n + 0.5


async def test_retry_after_overrides_backoff(
    client: Client, mocked: aioresponses, time: FakeTime
) -> None:
    mocked.get(
        URL,
        status=429,
        headers={"Retry-After": "7"},
        body=fixture_bytes("error-429-ratelimit.json"),
    )
    mocked.get(URL, body=fixture_bytes("get-task-200.json"))
    await client.get_task(TASK_HASH)
    assert time.sleeps == [7.0]
    assert client.stats().rate_limited == 1


async def test_throttled_message_counts_as_retry_after(
    client: Client, mocked: aioresponses, time: FakeTime
) -> None:
    mocked.get(URL, status=429, body=fixture_bytes("error-429-throttled.json"))
    mocked.get(URL, body=fixture_bytes("get-task-200.json"))
    await client.get_task(TASK_HASH)
    assert time.sleeps == [2.0]


async def test_huge_retry_after_is_no_advice(
    client: Client, mocked: aioresponses, time: FakeTime
) -> None:
    mocked.get(URL, status=503, headers={"Retry-After": "86400"})
    mocked.get(URL, body=fixture_bytes("get-task-200.json"))
    await client.get_task(TASK_HASH)
    # A day is absurd: the client's own first backoff (0.5 s plus up to 0.5 s of jitter).
    assert len(time.sleeps) == 1
    assert 0.5 <= time.sleeps[0] <= 1.0


async def test_connection_errors_become_transport_errors(
    client: Client, mocked: aioresponses
) -> None:
    mocked.get(URL, exception=ConnectionResetError("reset by peer"), repeat=True)
    with pytest.raises(TransportError, match="could not reach the API") as info:
        await client.get_task(TASK_HASH)
    assert isinstance(info.value.__cause__, ConnectionResetError)
    assert requests_made(mocked) == 4
    assert client.stats().transport_errors == 4


async def test_timeouts_become_transport_errors(client: Client, mocked: aioresponses) -> None:
    mocked.get(URL, exception=TimeoutError(), repeat=True)
    with pytest.raises(TransportError, match="per-attempt timeout"):
        await client.get_task(TASK_HASH)


async def test_garbage_200_is_a_format_error_without_retry(
    client: Client, mocked: aioresponses
) -> None:
    mocked.get(URL, body=b"<html>hello</html>", repeat=True)
    with pytest.raises(ResponseFormatError):
        await client.get_task(TASK_HASH)
    assert requests_made(mocked) == 1


async def test_cut_off_200_is_retried(client: Client, mocked: aioresponses) -> None:
    mocked.get(URL, body=fixture_bytes("get-task-200.json")[:100])
    mocked.get(URL, body=fixture_bytes("get-task-200.json"))
    task = await client.get_task(TASK_HASH)
    assert task.total_results == 156
    assert requests_made(mocked) == 2


async def test_max_retries_zero_means_one_request(mocked: aioresponses) -> None:
    mocked.get(URL, status=503, repeat=True)
    async with Client(SECRET, requests_per_minute=None, max_retries=0) as client:
        with pytest.raises(ServerError):
            await client.get_task(TASK_HASH)
    assert requests_made(mocked) == 1


async def test_invalid_hash_sends_nothing(client: Client, mocked: aioresponses) -> None:
    with pytest.raises(InvalidTaskHashError):
        await client.get_task("../me")
    assert requests_made(mocked) == 0


async def test_closed_client_refuses_calls(mocked: aioresponses) -> None:
    client = Client(SECRET)
    await client.aclose()
    await client.aclose()  # idempotent
    with pytest.raises(ClientClosedError, match="closed"):
        await client.get_task(TASK_HASH)
    assert client.closed
    assert requests_made(mocked) == 0


async def test_key_never_in_repr_errors_or_logs(
    client: Client, mocked: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mocked.get(URL, status=500, body=b'{"detail": "boom"}')
    mocked.get(URL, status=401, body=fixture_bytes("error-401-detail.json"))
    with pytest.raises(AuthenticationError) as info:
        await client.get_task(TASK_HASH)
    texts = [repr(client), str(client), str(info.value), repr(info.value)]
    texts += [record.getMessage() for record in caplog.records]
    assert any("retrying" in text for text in texts)  # the retry was logged...
    for text in texts:
        assert SECRET not in text  # ...and nothing holds the key


@pytest.mark.parametrize(
    "base_url", ["http://api.lobstr.io/v1", "http://10.0.0.5/v1", "http://example.com"]
)
def test_plain_http_to_remote_hosts_refused(base_url: str) -> None:
    with pytest.raises(ConfigurationError, match="clear text"):
        Client(SECRET, base_url=base_url)
    Client(SECRET, base_url=base_url, allow_insecure_http=True)


@pytest.mark.parametrize(
    "base_url", ["http://127.0.0.1:8080/v1", "http://localhost/v1", "http://[::1]:9/v1"]
)
def test_plain_http_to_loopback_allowed(base_url: str) -> None:
    assert re.match(r"http://", Client(SECRET, base_url=base_url).base_url)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": 0},
        {"max_retries": -1},
        {"requests_per_minute": 0},
        {"retry_initial_wait": 5, "retry_max_wait": 1},
        {"base_url": "not a url"},
    ],
)
def test_bad_settings_are_configuration_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        Client(SECRET, **kwargs)  # type: ignore[arg-type]


async def test_in_flight_gate_is_first_come_first_served() -> None:
    gate = _Gate(2)
    assert gate.try_enter()
    assert gate.try_enter()
    assert not gate.try_enter()
    order: list[int] = []

    async def waiter(index: int) -> None:
        await gate.enter()
        order.append(index)

    waiters = [asyncio.ensure_future(waiter(i)) for i in range(3)]
    await asyncio.sleep(0)
    assert order == []
    gate.leave()
    gate.leave()
    await asyncio.sleep(0)
    assert order == [0, 1]  # each leave handed its slot to the next in line
    gate.leave()
    await asyncio.gather(*waiters)
    assert order == [0, 1, 2]
    gate.leave()  # the two holders left (waiters 1 and 2) go
    gate.leave()
    assert gate.try_enter()
    assert gate.try_enter()
    assert not gate.try_enter()


async def test_in_flight_gate_survives_cancelled_waiters() -> None:
    gate = _Gate(1)
    assert gate.try_enter()
    first = asyncio.ensure_future(gate.enter())
    second = asyncio.ensure_future(gate.enter())
    await asyncio.sleep(0)
    first.cancel()  # gives up before its turn
    await asyncio.sleep(0)
    gate.leave()
    await second  # the slot skipped the cancelled waiter
    handed = asyncio.ensure_future(gate.enter())
    await asyncio.sleep(0)
    gate.leave()  # hands the slot to `handed`...
    handed.cancel()  # ...which is cancelled before it runs, and must pass it on
    with pytest.raises(asyncio.CancelledError):
        await handed
    assert gate.try_enter()  # the slot was not lost
    assert first.cancelled()
