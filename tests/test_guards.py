"""The conftest guards can fail: a leak detector that never fires is a defect.

An inner pytest session runs, in a subprocess, tests that leak on purpose (an unclosed
aiohttp session, a task left running, a task destroyed while pending, an exception never
retrieved, an error logged by asyncio, the key in a log record) under a copy of this
suite's conftest.py and pytest settings. Each of them must be reported as a failure or an
error, and a clean test next to them must pass. The unclosed session is checked twice: with
``filterwarnings = error`` (as here) and without it, where only the guard catches it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

CONFTEST = Path(__file__).parent / "conftest.py"

LEAKS = """
import asyncio
import logging

import aiohttp
import pytest

SECRET = "sk-test-0123456789abcdef-DO-NOT-LEAK"


async def test_clean() -> None:
    async with aiohttp.ClientSession():
        await asyncio.sleep(0)


def test_clean_sync() -> None:
    asyncio.run(asyncio.sleep(0))


async def test_unclosed_session() -> None:
    aiohttp.ClientSession()


@pytest.mark.filterwarnings("default")
async def test_unclosed_session_without_filterwarnings() -> None:
    aiohttp.ClientSession()


async def test_task_left_running() -> None:
    asyncio.ensure_future(asyncio.sleep(30))


def test_task_destroyed_while_pending() -> None:
    loop = asyncio.new_event_loop()
    task = loop.create_task(asyncio.sleep(30))
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    del task


async def test_exception_never_retrieved() -> None:
    async def boom() -> None:
        raise RuntimeError("boom")

    task = asyncio.ensure_future(boom())
    await asyncio.sleep(0.01)
    del task


def test_error_logged_by_asyncio() -> None:
    logging.getLogger("asyncio").error("something went wrong")


def test_key_logged() -> None:
    logging.getLogger("taskwatch.client").debug("headers: Authorization: Token %s", SECRET)
"""

INI = """[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""


def test_the_guards_fail_leaking_tests(tmp_path: Path) -> None:
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text(INI, encoding="utf-8")
    (tmp_path / "test_leaks.py").write_text(LEAKS, encoding="utf-8")
    report = tmp_path / "report.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={report}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    reports: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        reports[case.attrib["name"]] = " ".join(
            f"{child.attrib.get('message', '')} {child.text or ''}"
            for child in case
            if child.tag in {"failure", "error"}
        )
    assert reports.pop("test_clean") == "", done.stdout
    assert reports.pop("test_clean_sync") == "", done.stdout
    # Each leak is reported, and by the guard meant to catch it.
    expected = {
        "test_unclosed_session": "Unclosed client session",
        "test_unclosed_session_without_filterwarnings": "handler called: Unclosed client session",
        "test_task_left_running": "task still running after the test",
        "test_task_destroyed_while_pending": "Task was destroyed but it is pending",
        "test_exception_never_retrieved": "exception handler called",
        "test_error_logged_by_asyncio": "something went wrong",
        "test_key_logged": "the API key appeared in 1 log record",
    }
    assert set(reports) == set(expected)
    for name, text in expected.items():
        assert text in reports[name], (name, reports[name])
    assert "DO-NOT-LEAK" not in reports["test_key_logged"]  # the report hides the key
    assert done.returncode == 1
