"""The pure protocol core, tested with tables: no server, no clock."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from taskwatch import (
    APIError,
    AuthenticationError,
    BadRequestError,
    InvalidTaskHashError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    Task,
    _convert,
    _protocol,
    _reader,
)
from taskwatch._protocol import (
    MAX_SERVER_WAIT,
    RateLimitInfo,
    auth_headers,
    decode_task,
    error_for,
    normalise_base_url,
    parse_retry_after,
    reset_wait,
    task_url,
    validate_task_hash,
)

from .conftest import DOCUMENTED_FIELDS, TASK_HASH, fixture_bytes, fixture_json

BASE = URL("https://api.lobstr.io/v1")


@pytest.fixture(autouse=True, params=["orjson", "json"])
def json_decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every parser test runs with both decoders: orjson (the ``fast`` extra) and the
    standard library's (what runs without it)."""
    if request.param == "json":
        monkeypatch.setattr(_protocol, "_loads", json.loads)
    else:
        assert _protocol._loads is orjson.loads
    return str(request.param)


NOW = 1_700_000_000.0


def decode(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Task:
    return decode_task(status, "Reason", headers or {}, body, task_hash=TASK_HASH, now=NOW)


# -- URL and headers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "task_hash",
    [TASK_HASH, "A", "abc-DEF_123.x~y", "x" * 256, "..a", "a.."],
)
def test_valid_hashes_make_one_path_segment(task_hash: str) -> None:
    url = task_url(BASE, task_hash)
    assert url.path == f"/v1/tasks/{task_hash}"
    assert url.raw_parts[-1] == task_hash
    assert url.query_string == ""
    assert url.fragment == ""


@pytest.mark.parametrize(
    "task_hash",
    [
        "",
        ".",
        "..",
        "../me",
        "a/b",
        "/abs",
        "x?y=1",
        "x#frag",
        "a%2Fb",
        "a b",
        "tâche",
        "a\nb",
        "a\x00",
        "x" * 257,
        "a\\b",
    ],
)
def test_unsafe_hashes_are_refused_before_any_request(task_hash: str) -> None:
    with pytest.raises(InvalidTaskHashError, match="invalid task hash") as info:
        task_url(BASE, task_hash)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("value", [None, 123, b"abc", ["a"]])
def test_non_string_hashes_are_refused(value: object) -> None:
    with pytest.raises(InvalidTaskHashError, match="must be a str"):
        validate_task_hash(value)


def test_long_invalid_hash_is_shortened_in_the_message() -> None:
    with pytest.raises(InvalidTaskHashError) as info:
        validate_task_hash("/" * 1000)
    assert len(str(info.value)) < 300


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://api.lobstr.io/v1", "https://api.lobstr.io/v1"),
        ("https://api.lobstr.io/v1/", "https://api.lobstr.io/v1"),
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1"),
        ("https://proxy.example/lobstr/v1//", "https://proxy.example/lobstr/v1"),
    ],
)
def test_base_url_normalised(given: str, expected: str) -> None:
    assert str(normalise_base_url(given)) == expected


@pytest.mark.parametrize(
    "given", ["api.lobstr.io/v1", "ftp://x/v1", "https:///v1", "https://x/v1?a=1", "https://x/#f"]
)
def test_bad_base_urls_refused(given: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        normalise_base_url(given)


def test_auth_header_uses_documented_token_scheme() -> None:
    headers = auth_headers("KEY", "taskwatch/1")
    assert headers["Authorization"] == "Token KEY"
    assert headers["Accept"] == "application/json"


# -- 200 bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reshape",
    [
        pytest.param(lambda data: data, id="documented"),
        pytest.param(lambda data: {**data, "status": "RUNNING"}, id="full reader"),
    ],
)
def test_a_task_shares_its_hash_state_and_kind_strings(reshape: Any) -> None:
    # Tens of thousands of watches each keep a snapshot: its strings are shared, not a copy
    # per body. The hash is the caller's own string object.
    asked = "".join(["c5e29d2aba8b77cdc5", "6391e7405302de"])  # a str object of its own
    body = json.dumps(reshape(fixture_json("get-task-200.json"))).encode()
    one, two = (_protocol.parse_task(body, asked) for _ in range(2))
    assert one.hash_value is asked
    assert two.hash_value is asked
    assert one.state is two.state
    assert one.state in {"completed", "running"}
    assert one.object is two.object
    assert one.object == "task"


