"""A snapshot kept compactly: what a sleeping watch holds for ``WatchTimeout.last``.

A ``Task`` is two attrs objects, a params dict and its strings (about 500 bytes for a pending
task). A watch keeps its last snapshot only to hand it over if it times out, so it keeps the
field values in one flat tuple instead (about 120 bytes for a pending task, plus 16 bytes and
the value per parameter), and builds the ``Task`` again only when asked:
``unpack(pack(task, h), h) == task`` for every Task of ``h``.

The layout: the hash (None when it is the one watched), then the fields every snapshot sets;
then, when ``params`` is not empty, the number of its keys and its keys and values in turn
(no dict of its own: a dict of one key is 184 bytes, its two tuple slots 16); then the fields
whose default is the common case, cut off after the last that is not its default. The names
a snapshot repeats from task to task (its state, module and object kind, its parameters'
keys, its done reason) are kept interned, so that a hundred thousand watches of one kind of
task share one copy of each rather than keep the one their response decoded.
"""

from __future__ import annotations

import sys
from typing import Any

from .models import Task, TaskStatus

__all__ = ["Packed", "pack", "total_pages", "unpack"]

Packed = tuple[Any, ...]

# Elements always present: hash (or None), created_at, is_active, module, object, status,
# is_done, total_results, total_pages.
_FIXED = 9
# The fields after the parameters, each with its default: has_errors, started_at, ended_at,
# done_reason, errors.
_DEFAULTS: tuple[Any, ...] = (False, None, None, None, None)


def _shared(value: Any) -> Any:
    """``value``, interned when it is a str: one copy per name, however many snapshots."""
    return sys.intern(value) if type(value) is str else value


def pack(task: Task, task_hash: str) -> Packed:
    """``task`` (a snapshot of ``task_hash``) as a flat tuple that ``unpack`` turns back into
    an equal Task. Values are shared with ``task`` (the repeated names interned), not copied."""
    status = task.status
    fixed = (
        None if task.hash_value == task_hash else task.hash_value,
        task.created_at,
        task.is_active,
        _shared(task.module),
        _shared(task.object),
        _shared(status.status),
        status.is_done,
        status.total_results,
        status.total_pages,
    )
    rest = (
        status.has_errors,
        status.started_at,
        status.ended_at,
        _shared(status.done_reason),
        status.errors,
    )
    end = len(rest)
    while end and rest[end - 1] is _DEFAULTS[end - 1]:
        end -= 1
    params = task.params
    if not params:
        return (*fixed, 0, *rest[:end]) if end else fixed
    items: list[Any] = [len(params)]
    for name, value in params.items():
        items += (_shared(name), value)
    return fixed + tuple(items) + rest[:end]


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
    ) = packed[:_FIXED]
    params: dict[str, Any] = {}
    rest = _FIXED
    if len(packed) > _FIXED:
        names = packed[_FIXED]
        rest = _FIXED + 1 + 2 * names
        for at in range(_FIXED + 1, rest, 2):
            params[packed[at]] = packed[at + 1]
    optional = packed[rest:]
    has_errors, started_at, ended_at, done_reason, errors = optional + _DEFAULTS[len(optional) :]
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
        params=params,
        module=module,
        object=kind,
    )
