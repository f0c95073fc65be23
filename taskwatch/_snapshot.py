"""A snapshot kept compactly: what a sleeping watch holds for ``WatchTimeout.last``.

A ``Task`` is two attrs objects, a params dict and its strings (about 500 bytes for a pending
task). A watch keeps its last snapshot only to hand it over if it times out, so it keeps the
field values instead, and builds the ``Task`` again only when asked:
``unpack(pack(task, h), h) == task`` for every Task of ``h``.

Most of those values are the same from one task to the next (a hundred thousand pending tasks
of one kind differ only in their creation time and their parameters' values), so they are
kept apart, in a *shape* that equal snapshots share: the hash (None when it is the one
watched), is_active, module, object, state, is_done, total_results, total_pages, has_errors,
done_reason, errors, then the parameters' keys. What a watch keeps of its own is one small
tuple: the shape, created_at, the parameters' values in the order of their keys, then
started_at and ended_at, cut off after the last that is set (no dict of its own: a dict of
one key is 184 bytes, its slot here 8). A timestamp in UTC is kept as its POSIX time, a float
of 24 bytes instead of a datetime of 48, within the years where that float gives the same
microsecond back (1970 to 2099); any other is kept as it is. A pending task with one
parameter comes to 64 bytes, and 24 more for its creation time.

Shapes are shared through a small table of the recent ones (``_SHAPES``, cleared when full,
so it stays bounded however many kinds of task pass through); a shape that cannot be shared
(unhashable errors, say) is kept as it is. Sharing never changes what ``unpack`` returns: a
shape is shared only with one of equal values of the same types.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from .models import Task, TaskStatus

__all__ = ["Packed", "pack", "total_pages", "unpack"]

Packed = tuple[Any, ...]

# Elements of a shape before the parameters' keys: hash (or None), is_active, module, object,
# status, is_done, total_results, total_pages, has_errors, done_reason, errors.
_SHAPE_FIXED = 11
# Elements of a packed snapshot before the parameters' values: shape, created_at.
_OWN_FIXED = 2
# The fields after the parameters' values, each None when unset: started_at, ended_at.
_DATES = (None, None)

# The shapes in use, each keyed by its values and their types (1, 1.0 and True are equal,
# but a snapshot keeps the one it had). At most _SHAPES_MAX; cleared when full.
_SHAPES: dict[Packed, Packed] = {}
_SHAPES_MAX = 1024

# The names in use (module, object kind, state, done reason, parameter keys), one copy each.
# A table of their own rather than sys.intern: the server chooses them, and what sys.intern
# keeps may outlive every snapshot (on some Pythons for the life of the process), where this
# table stays bounded (at most _NAMES_MAX; cleared when full).
_NAMES: dict[str, str] = {}
_NAMES_MAX = 4096


def _one_copy(table: dict[Any, Any], key: Any, value: Any, most: int) -> Any:
    """The value ``table`` keeps under ``key``, else ``value``, kept there from now on (the
    table is cleared first when it holds ``most``: it stays bounded). TypeError: ``key`` is
    not hashable."""
    kept = table.get(key)
    if kept is not None:
        return kept
    if len(table) >= most:
        table.clear()
    table[key] = value
    return value


def _name(value: Any) -> Any:
    """``value``, as the one copy of that name in use when it is a str."""
    return _one_copy(_NAMES, value, value, _NAMES_MAX) if type(value) is str else value


# The timestamps kept as a float: UTC ones whose POSIX time a float holds to well within half
# a microsecond (below 2**32 s its spacing is under a microsecond: datetime.fromtimestamp,
# which rounds to the nearest microsecond, then gives back the very same datetime).
_FIRST_INSTANT = datetime(1970, 1, 1, tzinfo=timezone.utc)
_END_INSTANT = datetime(2100, 1, 1, tzinfo=timezone.utc)


def _instant(moment: Any) -> Any:
    """``moment`` as its POSIX time when it is a UTC datetime ``_moment`` turns back into
    an equal one (of the same tzinfo); anything else (None, another zone) as it is."""
    if (
        type(moment) is datetime
        and moment.tzinfo is timezone.utc
        and _FIRST_INSTANT <= moment < _END_INSTANT
    ):
        return moment.timestamp()
    return moment


def _moment(kept: Any) -> Any:
    """What ``_instant`` was given."""
    return datetime.fromtimestamp(kept, timezone.utc) if type(kept) is float else kept


def _shared(shape: Packed) -> Packed:
    """The shape in use equal to ``shape`` (values and types), else ``shape`` itself, kept
    for the next snapshots when it can be."""
    try:
        kept: Packed = _one_copy(_SHAPES, (*shape, *map(type, shape)), shape, _SHAPES_MAX)
    except TypeError:  # an unhashable value (errors as a list or an object): kept unshared
        return shape
    return kept


def pack(task: Task, task_hash: str) -> Packed:
    """``task`` (a snapshot of ``task_hash``) as a small tuple that ``unpack`` turns back into
    an equal Task. Values are shared with ``task`` (one copy of each repeated name) or with
    other snapshots of equal values, never copied."""
    status = task.status
    params = task.params
    shape = _shared(
        (
            None if task.hash_value == task_hash else task.hash_value,
            task.is_active,
            _name(task.module),
            _name(task.object),
            _name(status.status),
            status.is_done,
            status.total_results,
            status.total_pages,
            status.has_errors,
            _name(status.done_reason),
            status.errors,
            *map(_name, params),
        )
    )
    created, started, ended = task.created_at, status.started_at, status.ended_at
    if ended is not None:
        return (shape, _instant(created), *params.values(), _instant(started), _instant(ended))
    if started is not None:
        return (shape, _instant(created), *params.values(), _instant(started))
    return (shape, _instant(created), *params.values())


def total_pages(packed: Packed) -> int:
    """``status.total_pages`` of the Task that ``pack`` kept, without building it."""
    pages: int = packed[0][7]
    return pages


def unpack(packed: Packed, task_hash: str) -> Task:
    """The Task that ``pack(task, task_hash)`` kept: equal to ``task``."""
    shape = packed[0]
    (
        hash_value,
        is_active,
        module,
        kind,
        state,
        is_done,
        total_results,
        total_pages,
        has_errors,
        done_reason,
        errors,
    ) = shape[:_SHAPE_FIXED]
    names = shape[_SHAPE_FIXED:]
    values_end = _OWN_FIXED + len(names)
    dates = packed[values_end:]
    started_at, ended_at = map(_moment, dates + _DATES[len(dates) :])
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
        created_at=_moment(packed[1]),
        is_active=is_active,
        params=dict(zip(names, packed[_OWN_FIXED:values_end], strict=True)),
        module=module,
        object=kind,
    )
