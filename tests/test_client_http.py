"""The client against real aiohttp servers on 127.0.0.1: retries, timeouts, resets, redirects,
size caps, session ownership and clean cancellation (the suite fails on any ResourceWarning)."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from taskwatch import (
    APIError,
    Client,
    ClientClosedError,
    ConfigurationError,
    ResponseFormatError,
    ServerError,
    Task,
    TaskwatchError,
    TLSError,
    TransportError,
)
from taskwatch.testing import ScriptStep, SimulatedTaskAPI

from .conftest import SECRET, TASK_HASH, ServeFactory, base_url, fast_client, fixture_bytes

TASK_PATH = "/v1/tasks/{task_hash}"
BODY = fixture_bytes("get-task-200.json")


def ok_response() -> web.Response:
    return web.Response(
        body=BODY,
        content_type="application/json",
        headers={
            "X-RateLimit-Limit": "90",
            "X-RateLimit-Remaining": "89",
            "X-RateLimit-Reset": "1900000000",
        },
    )


async def test_get_task_over_http(serve: ServeFactory) -> None:
    seen: list[web.Request] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request)
        return ok_response()

    server = await serve({TASK_PATH: handler})
    async with fast_client(base_url(server)) as client:
        task = await client.get_task(TASK_HASH)
        stats = client.stats()
    assert task.total_results == 156
    assert seen[0].headers["Authorization"] == f"Token {SECRET}"
    assert seen[0].match_info["task_hash"] == TASK_HASH
    assert seen[0].headers["User-Agent"].startswith("taskwatch/")
    assert stats.server_limit == 90
    assert stats.server_remaining == 89
    assert stats.server_reset == 1900000000.0


async def test_connection_refused_is_retried_then_transport_error() -> None:
    # Find a port nobody listens on: bind, note it, close.
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    async with fast_client(f"http://127.0.0.1:{port}/v1") as client:
        with pytest.raises(TransportError, match="could not reach the API") as info:
            await client.get_task(TASK_HASH)
        assert client.stats().transport_errors == 3
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectionError)
    assert SECRET not in str(info.value)
    assert str(info.value) == (
        f"could not reach the API: could not connect to 127.0.0.1:{port}: Connection refused"
    )  # no "ssl:default" for an http URL


async def test_https_to_a_plain_http_server_names_the_tls_handshake(api: SimulatedTaskAPI) -> None:
    task_hash = api.add_task([ScriptStep(at=0, status="running")])
    https = api.base_url.replace("http://", "https://")
    async with fast_client(https, max_retries=0) as client:
        with pytest.raises(TransportError) as info:
            await client.get_task(task_hash)
    message = str(info.value)
    assert message.startswith(f"could not reach the API: the TLS handshake with {https[8:-3]}")
    assert message.endswith("; is the server speaking https?")


async def test_a_failed_tls_handshake_is_not_retried(api: SimulatedTaskAPI) -> None:
    task_hash = api.add_task([ScriptStep(at=0, status="running")])
    https = api.base_url.replace("http://", "https://")
    async with fast_client(https, max_retries=5) as client:
        with pytest.raises(TLSError, match="is the server speaking https") as info:
            await client.get_task(task_hash)
        stats = client.stats()
    assert isinstance(info.value, TransportError)  # still caught as one
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectorSSLError)
    assert info.value.task_hash == task_hash
    assert (stats.requests, stats.retries, stats.transport_errors) == (1, 0, 1)


def _tls_context(purpose: ssl.Purpose) -> ssl.SSLContext:
    """An SSL context with the self-signed certificate for 127.0.0.1 in tests/fixtures/tls
    (made with ``openssl req -x509 -newkey rsa:2048 -nodes -days 36500 -subj /CN=127.0.0.1
    -addext subjectAltName=IP:127.0.0.1``): the server's, or a client's that trusts it."""
    pem = str(Path(__file__).parent / "fixtures" / "tls" / "selfsigned.pem")
    if purpose is ssl.Purpose.CLIENT_AUTH:
        context = ssl.create_default_context(purpose)
        context.load_cert_chain(pem)
        return context
    return ssl.create_default_context(purpose, cafile=pem)


async def test_a_refused_certificate_is_not_retried() -> None:
    async def handler(request: web.Request) -> web.Response:
        return ok_response()

    app = web.Application()
    app.router.add_get(TASK_PATH, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=_tls_context(ssl.Purpose.CLIENT_AUTH))
    await site.start()
    try:
        url = f"https://127.0.0.1:{runner.addresses[0][1]}/v1"
        async with fast_client(url, max_retries=5) as client:  # the default trust store
            with pytest.raises(TLSError, match="its certificate was refused") as info:
                await client.get_task(TASK_HASH)
            stats = client.stats()
        assert isinstance(info.value.__cause__, aiohttp.ClientConnectorCertificateError)
        assert (stats.requests, stats.retries) == (1, 0)
        assert SECRET not in str(info.value)
        # The same server, trusted: it really is https, and answers.
        connector = aiohttp.TCPConnector(ssl=_tls_context(ssl.Purpose.SERVER_AUTH))
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            fast_client(url, session=session) as client,
        ):
            task = await client.get_task(TASK_HASH)
        assert task.hash_value == TASK_HASH
    finally:
        await runner.cleanup()


async def test_hanging_server_hits_the_per_attempt_timeout(serve: ServeFactory) -> None:
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        await asyncio.sleep(30)
        return ok_response()

    server = await serve({TASK_PATH: handler})
    async with fast_client(base_url(server), timeout=0.2, max_retries=1) as client:
        with pytest.raises(TransportError, match="per-attempt timeout"):
            await client.get_task(TASK_HASH)
    assert calls == 2


async def test_reset_mid_response_is_retried(serve: ServeFactory) -> None:
    calls = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            response = web.StreamResponse(headers={"Content-Length": str(len(BODY))})
            await response.prepare(request)
            await response.write(BODY[:50])
            assert request.transport is not None
            request.transport.close()
            return response
        return ok_response()

    server = await serve({TASK_PATH: handler})
    async with fast_client(base_url(server)) as client:
        task = await client.get_task(TASK_HASH)
        assert client.stats().transport_errors == 1
    assert task.hash_value == TASK_HASH
    assert calls == 2


async def test_server_errors_then_success(serve: ServeFactory) -> None:
    statuses = [503, 500]

    async def handler(request: web.Request) -> web.Response:
        if statuses:
            return web.json_response({"detail": "down"}, status=statuses.pop(0))
        return ok_response()

    server = await serve({TASK_PATH: handler})
    async with fast_client(base_url(server)) as client:
        await client.get_task(TASK_HASH)
        assert client.stats().requests == 3


async def test_persistent_server_error_raises_the_last_one(serve: ServeFactory) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"detail": "still down"}, status=503)

    server = await serve({TASK_PATH: handler})
    async with fast_client(base_url(server)) as client:
        with pytest.raises(ServerError, match="still down") as info:
            await client.get_task(TASK_HASH)
    assert info.value.status == 503


async def test_redirect_to_another_host_is_not_followed(serve: ServeFactory) -> None:
    other_calls: list[web.Request] = []

    async def other(request: web.Request) -> web.Response:
        other_calls.append(request)
        return ok_response()

    other_server = await serve({TASK_PATH: other})
    target = str(other_server.make_url(f"/v1/tasks/{TASK_HASH}")).replace("127.0.0.1", "localhost")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(target)

    server = await serve({TASK_PATH: redirect})
    async with fast_client(base_url(server)) as client:
        with pytest.raises(APIError, match="redirect") as info:
            await client.get_task(TASK_HASH)
    assert info.value.status == 302
    assert other_calls == []  # the key went nowhere else


async def test_declared_huge_body_is_refused(serve: ServeFactory) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=b"{" + b" " * (2 << 20) + b"}", content_type="application/json")

    server = await serve({TASK_PATH: handler})
    async with fast_client(base_url(server)) as client:
        with pytest.raises(ResponseFormatError, match="byte limit"):
            await client.get_task(TASK_HASH)
        assert client.stats().requests == 1


async def test_streamed_huge_body_is_refused(serve: ServeFactory) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b" " * 65536
        try:
            for _ in range(64):
                await response.write(chunk)
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass  # the client hung up, as it should
        return response

    server = await serve({TASK_PATH: handler})
    async with fast_client(base_url(server)) as client:
        with pytest.raises(ResponseFormatError, match="byte limit"):
            await client.get_task(TASK_HASH)


async def test_slow_drip_within_the_timeout_succeeds(serve: ServeFactory) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(BODY), 100):
            await response.write(BODY[start : start + 100])
            await asyncio.sleep(0.02)
        await response.write_eof()
        return response

    server = await serve({TASK_PATH: handler})
    async with fast_client(base_url(server), timeout=5) as client:
        task = await client.get_task(TASK_HASH)
    assert task.total_results == 156


async def test_callers_session_is_used_and_left_open(serve: ServeFactory) -> None:
    async def handler(request: web.Request) -> web.Response:
        return ok_response()

    server = await serve({TASK_PATH: handler})
    async with aiohttp.ClientSession() as session:
        async with fast_client(base_url(server), session=session) as client:
            await client.get_task(TASK_HASH)
        assert not session.closed
        async with session.get(server.make_url(f"/v1/tasks/{TASK_HASH}")) as response:
            assert json.loads(await response.read())["hash_value"] == TASK_HASH


async def test_own_session_is_created_once_and_closed(serve: ServeFactory) -> None:
    async def handler(request: web.Request) -> web.Response:
        return ok_response()

    server = await serve({TASK_PATH: handler})
    client = fast_client(base_url(server))
    await client.get_task(TASK_HASH)
    session = client._session
    await client.get_task(TASK_HASH)
    assert client._session is session
    assert session is not None
    await client.aclose()
    assert session.closed


async def test_cancelling_an_in_flight_call_leaks_nothing(serve: ServeFactory) -> None:
    started = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        started.set()
        await asyncio.sleep(30)
        return ok_response()

    server = await serve({TASK_PATH: handler})
    async with fast_client(base_url(server)) as client:
        call = asyncio.ensure_future(client.get_task(TASK_HASH))
        await started.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    # filterwarnings=error turns an unclosed session/connection into a failure here.


async def test_concurrent_calls_share_one_pool(serve: ServeFactory) -> None:
    peers: set[int] = set()
    # Ten hashes: calls on one hash would share one request (see test_scheduler.py).
    hashes = [f"{n:02d}" + TASK_HASH[2:] for n in range(10)]

    async def handler(request: web.Request) -> web.Response:
        assert request.transport is not None
        peers.add(request.transport.get_extra_info("peername")[1])
        body = BODY.replace(TASK_HASH.encode(), request.match_info["task_hash"].encode())
        return web.Response(body=body, content_type="application/json")

    server = await serve({TASK_PATH: handler})
    async with fast_client(base_url(server)) as client:
        for _ in range(5):
            await asyncio.gather(*(client.get_task(task_hash) for task_hash in hashes))
        assert client.stats().requests == 50
    assert len(peers) <= 10  # connections were reused, not one per call


# -- one Client, several event loops (each asyncio.run() makes a new one) ----------------------


@pytest.fixture
def threaded_server() -> Iterator[str]:
    """A task server on its own thread and event loop, so that it outlives the test's
    ``asyncio.run()`` calls; yields the base URL. It closes each connection after its answer
    (a connection kept alive in a loop that has ended could only be left to the garbage
    collector)."""
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def handle(request: web.Request) -> web.Response:
        body = {**json.loads(BODY), "hash_value": request.match_info["task_hash"]}
        body["status"] = {**body["status"], "is_done": True, "status": "completed"}
        return web.json_response(body, headers={"Connection": "close"})

    async def main() -> None:
        app = web.Application()
        app.router.add_get(TASK_PATH, handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["port"] = runner.addresses[0][1]
        state["stop"] = stop = asyncio.Event()
        state["loop"] = asyncio.get_running_loop()
        ready.set()
        await stop.wait()
        await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(main(),))
    thread.start()
    assert ready.wait(10)
    yield f"http://127.0.0.1:{state['port']}/v1"
    state["loop"].call_soon_threadsafe(state["stop"].set)
    thread.join(10)


HASHES = [f"{n:032x}" for n in range(30)]


def test_a_client_reused_in_a_second_asyncio_run_works(threaded_server: str) -> None:
    """Each asyncio.run() is a new event loop; the Client's own session, its in-flight gate
    and its limiter's queue belong to one loop, so the client moves to the new one."""
    client = Client(SECRET, base_url=threaded_server, requests_per_minute=6000)

    async def poll_many() -> list[Task]:  # more than the burst: callers queue in the limiter
        return await asyncio.gather(*(client.get_task(h) for h in HASHES))

    async def watch_some() -> list[Task]:
        return [task async for task in client.watch_many(HASHES[:5]) if task.is_done]

    async def close() -> None:
        await client.aclose()

    assert len(asyncio.run(poll_many())) == 30
    assert len(asyncio.run(poll_many())) == 30
    assert len(asyncio.run(watch_some())) == 5
    assert (asyncio.run(client.wait(HASHES[0]))).is_done
    asyncio.run(close())
    assert client.stats().requests == 30 + 30 + 5 + 1
    with pytest.raises(ClientClosedError):
        asyncio.run(client.get_task(HASHES[0]))


def test_a_callers_session_from_another_loop_is_a_clear_error(threaded_server: str) -> None:
    box: dict[str, Any] = {}

    async def first() -> Task:
        box["session"] = aiohttp.ClientSession()
        box["client"] = Client(SECRET, base_url=threaded_server, session=box["session"])
        client: Client = box["client"]
        return await client.get_task(HASHES[0])

    async def second() -> Task:
        client: Client = box["client"]
        return await client.get_task(HASHES[1])

    async def cleanup() -> None:
        await box["client"].aclose()
        await box["session"].close()

    assert asyncio.run(first()).is_done
    with pytest.raises(ConfigurationError) as caught:
        asyncio.run(second())
    asyncio.run(cleanup())
    assert isinstance(caught.value, TaskwatchError)
    assert caught.value.task_hash == HASHES[1]
    assert "belongs to another event loop" in str(caught.value)
    assert "inside the event loop that uses them" in str(caught.value)
