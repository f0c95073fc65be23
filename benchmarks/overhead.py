"""Benchmark 1: the client CPU cost of one get_task, side by side with raw aiohttp (the floor)
and the official lobstrio-sdk async client, sequentially and with 50 concurrent callers; and
what a budget shared on Redis adds (when a Redis server answers at $REDIS_URL).

    python -m benchmarks.overhead [--quick]
    python -m benchmarks.overhead --bytecodes   # Python bytecodes per call instead of CPU
    python -m benchmarks.overhead --bytecodes --by-function 30   # and where they differ
    python -m benchmarks.overhead --instructions   # machine instructions per call (valgrind)

The server runs in its own process; CPU is this process's ``time.process_time``. Rounds are
interleaved (each round runs every client once, in a rotating order) and medians reported.
``--bytecodes`` counts the Python bytecodes each call executes (``sys.settrace``): a figure
the machine's load does not move, to see where the CPU goes (C code, orjson and the kernel
are not counted). ``--instructions`` counts the machine instructions of the client process
per call (valgrind's callgrind, C code, orjson and the user side of system calls included; not
the kernel): each client alone in a process of its own under valgrind, twice, with few and with
many calls, and the difference divided by the difference in calls, so that start-up and imports
cancel out. Like bytecodes, a figure the machine's load does not move.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import os
import re
import shutil
import subprocess
import sys
import time
import types
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp

import taskwatch

from ._common import median, say, table, verdict, write_result
from ._server import ServerProcess

TASK_HASH = "c5e29d2aba8b77cdc56391e7405302de"
# Each concurrent caller asks for a hash of its own: taskwatch would share one request among
# concurrent calls on one hash, which would measure coalescing, not the cost of a request.
Call = Callable[[str], Awaitable[Any]]


def _hash(caller: int) -> str:
    return f"{caller:02x}" + TASK_HASH[2:]


async def _raw_aiohttp(stack: AsyncExitStack, base_url: str) -> Call:
    session = await stack.enter_async_context(aiohttp.ClientSession())
    headers = {"Authorization": "Token bench-key"}

    async def call(task_hash: str) -> Any:
        async with session.get(f"{base_url}/tasks/{task_hash}", headers=headers) as response:
            return await response.json()

    return call


async def _taskwatch(
    stack: AsyncExitStack, base_url: str, limiter: taskwatch.Limiter | None = None
) -> Call:
    """taskwatch with no cap: on its own in-process budget, or on ``limiter``."""
    client = await stack.enter_async_context(
        taskwatch.Client("bench-key", base_url=base_url, requests_per_minute=None, limiter=limiter)
    )

    async def call(task_hash: str) -> Any:
        return await client.get_task(task_hash)

    return call


async def _taskwatch_redis(stack: AsyncExitStack, base_url: str) -> Call | None:
    """taskwatch with its budget on Redis (no cap: every call still runs the slot script),
    when a Redis server answers at $REDIS_URL (default redis://127.0.0.1:6379/0)."""
    try:  # the redis extra, part of the bench extra
        import redis.asyncio as redis_asyncio  # noqa: PLC0415

        from taskwatch.redis import RedisLimiter  # noqa: PLC0415
    except ImportError:
        return None
    connection = redis_asyncio.Redis.from_url(
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), socket_connect_timeout=2
    )
    stack.push_async_callback(connection.aclose)
    try:
        await connection.ping()
    except (redis_asyncio.RedisError, OSError):
        return None
    limiter = RedisLimiter(
        connection, api_key="bench-key", prefix="taskwatch-bench", requests_per_minute=None
    )
    return await _taskwatch(stack, base_url, limiter)


async def _lobstrio_sdk(stack: AsyncExitStack, base_url: str) -> Call | None:
    try:  # a benchmark-only dependency: pip install -e '.[bench]'
        from lobstrio import AsyncLobstrClient  # noqa: PLC0415
    except ImportError:
        return None
    client = AsyncLobstrClient(token="bench-key", base_url=base_url + "/")
    stack.push_async_callback(client.close)

    async def call(task_hash: str) -> Any:
        return await client.tasks.get(task_hash)

    return call


CLIENTS: dict[str, Callable[[AsyncExitStack, str], Awaitable[Call | None]]] = {
    "raw aiohttp": _raw_aiohttp,
    "taskwatch": _taskwatch,
    "taskwatch, Redis budget": _taskwatch_redis,
    "lobstrio-sdk": _lobstrio_sdk,
}
_NOT_AVAILABLE = {
    "taskwatch, Redis budget": "no Redis server at $REDIS_URL (default redis://127.0.0.1:6379/0)",
    "lobstrio-sdk": "not installed: pip install -e '.[bench]' to compare with it",
}


async def _warm_up(call: Call) -> None:
    """A few calls before counting: connections, caches, first-call imports."""
    for n in range(50):
        await call(_hash(n))


