"""The ``taskwatch`` command line: ``demo``, ``watch`` and ``get``.

The only module that imports the display library (rich, from the ``cli`` extra); without it, or
when stdout is not a terminal, the output falls back to plain lines. ``--json`` prints one JSON
object per snapshot (newline-delimited) for jq and logs.

Exit codes (when several apply, the highest wins)::

    0   every task completed (``demo``: the demo ran)
    1   at least one task failed or was aborted
    2   usage error
    3   at least one watch timed out
    4   no key, or the key was refused (401/403)
    5   a task was not found (404)
    6   another API, network or response error
    130 interrupted (Ctrl-C); the partial summary is printed first
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Sequence
from typing import IO, TYPE_CHECKING, Any

import attrs

from . import _convert
from ._version import __version__
from .client import DEFAULT_BASE_URL, Client
from .errors import (
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    TaskwatchError,
    WatchTimeout,
)
from .models import Task, TaskState

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

__all__ = ["main"]

EXIT_OK = 0
EXIT_TASK_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_AUTH = 4
EXIT_NOT_FOUND = 5
EXIT_ERROR = 6
EXIT_INTERRUPTED = 130


def exit_code_for(error: BaseException) -> int:
    """The documented exit code for an error (see the module docstring)."""
    if isinstance(error, (AuthenticationError, PermissionDeniedError, ConfigurationError)):
        return EXIT_AUTH
    if isinstance(error, NotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(error, WatchTimeout):
        return EXIT_TIMEOUT
    return EXIT_ERROR


def _inert(text: object) -> str:
    """Server text made safe for a terminal: control characters (escape sequences, line
    breaks, bells) are shown as ``\\x1b``-style escapes instead of acting."""
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in str(text)
    )


def _one_line(error: BaseException) -> str:
    return _inert(" ".join(str(error).split())) or type(error).__name__


def _json_line(record: object) -> str:
    """One JSON line; a document too deeply nested to encode becomes an error record."""
    try:
        return json.dumps(record, separators=(",", ":"))
    except (RecursionError, ValueError) as exc:
        return json.dumps({"error": {"type": type(exc).__name__, "message": "not printable"}})


@attrs.define
class _Row:
    """What the board knows of one task."""

    task_hash: str
    started: float
    last: Task | None = None
    ended: float | None = None
    error: TaskwatchError | None = None

    @property
    def outcome(self) -> str:
        if self.error is not None:
            return f"error: {type(self.error).__name__}"
        if self.last is None:
            return "waiting"
        return _inert(self.last.state)


class _Board:
    """The latest state of every watched task, shared by the displays and the summary."""

    def __init__(self, hashes: Sequence[str]) -> None:
        now = time.monotonic()
        self.rows = {h: _Row(h, now) for h in hashes}

    def update(self, task: Task) -> _Row:
        row = self.rows[task.hash_value]  # the client checks it is the hash asked for
        row.last = task
        if task.is_done and row.ended is None:
            row.ended = time.monotonic()
        return row

    def fail(self, task_hash: str, error: TaskwatchError) -> _Row:
        row = self.rows[task_hash]
        row.error = error
        row.ended = time.monotonic()
        return row

    def exit_code(self) -> int:
        code = EXIT_OK
        for row in self.rows.values():
            if row.error is not None:
                code = max(code, exit_code_for(row.error))
            elif row.last is None or not row.last.is_done:
                code = max(code, EXIT_INTERRUPTED)
            elif row.last.state != TaskState.COMPLETED:
                code = max(code, EXIT_TASK_FAILED)
        return code

    def summary_rows(self) -> list[tuple[str, str, str, str, str, str]]:
        now = time.monotonic()
        result = []
        for row in self.rows.values():
            last = row.last
            duration = (row.ended or now) - row.started
            result.append(
                (
                    row.task_hash,
                    row.outcome,
                    _inert(last.status.done_reason or "-") if last else "-",
                    str(last.total_results) if last else "-",
                    str(last.status.total_pages) if last else "-",
                    f"{duration:.1f}s",
                )
            )
        return result


_SUMMARY_HEADERS = ("task", "status", "done_reason", "results", "pages", "duration")


class _PlainDisplay:
    """One line per snapshot; a text table at the end."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out

    def start(self, board: _Board) -> None:
        return

    def show(self, row: _Row) -> None:
        last = row.last
        if row.error is not None:
            line = f"{row.task_hash}  error  {_one_line(row.error)}"
        elif last is not None:
            line = (
                f"{row.task_hash}  {_inert(last.state):<9}  results={last.total_results}  "
                f"pages={last.status.total_pages}"
            )
            if last.is_done:
                line += f"  done_reason={_inert(last.status.done_reason)}"
        else:
            return
        print(f"{time.strftime('%H:%M:%S')}  {line}", file=self._out, flush=True)

    def stop(self) -> None:
        return

    def summary(self, board: _Board, footer: str) -> None:
        rows = [_SUMMARY_HEADERS, *board.summary_rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(_SUMMARY_HEADERS))]
        print(file=self._out)
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)), file=self._out)
        print(footer, file=self._out, flush=True)


