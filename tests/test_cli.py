"""The command line, run as a user runs it: a subprocess against the simulated API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from taskwatch import cli
from taskwatch.redis import budget_name
from taskwatch.testing import Fault, ScriptStep, SimulatedTaskAPI

from .conftest import CLI_COMMAND, REDIS_URL, cli_env, closed_port, start_cli


class Result:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


async def run_cli(args: Sequence[str], key: str | None = None, timeout: float = 60) -> Result:
    process = await start_cli(args, key)
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


def script(state: str, results: int = 5) -> list[ScriptStep]:
    return [
        ScriptStep(at=0, status="running", total_results=1, total_pages=1),
        ScriptStep.done(0.3, state, total_results=results, total_pages=2),
    ]


FAST = ["--min-interval", "0.05", "--max-interval", "0.2"]


async def test_demo_runs_and_summarises() -> None:
    result = await run_cli(["demo", "--tasks", "4", "--speed", "80", "--seed", "3", "--plain"])
    assert result.code == 0, result.err
    assert result.err == ""
    lines = result.out.splitlines()
    assert lines[0].startswith("taskwatch demo: 4 simulated tasks")
    header = next(i for i, line in enumerate(lines) if line.startswith("task "))
    table = lines[header + 1 : header + 5]
    assert len(table) == 4
    assert all(row.split()[1] in {"completed", "aborted", "failed"} for row in table)
    assert lines[-1].endswith("(the API's 90 a minute of simulated time, at 80x)")


async def test_demo_json_is_ndjson_with_one_terminal_per_task() -> None:
    result = await run_cli(["demo", "--tasks", "5", "--speed", "80", "--json"])
    assert result.code == 0, result.err
    records = [json.loads(line) for line in result.out.splitlines()]
    done = [r["hash_value"] for r in records if r["status"]["is_done"]]
    assert len(done) == len(set(done)) == 5
    assert set(records[0]) >= {"hash_value", "status", "created_at", "params", "object"}


async def test_watch_exit_codes() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        ok = [api.add_task(script("completed")) for _ in range(2)]
        failed = api.add_task(script("failed"))
        aborted = api.add_task(script("aborted"))

        result = await run_cli(
            ["watch", *ok, "--plain", *FAST, "--base-url", api.base_url], api.api_key
        )
        assert result.code == cli.EXIT_OK, result.err
        assert result.out.count("completed") >= 2

        result = await run_cli(
            ["watch", ok[0], failed, aborted, "--plain", *FAST, "--base-url", api.base_url],
            api.api_key,
        )
        assert result.code == cli.EXIT_TASK_FAILED
        assert "failed" in result.out
        assert "aborted" in result.out

        unknown = "0" * 32
        result = await run_cli(
            ["watch", ok[0], unknown, *FAST, "--base-url", api.base_url], api.api_key
        )
        assert result.code == cli.EXIT_NOT_FOUND
        assert result.err.strip() == f"taskwatch: error: 404: Task not found (task {unknown})"


async def test_wrong_key_is_one_line_and_never_echoed() -> None:
    wrong = "sk-wrong-key-that-must-not-appear"
    async with SimulatedTaskAPI(rate_limit=None) as api:
        task_hash = api.add_task(script("completed"))
        result = await run_cli(["watch", task_hash, "--base-url", api.base_url], wrong)
        assert result.code == cli.EXIT_AUTH
        assert result.err.strip() == f"taskwatch: error: 401: Invalid token. (task {task_hash})"
        result2 = await run_cli(
            ["get", task_hash, "--base-url", api.base_url, "--api-key", wrong], None
        )
    assert result2.code == cli.EXIT_AUTH
    for text in (result.out, result.err, result2.out, result2.err):
        assert wrong not in text
        assert "Traceback" not in text


async def test_watch_and_get_on_a_budget_shared_on_redis(redis_client: Any) -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        tasks = [api.add_task(script("completed")) for _ in range(2)]
        name = budget_name(api.api_key)
        try:
            watched = await run_cli(
                [
                    "watch",
                    *tasks,
                    "--plain",
                    *FAST,
                    "--base-url",
                    api.base_url,
                    "--redis-url",
                    REDIS_URL,
                ],
                api.api_key,
            )
            assert watched.code == cli.EXIT_OK, watched.err
            assert await redis_client.exists(f"{name}:next") == 1  # slots came from Redis
            got = await run_cli(
                ["get", tasks[0], "--base-url", api.base_url, "--redis-url", REDIS_URL],
                api.api_key,
            )
            assert got.code == cli.EXIT_OK, got.err
            assert f"hash_value     {tasks[0]}" in got.out
        finally:
            await redis_client.delete(f"{name}:next", f"{name}:paused")
    assert watched.out.count("completed") >= 2
    assert watched.err == ""


async def test_an_unreachable_redis_budget_is_one_line_and_the_url_is_never_echoed() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        task_hash = api.add_task(script("completed"))
        url = f"redis://:hunter2-secret@127.0.0.1:{closed_port()}/0"
        result = await run_cli(
            ["get", task_hash, "--base-url", api.base_url, "--redis-url", url], api.api_key
        )
        assert api.stats.requests == 0  # nothing was sent without a slot
    assert result.code == cli.EXIT_ERROR
    [line] = result.err.strip().splitlines()
    assert line.startswith("taskwatch: error: the shared rate budget on Redis (taskwatch:{")
    assert line.endswith("; the request was not sent")
    assert "hunter2" not in result.out + result.err
    assert api.api_key not in result.out + result.err


@pytest.mark.parametrize("url", ["nope", "redis://:hunter2-secret@host:port/0"])
async def test_a_bad_redis_url_is_a_usage_error_never_echoed(url: str) -> None:
    result = await run_cli(["get", "c5e29d2aba8b77cdc56391e7405302de", "--redis-url", url])
    assert result.code == cli.EXIT_USAGE
    assert "argument --redis-url: not a Redis URL" in result.err
    assert url not in result.err
    assert "hunter2" not in result.err


async def test_no_key_anywhere() -> None:
    result = await run_cli(["get", "c5e29d2aba8b77cdc56391e7405302de"])
    assert result.code == cli.EXIT_AUTH
    assert len(result.err.strip().splitlines()) == 1
    assert "LOBSTR_TOKEN" in result.err


async def test_watch_timeout_exit_code() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        stuck = api.add_task([ScriptStep(at=0, status="running", total_results=3)])
        result = await run_cli(
            ["watch", stuck, "--timeout", "0.5", *FAST, "--base-url", api.base_url, "--json"],
            api.api_key,
        )
    assert result.code == cli.EXIT_TIMEOUT
    records = [json.loads(line) for line in result.out.splitlines()]
    assert records[-1]["error"]["type"] == "WatchTimeout"


async def test_get_prints_one_task() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        task_hash = api.add_task(script("completed", results=42))
        await asyncio.sleep(0.35)
        text = await run_cli(["get", task_hash, "--base-url", api.base_url], api.api_key)
        as_json = await run_cli(
            ["get", task_hash, "--json", "--base-url", api.base_url], api.api_key
        )
    assert text.code == 0
    assert "total_results  42" in text.out
    assert json.loads(as_json.out)["status"]["total_results"] == 42


async def test_invalid_hash_is_a_usage_error() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        result = await run_cli(["get", "../etc", "--base-url", api.base_url], api.api_key)
        assert api.stats.requests == 0
    assert result.code == cli.EXIT_USAGE
    assert "invalid task hash" in result.err
    assert len(result.err.splitlines()) == 1


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_ctrl_c_stops_cleanly_with_the_partial_summary() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        stuck = api.add_task([ScriptStep(at=0, status="running", total_results=3)])
        process = await start_cli(
            ["watch", stuck, "--plain", *FAST, "--base-url", api.base_url], api.api_key
        )
        assert process.stdout is not None
        first = await asyncio.wait_for(process.stdout.readline(), 20)
        assert b"running" in first
        process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == cli.EXIT_INTERRUPTED
    assert stuck in out.decode().split("\n\n", 1)[-1]  # the summary table names the task
    assert "Traceback" not in err.decode()


def test_help_discourages_the_key_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["watch", "--help"])
    assert info.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "discouraged" in help_text
    assert "LOBSTR_TOKEN" in help_text


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["demo", "--tasks", "0"])
    assert info.value.code == cli.EXIT_USAGE
    assert cli.main(["watch", "abc", "--min-interval", "5", "--max-interval", "1"]) == 2
    assert "below" in capsys.readouterr().err


# -- pipes, signals and exit codes, as a shell would see them -------------------------------

STUCK = [ScriptStep(at=0, status="running", total_results=3)]
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  ")


async def run_with_closed_stdout(args: Sequence[str], key: str | None) -> Result:
    """Run the CLI with stdout a pipe nobody reads (``| head`` once head has exited)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = await start_cli(args, key, stdout=write_end)
    finally:
        os.close(write_end)
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Result(process.returncode, "", err.decode())


