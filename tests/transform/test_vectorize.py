"""The vectorise pass: which element loops become slices, why the others stay, and the guard.

Gradients are compared with the same function decorated with ``vectorize=False`` and with plain
autograd through a functional form of the loop; the property test next door generates loops.
"""

# ruff: noqa: B007  (time loops that do not read their index, as users write them)
from __future__ import annotations

import functools
import io

import autograd.numpy as np
import numpy as onp
import pytest
from autograd import grad

from ckpt_transform import Revolve, checkpoint_struct


def _fresh(fn):
    """``fn`` called on copies of its array arguments: like the plain loop, a decorated function
    leaves the final values in an array it updates element by element, and every comparison here
    starts from the same input."""

    @functools.wraps(fn)
    def call(*args):
        return fn(*[a.copy() if isinstance(a, onp.ndarray) else a for a in args])

    return call


def _both(fn):
    return (
        _fresh(checkpoint_struct(Revolve(2), explain=True)(fn)),
        _fresh(checkpoint_struct(Revolve(2), vectorize=False)(fn)),
    )


def _same(vec, scalar, args, argnum=0):
    assert onp.allclose(vec(*args), scalar(*args), rtol=1e-12, atol=1e-12)
    assert onp.allclose(
        grad(vec, argnum)(*args), grad(scalar, argnum)(*args), rtol=1e-12, atol=1e-12
    )


def heat(u, lam, steps):
    n = len(u)
    for t in range(steps):
        old = np.array(u)
        for i in range(1, n - 1):
            u[i] = old[i] + lam * (old[i - 1] - 2 * old[i] + old[i + 1])
    return np.sum(u * u)


def heat_len(u, lam, steps):
    for t in range(steps):
        old = np.array(u)
        for i in range(1, len(u) - 1):  # u's length does not change with its elements
            u[i] = old[i] + lam * (old[i - 1] - 2 * old[i] + old[i + 1])
    return np.sum(u * u)


def heat_plain(u, lam, steps):
    for t in range(steps):
        u = np.concatenate([u[:1], u[1:-1] + lam * (u[:-2] - 2 * u[1:-1] + u[2:]), u[-1:]])
    return np.sum(u * u)


def test_heat_is_vectorised_and_matches_plain_autograd_and_the_scalar_loop():
    vec, scalar = _both(heat)
    assert "vectorised from" in vec.generated_source
    assert "_ckpt.index[1:n - 1]" in vec.generated_source
    assert "old[0:n - 2]" in vec.generated_source and "old[2:n]" in vec.generated_source
    assert "vectorised from" not in scalar.generated_source
    u = onp.linspace(0.0, 1.0, 12) ** 2
    for argnum in (0, 1):
        _same(vec, scalar, (u, 0.3, 7), argnum)
        assert onp.allclose(
            grad(vec, argnum)(u, 0.3, 7), grad(heat_plain, argnum)(u, 0.3, 7), rtol=1e-12
        )
    assert onp.allclose(vec(u, 0.3, 7), heat_plain(u, 0.3, 7), rtol=1e-12)


def test_a_bound_on_the_length_of_the_written_array_is_invariant():
    vec, scalar = _both(heat_len)
    assert "_ckpt.index[1:len(u) - 1]" in vec.generated_source
    u = onp.linspace(0.0, 1.0, 12) ** 2
    _same(vec, scalar, (u, 0.3, 5), 0)
    assert onp.allclose(vec(u, 0.3, 5), heat_plain(u, 0.3, 5), rtol=1e-12)


def stencil(u, c, steps):
    n, m = u.shape
    for t in range(steps):
        old = np.array(u)
        for i in range(1, n - 1):
            for j in range(1, m - 1):
                lap = old[i - 1, j] + old[i + 1, j] + old[i, j - 1] + old[i, j + 1] - 4 * old[i, j]
                u[i, j] = old[i, j] + c * np.tanh(lap)
    return np.sum(u * u)


def test_a_nest_becomes_2d_slices():
    vec, scalar = _both(stencil)
    assert "_ckpt.index[1:n - 1, 1:m - 1]" in vec.generated_source
    u = onp.random.default_rng(0).uniform(size=(6, 7))
    _same(vec, scalar, (u, 0.1, 4), 0)
    _same(vec, scalar, (u, 0.1, 4), 1)


def wrap(u, a, steps):
    n = len(u)
    for t in range(steps):
        old = np.array(u)
        for i in range(n):
            u[i] = old[i] + a * old[i - 1]  # i = 0 reads old[-1]: the last element
    return np.sum(u * u)


def test_the_guard_runs_the_loop_as_written_when_a_slice_would_wrap_around():
    vec, scalar = _both(wrap)
    assert "vectorised from" in vec.generated_source
    u = onp.linspace(1.0, 2.0, 5)
    _same(vec, scalar, (u, 0.2, 3), 0)
    _same(vec, scalar, (u, 0.2, 3), 1)


def array_operand(u, w, steps):
    n = len(u)
    for t in range(steps):
        old = np.array(u)
        for i in range(n):
            u[i] = old[i] * w  # w must be a scalar for the slices to mean the same
    return np.sum(u)


def test_the_guard_runs_the_loop_as_written_for_an_array_operand():
    vec, scalar = _both(array_operand)
    u = onp.linspace(1.0, 2.0, 4)
    _same(vec, scalar, (u, 0.5, 2), 0)
    with pytest.raises(ValueError):  # the scalar loop's error, not a silent broadcast
        vec(u, onp.ones(4), 2)


def sweep(x, a, steps):
    n = len(x)
    for t in range(steps):
        for i in range(1, n):
            x[i] = x[i] + a * x[i - 1]
    return np.sum(x)


