"""Checkpoints in memory: the default storage, and the reference the others are tested against.

An `ArrayStorage` session keeps each checkpoint's leaves in a dict, by reference. That is safe
because states in this library are never modified in place: every step returns new arrays. A user
whose own code writes into arrays in place can ask for ``ArrayStorage(copy=True)``, which copies
arrays both on `put` (so later writes to the live state do not reach the checkpoint) and on `get`
(so writes to a restored state do not reach the checkpoint, which may be restored again).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ckpt_transform._checks import typechecked
from ckpt_transform.errors import CheckpointError
from ckpt_transform.storage.base import Storage, StorageSession

__all__ = ["ArraySession", "ArrayStorage", "leaf_nbytes"]


def leaf_nbytes(leaf: Any) -> int:
    """Bytes a leaf's value occupies, as counted in ``stats.checkpoint_bytes_peak``.

    A numpy array or scalar counts its ``nbytes``; a Python ``bool``, ``int`` or ``float`` counts
    8 (the size of the float64/int64 it stands for), a ``complex`` 16. Anything else counts 0: it
    is held, but its size is not the state's numeric payload.
    """
    if isinstance(leaf, (np.ndarray, np.generic)):
        return int(leaf.nbytes)
    if isinstance(leaf, complex):
        return 16
    if isinstance(leaf, (bool, int, float)):
        return 8
    return 0


class ArraySession(StorageSession):
    """The checkpoints of one run, held in memory (see `ArrayStorage`)."""

    def __init__(self, *, copy: bool = False) -> None:
        self._copy = copy
        self._slots: dict[int, tuple[int, list[Any]]] = {}
        self._nbytes: dict[int, int] = {}
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<ArraySession {state}: {len(self._slots)} slot(s) held, "
            f"{sum(self._nbytes.values())} bytes, copy={self._copy}>"
        )

    @property
    def closed(self) -> bool:
        """Whether `close` has been called."""
        return self._closed

    @property
    def nbytes(self) -> int:
        """Bytes held now, summed over the held slots (as `put` counted them)."""
        return sum(self._nbytes.values())

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise CheckpointError(
                f"cannot {what}: this ArrayStorage session is closed (its run has ended); "
                "open a new one with ArrayStorage().session()"
            )

    def put(self, slot: int, step: int, leaves: Sequence[Any], structure: str) -> int:
        """Keep ``leaves`` (the state at ``step``) in the free ``slot``; return bytes held."""
        if self._closed:
            self._check_open(f"put slot {slot}")
        held = self._slots.get(slot)
        if held is not None:
            raise CheckpointError(
                f"slot {slot} already holds the checkpoint of step {held[0]}; "
                f"delete it before storing step {step} there"
            )
        if self._copy:
            kept = [leaf.copy() if isinstance(leaf, np.ndarray) else leaf for leaf in leaves]
        else:
            kept = list(leaves)
        nbytes = leaf_nbytes(kept[0]) if len(kept) == 1 else sum(map(leaf_nbytes, kept))
        self._slots[slot] = (step, kept)
        self._nbytes[slot] = nbytes
        return nbytes

    def get(self, slot: int) -> tuple[int, list[Any]]:
        """Return ``(step, leaves)`` held in ``slot``."""
        if self._closed:
            self._check_open(f"get slot {slot}")
        held = self._slots.get(slot)
        if held is None:
            raise CheckpointError(
                f"slot {slot} holds no checkpoint (held: {sorted(self._slots)}); "
                "a restore must follow a store to the same slot"
            )
        step, leaves = held
        if self._copy:
            return step, [leaf.copy() if isinstance(leaf, np.ndarray) else leaf for leaf in leaves]
        return step, list(leaves)

    def delete(self, slot: int) -> None:
        """Free ``slot`` (drop the references it holds)."""
        if self._closed:
            self._check_open(f"delete slot {slot}")
        if self._slots.pop(slot, None) is None:
            raise CheckpointError(
                f"slot {slot} holds no checkpoint to delete (held: {sorted(self._slots)})"
            )
        del self._nbytes[slot]

    def close(self) -> None:
        """End the session (idempotent): drop every checkpoint."""
        self._slots.clear()
        self._nbytes.clear()
        self._closed = True


class ArrayStorage(Storage):
    """Keep checkpoints in memory (the default storage).

    Each checkpoint's leaves are kept by reference, without a copy: the library's states are
    never modified in place, so a stored array cannot change under it. `put` reports the bytes
    of the numeric leaves (numpy ``nbytes``; 8 for a Python ``bool``/``int``/``float``, 16 for
    a ``complex``). Any leaf is accepted.

    Parameters
    ----------
    copy
        Copy numpy arrays when they are stored and again when they are handed back. Only needed
        when your own code writes into state arrays in place (``x[i] = ...``, ``x += ...`` on a
        plain numpy array): without it such a write would change the stored checkpoint too.
        Costs one array copy per store and per restore.

    Examples
    --------
    >>> from ckpt_transform.storage.memory import ArrayStorage
    >>> with ArrayStorage().session() as s:
    ...     s.put(0, 5, [1.5, 2], "(x, n)")
    ...     s.get(0)
    16
    (5, [1.5, 2])
    """

    @typechecked
    def __init__(self, *, copy: bool = False) -> None:
        self.copy = copy

    def __repr__(self) -> str:
        return "ArrayStorage(copy=True)" if self.copy else "ArrayStorage()"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ArrayStorage):
            return NotImplemented
        return self.copy == other.copy

    def __hash__(self) -> int:
        return hash((ArrayStorage, self.copy))

    def session(self) -> ArraySession:
        """Open a fresh, empty session for one run of one loop."""
        return ArraySession(copy=self.copy)