async def test_a_closed_stdout_is_a_quiet_exit() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        done = api.add_task(script("completed"))
        url = ["--base-url", api.base_url]
        runs = [
            ["demo", "--tasks", "2", "--speed", "200", "--plain"],
            ["demo", "--tasks", "2", "--speed", "200", "--json"],
            ["get", done, *url],
            ["get", done, "--json", *url],
            ["watch", done, "--plain", *FAST, *url],
            ["watch", done, "--json", *FAST, *url],
        ]
        results = await asyncio.gather(*(run_with_closed_stdout(a, api.api_key) for a in runs))
        help_run = await run_with_closed_stdout(["watch", "--help"], None)
    for args, result in zip(runs, results, strict=True):
        assert result.code == cli.EXIT_BROKEN_PIPE, (args, result.err)
        assert result.err == "", (args, result.err)
    assert (help_run.code, help_run.err) == (0, "")  # argparse ignores it: so do we


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_ctrl_c_with_the_reader_gone_prints_the_summary_on_stderr() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        stuck = api.add_task(STUCK)
        read_end, write_end = os.pipe()
        process = await start_cli(
            ["watch", stuck, "--plain", *FAST, "--base-url", api.base_url],
            api.api_key,
            stdout=write_end,
        )
        os.close(write_end)
        with os.fdopen(read_end, "rb") as reader:
            first = await asyncio.wait_for(asyncio.to_thread(reader.readline), 20)
        assert b"running" in first  # and now the reader is gone, as `| head` after Ctrl-C
        process.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), 20)
    text = err.decode()
    assert process.returncode == cli.EXIT_INTERRUPTED, text
    assert "Traceback" not in text
    assert stuck in text  # the partial summary
    assert text.rstrip().endswith("taskwatch: interrupted")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_sigterm_prints_the_partial_summary_and_exits_143() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        stuck = api.add_task(STUCK)
        process = await start_cli(
            ["watch", stuck, "--plain", *FAST, "--base-url", api.base_url], api.api_key
        )
        assert process.stdout is not None
        first = await asyncio.wait_for(process.stdout.readline(), 20)
        assert b"running" in first
        process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == cli.EXIT_TERMINATED
    assert stuck in out.decode().split("\n\n", 1)[-1]
    assert err.decode() == "taskwatch: terminated\n"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_ctrl_c_reaches_the_cli_when_the_tests_run_with_sigint_ignored() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        stuck = api.add_task(STUCK)
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a background job
        try:
            process = await start_cli(
                ["watch", stuck, "--plain", *FAST, "--base-url", api.base_url], api.api_key
            )
        finally:
            signal.signal(signal.SIGINT, previous)
        try:
            assert process.stdout is not None
            first = await asyncio.wait_for(process.stdout.readline(), 20)
            assert b"running" in first
            process.send_signal(signal.SIGINT)
            await asyncio.wait_for(process.communicate(), 20)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == cli.EXIT_INTERRUPTED


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["get", "../x"], "invalid task hash"),
        (["get", ""], "invalid task hash"),
        (["get", "a" * 32, "--base-url", "foo"], "argument --base-url: not an absolute http(s)"),
        (["get", "a" * 32, "--base-url", "ftp://host/v1"], "argument --base-url"),
        (["get", "a" * 32, "--base-url", "http://example.com/v1"], "--allow-insecure-http"),
        (["watch", "a" * 32, "--json", "--plain"], "not allowed with argument"),
        (["watch", "a" * 32, "-v", "-q"], "not allowed with argument"),
        (["demo", "--speed", "inf"], "argument --speed: must be a finite number"),
        (["demo", "--speed", "1e300"], "between 0 (excluded) and 1000"),
        (["demo", "--speed", "nan"], "argument --speed"),
        (["watch", "a" * 32, "--timeout", "inf"], "argument --timeout"),
        (["get", "a" * 32, "--token", " "], "argument --token/--api-key: must not be empty"),
        (["watch", "@/nonexistent/hashes.txt"], "cannot read @/nonexistent/hashes.txt"),
        (["watch", "a" * 32, "--min-interval", "5", "--max-interval", "1"], "below"),
    ],
)
async def test_usage_errors_exit_2_with_one_line_and_send_nothing(
    args: list[str], words: str
) -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        url = [] if "--base-url" in args or args[0] == "demo" else ["--base-url", api.base_url]
        result = await run_cli([*args, *url], api.api_key)
        assert api.stats.requests == 0
    assert result.code == cli.EXIT_USAGE, result.err
    [line] = result.err.splitlines()
    assert words in line
    assert result.out == ""
    for python in ("api_key=", "allow_insecure_http", "Traceback"):
        assert python not in line


