"""The cattrs converters that turn a decoded task body into a ``Task``.

Module-local (never cattrs' global converter), built once at import: one fast converter for
every poll and one with detailed validation, used only to explain a failure. Scalars are checked
strictly: JSON ``"false"`` is not a bool and ``"12"`` is not an int, so a wrong-typed body
fails loudly instead of becoming a plausible-looking snapshot. Unknown keys are ignored.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

import cattrs

from .models import Task

__all__ = ["structure_task", "structure_task_detailed", "unstructure_task"]

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


if sys.version_info >= (3, 11):
    _fromisoformat = datetime.fromisoformat
else:  # pragma: no cover - exercised on 3.10 only

    def _fromisoformat(text: str) -> datetime:
        # 3.10's fromisoformat rejects a trailing "Z", which related Lobstr.io endpoints send.
        if text.endswith(("Z", "z")):
            return datetime.fromisoformat(text[:-1]).replace(tzinfo=timezone.utc)
        return datetime.fromisoformat(text)


def _datetime(value: Any, _: type) -> datetime:
    # The API sends naive ISO 8601 ("2024-12-24T10:57:55.045567"); offsets are kept when sent.
    if type(value) is not str:
        raise TypeError(f"expected an ISO 8601 string, got {type(value).__name__}")
    return _fromisoformat(value)


def _as_is(value: Any) -> Any:
    return value


def _unstructure_datetime(value: datetime) -> str:
    return value.isoformat()


def _optional(
    hook: Callable[[Any, type], _T],
) -> Callable[[Any, type], _T | None]:
    def structure_optional(value: Any, cls: type) -> _T | None:
        return None if value is None else hook(value, cls)

    return structure_optional


def _make_converter(*, detailed: bool) -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=False, detailed_validation=detailed)
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(bool, _strict_bool)
    converter.register_structure_hook(datetime, _datetime)
    converter.register_structure_hook_func(lambda cl: cl == _JSON_OBJECT, _json_object)
    # Direct hooks for the optional fields: cattrs' generic union path costs more per poll.
    converter.register_structure_hook(str | None, _optional(_strict_str))
    converter.register_structure_hook(int | None, _optional(_strict_int))
    converter.register_structure_hook(datetime | None, _optional(_datetime))
    converter.register_unstructure_hook(datetime, _unstructure_datetime)
    # params and errors came from the JSON decoder: JSON-ready as they are. (cattrs would
    # walk them value by value, a few frames per level: a few hundred levels of nesting
    # that both decoders accept would end in RecursionError.)
    converter.register_unstructure_hook_func(lambda cl: cl == _JSON_OBJECT, _as_is)
    converter.register_unstructure_hook_func(lambda cl: cl is Any, _as_is)
    return converter


_JSON_OBJECT = dict[str, Any]

# Two converters built once at import: the fast one parses every poll; the detailed one runs
# only after a failure, to say exactly which field is wrong.
_fast = _make_converter(detailed=False)
_detailed = _make_converter(detailed=True)
_structure_fast = _fast.get_structure_hook(Task)
_structure_detailed = _detailed.get_structure_hook(Task)
_unstructure_task = _fast.get_unstructure_hook(Task)


def structure_task(data: Any) -> Task:
    """Build a Task from a decoded JSON value.

    Raises TypeError/ValueError/KeyError (or a cattrs error) on a bad shape; callers (the
    protocol layer) turn those into ``ResponseFormatError``, using ``structure_task_detailed``
    for the detail.
    """
    if type(data) is not dict:
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    task: Task = _structure_fast(data, Task)
    return task


def structure_task_detailed(data: Any) -> Task:
    """As ``structure_task``, but failures are cattrs validation errors naming each field."""
    if type(data) is not dict:
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    task: Task = _structure_detailed(data, Task)
    return task


def unstructure_task(task: Task) -> dict[str, Any]:
    """The task as a JSON-ready dict in the documented shape (timestamps as ISO 8601)."""
    result: dict[str, Any] = _unstructure_task(task)
    return result
