"""The command line's arguments: the parser, the checks on every value, and the task hashes
read from arguments, stdin (``-``) and files (``@FILE``).

Everything is checked here, before a command starts: a bad value is a usage error (exit 2,
one line on stderr) and nothing is sent.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterable, Sequence
from typing import IO, TYPE_CHECKING, NoReturn

from .. import _protocol
from .._dialects import DIALECTS
from .._version import __version__
from ..client import DEFAULT_BASE_URL
from ..errors import InvalidTaskHashError
from ._display import inert
from ._outcome import EXIT_USAGE

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

__all__ = ["UsageError", "build_parser", "check", "read_hashes"]

# Environment variables for the settings a user tunes (LOBSTR_TOKEN is the lobstr tools' own).
ENV_BASE_URL = "TASKWATCH_BASE_URL"
ENV_REQUESTS_PER_MINUTE = "TASKWATCH_REQUESTS_PER_MINUTE"
ENV_MAX_RETRIES = "TASKWATCH_MAX_RETRIES"
ENV_REQUEST_TIMEOUT = "TASKWATCH_REQUEST_TIMEOUT"
ENV_REDIS_URL = "TASKWATCH_REDIS_URL"

MAX_SPEED = 1000.0  # simulated seconds per second; beyond it simulated clocks overflow


class UsageError(Exception):
    """A value the command cannot use; printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (and where to read more) instead of the
    usage block."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_USAGE)

    def print_help(self, file: SupportsWrite[str] | None = None) -> None:
        # Help for a reader already gone (``--help | head``) ends quietly, on every Python
        # (argparse itself ignores the error only from 3.11 on).
        try:
            super().print_help(file)
        except BrokenPipeError:
            silence_stdout()


def silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null, so that the interpreter's final flush
    does not fail again and print 'Exception ignored'."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _number(text: str, *, low: float, high: float = math.inf, what: str = "") -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {inert(text)!r}") from None
    if not (math.isfinite(value) and low < value <= high):
        bound = f"between {low:g} (excluded) and {high:g}" if high < math.inf else f"above {low:g}"
        raise argparse.ArgumentTypeError(f"must be a finite number {bound}{what}")
    return value


def _seconds(text: str) -> float:
    return _number(text, low=0.0)


def _speed(text: str) -> float:
    return _number(text, low=0.0, high=MAX_SPEED)


def _pace(text: str) -> float | None:
    """Requests per minute; 0 for no client-side cap."""
    if text.strip() == "0":
        return None
    return _number(text, low=0.0, what=", or 0 for no cap")