async def test_watch_checks_every_hash_before_starting() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        valid = api.add_task(script("completed"))
        result = await run_cli(["watch", valid, "../x", "--base-url", api.base_url], api.api_key)
        assert api.stats.requests == 0
    assert result.code == cli.EXIT_USAGE
    assert result.out == ""  # no summary of "waiting" rows
    assert "'../x'" in result.err


async def test_no_key_speaks_cli() -> None:
    result = await run_cli(["get", "c5e29d2aba8b77cdc56391e7405302de"])
    assert result.code == cli.EXIT_AUTH
    [line] = result.err.splitlines()
    assert "LOBSTR_TOKEN" in line
    assert "lobstr config set-token" in line
    assert "api_key" not in line


async def test_a_base_url_without_v1_gets_a_hint() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        task_hash = api.add_task(script("completed"))
        root = api.base_url.removesuffix("/v1")
        result = await run_cli(["get", task_hash, "--base-url", root], api.api_key)
    assert result.code == cli.EXIT_NOT_FOUND
    error, hint = result.err.splitlines()
    assert error.startswith("taskwatch: error: 404")
    assert hint.startswith("taskwatch: hint: is the base URL right?")
    assert "ends in /v1" in hint


async def test_retries_are_shown_as_they_happen_and_quiet_hides_them() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    args = ["get", "a" * 32, "--base-url", url, "--max-retries", "1"]
    shown = await run_cli(args, "some-key")
    quiet = await run_cli([*args, "-q"], "some-key")
    assert shown.code == quiet.code == cli.EXIT_ERROR
    retry, error = shown.err.splitlines()
    assert retry.startswith("taskwatch: retrying in ")
    assert f"could not connect to 127.0.0.1:{url.split(':')[2][:-3]}: Connection refused" in retry
    assert "ssl:default" not in shown.err
    assert error.startswith("taskwatch: error: could not reach the API")
    assert quiet.err.splitlines() == [error]


