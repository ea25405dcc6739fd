"""Stages and checkpointed loops nested in every direction, against the fully unrolled computation.

Each case is written twice: once with stages and checkpointed loops, once as the plain Python
loops and calls they stand for. The gradient of the first must equal autograd's gradient of the
second. Every adjoint method is used in each position.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad

from ckpt_transform.runtime.driver import checkpointed_for
from ckpt_transform.schemes.periodic import Periodic
from ckpt_transform.schemes.revolve import Revolve
from ckpt_transform.schemes.store_all import StoreAll
from ckpt_transform.stages import checkpoint_stage
from ckpt_transform.storage.hdf5 import HDF5Storage
from ckpt_transform.storage.memory import ArrayStorage

RNG = np.random.default_rng(5)
X0 = RNG.standard_normal(4) * 0.5
A = RNG.standard_normal((4, 4)) / 4
METHODS = ["recompute", "forward", "fd", "analytic"]
RTOL = {"recompute": 1e-12, "forward": 1e-12, "analytic": 1e-12, "fd": 1e-6}


def rtol(*methods: str) -> float:
    return max(RTOL[m] for m in methods)


# A small update used as a stage body: x -> tanh(A x) * c + x, with its analytic VJP.
def update(x, c):
    return anp.tanh(A @ x) * c + x


def update_vjp(g, ans, x, c):
    t = anp.tanh(A @ x)
    return A.T @ (g * c * (1 - t**2)) + g, anp.sum(g * t)


def make_update(method: str) -> Callable[..., Any]:
    return checkpoint_stage(update_vjp if method == "analytic" else method)(update)


def plain_loop(step, state, steps, *params):
    for i in range(steps):
        state = step(state, i, *params)
    return state


def assert_grads_equal(actual, expected, tol: float) -> None:
    for a, e in zip(actual, expected):
        e = np.asarray(e)
        np.testing.assert_allclose(a, e, rtol=tol, atol=tol * max(1.0, float(np.max(np.abs(e)))))


def check(fun: Callable, reference: Callable, tol: float, c: float = 0.8) -> None:
    value = fun(X0, c)
    assert np.allclose(value, reference(X0, c), rtol=1e-13, atol=0)
    got = grad(lambda x, c: anp.sum(anp.sin(fun(x, c))), (0, 1))(X0, c)
    want = grad(lambda x, c: anp.sum(anp.sin(reference(x, c))), (0, 1))(X0, c)
    assert_grads_equal(got, want, tol)


# --- a stage inside a checkpointed loop's step ------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("scheme", [Revolve(3), Periodic(period=3), StoreAll()], ids=repr)
def test_stage_in_loop_body(method: str, scheme) -> None:
    stage = make_update(method)

    def step(x, i, c):
        return stage(x, c) * 0.9 + 0.01 * i

    def plain_step(x, i, c):
        return update(x, c) * 0.9 + 0.01 * i

    check(
        lambda x, c: checkpointed_for(step, x, 10, scheme, params=(c,)),
        lambda x, c: plain_loop(plain_step, x, 10, c),
        RTOL[method],
    )


# --- a checkpointed loop inside a stage -------------------------------------------------------


def inner_step(x, i, c):
    return anp.sin(x) * c + 0.1 * x + 0.01 * i


def loop_in_stage_vjp(g, ans, x, c):
    """An "external" adjoint: autograd on the plain loop, as a library would supply it."""
    from autograd import make_vjp

    pull, _ = make_vjp(lambda x, c: plain_loop(inner_step, x, 6, c), (0, 1))(x, c)
    return pull(g)


@pytest.mark.parametrize("method", METHODS)
def test_loop_in_stage(method: str) -> None:
    def body(x, c):
        return checkpointed_for(inner_step, x, 6, Revolve(2), params=(c,))

    stage = checkpoint_stage(loop_in_stage_vjp if method == "analytic" else method)(body)

    def fun(x, c):
        return stage(stage(x, c) * 1.1, c)

    def reference(x, c):
        return plain_loop(inner_step, plain_loop(inner_step, x, 6, c) * 1.1, 6, c)

    check(fun, reference, RTOL[method])


# --- a checkpointed loop inside a checkpointed loop (two-level time stepping) --------------------


@pytest.mark.parametrize(
    ("outer", "inner"),
    [(Revolve(2), Revolve(2)), (Periodic(period=2), Revolve(3)), (Revolve(3), StoreAll())],
    ids=repr,
)
def test_loop_in_loop(outer, inner) -> None:
    def macro_step(x, i, c):
        # each macro step runs 4 substeps of its own checkpointed loop
        return checkpointed_for(inner_step, x, 4, inner, params=(c * (1 + 0.1 * i),))

    def plain_macro_step(x, i, c):
        return plain_loop(inner_step, x, 4, c * (1 + 0.1 * i))

    check(
        lambda x, c: checkpointed_for(macro_step, x, 5, outer, params=(c,)),
        lambda x, c: plain_loop(plain_macro_step, x, 5, c),
        1e-12,
    )


# --- stages inside stages -------------------------------------------------------------------


def two_updates(x, c):
    return update(update(x, c) * 0.5, c)


def two_updates_vjp(g, ans, x, c):
    y = update(x, c) * 0.5
    gy, gc2 = update_vjp(g, None, y, c)
    gx, gc1 = update_vjp(gy * 0.5, None, x, c)
    return gx, gc1 + gc2


@pytest.mark.parametrize("inner_method", METHODS)
@pytest.mark.parametrize("outer_method", METHODS)
def test_stage_in_stage(outer_method: str, inner_method: str) -> None:
    inner = make_update(inner_method)

    def outer_body(x, c):
        return inner(inner(x, c) * 0.5, c)

    outer = checkpoint_stage(two_updates_vjp if outer_method == "analytic" else outer_method)(
        outer_body
    )

    def fun(x, c):
        return outer(outer(x, c), c * 0.7)

    def reference(x, c):
        return two_updates(two_updates(x, c), c * 0.7)

    # fd inside fd: the outer differences see the inner stage's exact passive values, so the
    # error stays that of one level of differencing.
    check(fun, reference, rtol(outer_method, inner_method))


# --- all together: stage(loop(stage)) inside a loop ----------------------------------------------


@pytest.mark.parametrize(
    "storage", [None, ArrayStorage(), HDF5Storage()], ids=["memory", "ArrayStorage", "HDF5Storage"]
)
def test_stage_loop_stage_in_loop(storage) -> None:
    leaf_stage = checkpoint_stage("fd", storage=storage)(update)

    def inner(x, i, c):
        return leaf_stage(x, c) * 0.95

    @checkpoint_stage("recompute", storage=storage)
    def block(x, c):
        return checkpointed_for(inner, x, 3, Revolve(2), params=(c,))

    def outer(x, i, c):
        return block(x, c) + 0.05 * anp.cos(x)

    def plain_outer(x, i, c):
        return plain_loop(lambda x, i, c: update(x, c) * 0.95, x, 3, c) + 0.05 * anp.cos(x)

    check(
        lambda x, c: checkpointed_for(outer, x, 4, Revolve(2), params=(c,)),
        lambda x, c: plain_loop(plain_outer, x, 4, c),
        1e-6,
    )


# --- the docs' example: an external solver with its adjoint as a loop's implicit step ----------


def test_external_solver_stage_as_implicit_step() -> None:
    import scipy.linalg

    def solve_vjp(g, ans, a, b):
        lam = scipy.linalg.lu_solve(scipy.linalg.lu_factor(a), g, trans=1)
        return -np.outer(lam, ans), lam

    @checkpoint_stage(solve_vjp)
    def solve(a, b):
        return scipy.linalg.lu_solve(scipy.linalg.lu_factor(a), b)

    def step(t, i, a):
        return solve(a, t)

    a0 = np.eye(4) * 1.5 + RNG.standard_normal((4, 4)) * 0.2

    def loss(step, t0, a):
        return anp.sum(checkpointed_for(step, t0, 12, Revolve(3), params=(a,)) ** 2)

    got = grad(lambda t0, a: loss(step, t0, a), (0, 1))(X0, a0)
    want = grad(
        lambda t0, a: anp.sum(plain_loop(lambda t, i, a: anp.linalg.solve(a, t), t0, 12, a) ** 2),
        (0, 1),
    )(X0, a0)
    assert_grads_equal(got, want, 1e-12)
