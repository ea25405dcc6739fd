"""The action vocabulary: what a scheme plans and the driver executes.

A scheme never touches a state; it yields these small frozen objects and the one driver
(`ckpt_transform.runtime.driver`) carries them out. Step numbers follow one convention
everywhere: *step k* maps the state after k iterations (``x_k``) to ``x_{k+1}``, and a run of
steps is the half-open range ``[n0, n1)``. "The state at n" is ``x_n``; the loop's input is the
state at 0 and its output the state at T (T = the number of iterations).

The driver keeps one *current state*. Reading the actions aloud:

* `Advance(n0, n1)`: the current state is at n0; run steps n0..n1-1 without a tape.
* `Record(n0, n1)`: the current state is at n0; run steps n0..n1-1 with a tape, and hold that tape
  (one segment) for a later `Reverse(n0, n1)`.
* `Reverse(n0, n1)`: pull the adjoint of the state at n1 back through the held tape of segment
  ``[n0, n1)`` to an adjoint of the state at n0, then drop the tape. Reverses come in strictly
  decreasing order and together cover every step exactly once.
* `Store(n, slot)`: the current state is at n; keep a copy in checkpoint slot ``slot``.
* `Restore(n, slot)`: make the checkpoint of the state at n held in ``slot`` the current state.
* `Free(n, slot)`: drop the checkpoint of the state at n held in ``slot``.
* A slot lives in a storage *level*: ``level="memory"`` (the default, every single-level scheme)
  or ``level="disk"`` (`Multilevel`); slot numbers are counted per level, and ``str(action)``
  names the level when it is not memory.
* `EndForward(n)`: a marker in `Scheme.schedule` only: the primal run ends here with the state at
  n, the loop's output; the reverse sweep follows.

In a plan for a loop of unknown length (a ``while`` loop), `Advance` and `Record` may have
``n1=None``: run until the loop ends. The driver may also cut any forward `Advance`/`Record` short
when the loop ends inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, TypeVar

__all__ = [
    "LEVELS",
    "Action",
    "Advance",
    "EndForward",
    "Free",
    "Record",
    "Restore",
    "Reverse",
    "Store",
]

_A = TypeVar("_A", bound="Action")

#: The storage levels a slot action may name, fastest first.
LEVELS = ("memory", "disk")

# Construction speed. A scheme yields hundreds of thousands of actions for a long loop, and the
# `__init__` that `dataclass(frozen=True)` writes sets each field through `object.__setattr__`,
# which makes construction about 1.5x slower than it need be. The classes below are still
# frozen, slotted, keyword-only dataclasses (same fields, `__eq__`, `__hash__`, `__repr__`); only
# their `__init__` is written here, setting the slots through their member descriptors (which
# bypass the frozen `__setattr__`). Each concrete class gets its own `__init__` bound to its own
# descriptors: on Python 3.10 a slotted dataclass declares again the slots of its base's fields.


def _span_init(cls: type[_A]) -> type[_A]:
    set_n0, set_n1 = cls.n0.__set__, cls.n1.__set__  # type: ignore[attr-defined]

    def __init__(self: _A, *, n0: int, n1: int | None) -> None:
        set_n0(self, n0)
        set_n1(self, n1)

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = __init__  # type: ignore[method-assign]
    return cls


def _slot_init(cls: type[_A]) -> type[_A]:
    set_n, set_slot = cls.n.__set__, cls.slot.__set__  # type: ignore[attr-defined]
    set_level = cls.level.__set__  # type: ignore[attr-defined]

    def __init__(self: _A, *, n: int, slot: int, level: str = "memory") -> None:
        set_n(self, n)
        set_slot(self, slot)
        if level != "memory":
            if level not in LEVELS:
                raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
        set_level(self, level)

    def __repr__(self: _A) -> str:  # the level only when it is not the default
        extra = "" if self.level == "memory" else f", level={self.level!r}"  # type: ignore[attr-defined]
        return f"{cls.__qualname__}(n={self.n!r}, slot={self.slot!r}{extra})"  # type: ignore[attr-defined]

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    __repr__.__qualname__ = f"{cls.__qualname__}.__repr__"
    cls.__init__ = __init__  # type: ignore[method-assign]
    cls.__repr__ = __repr__  # type: ignore[method-assign]
    return cls


@dataclass(frozen=True, slots=True, kw_only=True)
class Action:
    """Base of every action; ``kind`` is a short lower-case name (``"advance"``, ...)."""

    kind: ClassVar[str] = "action"

    @property
    def steps(self) -> range:
        """The step numbers this action touches (empty for slot bookkeeping)."""
        return range(0)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Span(Action):
    n0: int
    n1: int | None

    @property
    def steps(self) -> range:
        if self.n1 is None:
            raise ValueError(f"{self.kind} [{self.n0}, ...) is open-ended: its steps are not known")
        return range(self.n0, self.n1)

    def _span(self) -> str:
        end = "end of loop" if self.n1 is None else str(self.n1)
        return f"[{self.n0}, {end})"


@_span_init
@dataclass(frozen=True, slots=True, kw_only=True, init=False)
class Advance(_Span):
    """Run steps ``n0 .. n1-1`` from the current state at n0, passively (no tape)."""

    kind: ClassVar[str] = "advance"

    def __str__(self) -> str:
        return f"advance  {self._span()}"


@_span_init
@dataclass(frozen=True, slots=True, kw_only=True, init=False)
class Record(_Span):
    """Run steps ``n0 .. n1-1`` with a tape and hold the tape for `Reverse`."""

    kind: ClassVar[str] = "record"

    def __str__(self) -> str:
        return f"record   {self._span()}"


@_span_init
@dataclass(frozen=True, slots=True, kw_only=True, init=False)
class Reverse(_Span):
    """Pull the adjoint back through the held tape of ``[n0, n1)``, then drop that tape."""

    kind: ClassVar[str] = "reverse"
    n1: int

    def __str__(self) -> str:
        return f"reverse  {self._span()}"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Slot(Action):
    n: int
    slot: int
    level: str = "memory"

    @property
    def steps(self) -> range:
        return range(self.n, self.n + 1)

    def _slot_name(self) -> str:
        return f"slot {self.slot}" if self.level == "memory" else f"{self.level} slot {self.slot}"


@_slot_init
@dataclass(frozen=True, slots=True, kw_only=True, init=False)
class Store(_Slot):
    """Keep a copy of the current state (at n) in checkpoint slot ``slot`` of ``level``."""

    kind: ClassVar[str] = "store"

    def __str__(self) -> str:
        return f"store    state {self.n} -> {self._slot_name()}"


@_slot_init
@dataclass(frozen=True, slots=True, kw_only=True, init=False)
class Restore(_Slot):
    """Make the checkpoint of the state at n, held in ``slot`` of ``level``, the current state."""

    kind: ClassVar[str] = "restore"

    def __str__(self) -> str:
        return f"restore  state {self.n} <- {self._slot_name()}"


@_slot_init
@dataclass(frozen=True, slots=True, kw_only=True, init=False)
class Free(_Slot):
    """Drop the checkpoint of the state at n held in ``slot`` of ``level``."""

    kind: ClassVar[str] = "free"

    def __str__(self) -> str:
        return f"free     {self._slot_name()} (state {self.n})"


@dataclass(frozen=True, slots=True, kw_only=True)
class EndForward(Action):
    """Marker (only in `Scheme.schedule`): the primal run ends with the state at n."""

    kind: ClassVar[str] = "end_forward"
    n: int

    @property
    def steps(self) -> range:
        return range(0)

    def __str__(self) -> str:
        return f"-- primal run ends at state {self.n}; reverse sweep --"
