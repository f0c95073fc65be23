"""A snapshot kept compactly: packed and unpacked, it is the same Task. Pure: no server."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskwatch import Task, TaskStatus, _snapshot
from taskwatch._protocol import parse_task
from taskwatch._snapshot import pack, unpack

from .conftest import TASK_HASH, fixture_bytes

CREATED = datetime(2024, 12, 24, 10, 57, 55, 45567, tzinfo=timezone.utc)
STARTED = datetime(2024, 12, 24, 10, 58, tzinfo=timezone.utc)
ENDED = datetime(2024, 12, 24, 11, 3, 1, 5, tzinfo=timezone.utc)


def _task(**fields: object) -> Task:
    status = {
        name: fields.pop(name)
        for name in [f.name for f in attrs.fields(TaskStatus)]
        if name in fields
    }
    base = TaskStatus(status="pending", is_done=False, total_results=0)
    return attrs.evolve(
        Task(hash_value=TASK_HASH, status=base, created_at=CREATED, module=5),
        status=attrs.evolve(base, **status),  # type: ignore[arg-type]
        **fields,  # type: ignore[arg-type]
    )


TASKS = {
    "pending, documented": _task(),
    "running": _task(status="running", total_results=12, total_pages=3, started_at=STARTED),
    "completed": _task(
        status="completed",
        is_done=True,
        total_results=40,
        total_pages=9,
        started_at=STARTED,
        ended_at=ENDED,
        done_reason="completed",
    ),
    "failed, errors as an object": _task(
        status="failed",
        is_done=True,
        has_errors=True,
        errors={"message": "blocked", "codes": [1, 2]},
        done_reason="error",
    ),
    "errors only, the fields before them default": _task(errors="boom"),
    "has_errors only": _task(has_errors=True),
    "params": _task(params={"url": "https://example.com/?q=1", "pages": [1, 2]}),
    "nothing optional": Task(
        hash_value=TASK_HASH,
        status=TaskStatus(status="unknown", is_done=False, total_results=0),
        created_at=None,
        is_active=None,
        module=None,
    ),
    "a string module, another object kind": _task(module="a1b2", object="runtask"),
    "another hash than the one watched": _task(hash_value="other"),
    "falsy values that are not the defaults": _task(errors=0, done_reason=""),
}


@pytest.mark.parametrize("task", TASKS.values(), ids=TASKS.keys())
def test_unpacking_gives_an_equal_task(task: Task) -> None:
    packed = pack(task, TASK_HASH)
    again = unpack(packed, TASK_HASH)
    assert again == task
    assert type(again.params) is dict
    assert type(again.status) is TaskStatus


def test_every_field_of_a_task_is_kept() -> None:
    # A field added to Task or TaskStatus must be added to the packed layout: this fails first.
    assert [f.name for f in attrs.fields(Task)] == [
        "hash_value", "status", "created_at", "is_active", "params", "module", "object",
    ]  # fmt: skip
    assert [f.name for f in attrs.fields(TaskStatus)] == [
        "status", "is_done", "total_results", "total_pages", "started_at", "ended_at",
        "done_reason", "has_errors", "errors",
    ]  # fmt: skip


def test_an_empty_params_unpacks_as_a_dict_of_its_own() -> None:
    packed = pack(_task(), TASK_HASH)
    first, second = unpack(packed, TASK_HASH), unpack(packed, TASK_HASH)
    first.params["added"] = 1
    assert second.params == {}


def test_a_documented_pending_snapshot_packs_small() -> None:
    task = parse_task(fixture_bytes("get-task-200.json"), TASK_HASH)
    pending = attrs.evolve(
        task,
        status=attrs.evolve(
            task.status,
            status="pending",
            is_done=False,
            total_results=0,
            total_pages=0,
            started_at=None,
            ended_at=None,
            done_reason=None,
        ),
        params={},
    )
    packed = pack(pending, TASK_HASH)
    assert unpack(packed, TASK_HASH) == pending
    # Two slots of its own (the shape and created_at: no parameters, no dates set) and no
    # object of its own but the tuple: the hash is the watched one, the strings and numbers
    # are the Task's, and the shape is the one another pending task of the kind has.
    assert len(packed) == 2
    assert packed[0][0] is None
    assert sys.getsizeof(packed) <= sys.getsizeof(tuple(range(2)))
    other = attrs.evolve(pending, hash_value="f" * 32, created_at=CREATED)
    again = pack(other, "f" * 32)
    assert again[0] is packed[0]
    assert unpack(again, "f" * 32) == other


def test_parameters_are_kept_without_a_dict_of_their_own() -> None:
    task = _task(params={"url": "https://example.com/?q=1", "pages": [1, 2]})
    packed = pack(task, TASK_HASH)
    assert not any(isinstance(value, dict) for value in packed)
    assert unpack(packed, TASK_HASH).params == task.params
    # Two keys cost four tuple slots and a count: less than the smallest dict alone.
    assert sys.getsizeof(packed) - sys.getsizeof(pack(_task(), TASK_HASH)) < sys.getsizeof({})


def test_the_names_snapshots_repeat_are_kept_once() -> None:
    # Two responses decode to equal strings that are not the same object; kept, they are,
    # even where their shapes cannot be shared (errors as a list: unhashable).
    body = (
        fixture_bytes("get-task-200.json")
        .replace(b'"module": 5', b'"module": "google-maps-search"')
        .replace(b'"object": "task"', b'"object": "runtask"')
        .replace(b'"errors": null', b'"errors": ["blocked"]')
    )
    first, second = parse_task(body, TASK_HASH), parse_task(body, TASK_HASH)
    assert first.module is not second.module
    assert first.object is not second.object
    assert first.status.done_reason is not second.status.done_reason
    a, b = pack(first, TASK_HASH), pack(second, TASK_HASH)
    assert a == b
    assert a[0] is not b[0]
    names = [first.module, first.object, first.status.status, first.status.done_reason]
    names += list(first.params)
    for name in names:
        assert isinstance(name, str)
        places = [i for i, value in enumerate(a[0]) if value == name and isinstance(value, str)]
        assert places
        assert all(a[0][i] is b[0][i] for i in places)
    assert unpack(a, TASK_HASH) == first
    assert unpack(b, TASK_HASH) == second


def test_a_shape_is_shared_only_with_values_of_the_same_types() -> None:
    one, true = _task(module=1, errors=1), _task(module=True, errors=True)
    a, b = pack(one, TASK_HASH), pack(true, TASK_HASH)
    assert a[0] is not b[0]
    assert type(unpack(a, TASK_HASH).module) is int
    assert type(unpack(b, TASK_HASH).module) is bool
    assert type(unpack(b, TASK_HASH).status.errors) is bool
    assert pack(_task(module=1, errors=1), TASK_HASH)[0] is a[0]


def test_the_table_of_shapes_stays_bounded() -> None:
    many = _snapshot._SHAPES_MAX + 10
    tasks = [_task(total_results=n) for n in range(many)]
    packed = [pack(task, TASK_HASH) for task in tasks]
    assert len(_snapshot._SHAPES) <= _snapshot._SHAPES_MAX
    assert [unpack(p, TASK_HASH) for p in packed] == tasks


def test_the_table_of_names_stays_bounded() -> None:
    # A server that names a new parameter in every body cannot make the names kept grow
    # without bound (sys.intern would keep each one, on some Pythons for good).
    many = _snapshot._NAMES_MAX + 10
    tasks = [_task(params={f"key-{n}": n}) for n in range(many)]
    packed = [pack(task, TASK_HASH) for task in tasks]
    assert len(_snapshot._NAMES) <= _snapshot._NAMES_MAX
    assert [unpack(p, TASK_HASH) for p in packed] == tasks
    # the copy kept is an equal string, shared by later snapshots of the same name
    again = pack(_task(params={f"key-{many - 1}": 0}), TASK_HASH)
    assert again[0][-1] is packed[-1][0][-1]


@settings(max_examples=500, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59, 999999)
    ),
    st.sampled_from(["created", "running", "ended"]),
)
def test_a_utc_timestamp_is_kept_as_a_float_and_comes_back_the_same(
    moment: datetime, which: str
) -> None:
    moment = moment.replace(tzinfo=timezone.utc)
    dates = {
        "created": {"created_at": moment},
        "running": {"started_at": moment},
        "ended": {"started_at": moment, "ended_at": moment},
    }[which]
    task = _task(**dates)
    packed = pack(task, TASK_HASH)
    assert all(type(kept) is float for kept in packed[1:])  # 24 bytes each, not a datetime's 48
    again = unpack(packed, TASK_HASH)
    assert again == task
    for when in (again.created_at, again.status.started_at, again.status.ended_at):
        assert when is None or when.tzinfo is timezone.utc


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
        datetime(2100, 1, 1, tzinfo=timezone.utc),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
        datetime(1, 1, 1, tzinfo=timezone.utc),
        datetime(2024, 12, 24, 12, 57, 55, 45567, tzinfo=timezone(timedelta(hours=2))),
        datetime(2024, 12, 24, 10, 57, 55, 45567),  # naive
    ],
    ids=["before 1970", "2100", "year 9999", "year 1", "another zone", "naive"],
)
def test_a_timestamp_a_float_would_not_give_back_is_kept_as_it_is(moment: datetime) -> None:
    task = _task(created_at=moment, started_at=moment)
    packed = pack(task, TASK_HASH)
    assert packed[1] is moment
    assert packed[2] is moment
    again = unpack(packed, TASK_HASH)
    assert again == task
    assert again.created_at is not None
    assert again.created_at.tzinfo is moment.tzinfo
