"""Checkpoints in an HDF5 file (h5py), written behind and read ahead by a background thread.

The public names are `HDF5Storage` (the user's choice), `HDF5Session` (one run's file),
`leaf_checksum`, `FORMAT_NAME` and `FORMAT_VERSION`. The modules, one job each:

* `~ckpt_transform.storage.hdf5.layout`: the file format (groups, datasets, attributes), how
  leaves are encoded and checksummed, written and read;
* `~ckpt_transform.storage.hdf5.worker`: the thread that runs a session's file operations in order;
* `~ckpt_transform.storage.hdf5.session`: one run's checkpoints: the write-behind queue, the
  read-ahead, the memory budget and the release of the file and the thread;
* `~ckpt_transform.storage.hdf5.paths`: where the file goes (temporary, ``{rank}``) and claiming it;
* `~ckpt_transform.storage.hdf5.errors`: failures mapped to `CheckpointError` messages;
* `~ckpt_transform.storage.hdf5.storage`: `HDF5Storage`.
"""

from __future__ import annotations

from ckpt_transform.storage.hdf5.layout import FORMAT_NAME, FORMAT_VERSION, leaf_checksum
from ckpt_transform.storage.hdf5.session import HDF5Session
from ckpt_transform.storage.hdf5.storage import HDF5Storage

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "HDF5Session", "HDF5Storage", "leaf_checksum"]