async def test_https_to_a_plain_http_server_says_so_at_once() -> None:
    # A failed TLS handshake fails the same way again: no retry, the error at once.
    async with SimulatedTaskAPI(rate_limit=None) as api:
        task_hash = api.add_task(script("completed"))
        https = api.base_url.replace("http://", "https://")
        args = ["get", task_hash, "--base-url", https, "--max-retries", "1"]
        result = await run_cli(args, api.api_key)
        assert api.stats.requests == 0  # the handshake failed before any request
    assert result.code == cli.EXIT_ERROR
    [line] = result.err.splitlines()
    assert line.startswith("taskwatch: error: could not reach the API: the TLS handshake")
    assert line.endswith("is the server speaking https?")


async def test_verbose_shows_server_pauses_and_budget_waits() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        task_hash = api.add_task(script("completed"))
        api.inject(Fault.rate_limited(1), task_hash=task_hash)
        quiet_default = await run_cli(["get", task_hash, "--base-url", api.base_url], api.api_key)
        api.inject(Fault.rate_limited(1), task_hash=task_hash)
        verbose = await run_cli(
            [
                "get",
                task_hash,
                task_hash + "0",
                task_hash + "1",
                "-v",
                "--base-url",
                api.base_url,
                "--requests-per-minute",
                "60",
            ],
            api.api_key,
        )
    assert quiet_default.code == cli.EXIT_OK
    assert "retrying in 1.00s after attempt 1 failed: 429" in quiet_default.err
    assert "every request waits" not in quiet_default.err
    assert verbose.code == cli.EXIT_NOT_FOUND  # the two made-up hashes
    assert "the server answered 429: every request waits 1.0s" in verbose.err
    assert "for a request slot (pace 60/minute" in verbose.err


