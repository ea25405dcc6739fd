"""Dataclasses as autograd values, with no registration step, against hand-derived gradients."""

from __future__ import annotations

import dataclasses

import autograd.numpy as np
import pytest
from autograd import grad, make_jvp

from ckpt_transform.backends.autograd import dataclass_replace


@dataclasses.dataclass
class Heat:
    T: np.ndarray
    lam: float
    n: int
    name: str = "rod"

    def energy(self):
        return self.lam * np.sum(self.T**2)

    @property
    def mean(self):
        return np.mean(self.T)


@dataclasses.dataclass(frozen=True)
class Frozen:
    a: np.ndarray
    b: float


@dataclasses.dataclass(slots=True)
class Slotted:
    a: np.ndarray
    b: float


@dataclasses.dataclass
class Outer:
    inner: Frozen
    scale: float


T0 = np.array([0.0, 1.0, 2.0])


def test_gradient_is_a_dataclass_of_the_same_type_with_methods_and_properties_traced():
    def f(h):
        return np.sum(h.T * h.lam) + h.energy() + h.mean

    g = grad(f)(Heat(T0, 0.5, 3))
    assert type(g) is Heat
    # d/dT = lam + 2 lam T + 1/3 ; d/dlam = sum(T) + sum(T^2)
    assert np.allclose(g.T, 0.5 + T0 + 1.0 / 3.0)
    assert np.isclose(g.lam, 3.0 + 5.0)
    assert g.n == 3 and g.name == "rod"  # carried like Enzyme's shadow copy


@pytest.mark.parametrize("cls", [Frozen, Slotted])
def test_frozen_and_slotted_dataclasses(cls):
    def f(p):
        return np.sum(p.a**2) * p.b

    g = grad(f)(cls(T0, 2.0))
    assert type(g) is cls
    assert np.allclose(g.a, 4.0 * T0) and np.isclose(g.b, 5.0)


def test_nested_dataclasses():
    def f(o):
        return np.sum(o.inner.a) * o.inner.b * o.scale

    g = grad(f)(Outer(Frozen(T0, 2.0), 3.0))
    assert type(g) is Outer and type(g.inner) is Frozen
    assert np.allclose(g.inner.a, 6.0) and np.isclose(g.inner.b, 9.0) and np.isclose(g.scale, 6.0)


def test_assigning_a_field_of_a_traced_dataclass_says_what_to_do():
    def f(h):
        h.lam = 2.0
        return h.lam

    with pytest.raises(TypeError, match="dataclass_replace"):
        grad(f)(Heat(T0, 0.5, 3))


def test_replace_on_a_traced_dataclass_in_both_modes():
    def f(h):
        q = dataclass_replace(h, lam=np.sum(h.T**2))
        return np.sum(q.T) * q.lam

    h = Heat(T0, 0.5, 3)
    g = grad(f)(h)
    # f = sum(T) * sum(T^2): d/dT = sum(T^2) + 2 T sum(T); lam no longer matters
    assert np.allclose(g.T, 5.0 + 2.0 * T0 * 3.0) and np.isclose(g.lam, 0.0)
    tangent = Heat(np.array([1.0, 0.0, 0.0]), 1.0, 3)
    assert np.isclose(make_jvp(f)(h)(tangent)[1], g.T[0])


def test_replace_on_a_plain_dataclass_holding_traced_values():
    def f(x):
        p = Frozen(x, 2.0)
        q = dataclass_replace(p, b=np.sum(x**2))
        return np.sum(q.a) * q.b

    v = np.array([1.0, 0.0, 0.0])
    want = 5.0 + 2.0 * T0[0] * 3.0
    assert np.isclose(grad(f)(T0) @ v, want)
    assert np.isclose(make_jvp(f)(T0)(v)[1], want)


def test_make_leaves_vjp_equals_make_vjp_on_the_tuple():
    """Each leaf traced on its own: the same values and cotangents as autograd on the tuple,
    with an output that is an input unchanged and one that depends on no input."""
    from autograd import make_vjp as _make_vjp
    from autograd.builtins import tuple as atuple

    from ckpt_transform.backends.autograd import make_leaves_vjp

    def fun(t):
        x, y = t
        return (np.sin(x) * y, x, np.ones(2), y**2 + x)

    xs = (np.array([0.3, -1.1]), np.array([2.0, 0.5]))
    gs = (np.array([1.0, -2.0]), np.array([0.5, 0.25]), np.array([3.0, 1.0]), np.array([-1.0, 4.0]))
    vjp, values = make_leaves_vjp(fun, xs)
    ref_vjp, ref_values = _make_vjp(lambda t: atuple(fun((t[0], t[1]))))(xs)
    for got, want in zip(values, ref_values):
        assert np.allclose(got, want, rtol=1e-15, atol=0)
    for got, want in zip(vjp(gs), ref_vjp(gs)):
        assert np.allclose(got, want, rtol=1e-15, atol=0)
    zero_vjp, _ = make_leaves_vjp(lambda t: (np.ones(2),), xs)
    assert all(np.all(c == 0) for c in zero_vjp((np.ones(2),)))
