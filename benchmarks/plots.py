"""The benchmarks' figures as images (matplotlib, in the bench extra).

Each function takes the figures a benchmark measured (the same dicts it writes as JSON to
benchmarks/results/) and writes one PNG. A full run (``python -m benchmarks``) writes them
to docs/images/, where the performance guide shows them; ``--quick`` writes them next to
its JSON results, so that CI checks the plotting code without touching the committed images.

- ``requests_vs_delay``: requests per task against mean detection delay, taskwatch and
  fixed-interval polling (benchmarks.freshness, the workload the policy was tuned on);
- ``memory_vs_watches``: peak extra RSS against the number of concurrent watches
  (benchmarks.scale, one process per size);
- ``delay_vs_budget``: mean detection delay against the rate budget, round-robin and
  taskwatch's priority swept offline, and the live runs at one budget (benchmarks.budget).

``python -m benchmarks.plots`` redraws the figures of docs/images/ from the JSON results of
the last full runs, without measuring again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._common import RESULTS

DOCS_IMAGES = Path(__file__).parent.parent / "docs" / "images"


def images_dir(quick: bool) -> Path:
    """Where figures go: docs/images/ for a full run, benchmarks/results/ for --quick."""
    folder = RESULTS if quick else DOCS_IMAGES
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _pyplot() -> Any:
    """matplotlib's pyplot, drawing to files only. Imported when a figure is drawn, not with
    this module: the benchmarks' own functions import (and are tested) without the bench
    extra."""
    import matplotlib  # noqa: PLC0415 - the bench extra, only where a figure is drawn

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def _ticker() -> Any:
    """matplotlib's ticker module (see ``_pyplot``)."""
    _pyplot()
    from matplotlib import ticker  # noqa: PLC0415 - the bench extra, as in _pyplot

    return ticker


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    # No timestamp in the file, so an unchanged figure is an unchanged file.
    figure.savefig(path, dpi=110, metadata={"Software": None})
    _pyplot().close(figure)
    return path


def requests_vs_delay(queue_like: Mapping[str, Any], path: Path) -> Path:
    """Requests per task against mean detection delay: the fixed-polling curve (one point per
    interval) and one point per taskwatch setting (``min_interval``-``max_interval``)."""
    strategies: Mapping[str, Mapping[str, Any]] = queue_like["strategies"]
    fixed = sorted(
        (row["mean_delay"], row["requests_per_task"], name)
        for name, row in strategies.items()
        if name.startswith("fixed")
    )
    ours = [
        (row["mean_delay"], row["requests_per_task"], name)
        for name, row in strategies.items()
        if name.startswith("taskwatch")
    ]
    figure, axes = _pyplot().subplots(figsize=(7, 4.2))
    axes.plot(
        [d for d, _, _ in fixed],
        [r for _, r, _ in fixed],
        "o-",
        color="tab:gray",
        label="fixed-interval polling",
    )
    for delay, requests, name in fixed:
        axes.annotate(
            name.removeprefix("fixed "),
            (delay, requests),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=8,
            color="tab:gray",
        )
    axes.plot(
        [d for d, _, _ in ours],
        [r for _, r, _ in ours],
        "D",
        color="tab:blue",
        markersize=8,
        label="taskwatch (min-max interval)",
    )
    for delay, requests, name in ours:
        axes.annotate(
            name.removeprefix("taskwatch "),
            (delay, requests),
            textcoords="offset points",
            xytext=(6, -12),
            fontsize=8,
            color="tab:blue",
        )
    axes.set_xscale("log")
    axes.set_yscale("log")
    for axis in (axes.xaxis, axes.yaxis):
        axis.set_major_formatter(_ticker().FuncFormatter(lambda value, _: f"{value:g}"))
        axis.set_minor_formatter(_ticker().NullFormatter())
    axes.set_xlabel("mean detection delay (simulated s, log)")
    axes.set_ylabel("requests per task (log)")
    axes.set_title(
        f"Queue-like workload, {queue_like['tasks']} tasks: fewer requests at equal delay"
    )
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    return _save(figure, path)