async def test_a_refused_key_is_printed_once_and_sent_once_by_get() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        hashes = [api.add_task(script("completed")) for _ in range(20)]
        watched = await run_cli(["watch", *hashes, "--plain", "--base-url", api.base_url], "bad")
        api.reset_stats()
        got = await run_cli(["get", *hashes, "--base-url", api.base_url], "bad")
        sent_by_get = api.stats.requests
    assert watched.code == got.code == cli.EXIT_AUTH
    assert len(watched.err.splitlines()) == 1
    assert watched.err.startswith("taskwatch: error: 401: Invalid token.")
    assert watched.out.count("error: AuthenticationError") == 20  # every row of the summary
    assert got.err.splitlines() == [f"taskwatch: error: 401: Invalid token. (task {hashes[0]})"]
    assert sent_by_get == 1


async def test_plain_mode_prints_an_error_once_on_stderr_and_times_in_utc() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        ok = api.add_task(script("completed"))
        result = await run_cli(
            ["watch", ok, "0" * 32, "--plain", *FAST, "--base-url", api.base_url], api.api_key
        )
    assert result.code == cli.EXIT_NOT_FOUND
    assert result.err.count("Task not found") == 1
    assert "Task not found" not in result.out
    snapshots = result.out.split("\n\n", 1)[0].splitlines()
    assert snapshots
    assert all(ISO_UTC.match(line) for line in snapshots), snapshots


async def test_hashes_from_stdin_and_from_a_file(tmp_path: Path) -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        hashes = [api.add_task(script("completed")) for _ in range(3)]
        listing = tmp_path / "hashes.txt"
        listing.write_text(f"# from lobstr\n{hashes[1]}\n\n  {hashes[2]}  \n")
        process = await start_cli(
            ["watch", "-", f"@{listing}", "--json", *FAST, "--base-url", api.base_url],
            api.api_key,
            stdin=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(f"{hashes[0]}\n".encode()), 60)
        empty = await run_cli(["get", "-", "--base-url", api.base_url], api.api_key)
    assert process.returncode == cli.EXIT_OK, err
    records = [json.loads(line) for line in out.decode().splitlines()]
    assert {r["hash_value"] for r in records if r["status"]["is_done"]} == set(hashes)
    assert empty.code == cli.EXIT_USAGE
    assert "no task hash given" in empty.err


async def test_get_takes_several_hashes() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        first, second = (api.add_task(script("completed", results=n)) for n in (7, 9))
        await asyncio.sleep(0.35)
        url = ["--base-url", api.base_url]
        text = await run_cli(["get", first, second, *url], api.api_key)
        as_json = await run_cli(["get", first, "0" * 32, second, "--json", *url], api.api_key)
    assert text.code == cli.EXIT_OK, text.err
    blocks = text.out.split("\n\n")
    assert [b.splitlines()[0].split()[-1] for b in blocks] == [first, second]
    assert "is_done        yes" in blocks[0]
    assert "True" not in text.out
    assert "None" not in text.out
    assert re.search(r"^created_at     \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", blocks[0], re.M)
    assert as_json.code == cli.EXIT_NOT_FOUND
    assert [json.loads(line)["hash_value"] for line in as_json.out.splitlines()] == [first, second]
    assert as_json.err.count("Task not found") == 1


