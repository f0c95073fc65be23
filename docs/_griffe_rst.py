"""A griffe extension for the API reference: the few reStructuredText habits of taskwatch's
docstrings, read as Markdown.

- ``:meth:`name```, ``:class:`name```, ``:attr:`name```, ``:func:`name``` and ``:exc:`name```
  become cross-references, resolved from the object the docstring belongs to outwards (its
  class, then its module): a role that names nothing is then a broken reference, and the
  strict build fails on it.
- A paragraph ending in ``::`` ends in ``:`` (the indented block after it is code in Markdown
  too).
- An attribute with no docstring takes the ``#:`` comment lines just above it as one.

Loaded by mkdocs.yml (``extensions:`` of the python handler).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:meth|class|attr|func|exc|data|obj):`~?([\w.]+)`")


def _target(obj: Any, name: str) -> str:
    """The full path of ``name`` as seen from ``obj``: a member of obj, of obj's class, of
    obj's module, or already a full path. A name a private module imports is looked up in
    the packages above it too, where it is documented (``taskwatch.testing._server``'s
    ``Fault`` is ``taskwatch.testing.Fault``)."""
    head = name.split(".", maxsplit=1)[0]
    scope, found = obj, None
    while scope is not None:
        if head in scope.members:
            if found is None:
                found = f"{scope.path}.{name}"
            imported = scope.members[head].is_alias
            if not (imported and scope.is_module and scope.name.startswith("_")):
                return f"{scope.path}.{name}"
        scope = scope.parent
    return name if found is None else found


def _comment_docstring(attr: Any) -> str | None:
    """The ``#:`` comment lines right above ``attr``'s assignment, as text."""
    if attr.lineno is None or attr.filepath is None:
        return None
    lines = attr.lines_collection[attr.filepath]
    comment: list[str] = []
    index = attr.lineno - 2
    while index >= 0 and lines[index].strip().startswith("#:"):
        comment.insert(0, lines[index].strip()[2:].strip())
        index -= 1
    return " ".join(comment) or None


class ReadRst(griffe.Extension):
    """Rewrites reStructuredText roles and ``::`` as Markdown in every docstring."""

    def on_attribute_instance(self, *, attr: Any, **kwargs: Any) -> None:
        if attr.docstring is None:
            text = _comment_docstring(attr)
            if text is not None:
                attr.docstring = griffe.Docstring(text, parent=attr)

    def on_object(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.is_alias or obj.docstring is None:
            return
        text = _ROLE.sub(
            lambda m: f"[`{m.group(1).split('.')[-1]}`][{_target(obj, m.group(1))}]",
            obj.docstring.value,
        )
        text = re.sub(r"^::$\n", "", text, flags=re.MULTILINE)
        text = re.sub(r"(\S)::$", r"\1:", text, flags=re.MULTILINE)
        obj.docstring.value = text
