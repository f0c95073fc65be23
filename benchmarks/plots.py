"""The benchmarks' figures as images (matplotlib, in the bench extra).

Each function takes the figures a benchmark measured (the same dicts it writes as JSON to
benchmarks/results/) and writes one PNG. A full run (``python -m benchmarks``) writes them
to docs/images/, where the performance guide shows them; ``--quick`` writes them next to
its JSON results, so that CI checks the plotting code without touching the committed images.

- ``requests_vs_delay``: requests per task against mean detection delay, taskwatch and
  fixed-interval polling (benchmarks.freshness, the queue-like workload);
- ``memory_vs_watches``: peak extra RSS against the number of concurrent watches
  (benchmarks.scale, one process per size);
- ``delay_vs_budget``: mean detection delay against the rate budget, taskwatch and a
  round-robin poller. Nothing measures a sweep of budgets yet: the benchmark that does
  calls it with its rows (see the function), writing docs/images/delay-vs-budget.png, and
  the performance guide (docs/guides/performance.md) then shows that image.

``python -m benchmarks.plots`` redraws the figures of docs/images/ from the JSON results of
the last full runs, without measuring again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
from matplotlib import ticker

from ._common import RESULTS

DOCS_IMAGES = Path(__file__).parent.parent / "docs" / "images"


def images_dir(quick: bool) -> Path:
    """Where figures go: docs/images/ for a full run, benchmarks/results/ for --quick."""
    folder = RESULTS if quick else DOCS_IMAGES
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    # No timestamp in the file, so an unchanged figure is an unchanged file.
    figure.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(figure)
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
    figure, axes = plt.subplots(figsize=(7, 4.2))
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
        axis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        axis.set_minor_formatter(ticker.NullFormatter())
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
    figure, axes = plt.subplots(figsize=(7, 4.2))
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


def delay_vs_budget(rows: Sequence[Mapping[str, float]], path: Path) -> Path:
    """Mean detection delay against the rate budget, for taskwatch and a round-robin poller.

    ``rows``: one mapping per budget measured, with ``requests_per_minute``, ``taskwatch``
    (taskwatch's mean detection delay, s) and ``round_robin`` (the round-robin poller's, or
    its bound N / R / 2, s). The benchmark that sweeps budgets calls this and writes
    docs/images/delay-vs-budget.png.
    """
    rows = sorted(rows, key=lambda row: row["requests_per_minute"])
    budgets = [row["requests_per_minute"] for row in rows]
    figure, axes = plt.subplots(figsize=(7, 4.2))
    axes.plot(
        budgets, [row["taskwatch"] for row in rows], "D-", color="tab:blue", label="taskwatch"
    )
    axes.plot(
        budgets, [row["round_robin"] for row in rows], "o--", color="tab:gray", label="round robin"
    )
    axes.set_xlabel("rate budget (requests per minute)")
    axes.set_ylabel("mean detection delay (s)")
    axes.set_title("Detection delay against the budget")
    axes.grid(True, alpha=0.3)
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


if __name__ == "__main__":
    main()
