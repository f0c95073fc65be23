"""The tolerant reader: a decoded task body, in any shape the service sends, to the documented
shape, plus the list of ways it deviated (``read_task_body``); a body of exactly the
documented shape and types, straight to its Task (``read_documented``, every poll's fast
path). Pure: no I/O, no clock, no logging.

Strict about identity, lenient about everything else (Postel; Fowler's "Tolerant Reader"):

- The body must be a JSON object. Every string it gives as the task's identifier
  (``hash_value``, or ``id`` as the official SDK reads it; in a run-task object, whose ``id``
  is its own, ``task``) must be the hash asked for; a body naming no identifier at all is read
  as the task asked for.
- ``status`` may be the documented object, a list (of such objects or of states: the entry
  furthest along counts, done before started before pending, then the most results, so that a
  history reads as its latest state in either order), a plain string (the state; the other
  status fields are then read from the top level of the body, where run-task objects carry
  them), or absent. States are read trimmed and in lower case.
- Every other field may be missing, null or of another plausible type. Plausible readings are
  taken (``"12"`` and ``12.0`` as 12, ``"false"`` as False, a UNIX time as a timestamp); anything
  else reads as absent. Timestamps are made timezone-aware UTC whatever their form (a naive
  timestamp is the service's UTC; an offset is converted).
- Done-ness does not depend on one field: ``is_done`` when the body has it; otherwise the state
  (see ``taskwatch.models`` for the table); for a state the table does not know, ``ended_at`` or a
  ``done_reason``.

Each deviation is named by field and kind, never by value (a value may be anything, including
text the caller must not log), so that a client can warn once per kind and count them.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from ._frozen import filling_class
from ._frozen import new_filling as _new
from .errors import ResponseFormatError
from .models import FAILURE_STATES, LIVE_STATES, SUCCESS_STATES, Task, TaskState, TaskStatus

__all__ = [
    "IDENTIFIER_FIELDS",
    "is_done_by_table",
    "parse_timestamp",
    "read_documented",
    "read_task_body",
]

#: Where a body names its task, in the order they are read. ``id`` is what the official SDK
#: reads first; the documentation shows ``hash_value``.
IDENTIFIER_FIELDS = ("hash_value", "id")
_RUNTASK_IDENTIFIER_FIELDS = ("hash_value", "task")

_DOCUMENTED = (
    TaskState.PENDING,
    TaskState.RUNNING,
    TaskState.COMPLETED,
    TaskState.ABORTED,
    TaskState.FAILED,
)
# Each documented state to its one shared str (see _SHARED_TEXT).
_DOCUMENTED_STATES: dict[str, str] = {state.value: state.value for state in _DOCUMENTED}
_TERMINAL_STATES = SUCCESS_STATES | FAILURE_STATES
# Each known state (and the object kind) as one shared string: a Task holds these, not a copy
# per body (tens of thousands of watches keep a snapshot each).
_SHARED_TEXT = {text: text for text in (*(state.value for state in TaskState), "task")}
_TRUE_TEXT = frozenset({"true", "True", "TRUE", "1", "yes"})
_FALSE_TEXT = frozenset({"false", "False", "FALSE", "0", "no"})
_INTEGER_TEXT = re.compile(r"\s*[+-]?\d{1,18}\s*")
# ISO 8601 as the service writes it, in every form seen: a date, "T" or a space, hours and
# minutes, optional seconds and fraction (any number of digits), optional Z or offset.
_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?"
)
# UNIX times between 1990 and 2100, in seconds or milliseconds: anything else is not a time.
_EPOCH_SECONDS = (631_152_000, 4_102_444_800)

Deviations = list[str]


_TYPE_NAMES = {
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "an object",
    type(None): "null",
}


def _type_name(value: object) -> str:
    """The JSON type of a decoded value, as a deviation names it (never the value)."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _integer(value: Any, field: str, deviations: Deviations) -> int | None:
    if type(value) is int:
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        deviations.append(f"{field}: a number with a fraction part, read as an integer")
        return int(value)
    if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value):
        deviations.append(f"{field}: a string, read as an integer")
        return int(value)
    deviations.append(f"{field}: {_type_name(value)}, read as absent")
    return None


