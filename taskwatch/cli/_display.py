"""What the command line prints: the board of watched tasks and its three displays.

The only module that imports the display library (rich, from the ``cli`` extra); without it,
or when stdout is not a terminal, the output is plain lines. Server text is always printed
inert (control characters escaped, never read as markup).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING, Any

import attrs

from .. import _convert
from ..client import ClientStats
from ..errors import TaskwatchError
from ..models import Task, TaskState
from ._outcome import EXIT_INTERRUPTED, EXIT_OK, EXIT_TASK_FAILED, exit_code_for, succeeded

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live

__all__ = [
    "Board",
    "Display",
    "JsonDisplay",
    "PlainDisplay",
    "RichDisplay",
    "footer",
    "inert",
    "json_line",
    "make_display",
    "one_line",
    "plural",
    "utc_text",
]


def inert(text: object) -> str:
    """Server text made safe for a terminal: control characters (escape sequences, line
    breaks, bells) are shown as ``\\x1b``-style escapes instead of acting."""
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in str(text)
    )


def one_line(error: BaseException) -> str:
    """An error as one inert line."""
    return inert(" ".join(str(error).split())) or type(error).__name__


def json_line(record: object) -> str:
    """One JSON line; a document too deeply nested to encode becomes an error record."""
    try:
        return json.dumps(record, separators=(",", ":"))
    except (RecursionError, ValueError) as exc:
        return json.dumps({"error": {"type": type(exc).__name__, "message": "not printable"}})


def utc_text(moment: datetime | None) -> str:
    """A timestamp in UTC with its zone marked (``2024-12-24T10:57:55Z``); the API sends
    naive timestamps in UTC. ``-`` for None."""
    if moment is None:
        return "-"
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.isoformat(timespec="seconds") + "Z"


def _now_text() -> str:
    return utc_text(datetime.now(timezone.utc))


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 task``, ``2 tasks`` (``many``: the plural when it is not ``word + "s"``)."""
    return f"{count} {word}" if count == 1 else f"{count} {many or word + 's'}"


@attrs.define
class Row:
    """What the board knows of one task."""

    task_hash: str
    started: float
    last: Task | None = None
    ended: float | None = None
    error: TaskwatchError | None = None

    @property
    def finished(self) -> bool:
        return self.error is not None or (self.last is not None and self.last.is_done)

    @property
    def outcome(self) -> str:
        if self.error is not None:
            return f"error: {type(self.error).__name__}"
        if self.last is None:
            return "waiting"
        return inert(self.last.state)


class Board:
    """The latest state of every watched task, shared by the displays and the summary."""

    def __init__(self, hashes: Sequence[str]) -> None:
        now = time.monotonic()
        self.rows = {h: Row(h, now) for h in hashes}

    def update(self, task: Task) -> Row:
        row = self.rows[task.hash_value]  # the client checks it is the hash asked for
        row.last = task
        if task.is_done and row.ended is None:
            row.ended = time.monotonic()
        return row

    def fail(self, task_hash: str, error: TaskwatchError) -> Row:
        row = self.rows[task_hash]
        row.error = error
        row.ended = time.monotonic()
        return row

    def fail_unfinished(self, error: TaskwatchError) -> None:
        """Give ``error`` to every task that has not finished (the watch stopped for all)."""
        for row in self.rows.values():
            if not row.finished:
                self.fail(row.task_hash, error)

    @property
    def done(self) -> int:
        return sum(row.finished for row in self.rows.values())

    def exit_code(self) -> int:
        code = EXIT_OK
        for row in self.rows.values():
            if row.error is not None:
                code = max(code, exit_code_for(row.error))
            elif row.last is None or not row.last.is_done:
                code = max(code, EXIT_INTERRUPTED)
            elif not succeeded(row.last):
                code = max(code, EXIT_TASK_FAILED)
        return code

    def progress(self, stats: ClientStats) -> str:
        """The aggregate line: tasks done, requests used, budget left."""
        if stats.server_remaining is not None and stats.server_limit is not None:
            budget = f"{stats.server_remaining} of {stats.server_limit} left this minute"
        elif stats.requests_per_minute is not None:
            budget = f"pace {stats.requests_per_minute:g} requests/minute"
        else:
            budget = "no pace cap"
        paused = f", paused {stats.paused_for:.0f}s by the server" if stats.paused_for > 0 else ""
        return (
            f"{self.done} of {len(self.rows)} done, {plural(stats.requests, 'request')}, "
            f"{budget}{paused}"
        )

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
                    inert(last.status.done_reason or "-") if last else "-",
                    str(last.total_results) if last else "-",
                    str(last.status.total_pages) if last else "-",
                    f"{duration:.1f}s",
                )
            )
        return result