async def _call_concurrently(call: Call, calls: int, concurrency: int) -> int:
    """``calls`` calls (rounded down to a multiple of ``concurrency``) by ``concurrency``
    callers, each on a hash of its own; returns how many were made."""
    per_caller = calls // concurrency

    async def caller(task_hash: str) -> None:
        for _ in range(per_caller):
            await call(task_hash)

    await asyncio.gather(*(caller(_hash(n)) for n in range(concurrency)))
    return per_caller * concurrency


async def _measure(call: Call, calls: int, concurrency: int) -> tuple[float, float]:
    """(client CPU µs per call, wall µs per call)."""
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    done = await _call_concurrently(call, calls, concurrency)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / done * 1e6, wall / done * 1e6


async def run(quick: bool) -> dict[str, Any]:
    rounds, calls = (3, 200) if quick else (9, 1000)
    results: dict[str, Any] = {}
    with ServerProcess() as server:
        async with AsyncExitStack() as stack:
            clients: dict[str, Call] = {}
            for name, factory in CLIENTS.items():
                call = await factory(stack, server.base_url)
                if call is None:
                    say(f"({name}: {_NOT_AVAILABLE[name]})")
                    continue
                await _warm_up(call)
                clients[name] = call
            for mode, concurrency in (("sequential", 1), ("50 concurrent", 50)):
                samples: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
                names = list(clients)
                for round_ in range(rounds):
                    order = names[round_ % len(names) :] + names[: round_ % len(names)]
                    for name in order:
                        samples[name].append(await _measure(clients[name], calls, concurrency))
                raw_cpu = [s[0] for s in samples["raw aiohttp"]]
                results[mode] = {
                    name: {
                        "cpu_us_per_call": median([s[0] for s in values]),
                        "wall_us_per_call": median([s[1] for s in values]),
                        "rounds": len(values),
                        # each round's CPU over raw aiohttp's in the same round, then the
                        # median: robust to the machine's load drifting between rounds
                        "paired_cpu_ratio_vs_raw": median(
                            [s[0] / raw for s, raw in zip(values, raw_cpu, strict=True)]
                        ),
                    }
                    for name, values in samples.items()
                }
    return results


async def count_bytecodes(calls: int = 1000, by_function: int = 0) -> dict[str, dict[str, float]]:
    """Python bytecodes executed per call by raw aiohttp and taskwatch, for each mode; with
    ``by_function``, also the functions whose counts differ most between the two."""
    counted: dict[str, dict[str, float]] = {}
    count = 0
    per_code: collections.Counter[types.CodeType] = collections.Counter()

    def trace_frame(frame: types.FrameType, event: str, arg: object) -> Any:
        nonlocal count
        if event == "call":
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
        elif event == "opcode":
            count += 1
            if by_function:
                per_code[frame.f_code] += 1
        return trace_frame

    functions: dict[str, dict[str, collections.Counter[str]]] = {}
    done_calls: dict[str, int] = {}

    with ServerProcess() as server:
        async with AsyncExitStack() as stack:
            for name in ("raw aiohttp", "taskwatch"):
                call = await CLIENTS[name](stack, server.base_url)
                assert call is not None
                await _warm_up(call)
                for mode, concurrency in (("sequential", 1), ("50 concurrent", 50)):
                    count = 0
                    per_code.clear()
                    sys.settrace(trace_frame)
                    try:
                        done = await _call_concurrently(call, calls, concurrency)
                    finally:
                        sys.settrace(None)
                    counted.setdefault(mode, {})[name] = count / done
                    done_calls[mode] = done
                    functions.setdefault(mode, {})[name] = collections.Counter(
                        {_function_name(code): n for code, n in per_code.items()}
                    )
    for mode, figures in counted.items():
        say(f"\nPython bytecodes per call, {mode}")
        say(table([(name, f"{n:,.0f}") for name, n in figures.items()], ["client", "bytecodes"]))
        ratio = figures["taskwatch"] / figures["raw aiohttp"]
        say(f"taskwatch / raw aiohttp: {ratio:.2f}x")
        if by_function:
            ours, raw = functions[mode]["taskwatch"], functions[mode]["raw aiohttp"]
            done = done_calls[mode]
            rows = sorted(set(ours) | set(raw), key=lambda f: -abs(ours[f] - raw[f]))
            say(f"the {by_function} functions whose counts differ most (per call)")
            say(
                table(
                    [
                        (
                            f,
                            f"{ours[f] / done:,.0f}",
                            f"{raw[f] / done:,.0f}",
                            f"{(ours[f] - raw[f]) / done:+,.0f}",
                        )
                        for f in rows[:by_function]
                    ],
                    ["function", "taskwatch", "raw aiohttp", "difference"],
                )
            )
    return counted


async def _run_alone(name: str, base_url: str, calls: int, concurrency: int) -> None:
    """``calls`` calls of one client with ``concurrency`` callers (after the warm-up), in this
    process: what ``--instructions`` runs under valgrind."""
    async with AsyncExitStack() as stack:
        call = await CLIENTS[name](stack, base_url)
        assert call is not None
        await _warm_up(call)
        await _call_concurrently(call, calls, concurrency)


