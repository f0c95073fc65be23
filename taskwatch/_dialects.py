"""The shapes the real service sends, for the simulated API to serve (``Dialect``).

Pure: a documented task body in, the same task in a dialect out. Each option is one deviation
seen in the vendor's own tools (their sources are listed in ``tests/compat/README.md`` of the
project); ``DIALECTS`` names a few combinations. Re-exported by ``taskwatch.testing``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import attrs

__all__ = ["DIALECTS", "Dialect"]

# The states the service's tools show instead of the documented ones.
_SHORT_STATES = {"completed": "done", "failed": "error"}

StatusShape = Literal["object", "list", "string"]


@attrs.frozen
class Dialect:
    """How the simulated API shapes its answers. The default is the documented shape.

    Attributes:
        identifier: the field naming the task: ``"hash_value"`` (documented) or ``"id"``
            (the official SDK's fixtures).
        is_done: send ``status.is_done`` (False: leave it out, as the SDK and CLI fixtures
            do; done-ness must then come from the state).
        short_states: send ``done`` for ``completed`` and ``error`` for ``failed``.
        status_shape: ``"object"`` (documented), ``"list"`` (a list holding the status
            object, as the vendor CLI met in live testing) or ``"string"`` (the state as a
            plain string, the other status fields at the top level, as in run-task rows).
        module_hash: send ``module`` as a 32-hex string instead of an integer.
        mixed_timestamps: ``created_at`` with ``Z`` and no fraction, ``started_at`` naive with
            microseconds, ``ended_at`` naive without fraction, all in one body.
        errors_as_object: send ``status.errors`` as ``{}`` instead of null when there are none.
        unknown_hash_status: the status answering a hash the simulator does not know: 404
            (documented) or 500 (what truncated or unknown hashes have been answered with).
    """

    identifier: Literal["hash_value", "id"] = "hash_value"
    is_done: bool = True
    short_states: bool = False
    status_shape: StatusShape = "object"
    module_hash: bool = False
    mixed_timestamps: bool = False
    errors_as_object: bool = False
    unknown_hash_status: Literal[404, 500] = 404

    def render(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``body`` (a task body of the documented shape) in this dialect (a fresh dict)."""
        result = copy.deepcopy(dict(body))
        status: dict[str, Any] = result.pop("status")
        if self.identifier == "id":
            result["id"] = result.pop("hash_value")
        if not self.is_done:
            del status["is_done"]
        if self.short_states:
            status["status"] = _SHORT_STATES.get(status["status"], status["status"])
        if self.module_hash and isinstance(result.get("module"), int):
            result["module"] = f"{result['module']:032x}"
        if self.mixed_timestamps:
            result["created_at"] = _with_z_no_fraction(result["created_at"])
            if status.get("ended_at") is not None:
                status["ended_at"] = _naive_no_fraction(status["ended_at"])
        if self.errors_as_object and status.get("errors") is None:
            status["errors"] = {}
        if self.status_shape == "list":
            result["status"] = [status]
        elif self.status_shape == "string":
            result["status"] = status.pop("status")
            result.update(status)
        else:
            result["status"] = status
        return result


def _with_z_no_fraction(text: str) -> str:
    return datetime.fromisoformat(text).replace(microsecond=0).isoformat() + "Z"


def _naive_no_fraction(text: str) -> str:
    return datetime.fromisoformat(text).replace(microsecond=0).isoformat()


#: Named dialects, for ``SimulatedTaskAPI(dialect=...)`` and the command line.
DIALECTS: Mapping[str, Dialect] = {
    "documented": Dialect(),
    # The official SDK's tasks.get fixture: id, no is_done, the state done.
    "sdk": Dialect(identifier="id", is_done=False, short_states=True),
    # What the vendor CLI met in live testing: a list status; 500 for unknown hashes.
    "cli-live": Dialect(status_shape="list", is_done=False, unknown_hash_status=500),
    # Run-task rows: the state as a string, counts at the top level.
    "run-task": Dialect(status_shape="string", is_done=False, short_states=True),
    # Every deviation at once.
    "everything": Dialect(
        identifier="id",
        is_done=False,
        short_states=True,
        status_shape="list",
        module_hash=True,
        mixed_timestamps=True,
        errors_as_object=True,
        unknown_hash_status=500,
    ),
}
