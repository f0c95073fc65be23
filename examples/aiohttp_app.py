"""Wait for a task inside an aiohttp web handler, with one Client shared by the whole app.

python examples/aiohttp_app.py       # serves, asks itself once, prints the answer, exits
"""

import asyncio
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

import taskwatch
from taskwatch.testing import SimulatedTaskAPI

CLIENT = web.AppKey("taskwatch_client", taskwatch.Client)


async def wait_for_task(request: web.Request) -> web.Response:
    client = request.app[CLIENT]
    try:
        task = await client.wait(request.match_info["task_hash"], min_interval=0.2, timeout=30)
    except taskwatch.NotFoundError:
        raise web.HTTPNotFound(text="no such task") from None
    return web.json_response({"state": task.state, "results": task.total_results})


def make_app(api_key: str, base_url: str) -> web.Application:
    async def taskwatch_client(app: web.Application) -> AsyncIterator[None]:
        async with taskwatch.Client(api_key, base_url=base_url) as client:
            app[CLIENT] = client
            yield  # the client is closed when the app shuts down

    app = web.Application()
    app.cleanup_ctx.append(taskwatch_client)
    app.router.add_get("/tasks/{task_hash}/wait", wait_for_task)
    return app


async def main() -> None:
    async with SimulatedTaskAPI(speed=40, seed=11) as api:
        runner = web.AppRunner(make_app(api.api_key, api.base_url))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        [task_hash] = api.add_random_tasks(1)
        url = f"http://127.0.0.1:{port}/tasks/{task_hash}/wait"
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            print(resp.status, await resp.json())
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
