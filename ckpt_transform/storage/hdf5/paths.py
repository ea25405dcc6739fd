"""Claiming a checkpoint file's path: never touch a file that is not ours; one session per file.

Also where a path comes from: a temporary file unique to the process, or the user's path with its
``{rank}`` placeholder filled in.
"""

from __future__ import annotations

import errno
import os
import string
import sys
import tempfile
import threading

from ckpt_transform.errors import CheckpointError
from ckpt_transform.storage.hdf5.errors import errno_of, foreign, one_line, path_error
from ckpt_transform.storage.hdf5.layout import FORMAT_NAME, load_h5py

__all__ = [
    "RANK_VARIABLES",
    "check_ours",
    "check_placeholders",
    "claim",
    "fill_placeholders",
    "mpi_rank",
    "register",
    "remove_quietly",
    "temporary_path",
    "unregister",
]

RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MPI_LOCALRANKID", "SLURM_PROCID")
"""Environment variables that MPI launchers (MPICH/Hydra, Open MPI, Intel MPI, Slurm) set to
the process's rank, read in this order when mpi4py has not been imported."""


# --------------------------------------------------------------------------------------------
# Where the file goes: the MPI rank, the {rank} placeholder, a temporary file
# --------------------------------------------------------------------------------------------


def mpi_rank() -> tuple[int, str] | None:
    """The process's MPI rank and where it was found, or None outside MPI.

    From ``mpi4py.MPI.COMM_WORLD`` when the program has imported mpi4py (it is never imported
    here), else from the first of `RANK_VARIABLES` that is set.
    """
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None:
        return int(mpi.COMM_WORLD.Get_rank()), "mpi4py.MPI.COMM_WORLD"
    for name in RANK_VARIABLES:
        value = os.environ.get(name)
        if value is None:
            continue
        rank = int(value) if value.strip().isdigit() else -1
        if rank < 0:
            raise CheckpointError(
                f"HDF5Storage: the environment variable {name}={value!r} should hold this "
                "process's MPI rank (an int >= 0), as MPI launchers set it; unset it or fix it"
            )
        return rank, f"${name}"
    return None


def check_placeholders(path: str) -> None:
    """Raise `ValueError` unless ``path``'s only placeholder is ``{rank}`` (with an int format)."""
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(path) if field is not None]
    except ValueError as exc:
        raise _placeholder_error(path, f"a single brace ({exc})") from None
    unknown = [field for field in fields if field != "rank"]
    if unknown:
        raise _placeholder_error(path, f"the placeholder {{{unknown[0]}}}")
    try:
        path.format(rank=0)
    except (ValueError, TypeError) as exc:
        raise _placeholder_error(path, f"the format of {{rank}} ({exc})") from None


def _placeholder_error(path: str, what: str) -> ValueError:
    return ValueError(
        f"HDF5Storage(path={path!r}): {what} is not understood. The one placeholder is {{rank}}, "
        "the process's MPI rank (such as 'ckpt-{rank}.h5', or '{rank:03d}' for 000, 001, ...); "
        "write a literal brace as {{ or }}"
    )


def fill_placeholders(path: str) -> str:
    """``path`` with ``{rank}`` replaced by the MPI rank (0 outside MPI)."""
    found = mpi_rank()
    return path.format(rank=0 if found is None else found[0])


# --------------------------------------------------------------------------------------------
# Claiming the file
# --------------------------------------------------------------------------------------------

_OPEN_PATHS: set[str] = set()
_OPEN_PATHS_LOCK = threading.Lock()


def register(key: str, path: str) -> None:
    with _OPEN_PATHS_LOCK:
        if key in _OPEN_PATHS:
            raise CheckpointError(
                f"HDF5Storage: {path!r} is already in use by another open checkpoint session in "
                "this process; two runs at once (such as a checkpointed loop inside another) "
                "cannot share one file. Give each storage its own path, or use path=None for a "
                "temporary file per run"
            )
        _OPEN_PATHS.add(key)


def unregister(key: str) -> None:
    with _OPEN_PATHS_LOCK:
        _OPEN_PATHS.discard(key)


def check_ours(path: str) -> None:
    """Raise unless ``path`` is a checkpoint file written by this module."""
    h5py = load_h5py()
    if not os.path.isfile(path):
        raise foreign(path, "is not a regular file")
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError as exc:
        raise path_error(path, exc) from exc
    if not is_hdf5:
        raise foreign(path, "is not an HDF5 file")
    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format")
    except Exception as exc:
        if errno_of(exc) in (errno.EAGAIN, errno.EWOULDBLOCK) or "unable to lock" in str(exc):
            raise CheckpointError(
                f"HDF5Storage: {path!r} is in use by another process (it holds HDF5's lock on "
                "the file), and two runs cannot share one file. Wait for the other run to end, "
                "or choose another path (or path=None for a temporary file)"
            ) from exc
        raise foreign(
            path, f"cannot be opened as HDF5 (it may be damaged: {one_line(exc)})"
        ) from exc
    if isinstance(fmt, bytes):
        fmt = fmt.decode("utf-8", "replace")
    if fmt != FORMAT_NAME:
        raise foreign(
            path, f"is an HDF5 file that ckpt_transform did not write (no format={FORMAT_NAME!r})"
        )


def claim(path: str) -> bool:
    """Make ``path`` ready to be written; return whether the file was created here."""
    if os.path.isdir(path):
        raise CheckpointError(
            f"HDF5Storage: {path!r} is a directory; give the path of a file in it "
            f"(such as {os.path.join(path, 'checkpoints.h5')!r})"
        )
    if os.path.lexists(path):
        # An earlier checkpoint file of ours (kept with keep=True, or left by a run that was
        # killed) may be overwritten; anything else is refused.
        check_ours(path)
        try:
            os.close(os.open(path, os.O_WRONLY))
        except OSError as exc:
            raise path_error(path, exc) from exc
        return False
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except FileExistsError:
        raise foreign(path, "was created by someone else just now") from None
    except OSError as exc:
        raise path_error(path, exc) from exc
    return True


def temporary_path() -> str:
    """A new, empty temporary file unique to this process (named after its rank under MPI)."""
    found = mpi_rank()
    prefix = "ckpt_transform-" if found is None else f"ckpt_transform-rank{found[0]}-"
    try:
        fd, path = tempfile.mkstemp(prefix=prefix, suffix=".h5")
    except OSError as exc:
        raise CheckpointError(
            f"HDF5Storage: cannot create a temporary file in {tempfile.gettempdir()!r}: {exc}. "
            "Set TMPDIR to a writable directory with room, or pass path=..."
        ) from exc
    os.close(fd)
    return path


def remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
