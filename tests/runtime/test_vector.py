"""The run-time guard and the where of vectorised element loops."""

from __future__ import annotations

import autograd.numpy as np
import numpy as onp
from autograd import grad

from ckpt_transform.runtime.vector import fits, span, where


def test_fits_accepts_slices_inside_their_arrays():
    x = onp.zeros(10)
    assert fits(((1, 9),), x, ((0, -1, 0, 1),))
    assert fits(((0, 10),), x, ((0, 0),), scalars=(0.5, onp.float64(2.0)))
    u = onp.zeros((4, 5))
    assert fits(((1, 3), (0, 4)), u, ((0, -1, 1), (1, 0, 1)))


def test_fits_refuses_what_the_slices_would_compute_differently():
    x = onp.zeros(10)
    assert not fits(((0, 10),), x, ((0, -1, 0),))  # x[-1] wraps around
    assert not fits(((1, 10),), x, ((0, 0, 1),))  # x[10] is past the end
    assert not fits(((5, 5),), x, ((0, 0),))  # an empty range
    assert not fits(((0, 3),), [0.0, 1.0, 2.0], ((0, 0),))  # a list
    assert not fits(((0, 3),), onp.zeros((3, 2)), ((0, 0),))  # a row per element
    assert not fits(((0, 10),), x, ((0, 0),), scalars=(onp.ones(10),))  # would broadcast
    assert not fits(((0.0, 10),), x, ((0, 0),))  # not an integer bound
    assert fits(((0, 10),), x, (None,)) is True  # a fixed index is the loop's own


def test_fits_reads_traced_arrays():
    def f(x):
        assert fits(((1, 3),), x, ((0, -1, 1),))
        return np.sum(x)

    assert onp.allclose(grad(f)(onp.ones(4)), onp.ones(4))


def test_where_sums_the_gradient_of_a_scalar_branch():
    c = onp.array([True, False, True, True])
    assert grad(lambda a: np.sum(where(c, a, onp.ones(4))))(0.3) == 3.0
    assert grad(lambda a: np.sum(where(c, onp.ones(4), a * onp.ones(4))))(0.3) == 1.0
    x = onp.arange(4.0)
    assert onp.array_equal(grad(lambda x: np.sum(where(c, x * x, x)))(x), [0.0, 1.0, 4.0, 6.0])


def test_span_broadcasts_along_its_loop_axis():
    assert onp.array_equal(span(2, 5, 0, 1), [2, 3, 4])
    assert span(1, 4, 0, 2).shape == (3, 1) and span(0, 5, 1, 2).shape == (1, 5)
    assert onp.array_equal(span(0, 2, 1, 3).ravel(), [0, 1]) and span(0, 2, 1, 3).ndim == 3
