"""Watch many tasks concurrently on one rate budget and act on each one as it finishes.

python examples/watch_many.py            # 25 simulated tasks, no key needed
"""

import asyncio
import contextlib

import taskwatch
from taskwatch.testing import SimulatedTaskAPI


async def on_finished(task: taskwatch.Task) -> None:
    # Your follow-up goes here: fetch results, notify, enqueue the next job...
    partial = "" if task.state == "completed" else " (partial)"
    print(f"{task.hash_value[:8]} {task.state:<9} {task.total_results:>4} results{partial}")


async def watch_all(client: taskwatch.Client, hashes: list[str]) -> dict[str, taskwatch.Task]:
    finished: dict[str, taskwatch.Task] = {}
    snapshots = client.watch_many(hashes, min_interval=0.2, max_interval=2.0)
    async with contextlib.aclosing(snapshots):
        async for task in snapshots:
            if task.is_done:  # each task's terminal snapshot arrives exactly once, last
                finished[task.hash_value] = task
                await on_finished(task)
    return finished


async def main() -> None:
    async with SimulatedTaskAPI(speed=40, seed=3, rate_limit=3600) as api:
        hashes = api.add_random_tasks(25)
        async with taskwatch.Client(
            api.api_key, base_url=api.base_url, requests_per_minute=3600
        ) as client:
            finished = await watch_all(client, hashes)
            stats = client.stats()
    print(f"{len(finished)} tasks finished with {stats.requests} requests")


if __name__ == "__main__":
    asyncio.run(main())
