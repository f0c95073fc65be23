"""Frozen attrs instances built on every answer's path for a fraction of their constructor's cost.

A frozen attrs class's ``__init__`` sets each field through ``object.__setattr__`` (the class's
own ``__setattr__`` refuses): a bound slot wrapper called with a fresh argument tuple, about
1,200 machine instructions a field on CPython 3.11, so that a Task and its TaskStatus (16
fields) cost more than decoding the whole body with orjson. ``filling_class(cls)`` gives a
subclass that adds no field and allows assignment: an instance of it is filled in with plain
attribute stores, then becomes a ``cls`` by ``__class__`` assignment, which Python allows
between a class and a subclass that adds no slots (the layouts are the same). The result is a
``cls`` like any other: the same type, frozen, equal to what the constructor builds.

This holds only for classes whose construction is nothing but storing fields (no validators,
converters, ``__attrs_post_init__`` or ``on_setattr`` hooks): ``filling_class`` checks that,
and that a filled instance is what the constructor builds, and returns None otherwise (the
caller then uses the constructor).
"""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["filling_class", "new_filling"]

# An empty instance of a filling class, to fill in: ``new_filling(filling_class(cls))``. (The
# bare ``object.__new__``, bound to a module-level name so that the hot paths look it up once.)
new_filling = object.__new__


def filling_class(cls: type[Any]) -> type[Any] | None:
    """A subclass of the frozen, slotted attrs class ``cls`` whose instances take attribute
    stores and become a ``cls`` by ``__class__`` assignment; None when that would not build
    exactly what ``cls(...)`` builds."""
    if not attrs.has(cls) or hasattr(cls, "__attrs_post_init__") or "__slots__" not in vars(cls):
        return None
    fields = attrs.fields(cls)
    if any(f.validator is not None or f.converter is not None or not f.init for f in fields):
        return None
    filling = type(
        f"_{cls.__name__}Filling",
        (cls,),
        {
            "__slots__": (),
            # Both: they share one C slot, and a Python-level __delattr__ inherited from
            # ``cls`` would leave the slow generic path in place for stores too.
            "__setattr__": object.__setattr__,
            "__delattr__": object.__delattr__,
            "__module__": cls.__module__,
        },
    )
    values = [object() for _ in fields]
    try:
        probe: Any = new_filling(filling)
        for field, value in zip(fields, values, strict=True):
            setattr(probe, field.name, value)
        probe.__class__ = cls
        frozen = False
        try:
            setattr(probe, fields[0].name, None)
        except attrs.exceptions.FrozenInstanceError:
            frozen = True
        built = cls(*values)
    except (TypeError, AttributeError):  # a layout Python does not let change class
        return None
    same = type(probe) is cls and all(
        getattr(probe, f.name) is getattr(built, f.name) for f in fields
    )
    return filling if same and frozen else None
