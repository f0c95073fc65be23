"""The command line, run as a user runs it: a subprocess against the simulated API."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Sequence
from typing import Any

import pytest

from taskwatch import cli
from taskwatch.redis import budget_name
from taskwatch.testing import ScriptStep, SimulatedTaskAPI

from .conftest import REDIS_URL, closed_port, start_cli


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
    assert lines[-1].endswith("requests/minute")


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


async def test_invalid_hash_is_a_usage_level_error() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        result = await run_cli(["get", "../etc", "--base-url", api.base_url], api.api_key)
        assert api.stats.requests == 0
    assert result.code == cli.EXIT_ERROR
    assert "invalid task hash" in result.err


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
