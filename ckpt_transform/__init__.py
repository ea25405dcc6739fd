"""ckpt_transform: checkpointed reverse-mode derivatives of time-stepping loops.

The public names of the API contract (docs/api.md); everything else is internal.
"""

from ckpt_transform.api import checkpoint_struct
from ckpt_transform.errors import CheckpointError, TransformError
from ckpt_transform.runtime.driver import checkpointed_for, checkpointed_while
from ckpt_transform.schemes.multilevel import Multilevel
from ckpt_transform.schemes.online_r2 import Online_r2, OnlineR2
from ckpt_transform.schemes.periodic import Periodic
from ckpt_transform.schemes.revolve import Revolve
from ckpt_transform.schemes.store_all import StoreAll
from ckpt_transform.stages import checkpoint_stage
from ckpt_transform.storage.hdf5 import HDF5Storage
from ckpt_transform.storage.memory import ArrayStorage

__all__ = [
    "ArrayStorage",
    "CheckpointError",
    "HDF5Storage",
    "Multilevel",
    "OnlineR2",
    "Online_r2",
    "Periodic",
    "Revolve",
    "StoreAll",
    "TransformError",
    "checkpoint_stage",
    "checkpoint_struct",
    "checkpointed_for",
    "checkpointed_while",
]