def _boolean(value: Any, field: str, deviations: Deviations) -> bool | None:
    if type(value) is bool:
        return value
    if isinstance(value, str):
        text = value.strip()
        if text in _TRUE_TEXT or text in _FALSE_TEXT:
            deviations.append(f"{field}: a string, read as a boolean")
            return text in _TRUE_TEXT
    elif type(value) is int and value in (0, 1):
        deviations.append(f"{field}: a number, read as a boolean")
        return value == 1
    deviations.append(f"{field}: {_type_name(value)}, read as absent")
    return None


def _text(value: Any, field: str, deviations: Deviations) -> str | None:
    if type(value) is str:
        return value
    if type(value) is int or (isinstance(value, float) and math.isfinite(value)):
        deviations.append(f"{field}: a number, read as a string")
        return str(value)
    deviations.append(f"{field}: {_type_name(value)}, read as absent")
    return None


def _iso_by_hand(text: str) -> datetime | None:
    match = _ISO.fullmatch(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)
        )
    except ValueError:
        return None
    moment = moment.replace(microsecond=micro)
    if zone is None or zone in "Zz":
        return moment.replace(tzinfo=timezone.utc)
    digits = zone[1:].replace(":", "")
    offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
    if offset >= timedelta(hours=24):
        return None
    sign = 1 if zone[0] == "+" else -1
    try:
        return (moment - sign * offset).replace(tzinfo=timezone.utc)
    except OverflowError:
        return None


if sys.version_info >= (3, 11):
    _fromisoformat = datetime.fromisoformat
else:  # pragma: no cover - exercised on 3.10 only

    def _fromisoformat(text: str) -> datetime:
        # 3.10 reads only 3- or 6-digit fractions and no "Z": the hand parser does the rest.
        moment = _iso_by_hand(text) if text.endswith(("Z", "z")) else None
        return moment if moment is not None else datetime.fromisoformat(text)


def _timestamp(value: Any, field: str, deviations: Deviations) -> datetime | None:
    if isinstance(value, str):
        return _text_timestamp(value, field, deviations)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        seconds = float(value)
        if seconds > _EPOCH_SECONDS[1]:
            seconds /= 1000.0  # milliseconds
        if _EPOCH_SECONDS[0] <= seconds <= _EPOCH_SECONDS[1]:
            deviations.append(f"{field}: a number, read as a UNIX time")
            return datetime.fromtimestamp(seconds, timezone.utc)
    deviations.append(f"{field}: {_type_name(value)}, read as absent")
    return None


def _text_timestamp(value: str, field: str, deviations: Deviations) -> datetime | None:
    moment: datetime | None
    try:
        # The C parser first: on 3.11+ it reads every form the service sends; on 3.10 the
        # documented one (naive, microseconds). The hand parser covers the rest.
        moment = _fromisoformat(value)
    except ValueError:
        moment = _iso_by_hand(value)
    if moment is None:
        deviations.append(f"{field}: not an ISO 8601 timestamp, read as absent")
        return None
    if moment.tzinfo is None:  # the service's naive timestamps are UTC
        return moment.replace(tzinfo=timezone.utc)
    if moment.tzinfo is not timezone.utc:
        try:
            moment = moment.astimezone(timezone.utc)
        except OverflowError:  # year 1 with a positive offset, year 9999 with a negative one
            deviations.append(f"{field}: a timestamp out of range, read as absent")
            return None
    return moment


def parse_timestamp(text: str) -> datetime | None:
    """An ISO 8601 timestamp in any form the service sends, as an aware UTC datetime; None
    when it is not one."""
    return _timestamp(text, "", [])


