"""HDF5Storage: round trips, the file layout, clean-up, background I/O and every error case.

The storage contract (tests named ``test_contract_*``) runs for every storage, with ArrayStorage as
the reference; the rest is about HDF5Storage alone.
"""

from __future__ import annotations

import errno
import gc
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from ckpt_transform.errors import CheckpointError
from ckpt_transform.storage.hdf5 import (
    FORMAT_NAME,
    FORMAT_VERSION,
    HDF5Session,
    HDF5Storage,
    layout,
    leaf_checksum,
)
from ckpt_transform.storage.memory import ArrayStorage

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def temporary_files_in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Temporary checkpoint files go to a directory of this test only, so it can be listed."""
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


def worker_threads(path: str) -> list[threading.Thread]:
    """The worker threads of the session writing ``path`` (named after its file)."""
    name = f"ckpt_transform-hdf5 {os.path.basename(path)}"
    return [t for t in threading.enumerate() if t.name == name]


def value_bytes(x: Any) -> bytes:
    """The bytes of a value; of an 80-bit long double (kept in 16 bytes) the 10 that hold it."""
    arr = np.array(x)
    if arr.dtype.kind in "fc" and arr.dtype.itemsize // (1 + (arr.dtype.kind == "c")) == 16:
        if np.finfo(arr.dtype).nmant == 63 and arr.dtype.isnative and sys.byteorder == "little":
            return arr.reshape(-1).view(np.uint8).reshape(-1, 16)[:, :10].tobytes()
    return arr.tobytes()


def assert_same_leaf(a: Any, b: Any) -> None:
    """Equal in Python type, dtype, shape and every bit (so -0.0 and NaN payloads count)."""
    assert type(b) is type(a), (a, b)
    if isinstance(a, (np.ndarray, np.generic)):
        assert b.dtype == a.dtype, (a.dtype, b.dtype)
        assert np.shape(b) == np.shape(a)
        assert value_bytes(b) == value_bytes(a)
    else:
        assert b == a or (a != a and b != b)
        assert np.asarray(b).tobytes() == np.asarray(a).tobytes()


def every_leaf_kind() -> list[tuple[str, Any]]:
    rng = np.random.default_rng(7)
    cases: list[tuple[str, Any]] = [
        ("float", 1.25),
        ("float -0.0", -0.0),
        ("float nan", float("nan")),
        ("float inf", float("-inf")),
        ("int", -12345),
        ("int int64 max", 2**63 - 1),
        ("int int64 min", -(2**63)),
        ("bool True", True),
        ("bool False", False),
        ("complex", 1.5 - 2.5j),
    ]
    dtypes = ["f2", "f4", "f8", "g", "c8", "c16", "G"]
    dtypes += ["i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "?", ">f8", ">i4", ">c16"]
    for dt in dtypes:
        dtype = np.dtype(dt)
        if dtype.kind == "b":
            arr = rng.random((3, 5)) < 0.5
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            arr = rng.integers(info.min, info.max, size=(3, 5), dtype=dtype.newbyteorder("="))
        elif dtype.kind == "c":
            arr = rng.standard_normal((3, 5)) + 1j * rng.standard_normal((3, 5))
        else:
            arr = rng.standard_normal((3, 5)) * 1e3
        arr = arr.astype(dtype)
        cases.append((f"array {dt}", arr))
        cases.append((f"0-d array {dt}", arr[1, 2].reshape(())))
        if dtype.byteorder in "=|":
            cases.append((f"numpy scalar {dt}", arr[0, 1]))
    cases += [
        ("array empty", np.zeros((0, 3))),
        ("array 1-d large", rng.standard_normal(5000)),
        ("array 4-d", rng.standard_normal((2, 3, 4, 5))),
        ("array view with steps", np.arange(40.0).reshape(5, 8)[::2, 1::3]),
        ("array Fortran order", np.asfortranarray(rng.standard_normal((4, 6)))),
        ("array special floats", np.array([np.nan, -np.inf, np.inf, -0.0, 5e-324])),
    ]
    return cases


LEAF_CASES = every_leaf_kind()

STORAGES: dict[str, Callable[[], Any]] = {
    "ArrayStorage": ArrayStorage,
    "ArrayStorage(copy=True)": lambda: ArrayStorage(copy=True),
    "HDF5Storage": HDF5Storage,
    "HDF5Storage(background=False)": lambda: HDF5Storage(background=False),
    "HDF5Storage(compression='gzip')": lambda: HDF5Storage(compression="gzip"),
    "HDF5Storage(compression='lzf', checksum=False)": lambda: HDF5Storage(
        compression="lzf", checksum=False
    ),
}


def settle(session: Any) -> None:
    """Make the next get read the file (not leaves still queued for writing)."""
    if isinstance(session, HDF5Session):
        session.flush()


def make_read_only(path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Make ``path`` (a file or a directory) refuse writes; return the undo.

    chmod is enough for an ordinary user. Root ignores permission bits, so then the path is made
    immutable (chattr +i); where even that is not possible, opening the path for writing is made
    to fail the way a read-only file system fails.
    """
    mode = path.stat().st_mode
    path.chmod(0o555 if path.is_dir() else 0o444)
    undo: list[Callable[[], None]] = [lambda: path.chmod(mode)]

    def writable() -> bool:
        probe = path / ".probe" if path.is_dir() else path
        try:
            fd = os.open(probe, os.O_WRONLY | (os.O_CREAT if path.is_dir() else 0), 0o600)
        except OSError:
            return False
        os.close(fd)
        if path.is_dir():
            os.unlink(probe)
        return True

    if writable():
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
        if done.returncode == 0:
            undo.insert(0, lambda: subprocess.run(["chattr", "-i", str(path)], check=True))
    if writable():
        real_open = os.open
        target = str(path)

        def refusing_open(name: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if str(name).startswith(target) and flags & (os.O_WRONLY | os.O_RDWR):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(name))
            return real_open(name, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", refusing_open)
        undo.insert(0, lambda: monkeypatch.setattr(os, "open", real_open))
    assert not writable()

    def restore() -> None:
        for step in undo:
            step()

    return restore


def kept_file(path: Path) -> Path:
    """An earlier checkpoint file of ours at ``path`` (kept with keep=True)."""
    with HDF5Storage(path, keep=True).session() as s:
        s.put(0, 1, [np.arange(3.0)], "(x,)")
    assert path.exists()
    return path


# --------------------------------------------------------------------------------------------
# the contract, for every storage
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", STORAGES.values(), ids=STORAGES.keys())
def test_contract_round_trip_of_every_leaf_kind(make: Callable[[], Any]) -> None:
    names = [name for name, _ in LEAF_CASES]
    leaves = [leaf for _, leaf in LEAF_CASES]
    with make().session() as s:
        s.put(2, 41, leaves, "(" + ", ".join(names) + ")")
        settle(s)
        step, out = s.get(2)
        assert step == 41
        assert len(out) == len(leaves)
        for name, a, b in zip(names, leaves, out):
            try:
                assert_same_leaf(a, b)
            except AssertionError as exc:
                raise AssertionError(f"{name}: put {a!r}, got {b!r}") from exc
        # A second get gives the same again (a checkpoint may be restored many times).
        for a, b in zip(leaves, s.get(2)[1]):
            assert_same_leaf(a, b)


@pytest.mark.parametrize("make", STORAGES.values(), ids=STORAGES.keys())
def test_contract_slot_reuse_and_misuse(make: Callable[[], Any]) -> None:
    with make().session() as s:
        s.put(0, 1, [np.arange(4.0), 1], "(x, n)")
        s.put(1, 2, [np.ones(2)], "(x,)")
        with pytest.raises(CheckpointError, match="slot 0 already holds the checkpoint of step 1"):
            s.put(0, 3, [np.zeros(4), 2], "(x, n)")
        s.delete(0)
        with pytest.raises(CheckpointError, match="slot 0 holds no checkpoint"):
            s.get(0)
        with pytest.raises(CheckpointError, match="slot 0 holds no checkpoint to delete"):
            s.delete(0)
        # Reuse with other values, another shape, dtype and number of leaves.
        s.put(0, 5, [np.full((2, 3), 7, dtype=np.int8), 2.5, 3j], "(y, a, b)")
        settle(s)
        step, (y, a, b) = s.get(0)
        assert step == 5 and a == 2.5 and b == 3j
        np.testing.assert_array_equal(y, np.full((2, 3), 7, dtype=np.int8))
        assert y.dtype == np.int8
        step, (x1,) = s.get(1)
        assert step == 2
        np.testing.assert_array_equal(x1, np.ones(2))
        s.prefetch(1)  # a hint; any storage accepts it
        assert s.get(1)[0] == 2
    s.close()  # idempotent
    with pytest.raises(CheckpointError, match="closed"):
        s.get(1)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "make",
    [HDF5Storage, lambda: HDF5Storage(background=False), lambda: HDF5Storage(compression=1)],
    ids=["background", "inline", "gzip-1"],
)
def test_contract_random_operations_agree_with_array_storage(
    make: Callable[[], Any], seed: int
) -> None:
    """A random stream of put/get/delete/prefetch/flush: HDF5 must answer as memory does."""
    rng = np.random.default_rng(seed)
    reference = ArrayStorage().session()
    with make().session() as s:
        held: set[int] = set()
        for step in range(300):
            slot = int(rng.integers(0, 4))
            op = rng.choice(
                ["put", "get", "delete", "prefetch", "flush"], p=[0.35, 0.3, 0.2, 0.1, 0.05]
            )
            if op == "put" and slot not in held:
                n = int(rng.choice([1, 100, 20000]))
                leaves = [rng.standard_normal(n), float(rng.standard_normal()), step]
                if rng.random() < 0.3:
                    leaves.append(rng.integers(0, 9, size=(2, 2)))
                for session in (reference, s):
                    session.put(slot, step, leaves, f"leaves of step {step}")
                held.add(slot)
            elif op == "get" and slot in held:
                want_step, want = reference.get(slot)
                got_step, got = s.get(slot)
                assert got_step == want_step
                assert len(got) == len(want)
                for a, b in zip(want, got):
                    assert_same_leaf(a, b)
            elif op == "delete" and slot in held:
                reference.delete(slot)
                s.delete(slot)
                held.discard(slot)
            elif op == "prefetch":
                s.prefetch(slot)
            elif op == "flush":
                s.flush()


