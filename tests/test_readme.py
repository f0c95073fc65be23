"""The README's documented usage works as written."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)


def test_the_pytest_fixture_example_passes(tmp_path: Path) -> None:
    [block] = [b for b in python_blocks() if "def test_my_worker" in b]
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
    assert "1 passed" in done.stdout


def test_the_set_up_commands_are_the_ones_ci_runs() -> None:
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "pip install -e '.[test]' && pytest" in README
    assert "\npip install -e '.[test]' && pytest\n" in ci
    assert "pip install -e '.[cli]' && taskwatch demo" in README


def test_every_python_block_is_valid_python() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 5
    for block in blocks:
        ast.parse(block)