class _JsonDisplay:
    """Newline-delimited JSON: one object per snapshot in the documented task shape."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out

    def start(self, board: _Board) -> None:
        return

    def show(self, row: _Row) -> None:
        if row.error is not None:
            record: dict[str, Any] = {
                "hash_value": row.task_hash,
                "error": {"type": type(row.error).__name__, "message": _one_line(row.error)},
            }
        elif row.last is not None:
            record = _convert.unstructure_task(row.last)
        else:
            return
        print(_json_line(record), file=self._out, flush=True)

    def stop(self) -> None:
        return

    def summary(self, board: _Board, footer: str) -> None:
        return  # stdout stays pure NDJSON


_DONE_MARKS = {"completed": "[green]✓", "aborted": "[yellow]!", "failed": "[red]✗"}


class _RichDisplay:
    """A live progress line per task, then a summary table (needs rich and a terminal)."""

    def __init__(self, console: Console) -> None:
        from rich.progress import (
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._console = console
        self._progress: Progress = Progress(
            SpinnerColumn(finished_text=" "),
            TextColumn("[bold]{task.fields[short]}"),
            TextColumn("{task.fields[state]:<12}"),
            TextColumn("[cyan]{task.fields[results]:>7}[/] results"),
            TextColumn("{task.fields[pages]:>4} pages"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._ids: dict[str, TaskID] = {}

    def start(self, board: _Board) -> None:
        for task_hash in board.rows:
            self._ids[task_hash] = self._progress.add_task(
                task_hash,
                total=1,
                short=task_hash[:12],
                state="waiting",
                results="-",
                pages="-",
            )
        self._progress.start()

    def show(self, row: _Row) -> None:
        from rich.markup import escape

        task_id = self._ids.get(row.task_hash)
        if task_id is None:
            return
        last = row.last
        if row.error is not None:
            self._progress.update(task_id, state="[red]✗ error[/]", completed=1)
            return
        if last is None:
            return
        mark = _DONE_MARKS.get(last.state, "[green]✓") if last.is_done else ""
        shown = escape(_inert(last.state))  # server text: never read as markup
        state = f"{mark} {shown}[/]" if mark else shown
        self._progress.update(
            task_id,
            state=state,
            results=str(last.total_results),
            pages=str(last.status.total_pages),
            completed=1 if last.is_done else 0,
        )

    def stop(self) -> None:
        self._progress.stop()

    def summary(self, board: _Board, footer: str) -> None:
        from rich.markup import escape
        from rich.table import Table

        table = Table(title="taskwatch summary")
        for header in _SUMMARY_HEADERS:
            table.add_column(header, justify="right" if header in {"results", "pages"} else "left")
        for values in board.summary_rows():
            table.add_row(*(escape(value) for value in values))
        self._console.print(table)
        self._console.print(footer)


_Display = _PlainDisplay | _JsonDisplay | _RichDisplay


def _make_display(args: argparse.Namespace) -> _Display:
    if args.json:
        return _JsonDisplay(sys.stdout)
    if not args.plain and sys.stdout.isatty():
        try:
            from rich.console import Console
        except ImportError:  # the cli extra is not installed: plain lines still work
            return _PlainDisplay(sys.stdout)
        return _RichDisplay(Console())
    return _PlainDisplay(sys.stdout)


def _footer(client: Client) -> str:
    stats = client.stats()
    return (
        f"{stats.requests} requests, {stats.retries} retries, {stats.rate_limited} rate-limited "
        f"(429), pace {stats.requests_per_minute or 'uncapped'} requests/minute"
    )


async def _watch_all(
    client: Client,
    hashes: Sequence[str],
    args: argparse.Namespace,
    display: _Display,
    board: _Board,
) -> None:
    def on_error(task_hash: str, error: TaskwatchError) -> None:
        print(f"taskwatch: error: {_one_line(error)}", file=sys.stderr, flush=True)
        display.show(board.fail(task_hash, error))

    snapshots = client.watch_many(
        hashes,
        min_interval=args.min_interval,
        max_interval=args.max_interval,
        timeout=args.timeout,
        on_error=on_error,
    )
    async with contextlib.aclosing(snapshots):
        async for task in snapshots:
            display.show(board.update(task))


async def _run_watch(
    client: Client, hashes: Sequence[str], args: argparse.Namespace, board: _Board
) -> None:
    display = _make_display(args)
    display.start(board)
    try:
        await _watch_all(client, hashes, args, display, board)
    finally:
        display.stop()
        display.summary(board, _footer(client))


@contextlib.asynccontextmanager
async def _client(args: argparse.Namespace) -> AsyncIterator[Client]:
    """The command's Client: on its own budget, or with ``--redis-url`` on the key's budget
    shared on Redis (the URL may hold a password: it is never printed)."""
    if not args.redis_url:
        async with Client(args.api_key, base_url=args.base_url) as client:
            yield client
        return
    import redis.asyncio as redis_asyncio  # present: _redis_url checked

    from .redis import RedisLimiter

    connection = redis_asyncio.Redis.from_url(
        args.redis_url, socket_connect_timeout=5, socket_timeout=5
    )
    try:
        limiter = RedisLimiter(connection, api_key=args.api_key)
        async with Client(args.api_key, base_url=args.base_url, limiter=limiter) as client:
            yield client
    finally:
        await connection.aclose()


async def _cmd_watch(args: argparse.Namespace, board_out: list[_Board]) -> int:
    hashes = list(dict.fromkeys(args.hashes))
    async with _client(args) as client:
        board = _Board(hashes)
        board_out.append(board)
        await _run_watch(client, hashes, args, board)
    return board.exit_code()


async def _cmd_demo(args: argparse.Namespace, board_out: list[_Board]) -> int:
    from .testing import SimulatedTaskAPI

    speed = args.speed
    # Simulated time runs `speed` times faster, so the simulated minute's budget does too.
    budget = max(1, round(90 * speed))
    async with SimulatedTaskAPI(rate_limit=budget, speed=speed, seed=args.seed) as api:
        hashes = api.add_random_tasks(args.tasks, pending=(5.0, 40.0), running=(40.0, 160.0))
        async with Client(
            api.api_key, base_url=api.base_url, requests_per_minute=float(budget)
        ) as client:
            board = _Board(hashes)
            board_out.append(board)
            if not args.json:
                print(
                    f"taskwatch demo: {len(hashes)} simulated tasks at {speed:g}x speed "
                    f"on {api.base_url} (no key, no network needed)",
                    flush=True,
                )
            await _run_watch(client, hashes, args, board)
    code = board.exit_code()
    # Simulated tasks may fail or abort on purpose; the demo itself succeeded.
    return EXIT_OK if code == EXIT_TASK_FAILED else code


async def _cmd_get(args: argparse.Namespace, board_out: list[_Board]) -> int:
    async with _client(args) as client:
        task = await client.get_task(args.hash)
    if args.json:
        print(_json_line(_convert.unstructure_task(task)))
        return EXIT_OK
    status = task.status
    fields = [
        ("hash_value", task.hash_value),
        ("status", status.status),
        ("is_done", status.is_done),
        ("total_results", status.total_results),
        ("total_pages", status.total_pages),
        ("done_reason", status.done_reason),
        ("has_errors", status.has_errors),
        ("errors", status.errors),
        ("started_at", status.started_at),
        ("ended_at", status.ended_at),
        ("created_at", task.created_at),
        ("is_active", task.is_active),
        ("module", task.module),
        ("params", _json_line(task.params)),
    ]
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        print(f"{name:<{width}}  {_inert(value)}")
    return EXIT_OK


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError("must be between 1 and 10000")
    return value


def _redis_url(text: str) -> str:
    """A Redis URL redis-py accepts (the text is never echoed: it may hold a password)."""
    if not text:
        return text
    try:
        from redis.asyncio.connection import parse_url
    except ImportError:
        raise argparse.ArgumentTypeError(
            "needs redis-py: pip install 'lobstr-taskwatch[redis]'"
        ) from None
    try:
        parse_url(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "not a Redis URL (redis://, rediss:// or unix://)"
        ) from None
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskwatch",
        description="Watch Lobstr.io scraping tasks until they finish.",
        epilog="Exit codes: 0 all completed, 1 a task failed or was aborted, 2 usage, "
        "3 timed out, 4 no key or key refused, 5 task not found, 6 other errors, "
        "130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"taskwatch {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    output = argparse.ArgumentParser(add_help=False)
    output.add_argument(
        "--json", action="store_true", help="print newline-delimited JSON snapshots"
    )
    output.add_argument(
        "--plain", action="store_true", help="plain lines even on a terminal (no live display)"
    )

    polling = argparse.ArgumentParser(add_help=False)
    polling.add_argument("--min-interval", type=_positive, default=1.0, metavar="SECONDS")
    polling.add_argument("--max-interval", type=_positive, default=30.0, metavar="SECONDS")
    polling.add_argument(
        "--timeout", type=_positive, default=None, metavar="SECONDS", help="per task"
    )

    api = argparse.ArgumentParser(add_help=False)
    api.add_argument("--base-url", default=DEFAULT_BASE_URL, help="the API root")
    api.add_argument(
        "--api-key",
        default=None,
        help="discouraged: a key on the command line lands in shell history and process "
        "lists; set LOBSTR_TOKEN or log in with the lobstr CLI instead",
    )
    api.add_argument(
        "--redis-url",
        type=_redis_url,
        default=os.environ.get("TASKWATCH_REDIS_URL", ""),
        metavar="URL",
        help="take request slots from the key's budget shared on this Redis, as workers using "
        "taskwatch.redis.RedisLimiter do (default: $TASKWATCH_REDIS_URL; needs the redis extra)",
    )

    demo = commands.add_parser(
        "demo",
        parents=[output],
        help="watch simulated tasks on an embedded API (no key, no network)",
    )
    demo.add_argument("--tasks", type=_count, default=8, help="how many tasks (default 8)")
    demo.add_argument(
        "--speed", type=_positive, default=30.0, help="simulated seconds per second (default 30)"
    )
    demo.add_argument("--seed", type=int, default=None, help="make the demo reproducible")
    demo.set_defaults(handler=_cmd_demo, min_interval=0.2, max_interval=1.0, timeout=None)

    watch = commands.add_parser(
        "watch", parents=[output, polling, api], help="watch tasks until they are done"
    )
    watch.add_argument("hashes", nargs="+", metavar="HASH")
    watch.set_defaults(handler=_cmd_watch)

    get = commands.add_parser("get", parents=[api], help="print one task")
    get.add_argument("hash", metavar="HASH")
    get.add_argument("--json", action="store_true", help="print the task as JSON")
    get.set_defaults(handler=_cmd_get)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    args = _parser().parse_args(argv)
    if getattr(args, "max_interval", 1.0) < getattr(args, "min_interval", 0.0):
        print("taskwatch: error: --max-interval is below --min-interval", file=sys.stderr)
        return EXIT_USAGE
    boards: list[_Board] = []
    try:
        code: int = asyncio.run(args.handler(args, boards))
    except KeyboardInterrupt:
        print("taskwatch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except TaskwatchError as error:
        print(f"taskwatch: error: {_one_line(error)}", file=sys.stderr)
        return exit_code_for(error)
    return code
