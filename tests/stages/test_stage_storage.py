"""Where a stage's inputs wait: a `Storage` session, filled forward, emptied in reverse."""

from __future__ import annotations

import gc
from collections.abc import Sequence
from typing import Any

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad, make_vjp

from ckpt_transform.errors import CheckpointError
from ckpt_transform.stages import checkpoint_stage
from ckpt_transform.storage.base import Storage, StorageSession


class RecordingSession(StorageSession):
    """Holds copies of the leaves, and writes down every call in the shared log."""

    def __init__(self, log: list, fail_on_put: bool) -> None:
        self.log = log
        self.fail_on_put = fail_on_put
        self.slots: dict[int, tuple[int, list[Any]]] = {}
        self.closed = False

    def put(self, slot: int, step: int, leaves: Sequence[Any], structure: str) -> int:
        assert not self.closed and slot not in self.slots
        if self.fail_on_put:
            raise CheckpointError("disk full (simulated)")
        self.log.append(("put", slot, [type(leaf).__name__ for leaf in leaves], structure))
        self.slots[slot] = (step, [np.copy(v) if isinstance(v, np.ndarray) else v for v in leaves])
        return 0

    def get(self, slot: int) -> tuple[int, list[Any]]:
        assert not self.closed
        self.log.append(("get", slot))
        step, leaves = self.slots[slot]
        return step, [np.copy(v) if isinstance(v, np.ndarray) else v for v in leaves]

    def delete(self, slot: int) -> None:
        assert not self.closed
        self.log.append(("delete", slot))
        del self.slots[slot]

    def close(self) -> None:
        if not self.closed:
            self.log.append(("close", sorted(self.slots)))
        self.closed = True


class RecordingStorage(Storage):
    def __init__(self, fail_on_put: bool = False) -> None:
        self.log: list = []
        self.fail_on_put = fail_on_put

    def session(self) -> StorageSession:
        self.log.append(("open",))
        return RecordingSession(self.log, self.fail_on_put)


def kinds(log: list) -> list:
    return [entry[:2] if entry[0] in ("put", "get", "delete") else entry[:1] for entry in log]


@pytest.mark.parametrize("method", ["recompute", "forward", "fd"])
def test_chain_fills_forward_and_frees_as_reverse_passes(method: str) -> None:
    storage = RecordingStorage()
    stage = checkpoint_stage(method, storage=storage)(lambda x: anp.sin(x) * 1.5)

    def chain(f, x):
        for _ in range(3):
            x = f(x)
        return anp.sum(x)

    x = np.array([0.3, -0.2])
    expected = grad(lambda x: chain(stage.original, x))(x)
    np.testing.assert_allclose(grad(lambda x: chain(stage, x))(x), expected, rtol=1e-6)
    # One session for the chain; stage k's inputs are read and freed before stage k-1's adjoint.
    assert kinds(storage.log) == [
        ("open",),
        ("put", 0),
        ("put", 1),
        ("put", 2),
        ("get", 2),
        ("delete", 2),
        ("get", 1),
        ("delete", 1),
        ("get", 0),
        ("delete", 0),
        ("close",),
    ]
    assert storage.log[-1] == ("close", [])


def test_untraced_calls_touch_no_storage() -> None:
    storage = RecordingStorage()
    stage = checkpoint_stage(storage=storage)(anp.sin)
    stage(np.ones(3))
    assert storage.log == []


def test_dropped_without_reverse_frees_and_closes() -> None:
    storage = RecordingStorage()
    stage = checkpoint_stage(storage=storage)(anp.cos)
    pull, _ = make_vjp(lambda x: stage(stage(x)))(np.ones(2))
    assert kinds(storage.log) == [("open",), ("put", 0), ("put", 1)]
    del pull
    gc.collect()
    assert sorted(kinds(storage.log)[3:5]) == [("delete", 0), ("delete", 1)]
    assert storage.log[-1] == ("close", [])


def test_a_new_run_opens_a_new_session() -> None:
    storage = RecordingStorage()
    stage = checkpoint_stage(storage=storage)(anp.sin)
    grad(lambda x: anp.sum(stage(x)))(np.ones(2))
    grad(lambda x: anp.sum(stage(x)))(np.ones(2))
    assert [e[0] for e in storage.log].count("open") == 2
    assert [e[0] for e in storage.log].count("close") == 2


def test_what_goes_to_storage_and_what_stays_in_memory() -> None:
    """Arrays, floats and ints are stored; strings, None and functions stay in memory."""
    storage = RecordingStorage()

    def body(x, n, label, scale, fn, nothing):
        assert label == "tag" and fn is anp.tanh and nothing is None and isinstance(n, int)
        return fn(x) * scale * n

    stage = checkpoint_stage(storage=storage)(body)
    gx = grad(lambda x: anp.sum(stage(x, 2, "tag", 0.5, anp.tanh, None)))(np.ones(2))
    np.testing.assert_allclose(gx, (1 - np.tanh(1.0) ** 2) * np.ones(2))
    put = next(e for e in storage.log if e[0] == "put")
    assert put[2] == ["ndarray", "int", "float"]
    assert put[3] == "stage body: inputs (leaf, leaf, static, leaf, static, static)"