def _whole(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {inert(text)!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return parse


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {inert(text)!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _base_url(text: str) -> str:
    """An absolute http(s) URL (never echoed: it may hold credentials)."""
    try:
        url = _protocol.normalise_base_url(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an absolute http(s) URL without query, such as {DEFAULT_BASE_URL}"
        ) from None
    return str(url)


def _token(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


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


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


_EXIT_CODES = """\
exit codes (when several apply, the highest wins):
  0    every task completed (demo: the demo ran; simulate: stopped)
  1    at least one task failed or was aborted
  2    usage error (nothing was sent)
  3    a watch timed out (--timeout or --deadline)
  4    no key, or the key was refused (401/403)
  5    a task was not found (404)
  6    another API, network or response error
  130  interrupted (Ctrl-C); the partial summary is printed first
  141  stdout was closed early (| head): a quiet exit
  143  terminated (SIGTERM); the partial summary is printed first"""

_TOP_EXAMPLES = f"""\
examples:
  taskwatch demo                                   try it: simulated tasks, no key needed
  export LOBSTR_TOKEN=...                          or: lobstr config set-token ...
  taskwatch watch c5e29d2aba8b77cdc56391e7405302de
  taskwatch get --json HASH | jq .status
  cat hashes.txt | taskwatch watch - --json        hashes from stdin, one per line

{_EXIT_CODES}"""

_WATCH_EXAMPLES = f"""\
examples:
  taskwatch watch HASH1 HASH2                   live view on a terminal, then a summary
  taskwatch watch @hashes.txt --deadline 3600   hashes from a file; give up after an hour
  some-command | taskwatch watch - --plain      hashes from stdin; one line per change
  taskwatch watch HASH --json | jq -c '{{h: .hash_value, n: .status.total_results}}'

{_EXIT_CODES}"""

_GET_EXAMPLES = f"""\
examples:
  taskwatch get HASH
  taskwatch get HASH1 HASH2 --json | jq .status.status

{_EXIT_CODES}"""

_DEMO_EXAMPLES = """\
examples:
  taskwatch demo
  taskwatch demo --tasks 40 --speed 100 --seed 7
  taskwatch demo --json | jq -c 'select(.status.is_done)'"""

_SIMULATE_EXAMPLES = """\
examples:
  taskwatch simulate --port 8090 --tasks 5
      then, in another shell, with the key and base URL it prints:
  LOBSTR_TOKEN=sim-... taskwatch watch --base-url http://127.0.0.1:8090/v1 HASH
  curl -H 'Authorization: Token sim-...' http://127.0.0.1:8090/v1/tasks/HASH
  taskwatch simulate --faults 0.2 --rate-limit 30     a flaky, stingy API"""


def _formatter(prog: str) -> argparse.HelpFormatter:
    """Epilogs (examples, tables) as written; descriptions are wrapped by ``_wrapped``."""
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _wrapped(text: str) -> str:
    """A paragraph wrapped to the terminal (at most 78 columns), as argparse would."""
    width = max(40, min(shutil.get_terminal_size().columns - 2, 78))
    return textwrap.fill(text, width)


def build_parser() -> argparse.ArgumentParser:
    """The ``taskwatch`` parser with its subcommands (handlers are set by the caller)."""
    parser = _Parser(
        prog="taskwatch",
        description=_wrapped("Watch Lobstr.io scraping tasks until they finish."),
        epilog=_TOP_EXAMPLES,
        formatter_class=_formatter,
    )
    parser.add_argument("--version", action="version", version=f"taskwatch {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    talk = _Parser(add_help=False)
    loudness = talk.add_mutually_exclusive_group()
    loudness.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also show on stderr each wait for the rate budget and each pause the server asks",
    )
    loudness.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print only errors and the final result (no retries, no progress)",
    )

    output = _Parser(add_help=False)
    formats = output.add_mutually_exclusive_group()
    formats.add_argument(
        "--json",
        action="store_true",
        help="print newline-delimited JSON: one object per snapshot, in the API's task shape",
    )
    formats.add_argument(
        "--plain",
        action="store_true",
        help="plain lines even on a terminal (no live view)",
    )

    polling = _Parser(add_help=False)
    polling.add_argument(
        "--min-interval",
        type=_seconds,
        default=1.0,
        metavar="SECONDS",
        help="poll a changing task this often (default: %(default)g)",
    )
    polling.add_argument(
        "--max-interval",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="back off to at most this between polls of a quiet task (default: %(default)g)",
    )
    polling.add_argument(
        "--timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="give up on a task not done after this long (default: no limit)",
    )
    polling.add_argument(
        "--deadline",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="stop the whole watch after this long, exit 3 (default: no limit)",
    )

    api = _Parser(add_help=False)
    api.add_argument(
        "--base-url",
        type=_base_url,
        default=_env(ENV_BASE_URL, DEFAULT_BASE_URL),
        metavar="URL",
        help=f"the API root, ending in /v1 (env {ENV_BASE_URL}; default: %(default)s)",
    )
    api.add_argument(
        "--token",
        "--api-key",
        dest="token",
        type=_token,
        default=None,
        metavar="KEY",
        help="discouraged: a key on the command line lands in shell history and process "
        "lists; set LOBSTR_TOKEN or log in with the lobstr CLI instead",
    )
    api.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="allow an http:// base URL on another machine (the key travels in clear text)",
    )
    api.add_argument(
        "--requests-per-minute",
        type=_pace,
        default=_env(ENV_REQUESTS_PER_MINUTE, "90"),
        metavar="N",
        help="the client-side pace; 0 for none (env "
        f"{ENV_REQUESTS_PER_MINUTE}; default: 90, the API's documented limit)",
    )
    api.add_argument(
        "--max-retries",
        type=_whole(0, 100),
        default=_env(ENV_MAX_RETRIES, "5"),
        metavar="N",
        help="retries of a transient failure (no answer, 5xx, 429) per request "
        f"(env {ENV_MAX_RETRIES}; default: 5)",
    )
    api.add_argument(
        "--request-timeout",
        type=_seconds,
        default=_env(ENV_REQUEST_TIMEOUT, "30"),
        metavar="SECONDS",
        help=f"the limit for one request (env {ENV_REQUEST_TIMEOUT}; default: 30)",
    )
    api.add_argument(
        "--redis-url",
        type=_redis_url,
        default=os.environ.get(ENV_REDIS_URL, ""),
        metavar="URL",
        help="take request slots from the key's budget shared on this Redis, as workers using "
        f"taskwatch.redis.RedisLimiter do (env {ENV_REDIS_URL}; needs the redis extra)",
    )

    hashes_help = (
        "a task hash; '-' reads hashes from stdin and @FILE from a file, one per line "
        "(blank lines and # comments skipped)"
    )

    watch = commands.add_parser(
        "watch",
        parents=[output, polling, api, talk],
        help="watch tasks until they are done",
        description=_wrapped(
            "Poll tasks until each is done, on one shared rate budget, and print a "
            "summary. On a terminal: a live view; otherwise one line per change (--plain) or "
            "JSON (--json)."
        ),
        epilog=_WATCH_EXAMPLES,
        formatter_class=_formatter,
    )
    watch.add_argument("hashes", nargs="+", metavar="HASH", help=hashes_help)

    get = commands.add_parser(
        "get",
        parents=[api, talk],
        help="print tasks as they are now",
        description=_wrapped(
            "Fetch each task once and print it: fields as text, or one JSON object "
            "per line with --json. Timestamps are UTC."
        ),
        epilog=_GET_EXAMPLES,
        formatter_class=_formatter,
    )
    get.add_argument("hashes", nargs="+", metavar="HASH", help=hashes_help)
    get.add_argument(
        "--json", action="store_true", help="print each task as one line of JSON (the API shape)"
    )

    demo = commands.add_parser(
        "demo",
        parents=[output, talk],
        help="watch simulated tasks (no key, no network)",
        description=_wrapped(
            "Start a simulated API in this process and watch random tasks on it, "
            "faster than real time: what 'watch' looks like, without a key."
        ),
        epilog=_DEMO_EXAMPLES,
        formatter_class=_formatter,
    )
    _simulation_options(demo, tasks=8, speed=30.0)
    demo.set_defaults(min_interval=0.2, max_interval=1.0, timeout=None, deadline=None)

    simulate = commands.add_parser(
        "simulate",
        parents=[talk],
        help="serve a simulated API to try watch, get or your own client on",
        description=_wrapped(
            "Serve the simulated Lobstr.io task API (GET /v1/tasks/{hash}) on a port, "
            "with random tasks that progress on their own, and print its base URL, key and task "
            "hashes. Serves until Ctrl-C."
        ),
        epilog=_SIMULATE_EXAMPLES,
        formatter_class=_formatter,
    )
    _simulation_options(simulate, tasks=5, speed=10.0)
    simulate.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default: %(default)s)"
    )
    simulate.add_argument(
        "--port",
        type=_whole(0, 65535),
        default=0,
        help="the port to listen on; 0 picks a free one (default: %(default)s)",
    )
    simulate.add_argument(
        "--rate-limit",
        type=_whole(0, 1_000_000),
        default=90,
        metavar="N",
        help="requests per minute per key before a 429; 0 for none (default: %(default)s)",
    )
    simulate.add_argument(
        "--faults",
        type=_probability,
        default=0.0,
        metavar="P",
        help="the share of requests (0 to 1) that get a random fault: 500/503, 429, a "
        "dropped connection, a cut-off or malformed body (default: %(default)g)",
    )
    simulate.add_argument(
        "--key",
        type=_token,
        default=None,
        help="the key the simulator accepts (default: a random sim-... key, printed)",
    )
    simulate.add_argument(
        "--json",
        action="store_true",
        help="print the base URL, key and hashes as one JSON line (for scripts)",
    )

    completion = commands.add_parser(
        "completion",
        help="print a shell completion script",
        description=_wrapped(
            "Print a completion script for bash, zsh or tcsh (needs the cli extra)."
        ),
        epilog="examples:\n"
        "  source <(taskwatch completion bash)               in ~/.bashrc\n"
        '  taskwatch completion zsh > "${fpath[1]}/_taskwatch"',
        formatter_class=_formatter,
    )
    completion.add_argument("shell", choices=["bash", "zsh", "tcsh"], help="the shell")
    return parser


