"""Peak memory of a gradient through a checkpointed loop, measured with tracemalloc.

Measured after a warm-up call (lazy imports and caches out of the way) and above the memory in use
before the call, in units of the state's size.
"""

from __future__ import annotations

import gc
import tracemalloc

import autograd.numpy as np
import pytest
from autograd import grad

from ckpt_transform.runtime.driver import checkpointed_for
from ckpt_transform.schemes.revolve import Revolve

N = 200_000
STATE_BYTES = N * 8


def step(x, i, c):
    return x + c * np.sin(x)


def checkpointed(x, c, steps):
    return np.sum(checkpointed_for(step, x, steps, Revolve(3), params=(c,)))


def plain(x, c, steps):
    for i in range(steps):
        x = step(x, i, c)
    return np.sum(x)


def peak_states(fun, steps: int) -> float:
    x0 = np.linspace(0.0, 1.0, N)
    grad(fun)(x0, 0.1, 3)  # warm-up
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        grad(fun)(x0, 0.1, steps)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return (peak - base) / STATE_BYTES


@pytest.mark.slow
def test_revolve_peak_memory_is_bounded_and_flat():
    snapshots = 3
    at_40 = peak_states(checkpointed, 40)
    at_160 = peak_states(checkpointed, 160)
    plain_40 = peak_states(plain, 40)
    assert at_40 < snapshots + 10, at_40
    assert at_160 < snapshots + 10, at_160
    assert at_160 < at_40 + 1.0, (at_40, at_160)  # does not grow with the loop's length
    assert plain_40 > 40, plain_40  # the baseline the bound is about: one state a step or more