def test_user_vjp_gets_its_output_back_from_storage() -> None:
    storage = RecordingStorage()
    seen = []

    def vjp(g, ans, x):
        seen.append(ans)
        return (g * anp.cos(x),)

    stage = checkpoint_stage(vjp, storage=storage)(anp.sin)
    x = np.array([0.1, 0.4])
    grad(lambda x: anp.sum(stage(x)))(x)
    put = next(e for e in storage.log if e[0] == "put")
    assert put[2] == ["ndarray", "ndarray"]  # the input and the output
    assert put[3] == "stage sin: inputs (leaf,), output leaf"
    np.testing.assert_array_equal(seen[0], np.sin(x))


def test_storage_failure_propagates_and_leaves_nothing_open() -> None:
    storage = RecordingStorage(fail_on_put=True)
    stage = checkpoint_stage(storage=storage)(anp.sin)
    with pytest.raises(CheckpointError, match="disk full"):
        grad(lambda x: anp.sum(stage(x)))(np.ones(2))
    assert storage.log == [("open",), ("close", [])]


def test_higher_order_with_storage() -> None:
    """A second derivative through a stage whose inputs go to storage, against autograd."""
    storage = RecordingStorage()
    stage = checkpoint_stage(storage=storage)(anp.sin)

    def f(x):
        return stage(stage(x) * x)

    def plain(x):
        return anp.sin(anp.sin(x) * x)

    assert grad(grad(f))(0.3) == pytest.approx(grad(grad(plain))(0.3), rel=1e-14)
    assert storage.log[-1][0] == "close"  # every session the run opened is closed


def test_dataclass_fields_go_to_storage() -> None:
    import dataclasses
    import weakref

    @dataclasses.dataclass
    class Rod:
        T: Any
        k: float
        steps: int
        label: str

    storage = RecordingStorage()

    def body(rod):
        return Rod(T=anp.sin(rod.T) * rod.k, k=rod.k, steps=rod.steps + 1, label=rod.label)

    stage = checkpoint_stage(storage=storage)(body)
    held = []

    def loss(t):
        middle = stage(Rod(T=t * 2.0, k=0.5, steps=0, label="rod"))
        held.append(weakref.ref(middle._value.T))  # the middle state's array, as computed
        return anp.sum(stage(middle).T)

    t = np.array([0.1, 0.2])
    pull, _ = make_vjp(loss)(t)
    # Between the sweeps, the middle state's array lives only in storage (a copy there).
    gc.collect()
    assert held[0]() is None
    put = [e for e in storage.log if e[0] == "put"]
    assert put[0][2] == ["ndarray", "float", "int"]
    assert put[0][3] == "stage body: inputs (Rod(T=leaf, k=leaf, steps=leaf, label=static),)"
    expected = grad(lambda t: anp.sum(body(body(Rod(t * 2.0, 0.5, 0, "rod"))).T))(t)
    np.testing.assert_allclose(pull(1.0), expected, rtol=1e-12)


@pytest.mark.parametrize("method", ["recompute", "fd", "analytic"])
@pytest.mark.parametrize("copy", [False, True])
def test_array_storage(method: str, copy: bool) -> None:
    from ckpt_transform.storage.memory import ArrayStorage

    adjoint = (
        (lambda g, ans, x, c: (g * c * anp.cos(x), anp.sum(g * anp.sin(x))))
        if (method == "analytic")
        else method
    )
    stage = checkpoint_stage(adjoint, storage=ArrayStorage(copy=copy))(lambda x, c: anp.sin(x) * c)

    def chain(f, x, c):
        for _ in range(4):
            x = f(x, c) + 0.1
        return anp.sum(x**2)

    x = np.linspace(-1, 1, 5)
    got = grad(lambda x, c: chain(stage, x, c), (0, 1))(x, 1.2)
    want = grad(lambda x, c: chain(stage.original, x, c), (0, 1))(x, 1.2)
    tol = 1e-6 if method == "fd" else 1e-12
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=tol)


def _chain_loss(f, x):
    for _ in range(3):
        x = f(x) * 1.1
    return anp.sum(x)


def test_hdf5_storage_file_removed_after_reverse(tmp_path) -> None:
    from ckpt_transform.storage.hdf5 import HDF5Storage

    path = tmp_path / "stage.h5"
    stage = checkpoint_stage(storage=HDF5Storage(path))(anp.sin)
    x = np.linspace(0, 1, 7)
    pull, _ = make_vjp(lambda x: _chain_loss(stage, x))(x)
    assert path.exists()  # the three inputs wait in the file
    np.testing.assert_allclose(pull(1.0), grad(lambda x: _chain_loss(anp.sin, x))(x), rtol=1e-12)
    assert not path.exists()


def test_hdf5_storage_keep(tmp_path) -> None:
    import h5py

    from ckpt_transform.storage.hdf5 import HDF5Storage

    path = tmp_path / "kept.h5"
    stage = checkpoint_stage("fd", storage=HDF5Storage(path, keep=True))(anp.sin)
    grad(lambda x: _chain_loss(stage, x))(np.linspace(0, 1, 3))
    with h5py.File(path, "r") as f:
        structures = {f[name].attrs["structure"] for name in f}
    assert structures == {"stage sin: inputs (leaf,)"}


def test_hdf5_storage_dropped_without_reverse(tmp_path) -> None:
    from ckpt_transform.storage.hdf5 import HDF5Storage

    path = tmp_path / "dropped.h5"
    stage = checkpoint_stage(storage=HDF5Storage(path))(anp.sin)
    pull, _ = make_vjp(lambda x: _chain_loss(stage, x))(np.ones(3))
    assert path.exists()
    del pull
    gc.collect()
    assert not path.exists()
