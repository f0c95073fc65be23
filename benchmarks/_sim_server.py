"""The simulated task API in its own process, for benchmarks.

    python -m benchmarks._sim_server --workload random|queue|budget --tasks N --seed S --speed X
        [--rate-limit R --rate-window W] [--horizon H]
        [--pending-min A --pending-max B --running-min C --running-max D --gap-min E --gap-max F]

``budget`` keeps N tasks live for H simulated seconds, each finished task followed by a new
one (``_workloads.budget_mix``); each task's line also gives its creation time and its events.

Prints one line ``PORT <port> <api_key> <clock anchor>`` then one JSON line per task
(``{"hash": ..., "changes": [[sim_time, total_results, is_done], ...]}``), then ``READY``;
serves until its stdin closes. Simulated time is ``(time.monotonic() - anchor) * speed``
(CLOCK_MONOTONIC is shared by the processes of one machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import time

from taskwatch.testing import SimulatedTaskAPI

from ._workloads import budget_mix, changes, events, queue_like


async def _serve(args: argparse.Namespace) -> None:
    anchor = time.monotonic()
    api = SimulatedTaskAPI(
        api_key="bench-key",
        rate_limit=args.rate_limit,
        rate_window=args.rate_window,
        speed=args.speed,
        seed=args.seed,
        clock=lambda: time.monotonic() - anchor,
    )
    rng = random.Random(args.seed)
    scripts = {}
    created: dict[str, float] = {}
    if args.workload == "budget":
        for at, steps in budget_mix(rng, args.tasks, args.horizon):
            task_hash = api.add_task(steps)
            scripts[task_hash], created[task_hash] = steps, at
    for _ in range(args.tasks if args.workload != "budget" else 0):
        if args.workload == "queue":
            steps = queue_like(
                rng,
                (args.pending_min, args.pending_max),
                (args.running_min, args.running_max),
                (args.gap_min, args.gap_max),
            )
            scripts[api.add_task(steps)] = steps
        else:
            [task_hash] = api.add_random_tasks(1, pending=(5.0, 60.0), running=(30.0, 120.0))
            scripts[task_hash] = list(api.script(task_hash))
    await api.start()
    out = sys.stdout
    out.write(f"PORT {api.base_url.rsplit(':', 1)[1].split('/')[0]} {api.api_key} {anchor}\n")
    for task_hash, steps in scripts.items():
        record: dict[str, object] = {"hash": task_hash, "changes": changes(steps)}
        if task_hash in created:
            record["created"] = created[task_hash]
            record["events"] = events(steps)
        out.write(json.dumps(record) + "\n")
    out.write("READY\n")
    out.flush()
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    stats = api.stats
    sys.stderr.write(json.dumps({"requests": stats.requests, "429": stats.responses_429}) + "\n")
    await api.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workload", choices=["random", "queue", "budget"], default="random")
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--rate-limit", type=int, default=None)
    parser.add_argument("--rate-window", type=float, default=60.0)
    parser.add_argument("--pending-min", type=float, default=60.0)
    parser.add_argument("--pending-max", type=float, default=900.0)
    parser.add_argument("--running-min", type=float, default=30.0)
    parser.add_argument("--running-max", type=float, default=120.0)
    parser.add_argument("--gap-min", type=float, default=3.0, help="queue: s between results")
    parser.add_argument("--gap-max", type=float, default=10.0)
    parser.add_argument("--horizon", type=float, default=3000.0, help="budget: seconds of tasks")
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()


class SimProcess:
    """Run ``_sim_server`` in a child process; exposes base_url, api_key, sim_now() and the
    tasks' expected changes. ``close()`` returns the server's request and 429 counts."""

    def __init__(self, *args: str) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._sim_server", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        first = self._process.stdout.readline().split()
        if not first or first[0] != "PORT":
            self.close()
            raise RuntimeError("the simulated API did not start")
        self.base_url = f"http://127.0.0.1:{first[1]}/v1"
        self.api_key = first[2]
        self._anchor = float(first[3])
        self.speed = float(args[args.index("--speed") + 1]) if "--speed" in args else 1.0
        self.changes: dict[str, list[tuple[float, int, bool]]] = {}
        self.created: dict[str, float] = {}
        self.events: dict[str, list[tuple[float, str, int]]] = {}
        for line in self._process.stdout:
            if line.strip() == "READY":
                break
            record = json.loads(line)
            self.changes[record["hash"]] = [tuple(c) for c in record["changes"]]
            if "created" in record:
                self.created[record["hash"]] = record["created"]
                self.events[record["hash"]] = [tuple(e) for e in record["events"]]

    def sim_now(self) -> float:
        return (time.monotonic() - self._anchor) * self.speed

    def close(self) -> dict[str, int]:
        try:  # communicate() closes our end of its stdin: the server's signal to stop
            _, err = self._process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            _, err = self._process.communicate()
        lines = [line for line in (err or "").splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if lines else {}