def _identity(data: dict[str, Any], task_hash: str | None, deviations: Deviations) -> str:
    """The hash this body is about; raises ResponseFormatError when it names another task."""
    named: str | None = None
    # A run-task object (``object: "runtask"``) has its own ``id``; the task is its ``task``.
    fields = _RUNTASK_IDENTIFIER_FIELDS if data.get("object") == "runtask" else IDENTIFIER_FIELDS
    for field in fields:
        value = data.get(field)
        if type(value) is not str or not value:
            continue
        if task_hash is not None and value != task_hash:
            # A snapshot of another task would be yielded as this one's (and its terminal
            # snapshot never arrive): the answer is wrong, not this task's news.
            shown = value if len(value) <= 80 else value[:77] + "..."
            raise ResponseFormatError(f"the API answered with task {shown!r}", task_hash=task_hash)
        if named is not None and value != named:
            raise ResponseFormatError(
                f"the task body names two different tasks ({' and '.join(fields)})",
                task_hash=task_hash,
            )
        named = value if task_hash is None else task_hash  # the caller's string, shared
    if "hash_value" not in data or type(data["hash_value"]) is not str:
        if named is not None:
            deviations.append(f"hash_value: absent, the task named by {fields[1]}")
        else:
            deviations.append("hash_value: absent, no identifier in the body")
    if named is None:
        if task_hash is None:
            raise ResponseFormatError("the task body names no task", task_hash=task_hash)
        return task_hash
    return named


def _progress(entry: dict[str, Any] | str) -> tuple[int, int, int]:
    """How far along a status entry is: done, then started, then results (for a list)."""
    state = _state_text(entry if isinstance(entry, str) else entry.get("status"))
    if isinstance(entry, str):
        is_done, results = None, 0
    else:
        raw_done = entry.get("is_done")
        is_done = raw_done if type(raw_done) is bool else None
        raw_results = entry.get("total_results")
        results = raw_results if type(raw_results) is int else 0
    done = is_done_by_table(state or "", is_done, None, None)
    return (int(done), int(state not in (None, TaskState.PENDING.value)), results)


def _status_source(
    data: dict[str, Any], deviations: Deviations
) -> tuple[dict[str, Any] | None, Any]:
    """The status object the status fields are read from (None: read them from the top),
    and the raw state when the body gives it outside an object."""
    status = data.get("status")
    if type(status) is dict:
        return status, None
    if isinstance(status, list):
        entries = [entry for entry in status if type(entry) is dict or type(entry) is str]
        if entries:
            # The entry furthest along, so that a history in either order reads as its
            # latest state (the vendor's CLI shows the first; with one entry, the same).
            latest = max(entries, key=_progress)
            if isinstance(latest, dict):
                deviations.append("status: a list of objects, the one furthest along read")
                return latest, None
            deviations.append("status: a list of states, the one furthest along read")
            return None, latest
        deviations.append("status: a list with no object, fields read from the top level")
        return None, None
    if isinstance(status, str):
        deviations.append("status: a string (the state), fields read from the top level")
        return None, status
    if "status" not in data:
        deviations.append("status: absent, fields read from the top level")
    else:
        deviations.append(f"status: {_type_name(status)}, fields read from the top level")
    return None, None


def _state_text(value: object) -> str | None:
    """A state as the table knows it: trimmed and lower case (``"DONE"`` is ``done``)."""
    if type(value) is not str or not value.strip():
        return None
    text = value.strip().lower()
    return _SHARED_TEXT.get(text, text)


class _Fields:
    """Reads the status fields from the status object, falling back to the top level of the
    body (where run-task objects keep them), noting each deviation once."""

    __slots__ = ("_data", "_deviations", "_status")

    def __init__(
        self, data: dict[str, Any], status: dict[str, Any] | None, deviations: Deviations
    ) -> None:
        self._data = data
        self._status = status
        self._deviations = deviations

    def get(
        self,
        name: str,
        read: Callable[[Any, str, Deviations], Any],
        *,
        nullable: bool,
        absent_note: str = "absent",
    ) -> Any:
        """The field's value read with ``read``; None when absent, null or unreadable."""
        status, deviations = self._status, self._deviations
        if status is not None and name in status:
            value, label = status[name], f"status.{name}"
        elif name != "status" and name in self._data:
            value, label = self._data[name], name
            if status is not None:
                deviations.append(f"status.{name}: absent, read from the top level")
        else:
            if status is not None:
                deviations.append(f"status.{name}: {absent_note}")
            return None
        if value is None:
            if not nullable:
                deviations.append(f"{label}: null")
            return None
        return read(value, label, deviations)


