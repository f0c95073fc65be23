"""The suite runs on the event loop it was asked for, and a hanging test fails fast.

``TASKWATCH_TEST_LOOP=uvloop pytest`` runs every test on uvloop (see conftest.py); the
per-test timeout (pytest-timeout, ``timeout`` in pyproject.toml) turns a hang into a failure
of that one test instead of a stalled run.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

from .conftest import TEST_LOOP

PYPROJECT = Path(__file__).parent.parent / "pyproject.toml"


def _loop_module(loop: asyncio.AbstractEventLoop) -> str:
    return type(loop).__module__.split(".")[0]


async def test_the_tests_run_on_the_loop_asked_for() -> None:
    assert _loop_module(asyncio.get_running_loop()) == TEST_LOOP


def test_loops_the_tests_create_are_of_that_kind_too() -> None:
    loop = asyncio.new_event_loop()
    try:
        assert _loop_module(loop) == TEST_LOOP
    finally:
        loop.close()


def test_every_test_has_a_timeout() -> None:
    options = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["pytest"]
    timeout = options["ini_options"]["timeout"]
    assert 60 <= timeout <= 600  # generous for the slowest test, short enough to fail fast


HANGS = """
import asyncio
import time


async def test_async_hang() -> None:
    await asyncio.Event().wait()


def test_sync_hang() -> None:
    time.sleep(60)


async def test_fine() -> None:
    await asyncio.sleep(0)
"""


def test_a_hanging_test_fails_on_its_own_and_the_run_goes_on(tmp_path: Path) -> None:
    (tmp_path / "test_hangs.py").write_text(HANGS, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "timeout = 2\n",
        encoding="utf-8",
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 failed, 1 passed" in done.stdout, done.stdout
    for name in ("test_async_hang", "test_sync_hang"):
        failed = rf"FAILED \S*::{name} - Failed: Timeout \(?>2\.0s"
        assert re.search(failed, done.stdout), done.stdout
    assert elapsed < 60  # not the 60 s the sync test would sleep, nor forever
