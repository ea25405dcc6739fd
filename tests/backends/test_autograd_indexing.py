"""The faster adjoint of basic indexing equals autograd's own (``np.add.at``) for every index."""

from __future__ import annotations

import autograd.numpy as np
import numpy as onp
import pytest
from autograd import grad, make_jvp
from autograd.core import vspace
from autograd.numpy.numpy_vjps import untake as autograd_untake
from hypothesis import given, settings
from hypothesis import strategies as st

from ckpt_transform.backends.autograd import is_basic_index, untake_basic

SHAPE = (6, 5, 4)
A0 = onp.random.default_rng(0).standard_normal(SHAPE)

BASIC = [
    3,
    -1,
    onp.int64(2),
    slice(1, -1),
    slice(None, None, -2),
    (slice(1, -1), slice(1, -1)),
    (Ellipsis, 2),
    (None, slice(4, 0, -1), 0),
    (1, Ellipsis, None, slice(0, 3)),
    (),
]
ADVANCED = [
    [0, 0, 1],
    onp.array([1, 1, -1]),
    (slice(None), [2, 2]),
    True,
    A0 > 0.3,
]


def added_at(idx, w):
    """The adjoint of ``A[idx]`` built independently: ``w`` added at ``idx`` into zeros."""
    out = onp.zeros(SHAPE)
    onp.add.at(out, idx, w)
    return out


@pytest.mark.parametrize("idx", BASIC + ADVANCED, ids=repr)
def test_gradient_of_a_slice_equals_the_add_at_adjoint(idx):
    assert is_basic_index(idx) == any(idx is b for b in BASIC)
    w = onp.random.default_rng(1).standard_normal(onp.shape(A0[idx]))
    got = grad(lambda A: np.sum(w * A[idx]))(A0)
    onp.testing.assert_array_equal(got, added_at(idx, w))


@pytest.mark.parametrize("idx", BASIC, ids=repr)
def test_untake_basic_equals_autograd_untake(idx):
    g = onp.random.default_rng(2).standard_normal(onp.shape(A0[idx]))
    vs = vspace(A0)
    for start in (vs.zeros(), onp.ones(SHAPE)):  # into zeros, and into a gradient so far
        ours = untake_basic(g, idx, vs).mut_add(start.copy())
        theirs = autograd_untake(g, idx, vs).mut_add(start.copy())
        onp.testing.assert_array_equal(ours, theirs)


def test_overlapping_slices_and_other_uses_accumulate():
    """Slices that overlap, a slice read twice and a whole-array use add up, as in a stencil."""

    def f(A):
        lap = A[2:] - 2 * A[1:-1] + A[:-2]
        return np.sum(lap**2) + np.sum(A[1:-1] * A[1:-1, ::-1]) + np.sum(A**3)

    lap = A0[2:] - 2 * A0[1:-1] + A0[:-2]
    inner = A0[1:-1]
    expected = 3 * A0**2
    expected += added_at(slice(2, None), 2 * lap)
    expected += added_at(slice(1, -1), -4 * lap)
    expected += added_at(slice(None, -2), 2 * lap)
    expected += added_at(slice(1, -1), inner[:, ::-1])
    expected += added_at((slice(1, -1), slice(None, None, -1)), inner)
    onp.testing.assert_allclose(grad(f)(A0), expected, rtol=1e-13, atol=1e-13)


def test_second_order_through_a_slice():
    """Reverse over reverse and forward over reverse: H v of sum(w A[1:-1, ::2]**3)."""
    idx = (slice(1, -1), slice(None, None, 2))
    rng = onp.random.default_rng(3)
    w = rng.standard_normal(A0[idx].shape)
    v = rng.standard_normal(SHAPE)

    def f(A):
        return np.sum(w * A[idx] ** 3)

    expected = added_at(idx, 6 * w * A0[idx] * v[idx])
    reverse = grad(lambda A: np.sum(grad(f)(A) * v))(A0)
    forward = make_jvp(grad(f))(A0)(v)[1]
    onp.testing.assert_allclose(reverse, expected, rtol=1e-13, atol=1e-13)
    onp.testing.assert_allclose(forward, expected, rtol=1e-13, atol=1e-13)


def _part(draw, n):
    if draw(st.booleans()):
        return draw(st.integers(-n, n - 1))
    start = draw(st.none() | st.integers(-n - 1, n + 1))
    stop = draw(st.none() | st.integers(-n - 1, n + 1))
    step = draw(st.none() | st.sampled_from([-3, -2, -1, 1, 2, 3]))
    return slice(start, stop, step)


@st.composite
def basic_indices(draw):
    """Ints and slices for the first k axes, or for the last k after an ``...``; some ``None``."""
    k = draw(st.integers(1, len(SHAPE)))
    trailing = draw(st.booleans())
    parts = [_part(draw, n) for n in (SHAPE[-k:] if trailing else SHAPE[:k])]
    for _ in range(draw(st.integers(0, 2))):
        parts.insert(draw(st.integers(0, len(parts))), None)
    return (Ellipsis, *parts) if trailing else tuple(parts)


@settings(max_examples=30, deadline=None)
@given(basic_indices())
def test_random_basic_indices_match_autograd(idx):
    assert is_basic_index(idx)
    w = onp.random.default_rng(4).standard_normal(onp.shape(A0[idx]))
    got = grad(lambda A: np.sum(w * A[idx]))(A0)
    onp.testing.assert_array_equal(got, added_at(idx, w))
