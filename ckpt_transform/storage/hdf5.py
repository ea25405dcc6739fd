"""Checkpoints in an HDF5 file (h5py), written behind and read ahead by a background thread.

File layout (format ``"ckpt_transform checkpoint"``, version 1)::

    /                      attrs: format, format_version, writer, layout
    /slot_<k>              one group per checkpoint slot k
        attrs: slot, step, structure, leaves (count), state ("held" | "free"),
               checksums (leaves x 2 uint64, see `leaf_checksum`; when checksums are on)
    /slot_<k>/leaf_<i>     one dataset per leaf i of the state
        attrs: python_type ("float" | "int" | "bool" | "complex" | "numpy_scalar" | "ndarray")

A freed slot keeps its group, marked ``state="free"``; the next `put` to that slot overwrites its
datasets in place (or replaces those whose shape or dtype changed). So a file kept with
``keep=True`` holds the checkpoints as they stand at the end of the run.

Threading: with ``background=True`` (the default) every h5py call of a session runs, in order, on
one worker thread. `put` checks the leaves, queues the write and returns; a `get` of a slot whose
write is still queued returns the leaves that were put; `prefetch` queues a read that a later `get`
picks up. Because the queue is first in, first out and a slot must be deleted before it is stored
again (which drops its read-ahead), a `get` never sees older data than the last `put`. An error in
the worker is raised as a `CheckpointError` by the next call of the session.
"""

from __future__ import annotations

import concurrent.futures
import errno
import os
import queue
import sys
import tempfile
import threading
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ckpt_transform._checks import typechecked
from ckpt_transform.errors import CheckpointError
from ckpt_transform.storage.base import Storage, StorageSession
from ckpt_transform.storage.memory import leaf_nbytes

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "HDF5Session", "HDF5Storage", "leaf_checksum"]

FORMAT_NAME = "ckpt_transform checkpoint"
"""Value of the root attribute ``format`` that marks a file as written by this module."""
FORMAT_VERSION = 1
"""Value of the root attribute ``format_version`` (the layout described in this module)."""

COMPRESS_MIN_BYTES = 4096
"""Arrays smaller than this (and 0-d arrays and scalars) are stored uncompressed."""

_MAX_PREFETCHED = 1  # reads ahead held at once
_DTYPE_KINDS = "biufc"  # bool, signed and unsigned int, float, complex
_LAYOUT = (
    "one group per checkpoint slot (slot_<k>; attrs slot, step, structure, leaves, "
    "state 'held'|'free', checksums: leaves x 2 uint64); one dataset per leaf (leaf_<i>; "
    "attr python_type)"
)
_CHECKSUM_METHOD = (
    "fletcher-sum64 v1: the leaf's bytes (C order, zero-padded to a multiple of 8) read as "
    "little-endian uint64 words w_i; (sum w_i, sum i*w_i), both mod 2**64"
)
_BLOCK = 1024  # words per row when the checksum sums a large array as a matrix
_READ_ONLY_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)


def _h5py() -> Any:
    # h5py is imported on first use, so `import ckpt_transform` stays light.
    import h5py

    return h5py


# --------------------------------------------------------------------------------------------
# Leaves: what can be held, and how it comes back
# --------------------------------------------------------------------------------------------


def _encode(leaf: Any, index: int) -> tuple[str, np.ndarray]:
    """Return ``(python_type, array)`` for one leaf, or raise naming what cannot be held."""
    kind: str
    t = type(leaf)
    if t is np.ndarray:
        kind, arr = "ndarray", leaf
    elif t is float:
        kind, arr = "float", np.asarray(leaf, dtype=np.float64)
    elif t is bool:
        kind, arr = "bool", np.asarray(leaf, dtype=np.bool_)
    elif t is int:
        try:
            arr = np.asarray(leaf, dtype=np.int64)
        except OverflowError:
            raise CheckpointError(
                f"HDF5Storage cannot hold leaf {index} of the state: the int {leaf} does not fit "
                "in 64 bits; keep it as a float or a numpy array, or use ArrayStorage"
            ) from None
        kind = "int"
    elif t is complex:
        kind, arr = "complex", np.asarray(leaf, dtype=np.complex128)
    elif isinstance(leaf, np.generic):
        kind, arr = "numpy_scalar", np.asarray(leaf)
    else:
        raise CheckpointError(
            f"HDF5Storage cannot hold leaf {index} of the state: it is a "
            f"{t.__module__}.{t.__qualname__} ({_short_repr(leaf)}). It holds numpy arrays and "
            "scalars (bool, integer, float, complex) and Python bool, int, float and complex; "
            "keep other objects out of the loop's state, or use ArrayStorage"
        )
    if arr.dtype.kind not in _DTYPE_KINDS:
        raise CheckpointError(
            f"HDF5Storage cannot hold leaf {index} of the state: a {t.__qualname__} of dtype "
            f"{arr.dtype} (kind {arr.dtype.kind!r}). It holds bool, integer, float and complex "
            "dtypes; convert the leaf or use ArrayStorage"
        )
    return kind, arr


