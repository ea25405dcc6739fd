"""The storage of each level a scheme keeps checkpoints in, with the defaults filled in.

Schemes only plan: a scheme holds the user's storage choice (``storage=``, or ``Multilevel``'s
``memory_storage`` / ``disk_storage``), None meaning "the default". This module is where that
default is chosen, for every executor that opens sessions (the autograd driver, and the JAX
backend when checkpoints go to the host).
"""

from __future__ import annotations

from typing import Any

__all__ = ["default_storage", "level_storages"]


def level_storages(scheme: Any) -> dict[str, Any]:
    """``{level: Storage}`` for every level ``scheme`` uses (``memory`` always, ``disk`` for
    `Multilevel`): the storage given, else the level's default (see `default_storage`)."""
    storages = getattr(scheme, "storages", None)
    chosen = storages() if storages is not None else {"memory": scheme.storage}  # Multilevel
    return {
        level: storage if storage is not None else default_storage(level)
        for level, storage in chosen.items()
    }


def default_storage(level: str) -> Any:
    """`ArrayStorage` in memory, a temporary `HDF5Storage` on disk."""
    if level == "disk":  # imported only when a run needs it: h5py is a large import
        from ckpt_transform.storage.hdf5 import HDF5Storage

        return HDF5Storage()
    from ckpt_transform.storage.memory import ArrayStorage

    return ArrayStorage()