def memory_vs_watches(points: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Peak extra RSS (MB) against the number of concurrent watches, one point per
    ``benchmarks.scale`` result, with the 50 MB-per-10,000 target drawn pro rata."""
    rows = sorted((p["tasks"], p["peak_extra_rss_mb"]) for p in points)
    figure, axes = _pyplot().subplots(figsize=(7, 4.2))
    sizes = [n for n, _ in rows]
    axes.plot(sizes, [mb for _, mb in rows], "o-", color="tab:blue", label="taskwatch watch_many")
    axes.plot(
        [0, max(sizes)],
        [0, 50 * max(sizes) / 10_000],
        "--",
        color="tab:red",
        label="target: 50 MB per 10,000 watches",
    )
    for n, mb in rows:
        axes.annotate(
            f"{mb:.1f} MB\n{mb * 1e6 / n / 1e3:.1f} KB/task",
            (n, mb),
            textcoords="offset points",
            xytext=(8, -24),
            fontsize=8,
        )
    axes.set_xlabel("concurrent watches")
    axes.set_ylabel("peak extra RSS (MB)")
    axes.set_title("Memory against the number of watches (one process per size)")
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="upper left")
    return _save(figure, path)


_BUDGET_LABELS = {
    "round-robin": "round-robin",
    "index": "taskwatch's priority (offline)",
    "oracle": "the priority given the true rates (offline)",
}


def delay_vs_budget(
    sweep: Mapping[str, Mapping[str, float]], live: Mapping[str, Any] | None, path: Path
) -> Path:
    """Mean detection delay against the rate budget (benchmarks.budget): one curve per
    offline policy, and the live runs' two points.

    ``sweep``: per policy (``round-robin``, ``index``, ``oracle``), the budget in requests a
    second (as a string) to the mean detection delay (s). ``live``: the live run's result
    (``requests_per_minute``, ``tasks_live``, and ``mean_all`` under ``taskwatch`` and
    ``round-robin``), or None to draw the offline curves only.
    """
    figure, axes = _pyplot().subplots(figsize=(7, 4.5))
    budgets: set[float] = set()
    for policy, points in sweep.items():
        rates = [float(rate) for rate in points]
        budgets.update(rates)
        axes.plot(
            [rate * 60 for rate in rates],
            list(points.values()),
            marker="o",
            label=_BUDGET_LABELS.get(policy, policy),
        )
    tasks = ""
    if live is not None:
        tasks = f", {live['tasks_live']} live tasks"
        rpm = live["requests_per_minute"]
        # Round-robin hollow and first, so that taskwatch's star shows when the two are close.
        for name, marker, face in (("round-robin", "s", "none"), ("taskwatch", "*", None)):
            axes.plot(
                [rpm], [live[name]["mean_all"]], marker=marker, linestyle="none", markersize=11,
                markerfacecolor=face, label=f"{name}, live over sockets",
            )  # fmt: skip
    axes.set_xlabel(f"budget (requests per minute{tasks})")
    axes.set_ylabel("mean detection delay (s)")
    axes.set_xscale("log")
    axes.set_yscale("log")
    ticks = sorted(rate * 60 for rate in budgets)
    axes.set_xticks(ticks, [f"{tick:g}" for tick in ticks])
    axes.minorticks_off()
    axes.set_title("Detection delay against the budget: heterogeneous mix")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    return _save(figure, path)


def main() -> None:
    """Redraw docs/images/ from benchmarks/results/ (the last full runs' JSON)."""

    def result(name: str) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((RESULTS / f"{name}.json").read_text())
        return loaded

    freshness = result("freshness")["queue_like"]
    print(requests_vs_delay(freshness, DOCS_IMAGES / "requests-vs-delay.png"))
    swept = [
        result(path.stem)
        for path in RESULTS.glob("scale-[0-9]*.json")
        if not path.stem.endswith("-quick")
    ]
    print(memory_vs_watches([*swept, result("scale")], DOCS_IMAGES / "memory-vs-watches.png"))
    budget = result("budget")
    if "sweep" in budget:
        swept_budget = budget["sweep"].get("default", budget["sweep"])
        print(
            delay_vs_budget(swept_budget, budget.get("live"), DOCS_IMAGES / "delay-vs-budget.png")
        )


if __name__ == "__main__":
    main()