@pytest.mark.parametrize(
    "status",
    [
        pytest.param({}, id="completed"),
        pytest.param(
            {"status": "pending", "is_done": False, "started_at": None, "ended_at": None,
             "done_reason": None, "total_results": 0, "total_pages": 0},
            id="pending",
        ),
        pytest.param({"status": "failed", "has_errors": True, "errors": {"a": [1]}}, id="failed"),
    ],
)  # fmt: skip
def test_the_fast_path_gives_what_the_full_reader_gives(status: dict[str, Any]) -> None:
    data = fixture_json("get-task-200.json")
    data["status"].update(status)
    fast = _reader.read_documented(data, TASK_HASH)
    shaped, deviations = _reader.read_task_body(data, TASK_HASH)
    assert fast is not None
    assert fast == _convert.build_task(shaped)
    assert deviations == []


def test_documented_body_decodes_verbatim() -> None:
    task = decode(fixture_bytes("get-task-200.json"))
    assert task.hash_value == "c5e29d2aba8b77cdc56391e7405302de"
    # The documented timestamps are naive: the service's UTC, read as aware UTC.
    assert task.created_at == datetime(2024, 12, 24, 10, 57, 55, 45567, tzinfo=timezone.utc)
    assert task.is_active is True
    assert task.params == {"url": "https://www.linkedin.com/in/johndoe"}
    assert task.module == 5
    assert task.object == "task"
    status = task.status
    assert status.status == "completed"
    assert status.started_at == datetime(2025, 2, 4, 10, 25, 47, 278419, tzinfo=timezone.utc)
    assert status.ended_at == datetime(2025, 2, 4, 10, 26, 52, 310738, tzinfo=timezone.utc)
    assert status.is_done is True
    assert status.total_results == 156
    assert status.total_pages == 1
    assert status.done_reason == "completed"
    assert status.has_errors is False
    assert status.errors is None
    assert task.is_done is True
    assert task.total_results == 156


def _body(**status_overrides: Any) -> bytes:
    data = fixture_json("get-task-200.json")
    data["status"].update(status_overrides)
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("overrides", "attribute", "expected"),
    [
        ({"status": "queued_for_gpu"}, "status", "queued_for_gpu"),
        ({"errors": "proxy blocked"}, "errors", "proxy blocked"),
        ({"errors": {"message": "boom", "code": 7}}, "errors", {"message": "boom", "code": 7}),
        ({"done_reason": None}, "done_reason", None),
        ({"ended_at": None}, "ended_at", None),
        (
            {"ended_at": "2025-02-04T10:26:52Z"},
            "ended_at",
            datetime(2025, 2, 4, 10, 26, 52, tzinfo=timezone.utc),
        ),
        ({"brand_new_field": [1, 2]}, "status", "completed"),
    ],
)
def test_tolerated_variations(overrides: dict[str, Any], attribute: str, expected: Any) -> None:
    task = decode(_body(**overrides))
    assert getattr(task.status, attribute) == expected


def test_unknown_top_level_fields_are_ignored() -> None:
    data = fixture_json("get-task-200.json")
    data["shiny_new_thing"] = {"a": 1}
    assert decode(json.dumps(data).encode()).hash_value == TASK_HASH


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "not JSON"),
        (b"<html><body>Bad gateway</body></html>", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        (b"[1, 2]", "a list, not a JSON object"),
        (b'"task"', "a string, not a JSON object"),
        (b"null", "null, not a JSON object"),
        (b'{"hash_value": "x"}', "answered with task 'x'"),
        (b'{"id": "x", "status": "done"}', "answered with task 'x'"),
        (b'{"hash_value": "' + TASK_HASH.encode() + b'", "id": "x"}', "answered with task 'x'"),
    ],
)
def test_bad_bodies_raise_response_format_error(body: bytes, fragment: str) -> None:
    """Not JSON, not one object, or another task: refused (strict about identity)."""
    with pytest.raises(ResponseFormatError, match=fragment) as info:
        decode(body)
    assert info.value.task_hash == TASK_HASH
    assert info.value.truncated is False


