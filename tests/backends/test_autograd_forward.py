"""`forward_jvp`: forward mode with direct rules, against autograd's own ``make_jvp``.

The direct rules claim the same floating-point operations in the same order as autograd's, so
values and tangents are compared for exact equality; the cases they leave to autograd (broadcast
tangents, complex results, the divisor's tangent) are compared too, as are second derivatives
(a reverse trace over the forward one, as in a Hessian-vector product).
"""

from __future__ import annotations

import warnings

import autograd.builtins as ab
import autograd.numpy as np
import numpy as onp
import pytest
from autograd import grad, make_jvp

from ckpt_transform.backends.autograd import forward_jvp

rng = onp.random.default_rng(7)
X = rng.standard_normal(6)
V = rng.standard_normal(6)
Y = rng.standard_normal(6)
M = rng.standard_normal((2, 3))


def reference(fun, x, v, *args):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Output seems independent of input")
        return make_jvp(lambda y: fun(y, *args))(x)(v)


FUNCTIONS = {
    "add": lambda x: x + Y,
    "radd": lambda x: Y + x,
    "add both": lambda x: x + np.sin(x),
    "subtract": lambda x: x - Y,
    "rsubtract": lambda x: Y - x,
    "subtract both": lambda x: np.roll(x, 1) - 2 * x,
    "multiply": lambda x: x * Y,
    "rmultiply": lambda x: Y * x,
    "multiply both": lambda x: x * np.cos(x),
    "scalar times": lambda x: 0.5 * x,
    "divide": lambda x: x / Y,
    "divisor": lambda x: Y / x,
    "divide both": lambda x: np.sin(x) / (2.0 + x),
    "negative": lambda x: -x,
    "roll": lambda x: np.roll(x, -2),
    "reshape": lambda x: np.reshape(x, (2, 3)) * M,
    "sum": lambda x: np.sum(x * x),
    "sum axis": lambda x: np.sum(np.reshape(x, (2, 3)), axis=0),
    "getitem": lambda x: x[1:4] * x[::2][:3],
    "broadcast add": lambda x: np.sum(x) + Y,  # a scalar tangent, an array result
    "broadcast subtract": lambda x: Y - np.sum(x),
    "complex": lambda x: np.abs(x + 1j * Y),
    "heat": lambda x: x + 0.5 * Y * (np.roll(x, 1) - 2 * x + np.roll(x, -1)),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_value_and_tangent_equal_make_jvp(name):
    fun = FUNCTIONS[name]
    got, want = forward_jvp(fun, X, V), reference(fun, X, V)
    assert onp.array_equal(onp.asarray(got[0]), onp.asarray(want[0]))
    assert onp.array_equal(onp.asarray(got[1]), onp.asarray(want[1]))


@pytest.mark.parametrize(
    "name", ["add both", "subtract both", "multiply both", "divide both", "getitem", "heat"]
)
def test_reverse_over_forward_equals_make_jvp(name):
    """The tangent's gradient (the Hessian-vector product's building block), both ways."""
    fun = FUNCTIONS[name]

    def tangent_sum(x, jvp):
        return np.sum(jvp(fun, x, V)[1] ** 2)

    with warnings.catch_warnings():  # a linear function's tangent does not depend on x
        warnings.filterwarnings("ignore", message="Output seems independent of input")
        got = grad(tangent_sum)(X, forward_jvp)
        want = grad(tangent_sum)(X, reference)
    assert onp.allclose(got, want, rtol=1e-13, atol=1e-13)


def test_scalars_extra_arguments_and_an_input_that_does_not_matter():
    got = forward_jvp(lambda x, a: x * x - a * x, 1.5, 2.0, 0.25)
    assert got == (1.5 * 1.5 - 0.25 * 1.5, 2.0 * 1.5 + 1.5 * 2.0 - 0.25 * 2.0)
    value, tangent = forward_jvp(lambda x: Y * 2.0, X, V)  # no warning, a zero tangent
    assert onp.array_equal(value, Y * 2.0) and onp.array_equal(tangent, onp.zeros(6))


def test_tuple_input_and_output():
    def fun(t):
        a, b = t
        return (a * b, a - b)

    def traced(t):
        return ab.tuple(fun((t[0], t[1])))

    got = forward_jvp(traced, (X, Y), (V, X))
    want = reference(traced, (X, Y), (V, X))
    for g, w in zip(got[1], want[1]):
        assert onp.array_equal(g, w)


def test_direct_rules_are_taken_and_other_cases_go_to_autograd(monkeypatch):
    from autograd.core import primitive_jvps

    def refuse(*args, **kwargs):
        raise AssertionError("autograd's rule was used")

    for fun in (np.subtract, np.multiply, np.roll):
        monkeypatch.setitem(primitive_jvps, fun, refuse)
    forward_jvp(FUNCTIONS["heat"], X, V)  # every operation by a direct rule
    with pytest.raises(AssertionError, match="autograd's rule"):
        forward_jvp(FUNCTIONS["broadcast subtract"], X, V)  # a scalar tangent, an array result
