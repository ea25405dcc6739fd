"""Deterministic names for generated code.

Two kinds of names appear in generated source:

* machinery, always spelled with the reserved prefix ``_ckpt`` (which user code may not use, so
  they never clash): ``_ckpt`` (the run-time support module,
  `ckpt_transform.runtime.support`), ``_ckpt_scheme``, ``_ckpt_report``, ``_ckpt_state`` (the
  step's state argument), ``_ckpt_i`` (a while loop's iteration number), ``_ckpt_range``,
  ``_ckpt_scope``;
* names a reader should recognise, derived from the user's: ``sumheat_step`` and
  ``sumheat_cond`` from the function ``sumheat``, ``heat_Tnext`` for the field ``Tnext`` of the
  struct ``heat``, ``heat_fields`` for the fields of ``heat`` the loop only reads.

A `Namer` has seen every identifier of the function (and every global it reads); a derived name
that is taken gets the first free suffix ``_2``, ``_3``, ... No name depends on anything but the
source, so the same function always gives the same text.
"""

from __future__ import annotations

import keyword
from collections.abc import Iterable
from typing import Any

import gast

__all__ = ["MACHINERY", "RESERVED_PREFIX", "Namer", "identifiers"]

RESERVED_PREFIX = "_ckpt"

#: The machinery names, by role.
MACHINERY = {
    "support": "_ckpt",
    "scheme": "_ckpt_scheme",
    "report": "_ckpt_report",
    "state": "_ckpt_state",
    "iteration": "_ckpt_i",
    "range": "_ckpt_range",
    "scope": "_ckpt_scope",
}


def identifiers(node: Any) -> set[str]:
    """Every identifier bound or read anywhere in ``node`` (names, arguments, defs, imports)."""
    names: set[str] = set()
    for child in gast.walk(node):
        if isinstance(child, gast.Name):
            names.add(child.id)
        elif isinstance(child, (gast.FunctionDef, gast.AsyncFunctionDef, gast.ClassDef)):
            names.add(child.name)
        elif isinstance(child, gast.alias):
            names.add((child.asname or child.name).split(".")[0])
        elif isinstance(child, (gast.Global, gast.Nonlocal)):
            names.update(child.names)
        elif isinstance(child, gast.ExceptHandler) and child.name is not None:
            names.add(child.name.id if isinstance(child.name, gast.Name) else child.name)
    return names


class Namer:
    """Hands out names derived from the user's, never one already in use.

    Parameters
    ----------
    taken
        Every identifier the generated code must not shadow.
    """

    def __init__(self, taken: Iterable[str]) -> None:
        self._taken = set(taken)

    def derived(self, base: str) -> str:
        """``base`` itself when free, else ``base_2``, ``base_3``, ...; then reserve it."""
        candidate, k = base, 2
        while candidate in self._taken or keyword.iskeyword(candidate):
            candidate = f"{base}_{k}"
            k += 1
        self._taken.add(candidate)
        return candidate

    def step(self, function: str) -> str:
        return self.derived(f"{function}_step")

    def cond(self, function: str) -> str:
        return self.derived(f"{function}_cond")

    def field(self, struct: str, field: str) -> str:
        return self.derived(f"{struct}_{field}")

    def fields(self, struct: str) -> str:
        return self.derived(f"{struct}_fields")
