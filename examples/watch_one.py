"""Watch one task until it is done, printing each change.

    python examples/watch_one.py [TASK_HASH]

With a hash, it watches that task on the real API (key from LOBSTR_TOKEN or the lobstr config).
Without one, it runs against the embedded simulated API: no key, no network.
"""

import asyncio
import contextlib
import sys

import taskwatch
from taskwatch.testing import SimulatedTaskAPI


async def watch_one(client: taskwatch.Client, task_hash: str) -> taskwatch.Task:
    async with contextlib.aclosing(client.watch(task_hash, min_interval=0.2)) as snapshots:
        async for task in snapshots:
            print(
                f"{task.state:<9} {task.total_results:>5} results  {task.status.total_pages} pages"
            )
    return task  # the last snapshot a watch yields is always the terminal one


async def main() -> None:
    if len(sys.argv) > 1:
        async with taskwatch.Client() as client:
            await watch_one(client, sys.argv[1])
        return
    async with SimulatedTaskAPI(speed=40, seed=7) as api:
        [task_hash] = api.add_random_tasks(1, outcomes={"completed": 1.0})
        async with taskwatch.Client(api.api_key, base_url=api.base_url) as client:
            final = await watch_one(client, task_hash)
    print(f"done: {final.state}, {final.total_results} results ({final.status.done_reason})")


if __name__ == "__main__":
    asyncio.run(main())
