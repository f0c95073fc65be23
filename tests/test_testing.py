"""Tests for taskwatch.testing: the simulated Lobstr.io task API, driven by a raw aiohttp client."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from taskwatch.testing import Fault, ScriptStep, SimulatedTaskAPI

FIXTURES = Path(__file__).parent / "fixtures"
ISO_MICROS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")

SCRIPT = (
    ScriptStep(at=0, status="pending"),
    ScriptStep(at=5, status="running", total_results=10, total_pages=1),
    ScriptStep(
        at=20,
        status="completed",
        total_results=156,
        total_pages=3,
        is_done=True,
        done_reason="completed",
    ),
)


def load_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def auth(api: SimulatedTaskAPI) -> dict[str, str]:
    return {"Authorization": f"Token {api.api_key}"}


def url(api: SimulatedTaskAPI, task_hash: str) -> str:
    return f"{api.base_url}/tasks/{task_hash}"


async def get_json(
    session: aiohttp.ClientSession, api: SimulatedTaskAPI, task_hash: str
) -> tuple[int, Any]:
    async with session.get(url(api, task_hash), headers=auth(api)) as resp:
        return resp.status, await resp.json()


def shape(value: Any) -> Any:
    """Keys and JSON types of a document, recursively (None kept apart from the rest)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    return type(value).__name__


async def wait_until_in_flight(api: SimulatedTaskAPI, n: int) -> None:
    for _ in range(500):
        if api.stats.in_flight == n:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"in_flight never reached {n}: {api.stats}")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
        yield s


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def api(clock: FakeClock) -> AsyncIterator[SimulatedTaskAPI]:
    async with SimulatedTaskAPI(rate_limit=None, clock=clock) as sim:
        yield sim


@pytest.fixture
async def lobstr_api() -> AsyncIterator[SimulatedTaskAPI]:
    """The fixture from the module docstring, verbatim."""
    async with SimulatedTaskAPI(rate_limit=None) as api:
        yield api


# -- the documented responses ----------------------------------------------------------


async def test_docstring_fixture_serves_tasks(
    lobstr_api: SimulatedTaskAPI, session: aiohttp.ClientSession
) -> None:
    task_hash = lobstr_api.add_task(SCRIPT, params={"url": "https://example.com"})
    assert re.fullmatch(r"[0-9a-f]{32}", task_hash)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", lobstr_api.base_url)
    assert re.fullmatch(r"sim-[0-9a-f]{32}", lobstr_api.api_key)
    status, body = await get_json(session, lobstr_api, task_hash)
    assert status == 200
    assert body["hash_value"] == task_hash
    assert body["status"]["status"] == "pending"


async def test_200_body_has_the_documented_shape(
    api: SimulatedTaskAPI, clock: FakeClock, session: aiohttp.ClientSession
) -> None:
    fixture = load_fixture("get-task-200.json")
    task_hash = api.add_task(SCRIPT, params=fixture["params"], module=fixture["module"])
    clock.advance(30)
    async with session.get(url(api, task_hash), headers=auth(api)) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        body = await resp.json()

    assert list(body) == list(fixture)
    assert list(body["status"]) == list(fixture["status"])
    assert shape(body) == shape(fixture)
    assert body["status"] == {
        "status": "completed",
        "started_at": body["status"]["started_at"],
        "ended_at": body["status"]["ended_at"],
        "is_done": True,
        "total_results": 156,
        "total_pages": 3,
        "done_reason": "completed",
        "has_errors": False,
        "errors": None,
    }
    assert body["object"] == "task"
    assert body["params"] == fixture["params"]
    assert body["module"] == 5
    assert body["is_active"] is False
    for stamp in (body["created_at"], body["status"]["started_at"], body["status"]["ended_at"]):
        assert ISO_MICROS.match(stamp), stamp
        assert datetime.fromisoformat(stamp).tzinfo is None
    assert body == api.snapshot(task_hash)


