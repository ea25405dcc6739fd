"""Flattening a loop state (tuple, list, dict, dataclass, nested) into leaves and back.

A `TreeDef` records the containers; the leaves are whatever is not a container. Traced
containers (autograd boxes of a tuple, list, dict or dataclass) are opened with traced indexing,
so each leaf keeps its own gradient path. The driver differentiates a leaf when it is a float,
a complex number or a float/complex array, and carries every other leaf (ints, bools, integer
arrays, functions, None, ...) unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as onp

from ckpt_transform.backends.autograd import _copy_with, getval, isbox

__all__ = ["TreeDef", "flatten", "leaf_paths", "unflatten"]

_LEAF = None  # the TreeDef of a leaf
_PLAIN_LEAVES = frozenset({float, complex, int, bool, onp.ndarray, onp.float64})


class TreeDef(tuple):
    """``(kind, type, keys, children)``; equal TreeDefs mean the same container structure."""

    __slots__ = ()

    def __repr__(self) -> str:
        return describe(self)


def flatten(x: Any) -> tuple[list[Any], Any]:
    """Return ``(leaves, treedef)`` of ``x``; leaves in a fixed, documented order."""
    if type(x) in _PLAIN_LEAVES:  # the common one-array or one-float state, at no cost
        return [x], _LEAF
    leaves: list[Any] = []
    return leaves, _flatten(x, leaves)


def _flatten(x: Any, leaves: list[Any]) -> Any:
    value = getval(x) if isbox(x) else x
    t = type(value)
    if t in _PLAIN_LEAVES:
        leaves.append(x)
        return _LEAF
    if t is tuple or t is list:
        return TreeDef(
            ("seq", t, len(value), tuple(_flatten(x[i], leaves) for i in range(len(value))))
        )
    if t is dict:
        keys = tuple(value)
        return TreeDef(("dict", t, keys, tuple(_flatten(x[k], leaves) for k in keys)))
    if isinstance(value, tuple) and hasattr(t, "_fields"):  # a namedtuple
        return TreeDef(
            ("namedtuple", t, t._fields, tuple(_flatten(x[i], leaves) for i in range(len(value))))
        )
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = tuple(f.name for f in dataclasses.fields(value))
        # Keep the instance (unboxed) as a template: attributes outside the fields come along.
        return TreeDef(
            (
                "dataclass",
                t,
                names,
                tuple(_flatten(getattr(x, n), leaves) for n in names),
                _Template(value),
            )
        )
    leaves.append(x)
    return _LEAF


class _Template:
    """Holds a dataclass instance without taking part in TreeDef equality."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Template)

    def __hash__(self) -> int:
        return 0


def unflatten(treedef: Any, leaves: Sequence[Any]) -> Any:
    """Rebuild the structure of ``treedef`` around ``leaves``."""
    if treedef is _LEAF and len(leaves) == 1:
        return leaves[0]
    it = iter(leaves)
    out = _unflatten(treedef, it)
    rest = sum(1 for _ in it)
    if rest:
        raise ValueError(f"{rest} leaves left over when rebuilding {describe(treedef)}")
    return out


def _unflatten(treedef: Any, it: Any) -> Any:
    if treedef is _LEAF:
        return next(it)
    kind, t, keys, children = treedef[:4]
    values = [_unflatten(c, it) for c in children]
    if kind == "seq":
        return t(values)
    if kind == "dict":
        return dict(zip(keys, values))
    if kind == "namedtuple":
        return t(*values)
    return _copy_with(treedef[4].value, dict(zip(keys, values)))


def leaf_paths(treedef: Any, root: str = "state") -> list[str]:
    """Readable paths of the leaves, in leaf order (``state[0]``, ``state['x']``, ``state.T``)."""
    out: list[str] = []

    def walk(td: Any, path: str) -> None:
        if td is _LEAF:
            out.append(path)
            return
        kind, _, keys, children = td[:4]
        if kind == "seq":
            for i, c in enumerate(children):
                walk(c, f"{path}[{i}]")
        elif kind == "dict":
            for k, c in zip(keys, children):
                walk(c, f"{path}[{k!r}]")
        else:
            for k, c in zip(keys, children):
                walk(c, f"{path}.{k}")

    walk(treedef, root)
    return out


def describe(treedef: Any) -> str:
    """A short structure string, e.g. ``(array, {'x': array, 'n': array})``."""
    if treedef is _LEAF:
        return "*"
    kind, t, keys, children = treedef[:4]
    inner = [describe(c) for c in children]
    if kind == "seq":
        return ("(" if t is tuple else "[") + ", ".join(inner) + (")" if t is tuple else "]")
    if kind == "dict":
        return "{" + ", ".join(f"{k!r}: {v}" for k, v in zip(keys, inner)) + "}"
    return f"{t.__name__}(" + ", ".join(f"{k}={v}" for k, v in zip(keys, inner)) + ")"