async def test_quiet_watch_prints_only_the_result() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        ok = api.add_task(script("completed"))
        plain = await run_cli(["watch", ok, "-q", *FAST, "--base-url", api.base_url], api.api_key)
        as_json = await run_cli(
            ["watch", ok, "-q", "--json", *FAST, "--base-url", api.base_url], api.api_key
        )
    assert plain.code == as_json.code == cli.EXIT_OK
    assert plain.out.startswith("\ntask ")  # the summary table, no snapshot lines
    [record] = [json.loads(line) for line in as_json.out.splitlines()]
    assert record["status"]["is_done"]


async def test_a_deadline_stops_the_whole_watch_with_exit_3() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        stuck = api.add_task(STUCK)
        ok = api.add_task(script("completed"))
        result = await run_cli(
            ["watch", stuck, ok, "--deadline", "1.5", "--plain", *FAST, "--base-url", api.base_url],
            api.api_key,
        )
    assert result.code == cli.EXIT_TIMEOUT
    assert result.err == "taskwatch: error: the --deadline of 1.5s passed\n"
    summary = result.out.split("\n\n", 1)[1]
    assert f"{stuck}  error: WatchTimeout" in summary
    assert f"{ok}  completed" in summary


async def test_settings_from_the_environment() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        ok = api.add_task(script("completed"))
        process = await start_cli(
            ["get", ok], api.api_key, env={"TASKWATCH_BASE_URL": api.base_url}
        )
        out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == cli.EXIT_OK
    assert ok in out.decode()
    url = f"http://127.0.0.1:{closed_port()}/v1"
    process = await start_cli(
        ["get", ok, "--base-url", url], "k", env={"TASKWATCH_MAX_RETRIES": "0"}
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == cli.EXIT_ERROR
    assert "retrying" not in err.decode()
    process = await start_cli(["get", ok], "k", env={"TASKWATCH_MAX_RETRIES": "lots"})
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == cli.EXIT_USAGE
    assert "argument --max-retries: not a whole number: 'lots'" in err.decode()


async def test_demo_banner_counts_in_words() -> None:
    result = await run_cli(["demo", "--tasks", "1", "--speed", "200", "--plain"])
    assert result.out.startswith("taskwatch demo: 1 simulated task at 200x speed")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_simulate_serves_until_ctrl_c() -> None:
    process = await start_cli(["simulate", "--json", "--tasks", "2", "--speed", "200"], None)
    try:
        assert process.stdout is not None
        info = json.loads(await asyncio.wait_for(process.stdout.readline(), 20))
        got = await run_cli(
            ["get", *info["tasks"], "--json", "--base-url", info["base_url"]], info["api_key"]
        )
        refused = await run_cli(["get", info["tasks"][0], "--base-url", info["base_url"]], "x")
        process.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), 20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert got.code == cli.EXIT_OK, got.err
    assert [json.loads(line)["hash_value"] for line in got.out.splitlines()] == info["tasks"]
    assert refused.code == cli.EXIT_AUTH
    assert process.returncode == cli.EXIT_OK
    assert err.decode() == "taskwatch: simulate: stopped after 3 requests\n"


async def test_simulate_on_a_busy_port_is_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = await run_cli(["simulate", "--port", str(port)])
    assert result.code == cli.EXIT_ERROR
    [line] = result.err.splitlines()
    assert line.startswith(f"taskwatch: error: could not listen on 127.0.0.1:{port}")


