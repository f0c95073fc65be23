"""The README, the project's landing page, works as written and leads to the guides."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)


def test_the_set_up_commands_are_the_ones_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "pip install -e '.[test]' && pytest" in README
    assert "\npip install -e '.[test]' && pytest\n" in ci
    assert "pip install -e '.[cli]' && taskwatch demo" in README


def test_every_python_block_is_valid_python() -> None:
    # tests/test_docs.py also runs the quick start against a simulated API.
    blocks = python_blocks()
    assert blocks
    for block in blocks:
        ast.parse(block)


def test_the_readme_links_to_every_guide_and_every_link_resolves() -> None:
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if not link.startswith(("http://", "https://"))]
    for link in local:
        assert (ROOT / link).exists(), link
    guides = {f"docs/guides/{path.name}" for path in (ROOT / "docs" / "guides").glob("*.md")}
    assert guides <= set(local), guides - set(local)


def test_the_readme_says_how_to_serve_the_documentation() -> None:
    assert "pip install -e '.[docs]' && mkdocs serve" in README
