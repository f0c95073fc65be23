"""The documentation's code works as written: the README and every page under docs/.

Every Python block compiles; the complete programs (those that call ``asyncio.run``) run
against a simulated API standing in for api.lobstr.io; the pytest example of the testing
guide passes under pytest; the examples page shows every example.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import cli_env

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.DOTALL)


def all_blocks() -> list[tuple[str, str]]:
    """(page and block number, code) of every Python block, examples included by snippet
    aside (tests/test_examples.py runs those)."""
    return [
        (f"{page.relative_to(ROOT)}#{number}", block)
        for page in PAGES
        for number, block in enumerate(python_blocks(page), 1)
        if not block.startswith("--8<--")
    ]


BLOCKS = all_blocks()
PROGRAMS = [(name, block) for name, block in BLOCKS if "asyncio.run(" in block]


def test_the_pages_have_code_to_check() -> None:
    assert sum(not name.startswith("README") for name, _ in BLOCKS) >= 7
    assert any(name.startswith("README") for name, _ in PROGRAMS)  # the quick start


@pytest.mark.parametrize(("name", "block"), BLOCKS, ids=[name for name, _ in BLOCKS])
def test_every_python_block_compiles(name: str, block: str) -> None:
    # Fragments may use ``await`` / ``async for`` at the top level, as in a notebook.
    compile(block, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)


# Runs a program block as a user would, with api.lobstr.io replaced by a simulated API on
# 127.0.0.1 that knows the task hash the documentation uses.
_HARNESS = """
import asyncio, os, pathlib, threading
import taskwatch
from taskwatch.testing import ScriptStep, SimulatedTaskAPI

loop = asyncio.new_event_loop()
api = SimulatedTaskAPI(rate_limit=None, speed=10)
ready = threading.Event()

def serve():
    asyncio.set_event_loop(loop)
    loop.run_until_complete(api.start())
    api.add_task(
        [ScriptStep(at=0, status="running", total_results=3),
         ScriptStep.done(5, "completed", total_results=10)],
        task_hash="c5e29d2aba8b77cdc56391e7405302de",
    )
    ready.set()
    loop.run_forever()
    loop.run_until_complete(api.close())
    loop.close()

thread = threading.Thread(target=serve)
thread.start()
assert ready.wait(10)
os.environ["LOBSTR_TOKEN"] = api.api_key
_init = taskwatch.Client.__init__

def _on_the_simulator(self, api_key=None, **options):
    options.setdefault("base_url", api.base_url)
    _init(self, api_key, **options)

taskwatch.Client.__init__ = _on_the_simulator
try:
    code = pathlib.Path(os.environ["DOC_BLOCK"]).read_text()
    exec(compile(code, "block", "exec"), {"__name__": "__main__"})
finally:
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
"""


def run_program(block: str, tmp_path: Path) -> list[str]:
    """Run ``block`` as a program on the simulated API; its output lines."""
    (tmp_path / "block.py").write_text(block, encoding="utf-8")
    env = cli_env(None) | {"DOC_BLOCK": str(tmp_path / "block.py")}
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(_HARNESS)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no warning, no traceback
    return done.stdout.splitlines()


@pytest.mark.parametrize(("name", "block"), PROGRAMS, ids=[name for name, _ in PROGRAMS])
def test_every_program_runs(name: str, block: str, tmp_path: Path) -> None:
    assert run_program(block, tmp_path), "the program printed nothing"


def test_the_quick_start_watches_the_task_to_the_end(tmp_path: Path) -> None:
    [quick_start] = [b for n, b in PROGRAMS if n.startswith("docs/guides/getting-started")]
    lines = run_program(quick_start, tmp_path)
    assert lines[0] == "running 3"  # get_task
    assert lines[1] == "running 3"  # the watch's first snapshot
    assert lines[-1] == "completed 10"  # and its terminal one, last


def test_the_pytest_example_of_the_testing_guide_passes(tmp_path: Path) -> None:
    [block] = [b for b in python_blocks(ROOT / "docs/guides/testing.md") if "def test_" in b]
    (tmp_path / "test_documented.py").write_text(block, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed" in done.stdout
    assert "failed" not in done.stdout


def test_the_examples_page_shows_every_example() -> None:
    page = (ROOT / "docs" / "examples.md").read_text(encoding="utf-8")
    shown = set(re.findall(r'--8<-- "examples/(\w+\.py)"', page))
    assert shown == {path.name for path in (ROOT / "examples").glob("*.py")}


def test_every_page_is_in_the_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert pages == set(re.findall(r": ([\w/.-]+\.md)$", nav, flags=re.MULTILINE))
