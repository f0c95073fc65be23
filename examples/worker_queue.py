"""An async worker: task hashes arrive on a queue and each is watched as it arrives.

    python examples/worker_queue.py      # Python 3.11+ (asyncio.TaskGroup)

One Client (one connection pool, one rate budget) serves every job of the worker.
"""

import asyncio
import sys

import taskwatch
from taskwatch.testing import SimulatedTaskAPI

if sys.version_info < (3, 11):
    raise SystemExit("this example needs Python 3.11+ for asyncio.TaskGroup")


async def handle(client: taskwatch.Client, task_hash: str) -> None:
    final = await client.wait(task_hash, min_interval=0.2, max_interval=2.0)
    print(f"job {task_hash[:8]}: {final.state} with {final.total_results} results")


async def worker(client: taskwatch.Client, queue: asyncio.Queue[str | None]) -> int:
    handled = 0
    async with asyncio.TaskGroup() as jobs:  # every job ends (or fails) before we return
        while (task_hash := await queue.get()) is not None:
            jobs.create_task(handle(client, task_hash))
            handled += 1
    return handled


async def main() -> None:
    async with SimulatedTaskAPI(speed=40, seed=5, rate_limit=3600) as api:
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        async with taskwatch.Client(
            api.api_key, base_url=api.base_url, requests_per_minute=3600
        ) as client:
            consumer = asyncio.create_task(worker(client, queue))
            for task_hash in api.add_random_tasks(6):  # hashes trickle in while we work
                await queue.put(task_hash)
                await asyncio.sleep(0.3)
            await queue.put(None)  # no more work: the worker drains its jobs and stops
            print(f"worker handled {await consumer} jobs")


if __name__ == "__main__":
    asyncio.run(main())
