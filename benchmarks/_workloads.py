"""Task scripts for the benchmarks, reproducible from a seed."""

from __future__ import annotations

import random

from taskwatch.testing import ScriptStep


def queue_like(
    rng: random.Random,
    pending: tuple[float, float],
    running: tuple[float, float] = (30.0, 120.0),
) -> list[ScriptStep]:
    """A task as a squid with few concurrency slots runs it: pending for a long, varied time
    (waiting for a slot), then running briefly with ``total_results`` rising in quick bursts
    every 3-10 s for ``running`` seconds, then done: 80% completed, 10% aborted early (partial
    results), 10% failed early."""
    start = rng.uniform(*pending)
    run_for = rng.uniform(*running)
    outcome = rng.choices(["completed", "aborted", "failed"], [0.8, 0.1, 0.1])[0]
    if outcome != "completed":
        run_for *= rng.uniform(0.2, 0.9)
    steps = [ScriptStep(at=0.0, status="pending")]
    at, results, pages = start, 0, 0
    steps.append(ScriptStep(at=at, status="running"))
    while True:
        at += rng.uniform(3.0, 10.0)
        if at >= start + run_for:
            break
        results += rng.randint(5, 60)
        pages += 1
        steps.append(ScriptStep(at=at, status="running", total_results=results, total_pages=pages))
    end = max(at, start + run_for)
    steps.append(
        ScriptStep.done(
            end,
            outcome,
            total_results=results,
            total_pages=pages,
            errors="proxy pool exhausted" if outcome == "failed" else None,
        )
    )
    return steps


def changes(steps: list[ScriptStep]) -> list[tuple[float, int, bool]]:
    """The moments a watcher should notice: each rise of total_results, and the end.

    Returns (simulated time, total_results, is_done) for each.
    """
    seen: list[tuple[float, int, bool]] = []
    last = 0
    for step in steps:
        if step.is_done or step.total_results != last:
            seen.append((step.at, step.total_results, step.is_done))
            last = step.total_results
    return seen
