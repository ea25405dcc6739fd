"""Stages and `@checkpoint_struct` loops nested both ways, against the plain unrolled code.

Each decorated function has a plain twin (the same statements, no decorators); gradients of the
decorated composition must equal autograd's gradients of the plain one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad

from ckpt_transform.api import checkpoint_struct
from ckpt_transform.schemes.periodic import Periodic
from ckpt_transform.schemes.revolve import Revolve
from ckpt_transform.stages import checkpoint_stage

RNG = np.random.default_rng(11)
X0 = RNG.standard_normal(5) * 0.5
METHODS = ["recompute", "forward", "fd", "analytic"]
RTOL = {"recompute": 1e-12, "forward": 1e-12, "analytic": 1e-12, "fd": 1e-6}


def update(x, c):
    return anp.tanh(x) * c + 0.5 * x


def update_vjp(g, ans, x, c):
    t = anp.tanh(x)
    return g * (c * (1 - t**2) + 0.5), anp.sum(g * t)


STAGES = {m: checkpoint_stage(update_vjp if m == "analytic" else m)(update) for m in METHODS}


def assert_grads_equal(actual, expected, tol: float) -> None:
    for a, e in zip(actual, expected):
        e = np.asarray(e)
        np.testing.assert_allclose(a, e, rtol=tol, atol=tol * max(1.0, float(np.max(np.abs(e)))))


def grads(fun, c=0.8):
    return grad(lambda x, c: anp.sum(anp.sin(fun(x, c))), (0, 1))(X0, c)


# --- a stage inside a decorated loop's body ---------------------------------------------------


def make_loop_with_stage(method: str):
    stage = STAGES[method]

    @checkpoint_struct(Revolve(3))
    def run(x, c):
        for i in range(8):
            x = stage(x, c) * 0.9 + 0.01 * i
        return x

    return run


def plain_loop_with_update(x, c):
    for i in range(8):
        x = update(x, c) * 0.9 + 0.01 * i
    return x


@pytest.mark.parametrize("method", METHODS)
def test_stage_in_decorated_loop(method: str) -> None:
    run = make_loop_with_stage(method)
    np.testing.assert_allclose(run(X0, 0.8), plain_loop_with_update(X0, 0.8), rtol=1e-14)
    assert_grads_equal(grads(run), grads(plain_loop_with_update), RTOL[method])
    assert run.stats.steps == 8


# --- a decorated loop inside a stage ----------------------------------------------------------


@checkpoint_struct(Revolve(2))
def six_steps(x, c):
    for i in range(6):
        x = anp.sin(x) * c + 0.1 * x + 0.01 * i
    return x


def plain_six_steps(x, c):
    for i in range(6):
        x = anp.sin(x) * c + 0.1 * x + 0.01 * i
    return x


def six_steps_vjp(g, ans, x, c):
    """An adjoint from elsewhere: here autograd on the plain loop."""
    return grad(lambda x, c: anp.sum(g * plain_six_steps(x, c)), (0, 1))(x, c)


@pytest.mark.parametrize("method", METHODS)
def test_decorated_loop_in_stage(method: str) -> None:
    stage = checkpoint_stage(six_steps_vjp if method == "analytic" else method)(six_steps)

    def fun(x, c):
        return stage(stage(x, c) * 1.1, c)

    def reference(x, c):
        return plain_six_steps(plain_six_steps(x, c) * 1.1, c)

    assert_grads_equal(grads(fun), grads(reference), RTOL[method])


# --- a decorated loop inside a decorated loop (two-level time stepping) --------------------------


@checkpoint_struct(Revolve(2))
def substeps(x, c):
    for _j in range(4):
        x = anp.sin(x) * c + 0.1 * x
    return x


@checkpoint_struct(Periodic(period=2))
def macro_steps(x, c):
    for i in range(5):
        x = substeps(x, c * (1 + 0.1 * i))
    return x


def plain_macro_steps(x, c):
    for i in range(5):
        for _j in range(4):
            x = anp.sin(x) * (c * (1 + 0.1 * i)) + 0.1 * x
    return x


def test_decorated_loop_in_decorated_loop() -> None:
    np.testing.assert_allclose(macro_steps(X0, 0.8), plain_macro_steps(X0, 0.8), rtol=1e-14)
    assert_grads_equal(grads(macro_steps), grads(plain_macro_steps), 1e-12)


# --- a struct whose field is updated by a stage --------------------------------------------------


@dataclasses.dataclass
class Heat:
    T: Any
    lam: float


def diffuse(t, lam):
    return t + lam * (anp.roll(t, 1) - 2 * t + anp.roll(t, -1))


def diffuse_vjp(g, ans, t, lam):
    lap = anp.roll(t, 1) - 2 * t + anp.roll(t, -1)
    # the periodic Laplacian is symmetric
    return g + lam * (anp.roll(g, 1) - 2 * g + anp.roll(g, -1)), anp.sum(g * lap)


@pytest.mark.parametrize("method", METHODS)
def test_struct_field_updated_by_stage(method: str) -> None:
    stage = checkpoint_stage(diffuse_vjp if method == "analytic" else method)(diffuse)

    @checkpoint_struct(Revolve(4))
    def total(heat, steps):
        for _i in range(steps):
            heat.T = stage(heat.T, heat.lam)
        return anp.sum(heat.T**2)

    def plain_total(heat, steps):
        t = heat.T
        for _i in range(steps):
            t = diffuse(t, heat.lam)
        return anp.sum(t**2)

    heat = Heat(T=RNG.standard_normal(8), lam=0.2)
    got = grad(total)(Heat(T=heat.T.copy(), lam=heat.lam), 10)
    want = grad(plain_total)(Heat(T=heat.T.copy(), lam=heat.lam), 10)
    assert type(got) is Heat
    assert_grads_equal((got.T, got.lam), (want.T, want.lam), RTOL[method])
