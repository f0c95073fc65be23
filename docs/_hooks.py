"""mkdocs hooks: the API reference covers every public name, and every public name says what
it does.

Run by ``mkdocs build`` (``hooks:`` in mkdocs.yml). Each problem is logged as a warning, so
``mkdocs build --strict`` (CI) fails on it:

- a name in ``__all__`` of a public module, or a public method, property or nested class of
  an exported class, without a docstring;
- a public attribute of an exported class (enum members aside) that has no docstring of its
  own and that the class's docstring does not describe (in its ``Attributes:`` section, or
  by quoting its name as code);
- a public name that no page of the API reference renders.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any

import griffe

sys.path.insert(0, str(Path(__file__).parent))
from _griffe_rst import ReadRst

# A name that an earlier module re-exports is documented once, under that module.
PUBLIC_MODULES = ("taskwatch", "taskwatch.testing", "taskwatch.redis", "taskwatch.models")

log = logging.getLogger("mkdocs.hooks.taskwatch")

_rendered_ids: set[str] = set()


def _described(obj: Any) -> set[str]:
    """The attribute names ``obj``'s docstring describes: the entries of its ``Attributes:``
    section (``a / b: ...`` describes both) and the names it quotes as ``code``."""
    if obj.docstring is None:
        return set()
    text = obj.docstring.value
    names = set(re.findall(r"``?(\w+)``?", text))
    section = re.search(r"^Attributes:\n((?:[ ]{4}.*\n?|\n)+)", text, flags=re.MULTILINE)
    if section:
        for entry in re.findall(r"^[ ]{4}(\S[^:]*):", section.group(1), flags=re.MULTILINE):
            names.update(part.strip() for part in entry.split("/"))
    return names


def public_names() -> dict[str, Any]:
    """Every public object, by its documented path (``taskwatch.Client``), each once."""
    found: dict[str, Any] = {}
    targets: set[str] = set()
    for module_path in PUBLIC_MODULES:
        module = griffe.load(
            module_path,
            resolve_aliases=True,
            resolve_external=False,
            search_paths=[str(Path(__file__).parent.parent)],
            extensions=griffe.load_extensions(ReadRst),
        )
        for name in module.exports or ():
            obj = module.members[name]
            target = obj.final_target if obj.is_alias else obj
            if target.path not in targets:
                targets.add(target.path)
                found[f"{module_path}.{name}"] = target
    return found


def undocumented(found: dict[str, Any]) -> list[str]:
    """What lacks a docstring among ``found`` and their public members."""
    problems: list[str] = []
    for path, obj in found.items():
        if not obj.docstring:
            problems.append(f"{path} has no docstring")
        if not obj.is_class:
            continue
        described = _described(obj)
        is_enum = any(str(base).startswith("enum.") for base in obj.resolved_bases) or any(
            "Enum" in str(base) for base in obj.bases
        )
        for name, member in obj.members.items():
            if name.startswith("_") or member.is_alias:
                continue
            if member.docstring:
                continue
            if member.is_attribute and "property" not in member.labels:
                if name not in described and not is_enum:
                    problems.append(
                        f"{path}.{name} has no docstring, and {path}'s docstring does not "
                        "describe it"
                    )
            else:
                problems.append(f"{path}.{name} has no docstring")
    return problems


def on_pre_build(config: Any) -> None:
    _rendered_ids.clear()
    for problem in undocumented(public_names()):
        log.warning("API reference: %s", problem)


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri.startswith("reference/"):
        _rendered_ids.update(re.findall(r'id="([\w.]+)"', html))
    return html


def on_post_build(config: Any) -> None:
    for path in public_names():
        if path not in _rendered_ids:
            log.warning("API reference: no page renders %s", path)
