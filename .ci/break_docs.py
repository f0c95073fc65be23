"""Break the documentation in a copy of the tree: ``python .ci/break_docs.py COPY``.

Removes the docstring of ``Client.wait`` and points a cross-reference in
``taskwatch.testing`` at a method that does not exist, so that CI can check that
``mkdocs build --strict`` fails on both.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def main(root: Path) -> None:
    client = root / "taskwatch" / "client.py"
    text, found = re.subn(
        r'(    async def wait\([^)]*\)[^:]*:\n)\s*"""(?:.|\n)*?"""\n',
        r"\1",
        client.read_text(),
        count=1,
    )
    if found != 1:
        raise SystemExit("Client.wait and its docstring were not found")
    client.write_text(text)
    testing = root / "taskwatch" / "testing" / "_faults.py"
    text = testing.read_text()
    reference = ":meth:`SimulatedTaskAPI.inject`"
    if reference not in text:
        raise SystemExit(f"{reference} was not found in taskwatch/testing/_faults.py")
    testing.write_text(text.replace(reference, ":meth:`SimulatedTaskAPI.no_such`", 1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
