"""Check the built distributions in DIST: ``python .ci/check_dist.py dist``.

The wheel must hold exactly the package's tracked files (its modules and ``py.typed``) plus
its ``.dist-info``; the sdist must hold everything the tests need to run from it (the
README's test command reads .ci/run, the documentation tests read docs/ and mkdocs.yml).
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "taskwatch"
SDIST_NEEDS = [
    "pyproject.toml",
    "README.md",
    "CHANGELOG.md",
    "taskwatch/py.typed",
    "tests/conftest.py",
    "examples",
    "docs",
    "mkdocs.yml",
    ".ci/run",
]


def tracked(folder: str) -> set[str]:
    out = subprocess.run(
        ["git", "ls-files", folder], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def main(dist: Path) -> int:
    [wheel] = dist.glob("*.whl")
    [sdist] = dist.glob("*.tar.gz")
    problems: list[str] = []

    names = set(zipfile.ZipFile(wheel).namelist())
    dist_info = {n for n in names if n.split("/")[0].endswith(".dist-info")}
    package = names - dist_info
    expected = {n for n in tracked(PACKAGE) if n.endswith((".py", "py.typed"))}
    if f"{PACKAGE}/py.typed" not in expected:
        problems.append(f"{PACKAGE}/py.typed is not tracked")
    if package != expected:
        problems.append(
            f"wheel {wheel.name}: unexpected {sorted(package - expected)}, "
            f"missing {sorted(expected - package)}"
        )
    if len({n.split("/")[0] for n in dist_info}) != 1:
        problems.append(f"wheel {wheel.name}: not exactly one .dist-info folder")

    with tarfile.open(sdist) as archive:
        members = {m.name.split("/", 1)[1] for m in archive.getmembers() if "/" in m.name}
    for need in SDIST_NEEDS:
        if not any(m == need or m.startswith(need + "/") for m in members):
            problems.append(f"sdist {sdist.name}: {need} is missing")

    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"{wheel.name}: {len(package)} package files + {len(dist_info)} in .dist-info")
        print(f"{sdist.name}: {len(members)} files, with {', '.join(SDIST_NEEDS)}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1])))