def _top(
    data: dict[str, Any],
    name: str,
    read: Callable[[Any, str, Deviations], Any],
    deviations: Deviations,
) -> Any:
    if name not in data:
        deviations.append(f"{name}: absent")
        return None
    value = data[name]
    if value is None:
        deviations.append(f"{name}: null")
        return None
    return read(value, name, deviations)


def _module(data: dict[str, Any], deviations: Deviations) -> int | str | None:
    module = data.get("module")
    if "module" not in data:
        deviations.append("module: absent")
        return None
    if module is None or type(module) is int:
        return module
    if type(module) is str:
        deviations.append("module: a string")  # a module hash, in some of the service's answers
        return module
    if isinstance(module, float) and math.isfinite(module) and module.is_integer():
        deviations.append("module: a number with a fraction part, read as an integer")
        return int(module)
    if isinstance(module, (list, dict)):
        deviations.append(f"module: {_type_name(module)}, read as absent")
        return None
    deviations.append(f"module: {_type_name(module)}, read as a string")
    return str(module)


def _params(data: dict[str, Any], deviations: Deviations) -> dict[str, Any]:
    params = data.get("params")
    if type(params) is dict:
        return params
    if "params" not in data:
        deviations.append("params: absent")
    else:
        deviations.append(f"params: {_type_name(params)}, read as empty")
    return {}


def _object(data: dict[str, Any], deviations: Deviations) -> str:
    kind = data.get("object")
    if type(kind) is str:
        return _SHARED_TEXT.get(kind, kind)
    deviations.append("object: absent" if "object" not in data else f"object: {_type_name(kind)}")
    return "task"


def is_done_by_table(
    state: str, is_done: bool | None, ended_at: object, done_reason: object
) -> bool:
    """Done-ness: ``is_done`` when the body has it; else terminal by the state table; else,
    for a state the table does not know, done once the task has an end time or a reason."""
    if is_done is not None:
        return is_done
    if state in SUCCESS_STATES or state in FAILURE_STATES:
        return True
    if state in LIVE_STATES:
        return False
    return ended_at is not None or done_reason is not None


def read_task_body(data: Any, task_hash: str | None) -> tuple[dict[str, Any], list[str]]:
    """The task in ``data`` (a decoded JSON value) as a dict of the documented shape, with
    every value already of its field's type (timestamps as aware UTC datetimes), and the
    deviations from the documented shape, one line per field and kind.

    Raises:
        ResponseFormatError: ``data`` is not a JSON object, or it names a task other than
            ``task_hash`` (or, with ``task_hash=None``, names none).
    """
    if type(data) is not dict:
        raise ResponseFormatError(
            f"the task body is {_type_name(data)}, not a JSON object", task_hash=task_hash
        )
    deviations: Deviations = []
    hash_value = _identity(data, task_hash, deviations)
    status, raw_state = _status_source(data, deviations)
    fields = _Fields(data, status, deviations)
    if status is not None:
        raw_state = fields.get("status", _text, nullable=False)
    state = _state_text(raw_state)
    if state is None:
        if raw_state is not None:
            deviations.append("status.status: an empty string")
        state = TaskState.UNKNOWN.value
    else:
        if state != raw_state:
            deviations.append("status.status: not in lower case, read in lower case")
        if state not in _DOCUMENTED_STATES:
            deviations.append("status.status: a state the documentation does not list")
    is_done = fields.get(
        "is_done", _boolean, nullable=False, absent_note="absent, done-ness read from the state"
    )
    started_at = fields.get("started_at", _timestamp, nullable=True)
    ended_at = fields.get("ended_at", _timestamp, nullable=True)
    done_reason = fields.get("done_reason", _text, nullable=True)
    total_results = fields.get("total_results", _integer, nullable=False)
    total_pages = fields.get("total_pages", _integer, nullable=False)
    has_errors = fields.get("has_errors", _boolean, nullable=False)
    errors = fields.get("errors", _as_is, nullable=True)
    if has_errors is None:
        has_errors = errors not in (None, "", {}, [])
    return (
        {
            "hash_value": hash_value,
            "created_at": _top(data, "created_at", _timestamp, deviations),
            "is_active": _top(data, "is_active", _boolean, deviations),
            "params": _params(data, deviations),
            "module": _module(data, deviations),
            "object": _object(data, deviations),
            "status": {
                "status": state,
                "is_done": is_done_by_table(state, is_done, ended_at, done_reason),
                "total_results": total_results if total_results is not None else 0,
                "total_pages": total_pages if total_pages is not None else 0,
                "started_at": started_at,
                "ended_at": ended_at,
                "done_reason": done_reason,
                "has_errors": has_errors,
                "errors": errors,
            },
        },
        deviations,
    )


