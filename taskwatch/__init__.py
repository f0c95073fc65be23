"""taskwatch: watch long-running Lobstr.io scraping tasks from asyncio code.

::

    async with taskwatch.Client() as client:          # key from LOBSTR_TOKEN or the lobstr config
        async for task in client.watch("c5e29d2aba8b77cdc56391e7405302de"):
            print(task.status.status, task.total_results)
"""

from ._shortcuts import wait, watch
from ._version import __version__
from .client import DEFAULT_BASE_URL, Client, ClientStats
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    InvalidTaskHashError,
    NotFoundError,
    PermissionDeniedError,
    RateBudgetUnavailableError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    TaskFailedError,
    TaskwatchError,
    TLSError,
    TransportError,
    WatchTimeout,
)
from .models import Task, TaskState, TaskStatus
from .ratelimit import Limiter, RateLimiter, RateLimitInfo

__all__ = [  # noqa: RUF022 - plainly sorted, as the tests check
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ClientClosedError",
    "ClientStats",
    "ConfigurationError",
    "DEFAULT_BASE_URL",
    "InvalidTaskHashError",
    "Limiter",
    "NotFoundError",
    "PermissionDeniedError",
    "RateBudgetUnavailableError",
    "RateLimitError",
    "RateLimitInfo",
    "RateLimiter",
    "ResponseFormatError",
    "ServerError",
    "TLSError",
    "Task",
    "TaskFailedError",
    "TaskState",
    "TaskStatus",
    "TaskwatchError",
    "TransportError",
    "WatchTimeout",
    "__version__",
    "wait",
    "watch",
]
