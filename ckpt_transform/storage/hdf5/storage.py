"""`HDF5Storage`: the user's choice of keeping checkpoints in an HDF5 file; opens its sessions."""

from __future__ import annotations

import os

from ckpt_transform._checks import typechecked
from ckpt_transform.errors import CheckpointError
from ckpt_transform.storage.base import Storage
from ckpt_transform.storage.hdf5.errors import io_error
from ckpt_transform.storage.hdf5.paths import (
    check_placeholders,
    claim,
    fill_placeholders,
    register,
    remove_quietly,
    temporary_path,
    unregister,
)
from ckpt_transform.storage.hdf5.session import HDF5Session

__all__ = ["HDF5Storage"]


class HDF5Storage(Storage):
    """Keep checkpoints in an HDF5 file, written with h5py.

    Each session (one run of one loop) writes one file: a new temporary file in the system's
    temporary directory when ``path`` is None, else the file at ``path``. The file has one group
    per checkpoint slot and one dataset per leaf of the state, with attributes giving the step,
    the structure of the state and the Python type of each leaf (the layout is described in
    `ckpt_transform.storage.hdf5.layout`). Leaves come back equal in value, dtype, shape and type.

    The file is removed when the session closes (at the end of the run), unless ``keep=True``.
    A run that fails (an exception or an interrupt in a step, a full disk, in either sweep)
    closes it before the error reaches the caller: the worker thread ends and the file goes. It
    is also removed if a session is garbage-collected or the interpreter exits without a close.
    In memory a session holds at most one state for I/O (a write in flight or a read ahead);
    the snapshots themselves live on disk only. With ``keep=True`` the file holds the
    checkpoints as they stand at the end (a freed slot is marked free and reused in place);
    `last_path` (and the session's ``path``) says where it is.

    Parameters
    ----------
    path
        The file to write (``~`` is expanded; a relative path is taken from the current
        directory when a session opens). Its directory must exist. A file already there is
        overwritten only if it is a checkpoint file written by this class; anything else is
        refused with a `CheckpointError`. One session at a time may use a given path. Under
        MPI give each process its own file with the ``{rank}`` placeholder, such as
        ``"ckpt-{rank}.h5"`` (or ``"{rank:03d}"``): the rank comes from
        ``mpi4py.MPI.COMM_WORLD`` when the program has imported mpi4py, else from the
        launcher's ``PMI_RANK``, ``OMPI_COMM_WORLD_RANK``, ``MPI_LOCALRANKID`` or
        ``SLURM_PROCID``, else it is 0. No other placeholder is allowed; a literal brace is
        written ``{{`` or ``}}``. The default temporary file is unique to each process.
    keep
        Keep the file after the run.
    compression
        Lossless compression of array leaves of at least 4 KiB: ``"gzip"`` (level 4),
        ``"lzf"`` (fast, lighter), or an int 0-9 (a gzip level). None stores raw bytes, the
        fastest choice. Compressed datasets also use HDF5's byte-shuffle filter.
    checksum
        Store a checksum of every leaf (`leaf_checksum`) and check it on every read, so that a
        damaged file gives a `CheckpointError` rather than a wrong value. Costs about 1 ms per
        8 MB written and again per 8 MB read.
    background
        Write behind and read ahead on a worker thread, so that file I/O overlaps the steps'
        computation. Until a write is done its leaves are held by reference; so if your own code
        writes into state arrays in place, pass ``background=False``.

    Raises
    ------
    CheckpointError
        From `session` and the session's methods: a missing directory, a read-only file or
        directory, a file at ``path`` that this class did not write, a full disk, a corrupted
        file, a leaf it cannot hold (an object, a string), a path already in use by another open
        session. The message names the path and what to do.
    ValueError
        From the constructor: a compression it does not know, an empty path, or a placeholder in
        ``path`` other than ``{rank}``.

    Examples
    --------
    >>> from ckpt_transform.storage.hdf5 import HDF5Storage
    >>> import numpy as np
    >>> with HDF5Storage(compression="lzf").session() as s:
    ...     s.put(0, 3, [np.zeros(4), 0.5], "(T, lam)")
    ...     s.get(0)[0]
    40
    3
    """

    @typechecked
    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        keep: bool = False,
        compression: str | int | None = None,
        checksum: bool = True,
        background: bool = True,
    ) -> None:
        if isinstance(compression, bool) or (
            compression is not None
            and compression not in ("gzip", "lzf")
            and not (isinstance(compression, int) and 0 <= compression <= 9)
        ):
            raise ValueError(
                f"HDF5Storage(compression={compression!r}): allowed are None (no compression), "
                '"gzip", "lzf", or an int gzip level 0-9'
            )
        if path is not None and not os.fspath(path):
            raise ValueError("HDF5Storage(path=''): give a file path, or None for a temporary file")
        if path is not None:
            check_placeholders(os.fspath(path))
        self.path: str | None = None if path is None else os.fspath(path)
        self.keep = keep
        self.compression = compression
        self.checksum = checksum
        self.background = background
        self.last_path: str | None = None
        """Path of the file of the most recent session (to find a kept temporary file)."""

    def __repr__(self) -> str:
        text = f"HDF5Storage({self.path!r}, keep={self.keep}, compression={self.compression!r}"
        if not self.checksum:
            text += ", checksum=False"
        if not self.background:
            text += ", background=False"
        return text + ")"

    def session(self) -> HDF5Session:
        """Open a session: create (or overwrite a checkpoint file at) the path, ready to write.

        Raises
        ------
        CheckpointError
            When the file cannot be created or is not ours (see the class docstring).
        """
        temporary = self.path is None
        if self.path is None:
            path = temporary_path()
        else:
            path = os.path.abspath(os.path.expanduser(fill_placeholders(self.path)))
        key = os.path.realpath(path)
        register(key, path)
        created = temporary
        try:
            if not temporary:
                created = claim(path)
            session = HDF5Session(
                path,
                temporary=temporary,
                keep=self.keep,
                compression=self.compression,
                checksum=self.checksum,
                background=self.background,
                key=key,
            )
        except CheckpointError:
            unregister(key)
            if temporary:
                remove_quietly(path)
            raise
        except Exception as exc:
            unregister(key)
            if created:
                remove_quietly(path)
            raise io_error(path, "creating the checkpoint file", exc) from exc
        self.last_path = path
        return session