def _decode(kind: str, arr: np.ndarray) -> Any:
    if kind == "ndarray":
        return arr
    if kind == "float":
        return float(arr[()])
    if kind == "int":
        return int(arr[()])
    if kind == "bool":
        return bool(arr[()])
    if kind == "complex":
        return complex(arr[()])
    if kind == "numpy_scalar":
        return arr[()]
    raise ValueError(f"unknown python_type attribute {kind!r}")


def leaf_checksum(data: np.ndarray) -> tuple[int, int]:
    """Fletcher-style checksum of an array's bytes, as stored in the ``checksums`` attribute.

    The bytes of ``data`` in C order, zero-padded to a multiple of 8, are read as little-endian
    64-bit words ``w_0 .. w_{n-1}``; the checksum is ``(sum(w_i), sum(i * w_i))``, both modulo
    ``2**64``. (Of an x87 80-bit long double, which numpy keeps in 12 or 16 bytes, only the 10
    bytes of the value count: the rest is padding that copies need not keep.) The plain sum
    changes with any change to a single word; the position-weighted sum also changes when words
    move. It is the idea of Fletcher's checksum (J. G. Fletcher, "An arithmetic checksum for
    serial transmissions", IEEE Trans. Commun. 30(1), 1982, doi:10.1109/TCOM.1982.1095369) on
    64-bit words, computed with two passes of numpy sums (about 1 ms for 8 MB, against about 4 ms
    for ``zlib.crc32``). It guards against damaged files, not against deliberate tampering.

    Parameters
    ----------
    data
        A C-contiguous array of a numeric dtype.

    Returns
    -------
    tuple of int
        ``(plain sum, weighted sum)``, each in ``[0, 2**64)``.
    """
    raw = _value_bytes(data)
    nfull = raw.size // 8
    words = raw[: nfull * 8].view("<u8")
    tail = raw[nfull * 8 :]
    tail_word = int.from_bytes(tail.tobytes(), "little") if tail.size else 0
    u64 = np.uint64
    mask = (1 << 64) - 1
    if nfull < 4 * _BLOCK:  # small: the sums as written (unsigned numpy arrays wrap mod 2**64)
        plain = int(words.sum(dtype=u64)) + tail_word
        weighted = int((words * np.arange(nfull, dtype=u64)).sum(dtype=u64)) + nfull * tail_word
        return plain & mask, weighted & mask
    # Word i = b * _BLOCK + j of the body sits at row b, column j: sum(i * w_i) over the body is
    # _BLOCK * sum_b(b * rowsum_b) + sum_j(j * colsum_j); two passes over the data, no temporary.
    rows_n = nfull // _BLOCK
    body = words[: rows_n * _BLOCK].reshape(rows_n, _BLOCK)
    rest = words[rows_n * _BLOCK :]
    rows = body.sum(axis=1, dtype=np.uint64)
    cols = body.sum(axis=0, dtype=np.uint64)
    plain = int(rows.sum(dtype=u64)) + int(rest.sum(dtype=u64)) + tail_word
    weighted = (
        _BLOCK * int((rows * np.arange(rows_n, dtype=u64)).sum(dtype=u64))
        + int((cols * np.arange(_BLOCK, dtype=u64)).sum(dtype=u64))
        + int((rest * np.arange(rows_n * _BLOCK, nfull, dtype=u64)).sum(dtype=u64))
        + nfull * tail_word
    )
    return plain & mask, weighted & mask


