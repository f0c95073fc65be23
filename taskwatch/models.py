"""The task as taskwatch reports it: frozen, slotted attrs classes.

Fields follow the documented body of ``GET /v1/tasks/{task_hash}``. The service does not
always send that shape (the vendor's own SDK, CLI and integrations show others), so the reader
is strict about identity and lenient about everything else: each field below says what it
holds when the body omits it or sends it in another form. Unknown fields are ignored and
undocumented states are kept as they came.

When is a task done, and did it succeed? One table, used by ``Task.is_done``,
``Task.succeeded``, ``wait(raise_on_failure=True)`` and the command line alike:

==============================  ==========  ===================================================
state (``task.state``)          done?       outcome once done
==============================  ==========  ===================================================
``completed``, ``done``         yes         success
``aborted``, ``failed``,        yes         failure (an aborted task may have partial results)
``error``
``pending``, ``running``        no          -
any other state, or none        when the    success if ``done_reason`` is ``completed``, else
                                body has    failure
                                ``ended_at``
                                or a
                                ``done_reason``
==============================  ==========  ===================================================

When the body has ``status.is_done``, it decides done-ness instead of the state (the outcome
still follows the state, as in the last column).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import attrs

__all__ = ["FAILURE_STATES", "LIVE_STATES", "SUCCESS_STATES", "Task", "TaskState", "TaskStatus"]


class TaskState(str, enum.Enum):
    """The states a task is known to report in ``TaskStatus.status``.

    ``TaskStatus.status`` itself is a plain ``str`` (the service may add states), and each
    member compares equal to its string: ``task.status.status == TaskState.COMPLETED``.
    ``PENDING`` to ``FAILED`` are documented; ``DONE`` and ``ERROR`` are what the service
    also sends (seen in the vendor's own tools); ``UNKNOWN`` is taskwatch's: the body gave
    no state.
    """

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    ABORTED = "aborted"
    FAILED = "failed"
    DONE = "done"
    ERROR = "error"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


#: States that end a task successfully.
SUCCESS_STATES: frozenset[str] = frozenset({TaskState.COMPLETED.value, TaskState.DONE.value})
#: States that end a task without success.
FAILURE_STATES: frozenset[str] = frozenset(
    {TaskState.ABORTED.value, TaskState.FAILED.value, TaskState.ERROR.value}
)
#: States of a task that has not stopped.
LIVE_STATES: frozenset[str] = frozenset({TaskState.PENDING.value, TaskState.RUNNING.value})

_SUCCESS_REASONS = frozenset({"completed", "done", "success"})


@attrs.frozen(slots=True)
class TaskStatus:
    """The ``status`` of a task.

    The service sends it as an object (documented), as a list (of objects or of states: the
    entry furthest along is read, done before started before pending, then the most results),
    as a plain string (the state; the fields below are then read from the top level of the
    body), or not at all (fields read from the top level). A field absent from the status
    object is also looked for at the top level.

    Attributes:
        status: the state, trimmed and in lower case: ``pending``, ``running``,
            ``completed``, ``aborted``, ``failed``, ``done``, ``error``, or one no table lists
            yet (see ``TaskState``); ``"unknown"`` when the body gives none.
        is_done: the task has stopped; no later snapshot will differ. The body's
            ``is_done`` when it has one (``"true"``/``"false"`` and 1/0 are read too), else
            derived from the state (see the table in ``taskwatch.models``).
        total_results: results scraped so far, the progress signal; 0 when absent or
            unreadable (``"12"`` and ``12.0`` read as 12).
        total_pages: pages processed so far; 0 when absent or unreadable.
        started_at / ended_at: when execution started and ended, if it has; timezone-aware
            UTC whatever form the body used (naive timestamps are the service's UTC); None
            when absent, null or unreadable.
        done_reason: why the task stopped (``completed``, ``run_aborted``, ``error``, ...),
            or None.
        has_errors: errors occurred during execution; when the body omits it, whether
            ``errors`` holds anything.
        errors: the error details exactly as the server sent them: any JSON value.
    """

    status: str
    is_done: bool
    total_results: int
    total_pages: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    done_reason: str | None = None
    has_errors: bool = False
    errors: Any = None

    @property
    def succeeded(self) -> bool:
        """The task is done and ended well (see the table in ``taskwatch.models``)."""
        if not self.is_done:
            return False
        state = self.status
        if state in SUCCESS_STATES:
            return True
        if state in FAILURE_STATES:
            return False
        return self.done_reason in _SUCCESS_REASONS

    @property
    def failed(self) -> bool:
        """The task is done and did not succeed (failed, aborted, an error, or an end that
        the table cannot call a success). Its results may be partial."""
        return self.is_done and not self.succeeded


@attrs.frozen(slots=True)
class Task:
    """One snapshot of a task.

    Attributes:
        hash_value: the task's hash: the body's ``hash_value``, else its ``id`` (as the
            official SDK reads it; ``task`` in a run-task object), else the hash that was
            asked for. A body naming another task is refused, never read as this one.
        status: the execution status (see ``TaskStatus``).
        created_at: when the task was created, timezone-aware UTC (see ``TaskStatus``);
            None when absent or unreadable.
        is_active: the API's ``is_active`` flag; None when absent or unreadable.
        params: the task's parameters (url, search terms, ...), as sent; empty when absent
            or not an object.
        module: the module the task runs: an integer id (documented) or a string hash (also
            sent); another scalar is kept as its string; None when absent.
        object: ``"task"`` in the documented API (and when absent).
    """

    hash_value: str
    status: TaskStatus
    created_at: datetime | None = None
    is_active: bool | None = True
    params: dict[str, Any] = attrs.field(factory=dict)
    module: int | str | None = None
    object: str = "task"

    @property
    def is_done(self) -> bool:
        """True once the task has stopped (see ``TaskStatus.is_done``)."""
        return self.status.is_done

    @property
    def succeeded(self) -> bool:
        """True once the task has stopped and ended well (see ``TaskStatus.succeeded``)."""
        return self.status.succeeded

    @property
    def failed(self) -> bool:
        """True once the task has stopped without success (see ``TaskStatus.failed``)."""
        return self.status.failed

    @property
    def total_results(self) -> int:
        """Results scraped so far; final once ``is_done``."""
        return self.status.total_results

    @property
    def state(self) -> str:
        """Shorthand for ``status.status``."""
        return self.status.status
