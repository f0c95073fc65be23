"""The task as the API reports it: frozen, slotted attrs classes.

Fields follow the documented body of ``GET /v1/tasks/{task_hash}``. Unknown fields are ignored
and undocumented status strings are kept as they came, so a new server release does not break
a running watcher.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import attrs

__all__ = ["Task", "TaskState", "TaskStatus"]


class TaskState(str, enum.Enum):
    """The documented values of ``TaskStatus.status``.

    ``TaskStatus.status`` itself is a plain ``str`` (the server may add states), and each
    member compares equal to its string: ``task.status.status == TaskState.COMPLETED``.
    """

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    ABORTED = "aborted"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


@attrs.frozen(slots=True)
class TaskStatus:
    """The ``status`` object of a task.

    Attributes:
        status: ``pending``, ``running``, ``completed``, ``aborted``, ``failed`` or a state the
            documentation does not list yet (see ``TaskState``).
        is_done: the task has stopped; no later snapshot will differ.
        total_results: results scraped so far, the progress signal.
        total_pages: pages processed so far.
        started_at / ended_at: when execution started and ended, if it has.
        done_reason: why the task stopped (``completed``, ``run_aborted``, ``error``, ...).
        has_errors: errors occurred during execution.
        errors: the error details as the server sent them: None, a string or an object.
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


@attrs.frozen(slots=True)
class Task:
    """One snapshot of a task.

    Attributes:
        hash_value: the task's hash.
        status: the execution status (see ``TaskStatus``).
        created_at: when the task was created (naive as the API sends it, aware when the
            server sends an offset).
        is_active: the API's ``is_active`` flag.
        params: the task's parameters (url, search terms, ...), as sent.
        module: the internal module id.
        object: always ``"task"`` in the documented API.
    """

    hash_value: str
    status: TaskStatus
    created_at: datetime | None = None
    is_active: bool = True
    params: dict[str, Any] = attrs.field(factory=dict)
    module: int | None = None
    object: str = "task"

    @property
    def is_done(self) -> bool:
        """True once the task has stopped (completed, aborted or failed)."""
        return self.status.is_done

    @property
    def total_results(self) -> int:
        """Results scraped so far; final once ``is_done``."""
        return self.status.total_results

    @property
    def state(self) -> str:
        """Shorthand for ``status.status``."""
        return self.status.status
