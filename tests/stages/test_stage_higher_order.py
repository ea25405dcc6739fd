"""Derivatives of every order through stages, against autograd on the plain function.

Every adjoint method where an exact derivative exists ("recompute", "forward", a user vjp written
with autograd.numpy) x storage in memory / HDF5 x the second-order operators of autograd; stages
inside checkpointed loops (``for`` and ``while``) and loops inside stages; third order once.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad, hessian, jacobian, make_jvp
from autograd.differential_operators import hessian_tensor_product

from ckpt_transform import checkpoint_stage
from ckpt_transform.runtime.driver import checkpointed_for, checkpointed_while
from ckpt_transform.schemes.online_r2 import OnlineR2
from ckpt_transform.schemes.periodic import Periodic
from ckpt_transform.schemes.revolve import Revolve
from ckpt_transform.schemes.store_all import StoreAll
from ckpt_transform.storage.hdf5 import HDF5Storage

TOL = 1e-10


def assert_close(got, want, tol=TOL):
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert got.shape == want.shape
    scale = max(float(np.max(np.abs(want), initial=0.0)), 1e-300)
    err = float(np.max(np.abs(got - want), initial=0.0))
    assert err <= tol * scale, f"max error {err:.3e} > {tol:.0e} x {scale:.3e}"


def body(x, a):
    return anp.sin(x) * a + 0.2 * x**2 * anp.cos(a)


def body_vjp(g, ans, x, a):
    """The analytic VJP of `body`, in autograd.numpy so that it can be differentiated again."""
    return (
        g * (anp.cos(x) * a + 0.4 * x * anp.cos(a)),
        anp.sum(g * (anp.sin(x) - 0.2 * x**2 * anp.sin(a))),
    )


METHODS = ["recompute", "forward", "user"]


@pytest.fixture(params=["memory", "hdf5"])
def storage(request, tmp_path):
    return None if request.param == "memory" else HDF5Storage(tmp_path / "stage.h5")


def make_stage(method, storage):
    adjoint = body_vjp if method == "user" else method
    return checkpoint_stage(adjoint, storage=storage, keep_inputs=True)(body)


def chain(stage):
    def f(x, a):
        y = stage(stage(x, a) * x, a)
        return anp.sum(y**2) + anp.prod(anp.tanh(y))

    return f


X = np.array([0.3, -0.6, 1.1])
V = np.array([0.5, 2.0, -1.0])
A = 0.7


@pytest.mark.parametrize("method", METHODS)
def test_second_order_through_stages(method, storage):
    f, plain = chain(make_stage(method, storage)), chain(body)
    assert_close(grad(grad(f, 1), 1)(X, A), grad(grad(plain, 1), 1)(X, A))
    assert_close(hessian(f)(X, A), hessian(plain)(X, A))
    assert_close(hessian_tensor_product(f)(X, A, V), hessian_tensor_product(plain)(X, A, V))
    assert_close(jacobian(grad(f))(X, A), jacobian(grad(plain))(X, A))
    assert_close(make_jvp(grad(f))(X, A)(V)[1], make_jvp(grad(plain))(X, A)(V)[1])


def test_third_order_through_a_stage():
    f, plain = chain(make_stage("recompute", None)), chain(body)

    def third(fun):
        return grad(lambda a: grad(lambda a: grad(lambda a: fun(X, a))(a))(a))

    assert_close(third(f)(A), third(plain)(A))


def test_user_vjp_second_order_uses_the_users_function():
    """A scaled user VJP: the second derivative is the derivative of what it returns."""
    stage = checkpoint_stage(lambda g, ans, x: (2.0 * g * anp.cos(x),))(anp.sin)
    # d/dx of the user's J^T g = 2 cos(x) g, with g = 1: -2 sin(x)
    assert grad(grad(stage))(0.3) == pytest.approx(-2.0 * np.sin(0.3), rel=1e-15)


# -- stages and checkpointed loops, both ways round -----------------------------------------------


def schemes():
    return [StoreAll(), Revolve(2, steps=6), Periodic(period=2), OnlineR2(2)]


def plain_loop(x, a):
    for i in range(6):
        x = body(x, a) + 0.1 * i
    return anp.sum(x**3)


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("loop", ["for", "while"])
def test_stage_in_a_checkpointed_loop(method, loop, storage):
    stage = make_stage(method, storage)

    def step(s, i, a):
        x, k = s
        return (stage(x, a) + 0.1 * i, k + 1)

    for scheme in schemes():

        def f(x, a, scheme=scheme):
            if loop == "for":
                s = checkpointed_for(step, (x, 0), 6, scheme, params=(a,))
            else:
                s = checkpointed_while(lambda s, a: s[1] < 6, step, (x, 0), scheme, params=(a,))
            return anp.sum(s[0] ** 3)

        assert_close(hessian(f)(X, A), hessian(plain_loop)(X, A))
        assert_close(
            hessian_tensor_product(f)(X, A, V), hessian_tensor_product(plain_loop)(X, A, V)
        )
        assert_close(make_jvp(grad(f))(X, A)(V)[1], make_jvp(grad(plain_loop))(X, A)(V)[1])
        assert_close(grad(grad(f, 1), 1)(X, A), grad(grad(plain_loop, 1), 1)(X, A))


def test_checkpointed_loop_in_a_stage(storage):
    def inner(x, a):
        return checkpointed_for(lambda x, i, a: body(x, a), x, 5, Revolve(2), params=(a,))

    def inner_plain(x, a):
        for _ in range(5):
            x = body(x, a)
        return x

    stage = checkpoint_stage(storage=storage, keep_inputs=True)(inner)

    def f(x, a):
        return anp.sum(stage(x, a) ** 2)

    def plain(x, a):
        return anp.sum(inner_plain(x, a) ** 2)

    assert_close(hessian(f)(X, A), hessian(plain)(X, A))
    assert_close(grad(grad(f, 1), 1)(X, A), grad(grad(plain, 1), 1)(X, A))