# --------------------------------------------------------------------------------------------
# the file: layout, keep, clean-up
# --------------------------------------------------------------------------------------------


def reference_checksum(data: np.ndarray) -> tuple[int, int]:
    """The checksum by its definition, one word at a time (independent of the numpy version)."""
    raw = np.ascontiguousarray(data).tobytes()
    raw += b"\0" * (-len(raw) % 8)
    words = [int.from_bytes(raw[k : k + 8], "little") for k in range(0, len(raw), 8)]
    mask = (1 << 64) - 1
    return sum(words) & mask, sum(i * w for i, w in enumerate(words)) & mask


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1023, 1024, 1025, 4096 + 17])
@pytest.mark.parametrize("dtype", ["u1", "f2", "f8", "c16", ">i4"])
def test_leaf_checksum_matches_its_definition(n: int, dtype: str) -> None:
    data = (np.random.default_rng(n).standard_normal(n) * 1e4).astype(dtype)
    assert leaf_checksum(data) == reference_checksum(data)


def test_leaf_checksum_ignores_long_double_padding() -> None:
    data = np.arange(6, dtype=np.longdouble) / 3
    if np.finfo(np.longdouble).nmant != 63 or data.itemsize != 16:
        # Without x87 padding bytes there is nothing to ignore: every byte is value.
        assert leaf_checksum(data) == reference_checksum(data)
        return
    other = data.copy()
    other.view(np.uint8).reshape(-1, 16)[:, 10:] = 0xAB  # same values, other padding
    assert np.array_equal(other, data)
    assert leaf_checksum(other) == leaf_checksum(data)
    changed = data.copy()
    changed.view(np.uint8).reshape(-1, 16)[2, 0] ^= 1  # the lowest bit of a value
    assert leaf_checksum(changed) != leaf_checksum(data)