def footer(stats: ClientStats, *, speed: float | None = None) -> str:
    """The line under the summary: what the watch cost and at which pace."""
    if stats.requests_per_minute is None:
        pace = "no client-side pace cap"
    elif speed is not None:
        pace = (
            f"pace {stats.requests_per_minute:g} requests/minute (the API's 90 a minute of "
            f"simulated time, at {speed:g}x)"
        )
    else:
        pace = f"pace {stats.requests_per_minute:g} requests/minute"
    return (
        f"{plural(stats.requests, 'request')}, {plural(stats.retries, 'retry', 'retries')}, "
        f"{stats.rate_limited} rate-limited (429); {pace}"
    )


_SUMMARY_HEADERS = ("task", "status", "done_reason", "results", "pages", "time")


def _plain_table(board: Board, out: IO[str]) -> None:
    rows = [_SUMMARY_HEADERS, *board.summary_rows()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_SUMMARY_HEADERS))]
    print(file=out)
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip(), file=out)


class PlainDisplay:
    """One line per snapshot (UTC time first); a text table at the end. Errors go to stderr
    only (the caller prints them), so a line on stdout is always a snapshot."""

    def __init__(self, out: IO[str], *, quiet: bool = False) -> None:
        self._out = out
        self._quiet = quiet

    def start(self, board: Board, stats: Callable[[], ClientStats]) -> None:
        return

    def show(self, row: Row) -> None:
        last = row.last
        if self._quiet or row.error is not None or last is None:
            return
        line = (
            f"{row.task_hash}  {inert(last.state):<9}  results={last.total_results}  "
            f"pages={last.status.total_pages}"
        )
        if last.is_done:
            line += f"  done_reason={inert(last.status.done_reason)}"
        print(f"{_now_text()}  {line}", file=self._out, flush=True)

    def stop(self) -> None:
        return

    def summary(self, board: Board, footer_text: str) -> None:
        _plain_table(board, self._out)
        print(footer_text, file=self._out, flush=True)


class JsonDisplay:
    """Newline-delimited JSON: one object per snapshot in the documented task shape, and one
    ``{"hash_value": ..., "error": {...}}`` per task that failed. With ``quiet``, only the
    terminal snapshots and the errors."""

    def __init__(self, out: IO[str], *, quiet: bool = False) -> None:
        self._out = out
        self._quiet = quiet

    def start(self, board: Board, stats: Callable[[], ClientStats]) -> None:
        return

    def show(self, row: Row) -> None:
        if row.error is not None:
            record: dict[str, Any] = {
                "hash_value": row.task_hash,
                "error": {"type": type(row.error).__name__, "message": one_line(row.error)},
            }
        elif row.last is not None and (row.last.is_done or not self._quiet):
            record = _convert.unstructure_task(row.last)
        else:
            return
        print(json_line(record), file=self._out, flush=True)

    def stop(self) -> None:
        return

    def summary(self, board: Board, footer_text: str) -> None:
        return  # stdout stays pure NDJSON


def _done_mark(task: Task) -> str:
    """✓ for a success, ! for an abort (partial results), ✗ for any other failure."""
    if succeeded(task):
        return "[green]✓"
    return "[yellow]!" if task.state == TaskState.ABORTED else "[red]✗"