_UTC = timezone.utc


@pytest.mark.parametrize(
    ("status_overrides", "attribute", "expected", "deviation"),
    [
        ({"is_done": "false"}, "is_done", False, "status.is_done: a string, read as a boolean"),
        ({"is_done": 1}, "is_done", True, "status.is_done: a number, read as a boolean"),
        ({"is_done": "maybe"}, "is_done", True, "status.is_done: a string, read as absent"),
        ({"total_results": "12"}, "total_results", 12, "status.total_results: a string"),
        ({"total_results": 12.0}, "total_results", 12, "status.total_results: a number with"),
        ({"total_results": None}, "total_results", 0, "status.total_results: null"),
        ({"total_results": "lots"}, "total_results", 0, "status.total_results: a string, read"),
        ({"total_results": True}, "total_results", 0, "status.total_results: a boolean"),
        ({"started_at": "yesterday"}, "started_at", None, "status.started_at: not an ISO 8601"),
        (
            {"started_at": 1738664747},
            "started_at",
            datetime(2025, 2, 4, 10, 25, 47, tzinfo=_UTC),
            "status.started_at: a number, read as a UNIX time",
        ),
        ({"started_at": 12}, "started_at", None, "status.started_at: a number, read as absent"),
        (
            {"ended_at": "2025-02-04T11:26:52+01:00"},
            "ended_at",
            datetime(2025, 2, 4, 10, 26, 52, tzinfo=_UTC),
            None,
        ),
        (
            {"ended_at": "2025-02-04T10:26:52.3Z"},
            "ended_at",
            datetime(2025, 2, 4, 10, 26, 52, 300000, tzinfo=_UTC),
            None,
        ),
        (
            {"ended_at": "2025-02-04 10:26:52.123456789"},
            "ended_at",
            datetime(2025, 2, 4, 10, 26, 52, 123456, tzinfo=_UTC),
            None,
        ),
        ({"status": "COMPLETED"}, "status", "completed", "status.status: not in lower case"),
        ({"status": "done"}, "status", "done", "status.status: a state the documentation"),
        ({"status": ""}, "status", "unknown", "status.status: an empty string"),
        ({"has_errors": None, "errors": "boom"}, "has_errors", True, "status.has_errors: null"),
        ({"errors": {}}, "has_errors", False, None),
        ({"done_reason": 7}, "done_reason", "7", "status.done_reason: a number, read as a"),
    ],
)
def test_reshaped_status_fields_are_read_leniently(
    status_overrides: dict[str, Any], attribute: str, expected: Any, deviation: str | None
) -> None:
    """Every status field may be of another plausible type: read when it can be, absent
    when it cannot, and the deviation named by field and kind."""
    task, deviations = _protocol.read_task(_body(**status_overrides), TASK_HASH)
    assert getattr(task.status, attribute) == expected
    if deviation is None:
        assert deviations == []
    else:
        assert any(line.startswith(deviation) for line in deviations), deviations


