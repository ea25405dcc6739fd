"""Where a stage's inputs wait for the reverse sweep: in memory, or in a storage session.

`_InputKeeper` holds the inputs (and, for a user VJP, the output) of each call of one stage until
its adjoint has run; `_split`/`_join` take nested inputs apart into storable leaves and the other
values (kept in memory), and put them back together.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import weakref
from typing import Any

import numpy as np

from ckpt_transform.backends.autograd import dataclass_replace
from ckpt_transform.errors import CheckpointError
from ckpt_transform.storage.base import Storage, StorageSession

__all__ = ["_InputKeeper"]


def _is_dataclass(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


class _InputKeeper:
    """Holds the inputs of a stage's calls, in memory or in a storage session.

    With a `Storage`, one session is opened when the first call's inputs arrive and closed when
    the last held inputs are freed, so a chain of calls shares one file and none is left behind.
    """

    def __init__(self, storage: Storage | None, name: str) -> None:
        self.storage = storage
        self.name = name
        self._lock = threading.Lock()
        self._session: StorageSession | None = None
        self._live = 0
        self._slots = itertools.count()
        self._calls = itertools.count()
        self._aborted: weakref.WeakSet[StorageSession] = weakref.WeakSet()

    def keep(self, args: tuple[Any, ...], ans: Any, with_ans: bool, boxed: bool) -> _Handle:
        """Keep a call's inputs (and its output ``ans`` when ``with_ans``) until released."""
        kept = (args, ans) if with_ans else (args,)
        if self.storage is None or boxed:
            return _MemoryHandle(kept, self.name)
        statics: list[Any] = []
        leaves: list[Any] = []
        tree = _split(kept, leaves, statics)
        structure = f"stage {self.name}: inputs {_describe(tree[1][0])}"
        if with_ans:
            structure += f", output {_describe(tree[1][1])}"
        with self._lock:
            if self._session is None:
                self._session = self.storage.session()
            session = self._session
            slot = next(self._slots)
            self._live += 1
        try:
            session.put(slot, next(self._calls), leaves, structure)
        except BaseException:
            self._drop(session, slot, stored=False)
            raise
        return _StorageHandle(self, session, slot, tree, statics)

    def abort(self, session: StorageSession | None = None) -> None:
        """Close ``session`` (default: the open one) on an error's way out, so its file and
        thread go before the error reaches the caller; the inputs it held cannot be restored."""
        with self._lock:
            session = session or self._session
            if session is None or session in self._aborted:
                return
            if self._session is session:
                self._session, self._live = None, 0
            self._aborted.add(session)
        try:
            session.close()
        except CheckpointError:
            pass  # the error on its way out says more

    def _drop(self, session: StorageSession, slot: int, *, stored: bool = True) -> None:
        with self._lock:
            if session in self._aborted:
                return  # closed with everything it held
            self._live -= 1
            last = self._live == 0 and self._session is session
            if last:
                self._session = None
        try:
            if stored:
                session.delete(slot)
        finally:
            if last:
                session.close()


class _Handle:
    """A call's kept values: `restore` gives ``(args, ans)`` (``ans`` None unless kept)."""

    def restore(self) -> tuple[tuple[Any, ...], Any]:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """Drop what the kept values hold outside memory, after an error."""


_FREED = (
    "the inputs of stage {name} were freed after its first reverse sweep, and the same "
    "recorded computation is being pulled back again (autograd.jacobian does that). Create the "
    "stage with checkpoint_stage(..., keep_inputs=True) to keep them until the computation is "
    "dropped."
)


class _MemoryHandle(_Handle):
    def __init__(self, kept: tuple[Any, ...], name: str) -> None:
        self._kept: tuple[Any, ...] | None = kept
        self._name = name

    def restore(self):
        if self._kept is None:
            raise CheckpointError(_FREED.format(name=self._name))
        return self._kept[0], self._kept[1] if len(self._kept) == 2 else None

    def release(self) -> None:
        self._kept = None


class _StorageHandle(_Handle):
    def __init__(self, keeper, session, slot, tree, statics) -> None:
        self._keeper = keeper
        self._session = session
        self._slot: int | None = slot
        self._tree = tree
        self._statics = statics

    def restore(self):
        if self._slot is None:
            raise CheckpointError(_FREED.format(name=self._keeper.name))
        if self._session in self._keeper._aborted:
            raise CheckpointError(
                f"the inputs of stage {self._keeper.name} were dropped when a traced call or an "
                "adjoint of it failed (its storage is closed at once, so that no file is left "
                "behind); compute the derivative again"
            )
        _, leaves = self._session.get(self._slot)
        kept = _join(self._tree, iter(leaves), iter(self._statics))
        return kept[0], kept[1] if len(kept) == 2 else None

    def release(self) -> None:
        slot, self._slot = self._slot, None
        if slot is not None:
            self._keeper._drop(self._session, slot)

    def abort(self) -> None:
        self._keeper.abort(self._session)


def _storable(value: Any) -> bool:
    if type(value) in (float, int):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "iufc"
    return isinstance(value, np.number)


def _split(value: Any, leaves: list, statics: list) -> Any:
    """Split nested inputs into storable leaves and other values kept in memory.

    A dataclass is kept as a copy whose fields are emptied, so its arrays live only in storage.
    """
    t = type(value)
    if t in (tuple, list):
        return (t, [_split(v, leaves, statics) for v in value])
    if t is dict:
        return (dict, [(k, _split(v, leaves, statics)) for k, v in value.items()])
    if isinstance(value, tuple) and hasattr(t, "_fields"):  # a namedtuple
        return ("namedtuple", t, [_split(v, leaves, statics) for v in value])
    if _is_dataclass(value):
        names = [f.name for f in dataclasses.fields(value)]
        empty = dataclass_replace(value, **dict.fromkeys(names))
        return (
            "dataclass",
            empty,
            [(n, _split(getattr(value, n), leaves, statics)) for n in names],
        )
    if _storable(value):
        leaves.append(value)
        return ("leaf",)
    statics.append(value)
    return ("static",)


def _join(tree: Any, leaves, statics) -> Any:
    kind = tree[0]
    if kind == "leaf":
        return next(leaves)
    if kind == "static":
        return next(statics)
    if kind is dict:
        return {k: _join(child, leaves, statics) for k, child in tree[1]}
    if kind == "namedtuple":
        return tree[1](*(_join(child, leaves, statics) for child in tree[2]))
    if kind == "dataclass":
        fields = {n: _join(child, leaves, statics) for n, child in tree[2]}
        return dataclass_replace(tree[1], **fields)
    return kind(_join(child, leaves, statics) for child in tree[1])


def _describe(tree: Any) -> str:
    kind = tree[0]
    if kind in ("leaf", "static"):
        return kind
    if kind is dict:
        return "{" + ", ".join(f"{k!r}: {_describe(c)}" for k, c in tree[1]) + "}"
    if kind == "namedtuple":
        return f"{tree[1].__name__}(" + ", ".join(_describe(c) for c in tree[2]) + ")"
    if kind == "dataclass":
        inner = ", ".join(f"{n}={_describe(c)}" for n, c in tree[2])
        return f"{type(tree[1]).__name__}({inner})"
    inner = ", ".join(_describe(c) for c in tree[1])
    if kind is tuple:
        return f"({inner},)" if len(tree[1]) == 1 else f"({inner})"
    return f"[{inner}]"