async def test_401_bodies(api: SimulatedTaskAPI, session: aiohttp.ClientSession) -> None:
    task_hash = api.add_task(SCRIPT)
    async with session.get(url(api, task_hash)) as resp:
        assert resp.status == 401
        assert await resp.json() == {"detail": "Authentication credentials were not provided."}
        assert resp.headers["WWW-Authenticate"] == "Token"
    for wrong in ("Token nope", f"Bearer {api.api_key}", f"token {api.api_key}", api.api_key):
        async with session.get(url(api, task_hash), headers={"Authorization": wrong}) as resp:
            assert resp.status == 401
            assert await resp.json() == load_fixture("error-401-detail.json")


async def test_404_body_for_unknown_hash(
    api: SimulatedTaskAPI, session: aiohttp.ClientSession
) -> None:
    status, body = await get_json(session, api, "c5e29d2aba8b77cdc56391e7405302de")
    assert status == 404
    assert body == load_fixture("get-task-404.json")


async def test_path_segment_is_percent_decoded(
    api: SimulatedTaskAPI, session: aiohttp.ClientSession
) -> None:
    status, body = await get_json(session, api, "a%2Fb")
    assert status == 404
    assert body == load_fixture("get-task-404.json")
    assert api.requests_for("a/b") == 1

    api.add_task(SCRIPT, task_hash="a/b")
    status, body = await get_json(session, api, "a%2Fb")
    assert status == 200
    assert body["hash_value"] == "a/b"

    # Other paths get aiohttp's own 404 and are not task requests.
    for path in ("/v1/tasks/a/b", "/v1/other", "/v1/tasks/"):
        async with session.get(api.base_url.removesuffix("/v1") + path) as resp:
            assert resp.status == 404
            assert resp.content_type == "text/plain"
    assert api.stats.requests == 2


# -- rate limiting ---------------------------------------------------------------------


async def test_rate_limit_headers_count_down(
    clock: FakeClock, session: aiohttp.ClientSession
) -> None:
    async with SimulatedTaskAPI(rate_limit=5, rate_window=60, clock=clock) as api:
        task_hash = api.add_task(SCRIPT)
        remaining = []
        for _ in range(3):
            before = time.time()
            async with session.get(url(api, task_hash), headers=auth(api)) as resp:
                assert resp.status == 200
                assert resp.headers["X-RateLimit-Limit"] == "5"
                remaining.append(int(resp.headers["X-RateLimit-Remaining"]))
                reset = int(resp.headers["X-RateLimit-Reset"])
                assert before + 59 <= reset <= time.time() + 61
                assert "Retry-After" not in resp.headers
        assert remaining == [4, 3, 2]

        # 401 and 404 responses carry the headers and use up the same window per key.
        async with session.get(url(api, "missing"), headers=auth(api)) as resp:
            assert resp.status == 404
            assert resp.headers["X-RateLimit-Remaining"] == "1"
        async with session.get(url(api, task_hash)) as resp:
            assert resp.status == 401
            assert resp.headers["X-RateLimit-Remaining"] == "4"  # the anonymous bucket


async def test_429_after_the_limit_until_the_window_ends(
    clock: FakeClock, session: aiohttp.ClientSession
) -> None:
    async with SimulatedTaskAPI(rate_limit=3, rate_window=60, clock=clock) as api:
        task_hash = api.add_task(SCRIPT)
        for _ in range(3):
            status, _body = await get_json(session, api, task_hash)
            assert status == 200
        clock.advance(20.5)
        async with session.get(url(api, task_hash), headers=auth(api)) as resp:
            assert resp.status == 429
            assert await resp.json() == load_fixture("error-429-ratelimit.json")
            assert resp.headers["Retry-After"] == "40"
            assert resp.headers["X-RateLimit-Remaining"] == "0"
            assert resp.headers["X-RateLimit-Limit"] == "3"
        clock.advance(39.4)
        async with session.get(url(api, task_hash), headers=auth(api)) as resp:
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "1"  # never below 1
        clock.advance(0.2)
        async with session.get(url(api, task_hash), headers=auth(api)) as resp:
            assert resp.status == 200
            assert resp.headers["X-RateLimit-Remaining"] == "2"
        assert api.stats.responses_429 == 2
        assert api.stats.by_status == {200: 4, 429: 2}


