"""Frozen attrs instances filled in and given their class (``_frozen``): the same objects the
constructors build, and the constructors whenever that cannot hold."""

from __future__ import annotations

import pickle
import weakref
from datetime import datetime, timezone
from typing import Any

import attrs
import pytest

from taskwatch import RateLimitInfo, Task, TaskStatus, _protocol, _reader
from taskwatch._frozen import filling_class

from .conftest import TASK_HASH, fixture_json


def _documented(**status: Any) -> dict[str, Any]:
    data: dict[str, Any] = fixture_json("get-task-200.json")
    data["status"].update(status)
    return data


def _by_constructor(task: Task) -> Task:
    status = task.status
    return Task(
        task.hash_value,
        TaskStatus(*(getattr(status, f.name) for f in attrs.fields(TaskStatus))),
        task.created_at,
        task.is_active,
        dict(task.params),
        task.module,
        task.object,
    )


@pytest.mark.parametrize(
    "status",
    [
        {},
        {"status": "running", "is_done": False, "ended_at": None, "done_reason": None},
        {"status": "failed", "has_errors": True, "errors": {"a": [1]}},
    ],
)
def test_a_filled_task_is_a_frozen_task_like_any_other(status: dict[str, Any]) -> None:
    task = _reader.read_documented(_documented(**status), TASK_HASH)
    assert task is not None
    assert type(task) is Task
    assert type(task.status) is TaskStatus
    assert task == _by_constructor(task)
    assert task.status == _by_constructor(task).status
    if isinstance(task.status.errors, dict):  # unhashable either way
        with pytest.raises(TypeError):
            hash(task.status)
    else:
        assert hash(task.status) == hash(_by_constructor(task).status)
    assert repr(task) == repr(_by_constructor(task))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        task.hash_value = "x"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        task.status.total_results = 1  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        del task.status.errors
    assert not hasattr(task, "__dict__")
    assert attrs.evolve(task, module=7).module == 7
    assert pickle.loads(pickle.dumps(task)) == task
    assert weakref.ref(task)() is task


def test_filled_rate_limit_info_is_one_like_any_other() -> None:
    info = RateLimitInfo.from_headers(
        {"X-RateLimit-Limit": "90", "X-RateLimit-Remaining": "3", "X-RateLimit-Reset": "17"}
    )
    assert type(info) is RateLimitInfo
    assert info == RateLimitInfo(90, 3, 17.0)
    assert hash(info) == hash(RateLimitInfo(90, 3, 17.0))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        info.limit = 1  # type: ignore[misc]


def test_a_subclass_of_rate_limit_info_is_built_by_its_constructor() -> None:
    @attrs.frozen(slots=True)
    class Mine(RateLimitInfo):
        pass

    info = Mine.from_headers({"X-RateLimit-Limit": "90"})
    assert type(info) is Mine
    assert info == Mine(90, None, None)


def test_without_a_filling_class_the_constructors_build_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = _documented()
    filled = _reader.read_documented(data, TASK_HASH)
    headers = {"X-RateLimit-Limit": "90", "X-RateLimit-Reset": "17"}
    filled_info = RateLimitInfo.from_headers(headers)
    monkeypatch.setattr(_reader, "_TASK_FILLING", None)
    monkeypatch.setattr(_protocol, "_RATE_LIMIT_FILLING", None)
    built = _reader.read_documented(data, TASK_HASH)
    assert built is not None
    assert type(built) is Task
    assert built == filled
    assert built.created_at == datetime(2024, 12, 24, 10, 57, 55, 45567, tzinfo=timezone.utc)
    assert RateLimitInfo.from_headers(headers) == filled_info


def test_a_class_whose_construction_does_more_than_store_gets_no_filling_class() -> None:
    @attrs.frozen(slots=True)
    class Validated:
        a: int = attrs.field(validator=attrs.validators.instance_of(int))

    @attrs.frozen(slots=True)
    class Converted:
        a: int = attrs.field(converter=int)

    @attrs.frozen(slots=True)
    class PostInit:
        a: int

        def __attrs_post_init__(self) -> None:
            pass

    @attrs.frozen(slots=True)
    class NotInInit:
        a: int = attrs.field(init=False, default=0)

    @attrs.frozen(slots=False)
    class NotSlotted:
        a: int

    @attrs.frozen(slots=True)
    class KeywordOnly:
        a: int = attrs.field(kw_only=True)

    class NotAttrs:
        __slots__ = ("a",)

    for cls in (Validated, Converted, PostInit, NotInInit, NotSlotted, KeywordOnly, NotAttrs):
        assert filling_class(cls) is None, cls


def test_a_plain_frozen_slotted_class_gets_one() -> None:
    @attrs.frozen(slots=True)
    class Plain:
        a: int
        b: str = "x"

    filling = filling_class(Plain)
    assert filling is not None
    item: Any = object.__new__(filling)
    item.a, item.b = 1, "y"
    item.__class__ = Plain
    assert type(item) is Plain
    assert item == Plain(1, "y")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        item.a = 2  # type: ignore[misc]
