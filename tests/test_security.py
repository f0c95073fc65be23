"""The API key stays secret, and goes only where it should.

- It never appears in ``repr``/``str`` of the client, its stats or its budget, nor in the
  message, ``repr`` or formatted traceback of any error taskwatch raises (nor of anything in
  the error's ``__cause__``/``__context__`` chain), along every path: success, each error
  status, retries, transport failures, timeouts, watch_many with ``on_error``, WatchTimeout.
  Every log record at every level is checked too: this module imports ``SECRET``, so the
  conftest guard ``_key_never_logged`` records everything at DEBUG while its tests run.
- The command line, run as a user runs it, with the key in ``LOBSTR_TOKEN`` or in
  ``--api-key``, never prints it, whatever goes wrong; ``--help`` discourages ``--api-key``.
- The key is never sent to a host other than the base URL's (redirects are not followed),
  and plain http is refused for any host but loopback unless ``allow_insecure_http=True``.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskwatch import (
    Client,
    ClientClosedError,
    ConfigurationError,
    TaskwatchError,
    TransportError,
    cli,
)
from taskwatch.testing import Fault, ScriptStep, SimulatedTaskAPI

from .conftest import SECRET, start_cli
from .conftest import fast_client as shared_fast_client

DONE = [ScriptStep(at=0, status="completed", total_results=3, is_done=True)]
FAILED = [ScriptStep.done(0, "failed")]
STUCK = [ScriptStep(at=0, status="running", total_results=1)]


def texts_of(error: BaseException) -> Iterator[str]:
    """Everything an error shows: str and repr of it and of each error in its chain, and
    its formatted traceback (which shows source lines, not local variables)."""
    yield "".join(traceback.format_exception(error))
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield repr(current.args)
        pending += [current.__cause__, current.__context__]


def assert_no_key(*things: object) -> None:
    for thing in things:
        texts = list(texts_of(thing)) if isinstance(thing, BaseException) else [str(thing)]
        for text in texts:
            assert SECRET not in text, text


def fast_client(base_url: str, **options: Any) -> Client:
    """The shared test client with this module's defaults: a 0.15 s timeout."""
    return shared_fast_client(base_url, **{"retry_max_wait": 0.005, "timeout": 0.15, **options})


async def failure_of(call: Awaitable[object]) -> BaseException:
    try:
        await call
    except Exception as error:
        return error
    raise AssertionError("expected an error")


def test_repr_and_str_never_show_the_key() -> None:
    client = Client(SECRET, base_url="https://api.lobstr.io/v1")
    assert_no_key(
        repr(client), str(client), repr(client.stats()), str(client.stats()), repr(client.limiter)
    )
    assert SECRET not in format(client)


FAULTS: dict[str, Callable[[], Fault]] = {
    "400": lambda: Fault.status(400),
    "401": lambda: Fault.status(401),
    "403": lambda: Fault.status(403),
    "404": lambda: Fault.status(404),
    "409": lambda: Fault.status(409),
    "429": lambda: Fault.rate_limited(0.001),
    "500": lambda: Fault.status(500),
    "502 html": lambda: Fault.status(502, "<html>bad gateway</html>", content_type="text/html"),
    "503": lambda: Fault.status(503),
    "504": lambda: Fault.status(504),
    "drop": Fault.drop,
    "truncated": Fault.truncated,
    "hang": Fault.hang,
    "slow drip": lambda: Fault.slow_drip(2.0, 4),
    "html 200": Fault.malformed,
    "empty 200": lambda: Fault.malformed(b""),
    "2 MiB": lambda: Fault.large(2 << 20),
    "redirect": lambda: Fault.redirect("https://elsewhere.example/v1/tasks/x"),
}


@pytest.mark.parametrize("name", list(FAULTS))
async def test_no_error_shows_the_key(api: SimulatedTaskAPI, name: str) -> None:
    task_hash = api.add_task(DONE)
    api.inject(FAULTS[name](), times=None)  # every attempt: the retries are spent too
    async with fast_client(api.base_url) as client:
        error = await failure_of(client.get_task(task_hash))
        assert isinstance(error, TaskwatchError)
        watch_error = await failure_of(client.wait(task_hash, min_interval=0.01))
        failures: dict[str, TaskwatchError] = {}
        async for _ in client.watch_many([task_hash], on_error=failures.__setitem__):
            pass
        assert_no_key(error, watch_error, *failures.values(), repr(client), repr(client.stats()))
    # Every call reached the server, except after a 401: a refused key stops the client.
    assert api.stats.requests >= (1 if name == "401" else 3)


async def test_success_paths_show_no_key(api: SimulatedTaskAPI) -> None:
    done, failed = api.add_task(DONE), api.add_task(FAILED)
    async with fast_client(api.base_url) as client:
        task = await client.get_task(done)
        snapshots = [t async for t in client.watch_many([done, failed], min_interval=0.01)]
        error = await failure_of(client.wait(failed, raise_on_failure=True))
        assert_no_key(repr(task), str(task), *map(repr, snapshots), error)


