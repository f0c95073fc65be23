"""The compatibility corpus: every real-world body shape in tests/compat/ (sources in its
README), read through the public API against a real local server, with the exact reading
asserted for each file: identity, state, done-ness, outcome, results and aware timestamps."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import pytest
from aiohttp import web

import taskwatch
from taskwatch import (
    APIError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    TaskFailedError,
    WatchTimeout,
)

from .conftest import ServeFactory, fast_client

CORPUS = Path(__file__).parent / "compat"


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=timezone.utc)


class Reading(NamedTuple):
    """What the body must read as. ``succeeded`` is None while the task is not done."""

    task_hash: str
    state: str
    done: bool
    succeeded: bool | None
    total_results: int
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    module: int | str | None = None
    documented: bool = False  # the documented shape exactly: no deviation noted


DOC_HASH = "c5e29d2aba8b77cdc56391e7405302de"
DOC_CREATED = utc(2024, 12, 24, 10, 57, 55, 45567)
DOC_STARTED = utc(2025, 2, 4, 10, 25, 47, 278419)
DOC_ENDED = utc(2025, 2, 4, 10, 26, 52, 310738)

READINGS: dict[str, Reading] = {
    "001-docs-get-task-documented.json": Reading(
        DOC_HASH, "completed", True, True, 156, DOC_CREATED, DOC_STARTED, DOC_ENDED, 5, True
    ),
    "002-docs-get-task-schema-render-flattened.json": Reading(
        DOC_HASH, "unknown", False, None, 0, module=123
    ),
    "003-sdk-tasks-get-fixture-id-no-is-done.json": Reading(
        "3f1c9a7e5b2d4c6e8a0b1d3f5e7a9c1b", "done", True, True, 10, utc(2026, 1, 1)
    ),
    "004-cli-task-show-fixture-hash-value-no-created-at.json": Reading(
        "a" * 32, "done", True, True, 42
    ),
    "005-cli-fix-status-as-list-of-objects.json": Reading(
        "9b2e4f6a8c0d1e3f5a7b9c1d3e5f7a9b", "done", True, True, 7
    ),
    "006-cli-fix-status-as-list-of-strings.json": Reading(
        "0d8c6b4a2e1f3a5c7e9b0d2f4a6c8e0b", "running", False, None, 0
    ),
    "007-cli-run-tasks-fixture-flat-status.json": Reading(
        "e4a1c3b5d7f9e1a3c5b7d9f1a3c5e7b9", "done", True, True, 10
    ),
    "008-docs-runtask-aborted-task-key.json": Reading(
        "d30334cd8d21ab16048c5e2e7136a9f1",
        "aborted",
        True,
        False,
        138,
        started_at=utc(2025, 2, 10, 14, 30, 58),
        ended_at=utc(2025, 2, 10, 14, 31, 10),
    ),
    "009-docs-runtask-status-error-value-variant.json": Reading(
        "b7d9f1a3c5e7b9d1f3a5c7e9b1d3f5a7",
        "error",
        True,
        False,
        0,
        started_at=utc(2025, 2, 10, 14, 30, 58),
        ended_at=utc(2025, 2, 10, 14, 31, 2),
    ),
    "010-docs-add-tasks-module-string-hash-no-status.json": Reading(
        "6b9d3afdf4e76df374915a50d7a495c4",
        "unknown",
        False,
        None,
        0,
        utc(2025, 2, 10, 14, 19, 32, 916901),
        module="4734d096159ef05210e0e1677e8be823",
    ),
    "011-docs-example-task-module-int-no-status.json": Reading(
        "1995ef75ed06f21b514298b31caa8139",
        "unknown",
        False,
        None,
        0,
        utc(2025, 7, 7, 10, 4, 54, 651445),
        module=2,
    ),
    "012-docs-list-tasks-item-minimal.json": Reading(
        "6b9d3afdf4e76df374915a50d7a495c4",
        "unknown",
        False,
        None,
        0,
        utc(2025, 3, 5, 9, 24, 49, 581177),
    ),
    "013-docs-example-task-flat-pending-url-toplevel.json": Reading(
        "task_abc123def456", "pending", False, None, 0, utc(2025, 1, 15, 10, 30)
    ),
    "014-docs-example-task-squid-id-keyword.json": Reading(
        "task_abc123", "pending", False, None, 0, utc(2024, 1, 15, 10, 30)
    ),
    "016-sdk-model-test-hash-value-only.json": Reading(
        "1f3e5a7c9b1d3f5e7a9c1b3d5f7e9a1c", "unknown", False, None, 0
    ),
    "017-sdk-model-test-id-only-no-status.json": Reading(
        "2e4a6c8e0b2d4f6a8c0e2b4d6f8a0c2e", "unknown", False, None, 0
    ),
    "018-mcp-add-tasks-mock-id-only.json": Reading(
        "8d0f2b4e6a8c0e2d4f6b8a0c2e4d6f8b", "unknown", False, None, 0
    ),
    "019-cli-task-fixture-date-only-created-at.json": Reading(
        "a" * 32, "done", True, True, 42, utc(2025, 1, 1)
    ),
    "020-docs-get-task-running-value-variant.json": Reading(
        DOC_HASH, "running", False, None, 12, DOC_CREATED, DOC_STARTED, None, 5, True
    ),
    "021-docs-get-task-failed-errors-string-value-variant.json": Reading(
        DOC_HASH, "failed", True, False, 0, DOC_CREATED, DOC_STARTED, DOC_ENDED, 5, True
    ),
    "022-docs-get-task-errors-empty-object-variant.json": Reading(
        DOC_HASH, "completed", True, True, 156, DOC_CREATED, DOC_STARTED, DOC_ENDED, 5, True
    ),
    "023-mixed-timestamp-forms-in-one-body.json": Reading(
        "5d7f9b1c3e5a7c9e1b3d5f7a9c1e3b5d",
        "completed",
        True,
        True,
        40,
        utc(2025, 2, 3, 14, 24, 23),
        utc(2025, 3, 5, 9, 27, 17, 12423),
        utc(2025, 3, 5, 9, 31, 10),
        5,
        True,
    ),
    "024-uppercase-state-no-is-done.json": Reading(
        "e86b29c032024b66aff529e1d43c2bd7", "done", True, True, 12, utc(2025, 2, 3, 14, 24, 23)
    ),
}

# Bodies that are not one task object: refused, whatever hash is asked.
REFUSED = {"015-docs-example-task-array-body-squid-key.json": "7c2e9a4f1b6d3e8a5c0f2b7d4e9a1c6f"}

ERRORS: dict[str, tuple[type[APIError], str]] = {
    "400-detail-string.json": (BadRequestError, "A required parameter squid is missing"),
    "400-error-object-validation.json": (BadRequestError, "Invalid task parameters."),
    "400-error-string.json": (BadRequestError, "field_map is required and must be a dict."),
    "400-errors-envelope-invalid-param.json": (BadRequestError, "max_results is not a valid"),
    "400-errors-envelope-squid-not-ready.json": (BadRequestError, "Squid not ready"),
    "401-detail-invalid-token.json": (AuthenticationError, "Invalid token."),
    "404-detail-not-found.json": (NotFoundError, "Not found."),
    "404-error-object-task-not-found.json": (NotFoundError, "Task not found"),
    "404-error-string.json": (NotFoundError, "No chain configured on this squid."),
    "404-errors-envelope-http-not-found.json": (NotFoundError, "not found"),
    "409-error-string.json": (APIError, ""),
    "429-detail-throttled.json": (RateLimitError, "Request was throttled."),
    "429-error-string-type-code.json": (RateLimitError, "Rate limit exceeded."),
    "500-errors-envelope-server-error.json": (ServerError, ""),
    "500-non-json-body-INFERRED.txt": (ServerError, "Internal Server Error"),
}


def body_of(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def test_every_corpus_file_has_a_reading() -> None:
    """No file in the corpus goes untested, and no reading names a missing file."""
    bodies = {path.name for path in CORPUS.glob("*.json")}
    assert bodies == set(READINGS) | set(REFUSED)
    errors = {path.name for path in (CORPUS / "errors").iterdir()}
    assert errors == set(ERRORS)
    readme = (CORPUS / "README.md").read_text()
    for name in bodies | errors:
        assert name in readme, f"{name} has no source in tests/compat/README.md"


async def serve_bodies(serve: ServeFactory, bodies: dict[str, tuple[int, bytes]]) -> str:
    """A real server answering ``/v1/tasks/{hash}`` with the given (status, body) per hash."""

    async def handler(request: web.Request) -> web.Response:
        status, body = bodies[request.match_info["task_hash"]]
        content_type = "application/json" if body[:1] in (b"{", b"[") else "text/plain"
        return web.Response(status=status, body=body, content_type=content_type)

    server = await serve({"/v1/tasks/{task_hash}": handler})
    return str(server.make_url("/v1"))


def check(task: taskwatch.Task, reading: Reading) -> None:
    assert task.hash_value == reading.task_hash
    assert task.state == reading.state
    assert task.is_done is reading.done
    if reading.succeeded is None:
        assert not task.succeeded
        assert not task.failed
    else:
        assert task.succeeded is reading.succeeded
        assert task.failed is (not reading.succeeded)
    assert task.total_results == reading.total_results
    assert task.created_at == reading.created_at
    assert task.status.started_at == reading.started_at
    assert task.status.ended_at == reading.ended_at
    assert task.module == reading.module
    for moment in (task.created_at, task.status.started_at, task.status.ended_at):
        assert moment is None or moment.tzinfo is timezone.utc


@pytest.mark.parametrize("name", sorted(READINGS))
async def test_get_task_reads_every_shape(serve: ServeFactory, name: str) -> None:
    reading = READINGS[name]
    base_url = await serve_bodies(serve, {reading.task_hash: (200, body_of(name))})
    async with fast_client(base_url) as client:
        task = await client.get_task(reading.task_hash)
        stats = client.stats()
    check(task, reading)
    assert stats.requests == 1
    if reading.documented:
        assert stats.off_contract_bodies == 0
        assert dict(stats.deviations) == {}
    else:
        assert stats.off_contract_bodies == 1
        assert stats.deviations, name


@pytest.mark.parametrize("name", sorted(READINGS))
async def test_wait_ends_correctly_over_every_shape(serve: ServeFactory, name: str) -> None:
    """A done task ends the watch with its reading (and raise_on_failure follows the
    outcome); a task not done keeps the watch polling until its timeout."""
    reading = READINGS[name]
    base_url = await serve_bodies(serve, {reading.task_hash: (200, body_of(name))})
    async with fast_client(base_url) as client:
        if reading.done:
            check(await client.wait(reading.task_hash, min_interval=0.01), reading)
            if reading.succeeded:
                check(await client.wait(reading.task_hash, raise_on_failure=True), reading)
            else:
                with pytest.raises(TaskFailedError) as failed:
                    await client.wait(reading.task_hash, raise_on_failure=True)
                check(failed.value.task, reading)
        else:
            with pytest.raises(WatchTimeout) as timed_out:
                await client.wait(
                    reading.task_hash, min_interval=0.01, max_interval=0.02, timeout=0.3
                )
            assert timed_out.value.last is not None
            check(timed_out.value.last, reading)
            assert client.stats().requests >= 3  # it kept polling


@pytest.mark.parametrize("name", sorted(REFUSED))
async def test_a_body_that_is_not_one_task_object_is_refused(
    serve: ServeFactory, name: str
) -> None:
    task_hash = REFUSED[name]
    base_url = await serve_bodies(serve, {task_hash: (200, body_of(name))})
    async with fast_client(base_url) as client:
        with pytest.raises(ResponseFormatError, match="not a JSON object") as info:
            await client.wait(task_hash)
        assert client.stats().requests == 1  # permanent: not retried
    assert info.value.task_hash == task_hash


@pytest.mark.parametrize("name", sorted(READINGS))
async def test_identity_is_still_enforced(serve: ServeFactory, name: str) -> None:
    """A body that names its task, served for another hash, is refused, never yielded as the
    asked task's snapshot."""
    other = "0" * 32
    base_url = await serve_bodies(serve, {other: (200, body_of(name))})
    async with fast_client(base_url) as client:
        with pytest.raises(ResponseFormatError, match="answered with task") as info:
            await client.get_task(other)
    assert info.value.task_hash == other