def _as_is(value: Any, _field: str, _deviations: Deviations) -> Any:
    return value


_TASK_FILLING = filling_class(Task)
_STATUS_FILLING = filling_class(TaskStatus)


def read_documented(data: Any, task_hash: str | None) -> Task | None:
    """The fast path for a body of exactly the documented shape and types (every poll of a
    service that keeps to its documentation): the Task the full reader would give, built at
    once, or None when anything differs, so that the full reader (``read_task_body``) says
    what."""
    if type(data) is not dict:
        return None
    status = data.get("status")
    if type(status) is not dict:
        return None
    try:
        hash_value = data["hash_value"]
        # one of the documented states, as its shared str (an unknown one, or one not a
        # string, raises: KeyError, or TypeError when unhashable)
        state = _DOCUMENTED_STATES[status["status"]]
        is_done = status["is_done"]
        total_results = status["total_results"]
        total_pages = status["total_pages"]
        done_reason = status["done_reason"]
        has_errors = status["has_errors"]
        module = data["module"]
        is_active = data["is_active"]
        params = data["params"]
        kind = data["object"]
        errors = status["errors"]
        # Parsing with "+00:00" appended reads a naive timestamp as UTC in one step (cheaper
        # than datetime.replace); one that has an offset fails here, for the full reader.
        created_at = _fromisoformat(data["created_at"] + "+00:00")
        started_at = status["started_at"]
        if started_at is not None:
            started_at = _fromisoformat(started_at + "+00:00")
        ended_at = status["ended_at"]
        if ended_at is not None:
            ended_at = _fromisoformat(ended_at + "+00:00")
    except (KeyError, ValueError, TypeError):
        return None
    if (
        # (a hash asked for is a str: a body's hash equal to it is one too)
        (hash_value != task_hash if task_hash is not None else type(hash_value) is not str)
        or "id" in data
        or type(is_done) is not bool
        or type(total_results) is not int
        or type(total_pages) is not int
        or type(has_errors) is not bool
        or (done_reason is not None and type(done_reason) is not str)
        or (module is not None and type(module) is not int)
        or type(is_active) is not bool
        or type(params) is not dict
        or type(kind) is not str
    ):
        return None
    if _TASK_FILLING is None or _STATUS_FILLING is None:  # (see _frozen)
        return Task(
            hash_value if task_hash is None else task_hash,  # the caller's string, shared
            TaskStatus(
                state,
                is_done,
                total_results,
                total_pages,
                started_at,
                ended_at,
                done_reason,
                has_errors,
                errors,
            ),
            created_at,
            is_active,
            params,
            module,
            _SHARED_TEXT.get(kind, kind),
        )
    # What the constructors above build, for a fraction of their cost (see _frozen).
    filled: Any = _new(_STATUS_FILLING)
    filled.status = state
    filled.is_done = is_done
    filled.total_results = total_results
    filled.total_pages = total_pages
    filled.started_at = started_at
    filled.ended_at = ended_at
    filled.done_reason = done_reason
    filled.has_errors = has_errors
    filled.errors = errors
    filled.__class__ = TaskStatus
    task: Any = _new(_TASK_FILLING)
    task.hash_value = hash_value if task_hash is None else task_hash  # the caller's, shared
    task.status = filled
    task.created_at = created_at
    task.is_active = is_active
    task.params = params
    task.module = module
    task.object = _SHARED_TEXT.get(kind, kind)
    task.__class__ = Task
    return task  # type: ignore[no-any-return]  # a Task: its class was set just above
