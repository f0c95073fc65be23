"""Every error taskwatch raises, one class per meaning.

::

    TaskwatchError                      base of everything below
    ├── ConfigurationError              no API key found, or a setting refused (also a ValueError)
    ├── InvalidTaskHashError            a hash that is not one safe path segment (also a ValueError)
    ├── ClientClosedError               a call on a Client after aclose() (also a RuntimeError)
    ├── APIError                        the API answered with an error status
    │   ├── BadRequestError             400
    │   ├── AuthenticationError         401: missing, invalid or expired key
    │   ├── PermissionDeniedError       403
    │   ├── NotFoundError               404: no such task
    │   ├── RateLimitError              429: carries ``retry_after`` (seconds or None)
    │   └── ServerError                 5xx: carries ``retry_after`` when the server sent one
    ├── TransportError                  connection refused/reset, DNS, per-attempt timeout
    │   └── TLSError                    the TLS handshake failed (not https there, or a
    │                                   certificate refused): not retried
    ├── ResponseFormatError             a body that is not the documented task (carries ``details``)
    ├── WatchTimeout                    a watch outlived its ``timeout`` (carries ``last``)
    └── TaskFailedError                 ``raise_on_failure=True`` and the task ended without success

Errors about one task carry ``task_hash``. Messages never contain the API key: taskwatch
never puts request headers into a message or a log record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import Task

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ConfigurationError",
    "InvalidTaskHashError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateBudgetUnavailableError",
    "RateLimitError",
    "ResponseFormatError",
    "ServerError",
    "TLSError",
    "TaskFailedError",
    "TaskwatchError",
    "TransportError",
    "WatchTimeout",
]


class TaskwatchError(Exception):
    """Base class of every error taskwatch raises on purpose.

    Attributes:
        message: what went wrong (also ``str(error)``); never holds the API key.
        task_hash: the task the error is about, when it is about one.
    """

    task_hash: str | None

    def __init__(self, message: str, *, task_hash: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.task_hash = task_hash

    def __str__(self) -> str:
        return self.message


class ConfigurationError(TaskwatchError, ValueError):
    """The client cannot be set up as asked (for example: no API key anywhere)."""


class InvalidTaskHashError(TaskwatchError, ValueError):
    """The task hash cannot be sent safely as one URL path segment; nothing was sent."""


class ClientClosedError(TaskwatchError, RuntimeError):
    """The Client was used after ``aclose()`` (or after its ``async with`` block ended)."""


class APIError(TaskwatchError):
    """The API answered with a status that is not a task.

    Attributes:
        status: the HTTP status code.
        message: the message from the error body (any documented shape), else the HTTP reason.
        error_type: the error type the body named (``"not_found_error"``, ``"RateLimitExceeded"``,
            ...), or None.
        body: the parsed JSON body when it was JSON, else the raw text (truncated), else None.
        hint: what taskwatch suspects is behind the error, when it has a clue (shown in the
            error's text), else None.
    """

    hint: str | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int,
        body: Any = None,
        error_type: str | None = None,
        task_hash: str | None = None,
    ) -> None:
        super().__init__(message, task_hash=task_hash)
        self.status = status
        self.body = body
        self.error_type = error_type

    def __str__(self) -> str:
        where = f" (task {self.task_hash})" if self.task_hash else ""
        hint = f"; {self.hint}" if self.hint else ""
        return f"{self.status}: {self.message}{where}{hint}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, message={self.message!r}, "
            f"task_hash={self.task_hash!r})"
        )


class BadRequestError(APIError):
    """400: the API refused the request as malformed."""


class AuthenticationError(APIError):
    """401: the API key is missing, invalid or expired."""


class PermissionDeniedError(APIError):
    """403: the key is valid but may not read this task."""


class NotFoundError(APIError):
    """404: the API knows no task with this hash."""


class _RetryAfterMixin(APIError):
    """An API error that may carry the server's ``Retry-After`` advice."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        body: Any = None,
        error_type: str | None = None,
        task_hash: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message, status=status, body=body, error_type=error_type, task_hash=task_hash
        )
        self.retry_after = retry_after


class RateLimitError(_RetryAfterMixin):
    """429: too many requests. ``retry_after`` is the server's advice in seconds, or None."""


class ServerError(_RetryAfterMixin):
    """5xx: the API failed. ``retry_after`` is set when the server sent ``Retry-After``."""


class TransportError(TaskwatchError):
    """The request did not get an HTTP answer: connection refused or reset, DNS failure,
    a response cut off mid-body, or the per-attempt timeout elapsed.

    The original aiohttp/asyncio exception is the ``__cause__``.
    """


class TLSError(TransportError):
    """The TLS handshake failed: the server does not speak https at that address, or its
    certificate was refused. Raised after the first attempt, never retried: the same
    handshake fails the same way again.

    The original aiohttp exception is the ``__cause__``.
    """


class RateBudgetUnavailableError(TaskwatchError):
    """A shared rate budget (``taskwatch.redis.RedisLimiter``) could not be consulted, so the
    request was not sent: Redis unreachable, too slow, or refusing the script.

    The original redis/asyncio exception is the ``__cause__``. Pass ``fallback=`` to the
    limiter to keep going on a local budget instead.
    """


class ResponseFormatError(TaskwatchError):
    """The API answered 200 with a body that is not the documented task.

    Attributes:
        details: one line per problem found (cattrs' validation detail when the JSON was an
            object of the wrong shape).
        truncated: True when the body ended in the middle of a JSON document, which taskwatch
            treats as a transient failure and retries.
    """

    def __init__(
        self,
        message: str,
        *,
        task_hash: str | None = None,
        details: list[str] | None = None,
        truncated: bool = False,
    ) -> None:
        super().__init__(message, task_hash=task_hash)
        self.details = details or []
        self.truncated = truncated

    def __str__(self) -> str:
        where = f" (task {self.task_hash})" if self.task_hash else ""
        if not self.details:
            return f"{self.message}{where}"
        return f"{self.message}{where}: " + "; ".join(self.details[:5])


class WatchTimeout(TaskwatchError, TimeoutError):
    """A watch did not see its task finish within ``timeout`` seconds.

    ``last`` is the last snapshot fetched (None when none arrived).
    """

    def __init__(self, message: str, *, task_hash: str | None, last: Task | None) -> None:
        super().__init__(message, task_hash=task_hash)
        self.last = last


class TaskFailedError(TaskwatchError):
    """The task ended without success (``task.failed``: aborted, failed, error, ...; see the
    table in ``taskwatch.models``) and the caller asked for an error.

    ``task`` is the terminal snapshot; its results (``task.total_results``) may be partial.
    """

    def __init__(self, message: str, *, task: Task) -> None:
        super().__init__(message, task_hash=task.hash_value)
        self.task = task