async def test_wrong_key_timeout_closed_and_config_errors_show_no_key(
    api: SimulatedTaskAPI, tmp_path: Path
) -> None:
    stuck = api.add_task(STUCK)
    async with SimulatedTaskAPI(rate_limit=None) as other:  # a key that is not SECRET
        task_hash = other.add_task(DONE)
        async with fast_client(other.base_url) as client:
            refused = await failure_of(client.get_task(task_hash))
    async with fast_client(api.base_url) as client:
        timed_out = await failure_of(client.wait(stuck, min_interval=0.01, timeout=0.1))
        failures: dict[str, TaskwatchError] = {}
        async for _ in client.watch_many(
            [stuck], timeout=0.1, min_interval=0.01, on_error=failures.__setitem__
        ):
            pass
    closed = await failure_of(client.get_task(stuck))
    assert isinstance(closed, ClientClosedError)
    # A config file holding the key that cannot be parsed: the error names the file only.
    config = tmp_path / "xdg" / "lobstr" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[auth]\ntoken = "{SECRET}\n', encoding="utf-8")
    with pytest.raises(ConfigurationError) as unparsable:
        Client()
    config.write_text(f"[auth]\ntoken = {SECRET}\n", encoding="utf-8")
    with pytest.raises(ConfigurationError) as bare:
        Client()
    insecure = await failure_of(_construct(base_url="http://api.lobstr.io/v1"))
    assert_no_key(
        refused, timed_out, *failures.values(), closed, unparsable.value, bare.value, insecure
    )


async def _construct(**options: Any) -> Client:
    return Client(SECRET, **options)


async def test_transport_errors_show_no_key() -> None:
    async with SimulatedTaskAPI(rate_limit=None, api_key=SECRET) as gone:
        url = gone.base_url
    async with fast_client(url) as client:
        refused = await failure_of(client.get_task("c5e29d2aba8b77cdc56391e7405302de"))
    assert isinstance(refused, TransportError)
    assert_no_key(refused)


async def test_malformed_http_answer_shows_no_key() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nNot A Header Line\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with fast_client(f"http://127.0.0.1:{port}/v1", max_retries=0) as client:
            error = await failure_of(client.get_task("c5e29d2aba8b77cdc56391e7405302de"))
    finally:
        server.close()
        await server.wait_closed()
    assert isinstance(error, TransportError)
    assert_no_key(error)


@pytest.mark.parametrize(
    "key",
    [f"a\n{SECRET}", f"{SECRET}\r\nX-Injected: 1", f"{SECRET}\x00"],
    ids=["newline", "CRLF and a header", "NUL"],
)
def test_a_key_with_control_characters_is_refused_up_front(key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Client(key, base_url="https://api.lobstr.io/v1")
    assert_no_key(info.value)


async def test_the_cli_refuses_a_key_with_a_newline_in_one_line() -> None:
    async with SimulatedTaskAPI(rate_limit=None, api_key=SECRET) as api:
        task_hash = api.add_task(DONE)
        run = await run_cli(
            "newline", ["get", task_hash, "--base-url", api.base_url], env_key=f"{SECRET}\nx"
        )
    assert run.code == cli.EXIT_AUTH, run.err
    assert len(run.err.strip().splitlines()) == 1, run.err
    assert SECRET not in run.err + run.out
    assert api.stats.requests == 0


# -- where the key goes ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"], ids=["other host", "other port"])
async def test_the_key_never_follows_a_redirect(
    api: SimulatedTaskAPI, host: str, status: int
) -> None:
    async with SimulatedTaskAPI(rate_limit=None, api_key=SECRET) as other:
        target = other.add_task(DONE)
        port = other.base_url.rsplit(":", 1)[1].split("/")[0]
        task_hash = api.add_task(DONE)
        api.inject(Fault.redirect(f"http://{host}:{port}/v1/tasks/{target}", status), times=None)
        async with fast_client(api.base_url) as client:
            error = await failure_of(client.get_task(task_hash))
            snapshots = [
                t async for t in client.watch_many([task_hash], on_error=lambda h, e: None)
            ]
        assert other.stats.requests == 0
    assert snapshots == []
    assert getattr(error, "status", None) == status
    assert api.stats.requests == 2  # one per call: a redirect is permanent, never retried
    assert_no_key(error)


@pytest.mark.parametrize(
    "base_url",
    [
        "http://api.lobstr.io/v1",
        "HTTP://API.LOBSTR.IO/v1",
        "http://10.0.0.5/v1",
        "http://192.168.1.1:8080/v1",
        "http://[2001:db8::1]/v1",
        "http://0.0.0.0/v1",
        "http://localhost.evil.example/v1",
        "http://127.0.0.1.nip.io/v1",
        "http://example.com",
    ],
)
def test_plain_http_to_a_remote_host_is_refused(base_url: str) -> None:
    with pytest.raises(ConfigurationError, match="clear text") as info:
        Client(SECRET, base_url=base_url)
    assert_no_key(info.value)
    assert Client(SECRET, base_url=base_url, allow_insecure_http=True).base_url.startswith("http")


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8080/v1",
        "http://127.5.6.7/v1",
        "http://localhost/v1",
        "http://LOCALHOST:9/v1",
        "http://api.localhost/v1",
        "http://[::1]:9/v1",
        "https://api.lobstr.io/v1",
        "https://10.0.0.5/v1",
    ],
)
def test_https_and_loopback_are_allowed(base_url: str) -> None:
    assert Client(SECRET, base_url=base_url).base_url.lower() == base_url.lower()


