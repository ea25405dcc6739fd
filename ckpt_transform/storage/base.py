"""Where checkpoints live: one small interface, knowing nothing of schemes.

A `Storage` is the user's choice (``ArrayStorage()``, ``HDF5Storage("run.h5")``); for each run of
a loop the driver opens a `StorageSession` with `Storage.session`, puts, gets and deletes
checkpoints by integer slot, and closes the session when the run ends (after the reverse sweep,
or when the run is dropped without one). A checkpoint is a flat list of *leaves* (numpy arrays,
Python/numpy scalars) plus a short structure description (a string, for people reading an HDF5
file); the driver owns flattening and unflattening.

Contract of a session:

* ``put(slot, step, leaves, structure)`` keeps the leaves of the state at ``step`` in ``slot`` and
  returns the bytes it holds for them; ``slot`` must be free (`delete` it first).
* ``get(slot)`` returns ``(step, leaves)``: the leaves equal in value, dtype, shape and Python type
  to those put (a float comes back a float, an int an int, an array an array).
* ``delete(slot)`` frees the slot (an HDF5 file may keep the space and reuse it in place).
* ``close()`` ends the session; it is idempotent, and storage that owns a temporary file removes it.
* Every failure (missing directory, full disk, foreign or corrupted file, a leaf it cannot hold)
  is a `CheckpointError` naming what failed (and the path, for files).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

__all__ = ["Storage", "StorageSession"]


class StorageSession(ABC):
    """Checkpoints of one run of one loop."""

    @abstractmethod
    def put(self, slot: int, step: int, leaves: Sequence[Any], structure: str) -> int:
        """Keep ``leaves`` (the state at ``step``) in the free ``slot``; return bytes held."""

    @abstractmethod
    def get(self, slot: int) -> tuple[int, list[Any]]:
        """Return ``(step, leaves)`` held in ``slot``."""

    @abstractmethod
    def delete(self, slot: int) -> None:
        """Free ``slot``."""

    @abstractmethod
    def close(self) -> None:
        """End the session (idempotent): release memory, remove temporary files."""

    # Optional hint from the driver: the slot it will `get` next, so a storage with a background
    # thread can read it ahead while steps compute. Storage without prefetching ignores it.
    def prefetch(self, slot: int) -> None:  # noqa: B027 - optional hook, empty by default
        """Hint that ``slot`` will be read soon."""

    def __enter__(self) -> StorageSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Storage(ABC):
    """A kind of checkpoint storage; `session` opens the checkpoints of one run."""

    @abstractmethod
    def session(self) -> StorageSession:
        """Open a fresh session for one run of one loop."""