@pytest.mark.parametrize("command", ["watch", "get", "demo", "simulate", "completion"])
def test_every_command_has_a_description_and_examples(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    description = text.split("\n\n")[1]
    assert len(description.split()) > 8, description
    assert "examples:" in text
    for line in text.splitlines():
        if line.strip().startswith(("--", "-v", "HASH")) and "--help" not in line:
            option = line.split()[0]
            assert len(line.split()) > 2 or option in text.split(line, 1)[1][:200], line
    if command == "watch":
        flat = " ".join(text.split())
        assert "HASH a task hash; '-' reads hashes from stdin" in flat
        assert "(default: 1)" in flat
        assert "(default: 30)" in flat
        assert "143" in flat


def test_shell_completion_comes_from_shtab() -> None:
    import subprocess

    for shell in ("bash", "zsh"):
        script_text = subprocess.run(
            [*CLI_COMMAND, "completion", shell],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        assert "--min-interval" in script_text
        assert "simulate" in script_text
    bash = shutil.which("bash")
    if bash is not None:
        check = subprocess.run(
            [bash, "-c", 'eval "$(cat)" && complete -p taskwatch'],
            input=subprocess.run(
                [*CLI_COMMAND, "completion", "bash"], capture_output=True, text=True, check=True
            ).stdout,
            capture_output=True,
            check=False,
            text=True,
            timeout=60,
        )
        assert check.returncode == 0, check.stderr
        assert "taskwatch" in check.stdout


# -- the live display, on a pseudo-terminal -------------------------------------------------


def run_on_a_terminal(
    args: list[str],
    key: str | None,
    *,
    columns: int = 80,
    rows: int = 25,
    block_rich: bool = False,
) -> tuple[int, str, str]:
    """Run the CLI with stdout on a pseudo-terminal of ``columns`` x ``rows``."""
    import fcntl
    import pty
    import struct
    import subprocess
    import termios

    main_fd, child_fd = pty.openpty()
    fcntl.ioctl(child_fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {**cli_env(key), "TERM": "xterm", "COLUMNS": str(columns), "LINES": str(rows)}
    command = list(CLI_COMMAND)
    if block_rich:
        command[2] = "import sys; sys.modules['rich'] = None; " + command[2]
    with subprocess.Popen(
        [*command, *args], stdout=child_fd, stderr=subprocess.PIPE, env=env
    ) as process:
        os.close(child_fd)
        screen = b""
        with contextlib.suppress(OSError):  # EIO once the child has closed the terminal
            while chunk := os.read(main_fd, 65536):
                screen += chunk
        os.close(main_fd)
        assert process.stderr is not None
        err = process.stderr.read()
        code = process.wait(timeout=60)
    return code, screen.decode(errors="replace"), err.decode(errors="replace")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pseudo-terminals")
async def test_live_display_of_many_tasks_on_a_small_terminal() -> None:
    code, screen, err = await asyncio.to_thread(
        run_on_a_terminal, ["demo", "--tasks", "60", "--speed", "400", "--seed", "4"], None
    )
    assert code == cli.EXIT_OK, err
    assert err == ""
    assert re.search(r"\d+ of 60 done, \d+ requests", screen)
    assert "… and " in screen  # rows that do not fit are counted, not dropped silently
    summary = screen.split("taskwatch summary", 1)[1]
    hashes = set(re.findall(r"\b[0-9a-f]{32}\b", summary))
    assert len(hashes) == 60  # in full, copyable, at 80 columns


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pseudo-terminals")
async def test_without_rich_a_terminal_gets_plain_lines_and_a_hint() -> None:
    code, screen, err = await asyncio.to_thread(
        run_on_a_terminal, ["demo", "--tasks", "1", "--speed", "300"], None, block_rich=True
    )
    assert code == cli.EXIT_OK, err
    assert err.splitlines() == [
        "taskwatch: plain output: install the cli extra for the live display "
        "(pip install 'lobstr-taskwatch[cli]')"
    ]
    assert "requests/minute" in screen


async def test_verbose_plain_output_logs_the_aggregate_line_as_tasks_finish() -> None:
    result = await run_cli(["demo", "--tasks", "3", "--speed", "300", "--plain", "-v"])
    assert result.code == cli.EXIT_OK, result.err
    progress = [line for line in result.err.splitlines() if " done, " in line]
    assert [line.split(" of ")[0] for line in progress] == [
        "taskwatch: 1",
        "taskwatch: 2",
        "taskwatch: 3",
    ]
    assert all(
        re.search(r"of 3 done, \d+ requests, \d+ of \d+ left this minute$", line)
        for line in progress
    )