@pytest.mark.parametrize(
    ("status", "is_done", "ended_at", "done_reason", "done", "succeeded"),
    [
        # The table of taskwatch.models, row by row, without is_done in the body.
        ("completed", None, None, None, True, True),
        ("done", None, None, None, True, True),
        ("aborted", None, None, "run_aborted", True, False),
        ("failed", None, None, "error", True, False),
        ("error", None, None, None, True, False),
        ("pending", None, None, None, False, False),
        ("running", None, "2025-02-04T10:26:52", None, False, False),
        ("uploading", None, None, None, False, False),
        ("uploading", None, "2025-02-04T10:26:52", None, True, False),
        ("uploading", None, "2025-02-04T10:26:52", "completed", True, True),
        ("stopped", None, None, "run_aborted", True, False),
        # is_done, when the body has it, decides done-ness; the outcome follows the state.
        ("completed", False, None, "completed", False, False),
        ("running", True, None, "completed", True, True),
        ("running", True, None, None, True, False),
        ("done", True, None, "done", True, True),
    ],
)
def test_done_and_outcome_follow_one_table(
    status: str,
    is_done: bool | None,
    ended_at: str | None,
    done_reason: str | None,
    done: bool,
    succeeded: bool,
) -> None:
    data = fixture_json("get-task-200.json")
    data["status"].update(status=status, ended_at=ended_at, done_reason=done_reason)
    if is_done is None:
        del data["status"]["is_done"]
    else:
        data["status"]["is_done"] = is_done
    task = _protocol.parse_task(json.dumps(data).encode(), TASK_HASH)
    assert task.is_done is done
    assert task.succeeded is succeeded
    assert task.failed is (done and not succeeded)


@pytest.mark.parametrize(
    ("status_value", "state", "total_results"),
    [
        ([{"status": "running", "total_results": 3}], "running", 3),
        (
            [{"status": "pending"}, {"status": "running", "total_results": 3}, {"status": "done"}],
            "done",
            0,
        ),
        (
            [{"status": "done", "total_results": 9}, {"status": "running"}, {"status": "pending"}],
            "done",
            9,
        ),
        (
            [{"status": "running", "total_results": 3}, {"status": "running", "total_results": 8}],
            "running",
            8,
        ),
        (["pending", "running"], "running", 0),
        ([], "unknown", 0),
        ("running", "running", 0),
        (None, "unknown", 0),
    ],
)
def test_status_as_a_list_a_string_or_null(
    status_value: Any, state: str, total_results: int
) -> None:
    data = fixture_json("get-task-200.json")
    data["status"] = status_value
    task, deviations = _protocol.read_task(json.dumps(data).encode(), TASK_HASH)
    assert task.state == state
    assert task.total_results == total_results
    assert any(line.startswith("status: ") for line in deviations)


def test_status_fields_missing_from_the_object_are_read_from_the_top_level() -> None:
    data = fixture_json("get-task-200.json")
    data["total_results"] = data["status"].pop("total_results")
    task, deviations = _protocol.read_task(json.dumps(data).encode(), TASK_HASH)
    assert task.total_results == 156
    assert deviations == ["status.total_results: absent, read from the top level"]


def test_a_body_naming_no_task_is_read_as_the_task_asked_for() -> None:
    data = fixture_json("get-task-200.json")
    del data["hash_value"]
    task, deviations = _protocol.read_task(json.dumps(data).encode(), TASK_HASH)
    assert task.hash_value == TASK_HASH
    assert deviations == ["hash_value: absent, no identifier in the body"]
    with pytest.raises(ResponseFormatError, match="names no task"):
        _protocol.read_task(json.dumps(data).encode(), None)
    data.update(hash_value="a" * 32, id="b" * 32)
    with pytest.raises(ResponseFormatError, match="two different tasks"):
        _protocol.read_task(json.dumps(data).encode(), None)


def test_the_documented_body_has_no_deviation() -> None:
    assert _protocol.read_task(fixture_bytes("get-task-200.json"), TASK_HASH)[1] == []


def test_every_prefix_of_the_documented_body_is_seen_as_cut_off() -> None:
    full = fixture_bytes("get-task-200.json")
    for end in range(1, len(full.rstrip()) - 1):
        with pytest.raises(ResponseFormatError) as info:
            decode(full[:end])
        assert info.value.truncated, full[:end]


