"""Task scripts for the benchmarks, reproducible from a seed."""

from __future__ import annotations

import math
import random
import statistics

from taskwatch.testing import ScriptStep


def queue_like(
    rng: random.Random,
    pending: tuple[float, float],
    running: tuple[float, float] = (30.0, 120.0),
    gaps: tuple[float, float] = (3.0, 10.0),
) -> list[ScriptStep]:
    """A task as a squid with few concurrency slots runs it: pending for a long, varied time
    (waiting for a slot), then running briefly with ``total_results`` rising in bursts every
    U(``gaps``) seconds (3-10 s by default) for ``running`` seconds, then done: 80% completed,
    10% aborted early (partial results), 10% failed early."""
    start = rng.uniform(*pending)
    run_for = rng.uniform(*running)
    outcome = rng.choices(["completed", "aborted", "failed"], [0.8, 0.1, 0.1])[0]
    if outcome != "completed":
        run_for *= rng.uniform(0.2, 0.9)
    steps = [ScriptStep(at=0.0, status="pending")]
    at, results, pages = start, 0, 0
    steps.append(ScriptStep(at=at, status="running"))
    while True:
        at += rng.uniform(*gaps)
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


def budget_mix(
    rng: random.Random,
    chains: int,
    horizon: float,
    pending_mean: float = 600.0,
    running: tuple[float, float] = (60.0, 600.0),
    gaps: tuple[float, float] = (3.0, 30.0),
) -> list[tuple[float, list[ScriptStep]]]:
    """A heterogeneous mix that keeps ``chains`` tasks live until ``horizon``: each task is
    pending for Exp(mean ``pending_mean``) seconds, then runs for U(``running``) seconds with
    results rising as a Poisson stream whose mean gap is log-uniform in ``gaps``, then
    completes; the next task of its chain is created the moment it ends.

    Returns (creation time, script) per task, the script's times counted from 0 (the whole
    run's start), so that every task can be added at once and revealed at its creation time.
    At time 0 about a third of the first tasks are already running, as in a steady state.
    """
    tasks: list[tuple[float, list[ScriptStep]]] = []
    running_share = statistics.fmean(running) / (statistics.fmean(running) + pending_mean)
    for _ in range(chains):
        created = 0.0
        first = True
        while created < horizon:
            run_for = rng.uniform(*running)
            if first and rng.random() < running_share:
                start, run_for = 0.0, rng.uniform(0.0, run_for)
            else:
                start = created + rng.expovariate(1.0 / pending_mean)
            first = False
            gap = math.exp(rng.uniform(math.log(gaps[0]), math.log(gaps[1])))
            steps = [ScriptStep(at=created, status="pending")]
            steps.append(ScriptStep(at=start, status="running"))
            at, results, pages = start, 0, 0
            end = start + run_for
            while True:
                at += rng.expovariate(1.0 / gap)
                if at >= end:
                    break
                results += rng.randint(1, 40)
                pages += 1
                steps.append(
                    ScriptStep(at=at, status="running", total_results=results, total_pages=pages)
                )
            steps.append(
                ScriptStep.done(end, "completed", total_results=results, total_pages=pages)
            )
            tasks.append((created, steps))
            created = end
    return tasks


def events(steps: list[ScriptStep]) -> list[tuple[float, str, int]]:
    """What a watcher of the budget mix should notice: (time, kind, total_results) for the
    start (kind ``start``), each rise of total_results (``change``) and the end (``done``)."""
    seen: list[tuple[float, str, int]] = []
    last, started = 0, False
    for step in steps:
        if step.is_done:
            seen.append((step.at, "done", step.total_results))
        elif not started and step.status != "pending":
            started = True
            seen.append((step.at, "start", step.total_results))
        elif step.total_results != last:
            seen.append((step.at, "change", step.total_results))
        last = step.total_results
    return seen