def test_leaf_checksum_sees_changes_and_moves() -> None:
    data = np.random.default_rng(0).standard_normal(5000)
    base = leaf_checksum(data)
    changed = data.copy()
    changed[1234] = np.nextafter(changed[1234], 1.0)  # one bit
    assert leaf_checksum(changed) != base
    swapped = data.copy()
    swapped[[10, 3000]] = swapped[[3000, 10]]
    assert leaf_checksum(swapped)[0] == base[0]  # the plain sum cannot see a swap ...
    assert leaf_checksum(swapped)[1] != base[1]  # ... the weighted one does


def test_kept_file_layout_read_back_with_plain_h5py(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    x = np.linspace(0.0, 1.0, 50)
    storage = HDF5Storage(path, keep=True)
    with storage.session() as s:
        assert s.path == str(path) and s.keep and not s.temporary
        s.put(0, 0, [x, 0.5, 3, np.float32(2.0), np.array(1.5), True, 1j], "heat(T, lam, ...)")
        s.put(1, 10, [x * 2, 0.25, 4, np.float32(1.0), np.array(2.5), False, 2j], "heat(T, ...)")
        s.put(2, 20, [x * 3], "(T,)")
        s.delete(2)  # freed: the group stays, marked free
        s.delete(1)
        s.put(1, 30, [x * 4, 0.125, 5, np.float32(0.5), np.array(3.5), True, 3j], "heat(T, ...)")
    assert storage.last_path == str(path)
    assert path.exists()

    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == FORMAT_NAME
        assert f.attrs["format_version"] == FORMAT_VERSION
        assert "layout" in f.attrs and "checksum_method" in f.attrs
        assert sorted(f) == ["slot_0", "slot_1", "slot_2"]
        g0, g1, g2 = f["slot_0"], f["slot_1"], f["slot_2"]
        assert (g0.attrs["step"], g1.attrs["step"], g2.attrs["step"]) == (0, 30, 20)
        assert (g0.attrs["state"], g1.attrs["state"], g2.attrs["state"]) == ("held", "held", "free")
        assert g0.attrs["structure"] == "heat(T, lam, ...)"
        assert g0.attrs["slot"] == 0 and g1.attrs["slot"] == 1
        assert g1.attrs["leaves"] == 7
        assert sorted(g1) == [f"leaf_{i}" for i in range(7)]
        types = [g1[f"leaf_{i}"].attrs["python_type"] for i in range(7)]
        assert types == ["ndarray", "float", "int", "numpy_scalar", "ndarray", "bool", "complex"]
        np.testing.assert_array_equal(g1["leaf_0"][()], x * 4)
        assert g1["leaf_1"][()] == 0.125 and g1["leaf_1"].dtype == np.float64
        assert g1["leaf_2"][()] == 5 and g1["leaf_2"].dtype == np.int64
        assert g1["leaf_3"].dtype == np.float32 and g1["leaf_4"].shape == ()
        assert g1["leaf_5"][()] == np.True_ and g1["leaf_6"][()] == 3j
        # The checksums in the file are those of the data in the file, by the definition.
        sums = g1.attrs["checksums"]
        assert sums.shape == (7, 2) and sums.dtype == np.uint64
        for i in range(7):
            data = np.asarray(g1[f"leaf_{i}"][()])
            assert tuple(int(v) for v in sums[i]) == reference_checksum(data)
        np.testing.assert_array_equal(g2["leaf_0"][()], x * 3)  # free, still readable


def test_freed_slot_is_overwritten_in_place(tmp_path: Path) -> None:
    path = tmp_path / "reuse.h5"
    big = np.random.default_rng(0).standard_normal(100_000)
    with HDF5Storage(path, keep=True).session() as s:
        for step in range(20):
            s.put(0, step, [big + step], "(x,)")
            s.flush()
            s.delete(0)
    # Twenty stores in one slot cost the space of one (plus metadata), not twenty.
    assert path.stat().st_size < 2 * big.nbytes
    with h5py.File(path, "r") as f:
        assert list(f) == ["slot_0"]
        assert f["slot_0"].attrs["step"] == 19
        np.testing.assert_array_equal(f["slot_0/leaf_0"][()], big + 19)


@pytest.mark.parametrize("background", [False, True])
def test_rewriting_a_slot_with_other_leaf_counts_keeps_the_attributes_true(
    tmp_path: Path, background: bool
) -> None:
    # The checksums attribute changes shape with the number of leaves, so it is replaced; HDF5
    # must not replace an attribute that is still open (it then keeps serving the old one).
    path = tmp_path / "counts.h5"
    rng = np.random.default_rng(1)
    for count in (1, 3, 2, 4, 1):
        leaves = [rng.standard_normal(5) for _ in range(count)]
        with HDF5Storage(path, keep=True, background=background).session() as s:
            for step in range(3):  # the same slot, rewritten: the last write stands
                s.put(0, step, [np.zeros(5)] * (1 + step), "x")
                s.flush()
                s.delete(0)
            s.put(0, 10, leaves, f"{count} leaves")
            s.flush()
            for a, b in zip(leaves, s.get(0)[1]):
                assert_same_leaf(a, b)
        with h5py.File(path, "r") as f:
            g = f["slot_0"]
            assert g.attrs["leaves"] == count and g.attrs["step"] == 10
            assert g.attrs["structure"] == f"{count} leaves"
            assert sorted(g) == [f"leaf_{i}" for i in range(count)]
            sums = g.attrs["checksums"]
            assert sums.shape == (count, 2)
            for i, leaf in enumerate(leaves):
                assert tuple(int(v) for v in sums[i]) == reference_checksum(leaf)


def test_earlier_checkpoint_file_of_ours_is_overwritten(tmp_path: Path) -> None:
    path = kept_file(tmp_path / "again.h5")
    with HDF5Storage(path, keep=True).session() as s:
        s.put(4, 9, [2.0], "(a,)")
    with h5py.File(path, "r") as f:
        assert list(f) == ["slot_4"]  # nothing of the earlier run is left
    with HDF5Storage(path).session() as s:  # keep=False: ours, so it is removed at the end
        s.put(0, 0, [1.0], "(a,)")
    assert not path.exists()


def test_temporary_file_lives_in_the_temp_dir_and_goes_away(
    temporary_files_in_tmp_path: Path,
) -> None:
    storage = HDF5Storage()
    s = storage.session()
    assert s.temporary and not s.keep
    assert Path(s.path).parent == temporary_files_in_tmp_path
    assert Path(s.path).exists() and storage.last_path == s.path
    s.put(0, 0, [np.ones(10)], "(x,)")
    s.close()
    assert not Path(s.path).exists()
    assert list(temporary_files_in_tmp_path.iterdir()) == []


def test_kept_temporary_file_says_where_it_is(temporary_files_in_tmp_path: Path) -> None:
    storage = HDF5Storage(keep=True)
    with storage.session() as s:
        s.put(0, 3, [np.ones(10)], "(x,)")
    assert storage.last_path == s.path
    with h5py.File(s.path, "r") as f:
        assert f["slot_0"].attrs["step"] == 3


@pytest.mark.parametrize("explicit", [False, True], ids=["temporary", "explicit path"])
def test_no_file_left_after_an_exception_in_the_with_block(
    tmp_path: Path, temporary_files_in_tmp_path: Path, explicit: bool
) -> None:
    path = tmp_path / "boom.h5" if explicit else None
    with pytest.raises(KeyError, match="the user's own error"):
        with HDF5Storage(path).session() as s:
            s.put(0, 0, [np.ones(1000)], "(x,)")
            raise KeyError("the user's own error")
    assert not Path(s.path).exists()
    assert list(temporary_files_in_tmp_path.iterdir()) == []
    assert s.closed


@pytest.mark.parametrize("cycle", [False, True], ids=["refcount", "cycle"])
def test_no_file_left_after_garbage_collection(
    temporary_files_in_tmp_path: Path, cycle: bool
) -> None:
    s = HDF5Storage().session()
    s.put(0, 0, [np.ones(100_000)], "(x,)")  # possibly still being written
    path = s.path
    if cycle:
        s.itself = s  # type: ignore[attr-defined]
    del s
    gc.collect()
    assert not os.path.exists(path)
    assert list(temporary_files_in_tmp_path.iterdir()) == []
    assert worker_threads(path) == []


def test_no_file_left_at_interpreter_exit(tmp_path: Path) -> None:
    tmp_path = tmp_path / "child"
    tmp_path.mkdir()
    script = (
        "import numpy as np\n"
        "from ckpt_transform.storage.hdf5 import HDF5Storage\n"
        "s = HDF5Storage().session()\n"
        "s.put(0, 0, [np.ones(100_000)], '(x,)')\n"
        "print(s.path)\n"
    )
    env = dict(os.environ, TMPDIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    printed = Path(done.stdout.strip())
    assert printed.parent == tmp_path
    assert list(tmp_path.iterdir()) == []


def test_worker_thread_ends_with_the_session() -> None:
    s = HDF5Storage().session()
    assert len(worker_threads(s.path)) == 1
    s.close()
    assert worker_threads(s.path) == []
    with HDF5Storage(background=False).session() as s:
        assert worker_threads(s.path) == []


# --------------------------------------------------------------------------------------------
# background I/O: write behind, read ahead
# --------------------------------------------------------------------------------------------


class Gate:
    """Holds the file writes of HDF5 sessions until opened (to catch a write in flight)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail: BaseException | None = None) -> None:
        self.open = threading.Event()
        self.entered = threading.Event()
        real_write = layout.CheckpointFile.write
        gate = self

        def gated_write(file: Any, *args: Any) -> None:
            gate.entered.set()
            assert gate.open.wait(30), "the gate was never opened"
            if fail is not None:
                raise fail
            real_write(file, *args)

        monkeypatch.setattr(layout.CheckpointFile, "write", gated_write)


@pytest.mark.parametrize("background", [True, False])
def test_a_written_state_is_let_go_before_the_next_call(
    monkeypatch: pytest.MonkeyPatch, background: bool
) -> None:
    """Once its write has reached the file, the session holds no reference to the state put:
    a state written near the end of the primal run must not stay in memory through the sweep,
    until the next disk action. Held while the write is in flight, so a get still sees it."""
    import weakref

    gate = Gate(monkeypatch)
    if not background:
        gate.open.set()
    x = np.arange(10.0)
    alive = weakref.ref(x)
    with HDF5Storage(background=background).session() as s:
        s.put(0, 1, [x], "x")
        del x
        if background:
            assert gate.entered.wait(30)
            assert alive() is not None  # the write is in flight: its leaves are held
            gate.open.set()
            deadline = threading.Event()
            for _ in range(3000):  # the worker lets go right after the write, no call needed
                if alive() is None:
                    break
                deadline.wait(0.01)
        gc.collect()
        assert alive() is None
        step, (y,) = s.get(0)  # read back from the file
        assert step == 1
        np.testing.assert_array_equal(y, np.arange(10.0))


def test_get_during_a_write_in_flight_sees_the_leaves_put(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(monkeypatch)
    x = np.arange(10.0)
    with HDF5Storage().session() as s:
        s.put(0, 1, [x, 2.0], "(x, c)")
        assert gate.entered.wait(30)
        step, (y, c) = s.get(0)  # the write has not reached the file
        assert step == 1 and c == 2.0
        np.testing.assert_array_equal(y, x)
        gate.open.set()
        s.flush()
        step, (y, c) = s.get(0)  # now from the file
        np.testing.assert_array_equal(y, x)
        assert y is not x


def test_prefetch_of_a_slot_later_rewritten_is_not_served(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with HDF5Storage().session() as s:
        s.put(0, 1, [np.zeros(1000)], "(x,)")
        s.flush()
        s.prefetch(0)  # reads the old data ahead ...
        s.delete(0)
        gate = Gate(monkeypatch)
        s.put(0, 2, [np.ones(1000)], "(x,)")  # ... then the slot is rewritten (still in flight)
        step, (y,) = s.get(0)
        assert step == 2 and np.all(y == 1.0)
        gate.open.set()
        s.flush()
        s.prefetch(0)
        step, (y,) = s.get(0)
        assert step == 2 and np.all(y == 1.0)


def test_prefetched_read_is_used_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real_read = layout.CheckpointFile.read

    def counting_read(file: Any, slot: int) -> Any:
        calls.append(slot)
        return real_read(file, slot)

    monkeypatch.setattr(layout.CheckpointFile, "read", counting_read)
    with HDF5Storage().session() as s:
        s.put(3, 1, [np.arange(5.0)], "(x,)")
        s.flush()
        s.prefetch(3)
        s.prefetch(3)  # already on its way: not read twice
        assert s.get(3)[0] == 1
        assert calls == [3]
        assert s.get(3)[0] == 1  # the read-ahead was consumed: read again
        assert calls == [3, 3]
        s.prefetch(7)  # a slot that holds nothing: ignored
        assert calls == [3, 3]


def test_prefetch_during_a_write_in_flight_reads_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real_read = layout.CheckpointFile.read

    def counting_read(file: Any, slot: int) -> Any:
        calls.append(slot)
        return real_read(file, slot)

    monkeypatch.setattr(layout.CheckpointFile, "read", counting_read)
    with HDF5Storage().session() as s:
        s.put(1, 1, [np.zeros(1000)], "(x,)")
        s.flush()
        s.delete(1)
        gate = Gate(monkeypatch)
        s.put(1, 2, [np.arange(1000.0)], "(x,)")
        assert gate.entered.wait(30)
        # The read ahead waits for the write of step 2, which has not reached the file (one
        # state at most is held for I/O).
        reader = threading.Thread(target=s.prefetch, args=(1,))
        reader.start()
        reader.join(0.3)
        assert reader.is_alive() and calls == []
        gate.open.set()
        reader.join(30)
        s.flush()  # the write is done: the get must use the read ahead, not the leaves put
        step, (y,) = s.get(1)
        assert step == 2 and calls == [1]
        np.testing.assert_array_equal(y, np.arange(1000.0))


def test_writes_waiting_for_the_disk_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(monkeypatch)
    stored: list[int] = []
    with HDF5Storage().session() as s:

        def store_four() -> None:
            for slot in range(4):
                s.put(slot, slot, [np.full(10, float(slot))], "(x,)")
                stored.append(slot)

        producer = threading.Thread(target=store_four)
        producer.start()
        assert gate.entered.wait(30)
        # The first write is held up at the file. One write at most may be unfinished, so the
        # second put waits (and holds no second state for writing).
        producer.join(0.5)
        assert stored == [0]
        gate.open.set()
        producer.join(30)
        assert stored == [0, 1, 2, 3]
        s.flush()
        for slot in range(4):
            assert s.get(slot)[1][0][0] == float(slot)


def test_a_put_while_a_read_ahead_is_held_writes_through(monkeypatch: pytest.MonkeyPatch) -> None:
    with HDF5Storage().session() as s:
        s.put(0, 1, [np.zeros(100)], "(x,)")
        s.prefetch(0)  # holds (or will hold) the state of slot 0
        gate = Gate(monkeypatch)
        done = threading.Event()

        def store() -> None:
            s.put(1, 2, [np.ones(100)], "(x,)")
            done.set()

        producer = threading.Thread(target=store)
        producer.start()
        assert gate.entered.wait(30)
        # A second state is not left waiting for the disk: put returns once it is written.
        assert not done.wait(0.3)
        gate.open.set()
        producer.join(30)
        assert done.is_set()
        assert s.get(0)[0] == 1 and s.get(1)[0] == 2


def test_error_in_the_worker_surfaces_at_the_next_call(
    monkeypatch: pytest.MonkeyPatch, temporary_files_in_tmp_path: Path
) -> None:
    gate = Gate(monkeypatch, fail=OSError(errno.ENOSPC, "No space left on device"))
    s = HDF5Storage().session()
    s.put(0, 4, [np.ones(100)], "(x,)")  # returns before the write fails
    gate.open.set()
    with pytest.raises(CheckpointError) as info:
        s.flush()
    message = str(info.value)
    assert s.path in message and "slot 0 (step 4)" in message and "disk is full" in message
    # The session is broken from now on: no call may go on as if the checkpoint were there.
    for call in (lambda: s.get(0), lambda: s.put(1, 5, [1.0], "(a,)"), lambda: s.delete(0)):
        with pytest.raises(CheckpointError, match=r"an earlier operation .* failed"):
            call()
    s.close()  # the failure was already reported: close just cleans up
    assert list(temporary_files_in_tmp_path.iterdir()) == []


def test_unreported_failure_is_raised_by_close(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(monkeypatch, fail=OSError(errno.EIO, "Input/output error"))
    s = HDF5Storage().session()
    s.put(0, 4, [np.ones(100)], "(x,)")
    gate.open.set()
    with pytest.raises(CheckpointError, match=r"writing slot 0 .*Input/output error"):
        s.close()
    s.close()  # idempotent: reported once
    assert not os.path.exists(s.path)


# --------------------------------------------------------------------------------------------
# errors: paths
# --------------------------------------------------------------------------------------------


def test_missing_directory(tmp_path: Path) -> None:
    path = tmp_path / "no such dir" / "run.h5"
    with pytest.raises(CheckpointError, match="does not exist") as info:
        HDF5Storage(path).session()
    assert str(path) in str(info.value) and "os.makedirs" in str(info.value)
    assert not path.parent.exists()


def test_path_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a directory")
    path = tmp_path / "afile" / "run.h5"
    with pytest.raises(CheckpointError, match="is a file, not a directory") as info:
        HDF5Storage(path).session()
    assert str(path) in str(info.value)


def test_path_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="is a directory"):
        HDF5Storage(tmp_path).session()


def test_read_only_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    restore = make_read_only(folder, monkeypatch)
    try:
        with pytest.raises(CheckpointError, match="is read-only") as info:
            HDF5Storage(folder / "run.h5").session()
        assert str(folder / "run.h5") in str(info.value)
    finally:
        restore()
    assert list(folder.iterdir()) == []


def test_read_only_file_of_ours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = kept_file(tmp_path / "kept.h5")
    before = path.read_bytes()
    restore = make_read_only(path, monkeypatch)
    try:
        with pytest.raises(CheckpointError, match="is read-only") as info:
            HDF5Storage(path).session()
        assert str(path) in str(info.value)
    finally:
        restore()
    assert path.read_bytes() == before


def test_read_only_system_directory_as_any_user() -> None:
    # /sys refuses new files even to root.
    if not os.path.isdir("/sys"):
        pytest.fail("this test expects a Linux /sys")
    with pytest.raises(CheckpointError, match=r"'/sys/ckpt\.h5'"):
        HDF5Storage("/sys/ckpt.h5").session()


FOREIGN = {
    "text file": lambda p: p.write_text("results I care about\n"),
    "empty file": lambda p: p.write_bytes(b""),
    "foreign HDF5 file": lambda p: _foreign_hdf5(p),
    "corrupted HDF5 file": lambda p: p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00garbage" * 64),
}


def _foreign_hdf5(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(5)
        f.attrs["format"] = "someone else's"


@pytest.mark.parametrize("keep", [False, True])
@pytest.mark.parametrize("make", FOREIGN.values(), ids=FOREIGN.keys())
def test_foreign_file_is_never_touched(
    tmp_path: Path, make: Callable[[Path], None], keep: bool
) -> None:
    path = tmp_path / "precious.h5"
    make(path)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match="never overwrites or deletes a file") as info:
        HDF5Storage(path, keep=keep).session()
    assert str(path) in str(info.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.h5", "tmpdir"]


def test_two_sessions_on_one_path(tmp_path: Path) -> None:
    path = tmp_path / "shared.h5"
    first = HDF5Storage(path).session()
    first.put(0, 0, [np.ones(3)], "(x,)")
    with pytest.raises(CheckpointError, match="already in use by another open") as info:
        HDF5Storage(path).session()
    assert str(path) in str(info.value)
    # The refusal did not harm the first session's file.
    first.flush()
    np.testing.assert_array_equal(first.get(0)[1][0], np.ones(3))
    first.close()
    with HDF5Storage(path).session() as second:  # free again once the first has closed
        second.put(0, 0, [1.0], "(a,)")


def test_path_in_use_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "busy.h5"
    script = (
        "import sys\n"
        "from ckpt_transform.errors import CheckpointError\n"
        "from ckpt_transform.storage.hdf5 import HDF5Storage\n"
        "try:\n"
        "    HDF5Storage(sys.argv[1]).session()\n"
        "except CheckpointError as exc:\n"
        "    print(exc)\n"
    )
    with HDF5Storage(path).session() as s:
        s.put(0, 0, [np.arange(3.0)], "(x,)")
        s.flush()
        done = subprocess.run(
            [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert "is in use by another process" in done.stdout and str(path) in done.stdout
        np.testing.assert_array_equal(s.get(0)[1][0], np.arange(3.0))


def test_two_temporary_sessions_at_once_are_independent() -> None:
    storage = HDF5Storage()
    with storage.session() as a, storage.session() as b:
        assert a.path != b.path
        a.put(0, 1, [1.0], "(a,)")
        b.put(0, 2, [2.0], "(a,)")
        assert a.get(0) == (1, [1.0]) and b.get(0) == (2, [2.0])


# --------------------------------------------------------------------------------------------
# errors: what is held, and the disk
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("leaf", "named"),
    [
        (object(), "builtins.object"),
        ("a string", "builtins.str"),
        (b"bytes", "builtins.bytes"),
        (None, "builtins.NoneType"),
        ([1.0, 2.0], "builtins.list"),
        (np.array(["a", "b"]), "dtype <U1"),
        (np.array([1, None], dtype=object), "dtype object"),
        (np.array(["2020-01-01"], dtype="datetime64[D]"), "dtype datetime64"),
        (np.str_("s"), "dtype <U1"),
        (np.ma.masked_array([1.0]), "MaskedArray"),
        (2**70, "does not fit in 64 bits"),
    ],
    ids=lambda v: type(v).__name__,
)
def test_leaf_it_cannot_hold(leaf: Any, named: str) -> None:
    with HDF5Storage().session() as s:
        with pytest.raises(CheckpointError, match="cannot hold leaf 1 of the state") as info:
            s.put(0, 0, [np.ones(2), leaf], "(x, y)")
        assert named in str(info.value)
        # Nothing was stored and the session is still usable.
        with pytest.raises(CheckpointError, match="holds no checkpoint"):
            s.get(0)
        s.put(0, 0, [np.ones(2), 1.0], "(x, y)")
        assert s.get(0)[1][1] == 1.0


@pytest.mark.parametrize("background", [False, True])
@pytest.mark.parametrize(
    "where", ["write_leaf", "create_dataset"], ids=["writing data", "making a dataset"]
)
@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(
            "Can't write data (file write failed: errno = 28, "
            "error message = 'No space left on device')"
        ),
    ],
    ids=["errno", "h5py message"],
)
def test_disk_full(
    monkeypatch: pytest.MonkeyPatch,
    temporary_files_in_tmp_path: Path,
    background: bool,
    where: str,
    error: OSError,
) -> None:
    s = HDF5Storage(background=background).session()

    def full(*args: Any, **kwargs: Any) -> None:
        raise error

    # h5py's errors are OSErrors, with errno set or only the C library's text; the data is
    # written with h5py's low-level call (through layout.write_leaf), new datasets made by
    # h5py.Group.
    if where == "create_dataset":
        monkeypatch.setattr(h5py.Group, "create_dataset", full)
    else:
        s.put(0, 6, [np.zeros(1000)], "(x,)")  # the dataset exists: the next put rewrites it
        s.flush()
        s.delete(0)
        monkeypatch.setattr(layout, "write_leaf", full)
    with pytest.raises(CheckpointError) as info:
        s.put(0, 7, [np.ones(1000)], "(x,)")
        s.flush()  # with a background write, the error comes at the next call
    message = str(info.value)
    assert s.path in message and "disk is full" in message and "slot 0 (step 7)" in message
    s.close()
    assert list(temporary_files_in_tmp_path.iterdir()) == []


def test_file_size_limit_of_the_operating_system(tmp_path: Path) -> None:
    """A real write failure inside HDF5: the file may not grow past 1 MB (RLIMIT_FSIZE)."""
    script = (
        "import resource, signal, sys\n"
        "import numpy as np\n"
        "from ckpt_transform.errors import CheckpointError\n"
        "from ckpt_transform.storage.hdf5 import HDF5Storage\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of the process\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))\n"
        "for background in (False, True):\n"
        "    s = HDF5Storage(sys.argv[1], background=background).session()\n"
        "    try:\n"
        "        s.put(0, 3, [np.ones(10**6)], '(x,)')\n"
        "        s.flush()\n"
        "        print('no error')\n"
        "    except CheckpointError as exc:\n"
        "        print(exc)\n"
        "    s.close()\n"
    )
    path = tmp_path / "limited.h5"
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        assert "writing slot 0 (step 3)" in line and str(path) in line
        assert "ulimit -f" in line
    assert not path.exists()


def test_disk_full_when_creating_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(layout.CheckpointFile, "__init__", full)
    path = tmp_path / "new.h5"
    with pytest.raises(CheckpointError, match="disk is full") as info:
        HDF5Storage(path).session()
    assert str(path) in str(info.value)
    assert not path.exists()  # the file this call created is gone again


def _find(path: str, needle: bytes) -> int:
    with open(path, "rb") as f:
        content = f.read()
    at = content.find(needle)
    assert at >= 0 and content.find(needle, at + 1) < 0, "the data must be in the file once"
    return at


@pytest.mark.parametrize("background", [False, True])
def test_corrupted_file_on_read(background: bool) -> None:
    x = np.random.default_rng(3).standard_normal(50_000)  # beyond HDF5's small-data buffers
    with HDF5Storage(background=background).session() as s:
        s.put(0, 2, [x, 1.0], "(x, c)")
        s.flush()
        at = _find(s.path, x.tobytes()[:64])
        with open(s.path, "r+b") as f:  # another program scribbles over the data
            f.seek(at + 8 * 20_000)
            f.write(b"\xff" * 16)
        with pytest.raises(CheckpointError, match="is corrupted: slot 0") as info:
            s.get(0)
        assert s.path in str(info.value) and "checksum" in str(info.value)
        with pytest.raises(CheckpointError, match="an earlier operation"):
            s.get(0)


def test_corrupted_compressed_data_on_read() -> None:
    x = np.tile(np.arange(100.0), 500)
    with HDF5Storage(compression="gzip", checksum=False).session() as s:
        s.put(0, 2, [x], "(x,)")
        s.flush()
        chunk = s._file.slots[0].leaves[0].dataset.id.get_chunk_info(0)
        assert chunk.size < x.nbytes / 4  # it is compressed
        with open(s.path, "r+b") as f:  # zero the middle of the compressed chunk
            f.seek(chunk.byte_offset + chunk.size // 2)
            f.write(b"\x00" * 64)
        with pytest.raises(CheckpointError, match="corrupted"):
            s.get(0)


# --------------------------------------------------------------------------------------------
# compression
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["gzip", "lzf", 0, 9])
def test_compression_round_trips_exactly_and_shrinks_the_file(
    tmp_path: Path, compression: str | int
) -> None:
    rng = np.random.default_rng(5)
    smooth = np.repeat(rng.standard_normal(100), 1000)  # compressible
    noisy = rng.standard_normal(20_000)
    special = np.array([np.nan, -0.0, np.inf, -np.inf, 5e-324] * 2000)
    small = np.arange(10.0)  # below the size worth compressing
    leaves = [smooth, noisy, special, small, rng.integers(0, 3, 10_000).astype(np.int16)]
    path = tmp_path / "c.h5"
    with HDF5Storage(path, keep=True, compression=compression).session() as s:
        s.put(0, 0, leaves, "(...)")
        s.flush()
        for a, b in zip(leaves, s.get(0)[1]):
            assert_same_leaf(a, b)
    plain = tmp_path / "plain.h5"
    with HDF5Storage(plain, keep=True).session() as s:
        s.put(0, 0, leaves, "(...)")
    with h5py.File(path, "r") as f:
        g = f["slot_0"]
        expected = "lzf" if compression == "lzf" else "gzip"
        assert g["leaf_0"].compression == expected and g["leaf_0"].shuffle
        if isinstance(compression, int):
            assert g["leaf_0"].compression_opts == compression
        assert g["leaf_3"].compression is None
    if compression != 0:
        assert path.stat().st_size < 0.75 * plain.stat().st_size


# --------------------------------------------------------------------------------------------
# the constructor
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["zip", "GZIP", "szip", 10, -1, True, 4.0])
def test_bad_compression_is_refused(bad: Any) -> None:
    error = TypeError if isinstance(bad, float) else ValueError
    with pytest.raises(error, match="compression"):
        HDF5Storage(compression=bad)
    if error is ValueError:
        with pytest.raises(ValueError, match=r'allowed are None .*"gzip", "lzf", or an int'):
            HDF5Storage(compression=bad)


@pytest.mark.parametrize(
    "kwargs", [{"path": 3}, {"keep": "yes"}, {"checksum": 1}, {"background": None}]
)
def test_bad_argument_types_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(TypeError, match=next(iter(kwargs))):
        HDF5Storage(**kwargs)


def test_empty_path_is_refused() -> None:
    with pytest.raises(ValueError, match="give a file path, or None"):
        HDF5Storage("")


def test_repr(tmp_path: Path) -> None:
    assert repr(HDF5Storage()) == "HDF5Storage(None, keep=False, compression=None)"
    assert (
        repr(HDF5Storage("run.h5", keep=True, compression=4, background=False))
        == "HDF5Storage('run.h5', keep=True, compression=4, background=False)"
    )
    assert repr(HDF5Storage(tmp_path / "x.h5", checksum=False)).endswith("checksum=False)")
    s = HDF5Storage(tmp_path / "x.h5").session()
    s.put(1, 0, [1.0], "(a,)")
    assert repr(s) == f"<HDF5Session {str(tmp_path / 'x.h5')!r} open: 1 slot(s) held, keep=False>"
    s.close()
    assert "closed" in repr(s)


def test_relative_and_home_paths_are_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    with HDF5Storage("rel.h5").session() as s:
        assert s.path == str(tmp_path / "rel.h5")
    with HDF5Storage("~/h.h5").session() as s:
        assert s.path == str(tmp_path / "home" / "h.h5")


def test_pathlike_paths(tmp_path: Path) -> None:
    with HDF5Storage(tmp_path / "p.h5").session() as s:
        assert s.path == str(tmp_path / "p.h5")
