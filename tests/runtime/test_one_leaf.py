"""The driver's path for a state of one array or float, bare or as the only member of a tuple.

That state (and no traced parameter) is taped without flattening, checkpointed without leaf
lists, and swept by `_Run._sweep_leaf`; the tuple of one is the state `checkpoint_struct` makes
of a loop that carries one variable. Every gradient is compared with autograd on the plain loop,
to first and second order, across schemes whose plans exercise every action (memory and disk
slots, multi-step and one-step segments) and a while loop.
"""

from __future__ import annotations

import warnings

import autograd.numpy as np
import numpy.testing as npt
import pytest
from autograd import grad, hessian, make_jvp

from ckpt_transform.errors import CheckpointError
from ckpt_transform.runtime.driver import checkpointed_for, checkpointed_while
from ckpt_transform.schemes.multilevel import Multilevel
from ckpt_transform.schemes.online_r2 import OnlineR2
from ckpt_transform.schemes.periodic import Periodic
from ckpt_transform.schemes.revolve import Revolve
from ckpt_transform.schemes.store_all import StoreAll

T = 7
MASK = np.array([0.0, 1.0, 0.0])


def step_bare(x, i):
    return x + 0.1 * np.sin(x) * (1.0 + 0.01 * i) + 0.05 * MASK * np.roll(x, 1) ** 2


def step_wrapped(s, i):
    (x,) = s
    return (step_bare(x, i),)


def plain(x):
    for i in range(T):
        x = step_bare(x, i)
    return x


def loss(x):
    return np.sum(np.tanh(x) * np.linspace(0.5, 1.5, np.size(x)))


SCHEMES = {
    "revolve2": lambda: Revolve(2),
    "revolveT": lambda: Revolve(T),
    "storeall": StoreAll,
    "periodic": lambda: Periodic(3),
    "online": lambda: OnlineR2(2),
    "multilevel": lambda: Multilevel(1, 2, costs={"write": 1, "read": 1}),
}


def ours(kind: str, wrapped: bool):
    def f(x):
        if wrapped:
            return loss(checkpointed_for(step_wrapped, (x,), T, SCHEMES[kind]())[0])
        return loss(checkpointed_for(step_bare, x, T, SCHEMES[kind]()))

    return f


X0 = np.array([0.3, -0.7, 1.1])


@pytest.mark.parametrize("kind", list(SCHEMES))
@pytest.mark.parametrize("wrapped", [False, True])
def test_first_and_second_order_match_the_plain_loop(kind, wrapped):
    f = ours(kind, wrapped)

    def want(x):
        return loss(plain(x))

    assert f(X0) == pytest.approx(want(X0), rel=1e-14)
    npt.assert_allclose(grad(f)(X0), grad(want)(X0), rtol=1e-12, atol=1e-15)
    npt.assert_allclose(hessian(f)(X0), hessian(want)(X0), rtol=1e-11, atol=1e-14)
    v = np.linspace(-1.0, 1.0, X0.size)
    got_hvp = make_jvp(grad(f))(X0)(v)[1]
    want_hvp = make_jvp(grad(want))(X0)(v)[1]
    npt.assert_allclose(got_hvp, want_hvp, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("wrapped", [False, True])
def test_float_state_and_while_loop(wrapped):
    def cond(s):
        return (s[0] if wrapped else s) < 2.0

    def step(s, i):
        x = s[0] if wrapped else s
        x = x * 1.1 + 0.01 * np.sin(x)
        return (x,) if wrapped else x

    def plain_while(x):
        while x < 2.0:
            x = x * 1.1 + 0.01 * np.sin(x)
        return x

    def f(x):
        s = checkpointed_while(cond, step, (x,) if wrapped else x, OnlineR2(2))
        return s[0] if wrapped else s

    def g(x):
        s = checkpointed_for(step, (x,) if wrapped else x, range(2, 9), Revolve(3))
        return np.sin(s[0] if wrapped else s)

    def plain_for(x):
        for _ in range(7):
            x = x * 1.1 + 0.01 * np.sin(x)
        return np.sin(x)

    assert f(0.5) == plain_while(0.5)
    assert grad(f)(0.5) == pytest.approx(grad(plain_while)(0.5), rel=1e-13)
    assert grad(g)(0.5) == pytest.approx(grad(plain_for)(0.5), rel=1e-13)
    assert grad(grad(g))(0.5) == pytest.approx(grad(grad(plain_for))(0.5), rel=1e-12)


@pytest.mark.parametrize("bad", ["list", "pair", "bare"])
@pytest.mark.parametrize("at", [0, 7])
def test_a_tuple_of_one_that_changes_structure_is_an_error(bad, at):
    """From step 0 (a passive advance, or the one segment StoreAll tapes) or in the last segment."""

    def step(s, i):
        x = (s[0] if isinstance(s, (tuple, list)) else s) * 1.5
        if i < at:
            return (x,)
        return {"list": [x], "pair": (x, x), "bare": x}[bad]

    for scheme in (Revolve(2), StoreAll()):
        with pytest.raises(CheckpointError, match="structure"):
            grad(lambda x, scheme=scheme: checkpointed_for(step, (x,), 8, scheme)[0])(1.0)


def test_a_tuple_of_one_that_returns_a_foreign_traced_value_is_an_error():
    def outer(y):
        def step(s, i):
            return (s[0] * y,)

        return checkpointed_for(step, (1.0,), 4, Revolve(2))[0]

    def both(x):
        return checkpointed_for(lambda s, i: (s[0] * outer(x),), (x,), 3, Revolve(2))[0]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CheckpointError, match=r"not given|params"):
            grad(both)(1.2)
