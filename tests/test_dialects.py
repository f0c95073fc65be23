"""The simulated API's dialects: each serves a shape the real service sends, and taskwatch
watches every task in every dialect to the right end."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest

from taskwatch import ServerError, Task
from taskwatch.testing import DIALECTS, Dialect, ScriptStep, SimulatedTaskAPI

from .conftest import SECRET, fast_client, snapshots_by_task, start_cli

OUTCOMES = ("completed", "aborted", "failed")

# One dialect per option, beside the named ones: each deviation proven on its own.
SINGLE_OPTIONS: dict[str, Dialect] = {
    "id": Dialect(identifier="id"),
    "no-is-done": Dialect(is_done=False),
    "short-states": Dialect(short_states=True),
    "short-states-no-is-done": Dialect(short_states=True, is_done=False),
    "list-status": Dialect(status_shape="list"),
    "string-status": Dialect(status_shape="string", is_done=False),
    "module-hash": Dialect(module_hash=True),
    "mixed-timestamps": Dialect(mixed_timestamps=True),
    "errors-object": Dialect(errors_as_object=True),
}
ALL_DIALECTS = {**DIALECTS, **SINGLE_OPTIONS}
# Shapes the documentation allows (an object for errors; timestamps with or without a zone or
# a fraction): served by the service, read without a deviation noted.
WITHIN_THE_DOCUMENTED_TYPES = {"documented", "errors-object", "mixed-timestamps"}


def script(outcome: str) -> list[ScriptStep]:
    return [
        ScriptStep(at=0, status="pending"),
        ScriptStep(at=0.05, status="running", total_results=3, total_pages=1),
        ScriptStep.done(0.1, outcome, total_results=7, total_pages=2),
    ]


@pytest.mark.parametrize("name", sorted(ALL_DIALECTS))
async def test_every_task_ends_right_in_every_dialect(name: str) -> None:
    dialect = ALL_DIALECTS[name]
    async with SimulatedTaskAPI(rate_limit=None, api_key=SECRET, dialect=dialect) as api:
        hashes = {outcome: api.add_task(script(outcome)) for outcome in OUTCOMES}
        async with fast_client(api.base_url) as client:
            seen: list[Task] = [
                task
                async for task in client.watch_many(
                    list(hashes.values()), min_interval=0.01, max_interval=0.02
                )
            ]
            stats = client.stats()
    by_task = snapshots_by_task(seen, list(hashes.values()))
    for outcome, task_hash in hashes.items():
        final = by_task[task_hash][-1]
        assert final.hash_value == task_hash
        assert final.total_results == 7
        assert final.succeeded is (outcome == "completed")
        assert final.failed is (outcome != "completed")
        for moment in (final.created_at, final.status.started_at, final.status.ended_at):
            assert moment is not None
            assert moment.utcoffset() is not None
    if name in WITHIN_THE_DOCUMENTED_TYPES:
        assert stats.off_contract_bodies == 0
    elif name == "short-states":  # only the terminal bodies carry a short state
        assert stats.off_contract_bodies == len(OUTCOMES) - 1
        assert set(stats.deviations) == {"status.status: a state the documentation does not list"}
    else:
        assert stats.off_contract_bodies == stats.requests
        assert stats.deviations


async def test_the_default_dialect_is_the_documented_shape() -> None:
    async with SimulatedTaskAPI(rate_limit=None) as api:
        task_hash = api.add_task(script("completed"))
        body = api.snapshot(task_hash)
    assert api.dialect == DIALECTS["documented"] == Dialect()
    assert set(body) == {
        "hash_value", "created_at", "is_active", "params", "module", "status", "object"
    }  # fmt: skip
    assert "is_done" in body["status"]


@pytest.mark.parametrize(
    ("dialect", "check"),
    [
        (Dialect(identifier="id"), lambda b: "id" in b and "hash_value" not in b),
        (Dialect(is_done=False), lambda b: "is_done" not in b["status"]),
        (Dialect(short_states=True), lambda b: b["status"]["status"] == "done"),
        (Dialect(status_shape="list"), lambda b: isinstance(b["status"], list)),
        (Dialect(status_shape="string"), lambda b: b["status"] == "completed"),
        (Dialect(status_shape="string"), lambda b: b["total_results"] == 7),
        (Dialect(module_hash=True), lambda b: b["module"] == f"{5:032x}"),
        (Dialect(mixed_timestamps=True), lambda b: b["created_at"].endswith("Z")),
        (Dialect(mixed_timestamps=True), lambda b: "." not in b["status"]["ended_at"]),
        (Dialect(mixed_timestamps=True), lambda b: "." in b["status"]["started_at"]),
        (Dialect(errors_as_object=True), lambda b: b["status"]["errors"] == {}),
    ],
)
async def test_each_option_reshapes_the_body(dialect: Dialect, check: Any) -> None:
    async with SimulatedTaskAPI(rate_limit=None, dialect=dialect) as api:
        task_hash = api.add_task(script("completed"))
        api.advance(1)
        body = api.snapshot(task_hash)
    assert check(body), body


async def test_unknown_hashes_get_500_in_a_dialect_that_says_so() -> None:
    dialect = attrs.evolve(Dialect(), unknown_hash_status=500)
    async with SimulatedTaskAPI(rate_limit=None, api_key=SECRET, dialect=dialect) as api:
        async with fast_client(api.base_url, max_retries=1) as client:
            with pytest.raises(ServerError) as info:
                await client.get_task("0" * 12)
        assert api.stats.requests == 2  # a 500 is transient: retried, then raised
    assert info.value.status == 500
    assert info.value.task_hash == "0" * 12
    assert "check it is complete" in str(info.value)  # the hint for a hash cut short


def test_an_unknown_dialect_name_is_refused() -> None:
    with pytest.raises(ValueError, match="dialect must be one of"):
        SimulatedTaskAPI(dialect="klingon")


async def test_the_cli_exit_code_follows_the_outcome_table() -> None:
    """``done`` is a success and ``error`` a failure for the command line too."""
    async with SimulatedTaskAPI(rate_limit=None, api_key=SECRET, dialect="sdk") as api:
        done = api.add_task(script("completed"))  # served as "done", without is_done
        error = api.add_task(script("failed"))  # served as "error"
        args = ["--plain", "--min-interval", "0.01", "--max-interval", "0.02"]
        args += ["--base-url", api.base_url]
        process = await start_cli(["watch", done, *args], SECRET)
        out, err = await process.communicate()
        assert process.returncode == 0, err
        assert b"done" in out
        process = await start_cli(["watch", done, error, *args], SECRET)
        out, err = await process.communicate()
        assert process.returncode == 1, err  # a task ended without success
        assert b"error" in out


async def test_the_demo_speaks_a_dialect_and_says_so_once_per_kind() -> None:
    process = await start_cli(
        ["demo", "--dialect", "everything", "--json", "--tasks", "3", "--speed", "200"], None
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err
    warnings = [line for line in err.decode().splitlines() if "differs from the documented" in line]
    assert warnings  # the user sees the service is off its documentation
    kinds = [kind for line in warnings for kind in line.split(": ", 2)[2].split("; ")]
    assert len(kinds) == len(set(kinds))  # each kind once
    assert "status: a list of objects, the one furthest along read" in kinds
    finals = [json.loads(line) for line in out.decode().splitlines()]
    assert {final["hash_value"] for final in finals if final["status"]["is_done"]}
