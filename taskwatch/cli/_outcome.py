"""Exit codes, and what a task's state or an error means for them (one place for both)."""

from __future__ import annotations

from ..errors import (
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    WatchTimeout,
)
from ..models import Task

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
    "succeeded",
]

EXIT_OK = 0
EXIT_TASK_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_AUTH = 4
EXIT_NOT_FOUND = 5
EXIT_ERROR = 6
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of stdout went away (`| head`)
EXIT_TERMINATED = 143  # 128 + SIGTERM


def succeeded(task: Task) -> bool:
    """Whether a terminal snapshot counts as success: the one place the CLI decides it."""
    return task.succeeded


def exit_code_for(error: BaseException) -> int:
    """The documented exit code for an error (see ``taskwatch.cli``)."""
    if isinstance(error, (AuthenticationError, PermissionDeniedError, ConfigurationError)):
        return EXIT_AUTH
    if isinstance(error, NotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(error, WatchTimeout):
        return EXIT_TIMEOUT
    return EXIT_ERROR
