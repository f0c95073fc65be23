"""From a task body, as the reader (``_reader``) leaves it, to a ``Task``; and a ``Task``
back into the documented shape.

A body of exactly the documented shape becomes a Task in the reader itself
(``_reader.read_documented``); any other goes through ``build_task``. Either way the reader
hands over every value already of its field's type (the property tests over any JSON value
and any damage to the documented body hold it to that), so the Task is built as it is, with
no second check per poll.
The module-local cattrs converter (never cattrs' global one), built once at import, reads a
dict from elsewhere (``structure_task``: ISO 8601 strings as timestamps, scalars checked
strictly, unknown keys ignored) and writes a Task back out (``unstructure_task``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import cattrs

from ._reader import parse_timestamp
from .models import Task, TaskStatus

__all__ = ["build_task", "structure_task", "unstructure_task"]

_T = TypeVar("_T")


def _strict_str(value: Any, _: type) -> str:
    if type(value) is str:
        return value
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _strict_int(value: Any, _: type) -> int:
    if type(value) is int:
        return value
    raise TypeError(f"expected an integer, got {type(value).__name__}")


def _strict_bool(value: Any, _: type) -> bool:
    if type(value) is bool:
        return value
    raise TypeError(f"expected a boolean, got {type(value).__name__}")


def _json_object(value: Any, _: type) -> dict[str, Any]:
    if type(value) is dict:
        return value
    raise TypeError(f"expected an object, got {type(value).__name__}")


def _datetime(value: Any, _: type) -> datetime:
    # The reader hands over aware UTC datetimes; an ISO 8601 string (the output of
    # unstructure_task) is read the way the reader reads one.
    if isinstance(value, datetime):
        return value
    if type(value) is not str:
        raise TypeError(f"expected an ISO 8601 string, got {type(value).__name__}")
    moment = parse_timestamp(value)
    if moment is None:
        raise ValueError(f"not an ISO 8601 timestamp: {value[:40]!r}")
    return moment


def _module(value: Any, _: type) -> int | str | None:
    if value is None or type(value) in (int, str):
        return value  # type: ignore[no-any-return]
    raise TypeError(f"expected an integer or a string, got {type(value).__name__}")


def _as_is(value: Any) -> Any:
    return value


def _unstructure_datetime(value: datetime) -> str:
    # Every timestamp of a Task is UTC: written with "Z", the form the service also uses.
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _optional(
    hook: Callable[[Any, type], _T],
) -> Callable[[Any, type], _T | None]:
    def structure_optional(value: Any, cls: type) -> _T | None:
        return None if value is None else hook(value, cls)

    return structure_optional


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=False, detailed_validation=False)
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(bool, _strict_bool)
    converter.register_structure_hook(datetime, _datetime)
    converter.register_structure_hook_func(lambda cl: cl == _JSON_OBJECT, _json_object)
    # Direct hooks for the optional fields: cattrs' generic union path costs more per poll.
    converter.register_structure_hook(str | None, _optional(_strict_str))
    converter.register_structure_hook(int | None, _optional(_strict_int))
    converter.register_structure_hook(datetime | None, _optional(_datetime))
    converter.register_structure_hook(bool | None, _optional(_strict_bool))
    converter.register_structure_hook(int | str | None, _module)
    converter.register_unstructure_hook(datetime, _unstructure_datetime)
    # params and errors came from the JSON decoder: JSON-ready as they are. (cattrs would
    # walk them value by value, a few frames per level: a few hundred levels of nesting
    # that both decoders accept would end in RecursionError.)
    converter.register_unstructure_hook_func(lambda cl: cl == _JSON_OBJECT, _as_is)
    converter.register_unstructure_hook_func(lambda cl: cl is Any, _as_is)
    return converter


_JSON_OBJECT = dict[str, Any]

_converter = _make_converter()
_structure_task = _converter.get_structure_hook(Task)
_unstructure_task = _converter.get_unstructure_hook(Task)


def build_task(shaped: dict[str, Any]) -> Task:
    """The Task of ``shaped``, a body as ``_reader.read_task_body`` returns it (the documented
    shape, every value already of its field's type), built as it is."""
    status = shaped["status"]
    return Task(
        shaped["hash_value"],
        TaskStatus(
            status["status"],
            status["is_done"],
            status["total_results"],
            status["total_pages"],
            status["started_at"],
            status["ended_at"],
            status["done_reason"],
            status["has_errors"],
            status["errors"],
        ),
        shaped["created_at"],
        shaped["is_active"],
        shaped["params"],
        shaped["module"],
        shaped["object"],
    )


def structure_task(data: Any) -> Task:
    """Build a Task from a dict of the documented shape whose values have the fields' types,
    or are ISO 8601 strings for the timestamps (what ``unstructure_task`` writes).

    Raises TypeError/ValueError/KeyError (or a cattrs error) on a bad shape.
    """
    if type(data) is not dict:
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    task: Task = _structure_task(data, Task)
    return task


def unstructure_task(task: Task) -> dict[str, Any]:
    """The task as a JSON-ready dict in the documented shape (timestamps as ISO 8601 UTC,
    written with ``Z``)."""
    result: dict[str, Any] = _unstructure_task(task)
    return result
