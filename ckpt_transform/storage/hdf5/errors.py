"""Failures of HDF5 checkpoint files, mapped to `CheckpointError`: what failed, where, what to do.

h5py raises `OSError` with ``errno`` set, or only the C library's text; both are read here. Every
message names the path and says what to do instead.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from ckpt_transform.errors import CheckpointError

__all__ = [
    "READ_ONLY_ERRNOS",
    "corrupted",
    "errno_of",
    "foreign",
    "io_error",
    "one_line",
    "path_error",
    "short_repr",
]

READ_ONLY_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)


def short_repr(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= 60 else text[:57] + "..."


def one_line(exc: BaseException) -> str:
    # HDF5's messages may hold line breaks (after a time stamp): keep ours one paragraph.
    return " ".join(str(exc).split())


def errno_of(exc: BaseException) -> int | None:
    no = getattr(exc, "errno", None)
    if isinstance(no, int):
        return no
    text = str(exc)
    if "No space left" in text:
        return errno.ENOSPC
    if "Permission denied" in text or "Operation not permitted" in text:
        return errno.EACCES
    if "Read-only file system" in text:
        return errno.EROFS
    return None


def io_error(path: str, doing: str, exc: BaseException) -> CheckpointError:
    """A `CheckpointError` for a failed file operation: what failed, where, and what to do."""
    if isinstance(exc, CheckpointError):
        return exc
    no = errno_of(exc)
    if no == errno.ENOSPC:
        advice = (
            "The disk is full: free some space, give HDF5Storage a path on a disk with room, "
            "or use ArrayStorage (memory)"
        )
    elif no == errno.EFBIG:
        advice = (
            "The file grew beyond what the file system or a limit (ulimit -f) allows: choose "
            "a path on another file system, raise the limit, or use ArrayStorage (memory)"
        )
    elif no in READ_ONLY_ERRNOS:
        advice = "There is no permission to write there: choose a writable path"
    else:
        advice = (
            "The checkpoints in this file cannot be trusted, so the run stops; check the disk "
            "and the path, or use ArrayStorage (memory)"
        )
    return CheckpointError(f"HDF5Storage: {doing} {path!r} failed: {one_line(exc)}. {advice}.")


def path_error(path: str, exc: OSError) -> CheckpointError:
    """A `CheckpointError` for a path that cannot be created or written."""
    parent = os.path.dirname(path) or "."
    if exc.errno == errno.ENOENT:
        msg = (
            f"cannot create checkpoint file {path!r}: the directory {parent!r} does not exist. "
            "Create it first (os.makedirs) or choose another path"
        )
    elif exc.errno == errno.ENOTDIR:
        msg = (
            f"cannot create checkpoint file {path!r}: a part of {parent!r} is a file, "
            "not a directory. Choose a path inside a directory"
        )
    elif exc.errno in READ_ONLY_ERRNOS:
        target = path if os.path.lexists(path) else parent
        msg = (
            f"cannot write checkpoint file {path!r}: {target!r} is read-only ({exc.strerror}). "
            "Choose a path in a writable directory (or path=None for a temporary file)"
        )
    elif exc.errno == errno.ENOSPC:
        msg = (
            f"cannot create checkpoint file {path!r}: the disk is full. Free some space or "
            "choose a path on another disk"
        )
    else:
        msg = f"cannot create checkpoint file {path!r}: {exc}. Choose another path"
    return CheckpointError("HDF5Storage: " + msg)


def foreign(path: str, why: str) -> CheckpointError:
    return CheckpointError(
        f"HDF5Storage: {path!r} already exists and {why}; ckpt_transform never overwrites or "
        "deletes a file it did not write. Remove or rename that file, or choose another path "
        "(or path=None for a temporary file)"
    )


def corrupted(path: str, slot: int, detail: str) -> CheckpointError:
    return CheckpointError(
        f"HDF5Storage: checkpoint file {path!r} is corrupted: slot {slot}: {detail}. The "
        "checkpoint cannot be trusted, so the run stops; run it again (check the disk if this "
        "repeats)"
    )