# -- the command line ------------------------------------------------------------------------


class Run:
    def __init__(self, name: str, code: int, out: str, err: str) -> None:
        self.name, self.code, self.out, self.err = name, code, out, err


async def run_cli(
    name: str, args: list[str], *, env_key: str | None, interrupt_after: bytes | None = None
) -> Run:
    process = await start_cli(args, env_key)
    assert process.stdout is not None
    head = b""
    if interrupt_after is not None:
        while interrupt_after not in head:
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            assert line, "the command ended before it could be interrupted"
            head += line
        process.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Run(name, process.returncode, (head + out).decode(), err.decode())


FAST = ["--min-interval", "0.05", "--max-interval", "0.1"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_the_cli_never_prints_the_key() -> None:
    async with (
        SimulatedTaskAPI(rate_limit=None, api_key=SECRET) as api,
        SimulatedTaskAPI(rate_limit=None) as wrong_key,
    ):
        done, failed, stuck = api.add_task(DONE), api.add_task(FAILED), api.add_task(STUCK)
        flaky, unavailable = api.add_task(DONE), api.add_task(DONE)
        garbage = api.add_task(DONE)
        moved = api.add_task(DONE)
        refused = wrong_key.add_task(DONE)
        # Two 500s then an answer (the CLI's own backoff: about 1.5 s); a 503 that asks
        # for no wait, every time (the retries are spent at once); an HTML page; a redirect.
        api.inject(Fault.status(500), task_hash=flaky, times=2)
        api.inject(
            Fault.status(503, headers={"Retry-After": "0"}), task_hash=unavailable, times=None
        )
        api.inject(Fault.malformed(), task_hash=garbage, times=None)
        api.inject(Fault.redirect("https://elsewhere.example/"), task_hash=moved, times=None)
        url, other = ["--base-url", api.base_url], ["--base-url", wrong_key.base_url]
        scenarios = {
            "get ok": ["get", done, *url],
            "get --json ok": ["get", done, "--json", *url],
            "watch": ["watch", done, failed, *FAST, *url],
            "401": ["watch", refused, *other],
            "404": ["get", "0" * 32, *url],
            "500s": ["get", flaky, *url],
            "503": ["get", unavailable, *url],
            "html": ["watch", garbage, "--json", *url],
            "redirect": ["get", moved, *url],
            "timeout": ["watch", stuck, "--timeout", "0.3", *FAST, *url],
            "ctrl-c": ["watch", stuck, "--plain", *FAST, *url],
        }
        # Every scenario with the key in LOBSTR_TOKEN; a few with --api-key (the key only
        # travels differently to the Client, so the rest would add nothing but seconds).
        runs = [
            run_cli(
                f"env {name}",
                args,
                env_key=SECRET,
                interrupt_after=b"running" if name == "ctrl-c" else None,
            )
            for name, args in scenarios.items()
        ]
        runs += [
            run_cli(
                f"flag {name}",
                [*scenarios[name], "--api-key", SECRET],
                env_key=None,
                interrupt_after=b"running" if name == "ctrl-c" else None,
            )
            for name in ("get ok", "401", "503", "ctrl-c")
        ]
        results = await asyncio.gather(*runs)
    expected = {
        "get ok": cli.EXIT_OK,
        "get --json ok": cli.EXIT_OK,
        "watch": cli.EXIT_TASK_FAILED,
        "401": cli.EXIT_AUTH,
        "404": cli.EXIT_NOT_FOUND,
        "500s": cli.EXIT_OK,
        "503": cli.EXIT_ERROR,
        "html": cli.EXIT_ERROR,
        "redirect": cli.EXIT_ERROR,
        "timeout": cli.EXIT_TIMEOUT,
        "ctrl-c": cli.EXIT_INTERRUPTED,
    }
    for run in results:
        print(f"FIGURES cli {run.name:<20} exit {run.code}")
        assert run.code == expected[run.name.split(" ", 1)[1]], (run.name, run.err)
        assert SECRET not in run.out, run.name
        assert SECRET not in run.err, run.name
        assert "Traceback" not in run.err, (run.name, run.err)
    assert wrong_key.stats.requests == 2  # the refused key was sent there, and only there


@pytest.mark.parametrize("command", ["watch", "get"])
def test_help_discourages_the_key_flag(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--api-key" in text
    assert "discouraged" in text
    assert "LOBSTR_TOKEN" in text
