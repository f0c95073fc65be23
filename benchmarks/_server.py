"""A minimal task server for benchmarks, run in its own process so that the client's CPU time
can be measured apart from the server's.

    python -m benchmarks._server        # prints "PORT <n>" on stdout, serves until stdin closes

Every ``GET /v1/tasks/{task_hash}`` gets the documented 200 body with that hash and the
documented ``X-RateLimit-*`` headers (a limit nobody reaches).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from aiohttp import web

BODY = json.loads(
    (Path(__file__).parent.parent / "tests" / "fixtures" / "get-task-200.json").read_text()
)


async def _task(request: web.Request) -> web.Response:
    body = dict(BODY, hash_value=request.match_info["task_hash"])
    return web.Response(
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers={
            "X-RateLimit-Limit": "1000000",
            "X-RateLimit-Remaining": "999999",
            "X-RateLimit-Reset": str(int(time.time()) + 60),
        },
    )


async def _serve() -> None:
    app = web.Application()
    app.router.add_get("/v1/tasks/{task_hash}", _task)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    print(f"PORT {runner.addresses[0][1]}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    await runner.cleanup()


class ServerProcess:
    """Start the server in a child process; ``base_url`` once started; ``close()`` stops it."""

    def __init__(self, module: str = "benchmarks._server", *args: str) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.startswith("PORT "):
            self.close()
            raise RuntimeError(f"the benchmark server did not start: {line!r}")
        self.port = int(line.split()[1])
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    asyncio.run(_serve())
