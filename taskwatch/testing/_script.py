"""Task scripts: what a simulated task reports, step by step, and random ones."""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Mapping
from typing import Any

import attrs

DEFAULT_OUTCOMES: Mapping[str, float] = {"completed": 0.8, "aborted": 0.1, "failed": 0.1}
# The documented terminal states and the done_reason each reports.
DONE_REASONS: Mapping[str, str] = {
    "completed": "completed",
    "aborted": "run_aborted",
    "failed": "error",
}
OUTCOMES = tuple(DONE_REASONS)
_FAILURE_ERRORS: tuple[str | dict[str, Any], ...] = (
    "Proxy error: the target site refused the connection",
    "Session expired: reconnect the account and relaunch the task",
    {"message": "Too many requests to the target site", "code": 429},
    {"message": "Unexpected page layout; could not parse results", "code": 500},
    {"message": "Target page not found", "code": 404},
)


def _check_non_negative(_instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _copy_errors(value: str | Mapping[str, Any] | None) -> str | dict[str, Any] | None:
    if value is None or isinstance(value, str):
        return value
    return copy.deepcopy(dict(value))


@attrs.frozen
class ScriptStep:
    """One step of a task's script: the task's state from simulated second ``at`` on.

    A task's state at simulated time ``t`` (seconds since it was added) is the last step
    of its script with ``at <= t``; before its first step a task reads as ``pending`` with
    no results. The fields map one to one onto the ``status`` object of the API's task
    body. ``errors`` may be ``None``, a string or a JSON object. ``is_active`` is reported
    as ``not is_done`` unless set explicitly.

    Attributes:
        at: the simulated second (since the task was added) this step starts at.
        status: the task's ``status.status`` (``pending``, ``running``, ``completed``, ...).
        total_results / total_pages: the progress counters.
        is_done: the task has stopped (use ``ScriptStep.done`` for a terminal step).
        done_reason: why it stopped, when it has.
        has_errors / errors: the error flag and details, as the API reports them.
        is_active: the task body's ``is_active`` (default: ``not is_done``).
    """

    at: float = attrs.field(converter=float, validator=_check_non_negative)
    status: str
    total_results: int = attrs.field(default=0, validator=_check_non_negative)
    total_pages: int = attrs.field(default=0, validator=_check_non_negative)
    is_done: bool = False
    done_reason: str | None = None
    has_errors: bool = False
    errors: str | dict[str, Any] | None = attrs.field(default=None, converter=_copy_errors)
    is_active: bool | None = None

    @classmethod
    def done(
        cls,
        at: float,
        outcome: str,
        *,
        total_results: int = 0,
        total_pages: int = 0,
        errors: str | Mapping[str, Any] | None = None,
    ) -> ScriptStep:
        """The terminal step of a task that ends ``outcome`` (``"completed"``, ``"aborted"``
        or ``"failed"``) at simulated second ``at``: ``is_done`` set, the documented
        ``done_reason`` (``completed``, ``run_aborted``, ``error``), and ``has_errors`` set
        for a failure."""
        if outcome not in DONE_REASONS:
            raise ValueError(f"outcome must be one of {list(DONE_REASONS)}, got {outcome!r}")
        return cls(
            at=at,
            status=outcome,
            total_results=total_results,
            total_pages=total_pages,
            is_done=True,
            done_reason=DONE_REASONS[outcome],
            has_errors=outcome == "failed",
            errors=errors,
        )


PENDING = ScriptStep(at=0, status="pending")


def random_script(
    rng: random.Random, pending: tuple[float, float], running: tuple[float, float], outcome: str
) -> list[ScriptStep]:
    """A random task's script, drawn from ``rng``: pending for a time drawn from ``pending``,
    then running (results in 4 to 10 bursts) for a time drawn from ``running`` (shortened
    when it does not complete), then ending ``outcome``."""
    start = round(rng.uniform(*pending), 3)
    run_length = rng.uniform(*running)
    if outcome != "completed":
        run_length *= rng.uniform(0.2, 0.9)
    end = round(start + run_length, 3)
    rate = math.exp(rng.uniform(math.log(0.3), math.log(6.0)))  # results per second
    per_page = rng.choice((10, 20, 25, 50))
    steps = [
        ScriptStep(at=0, status="pending"),
        ScriptStep(at=start, status="running"),
    ]
    results = 0
    last = start
    bursts = sorted(round(rng.uniform(start, end), 3) for _ in range(rng.randint(4, 10)))
    for at in bursts:
        results += max(1, round(rate * (at - last) * rng.uniform(0.4, 1.6)))
        last = at
        steps.append(
            ScriptStep(
                at=at,
                status="running",
                total_results=results,
                total_pages=math.ceil(results / per_page),
            )
        )
    if outcome == "completed":
        results += round(rate * (end - last) * rng.uniform(0.4, 1.6))
    errors = rng.choice(_FAILURE_ERRORS) if outcome == "failed" else None
    steps.append(
        ScriptStep.done(
            end,
            outcome,
            total_results=results,
            total_pages=math.ceil(results / per_page),
            errors=errors,  # copied by ScriptStep
        )
    )
    return steps