# -- error answers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "fixture", "cls", "message", "error_type"),
    [
        (401, "error-401-detail.json", AuthenticationError, "Invalid token.", None),
        (404, "get-task-404.json", NotFoundError, "Task not found", "not_found_error"),
        (
            429,
            "error-429-ratelimit.json",
            RateLimitError,
            "Rate limit exceeded. Please try again later.",
            "RateLimitExceeded",
        ),
        (
            429,
            "error-429-throttled.json",
            RateLimitError,
            "Request was throttled. Expected available in 2 seconds.",
            None,
        ),
    ],
)
def test_documented_error_bodies(
    status: int, fixture: str, cls: type[APIError], message: str, error_type: str | None
) -> None:
    with pytest.raises(cls) as info:
        decode(fixture_bytes(fixture), status=status)
    error = info.value
    assert error.status == status
    assert error.message == message
    assert error.error_type == error_type
    assert error.body == fixture_json(fixture)
    assert error.task_hash == TASK_HASH
    assert message in str(error)


def test_sdk_errors_shape() -> None:
    body = b'{"errors": {"message": "Bad param", "type": "validation", "code": 400}}'
    with pytest.raises(BadRequestError) as info:
        decode(body, status=400)
    assert info.value.message == "Bad param"
    assert info.value.error_type == "validation"


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (405, APIError),
        (409, APIError),
        (422, APIError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
        (599, ServerError),
    ],
)
def test_status_to_error_class(status: int, cls: type[APIError]) -> None:
    error = error_for(status, "Some Reason", {}, b"", task_hash="h", now=NOW)
    assert type(error) is cls
    assert error.message == "Some Reason"  # no body: the HTTP reason


def test_non_json_error_body_kept_as_text() -> None:
    error = error_for(502, "Bad Gateway", {}, b"<html>nginx</html>", task_hash=None, now=NOW)
    assert error.body == "<html>nginx</html>"
    assert error.message == "Bad Gateway"


def test_redirect_is_an_error_naming_the_location() -> None:
    error = error_for(
        302, "Found", {"Location": "https://evil.example/x"}, b"", task_hash="h", now=NOW
    )
    assert type(error) is APIError
    assert "evil.example" in error.message
    assert "does not follow redirects" in error.message


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"Retry-After": "7"}, b"", 7.0),
        ({}, fixture_bytes("error-429-throttled.json"), 2.0),
        ({"Retry-After": "3"}, fixture_bytes("error-429-throttled.json"), 3.0),
        ({}, fixture_bytes("error-429-ratelimit.json"), None),
        ({"Retry-After": "soon"}, b"", None),
        ({"Retry-After": "99999999"}, b"", None),
        # An absurd Retry-After is no advice; the body's sane one is then read.
        ({"Retry-After": "99999999"}, fixture_bytes("error-429-throttled.json"), 2.0),
        ({}, b'{"detail": "Request was throttled. Expected available in 86400 seconds."}', None),
    ],
)
def test_rate_limit_error_retry_after(
    headers: dict[str, str], body: bytes, expected: float | None
) -> None:
    error = error_for(429, "Too Many Requests", headers, body, task_hash="h", now=NOW)
    assert isinstance(error, RateLimitError)
    assert error.retry_after == expected


def test_server_error_keeps_retry_after() -> None:
    error = error_for(503, "Unavailable", {"Retry-After": "5"}, b"", task_hash="h", now=NOW)
    assert isinstance(error, ServerError)
    assert error.retry_after == 5.0
    absurd = error_for(503, "Unavailable", {"Retry-After": "1e9"}, b"", task_hash="h", now=NOW)
    assert isinstance(absurd, ServerError)
    assert absurd.retry_after is None


@pytest.mark.parametrize(
    ("remaining", "reset", "expected"),
    [
        (0, NOW + 30, 30.0),
        (0, NOW + MAX_SERVER_WAIT, MAX_SERVER_WAIT),
        (0, NOW - 5, None),  # already reset
        (0, NOW + 86_400 * 365 * 30, None),  # decades away: absurd, not given
        (0, 1e300, None),  # garbage-long
        (0, (NOW + 30) * 1000, None),  # milliseconds read as seconds: absurd
        (1, NOW + 30, None),  # the window is not spent
        (0, None, None),
    ],
)
def test_reset_wait(remaining: int, reset: float | None, expected: float | None) -> None:
    info = RateLimitInfo(limit=90, remaining=remaining, reset=reset)
    assert reset_wait(info, NOW) == expected


# -- headers -------------------------------------------------------------------------------


