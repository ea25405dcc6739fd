"""Memory of a chain of stages: the stages' inputs plus one stage's tape, not every stage's tape.

A chain of S stages over an N-element state, each stage ``x = sin(x)`` four times (XAD's
repeated_sin stage), differentiated with ``adjoint="recompute"``. Counting states of N float64:

* held for the reverse sweep: the inputs x_1 .. x_{S-1} (x_0 is the caller's array, below the
  baseline): S - 1 states;
* the tape of the stage being reversed: its sin nodes keep their inputs, K - 1 of them new (the
  first is the restored stage input, already counted);
* the cotangent work of that sweep: the incoming cotangent, cos(x) and their product: 3 states.

So the peak is about S + K + 1 states; every stage's tape (plain autograd) would be S * K.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad

from ckpt_transform.stages import checkpoint_stage

N = 10**6
STAGES = 50
K = 4  # sin nodes per stage, each holding one state on the tape


def four_sines(x):
    for _ in range(K):
        x = anp.sin(x)
    return x


def chain(stage: Callable) -> Callable:
    def run(x):
        for _ in range(STAGES):
            x = stage(x)
        return anp.sum(x)

    return run


def peak_above_baseline(fun: Callable, x: np.ndarray) -> tuple[int, np.ndarray]:
    """Peak traced bytes of ``fun(x)`` above what was in use just before the call."""
    fun(x[:1000])  # warm-up: the same code on a small array (lazy imports, caches)
    gc.collect()
    tracemalloc.reset_peak()
    baseline = tracemalloc.get_traced_memory()[0]
    out = fun(x)
    return tracemalloc.get_traced_memory()[1] - baseline, out


@pytest.mark.slow
def test_chain_of_stages_holds_inputs_plus_one_tape() -> None:
    x = np.linspace(0.1, 1.0, N)
    state = x.nbytes
    stage = checkpoint_stage("recompute")(four_sines)
    tracemalloc.start()
    try:
        stage_peak, stage_grad = peak_above_baseline(grad(chain(stage)), x)
        plain_peak, plain_grad = peak_above_baseline(grad(chain(four_sines)), x)
    finally:
        tracemalloc.stop()
    print(
        f"\npeak above baseline, in states of {N} float64 ({state / 2**20:.1f} MiB): "
        f"stages (recompute) {stage_peak / state:.2f}, plain autograd {plain_peak / state:.2f}"
    )
    np.testing.assert_allclose(stage_grad, plain_grad, rtol=1e-12)
    # Bound from the count in the module docstring, plus one state of slack.
    assert stage_peak < (STAGES + K + 2) * state
    # The inputs really are what is held (the count is not vacuous) ...
    assert stage_peak > (STAGES - 1) * state
    # ... and plain autograd, measured the same way, holds every stage's tape.
    assert plain_peak > (STAGES * K - 1) * state
    assert stage_peak < plain_peak / 3
