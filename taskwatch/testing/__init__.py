"""A simulated Lobstr.io task API, served by a real aiohttp server on localhost.

:class:`SimulatedTaskAPI` answers ``GET /v1/tasks/{task_hash}`` the way the documented
Lobstr.io API does: the same 200 body shape, the same error bodies (401, 404, 429), the
``X-RateLimit-*`` headers on every response and ``Retry-After`` on a 429. Tasks follow
scripts (:class:`ScriptStep`) on a simulated clock that can run faster than real time,
and failures (:class:`Fault`) can be injected into chosen requests: error statuses,
429s, delays, hangs, dropped connections, truncated, malformed, oversized or slowly
dripped bodies and redirects; or at random, into a given share of all requests
(:meth:`SimulatedTaskAPI.inject_randomly`), for soak tests.

It is a real HTTP server, so any HTTP client works against it: point the client at
:attr:`SimulatedTaskAPI.base_url` and send :attr:`SimulatedTaskAPI.api_key`.

Use it as an async context manager, for instance in a pytest fixture::

    import pytest
    from taskwatch.testing import ScriptStep, SimulatedTaskAPI

    @pytest.fixture
    async def lobstr_api():
        async with SimulatedTaskAPI(rate_limit=None) as api:
            yield api

    async def test_watch(lobstr_api):
        task_hash = lobstr_api.add_task(
            [
                ScriptStep(at=0, status="pending"),
                ScriptStep(at=5, status="running", total_results=10, total_pages=1),
                ScriptStep(
                    at=20, status="completed", total_results=156, total_pages=3,
                    is_done=True, done_reason="completed",
                ),
            ]
        )
        ...  # poll f"{lobstr_api.base_url}/tasks/{task_hash}"

To prove code survives the shapes the real service sends beside its documentation, serve a
:class:`Dialect` (``SimulatedTaskAPI(dialect="everything")``, see :data:`DIALECTS`).

The package depends only on the standard library, aiohttp and attrs.
"""

from __future__ import annotations

from .._dialects import DIALECTS, Dialect
from ._faults import Fault, FaultKind
from ._script import ScriptStep
from ._server import SimulatedTaskAPI, SimulatorStats

__all__ = [
    "DIALECTS",
    "Dialect",
    "Fault",
    "FaultKind",
    "ScriptStep",
    "SimulatedTaskAPI",
    "SimulatorStats",
]
