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

import dataclasses
import inspect
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

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
    "action_maker",
]

_A = TypeVar("_A")

#: The storage levels a slot action may name, fastest first.
LEVELS = ("memory", "disk")

# Construction speed. A scheme yields hundreds of thousands of actions for a long loop (593 000
# for Revolve(100) over 1e5 steps), and making a slotted object costs about four times making a
# tuple. So each action *is* a tuple of its field values, behind the interface of a frozen,
# keyword-only dataclass: `dataclasses.fields`, keyword construction (positional construction is
# a TypeError), `FrozenInstanceError` on assignment, `__repr__`, and equality and hashing by kind
# and fields (an action never equals a plain tuple or an action of another kind, and actions are
# not ordered). Fields are read through the C item getters that namedtuples use.
#
# The classes keep tuple's own C constructor as their ``__new__``: a Python ``__new__`` would put
# a Python call into every construction, the fast ones included. The keyword call, the public
# one, is their type's ``__call__`` (`_SpanType`, ...), which checks the fields. A scheme
# that builds many actions makes them without it, from the field values in declaration order,
# every one given: `action_maker` (``maker((n0, n1))``, tuple's constructor reached through
# `type.__call__`, the cheaper of the two) or `new_action` (``new_action(Advance, (n0, n1))``).
_ITEMS = namedtuple("_ITEMS", "i0 i1 i2")
_GET = (_ITEMS.i0, _ITEMS.i1, _ITEMS.i2)

#: ``new_action(Cls, (field values, in order))``: an action without the keyword call.
new_action = tuple.__new__


def action_maker(cls: type[_A]) -> Callable[[tuple], _A]:
    """``cls``'s constructor from the field values, in order: ``action_maker(Advance)((3, 7))``.

    The very object ``Advance(n0=3, n1=7)`` makes, without the keyword call and its checks (a
    store's level is taken as given); about a quarter cheaper per call than `new_action`, and
    what a scheme's hot loop maps over tuples of field values.
    """
    if not isinstance(cls, _ActionType) or cls.kind == "action":  # type: ignore[attr-defined]
        raise TypeError(f"action_maker needs an action class (Advance, Store, ...), got {cls!r}")
    return type.__call__.__get__(cls)  # type: ignore[attr-defined, no-any-return]


class _ActionType(type):
    """The type of the action classes; each kind of fields has its own, whose ``__call__`` is
    the keyword call (one Python frame, as a ``__new__`` would be). This one, `Action`'s."""

    def __call__(cls, *args: Any, **fields: Any) -> Any:
        raise TypeError(
            f"{cls.__name__} is not an action of its own; make an Advance, Record, Reverse, "
            f"Store, Restore, Free or EndForward"
        )


_NOT_GIVEN: Any = object()  # a field left out of a keyword call (no field has a default but level)


def _bad_call(cls: type, args: tuple, fields: dict[str, Any]) -> TypeError:
    """The error of a keyword call with positional arguments or a field left out."""
    names = ", ".join(f"{name}=..." for name in inspect.signature(cls).parameters)
    if args:
        got = f"{len(args)} positional argument(s)"
    else:
        missing = [name for name, value in fields.items() if value is _NOT_GIVEN]
        got = f"no {' and no '.join(missing)}"
    return TypeError(
        f"{cls.__name__} takes its fields by keyword ({cls.__name__}({names})), got {got}"
    )


class _SpanType(_ActionType):
    def __call__(cls, *args: Any, n0: int = _NOT_GIVEN, n1: int | None = _NOT_GIVEN) -> Any:
        if args or n0 is _NOT_GIVEN or n1 is _NOT_GIVEN:
            raise _bad_call(cls, args, {"n0": n0, "n1": n1})
        return new_action(cls, (n0, n1))


class _SlotType(_ActionType):
    def __call__(
        cls, *args: Any, n: int = _NOT_GIVEN, slot: int = _NOT_GIVEN, level: str = "memory"
    ) -> Any:
        if args or n is _NOT_GIVEN or slot is _NOT_GIVEN:
            raise _bad_call(cls, args, {"n": n, "slot": slot})
        if level != "memory" and level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
        return new_action(cls, (n, slot, level))


class _EndType(_ActionType):
    def __call__(cls, *args: Any, n: int = _NOT_GIVEN) -> Any:
        if args or n is _NOT_GIVEN:
            raise _bad_call(cls, args, {"n": n})
        return new_action(cls, (n,))


def _declared(cls: type[_A], **defaults: Any) -> type[_A]:
    """Give ``cls``'s own fields the defaults and keyword-only flag they are declared with.

    The class attributes behind the fields are item getters, which `dataclass` takes for
    defaults; `dataclasses.fields` should show the declared ones instead (``level="memory"``,
    no default elsewhere).
    """
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        f.default = defaults.get(f.name, dataclasses.MISSING)
        f.kw_only = True
    # what `inspect.signature` shows for the class: the fields of its keyword call
    call = inspect.signature(type(cls).__call__)
    keywords = [
        p.replace(default=p.empty) if p.default is _NOT_GIVEN else p
        for p in call.parameters.values()
        if p.kind is p.KEYWORD_ONLY
    ]
    cls.__signature__ = call.replace(parameters=keywords)  # type: ignore[attr-defined]
    return cls


