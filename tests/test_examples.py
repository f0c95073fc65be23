"""Every example runs end to end, as a user would run it, against the simulated API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REDIS_URL, closed_port

EXAMPLES = Path(__file__).parent.parent / "examples"


def run_example(name: str, **extra_env: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "LOBSTR_TOKEN"} | extra_env
    done = subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no warnings, no tracebacks
    return done.stdout


def test_watch_one() -> None:
    lines = run_example("watch_one.py").splitlines()
    assert lines[-1].startswith("done: completed, ")
    assert lines[-2].startswith("completed")
    counts = [int(line.split()[1]) for line in lines[:-1]]
    assert counts == sorted(counts)  # progress only grows


def test_watch_many() -> None:
    out = run_example("watch_many.py")
    assert out.splitlines()[-1].startswith("25 tasks finished with ")
    finished = list(out.splitlines()[:-1])
    assert len(finished) == 25
    assert len({line.split()[0] for line in finished}) == 25


@pytest.mark.skipif(sys.version_info < (3, 11), reason="the example uses asyncio.TaskGroup")
def test_worker_queue() -> None:
    out = run_example("worker_queue.py")
    assert out.splitlines()[-1] == "worker handled 6 jobs"
    assert sum(line.startswith("job ") for line in out.splitlines()) == 6


def test_aiohttp_app() -> None:
    out = run_example("aiohttp_app.py")
    assert out.startswith("200 {'state': ")


@pytest.mark.usefixtures("redis_client")  # skips (fails under .ci/run) without Redis
def test_arq_worker() -> None:
    lines = run_example("arq_worker.py", REDIS_URL=REDIS_URL).splitlines()
    watched = [line for line in lines if line.startswith("watch_task ")]
    processed = [line for line in lines if line.startswith("process_results ")]
    completed = [line.split()[1] for line in watched if ": completed with " in line]
    assert len(watched) == 6
    assert completed  # the demo's seed has completed tasks, hence follow-ups
    assert sorted(line.split()[1] for line in processed) == sorted(completed)
    # Each follow-up carries the count its watch saw, and the summary adds them up.
    counts = {line.split()[1]: int(line.split()[2]) for line in processed}
    for line in watched:
        if ": completed with " in line:
            assert counts[line.split()[1]] == int(line.split()[4])
    assert lines[-1] == (
        f"6 tasks watched, {len(completed)} completed and processed "
        f"({sum(counts.values())} results)"
    )


def test_arq_worker_without_redis_says_so_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLES / "arq_worker.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ | {"REDIS_URL": f"redis://127.0.0.1:{closed_port()}"},
        check=False,
    )
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert "needs a Redis server" in line
    assert "redis-server --port" in line