def _http_date(offset: float) -> str:
    return format_datetime(datetime.fromtimestamp(NOW + offset, tz=timezone.utc), usegmt=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        ("2", 2.0),
        (" 2 ", 2.0),
        ("1.5", 1.5),
        ("-5", 0.0),
        ("120", MAX_SERVER_WAIT),  # the cap itself is honoured
        ("120.5", None),  # beyond it: absurd, treated as not given (never clamped)
        ("99999999", None),
        ("1e999", None),
        ("nan", None),
        ("inf", None),
        ("soon", None),
        ("12abc", None),
        (_http_date(30), 30.0),
        (_http_date(-30), 0.0),
        (_http_date(10_000), None),
        ("Wed, 21 Oct 2015 07:28:00 -0000", None),
        ("Thu, 99 Foo 2015 25:61:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Content-Type": "application/json"}, None),
        (
            {"X-RateLimit-Limit": "90", "X-RateLimit-Remaining": "12", "X-RateLimit-Reset": "17"},
            RateLimitInfo(limit=90, remaining=12, reset=17.0),
        ),
        ({"X-RateLimit-Remaining": "0"}, RateLimitInfo(limit=None, remaining=0, reset=None)),
        (
            {"X-RateLimit-Limit": "lots", "X-RateLimit-Remaining": "-3", "X-RateLimit-Reset": "x"},
            None,
        ),
        (
            {"X-RateLimit-Limit": "90", "X-RateLimit-Reset": "inf"},
            RateLimitInfo(limit=90, remaining=None, reset=None),
        ),
        ({"X-RateLimit-Reset": "nan"}, None),
        ({"X-RateLimit-Reset": "-5"}, None),
        ({"X-RateLimit-Reset": "-inf"}, None),
        (
            {"X-RateLimit-Limit": " 90 ", "X-RateLimit-Reset": " 1.5e9 "},
            RateLimitInfo(limit=90, remaining=None, reset=1.5e9),
        ),
        (
            {"X-RateLimit-Limit": "-1", "X-RateLimit-Remaining": "7", "X-RateLimit-Reset": "0"},
            RateLimitInfo(limit=None, remaining=7, reset=0.0),
        ),
        ({"X-RateLimit-Limit": "9.5", "X-RateLimit-Remaining": ""}, None),
    ],
)
def test_rate_limit_headers(headers: dict[str, str], expected: RateLimitInfo | None) -> None:
    assert RateLimitInfo.from_headers(headers) == expected


# -- property-based ------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_any_json_value_is_a_task_or_a_format_error(value: Any) -> None:
    try:
        task = decode(json.dumps(value).encode())
    except ResponseFormatError:
        return
    assert isinstance(task, Task)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(DOCUMENTED_FIELDS),
    st.one_of(st.just("__delete__"), _json, st.text(min_size=1000, max_size=3000)),
    st.dictionaries(st.text(max_size=8), _json, max_size=3),
)
def test_mutated_documented_body(path: tuple[str, ...], value: Any, extra: dict[str, Any]) -> None:
    data = fixture_json("get-task-200.json")
    target = data
    for part in path[:-1]:
        target = target[part]
    if value == "__delete__":
        del target[path[-1]]
    else:
        target[path[-1]] = value
    for name, extra_value in extra.items():
        data.setdefault(name, extra_value)
    try:
        task = decode(json.dumps(data).encode())
    except ResponseFormatError as exc:
        error: ResponseFormatError | None = exc
    else:
        error = None
        assert isinstance(task, Task)
    assert error is None or error.task_hash == TASK_HASH


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_are_a_task_or_a_format_error(body: bytes) -> None:
    try:
        decode(body)
    except ResponseFormatError:
        return


def test_another_tasks_body_is_a_format_error() -> None:
    with pytest.raises(ResponseFormatError, match="answered with task 'c5e29d2a") as info:
        decode_task(200, "OK", {}, fixture_bytes("get-task-200.json"), task_hash="0" * 32, now=NOW)
    assert info.value.task_hash == "0" * 32
    assert info.value.truncated is False