async def test_no_rate_limit_headers_when_unlimited(
    api: SimulatedTaskAPI, session: aiohttp.ClientSession
) -> None:
    task_hash = api.add_task(SCRIPT)
    for _ in range(120):
        async with session.get(url(api, task_hash), headers=auth(api)) as resp:
            assert resp.status == 200
            assert not any(name.startswith("X-RateLimit") for name in resp.headers)


# -- simulated time --------------------------------------------------------------------


async def test_progress_is_a_step_function_of_simulated_time(
    api: SimulatedTaskAPI, clock: FakeClock
) -> None:
    clock.advance(7)  # simulated time before the task is added does not count
    task_hash = api.add_task(SCRIPT)
    seen = []
    for t in (0, 4.999, 5, 19.999, 20, 1000):
        clock.t = 1007 + t
        status = api.snapshot(task_hash)["status"]
        seen.append(
            (status["status"], status["total_results"], status["is_done"], status["done_reason"])
        )
    assert seen == [
        ("pending", 0, False, None),
        ("pending", 0, False, None),
        ("running", 10, False, None),
        ("running", 10, False, None),
        ("completed", 156, True, "completed"),
        ("completed", 156, True, "completed"),
    ]

    clock.t = 1007 + 4
    body = api.snapshot(task_hash)
    assert body["status"]["started_at"] is None
    assert body["status"]["ended_at"] is None
    assert body["is_active"] is True
    clock.t = 1007 + 10
    body = api.snapshot(task_hash)
    created = datetime.fromisoformat(body["created_at"])
    started = datetime.fromisoformat(body["status"]["started_at"])
    assert started - created == timedelta(seconds=5)
    assert body["status"]["ended_at"] is None
    assert body["is_active"] is True
    clock.t = 1007 + 50
    body = api.snapshot(task_hash)
    ended = datetime.fromisoformat(body["status"]["ended_at"])
    assert ended - created == timedelta(seconds=20)
    assert body["is_active"] is False


async def test_script_details() -> None:
    clock = FakeClock()
    api = SimulatedTaskAPI(clock=clock)
    late = api.add_task([ScriptStep(at=3, status="running", total_results=1)])
    assert api.snapshot(late)["status"]["status"] == "pending"  # before the first step
    errors = {"message": "boom", "code": 500}
    failed = api.add_task(
        [
            ScriptStep(at=0, status="running", is_active=True),
            ScriptStep(
                at=1,
                status="failed",
                is_done=True,
                done_reason="error",
                has_errors=True,
                errors=errors,
                is_active=True,
            ),
        ]
    )
    errors["code"] = 0  # the step keeps its own copy
    clock.advance(2)
    body = api.snapshot(failed)
    assert body["status"]["errors"] == {"message": "boom", "code": 500}
    assert body["is_active"] is True  # explicit is_active wins over `not is_done`
    assert api.snapshot(late)["status"]["status"] == "pending"
    clock.advance(1)
    assert api.snapshot(late)["status"]["total_results"] == 1
    assert api.script(failed)[1].done_reason == "error"

    with pytest.raises(ValueError, match="at least one step"):
        api.add_task([])
    with pytest.raises(ValueError, match="non-decreasing"):
        api.add_task([ScriptStep(at=2, status="running"), ScriptStep(at=1, status="pending")])
    with pytest.raises(ValueError, match="already exists"):
        api.add_task(SCRIPT, task_hash=failed)
    with pytest.raises(ValueError, match="at must be >= 0"):
        ScriptStep(at=-1, status="pending")
    with pytest.raises(KeyError):
        api.snapshot("nope")
    await api.close()  # closing a never-started simulator is harmless


def test_script_step_done_gives_the_documented_terminal_step() -> None:
    errors = {"message": "Proxy error", "code": 502}
    failed = ScriptStep.done(4, "failed", total_results=2, total_pages=1, errors=errors)
    assert failed == ScriptStep(
        at=4,
        status="failed",
        total_results=2,
        total_pages=1,
        is_done=True,
        done_reason="error",
        has_errors=True,
        errors=errors,
    )
    assert failed.errors is not errors  # copied, like any ScriptStep's errors
    assert ScriptStep.done(1, "completed") == ScriptStep(
        at=1, status="completed", is_done=True, done_reason="completed"
    )
    assert ScriptStep.done(1, "aborted", total_results=9).done_reason == "run_aborted"
    assert not ScriptStep.done(1, "aborted").has_errors
    with pytest.raises(ValueError, match="outcome must be one of"):
        ScriptStep.done(1, "running")


