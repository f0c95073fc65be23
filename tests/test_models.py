"""The attrs models and the public surface."""

from __future__ import annotations

import attrs
import pytest

import taskwatch
from taskwatch import Task, TaskState, TaskStatus
from taskwatch._convert import structure_task, unstructure_task

from .conftest import fixture_json


def test_all_is_sorted_and_complete() -> None:
    assert taskwatch.__all__ == sorted(taskwatch.__all__)
    public = {
        name
        for name, value in vars(taskwatch).items()
        if not name.startswith("_") and not isinstance(value, type(taskwatch))
    }
    assert public <= set(taskwatch.__all__), public - set(taskwatch.__all__)
    for name in taskwatch.__all__:
        assert hasattr(taskwatch, name), name


def test_models_are_frozen_and_slotted() -> None:
    task = structure_task(fixture_json("get-task-200.json"))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        task.hash_value = "x"  # type: ignore[misc]
    assert not hasattr(task, "__dict__")
    assert not hasattr(task.status, "__dict__")


@pytest.mark.parametrize("state", list(TaskState))
def test_task_state_compares_equal_to_the_server_string(state: TaskState) -> None:
    status = TaskStatus(status=state.value, is_done=False, total_results=0)
    assert status.status == state
    assert str(state) == state.value


def test_unknown_state_is_kept_as_a_string() -> None:
    data = fixture_json("get-task-200.json")
    data["status"]["status"] = "paused"
    task = structure_task(data)
    assert task.state == "paused"
    assert task.state not in set(TaskState)


def test_unstructure_round_trips_the_documented_body() -> None:
    """The documented shape comes back, with every timestamp marked as the UTC it is."""
    data = fixture_json("get-task-200.json")
    task = structure_task(data)
    expected = fixture_json("get-task-200.json")
    expected["created_at"] += "Z"
    expected["status"]["started_at"] += "Z"
    expected["status"]["ended_at"] += "Z"
    assert unstructure_task(task) == expected
    assert structure_task(unstructure_task(task)) == task


def test_snapshots_compare_by_value() -> None:
    data = fixture_json("get-task-200.json")
    assert structure_task(data) == structure_task(data)
    assert isinstance(structure_task(data), Task)
