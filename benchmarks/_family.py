"""The freshness benchmark's family of workloads, shared by the live benchmark
(``benchmarks.freshness``) and its offline model (``benchmarks._offline_fresh``)."""

from __future__ import annotations

import dataclasses

Seen = list[tuple[float, int, bool]]  # (simulated receive time, total_results, is_done)


def detection_delays(
    expected: dict[str, list[tuple[float, int, bool]]],
    seen: dict[str, Seen],
    window: tuple[float, float] | None = None,
) -> list[float]:
    """For each expected change, the time until the first received snapshot showing it."""
    delays = []
    for task_hash, changes in expected.items():
        snapshots = seen.get(task_hash, [])
        for at, results, done in changes:
            if window is not None and not window[0] <= at <= window[1]:
                continue
            for received, total, is_done in snapshots:
                if (is_done if done else total >= results) and received >= at - 0.5:
                    delays.append(max(0.0, received - at))
                    break
    return delays


@dataclasses.dataclass(frozen=True)
class Member:
    """One workload of the family: queue-like tasks (``_workloads.queue_like``), pending
    U(``pending``) s, then running U(``running``) s with results rising every U(``gaps``) s,
    every time multiplied by ``scale``. taskwatch's interval settings stay as a user sets them;
    the fixed-polling intervals are multiplied by ``scale`` so that their curve spans it."""

    name: str
    pending: tuple[float, float]
    running: tuple[float, float]
    gaps: tuple[float, float]
    scale: float = 1.0

    def args(self) -> list[str]:
        """The simulated API's workload flags."""
        values = {
            "pending": self.pending,
            "running": self.running,
            "gap": self.gaps,
        }
        out = ["--workload", "queue"]
        for flag, (low, high) in values.items():
            out += [
                f"--{flag}-min",
                f"{low * self.scale:g}",
                f"--{flag}-max",
                f"{high * self.scale:g}",
            ]
        return out

    def fixed_intervals(self, reach: bool = True) -> list[float]:
        """The fixed-polling intervals to sweep: ``FIXED_INTERVALS`` times the scale, and on a
        compressed scale the unscaled long ones too, since taskwatch's max_interval stays.
        With ``reach``, also the unscaled ones (and 1 s) down to ``REACH`` times below the
        shortest scaled one: taskwatch's min_interval does not scale either, so its delays
        may lie below the scaled sweep, and a ratio off the curve is not compared."""
        scaled = {interval * self.scale for interval in FIXED_INTERVALS}
        if self.scale < 1:
            scaled |= {interval for interval in FIXED_INTERVALS if interval >= 20}
        if reach:
            shortest = min(scaled)
            scaled |= {i for i in (1.0, *FIXED_INTERVALS) if shortest / REACH <= i < shortest}
        return sorted(scaled)

    def lifetime(self) -> float:
        """The longest a task lives, in simulated seconds."""
        return (self.pending[1] + self.running[1]) * self.scale


# The family: (a) pending length against max_interval (20-60 s), (b) running length and the
# number of changes per task, down to 1-4 changes in a running spell of about one
# max_interval, (c) the time scale. The first member is the workload the policy was tuned on.
FAMILY = (
    Member("queue-like (tuned on)", (60.0, 900.0), (30.0, 120.0), (3.0, 10.0)),
    Member("pending 0-20 s (< max_interval)", (0.0, 20.0), (30.0, 120.0), (3.0, 10.0)),
    Member("pending 20-60 s (~ max_interval)", (20.0, 60.0), (30.0, 120.0), (3.0, 10.0)),
    Member("running 20-40 s, 1-4 changes", (30.0, 300.0), (20.0, 40.0), (8.0, 25.0)),
    Member("running 40-80 s, 1-4 changes", (30.0, 300.0), (40.0, 80.0), (15.0, 40.0)),
    Member("running 300-900 s, bursts 3-10 s", (30.0, 300.0), (300.0, 900.0), (3.0, 10.0)),
    Member("time scale x0.2", (60.0, 900.0), (30.0, 120.0), (3.0, 10.0), 0.2),
    Member("time scale x5", (60.0, 900.0), (30.0, 120.0), (3.0, 10.0), 5.0),
)
FIXED_INTERVALS = (2.0, 3.0, 5.0, 10.0, 20.0, 40.0, 80.0)
TARGET = 0.5  # taskwatch's requests over fixed polling's at equal mean delay, on every cell
REACH = 5.0  # the unscaled fixed intervals reach this factor below the scaled sweep
OURS = ((0.5, 20.0), (1.0, 30.0), (2.0, 60.0))


def seed(member: int, repeat: int = 0) -> int:
    """The seed of the tasks of ``FAMILY[member]`` in its ``repeat``-th sample."""
    return 7 + member + 100 * repeat


def cell_verdict(ratio: float | None, bound: float | None) -> str:
    """A cell's verdict against ``TARGET``, given taskwatch's ``ratio`` and the ``bound``
    (the best possible, None when unknown): met; infeasible when even the bound lies above
    the target (with how close to the bound taskwatch came); missed otherwise."""
    if ratio is not None and ratio <= TARGET:
        return "met"
    if bound is not None and bound > TARGET:
        close = f", taskwatch {ratio / bound:.2f}x the bound" if ratio is not None else ""
        shown = f"{bound:.2f}" if round(bound, 2) > TARGET else f"{bound:.3f}"
        return f"infeasible (bound {shown}x > {TARGET:g}x{close})"
    return "MISSED" if ratio is not None else "MISSED (off the fixed curve)"