async def test_speed_scales_simulated_time(clock: FakeClock) -> None:
    async with SimulatedTaskAPI(speed=10, clock=clock) as api:
        task_hash = api.add_task(SCRIPT)
        clock.advance(0.4)
        assert api.now() == pytest.approx(4)
        assert api.snapshot(task_hash)["status"]["status"] == "pending"
        clock.advance(0.2)
        assert api.snapshot(task_hash)["status"]["status"] == "running"
        api.speed = 0  # freeze simulated time
        clock.advance(100)
        assert api.now() == pytest.approx(6)
        api.advance(14)
        assert api.now() == pytest.approx(20)
        assert api.snapshot(task_hash)["status"]["status"] == "completed"
        with pytest.raises(ValueError, match="speed"):
            api.speed = -1


async def test_speed_with_the_real_clock(session: aiohttp.ClientSession) -> None:
    async with SimulatedTaskAPI(speed=200, rate_limit=None) as api:
        task_hash = api.add_task(SCRIPT)
        await asyncio.sleep(0.15)  # 30 simulated seconds
        status, body = await get_json(session, api, task_hash)
        assert status == 200
        assert body["status"]["status"] == "completed"
        assert api.now() >= 30


# -- random tasks ----------------------------------------------------------------------


def test_random_tasks_are_reproducible_with_a_seed() -> None:
    first, second, other = (SimulatedTaskAPI(seed=seed, clock=FakeClock()) for seed in (42, 42, 43))
    hashes = first.add_random_tasks(30)
    assert second.add_random_tasks(30) == hashes
    assert len(set(hashes)) == 30
    assert all(re.fullmatch(r"[0-9a-f]{32}", h) for h in hashes)
    assert [first.script(h) for h in hashes] == [second.script(h) for h in hashes]
    assert [first.snapshot(h)["params"] for h in hashes] == [
        second.snapshot(h)["params"] for h in hashes
    ]
    assert other.add_random_tasks(30) != hashes


