"""The ``taskwatch`` command line: ``watch``, ``get``, ``demo``, ``simulate``, ``completion``.

Arguments are parsed and checked first (``_parsing``): a usage error is one line and exit 2,
before anything is sent. The command then runs (``_commands``) with a display (``_display``,
the only module importing rich, from the ``cli`` extra). This runner gives every command the
same manners: errors are one line on stderr, never a traceback; Ctrl-C and SIGTERM stop it
cleanly after the partial summary; a closed stdout (``| head``) ends it quietly; ``-v`` and
``-q`` set what the ``taskwatch`` logger shows on stderr.

Exit codes (when several apply, the highest wins)::

    0   every task completed (``demo``: the demo ran; ``simulate``: it was stopped)
    1   at least one task failed or was aborted
    2   usage error (nothing was sent)
    3   a watch timed out (``--timeout`` or ``--deadline``)
    4   no key, or the key was refused (401/403)
    5   a task was not found (404)
    6   another API, network or response error
    130 interrupted (Ctrl-C); the partial summary is printed first
    141 stdout was closed early (``| head``)
    143 terminated (SIGTERM); the partial summary is printed first
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator, Sequence

from ..errors import TaskwatchError
from ._commands import COMMANDS, Command, Run, notice
from ._display import one_line
from ._outcome import (
    EXIT_AUTH,
    EXIT_BROKEN_PIPE,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_TASK_FAILED,
    EXIT_TERMINATED,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    exit_code_for,
    succeeded,
)
from ._parsing import UsageError, build_parser, check, read_hashes, silence_stdout

__all__ = [
    "EXIT_AUTH",
    "EXIT_BROKEN_PIPE",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_TASK_FAILED",
    "EXIT_TERMINATED",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "exit_code_for",
    "main",
    "succeeded",
]

_SIGNAL_CODES: dict[int, int] = {signal.SIGINT: EXIT_INTERRUPTED, signal.SIGTERM: EXIT_TERMINATED}
_SIGNAL_WORDS: dict[int, str] = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    try:
        return _main(argv)
    except BrokenPipeError:
        silence_stdout()
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if hasattr(args, "hashes"):
            args.hashes = read_hashes(args.hashes, sys.stdin)
        check(args)
    except UsageError as error:
        notice(f"{args.command}: error: {error}")
        return EXIT_USAGE
    if args.command == "completion":
        return _completion(parser, args.shell)
    run = Run()
    with _logging(args):
        try:
            code = asyncio.run(_until_signal(COMMANDS[args.command], args, run))
        except KeyboardInterrupt:  # a Ctrl-C the loop could not catch (Windows, teardown)
            run.stopped_by = signal.SIGINT
            code = _stopped_code(run)
        except TaskwatchError as error:
            notice(f"error: {one_line(error)}")
            return exit_code_for(error)
    if run.stopped_by is not None and not run.stop_is_success:
        notice(_SIGNAL_WORDS.get(run.stopped_by, "stopped"))
    return code


async def _until_signal(command: Command, args: argparse.Namespace, run: Run) -> int:
    """Run ``command``; SIGINT (unless ignored, as in a background job) and SIGTERM cancel
    it, so that it prints its partial summary, and give the signal's exit code."""
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None  # asyncio.run runs this as a task

    def stop(signum: int) -> None:
        if run.stopped_by is None:
            run.stopped_by = signum
        main_task.cancel()

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is signal.SIG_IGN:
            continue
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop, signum)
            installed.append(signum)
    try:
        return await command(args, run)
    except asyncio.CancelledError:
        if run.stopped_by is None:
            raise
        uncancel = getattr(main_task, "uncancel", None)  # Python 3.11+
        if uncancel is not None:
            uncancel()
        return _stopped_code(run)
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def _stopped_code(run: Run) -> int:
    if run.stop_is_success:
        return EXIT_OK
    code = _SIGNAL_CODES.get(run.stopped_by or signal.SIGINT, EXIT_INTERRUPTED)
    return max(code, run.board.exit_code()) if run.board is not None else code


class _StderrHandler(logging.Handler):
    """``taskwatch: message`` on whatever ``sys.stderr`` is at the time (the live view
    swaps it to print above itself)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            notice(self.format(record))
        except Exception:  # a logging handler must not raise
            self.handleError(record)


@contextlib.contextmanager
def _logging(args: argparse.Namespace) -> Iterator[None]:
    """Show the ``taskwatch`` logger on stderr for the command: retries by default, also
    budget waits and server pauses with ``-v``, errors only with ``-q``."""
    level = logging.ERROR if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    package = logging.getLogger("taskwatch")
    handler = _StderrHandler(level)
    saved = package.level
    package.addHandler(handler)
    package.setLevel(min(level, saved) if saved else level)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(saved)


def _completion(parser: argparse.ArgumentParser, shell: str) -> int:
    try:
        import shtab
    except ImportError:
        notice("completion needs shtab: pip install 'lobstr-taskwatch[cli]'")
        return EXIT_ERROR
    print(shtab.complete(parser, shell=shell), flush=True)
    return EXIT_OK
