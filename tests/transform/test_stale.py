"""``a = x[i]`` before a write of x: a number on a one-axis x, a row (a view) on a bigger one.

The plain loop's row follows a later ``x[i] = v`` or ``x += v``; the rewritten update builds a
new array and the row would keep its old values. The source has no shapes, so where ``a`` can be
read after such a write the generated code checks the shape as it runs and refuses a row with a
`CheckpointError`. These tests pin which programs get the check (`stale.read_after_write`), that a
row is refused before any result, and that every accepted program equals autograd on a
functional form of the plain loop (autograd cannot assign items): value, gradient and Hessian.
"""

# ruff: noqa: B007  (time-stepping loops often do not read their index, as users write them)

from __future__ import annotations

import textwrap

import autograd.numpy as np
import gast
import numpy as onp
import pytest
from autograd import grad, hessian

from ckpt_transform import Revolve, StoreAll, checkpoint_struct
from ckpt_transform.errors import CheckpointError
from ckpt_transform.transform import stale

# -- which reads can see a write: stale.read_after_write on loop bodies ---------------------------


def _late(body: str, name: str = "a", *, read_outside: bool = False) -> bool:
    """Whether ``name``, bound by the body's first ``name = x[...]``, can be read after a write
    of ``x`` (an element update or ``x += ...``)."""
    stmts = gast.parse(textwrap.dedent(body)).body
    placed = stale.placed(stmts)
    (alias,) = [
        p.stmt
        for p in placed
        if isinstance(p.stmt, gast.Assign)
        and isinstance(p.stmt.targets[0], gast.Name)
        and p.stmt.targets[0].id == name
    ]

    def writes(stmt):
        if isinstance(stmt, gast.AugAssign):
            target = stmt.target
        elif isinstance(stmt, gast.Assign):
            target = stmt.targets[0]
        else:
            return False
        while isinstance(target, gast.Subscript):
            target = target.value
        return (
            isinstance(target, gast.Name)
            and target.id == "x"
            and (isinstance(stmt, gast.AugAssign) or stmt.targets[0] is not target)
        )

    return stale.read_after_write(alias, name, placed, writes, read_outside)


@pytest.mark.parametrize(
    "body",
    [
        "a = x[0]\nx[0] = 2.0 * a\n",  # the write reads a before it writes
        "a = x[0]\ns = s + a\nx[0] = 1.0\n",  # every read before the write
        "x[0] = 1.0\na = x[0]\ns = s + a\n",  # the write comes before the alias
        "a = x[0]\nx[1] = a\n",
        "for j in range(3):\n    a = x[j]\n    x[j] = 2.0 * a\n",  # inside one inner loop
        "a = x[0]\nx += a\n",  # an augmented write reads a first too
        "b = 1.0\nx[0] = b\n",  # a is never read
    ],
)
def test_reads_before_any_write_need_no_check(body):
    assert not _late(body if "a = " in body else "a = x[0]\n" + body)


@pytest.mark.parametrize(
    "body",
    [
        "a = x[0]\nx[0] = 1.0\ns = s + a\n",  # read after the write
        "a = x[0]\nx += 1.0\ns = s + a\n",
        "s = s + a\na = x[0]\nx[0] = 1.0\n",  # read before the alias: the previous iteration's
        "a = x[0]\nfor j in range(2):\n    s = s + a\n    x[0] = s\n",  # the read repeats
        "for j in range(2):\n    a = x[j]\nx[0] = 1.0\ns = s + a\n",  # made in an inner loop
        "for j in range(2):\n    a = x[j]\ns = s + a\n",  # the inner loop may not run
        "if s > 0:\n    a = x[0]\ns = s + a\nx[0] = 1.0\n",  # made under a condition
        "a = x[0]\nif s > 0:\n    x[0] = 1.0\ns = s + a\n",  # a write under a condition
    ],
)
def test_reads_that_may_follow_a_write_need_the_check(body):
    assert _late(body)


def test_a_name_read_after_the_loop_needs_the_check_when_a_write_follows_it():
    assert _late("a = x[0]\nx[0] = 1.0\n", read_outside=True)
    assert not _late("x[0] = 1.0\na = x[0]\n", read_outside=True)


# -- run time: a row is refused, a number accepted ------------------------------------------------


