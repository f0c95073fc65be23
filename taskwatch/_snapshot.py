"""A snapshot kept compactly: what a sleeping watch holds for ``WatchTimeout.last``.

A ``Task`` is two attrs objects, a params dict and its strings (about 500 bytes for a pending
task). A watch keeps its last snapshot only to hand it over if it times out, so it keeps the
field values in one flat tuple instead (about 120 bytes for a pending task), and builds the
``Task`` again only when asked: ``unpack(pack(task, h), h) == task`` for every Task of ``h``.

The layout: the hash (None when it is the one watched), then the fields every snapshot sets,
then the fields whose default is the common case, cut off after the last that is not its
default (an empty ``params`` is kept as None).
"""

from __future__ import annotations

from typing import Any

from .models import Task, TaskStatus

__all__ = ["Packed", "pack", "total_pages", "unpack"]

Packed = tuple[Any, ...]

# Elements always present: hash (or None), created_at, is_active, module, object, status,
# is_done, total_results, total_pages.
_FIXED = 9
# The fields after them, each with its default: params (None: empty), has_errors, started_at,
# ended_at, done_reason, errors.
_DEFAULTS: tuple[Any, ...] = (None, False, None, None, None, None)


def pack(task: Task, task_hash: str) -> Packed:
    """``task`` (a snapshot of ``task_hash``) as a flat tuple that ``unpack`` turns back into
    an equal Task. Values are shared with ``task``, not copied."""
    status = task.status
    fields = (
        None if task.hash_value == task_hash else task.hash_value,
        task.created_at,
        task.is_active,
        task.module,
        task.object,
        status.status,
        status.is_done,
        status.total_results,
        status.total_pages,
        task.params or None,
        status.has_errors,
        status.started_at,
        status.ended_at,
        status.done_reason,
        status.errors,
    )
    end = len(fields)
    while end > _FIXED and fields[end - 1] is _DEFAULTS[end - 1 - _FIXED]:
        end -= 1
    return fields[:end]


def total_pages(packed: Packed) -> int:
    """``status.total_pages`` of the Task that ``pack`` kept, without building it."""
    pages: int = packed[_FIXED - 1]
    return pages


def unpack(packed: Packed, task_hash: str) -> Task:
    """The Task that ``pack(task, task_hash)`` kept: equal to ``task``."""
    (
        hash_value,
        created_at,
        is_active,
        module,
        kind,
        state,
        is_done,
        total_results,
        total_pages,
        params,
        has_errors,
        started_at,
        ended_at,
        done_reason,
        errors,
    ) = packed + _DEFAULTS[len(packed) - _FIXED :]
    return Task(
        hash_value=task_hash if hash_value is None else hash_value,
        status=TaskStatus(
            status=state,
            is_done=is_done,
            total_results=total_results,
            total_pages=total_pages,
            started_at=started_at,
            ended_at=ended_at,
            done_reason=done_reason,
            has_errors=has_errors,
            errors=errors,
        ),
        created_at=created_at,
        is_active=is_active,
        params={} if params is None else params,
        module=module,
        object=kind,
    )