def test_random_tasks_cover_all_outcomes_consistently() -> None:
    clock = FakeClock()
    api = SimulatedTaskAPI(seed=7, clock=clock)
    hashes = api.add_random_tasks(300)
    durations = []
    for task_hash in hashes:
        script = api.script(task_hash)
        assert script[0].status == "pending"
        assert [s.at for s in script] == sorted(s.at for s in script)
        results = [s.total_results for s in script]
        assert results == sorted(results)
        assert len({s.total_results for s in script if s.status == "running"}) >= 3
        durations.append(script[-1].at)
    assert 60 <= sorted(durations)[len(durations) // 2] <= 180
    assert max(durations) <= 180

    clock.advance(181)
    outcomes: dict[str, int] = {}
    for task_hash in hashes:
        body = api.snapshot(task_hash)
        status = body["status"]
        outcomes[status["status"]] = outcomes.get(status["status"], 0) + 1
        assert status["is_done"] is True
        assert body["is_active"] is False
        assert status["started_at"] is not None
        assert status["ended_at"] is not None
        assert status["started_at"] < status["ended_at"]
        assert status["total_pages"] <= status["total_results"]
        if status["status"] == "completed":
            assert (status["done_reason"], status["has_errors"], status["errors"]) == (
                "completed",
                False,
                None,
            )
            assert status["total_results"] > 0
        elif status["status"] == "aborted":
            assert (status["done_reason"], status["has_errors"]) == ("run_aborted", False)
            assert status["total_results"] > 0  # partial results are kept
        else:
            assert status["status"] == "failed"
            assert (status["done_reason"], status["has_errors"]) == ("error", True)
            errors = status["errors"]
            assert isinstance(errors, str) or set(errors) == {"message", "code"}
    assert set(outcomes) == {"completed", "aborted", "failed"}
    assert outcomes["completed"] > outcomes["aborted"]
    assert outcomes["completed"] > outcomes["failed"]


def test_random_task_options() -> None:
    clock = FakeClock()
    api = SimulatedTaskAPI(seed=1, clock=clock)
    hashes = api.add_random_tasks(20, pending=(1, 2), running=(10, 10), outcomes={"aborted": 1.0})
    for task_hash in hashes:
        script = api.script(task_hash)
        assert 1 <= script[1].at <= 2
        assert script[-1].status == "aborted"
        assert script[-1].at <= 12
    with pytest.raises(ValueError, match="unknown outcomes"):
        api.add_random_tasks(1, outcomes={"exploded": 1.0})
    with pytest.raises(ValueError, match="pending"):
        api.add_random_tasks(1, pending=(5, 1))
    assert api.add_random_tasks(0) == []


# -- faults ----------------------------------------------------------------------------


@pytest.fixture
async def limited(clock: FakeClock) -> AsyncIterator[SimulatedTaskAPI]:
    async with SimulatedTaskAPI(rate_limit=90, clock=clock) as sim:
        yield sim


async def test_fault_status(limited: SimulatedTaskAPI, session: aiohttp.ClientSession) -> None:
    api = limited
    task_hash = api.add_task(SCRIPT)
    api.inject(Fault.status(503))
    api.inject(Fault.status(500))
    api.inject(Fault.status(400, body={"errors": {"message": "bad", "type": "x", "code": 400}}))
    api.inject(Fault.status(403, headers={"X-Extra": "1"}))
    api.inject(Fault.status(429))
    seen = []
    for _ in range(5):
        async with session.get(url(api, task_hash), headers=auth(api)) as resp:
            seen.append((resp.status, await resp.json()))
            assert resp.headers["X-RateLimit-Limit"] == "90"
            if resp.status == 403:
                assert resp.headers["X-Extra"] == "1"
            if resp.status == 429:
                assert "Retry-After" not in resp.headers
    assert seen == [
        (503, {"detail": "Service Unavailable."}),
        (500, {"detail": "A server error occurred."}),
        (400, {"errors": {"message": "bad", "type": "x", "code": 400}}),
        (403, {"detail": "You do not have permission to perform this action."}),
        (429, load_fixture("error-429-ratelimit.json")),
    ]
    status, _ = await get_json(session, api, task_hash)
    assert status == 200
    assert api.stats.faults_injected == 5
    assert api.stats.responses_429 == 1
    with pytest.raises(ValueError, match=r"200\.\.599"):
        Fault.status(99)


async def test_fault_rate_limited(
    limited: SimulatedTaskAPI, session: aiohttp.ClientSession
) -> None:
    api = limited
    task_hash = api.add_task(SCRIPT)
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    api.inject(Fault.rate_limited(), times=1)
    api.inject(Fault.rate_limited(date))
    api.inject(Fault.rate_limited(0.5))
    api.inject(Fault.rate_limited("soon"))
    api.inject(Fault.throttled(3))
    seen = []
    for _ in range(5):
        async with session.get(url(api, task_hash), headers=auth(api)) as resp:
            assert resp.status == 429
            assert "X-RateLimit-Reset" in resp.headers
            seen.append((resp.headers["Retry-After"], await resp.json()))
    documented = load_fixture("error-429-ratelimit.json")
    assert seen == [
        ("2", documented),
        (date, documented),
        ("0.5", documented),
        ("soon", documented),
        ("3", {"detail": "Request was throttled. Expected available in 3 seconds."}),
    ]
    assert load_fixture("error-429-throttled.json") == {
        "detail": "Request was throttled. Expected available in 2 seconds."
    }
    assert api.stats.responses_429 == 5
    assert api.stats.faults_injected == 5


async def test_fault_delay(api: SimulatedTaskAPI, session: aiohttp.ClientSession) -> None:
    task_hash = api.add_task(SCRIPT)
    api.inject(Fault.delay(0.2))
    started = time.monotonic()
    status, body = await get_json(session, api, task_hash)
    assert time.monotonic() - started >= 0.19
    assert status == 200
    assert body == api.snapshot(task_hash)


async def test_fault_hang_times_out_the_client(
    api: SimulatedTaskAPI, session: aiohttp.ClientSession
) -> None:
    task_hash = api.add_task(SCRIPT)
    api.inject(Fault.hang())
    with pytest.raises(asyncio.TimeoutError):
        async with session.get(
            url(api, task_hash), headers=auth(api), timeout=aiohttp.ClientTimeout(total=0.2)
        ) as resp:
            await resp.read()
    # The client gave up and closed its connection: the server cancels the handler.
    await wait_until_in_flight(api, 0)
    status, _ = await get_json(session, api, task_hash)
    assert status == 200
    assert api.stats.by_status == {200: 1}


async def test_fault_drop(api: SimulatedTaskAPI, session: aiohttp.ClientSession) -> None:
    task_hash = api.add_task(SCRIPT)
    # aiohttp retries an idempotent request once when the server disconnects, so a
    # single drop is invisible to it: the retry gets the normal answer.
    api.inject(Fault.drop())
    status, _ = await get_json(session, api, task_hash)
    assert status == 200
    assert api.stats.requests == 2
    assert api.stats.disconnects == 1
    # Two drops in a row reach the caller as a disconnection.
    api.reset_stats()
    api.inject(Fault.drop(), times=2)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await get_json(session, api, task_hash)
    assert api.stats.requests == 2
    assert api.stats.disconnects == 2
    assert api.stats.by_status == {}


async def test_fault_truncated(api: SimulatedTaskAPI, session: aiohttp.ClientSession) -> None:
    task_hash = api.add_task(SCRIPT)
    full = json.dumps(api.snapshot(task_hash), separators=(",", ":")).encode()
    api.inject(Fault.truncated())
    async with session.get(url(api, task_hash), headers=auth(api)) as resp:
        assert resp.status == 200
        assert resp.content_length == len(full)
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    assert api.stats.disconnects == 1
    assert api.stats.by_status == {200: 1}
    status, _ = await get_json(session, api, task_hash)
    assert status == 200


async def test_fault_malformed(api: SimulatedTaskAPI, session: aiohttp.ClientSession) -> None:
    task_hash = api.add_task(SCRIPT)
    api.inject(Fault.malformed())
    api.inject(Fault.malformed(b"", content_type="application/json"))
    api.inject(Fault.malformed(b'{"hash_value": "c5e2', content_type="application/json"))
    api.inject(Fault.malformed(b"oops", status=502, content_type=None))

    async with session.get(url(api, task_hash), headers=auth(api)) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        assert (await resp.text()).startswith("<html>")
        with pytest.raises(aiohttp.ContentTypeError):
            await resp.json()
    async with session.get(url(api, task_hash), headers=auth(api)) as resp:
        assert resp.status == 200
        assert resp.content_length == 0
        assert await resp.read() == b""
    async with session.get(url(api, task_hash), headers=auth(api)) as resp:
        assert resp.status == 200
        assert resp.content_length == len(b'{"hash_value": "c5e2')
        with pytest.raises(json.JSONDecodeError):
            await resp.json()
    async with session.get(url(api, task_hash), headers=auth(api)) as resp:
        assert resp.status == 502
        assert await resp.read() == b"oops"
        assert resp.content_type == "application/octet-stream"


async def test_fault_redirect(api: SimulatedTaskAPI, session: aiohttp.ClientSession) -> None:
    first = api.add_task(SCRIPT)
    second = api.add_task(SCRIPT)
    api.inject(Fault.redirect(url(api, second)), task_hash=first, times=2)
    async with session.get(url(api, first), headers=auth(api), allow_redirects=False) as resp:
        assert resp.status == 302
        assert resp.headers["Location"] == url(api, second)
    async with session.get(url(api, first), headers=auth(api)) as resp:
        assert resp.status == 200
        assert len(resp.history) == 1
        assert (await resp.json())["hash_value"] == second
    assert api.stats.by_status == {302: 2, 200: 1}
    with pytest.raises(ValueError, match=r"300\.\.399"):
        Fault.redirect("/", status=200)


async def test_fault_large(api: SimulatedTaskAPI, session: aiohttp.ClientSession) -> None:
    task_hash = api.add_task(SCRIPT, params={"url": "https://example.com"})
    api.inject(Fault.large(500_000))
    async with session.get(url(api, task_hash), headers=auth(api)) as resp:
        assert resp.status == 200
        raw = await resp.read()
    assert abs(len(raw) - 500_000) < 100
    body = json.loads(raw)
    assert body["hash_value"] == task_hash
    assert body["params"]["url"] == "https://example.com"
    assert len(body["params"]["padding"]) > 400_000

    api.inject(Fault.large(10_000))
    status, body = await get_json(session, api, "missing")
    assert status == 404
    assert body["error"]["type"] == "not_found_error"
    assert len(body["padding"]) > 9_000


async def test_fault_slow_drip(api: SimulatedTaskAPI, session: aiohttp.ClientSession) -> None:
    task_hash = api.add_task(SCRIPT)
    api.inject(Fault.slow_drip(0.3, chunks=3))
    started = time.monotonic()
    async with session.get(url(api, task_hash), headers=auth(api)) as resp:
        assert resp.status == 200
        headers_after = time.monotonic() - started
        body = await resp.json()
    elapsed = time.monotonic() - started
    assert headers_after < 0.1  # the headers come at once ...
    assert elapsed >= 0.28  # ... the body over the given time
    assert body == api.snapshot(task_hash)

    # A per-read timeout shorter than the drip interval fires while reading the body.
    api.inject(Fault.slow_drip(0.6, chunks=3))
    async with session.get(
        url(api, task_hash), headers=auth(api), timeout=aiohttp.ClientTimeout(sock_read=0.05)
    ) as resp:
        assert resp.status == 200
        with pytest.raises(asyncio.TimeoutError):
            await resp.read()
    await wait_until_in_flight(api, 0)


# -- fault matching --------------------------------------------------------------------


async def test_hash_specific_faults_win_and_times_counts_down(
    api: SimulatedTaskAPI, session: aiohttp.ClientSession
) -> None:
    one = api.add_task(SCRIPT)
    two = api.add_task(SCRIPT)
    api.inject(Fault.status(500), times=2)
    api.inject(Fault.status(502))
    api.inject(Fault.status(503), task_hash=one)
    order = [one, one, two, two, one, two]
    seen = [(await get_json(session, api, h))[0] for h in order]
    assert seen == [503, 500, 500, 502, 200, 200]
    assert api.stats.faults_injected == 4


async def test_unlimited_fault_until_cleared(
    api: SimulatedTaskAPI, session: aiohttp.ClientSession
) -> None:
    task_hash = api.add_task(SCRIPT)
    api.inject(Fault.status(503), task_hash=task_hash, times=None)
    seen = [(await get_json(session, api, task_hash))[0] for _ in range(5)]
    assert seen == [503] * 5
    api.clear_faults()
    assert (await get_json(session, api, task_hash))[0] == 200
    with pytest.raises(ValueError, match="times"):
        api.inject(Fault.drop(), times=0)


async def test_faults_count_in_the_rate_window_and_beat_429(
    clock: FakeClock, session: aiohttp.ClientSession
) -> None:
    async with SimulatedTaskAPI(rate_limit=2, clock=clock) as api:
        task_hash = api.add_task(SCRIPT)
        api.inject(Fault.status(500))
        statuses = []
        remaining = []
        for _ in range(3):
            async with session.get(url(api, task_hash), headers=auth(api)) as resp:
                statuses.append(resp.status)
                remaining.append(resp.headers["X-RateLimit-Remaining"])
        assert statuses == [500, 200, 429]
        assert remaining == ["1", "0", "0"]
        api.inject(Fault.status(503))
        assert (await get_json(session, api, task_hash))[0] == 503
        assert api.stats.faults_injected == 2


# -- stats and lifecycle ---------------------------------------------------------------


async def test_stats(api: SimulatedTaskAPI, session: aiohttp.ClientSession) -> None:
    task_hash = api.add_task(SCRIPT)
    api.inject(Fault.delay(0.2), times=4)
    results = await asyncio.gather(*(get_json(session, api, task_hash) for _ in range(4)))
    assert [status for status, _ in results] == [200] * 4
    await get_json(session, api, "missing")
    async with session.get(url(api, task_hash)) as resp:
        assert resp.status == 401

    stats = api.stats
    assert stats.requests == 6
    assert stats.by_status == {200: 4, 404: 1, 401: 1}
    assert stats.by_hash == {task_hash: 5, "missing": 1}
    assert stats.faults_injected == 4
    assert stats.peak_in_flight == 4
    assert stats.in_flight == 0
    assert stats.responses_429 == 0
    assert api.requests_for(task_hash) == 5
    assert api.requests_for("never-asked") == 0

    api.reset_stats()
    assert api.stats.requests == 0
    assert api.stats.by_status == {}
    assert api.stats.peak_in_flight == 0
    assert api.requests_for(task_hash) == 0


async def test_close_ends_a_hung_request_cleanly(session: aiohttp.ClientSession) -> None:
    api = SimulatedTaskAPI(rate_limit=None)
    with pytest.raises(RuntimeError, match="not started"):
        _ = api.base_url
    await api.start()
    task_hash = api.add_task(SCRIPT)
    api.inject(Fault.hang())
    api.inject(Fault.slow_drip(30, chunks=3))
    api.inject(Fault.delay(30))
    requests = [asyncio.ensure_future(get_json(session, api, task_hash)) for _ in range(3)]
    await wait_until_in_flight(api, 3)

    started = time.monotonic()
    await api.close()
    assert time.monotonic() - started < 1.0
    outcomes = await asyncio.gather(*requests, return_exceptions=True)
    assert all(
        isinstance(o, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError) for o in outcomes
    ), outcomes
    assert api.stats.in_flight == 0
    assert api.stats.disconnects == 3
    assert asyncio.all_tasks() == {asyncio.current_task()}

    await api.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await api.start()
    with pytest.raises(aiohttp.ClientConnectionError):
        await get_json(session, api, task_hash)


async def test_constructor_options() -> None:
    async with SimulatedTaskAPI(api_key="secret", port=0, rate_limit=None) as api:
        assert api.api_key == "secret"
        assert api.rate_limit is None
        assert api.speed == 1.0
        with pytest.raises(RuntimeError, match="started"):
            await api.start()
    # base_url names the bound address, so it stays right when a name has several.
    async with (
        SimulatedTaskAPI(host="localhost", rate_limit=None) as api,
        aiohttp.ClientSession() as session,
    ):
        assert re.fullmatch(r"http://(127\.0\.0\.1|\[::1\]):\d+/v1", api.base_url)
        assert (await get_json(session, api, "missing"))[0] == 404
    with pytest.raises(ValueError, match="rate_limit"):
        SimulatedTaskAPI(rate_limit=0)
    with pytest.raises(ValueError, match="rate_window"):
        SimulatedTaskAPI(rate_window=0)
    with pytest.raises(ValueError, match="speed"):
        SimulatedTaskAPI(speed=-1)


def test_faults_are_immutable_values() -> None:
    fault = Fault.status(500)
    assert fault == Fault.status(500)
    assert fault.kind == "status"
    with pytest.raises(AttributeError):
        fault.code = 200  # type: ignore[misc]
    assert Fault.slow_drip(1, chunks=4).chunks == 4
    with pytest.raises(ValueError, match="chunks"):
        Fault.slow_drip(1, chunks=0)
    with pytest.raises(ValueError, match="seconds"):
        Fault.delay(-1)
    expected: Mapping[str, str] = dict(Fault.rate_limited(7).headers)
    assert expected == {"Retry-After": "7"}


async def test_a_compressed_window_states_its_limit_per_minute(
    clock: FakeClock, session: aiohttp.ClientSession
) -> None:
    async with SimulatedTaskAPI(rate_limit=3, rate_window=2, clock=clock) as api:
        task_hash = api.add_task(SCRIPT)
        async with session.get(url(api, task_hash), headers=auth(api)) as resp:
            assert resp.headers["X-RateLimit-Limit"] == "90"  # 3 per 2 s is 90 per minute
            assert resp.headers["X-RateLimit-Remaining"] == "2"
