"""The checkpoint file format: its layout, how leaves are encoded, checksummed, written and read.

File layout (format ``"ckpt_transform checkpoint"``, version 1)::

    /                      attrs: format, format_version, writer, layout
    /slot_<k>              one group per checkpoint slot k
        attrs: slot, step, structure, leaves (count), state ("held" | "free"),
               checksums (leaves x 2 uint64, see `leaf_checksum`; when checksums are on)
    /slot_<k>/leaf_<i>     one dataset per leaf i of the state
        attrs: python_type ("float" | "int" | "bool" | "complex" | "numpy_scalar" | "ndarray")

A freed slot keeps its group, marked ``state="free"``; the next write to that slot overwrites its
datasets in place (or replaces those whose shape or dtype changed). So a file kept with
``keep=True`` holds the checkpoints as they stand at the end of the run. A `CheckpointFile` is only
ever touched from one thread at a time (the session's worker, or the caller).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ckpt_transform.errors import CheckpointError
from ckpt_transform.storage.hdf5.errors import corrupted, one_line, short_repr

__all__ = [
    "COMPRESS_MIN_BYTES",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CheckpointFile",
    "decode",
    "encode",
    "leaf_checksum",
    "load_h5py",
    "write_leaf",
]

FORMAT_NAME = "ckpt_transform checkpoint"
"""Value of the root attribute ``format`` that marks a file as written by this module."""
FORMAT_VERSION = 1
"""Value of the root attribute ``format_version`` (the layout described in this module)."""

COMPRESS_MIN_BYTES = 4096
"""Arrays smaller than this (and 0-d arrays and scalars) are stored uncompressed."""

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


def load_h5py() -> Any:
    # h5py is imported on first use, so `import ckpt_transform` stays light.
    import h5py

    return h5py


# --------------------------------------------------------------------------------------------
# Leaves: what can be held, and how it comes back
# --------------------------------------------------------------------------------------------


def encode(leaf: Any, index: int) -> tuple[str, np.ndarray]:
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
            f"{t.__module__}.{t.__qualname__} ({short_repr(leaf)}). It holds numpy arrays and "
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


def decode(kind: str, arr: np.ndarray) -> Any:
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


def _c_contiguous(arr: np.ndarray) -> np.ndarray:
    # np.ascontiguousarray would turn a 0-d array into a 1-d one.
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


# --------------------------------------------------------------------------------------------
# The file itself
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


class CheckpointFile:
    """The open HDF5 file of one session, and an index of its groups and datasets.

    The index (and the checksums) kept here are the reference: a read checks the data in the
    file against them, and trusts no attribute read back from the file.
    """

    def __init__(self, path: str, compression: str | int | None, checksum: bool) -> None:
        h5py = self.h5py = load_h5py()
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
                write_leaf(leaf.dataset, data)
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
            raise corrupted(self.path, slot, "its group was never written")
        everything = self.h5py.h5s.ALL
        sums = rec.sums if self.checksum else None
        leaves = []
        try:
            for i, leaf in enumerate(rec.leaves):
                out = np.empty(leaf.shape, dtype=leaf.dtype)
                if out.size:
                    leaf.dataset.id.read(everything, everything, out)
                if sums is not None and leaf_checksum(out) != (int(sums[i, 0]), int(sums[i, 1])):
                    raise corrupted(self.path, slot, f"leaf {i} does not match its checksum")
                leaves.append(decode(leaf.kind, out))
        except CheckpointError:
            raise
        except Exception as exc:
            raise corrupted(self.path, slot, f"it cannot be read ({one_line(exc)})") from exc
        return leaves

    def free(self, slot: int) -> None:
        rec = self.slots.get(slot)
        if rec is not None:
            rec.state.write(self.free_)

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def write_leaf(dataset: Any, data: np.ndarray) -> None:
    """Write all of ``dataset`` from ``data`` (same shape and dtype, C-contiguous).

    h5py's low-level call: a quarter of the time of ``Dataset.write_direct``, which matters for
    states of many small leaves.
    """
    everything = load_h5py().h5s.ALL
    dataset.id.write(everything, everything, data)


def _writer() -> str:
    try:
        from importlib.metadata import version

        return f"ckpt_transform {version('ckpt_transform')}"
    except Exception:
        return "ckpt_transform"