def _value_bytes(data: np.ndarray) -> np.ndarray:
    """The bytes of ``data`` as a flat uint8 array, without the padding of x87 long doubles."""
    raw = data.reshape(-1).view(np.uint8)
    dtype = data.dtype
    if dtype.kind in "fc" and np.finfo(dtype).nmant == 63:  # x87 extended precision
        part = dtype.itemsize // (2 if dtype.kind == "c" else 1)
        if part > 10:
            big = dtype.byteorder == ">" or (dtype.byteorder == "=" and sys.byteorder == "big")
            cols = slice(part - 10, part) if big else slice(0, 10)
            raw = np.ascontiguousarray(raw.reshape(-1, part)[:, cols]).reshape(-1)
    return raw


def _short_repr(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= 60 else text[:57] + "..."


def _c_contiguous(arr: np.ndarray) -> np.ndarray:
    # np.ascontiguousarray would turn a 0-d array into a 1-d one.
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    # HDF5's messages may hold line breaks (after a time stamp): keep ours one paragraph.
    return " ".join(str(exc).split())


def _errno_of(exc: BaseException) -> int | None:
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


def _io_error(path: str, doing: str, exc: BaseException) -> CheckpointError:
    """A `CheckpointError` for a failed file operation: what failed, where, and what to do."""
    if isinstance(exc, CheckpointError):
        return exc
    no = _errno_of(exc)
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
    elif no in _READ_ONLY_ERRNOS:
        advice = "There is no permission to write there: choose a writable path"
    else:
        advice = (
            "The checkpoints in this file cannot be trusted, so the run stops; check the disk "
            "and the path, or use ArrayStorage (memory)"
        )
    return CheckpointError(f"HDF5Storage: {doing} {path!r} failed: {_one_line(exc)}. {advice}.")


def _path_error(path: str, exc: OSError) -> CheckpointError:
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
    elif exc.errno in _READ_ONLY_ERRNOS:
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


def _foreign(path: str, why: str) -> CheckpointError:
    return CheckpointError(
        f"HDF5Storage: {path!r} already exists and {why}; ckpt_transform never overwrites or "
        "deletes a file it did not write. Remove or rename that file, or choose another path "
        "(or path=None for a temporary file)"
    )


def _corrupted(path: str, slot: int, detail: str) -> CheckpointError:
    return CheckpointError(
        f"HDF5Storage: checkpoint file {path!r} is corrupted: slot {slot}: {detail}. The "
        "checkpoint cannot be trusted, so the run stops; run it again (check the disk if this "
        "repeats)"
    )


# --------------------------------------------------------------------------------------------
# Claiming a path: never touch a file that is not ours; one session per file at a time
# --------------------------------------------------------------------------------------------

_OPEN_PATHS: set[str] = set()
_OPEN_PATHS_LOCK = threading.Lock()


def _register(key: str, path: str) -> None:
    with _OPEN_PATHS_LOCK:
        if key in _OPEN_PATHS:
            raise CheckpointError(
                f"HDF5Storage: {path!r} is already in use by another open checkpoint session in "
                "this process; two runs at once (such as a checkpointed loop inside another) "
                "cannot share one file. Give each storage its own path, or use path=None for a "
                "temporary file per run"
            )
        _OPEN_PATHS.add(key)


def _unregister(key: str) -> None:
    with _OPEN_PATHS_LOCK:
        _OPEN_PATHS.discard(key)


def _check_ours(path: str) -> None:
    """Raise unless ``path`` is a checkpoint file written by this module."""
    h5py = _h5py()
    if not os.path.isfile(path):
        raise _foreign(path, "is not a regular file")
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError as exc:
        raise _path_error(path, exc) from exc
    if not is_hdf5:
        raise _foreign(path, "is not an HDF5 file")
    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format")
    except Exception as exc:
        if _errno_of(exc) in (errno.EAGAIN, errno.EWOULDBLOCK) or "unable to lock" in str(exc):
            raise CheckpointError(
                f"HDF5Storage: {path!r} is in use by another process (it holds HDF5's lock on "
                "the file), and two runs cannot share one file. Wait for the other run to end, "
                "or choose another path (or path=None for a temporary file)"
            ) from exc
        raise _foreign(
            path, f"cannot be opened as HDF5 (it may be damaged: {_one_line(exc)})"
        ) from exc
    if isinstance(fmt, bytes):
        fmt = fmt.decode("utf-8", "replace")
    if fmt != FORMAT_NAME:
        raise _foreign(
            path, f"is an HDF5 file that ckpt_transform did not write (no format={FORMAT_NAME!r})"
        )


def _claim(path: str) -> bool:
    """Make ``path`` ready to be written; return whether the file was created here."""
    if os.path.isdir(path):
        raise CheckpointError(
            f"HDF5Storage: {path!r} is a directory; give the path of a file in it "
            f"(such as {os.path.join(path, 'checkpoints.h5')!r})"
        )
    if os.path.lexists(path):
        # An earlier checkpoint file of ours (kept with keep=True, or left by a run that was
        # killed) may be overwritten; anything else is refused.
        _check_ours(path)
        try:
            os.close(os.open(path, os.O_WRONLY))
        except OSError as exc:
            raise _path_error(path, exc) from exc
        return False
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except FileExistsError:
        raise _foreign(path, "was created by someone else just now") from None
    except OSError as exc:
        raise _path_error(path, exc) from exc
    return True


def _temporary_path() -> str:
    try:
        fd, path = tempfile.mkstemp(prefix="ckpt_transform-", suffix=".h5")
    except OSError as exc:
        raise CheckpointError(
            f"HDF5Storage: cannot create a temporary file in {tempfile.gettempdir()!r}: {exc}. "
            "Set TMPDIR to a writable directory with room, or pass path=..."
        ) from exc
    os.close(fd)
    return path


# --------------------------------------------------------------------------------------------
# The file itself: only ever touched from one thread at a time (the worker, or the caller)
# --------------------------------------------------------------------------------------------


@dataclass
class _Leaf:
    dataset: Any  # h5py.Dataset
    kind: str
    shape: tuple[int, ...]
    dtype: np.dtype


@dataclass
class _Slot:
    group: Any  # h5py.Group
    state: Any  # the group's attributes, opened once (h5py.h5a.AttrID): writing through
    step: Any  # these is several times faster than through group.attrs
    leaves: list[_Leaf] = field(default_factory=list)
    structure: str | None = None
    sums: np.ndarray | None = None  # the checksums written, (leaves, 2) uint64
    sums_attr: Any = None


class _CheckpointFile:
    """The open HDF5 file of one session, and an index of its groups and datasets.

    The index (and the checksums) kept here are the reference: a read checks the data in the
    file against them, and trusts no attribute read back from the file.
    """

    def __init__(self, path: str, compression: str | int | None, checksum: bool) -> None:
        h5py = self.h5py = _h5py()
        self.held = np.array("held", dtype=h5py.string_dtype())
        self.free_ = np.array("free", dtype=h5py.string_dtype())
        self.path = path
        self.compression = compression
        self.checksum = checksum
        # Whole datasets are written and read at once, so HDF5's chunk cache would only hold a
        # second copy: rdcc_nbytes=0. libver >= 1.10 gives checksummed metadata.
        self.file = h5py.File(path, "w", libver=("v110", "v110"), rdcc_nbytes=0)
        self.file.attrs["format"] = FORMAT_NAME
        self.file.attrs["format_version"] = FORMAT_VERSION
        self.file.attrs["writer"] = _writer()
        self.file.attrs["layout"] = _LAYOUT
        if checksum:
            self.file.attrs["checksum_method"] = _CHECKSUM_METHOD
        self.slots: dict[int, _Slot] = {}

    def _new_dataset(self, group: Any, name: str, kind: str, arr: np.ndarray) -> Any:
        options: dict[str, Any] = {}
        if (
            self.compression is not None
            and arr.ndim >= 1
            and arr.size > 0
            and arr.nbytes >= COMPRESS_MIN_BYTES
        ):
            options["compression"] = self.compression
            options["shuffle"] = True
            # One chunk per dataset (whole-array reads and writes), within HDF5's 4 GiB limit.
            options["chunks"] = arr.shape if arr.nbytes < 2**30 else True
        ds = group.create_dataset(
            name, shape=arr.shape, dtype=arr.dtype, track_times=False, **options
        )
        ds.attrs["python_type"] = kind
        return ds

    def write(
        self, slot: int, step: int, encoded: list[tuple[str, np.ndarray]], structure: str
    ) -> None:
        h5a = self.h5py.h5a
        rec = self.slots.get(slot)
        if rec is None:
            group = self.file.create_group(f"slot_{slot}", track_order=False)
            group.attrs["slot"] = slot
            group.attrs["state"] = "free"  # until every leaf is written
            group.attrs["step"] = step
            state, step_attr = h5a.open(group.id, b"state"), h5a.open(group.id, b"step")
            rec = self.slots[slot] = _Slot(group, state, step_attr)
        # A slot being written is free: it was created so above, or freed before this put.
        group = rec.group
        old = rec.leaves
        new: list[_Leaf] = []
        sums = np.zeros((len(encoded), 2), dtype=np.uint64)
        for i, (kind, arr) in enumerate(encoded):
            leaf = old[i] if i < len(old) else None
            if leaf is None or (leaf.kind, leaf.shape, leaf.dtype) != (
                kind,
                arr.shape,
                arr.dtype,
            ):
                name = f"leaf_{i}"
                if name in group:
                    del group[name]
                ds = self._new_dataset(group, name, kind, arr)
                leaf = _Leaf(ds, kind, arr.shape, arr.dtype)
            data = _c_contiguous(arr)
            if data.size:
                _write_leaf(leaf.dataset, data)
            if self.checksum:
                sums[i] = leaf_checksum(data)
            new.append(leaf)
        for i in range(len(encoded), len(old)):
            del group[f"leaf_{i}"]
        rec.leaves = new
        rec.step.write(np.array(step, dtype=np.int64))
        if len(new) != len(old) or rec.structure is None:  # (None: the slot's first write)
            group.attrs["leaves"] = len(new)
        if structure != rec.structure:
            group.attrs["structure"] = rec.structure = structure
        if self.checksum:
            if rec.sums_attr is None or rec.sums is None or rec.sums.shape != sums.shape:
                # HDF5 must not delete an attribute that is open: close it first.
                if rec.sums_attr is not None:
                    rec.sums_attr.close()
                    rec.sums_attr = None
                group.attrs["checksums"] = sums
                rec.sums_attr = h5a.open(group.id, b"checksums")
            else:
                rec.sums_attr.write(sums)
            rec.sums = sums
        rec.state.write(self.held)

    def read(self, slot: int) -> list[Any]:
        rec = self.slots.get(slot)
        if rec is None:
            raise _corrupted(self.path, slot, "its group was never written")
        everything = self.h5py.h5s.ALL
        sums = rec.sums if self.checksum else None
        leaves = []
        try:
            for i, leaf in enumerate(rec.leaves):
                out = np.empty(leaf.shape, dtype=leaf.dtype)
                if out.size:
                    leaf.dataset.id.read(everything, everything, out)
                if sums is not None and leaf_checksum(out) != (int(sums[i, 0]), int(sums[i, 1])):
                    raise _corrupted(self.path, slot, f"leaf {i} does not match its checksum")
                leaves.append(_decode(leaf.kind, out))
        except CheckpointError:
            raise
        except Exception as exc:
            raise _corrupted(self.path, slot, f"it cannot be read ({_one_line(exc)})") from exc
        return leaves

    def free(self, slot: int) -> None:
        rec = self.slots.get(slot)
        if rec is not None:
            rec.state.write(self.free_)

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _write_leaf(dataset: Any, data: np.ndarray) -> None:
    """Write all of ``dataset`` from ``data`` (same shape and dtype, C-contiguous).

    h5py's low-level call: a quarter of the time of ``Dataset.write_direct``, which matters for
    states of many small leaves.
    """
    everything = _h5py().h5s.ALL
    dataset.id.write(everything, everything, data)


def _writer() -> str:
    try:
        from importlib.metadata import version

        return f"ckpt_transform {version('ckpt_transform')}"
    except Exception:
        return "ckpt_transform"


# --------------------------------------------------------------------------------------------
# Running file operations: in order, on a worker thread or in the caller
# --------------------------------------------------------------------------------------------


class _Worker:
    """One daemon thread that runs submitted jobs in submission order."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # The thread gets the queue, not self: nothing it holds refers back to the session.
        self.thread = threading.Thread(target=_Worker._run, args=(self._jobs,), name=name)
        self.thread.daemon = True
        self.thread.start()

    @staticmethod
    def _run(jobs: queue.SimpleQueue[Any]) -> None:
        while True:
            job = jobs.get()
            if job is None:
                return
            fut, fn, args = job
            # Drop the job's references (the leaves of a write) as soon as it is done.
            del job
            if fut.set_running_or_notify_cancel():
                try:
                    result = fn(*args)
                except BaseException as exc:
                    fut.set_exception(exc)
                else:
                    fut.set_result(result)
                    del result
            del fut, fn, args

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._jobs.put((fut, fn, args))
        return fut

    def stop(self) -> None:
        self._jobs.put(None)

    def on_worker(self) -> bool:
        return threading.current_thread() is self.thread


class _Inline:
    """Runs each job at once in the caller (``background=False``)."""

    thread = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        fut.set_running_or_notify_cancel()
        try:
            fut.set_result(fn(*args))
        except Exception as exc:
            fut.set_exception(exc)
        return fut

    def stop(self) -> None:
        pass

    def on_worker(self) -> bool:
        return False


@dataclass
class _Resources:
    """What a session must release; shared with its finalizer, so it never refers to the session."""

    path: str
    key: str
    keep: bool
    file: _CheckpointFile
    worker: _Worker | _Inline


def _close_and_remove(res: _Resources) -> list[BaseException]:
    """Close the file, remove it unless kept, free the path; return what went wrong."""
    errors: list[BaseException] = []
    try:
        res.file.close()
    except Exception as exc:
        # A failed flush matters only for a file that is kept.
        if res.keep:
            errors.append(_io_error(res.path, "closing", exc))
    if not res.keep:
        try:
            os.unlink(res.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            errors.append(
                CheckpointError(
                    f"HDF5Storage: cannot remove checkpoint file {res.path!r}: {exc}; remove it "
                    "by hand"
                )
            )
    _unregister(res.key)
    return errors


def _release(res: _Resources) -> list[BaseException]:
    """End a session: after the queued jobs, close (and remove) the file; stop the worker.

    Called by `HDF5Session.close`, or by the session's finalizer when it is garbage-collected
    or the interpreter exits. If the garbage collector runs it on the worker thread itself, the
    release is queued behind the current job instead of waited for.
    """
    done = res.worker.submit(_close_and_remove, res)
    res.worker.stop()
    if res.worker.on_worker():
        return []
    if res.worker.thread is not None:
        res.worker.thread.join()
    try:
        return done.result()
    except Exception as exc:  # pragma: no cover - _close_and_remove catches its errors
        return [exc]


def _release_quietly(res: _Resources) -> None:
    # Finalizer path: nobody is left to catch an error.
    try:
        _release(res)
    except Exception:  # pragma: no cover - defensive
        pass


# --------------------------------------------------------------------------------------------
# Public: the session and the storage
# --------------------------------------------------------------------------------------------


class HDF5Session(StorageSession):
    """The checkpoints of one run, in one HDF5 file (see `HDF5Storage`).

    Attributes
    ----------
    path : str
        Absolute path of the file (a temporary one when the storage's path is None).
    keep : bool
        Whether the file stays after `close`.
    temporary : bool
        Whether the file is a temporary file made for this session.
    """

    def __init__(
        self,
        path: str,
        *,
        temporary: bool,
        keep: bool,
        compression: str | int | None,
        checksum: bool,
        background: bool,
        key: str,
    ) -> None:
        self.path = path
        self.keep = keep
        self.temporary = temporary
        self._held: dict[int, int] = {}  # slot -> step, as the caller sees it
        self._pending: dict[int, tuple[concurrent.futures.Future[Any], int, list[Any]]] = {}
        self._prefetched: dict[int, concurrent.futures.Future[Any]] = {}
        # Queued writes and frees, oldest first: (future, what it does, slot or None).
        self._queued: deque[tuple[concurrent.futures.Future[Any], str, int | None]] = deque()
        self._broken: CheckpointError | None = None
        self._closed = False
        file = _CheckpointFile(path, compression, checksum)
        worker: _Worker | _Inline
        if background:
            worker = _Worker(f"ckpt_transform-hdf5 {os.path.basename(path)}")
        else:
            worker = _Inline()
        self._file = file
        self._worker = worker
        self._res = _Resources(path=path, key=key, keep=keep, file=file, worker=worker)
        self._finalizer = weakref.finalize(self, _release_quietly, self._res)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("failed" if self._broken else "open")
        return (
            f"<HDF5Session {self.path!r} {state}: {len(self._held)} slot(s) held, keep={self.keep}>"
        )

    @property
    def closed(self) -> bool:
        """Whether `close` has been called."""
        return self._closed

    # -- bookkeeping --------------------------------------------------------------------------

    def _fail(self, exc: BaseException, doing: str) -> CheckpointError:
        err = _io_error(self.path, doing, exc)
        if self._broken is None:
            self._broken = err
        return err

    def _reap(self) -> None:
        """Forget finished jobs; raise the first error among them."""
        while self._queued and self._queued[0][0].done():
            fut, doing, slot = self._queued.popleft()
            if slot is not None:
                pending = self._pending.get(slot)
                if pending is not None and pending[0] is fut:
                    del self._pending[slot]
            if fut.cancelled():
                continue
            exc = fut.exception()
            if exc is not None:
                raise self._fail(exc, doing) from exc

    def _check(self, what: str) -> None:
        if self._closed:
            raise CheckpointError(
                f"HDF5Storage: cannot {what}: the session on {self.path!r} is closed (its run "
                "has ended); open a new one with storage.session()"
            )
        if self._broken is not None:
            raise CheckpointError(
                f"HDF5Storage: cannot {what}: an earlier operation on {self.path!r} failed, so "
                f"the run cannot go on. The failure: {self._broken}"
            ) from self._broken
        self._reap()

    def _queue(
        self, doing: str, slot: int | None, fn: Callable[..., Any], *args: Any
    ) -> concurrent.futures.Future[Any]:
        fut = self._worker.submit(fn, *args)
        self._queued.append((fut, doing, slot))
        return fut

    def _wait_for_writes(self) -> None:
        # Wait until no write (a job with a slot) is unfinished; frees and flushes hold no data.
        while True:
            self._reap()
            writes = [f for f, _, slot in self._queued if slot is not None and not f.done()]
            if not writes:
                return
            concurrent.futures.wait(writes)

    def _drop_prefetch(self, slot: int) -> None:
        fut = self._prefetched.pop(slot, None)
        if fut is not None:
            fut.cancel()

    # -- the interface ------------------------------------------------------------------------

    def put(self, slot: int, step: int, leaves: Sequence[Any], structure: str) -> int:
        """Write ``leaves`` (the state at ``step``) to the free ``slot``; return their bytes.

        The bytes are those of the values (as `ArrayStorage` counts them), not of the file.
        """
        self._check(f"put slot {slot}")
        # The memory budget: at most one state is held for I/O, a write in flight or a read
        # ahead. The state being put is the caller's now; an earlier one would be extra.
        self._wait_for_writes()
        if type(slot) is not int or slot < 0 or type(step) is not int:
            raise CheckpointError(
                f"HDF5Storage.put needs a slot >= 0 and a step as ints, got slot={slot!r}, "
                f"step={step!r}"
            )
        if not isinstance(structure, str):
            raise CheckpointError(
                f"HDF5Storage.put needs the structure as a str, got {type(structure).__name__}"
            )
        held = self._held.get(slot)
        if held is not None:
            raise CheckpointError(
                f"slot {slot} already holds the checkpoint of step {held}; delete it before "
                f"storing step {step} there"
            )
        leaves = list(leaves)
        encoded = [_encode(leaf, i) for i, leaf in enumerate(leaves)]
        nbytes = sum(leaf_nbytes(leaf) for leaf in leaves)
        self._drop_prefetch(slot)
        self._held[slot] = step
        doing = f"writing slot {slot} (step {step}) to"
        fut = self._queue(doing, slot, self._file.write, slot, step, encoded, structure)
        self._pending[slot] = (fut, step, leaves)
        if self._prefetched:  # a read ahead holds a state already: write through
            self._wait_for_writes()
        return nbytes

    def get(self, slot: int) -> tuple[int, list[Any]]:
        """Return ``(step, leaves)`` held in ``slot``, equal in value, dtype, shape and type."""
        self._check(f"get slot {slot}")
        step = self._held.get(slot)
        if step is None:
            raise CheckpointError(
                f"slot {slot} holds no checkpoint (held: {sorted(self._held)}); a restore must "
                "follow a store to the same slot"
            )
        pending = self._pending.get(slot)
        if pending is not None:  # still queued for writing: these are the leaves put
            self._drop_prefetch(slot)
            return pending[1], list(pending[2])
        fut = self._prefetched.pop(slot, None)
        if fut is None:
            fut = self._worker.submit(self._file.read, slot)
        concurrent.futures.wait([fut])
        self._reap()  # an earlier failed write explains more than this read can
        exc = fut.exception()
        if exc is not None:
            raise self._fail(exc, f"reading slot {slot} from") from exc
        return step, fut.result()

    def delete(self, slot: int) -> None:
        """Free ``slot``: its group stays in the file, marked free, for the next put."""
        self._check(f"delete slot {slot}")
        if self._held.pop(slot, None) is None:
            raise CheckpointError(
                f"slot {slot} holds no checkpoint to delete (held: {sorted(self._held)})"
            )
        # A write still queued goes ahead (the file shows every checkpoint that was stored);
        # the leaves it holds are no longer the caller's business.
        self._pending.pop(slot, None)
        self._drop_prefetch(slot)
        self._queue(f"freeing slot {slot} in", None, self._file.free, slot)
        self._reap()

    def prefetch(self, slot: int) -> None:
        """Start reading ``slot`` in the background, so that the next ``get(slot)`` is quick.

        A hint: ignored for a slot that holds nothing (yet) or is already being read ahead, and
        by ``background=False``. A slot whose write is still queued is read after that write.
        """
        self._check(f"prefetch slot {slot}")
        if self._worker.thread is None or slot not in self._held or slot in self._prefetched:
            return
        self._wait_for_writes()  # the memory budget (see `put`): one state held for I/O
        while len(self._prefetched) >= _MAX_PREFETCHED:
            oldest = next(iter(self._prefetched))
            self._drop_prefetch(oldest)
        self._prefetched[slot] = self._worker.submit(self._file.read, slot)

    def flush(self) -> None:
        """Wait until every queued write has reached the file, and flush it to disk."""
        self._check("flush")
        self._queue("flushing", None, self._file.flush)
        concurrent.futures.wait([job[0] for job in self._queued])
        self._reap()

    def close(self) -> None:
        """End the session (idempotent): finish queued writes, close the file, remove it unless
        ``keep=True``. Raises a `CheckpointError` if a queued write had failed unnoticed, or the
        file cannot be removed."""
        if self._finalizer.detach() is None:
            self._closed = True
            return
        self._closed = True
        self._pending.clear()
        self._prefetched.clear()
        errors = _release(self._res)
        if self._broken is None:
            for fut, doing, _ in self._queued:
                if not fut.cancelled() and fut.exception() is not None:
                    errors.insert(0, self._fail(fut.exception(), doing))  # type: ignore[arg-type]
                    break
        self._queued.clear()
        if errors:
            raise errors[0]

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
            return
        # An exception is already on its way: clean up, and do not hide it behind another.
        try:
            self.close()
        except CheckpointError:
            pass


class HDF5Storage(Storage):
    """Keep checkpoints in an HDF5 file, written with h5py.

    Each session (one run of one loop) writes one file: a new temporary file in the system's
    temporary directory when ``path`` is None, else the file at ``path``. The file has one group
    per checkpoint slot and one dataset per leaf of the state, with attributes giving the step,
    the structure of the state and the Python type of each leaf (the layout is described in
    `ckpt_transform.storage.hdf5`). Leaves come back equal in value, dtype, shape and type.

    The file is removed when the session closes (at the end of the run), unless ``keep=True``;
    it is also removed if the session is garbage-collected or the interpreter exits without a
    close. With ``keep=True`` it holds the checkpoints as they stand at the end (a freed slot is
    marked free and reused in place); `last_path` (and the session's ``path``) says where it is.

    Parameters
    ----------
    path
        The file to write (``~`` is expanded; a relative path is taken from the current
        directory when a session opens). Its directory must exist. A file already there is
        overwritten only if it is a checkpoint file written by this class; anything else is
        refused with a `CheckpointError`. One session at a time may use a given path.
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
            path = _temporary_path()
        else:
            path = os.path.abspath(os.path.expanduser(self.path))
        key = os.path.realpath(path)
        _register(key, path)
        created = temporary
        try:
            if not temporary:
                created = _claim(path)
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
            _unregister(key)
            if temporary:
                _remove_quietly(path)
            raise
        except Exception as exc:
            _unregister(key)
            if created:
                _remove_quietly(path)
            raise _io_error(path, "creating the checkpoint file", exc) from exc
        self.last_path = path
        return session


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