async def test_a_body_naming_two_tasks_is_refused(serve: ServeFactory) -> None:
    body = json.loads(body_of("001-docs-get-task-documented.json"))
    body["id"] = "f" * 32
    base_url = await serve_bodies(serve, {DOC_HASH: (200, json.dumps(body).encode())})
    async with fast_client(base_url) as client:
        with pytest.raises(ResponseFormatError):
            await client.get_task(DOC_HASH)


@pytest.mark.parametrize("name", sorted(ERRORS))
async def test_every_error_shape_maps_to_its_class(serve: ServeFactory, name: str) -> None:
    cls, message = ERRORS[name]
    status = int(name[:3])
    base_url = await serve_bodies(serve, {DOC_HASH: (status, body_of(f"errors/{name}"))})
    async with fast_client(base_url, max_retries=0) as client:
        with pytest.raises(APIError) as info:
            await client.get_task(DOC_HASH)
    assert type(info.value) is cls
    assert info.value.status == status
    assert info.value.task_hash == DOC_HASH
    assert info.value.message.startswith(message)
    assert info.value.message  # never empty: the body's message, else the HTTP reason


def deviation_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "taskwatch" and "differs from the documented shape" in record.message
    ]


async def test_each_kind_of_deviation_is_logged_once_per_client(
    serve: ServeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="taskwatch")
    sdk = READINGS["003-sdk-tasks-get-fixture-id-no-is-done.json"]
    cli = READINGS["005-cli-fix-status-as-list-of-objects.json"]
    base_url = await serve_bodies(
        serve,
        {
            sdk.task_hash: (200, body_of("003-sdk-tasks-get-fixture-id-no-is-done.json")),
            cli.task_hash: (200, body_of("005-cli-fix-status-as-list-of-objects.json")),
            DOC_HASH: (200, body_of("001-docs-get-task-documented.json")),
        },
    )
    async with fast_client(base_url) as client:
        for _ in range(5):
            await client.get_task(sdk.task_hash)
            await client.get_task(DOC_HASH)
        first = deviation_warnings(caplog)
        assert len(first) == 1
        text = first[0].getMessage()
        assert "hash_value: absent, the task named by id" in text
        assert "status.is_done: absent" in text
        # Fields and kinds, never values: not the hash, not the state, not a parameter.
        for value in (sdk.task_hash, '"done"', "example.com", "2026-01-01"):
            assert value not in text
        for _ in range(5):
            await client.get_task(cli.task_hash)
        second = deviation_warnings(caplog)
        assert len(second) == 2  # only the kinds the first body did not show
        assert "status: a list of objects" in second[1].getMessage()
        assert "hash_value: absent, the task named by id" not in second[1].getMessage()
        stats = client.stats()
    assert stats.off_contract_bodies == 10
    assert stats.deviations["status.is_done: absent, done-ness read from the state"] == 10
    assert stats.deviations["hash_value: absent, the task named by id"] == 5
    assert stats.deviations["status: a list of objects, the one furthest along read"] == 5

    # Another client warns again: once per client.
    async with fast_client(base_url) as client:
        await client.get_task(sdk.task_hash)
    assert len(deviation_warnings(caplog)) == 3
