"""Whether a name taken from an element of an array can be read after the array is written.

``a = x[i]`` gives a number when ``x`` has one axis and a view, a row sharing ``x``'s memory,
when it has more. In the plain loop a later ``x[i] = v`` (or ``x += v``) then changes ``a`` as
well; the rewritten update builds a new array for ``x`` and leaves ``a`` alone. The source has
no shapes, so the analysis cannot tell the two apart. It asks this module whether ``a`` can be
read after such a write at all; when it can, the generated code checks the shape as it runs
(``_ckpt.not_a_view``) and refuses a row.

The answer errs on the side of "can": positions in source order stand for execution order, and
a name made under a condition, or in an inner loop that the read is outside of (it may run zero
times), counts as read late whatever the read's position.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import gast

__all__ = ["Placed", "placed", "read_after_write"]

_NESTED = (gast.FunctionDef, gast.AsyncFunctionDef, gast.ClassDef)
_LOOPS = (gast.For, gast.AsyncFor, gast.While)
_BLOCKS = ("body", "orelse", "finalbody", "handlers", "cases")


@dataclass(frozen=True)
class Placed:
    """A statement of the loop body with what encloses it inside the body."""

    stmt: Any
    loops: frozenset[int]  # ids of the loops (inside the body) that contain it
    conditional: bool  # inside an `if`, a `match`, an `except`, `else` or `finally` block

    @property
    def position(self) -> tuple[int, int]:
        return (self.stmt.lineno, self.stmt.col_offset)


def placed(body: list[Any]) -> list[Placed]:
    """Every statement of ``body`` at any depth, in source order, not entering nested defs."""
    return list(_placed(body, frozenset(), False))


def _placed(stmts: list[Any], loops: frozenset[int], conditional: bool) -> Iterator[Placed]:
    for stmt in stmts:
        yield Placed(stmt, loops, conditional)
        if isinstance(stmt, _NESTED):
            continue
        inner = loops | {id(stmt)} if isinstance(stmt, _LOOPS) else loops
        # (an inner loop's body may run zero times too: `read_after_write` counts a read outside
        # the loop that made the name as late)
        body_conditional = conditional or isinstance(stmt, gast.If)
        yield from _placed(getattr(stmt, "body", None) or [], inner, body_conditional)
        for field in ("orelse", "finalbody"):
            yield from _placed(getattr(stmt, field, None) or [], loops, True)
        for handler in getattr(stmt, "handlers", None) or []:
            yield from _placed(handler.body, loops, True)
        for case in getattr(stmt, "cases", None) or []:
            yield from _placed(case.body, loops, True)


def _own_reads(stmt: Any) -> set[str]:
    """Names the statement's own expressions read (not those of the statements inside it)."""
    names: set[str] = set()
    for field in stmt._fields:
        if field in _BLOCKS:
            continue
        value = getattr(stmt, field, None)
        for part in value if isinstance(value, list) else [value]:
            if isinstance(part, gast.AST):
                names.update(
                    n.id
                    for n in gast.walk(part)
                    if isinstance(n, gast.Name) and isinstance(n.ctx, gast.Load)
                )
    return names


def read_after_write(
    alias: Any,
    name: str,
    body: list[Placed],
    writes: Callable[[Any], bool],
    read_outside: bool,
) -> bool:
    """True when ``name``, bound by the statement ``alias`` of the body, may be read after a
    statement for which ``writes`` is true has run (and before ``alias`` runs again).

    ``read_outside``: the name is read after the loop or by a while loop's condition.
    """
    where = {id(p.stmt): p for p in body}
    made = where.get(id(alias))
    if made is None:
        return True
    written = [p for p in body if writes(p.stmt)]
    readers = [p for p in body if name in _own_reads(p.stmt)]
    if not readers and not read_outside:
        return False
    if made.conditional:
        return True  # a read may see a row made in an earlier iteration, before some write
    if read_outside and (made.loops or any(w.position > made.position for w in written)):
        return True
    for read in readers:
        if read.position <= made.position or not made.loops <= read.loops:
            return True  # the value of an earlier iteration (or of an inner loop's last one)
        repeated = read.loops - made.loops  # loops that run the read again without the alias
        for w in written:
            if w.stmt is read.stmt:
                continue  # a statement reads before it writes
            if made.position < w.position < read.position or w.loops & repeated:
                return True
    return False