_COLLECTED = re.compile(r"Collected : (\d+)")


def _instructions(name: str, base_url: str, calls: int, concurrency: int) -> int:
    """Machine instructions of a whole process making ``calls`` calls, counted by callgrind."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "benchmarks.overhead",
        "--alone",
        name,
        "--base-url",
        base_url,
        "--calls",
        str(calls),
        "--concurrency",
        str(concurrency),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    match = _COLLECTED.search(done.stderr)
    if match is None:
        raise RuntimeError(f"callgrind printed no count: {done.stderr[-500:]!r}")
    return int(match.group(1))


def count_instructions(few: int = 500, many: int = 2500) -> dict[str, dict[str, float]]:
    """Machine instructions per call of raw aiohttp and taskwatch, for each mode: the
    difference between a process making ``many`` calls and one making ``few``, per call."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind on PATH")
    counted: dict[str, dict[str, float]] = {}
    with ServerProcess() as server:
        for mode, concurrency in (("sequential", 1), ("50 concurrent", 50)):
            for name in ("raw aiohttp", "taskwatch"):
                low = _instructions(name, server.base_url, few, concurrency)
                high = _instructions(name, server.base_url, many, concurrency)
                counted.setdefault(mode, {})[name] = (high - low) / (many - few)
    for mode, figures in counted.items():
        say(f"\nMachine instructions per call (callgrind, {many} calls less {few}), {mode}")
        say(table([(name, f"{n:,.0f}") for name, n in figures.items()], ["client", "instructions"]))
        say(f"taskwatch / raw aiohttp: {figures['taskwatch'] / figures['raw aiohttp']:.3f}x")
    return counted


def _function_name(code: types.CodeType) -> str:
    """A function as ``module-ish path:qualified name``, short enough for a table."""
    path = code.co_filename
    for marker in ("site-packages/", "/lib/python"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        path = os.path.relpath(path) if os.path.isabs(path) else path
    return f"{path}:{getattr(code, 'co_qualname', code.co_name)}"


def report(results: dict[str, Any], quick: bool) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for mode, figures in results.items():
        rows = [
            (
                name,
                f"{f['cpu_us_per_call']:.1f}",
                f"{f['wall_us_per_call']:.1f}",
                f"{f['paired_cpu_ratio_vs_raw']:.2f}x",
            )
            for name, f in figures.items()
        ]
        say(f"\nPer-call overhead, {mode} (medians; CPU of the client process only)")
        say(table(rows, ["client", "CPU µs/call", "wall µs/call", "CPU vs raw (paired)"]))
        ours = figures["taskwatch"]["cpu_us_per_call"]
        ratio_raw = figures["taskwatch"]["paired_cpu_ratio_vs_raw"]
        say(
            f"taskwatch / raw aiohttp: {ratio_raw:.2f}x (target <= 1.05x: "
            f"{verdict(ratio_raw, 1.05)})"
        )
        summary[mode] = {"taskwatch_vs_raw": ratio_raw}
        if "lobstrio-sdk" in figures:
            ratio_sdk = ours / figures["lobstrio-sdk"]["cpu_us_per_call"]
            say(
                f"taskwatch / lobstrio-sdk: {ratio_sdk:.2f}x (target <= 0.35x: "
                f"{verdict(ratio_sdk, 0.35)})"
            )
            summary[mode]["taskwatch_vs_lobstrio_sdk"] = ratio_sdk
        if "taskwatch, Redis budget" in figures:
            shared, local = figures["taskwatch, Redis budget"], figures["taskwatch"]
            extra_cpu = shared["cpu_us_per_call"] - local["cpu_us_per_call"]
            extra_wall = shared["wall_us_per_call"] - local["wall_us_per_call"]
            say(
                f"a Redis budget adds {extra_cpu:.0f} µs of client CPU and {extra_wall:.0f} µs "
                "of wall time per call (one script call to Redis per request)"
            )
            summary[mode]["redis_budget_extra_cpu_us"] = extra_cpu
            summary[mode]["redis_budget_extra_wall_us"] = extra_wall
    write_result("overhead-quick" if quick else "overhead", {"figures": results, "ratios": summary})
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run that checks it works")
    parser.add_argument(
        "--bytecodes", action="store_true", help="count Python bytecodes per call instead"
    )
    parser.add_argument(
        "--by-function",
        type=int,
        default=0,
        metavar="N",
        help="with --bytecodes: also the N functions whose counts differ most from raw aiohttp",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count machine instructions per call instead (needs valgrind; a few minutes)",
    )
    parser.add_argument("--alone", metavar="CLIENT", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=1000, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.alone:
        asyncio.run(_run_alone(args.alone, args.base_url, args.calls, args.concurrency))
        return
    if args.instructions:
        count_instructions(100 if args.quick else 500, 300 if args.quick else 2500)
        return
    if args.bytecodes:
        asyncio.run(count_bytecodes(200 if args.quick else 1000, args.by_function))
        return
    report(asyncio.run(run(args.quick)), args.quick)


if __name__ == "__main__":
    main()