def _simulation_options(parser: argparse.ArgumentParser, *, tasks: int, speed: float) -> None:
    parser.add_argument(
        "--tasks",
        type=_whole(1, 10_000),
        default=tasks,
        metavar="N",
        help="how many random tasks (default: %(default)s)",
    )
    parser.add_argument(
        "--speed",
        type=_speed,
        default=speed,
        metavar="X",
        help=f"simulated seconds per real second, up to {MAX_SPEED:g} (default: %(default)g)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="make the tasks reproducible (default: random)"
    )
    parser.add_argument(
        "--dialect",
        choices=sorted(DIALECTS),
        default="documented",
        metavar="NAME",
        help="answer in the documented shape, or in one the real service also sends: sdk (id, "
        "no is_done, state done), cli-live (status as a list, 500 for unknown hashes), "
        "run-task (the state as a string) or everything (all at once) (default: %(default)s)",
    )


def _lines(text: str) -> Iterable[str]:
    for line in text.splitlines():
        value = line.strip()
        if value and not value.startswith("#"):
            yield value


def read_hashes(arguments: Sequence[str], stdin: IO[str]) -> list[str]:
    """The task hashes the arguments name, in order, duplicates dropped: ``-`` is every line
    of stdin (read once), ``@FILE`` every line of FILE; each is checked.

    Raises:
        UsageError: an unreadable file, no hash at all, or a hash that cannot be sent.
    """
    found: list[str] = []
    read_stdin = False
    for argument in arguments:
        if argument == "-":
            if read_stdin:
                continue
            read_stdin = True
            if stdin.isatty():
                raise UsageError("'-' reads hashes from stdin, but stdin is a terminal")
            found.extend(_lines(stdin.read()))
        elif argument.startswith("@"):
            path = argument[1:]
            try:
                with open(path, encoding="utf-8") as file:
                    found.extend(_lines(file.read()))
            except (OSError, UnicodeDecodeError) as exc:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                raise UsageError(f"cannot read {inert(argument)}: {inert(why)}") from None
        else:
            found.append(argument)
    if not found:
        raise UsageError("no task hash given (stdin or the file held none)")
    for task_hash in found:
        try:
            _protocol.validate_task_hash(task_hash)
        except InvalidTaskHashError as exc:
            raise UsageError(str(exc)) from None
    return list(dict.fromkeys(found))


def check(args: argparse.Namespace) -> None:
    """The checks that take more than one option into account.

    Raises:
        UsageError: what is wrong, in the options' words.
    """
    if getattr(args, "max_interval", 1.0) < getattr(args, "min_interval", 0.0):
        raise UsageError("--max-interval is below --min-interval")
    base_url = getattr(args, "base_url", None)
    if base_url is not None and not args.allow_insecure_http:
        url = _protocol.normalise_base_url(base_url)
        if url.scheme == "http" and not _protocol.is_loopback_host(url.host):
            raise UsageError(
                f"refusing to send the key in clear text to {inert(url.host)}: use https, "
                "or pass --allow-insecure-http if you really mean it"
            )