def row_read_after_update(x, n):
    s = 0.0
    for k in range(n):
        a = x[0]
        x[0] = 0.5 * x[1] + 0.25 * x[0]
        s = s + np.sum(a * a)
    return s + np.sum(x**2)


def row_read_after_update_functional(x, n):  # the oracle, on a one-axis x (a is a number)
    s = 0.0
    for k in range(n):
        a = x[0]
        x = np.concatenate([(0.5 * x[1] + 0.25 * x[0])[None], x[1:]])
        s = s + np.sum(a * a)
    return s + np.sum(x**2)


def _same(f, ref, x, n):
    assert abs(f(onp.array(x), n) - ref(onp.array(x), n)) < 1e-12
    onp.testing.assert_allclose(grad(f)(onp.array(x), n), grad(ref)(onp.array(x), n), rtol=1e-12)
    onp.testing.assert_allclose(
        hessian(f)(onp.array(x), n), hessian(ref)(onp.array(x), n), rtol=1e-10, atol=1e-14
    )


@pytest.mark.parametrize("scheme", [Revolve(2), StoreAll()], ids=["revolve", "storeall"])
def test_a_number_taken_before_an_update_is_accepted(scheme):
    f = checkpoint_struct(scheme)(row_read_after_update)
    assert "_ckpt.not_a_view(" in f.generated_source
    x = onp.array([0.3, -1.2, 2.0])
    assert abs(f(onp.array(x), 4) - row_read_after_update(onp.array(x), 4)) < 1e-12
    _same(f, row_read_after_update_functional, x, 4)


@pytest.mark.parametrize("derivative", [False, True], ids=["value", "gradient"])
def test_a_row_taken_before_an_update_is_refused_before_any_result(derivative):
    f = checkpoint_struct(Revolve(2))(row_read_after_update)
    g = onp.arange(6.0).reshape(2, 3) + 1.0
    # the plain loop's a follows the write to g[0]: the rewritten one would not
    call = grad(f) if derivative else f
    with pytest.raises(CheckpointError) as info:
        call(g, 3)
    message = str(info.value)
    line = row_read_after_update.__code__.co_firstlineno + 3
    assert f"`a = x[0]` at test_stale.py:{line}" in message
    assert f"test_stale.py:{line + 1}" in message  # the write
    assert "shape (3,)" in message and "shape (2, 3)" in message
    assert "`a = np.array(x[0])`" in message


def row_updated_in_place(x, n):
    s = 0.0
    for k in range(n):
        a = x[1]
        x += 0.1 * x[0]
        s = s + np.sum(a)
    return s + np.sum(x**2)


def test_a_row_taken_before_an_augmented_update_is_refused():
    f = checkpoint_struct(Revolve(2))(row_updated_in_place)
    with pytest.raises(CheckpointError, match="in the checkpointed loop the update builds"):
        f(onp.ones((2, 2)), 2)
    # on a one-axis array it is a number: accepted, and equal to autograd on the plain loop,
    # where `x += v` on a traced array builds a new one
    x = onp.array([0.3, -1.2, 2.0])
    _same(f, row_updated_in_place, x, 3)


def row_before_the_loop(x, n):
    a = x[0]
    s = 0.0
    for k in range(n):
        x[0] = 0.5 * x[0] + 0.1
        s = s + np.sum(a * x[0])
    return s


def row_before_the_loop_functional(x, n):
    a = x[0]
    s = 0.0
    for k in range(n):
        x = np.concatenate([(0.5 * x[0] + 0.1)[None], x[1:]])
        s = s + np.sum(a * x[0])
    return s


def test_a_row_taken_before_the_loop_is_refused_where_it_is_made():
    f = checkpoint_struct(Revolve(2))(row_before_the_loop)
    with pytest.raises(CheckpointError) as info:
        f(onp.ones((2, 2)), 3)
    line = row_before_the_loop.__code__.co_firstlineno + 1
    assert f"`a = x[0]` at test_stale.py:{line}" in str(info.value)
    _same(f, row_before_the_loop_functional, onp.array([0.3, -1.2, 2.0]), 3)


def row_read_before_update(g, n):
    for k in range(n):
        old = g[0]
        g[0] = 0.5 * old + 0.25 * g[1]
    return np.sum(g**2)


def row_read_before_update_functional(g, n):
    for k in range(n):
        old = g[0]
        g = np.concatenate([(0.5 * old + 0.25 * g[1])[None], g[1:]])
    return np.sum(g**2)