def indirect(x, idx, steps):
    n = len(x)
    for t in range(steps):
        y = np.array(x)
        for i in range(n):
            y[i] = x[idx[i]]
        x = y * 0.5
    return np.sum(x)


def unknown_call(x, steps):
    n = len(x)
    for t in range(steps):
        y = np.array(x)
        for i in range(n):
            y[i] = float(x[i])
        x = y * 1.0
    return np.sum(x)


def non_affine(x, steps):
    n = len(x)
    for t in range(steps):
        y = np.array(x)
        for i in range(n // 2):
            y[i] = x[2 * i]
        x = y * 1.0
    return np.sum(x)


def index_assigned(x, steps):
    n = len(x)
    for t in range(steps):
        y = np.array(x)
        for i in range(n):
            y[i] = x[i] * 2.0
            i = 0
        x = y * 1.0
    return np.sum(x)


def temp_after(x, steps):
    n = len(x)
    last = 0.0
    for t in range(steps):
        y = np.array(x)
        for i in range(n):
            last = x[i] * 2.0
            y[i] = last
        x = y + last
    return np.sum(x)


def temp_read_after(x, steps):
    n = len(x)
    for t in range(steps):
        y = np.array(x)
        last = 1.0
        for i in range(n):
            last = x[i] * 2.0
            y[i] = last
        x = y + last  # the scalar loop leaves the last element's value here
    return np.sum(x)


class Box:
    def __init__(self, v):
        self.v = v


def aliased_field(b, steps):
    n = len(b.v)
    for t in range(steps):
        alias = b
        for i in range(1, n):
            b.v[i] = alias.v[i - 1] * 0.5 + 1.0  # alias.v is b.v: a sweep in disguise
    return np.sum(b.v)


@pytest.mark.parametrize(
    ("fn", "why"),
    [
        (sweep, "x is written at [i] and read at [i - 1]: iterations would depend on each other"),
        (indirect, "the index idx[i] is not a loop variable plus a loop-invariant offset"),
        (unknown_call, "`float` is called element by element"),
        (non_affine, "the index 2 * i is not a loop variable plus a loop-invariant offset"),
        (index_assigned, "the loop variable i is assigned in the loop"),
        (temp_after, "last is carried from one time step to the next"),
        (temp_read_after, "last is also used at test_vectorize.py:"),
        (aliased_field, "alias.v is read and b.v written: they may be the same field of one"),
    ],
)
def test_a_loop_that_is_not_provably_independent_keeps_its_scalar_form(fn, why):
    vec, _ = _both(fn)
    source = vec.generated_source
    assert "vectorised from" not in source
    assert "# not vectorised, test_vectorize.py:" in source
    assert why in " ".join(line.strip("# ") for line in source.splitlines())
    quiet = checkpoint_struct(Revolve(2))(fn)  # without explain=True, no comment
    assert "not vectorised" not in quiet.generated_source


def test_kept_loops_still_give_the_scalar_gradient():
    vec, scalar = _both(aliased_field)
    assert onp.isclose(vec(Box(onp.ones(5)), 2), scalar(Box(onp.ones(5)), 2), rtol=1e-12)
    vec, scalar = _both(sweep)
    _same(vec, scalar, (onp.linspace(0.0, 1.0, 6), 0.4, 3), 0)
    vec, scalar = _both(temp_after)
    _same(vec, scalar, (onp.linspace(0.0, 1.0, 6), 3), 0)


def index_as_value(u, dx, steps):
    n, m = u.shape
    for t in range(steps):
        old = np.array(u)
        for i in range(n):
            for j in range(1, m):
                u[i, j] = old[i, j] * np.cos(i * dx) + j * dx * old[i, j - 1]
    return np.sum(u * u)


def test_a_loop_index_used_as_a_value_becomes_the_array_of_its_values():
    vec, scalar = _both(index_as_value)
    assert "_ckpt.span(0, n, 0, 2)" in vec.generated_source
    assert "_ckpt.span(1, m, 1, 2)" in vec.generated_source
    u = onp.random.default_rng(1).uniform(size=(4, 5))
    _same(vec, scalar, (u, 0.3, 3), 0)
    _same(vec, scalar, (u, 0.3, 3), 1)


def branches(x, a, steps):
    n = len(x)
    for t in range(steps):
        y = np.array(x)
        for i in range(n):
            if x[i] > 0.5:
                y[i] = a
            else:
                y[i] = x[i] * a - 1.0
        x = 0.5 * y + 0.25
    return np.sum(x * x)


def test_an_if_becomes_where_with_the_scalar_gradient_in_every_argument():
    vec, scalar = _both(branches)
    assert "_ckpt.where(x[0:n] > 0.5, a, x[0:n] * a - 1.0)" in vec.generated_source
    x = onp.linspace(0.0, 1.0, 9)
    _same(vec, scalar, (x, 0.7, 3), 0)
    _same(vec, scalar, (x, 0.7, 3), 1)


def unsafe_branch(x, steps):
    n = len(x)
    for t in range(steps):
        y = np.array(x)
        for i in range(n):
            if x[i] > 0:
                y[i] = np.log(x[i])
        x = y * 1.0
    return np.sum(x)


def test_an_if_whose_branch_could_make_nan_elsewhere_keeps_its_loop():
    vec, _ = _both(unsafe_branch)
    assert "vectorised from" not in vec.generated_source
    assert "(and none inside an if)" in " ".join(vec.generated_source.split())


def test_verbose_prints_the_vectorize_pass():
    import contextlib

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        checkpoint_struct(Revolve(2), verbose=True)(heat)
    text = out.getvalue()
    assert "---- after vectorize" in text
    assert "for i in range(1, n - 1) vectorised (u written and read only at [i]" in text
