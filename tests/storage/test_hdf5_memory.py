"""HDF5Storage keeps checkpoints on disk only: the peak memory of a gradient, with tracemalloc.

The loop is the heat step of the benchmarks (n = 5e4 points, T = 100 steps, ``Revolve(10)``). With
`ArrayStorage` every snapshot is in memory; with `HDF5Storage` only the write-behind queue and the
read-ahead are, so its peak must be at least ``snapshots - 3`` states lower. Measured after a
warm-up call (lazy imports such as h5py out of the way), above the memory in use before the call,
in units of the state's size.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import autograd.numpy as np
import numpy
import pytest
from autograd import grad

from ckpt_transform.runtime.driver import checkpointed_for
from ckpt_transform.schemes.revolve import Revolve
from ckpt_transform.storage.hdf5 import HDF5Storage
from ckpt_transform.storage.memory import ArrayStorage

N = 50_000
STEPS = 100
SNAPSHOTS = 10
MASK = np.ones(N)
MASK[0] = MASK[-1] = 0.0


def heat(x: Any, i: int) -> Any:
    return x + 0.5 * MASK * (np.roll(x, 1) - 2 * x + np.roll(x, -1))


def peak_states(storage: Any) -> tuple[float, Any]:
    """Peak memory of one gradient, in states, and the gradient."""

    def loss(x: Any) -> Any:
        return np.sum(checkpointed_for(heat, x, STEPS, Revolve(SNAPSHOTS, storage=storage)))

    x0 = np.sin(np.linspace(0.0, 3.0, N))
    grad(loss)(x0)  # warm-up
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        g = grad(loss)(x0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return (peak - base) / (N * 8), g


def plain_gradient() -> Any:
    def loss(x: Any) -> Any:
        for i in range(STEPS):
            x = heat(x, i)
        return np.sum(x)

    return grad(loss)(np.sin(np.linspace(0.0, 3.0, N)))


@pytest.mark.slow
@pytest.mark.parametrize("background", [True, False], ids=["background", "inline"])
def test_hdf5_holds_snapshots_on_disk_only(background: bool) -> None:
    in_memory, g_memory = peak_states(ArrayStorage())
    on_disk, g_disk = peak_states(HDF5Storage(background=background))
    oracle = plain_gradient()
    numpy.testing.assert_allclose(g_memory, oracle, rtol=1e-12, atol=1e-14)
    numpy.testing.assert_allclose(g_disk, oracle, rtol=1e-12, atol=1e-14)
    # ArrayStorage holds the SNAPSHOTS - 1 stored states (the input is the caller's); HDF5Storage
    # holds at most two queued writes or two reads ahead of them at any time.
    assert in_memory > SNAPSHOTS - 1, in_memory
    assert on_disk <= in_memory - (SNAPSHOTS - 3), (on_disk, in_memory)