@dataclass(frozen=True, init=False, eq=False)
class Action(tuple, metaclass=_ActionType):
    """Base of every action; ``kind`` is a short lower-case name (``"advance"``, ...)."""

    __slots__ = ()
    kind: ClassVar[str] = "action"

    def __eq__(self, other: object) -> bool:
        if type(other) is type(self):
            return tuple.__eq__(self, other)  # type: ignore[arg-type]
        return False if isinstance(other, tuple) else NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = tuple.__hash__  # the hash of the field values, as a frozen dataclass has

    def _unordered(self, other: object) -> bool:
        return NotImplemented

    __lt__ = __le__ = __gt__ = __ge__ = _unordered

    def __getnewargs__(self) -> tuple[tuple]:  # copy and pickle through tuple's constructor
        return (tuple(self),)

    @property
    def steps(self) -> range:
        """The step numbers this action touches (empty for slot bookkeeping)."""
        return range(0)


@dataclass(frozen=True, init=False, eq=False)
class _Span(Action, metaclass=_SpanType):
    __slots__ = ()
    n0: int = _GET[0]  # type: ignore[assignment]
    n1: int | None = _GET[1]  # type: ignore[assignment]

    @property
    def steps(self) -> range:
        if self.n1 is None:
            raise ValueError(f"{self.kind} [{self.n0}, ...) is open-ended: its steps are not known")
        return range(self.n0, self.n1)

    def _span(self) -> str:
        end = "end of loop" if self.n1 is None else str(self.n1)
        return f"[{self.n0}, {end})"


@dataclass(frozen=True, init=False, eq=False)
class Advance(_Span):
    """Run steps ``n0 .. n1-1`` from the current state at n0, passively (no tape)."""

    __slots__ = ()
    kind: ClassVar[str] = "advance"

    def __str__(self) -> str:
        return f"advance  {self._span()}"


@dataclass(frozen=True, init=False, eq=False)
class Record(_Span):
    """Run steps ``n0 .. n1-1`` with a tape and hold the tape for `Reverse`."""

    __slots__ = ()
    kind: ClassVar[str] = "record"

    def __str__(self) -> str:
        return f"record   {self._span()}"


@dataclass(frozen=True, init=False, eq=False)
class Reverse(_Span):
    """Pull the adjoint back through the held tape of ``[n0, n1)``, then drop that tape."""

    __slots__ = ()
    kind: ClassVar[str] = "reverse"
    n1: int = _GET[1]  # type: ignore[assignment]

    def __str__(self) -> str:
        return f"reverse  {self._span()}"


@dataclass(frozen=True, init=False, eq=False, repr=False)
class _Slot(Action, metaclass=_SlotType):
    __slots__ = ()
    n: int = _GET[0]  # type: ignore[assignment]
    slot: int = _GET[1]  # type: ignore[assignment]
    level: str = _GET[2]  # type: ignore[assignment]  # "memory" unless given

    def __repr__(self) -> str:  # the level only when it is not the default
        extra = "" if self.level == "memory" else f", level={self.level!r}"
        return f"{type(self).__qualname__}(n={self.n!r}, slot={self.slot!r}{extra})"

    @property
    def steps(self) -> range:
        return range(self.n, self.n + 1)

    def _slot_name(self) -> str:
        return f"slot {self.slot}" if self.level == "memory" else f"{self.level} slot {self.slot}"


@dataclass(frozen=True, init=False, eq=False, repr=False)
class Store(_Slot):
    """Keep a copy of the current state (at n) in checkpoint slot ``slot`` of ``level``."""

    __slots__ = ()
    kind: ClassVar[str] = "store"

    def __str__(self) -> str:
        return f"store    state {self.n} -> {self._slot_name()}"


@dataclass(frozen=True, init=False, eq=False, repr=False)
class Restore(_Slot):
    """Make the checkpoint of the state at n, held in ``slot`` of ``level``, the current state."""

    __slots__ = ()
    kind: ClassVar[str] = "restore"

    def __str__(self) -> str:
        return f"restore  state {self.n} <- {self._slot_name()}"


@dataclass(frozen=True, init=False, eq=False, repr=False)
class Free(_Slot):
    """Drop the checkpoint of the state at n held in ``slot`` of ``level``."""

    __slots__ = ()
    kind: ClassVar[str] = "free"

    def __str__(self) -> str:
        return f"free     {self._slot_name()} (state {self.n})"


@dataclass(frozen=True, init=False, eq=False)
class EndForward(Action, metaclass=_EndType):
    """Marker (only in `Scheme.schedule`): the primal run ends with the state at n."""

    __slots__ = ()
    kind: ClassVar[str] = "end_forward"
    n: int = _GET[0]  # type: ignore[assignment]

    @property
    def steps(self) -> range:
        return range(0)

    def __str__(self) -> str:
        return f"-- primal run ends at state {self.n}; reverse sweep --"


for _cls in (_Span, Reverse, EndForward):
    _declared(_cls)
_declared(_Slot, level="memory")
del _cls

# Each kind's positional maker (`action_maker`), made once for the schemes' hot loops.
advance_of, record_of, reverse_of = (action_maker(c) for c in (Advance, Record, Reverse))
store_of, restore_of, free_of = (action_maker(c) for c in (Store, Restore, Free))