def test_a_row_read_only_before_the_update_is_accepted_without_a_check():
    # the plain loop's old changes with the write, but nothing reads it afterwards
    f = checkpoint_struct(Revolve(2))(row_read_before_update)
    assert "not_a_view" not in f.generated_source
    g = onp.arange(6.0).reshape(2, 3) / 7.0
    assert abs(f(onp.array(g), 3) - row_read_before_update(onp.array(g), 3)) < 1e-12
    _same(f, row_read_before_update_functional, g, 3)


def element_loop(u, lam, steps):
    n = len(u)
    for t in range(steps):
        for i in range(n):
            old = u[i]
            u[i] = old + lam * old * old
    return np.sum(u * u)


def test_an_element_loop_reading_before_its_update_stays_vectorised():
    f = checkpoint_struct(Revolve(2))(element_loop)
    assert "not_a_view" not in f.generated_source
    assert "vectorised from" in f.generated_source
    plain = checkpoint_struct(Revolve(2), vectorize=False)(element_loop)
    u = onp.linspace(0.1, 0.5, 6)
    assert abs(f(onp.array(u), 0.1, 3) - element_loop(onp.array(u), 0.1, 3)) < 1e-12
    onp.testing.assert_allclose(
        grad(f)(onp.array(u), 0.1, 3), grad(plain)(onp.array(u), 0.1, 3), rtol=1e-12
    )


def number_accumulated(x, n):
    s = 0.0
    for k in range(n):
        acc = x[0]
        acc += 0.5 * x[1]
        x = 0.9 * x + 0.1 * np.tanh(acc)
        s = s + np.sum(acc * acc)
    return s + np.sum(x**2)


def test_a_number_accumulated_in_place_is_accepted_and_a_row_refused():
    # `acc += v` on a number makes a new number; on a row of x it writes into x in the plain
    # loop (and not in the rewritten one): refused as the step runs
    f = checkpoint_struct(Revolve(2))(number_accumulated)
    assert "_ckpt.not_a_view(" in f.generated_source
    _same(f, number_accumulated, onp.array([0.3, -1.2, 2.0]), 4)
    with pytest.raises(CheckpointError) as info:
        f(onp.ones((3, 2)), 2)
    line = number_accumulated.__code__.co_firstlineno + 4
    assert f"`acc += 0.5 * x[1]` at test_stale.py:{line}" in str(info.value)
    assert "`acc = np.array(x[0])`" in str(info.value)


# -- items of a list: replaced by `x[i] = v`, changed by `+=` --------------------------------------


def list_item_accumulated(a0, n):
    x = [a0 * 1.0, a0 * 2.0]
    s = 0.0
    for k in range(n):
        acc = x[0]
        acc += 0.5 * np.tanh(x[1])
        x = [acc * 0.9, x[1] + 0.1 * acc]
        s = s + np.sum(x[0] * x[1])
    return s


def list_item_updated_in_place(a0, n):
    x = [a0 * 1.0, a0 * 2.0]
    s = 0.0
    for k in range(n):
        a = x[0]
        x[0] += 0.5 * np.tanh(x[1])
        s = s + np.sum(a * x[1])
    return s


def list_item_replaced(a0, n):
    x = [a0 * 1.0, a0 * 2.0]
    s = 0.0
    for k in range(n):
        a = x[0]
        x[0] = x[0] + 0.5 * np.tanh(x[1])
        s = s + np.sum(a * x[1])
    return s


@pytest.mark.parametrize("fn", [list_item_accumulated, list_item_updated_in_place])
def test_an_array_item_of_a_list_added_into_is_refused_and_a_number_accepted(fn):
    # `acc += v` and `x[0] += v` write into the array the list holds (the plain loop's other
    # name changes too); a number item is replaced, as in the plain loop
    f = checkpoint_struct(Revolve(2))(fn)
    with pytest.raises(CheckpointError, match="the very object its container holds"):
        f(onp.array([0.3, -1.2]), 3)
    _same(f, fn, 0.7, 3)  # a0 a number: x holds numbers


def test_an_array_item_of_a_list_replaced_is_accepted():
    # `x[0] = v` puts a new object in the list: the plain loop's a keeps the old one, as here
    f = checkpoint_struct(Revolve(2))(list_item_replaced)
    _same(f, list_item_replaced, onp.array([0.3, -1.2]), 3)
    _same(f, list_item_replaced, 0.7, 3)
