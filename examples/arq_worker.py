"""taskwatch inside an arq worker: a job watches one task; when the task completes, it enqueues
a follow-up job that would fetch and store the results.

    python examples/arq_worker.py     # a demo on the simulated API; needs a Redis server
                                      # (REDIS_URL, default redis://localhost:6379)

The worker shares one taskwatch Client across all its jobs: created in ``on_startup``, closed
in ``on_shutdown``. Its rate budget is a RedisLimiter on arq's own Redis connection, so every
worker process on every machine spends the one budget of the API key.

In production, with the key in ``LOBSTR_TOKEN``, run ``arq arq_worker.WorkerSettings`` (this
file on the import path) and enqueue ``watch_task`` jobs from your application::

    pool = await arq.create_pool(RedisSettings.from_dsn(REDIS_URL))
    await pool.enqueue_job("watch_task", "c5e29d2aba8b77cdc56391e7405302de")
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
import warnings
from typing import Any, ClassVar

import redis
from arq import Worker, create_pool
from arq.connections import RedisSettings
from arq.jobs import Job
from arq.typing import WorkerCoroutine

import taskwatch
from taskwatch.redis import RedisLimiter
from taskwatch.testing import SimulatedTaskAPI

REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379")
REDIS_SETTINGS = RedisSettings.from_dsn(REDIS_URL)


async def startup(ctx: dict[str, Any]) -> None:
    """One Client for the whole worker, on a budget shared through arq's Redis."""
    limiter = RedisLimiter(ctx["redis"], api_key=ctx.get("api_key"))
    ctx["client"] = taskwatch.Client(
        ctx.get("api_key"),
        base_url=ctx.get("base_url", taskwatch.DEFAULT_BASE_URL),
        limiter=limiter,
    )


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["client"].aclose()


async def watch_task(ctx: dict[str, Any], task_hash: str) -> dict[str, Any]:
    """Wait for one task to finish; on completion, enqueue ``process_results`` for it.
    Returns the final state and the follow-up job's id (None when there is none)."""
    client: taskwatch.Client = ctx["client"]
    task = await client.wait(task_hash, max_interval=ctx.get("max_interval", 30.0))
    print(f"watch_task {task_hash[:8]}: {task.state} with {task.total_results} results")
    follow_up = None
    if task.state == taskwatch.TaskState.COMPLETED:
        follow_up = await ctx["redis"].enqueue_job("process_results", task_hash, task.total_results)
    return {"state": task.state, "follow_up": follow_up and follow_up.job_id}


async def process_results(ctx: dict[str, Any], task_hash: str, total_results: int) -> int:
    """The follow-up: here the results would be downloaded and stored."""
    print(f"process_results {task_hash[:8]}: {total_results} results to fetch")
    return total_results


class WorkerSettings:
    """For the ``arq`` command: ``arq arq_worker.WorkerSettings``."""

    functions: ClassVar[list[WorkerCoroutine]] = [watch_task, process_results]
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = REDIS_SETTINGS
    max_jobs = 1000  # watch jobs mostly sleep: many fit in one worker
    job_timeout = 24 * 3600  # a task may run for hours


async def main() -> None:
    """The demo: six simulated tasks, one watch job each, and a follow-up for each completed
    task, run by a worker in this process; the application side awaits the jobs' results."""
    queue = f"taskwatch-demo:{uuid.uuid4().hex}"  # never a queue of your real workers
    async with SimulatedTaskAPI(speed=40, seed=5) as api:
        pool = await create_pool(REDIS_SETTINGS, default_queue_name=queue)
        worker = Worker(
            functions=WorkerSettings.functions,
            on_startup=startup,
            on_shutdown=shutdown,
            redis_pool=pool,
            queue_name=queue,
            ctx={"api_key": api.api_key, "base_url": api.base_url, "max_interval": 2.0},
            handle_signals=False,
            poll_delay=0.1,
            max_jobs=WorkerSettings.max_jobs,
            keep_result=60,
        )
        running = asyncio.create_task(worker.async_run())
        try:
            watches = [await pool.enqueue_job("watch_task", h) for h in api.add_random_tasks(6)]
            outcomes = [await job.result(poll_delay=0.1) for job in watches if job]
            # A Job looks for its job in arq's default queue unless told the queue: without
            # it, a follow-up still queued or running reads as "not in queue".
            follow_ups = [
                Job(o["follow_up"], pool, _queue_name=queue) for o in outcomes if o["follow_up"]
            ]
            results = [await job.result(poll_delay=0.1) for job in follow_ups]
            print(
                f"{len(outcomes)} tasks watched, {len(results)} completed and processed "
                f"({sum(results)} results)"
            )
        finally:
            with warnings.catch_warnings():
                # arq closes its pool with redis-py's deprecated close() (python-arq/arq#418).
                warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
                await worker.close()  # runs on_shutdown: the Client is closed
            with contextlib.suppress(asyncio.CancelledError):
                await running


def _redis_answers() -> bool:
    """Whether a Redis server answers at REDIS_SETTINGS (a quick ping, no retries)."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.connection_pool.disconnect()  # from_url's pool is not closed by close()


if __name__ == "__main__":
    if not _redis_answers():
        raise SystemExit(
            f"arq_worker.py needs a Redis server and none answers at {REDIS_SETTINGS.host}:"
            f"{REDIS_SETTINGS.port} (set REDIS_URL); start one with: redis-server --port "
            f"{REDIS_SETTINGS.port} (or: docker run -p {REDIS_SETTINGS.port}:6379 redis)"
        )
    asyncio.run(main())