class RichDisplay:
    """A live view (one line per task, as many as the terminal has rows for, unfinished tasks
    first, and an aggregate line), then a summary table with the hashes in full."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._board: Board | None = None
        self._stats: Callable[[], ClientStats] | None = None
        self._live: Live | None = None
        self._spinners: dict[str, RenderableType] = {}

    def start(self, board: Board, stats: Callable[[], ClientStats]) -> None:
        from rich.live import Live

        self._board, self._stats = board, stats
        self._live = Live(
            console=self._console,
            get_renderable=self._render,
            refresh_per_second=8,
            transient=True,  # the summary table replaces it
        )
        self._live.start()

    def show(self, row: Row) -> None:
        return  # the live view reads the board at each refresh

    def _state_cell(self, row: Row) -> str:
        from rich.markup import escape

        if row.error is not None:
            return f"[red]✗ error: {escape(type(row.error).__name__)}[/]"
        last = row.last
        if last is None:
            return "[dim]waiting[/]"
        shown = escape(inert(last.state))  # server text: never read as markup
        if not last.is_done:
            return shown
        return f"{_done_mark(last)} {shown}[/]"

    def _render(self) -> RenderableType:
        from rich.console import Group
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text

        board, stats = self._board, self._stats
        assert board is not None  # set in start()
        assert stats is not None
        rows = list(board.rows.values())
        room = max(1, self._console.size.height - 3)
        shown = rows
        if len(rows) > room:
            # Unfinished tasks first, then the most recently finished ones.
            unfinished = [r for r in rows if not r.finished]
            finished = sorted(
                (r for r in rows if r.finished), key=lambda r: r.ended or 0.0, reverse=True
            )
            shown = (unfinished + finished)[: room - 1]
        wide = self._console.size.width >= 100
        grid = Table.grid(padding=(0, 1))
        for _ in range(6):
            grid.add_column(no_wrap=True)
        now = time.monotonic()
        for row in shown:
            if row.finished:
                spinner: RenderableType = Text(" ")
            else:
                spinner = self._spinners.setdefault(row.task_hash, Spinner("dots"))
            last = row.last
            grid.add_row(
                spinner,
                Text(row.task_hash if wide else row.task_hash[:12], style="bold"),
                self._state_cell(row),
                f"[cyan]{last.total_results if last else '-':>7}[/] results",
                f"{last.status.total_pages if last else '-':>4} pages",
                f"{((row.ended or now) - row.started):6.1f}s",
            )
        parts: list[RenderableType] = [grid]
        if len(shown) < len(rows):
            parts.append(Text(f"  … and {len(rows) - len(shown)} more", style="dim"))
        parts.append(Text(board.progress(stats()), style="bold"))
        return Group(*parts)

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()

    def summary(self, board: Board, footer_text: str) -> None:
        from rich import box
        from rich.markup import escape
        from rich.table import Table

        # Light borders, so that the full hash and the other columns fit in 80 columns.
        table = Table(
            title="taskwatch summary", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False
        )
        longest = max((len(h) for h in board.rows), default=4)
        table.add_column("task", no_wrap=True, min_width=longest)
        table.add_column("status", overflow="fold", min_width=9)
        table.add_column("done_reason", overflow="fold", min_width=11)
        table.add_column("results", justify="right")
        table.add_column("pages", justify="right")
        table.add_column("time", justify="right")
        for values in board.summary_rows():
            table.add_row(*(escape(value) for value in values))
        self._console.print(table)
        self._console.print(escape(footer_text))


Display = PlainDisplay | JsonDisplay | RichDisplay


def make_display(*, json_output: bool, plain: bool, quiet: bool) -> tuple[Display, str | None]:
    """The display for these options and this stdout, and a note for stderr when the live
    display was wanted but rich is missing."""
    if json_output:
        return JsonDisplay(sys.stdout, quiet=quiet), None
    if plain or quiet or not sys.stdout.isatty():
        return PlainDisplay(sys.stdout, quiet=quiet), None
    try:
        from rich.console import Console
    except ImportError:  # the cli extra is not installed: plain lines still work
        note = (
            "plain output: install the cli extra for the live display "
            "(pip install 'lobstr-taskwatch[cli]')"
        )
        return PlainDisplay(sys.stdout), note
    return RichDisplay(Console()), None
