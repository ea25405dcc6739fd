"""Helpers and methods the loop body calls: their writes are carried, or the loop is refused.

Issue 10, reproducers 1 and 2. Every accepted program is compared, value and gradient, with
autograd on the undecorated function (the oracle); every refused one must name the helper, its
file and line, and the write, at the line of the call in this file.
"""

# ruff: noqa: B007  (time-stepping loops often do not read their index, as users write them)

from __future__ import annotations

import inspect
from dataclasses import dataclass

import autograd.numpy as np
import numpy as onp
import pytest
from autograd import grad

from ckpt_transform import OnlineR2, Periodic, Revolve, StoreAll, TransformError
from ckpt_transform.api import checkpoint_struct

RTOL = 1e-10
HERE = __file__.rsplit("/", 1)[-1]


def schemes():
    return [
        pytest.param(lambda: StoreAll(), id="StoreAll"),
        pytest.param(lambda: Revolve(2), id="Revolve2"),
        pytest.param(lambda: Periodic(period=2), id="Periodic"),
        pytest.param(lambda: OnlineR2(2), id="OnlineR2"),
    ]


def assert_close(actual, expected):
    actual, expected = onp.asarray(actual, dtype=float), onp.asarray(expected, dtype=float)
    assert actual.shape == expected.shape
    scale = max(float(onp.max(onp.abs(expected), initial=0.0)), 1e-300)
    assert float(onp.max(onp.abs(actual - expected), initial=0.0)) <= RTOL * scale


def same_as_plain(make_scheme, fn, *args):
    """Decorate ``fn``; its value and gradient (every argument) equal the plain function's."""
    decorated = checkpoint_struct(make_scheme())(fn)
    assert_close(decorated(*args), fn(*args))
    for argnum in range(len(args)):
        assert_close(grad(decorated, argnum)(*args), grad(fn, argnum)(*args))
    return decorated


def marked_line(fn, marker="# <- error"):
    lines, start = inspect.getsourcelines(fn)
    (index,) = [k for k, line in enumerate(lines) if marker in line]
    return start + index


def refused(fn, *words):
    """``fn`` is refused at the marked line of this file, the message holding ``words``."""
    with pytest.raises(TransformError) as info:
        checkpoint_struct(Revolve(2))(fn)
    err = info.value
    assert err.filename == __file__
    assert err.lineno == marked_line(fn), (err.lineno, err.msg)
    for word in words:
        assert word in err.msg, (word, err.msg)
    assert "instead" in err.msg.lower(), err.msg
    return err


@dataclass
class S:
    u: float
    n: float

    def grow(self):
        self.u = self.u * 1.5

    def grow_twice(self):
        self.grow()
        self.grow()


def grow(s):
    s.u = s.u * 1.5


def grow_via_setattr(s):
    setattr(s, "u", s.u * 1.5)  # noqa: B010  (the setattr form is what is tested)


def grow_deep(s):
    t = s  # an alias of the argument
    grow_via_setattr(t)


# -- reproducer 1: a helper that writes a field ----------------------------------------------------


def repro1(u0):
    s = S(u=u0, n=0.0)
    for i in range(3):
        grow(s)
        s.n = s.n + 1.0
    return s.u + s.n


@pytest.mark.parametrize("make_scheme", schemes())
def test_a_field_written_by_a_helper_is_carried(make_scheme):
    decorated = same_as_plain(make_scheme, repro1, 1.2)
    assert decorated(1.2) == pytest.approx(7.05, rel=1e-14)  # the figure
    assert "s.u is assigned by grow" in decorated.generated_source


def helper_alone(u0):
    s = S(u=u0, n=0.0)
    for i in range(3):
        grow(s)
    return s.u * s.n + s.u


def test_a_helper_alone_in_the_body_is_named_in_the_generated_source():
    decorated = same_as_plain(lambda: Revolve(2), helper_alone, 1.2)
    header = decorated.generated_source.split("\n\n")[0]
    assert "state:      s.u" in header
    assert f"s.u is assigned by grow at {HERE}:{grow.__code__.co_firstlineno + 1}" in header


def nested_and_setattr(u0, v):
    s = S(u=u0, n=v)
    for i in range(4):
        grow_deep(s)
        s.n = s.n * s.u
    return s.n


def method_of_a_known_class(u0, v):
    s = S(u=u0, n=v)  # the class of s is known when decorating
    for i in range(4):
        s.grow_twice()
        s.n = s.n + np.sin(s.u)
    return s.n


def annotated_argument(s: S, k):
    for i in range(3):
        s.grow()
        s.n = s.n + k * s.u
    return s.n


@pytest.mark.parametrize("make_scheme", schemes())
@pytest.mark.parametrize("fn", [nested_and_setattr, method_of_a_known_class])
def test_writes_deep_in_helpers_and_methods_are_carried(make_scheme, fn):
    decorated = same_as_plain(make_scheme, fn, 0.7, 0.3)
    assert "s.u is assigned by" in decorated.generated_source


@pytest.mark.parametrize("make_scheme", schemes())
def test_a_method_of_an_annotated_argument_is_read(make_scheme):
    decorated = checkpoint_struct(make_scheme())(annotated_argument)
    plain, ours = S(0.7, 0.3), S(0.7, 0.3)
    assert_close(decorated(ours, 0.4), annotated_argument(plain, 0.4))
    assert (ours.u, ours.n) == pytest.approx((plain.u, plain.n), rel=1e-14)  # left as plain
    assert_close(
        grad(lambda k: decorated(S(0.7, 0.3), k))(0.4),
        grad(lambda k: annotated_argument(S(0.7, 0.3), k))(0.4),
    )


def functional(a):
    b = a * 1.0  # a new array: writing it leaves the argument alone
    return np.concatenate([b[:1] * 0.5, b[1:]])


def uses_a_functional_helper(x):
    for i in range(3):
        x = functional(x) + 0.1 * np.sin(x)
    return np.sum(x**2)


@pytest.mark.parametrize("make_scheme", schemes())
def test_a_functional_helper_is_accepted(make_scheme):
    same_as_plain(make_scheme, uses_a_functional_helper, np.array([0.3, -0.4, 1.1]))


def local_list(x):
    for i in range(3):
        parts = []  # built anew in every iteration: ordinary code of the step
        parts.append(x * 2.0)
        parts.append(np.sin(x))
        x = parts[0] * 0.3 + parts[1]
    return x


@pytest.mark.parametrize("make_scheme", schemes())
def test_a_list_built_inside_the_body_is_ordinary_code(make_scheme):
    same_as_plain(make_scheme, local_list, 0.8)


# -- reproducer 2 and other writes that cannot be carried -----------------------------------------


def appends_to_an_outside_list(x):
    traj = [0.0]
    for i in range(3):
        x = x * 1.5
        traj.append(x)  # <- error
    return sum(t * t for t in traj)


def appends_to_an_empty_list(x):
    traj = []
    for i in range(3):
        x = x * 1.5
        traj.append(x)  # <- error
    return sum(t * t for t in traj)


@pytest.mark.parametrize("fn", [appends_to_an_outside_list, appends_to_an_empty_list])
def test_growing_a_list_from_outside_is_refused(fn):
    refused(fn, "traj.append(x)", "changes traj in place", "traj[i] = x")


def log(t, v):
    t.append(v)


def appends_in_a_helper(x):
    traj = [0.0]
    for i in range(3):
        x = x * 1.5
        log(traj, x)  # <- error
    return x + len(traj)


def test_a_helper_growing_a_list_is_refused_naming_it():
    err = refused(appends_in_a_helper, "log", f"{HERE}:{log.__code__.co_firstlineno + 1}")
    assert "t.append(v)" in err.msg and "traj" in err.msg


@dataclass
class Grid:
    u: np.ndarray


def zero_first(g):
    g.u[0] = 0.0


def element_write_in_a_helper(u0):
    g = Grid(u=u0)
    for i in range(3):
        g.u = g.u * 1.1
        zero_first(g)  # <- error
    return np.sum(g.u)


def test_an_element_write_in_a_helper_is_refused():
    refused(element_write_in_a_helper, "zero_first", "g.u[...]", "g.u[0] = 0.0")


CONFIG = Grid(u=np.zeros(2))


def set_global(v):
    CONFIG.u = v


def writes_a_global_through_a_helper(x):
    for i in range(3):
        x = x * 1.5
        set_global(x)  # <- error
    return x


def test_a_helper_writing_a_global_object_is_refused():
    refused(writes_a_global_through_a_helper, "set_global", "the global CONFIG", "CONFIG.u = v")


def set_named(s, name, v):
    setattr(s, name, v)


def computed_setattr(u0):
    s = S(u=u0, n=0.0)
    for i in range(3):
        set_named(s, "u", s.u * 2.0)  # <- error
        s.n = s.n + 1.0
    return s.u


def test_setattr_with_a_computed_name_is_refused():
    refused(computed_setattr, "set_named", "computed attribute name")


def in_place_add(a):
    a += 1.0


def augmented_in_a_helper(x):
    y = np.ones(2)
    for i in range(3):
        in_place_add(y)  # <- error
        x = x + y
    return np.sum(x)


def test_an_augmented_assignment_to_an_argument_is_refused():
    refused(augmented_in_a_helper, "in_place_add", "a += 1.0", "y")


def copyto_in_body(x):
    buf = np.zeros(2)
    for i in range(3):
        np.copyto(buf, x)  # <- error
        x = x * 2.0 + buf
    return np.sum(x)


def test_copyto_into_an_outside_array_is_refused():
    refused(copyto_in_body, "writes buf[...] in place")


_namespace: dict = {}
exec("def hidden(s):\n    s.u = s.u * 2.0\n", _namespace)  # a helper with no source file
hidden = _namespace["hidden"]


def calls_an_unreadable_helper(u0):
    s = S(u=u0, n=0.0)
    for i in range(3):
        hidden(s)  # <- error
        s.n = s.n + 1.0
    return s.u


def test_a_helper_whose_source_cannot_be_read_is_refused():
    refused(calls_an_unreadable_helper, "hidden", "cannot be checked")


# -- element updates of an array from outside the loop: the plain loop's semantics ----------------


def fills_an_outside_array(buf, c):
    for i in range(4):
        buf[i] = c * np.sin(i + 1.0)
    return buf


def updates_a_list_argument(items, c):
    for i in range(3):
        items[i] = items[i] * c + 1.0
    return items[0] + items[1] + items[2]


@pytest.mark.parametrize("make_scheme", schemes())
def test_an_array_updated_element_by_element_ends_holding_the_final_values(make_scheme):
    decorated = checkpoint_struct(make_scheme())(fills_an_outside_array)
    ours, plain = onp.zeros(4), onp.zeros(4)
    result = decorated(ours, 0.7)
    fills_an_outside_array(plain, 0.7)
    onp.testing.assert_array_equal(ours, plain)  # the caller's array, as the plain loop leaves it
    assert result is ours  # and the variable still names it after the loop
    assert "refill=(0,)" in decorated.generated_source


@pytest.mark.parametrize("make_scheme", schemes())
def test_a_list_updated_element_by_element_ends_holding_the_final_values(make_scheme):
    decorated = checkpoint_struct(make_scheme())(updates_a_list_argument)
    ours, plain = [0.5, -1.0, 2.0], [0.5, -1.0, 2.0]
    assert decorated(ours, 0.3) == pytest.approx(updates_a_list_argument(plain, 0.3), rel=1e-14)
    assert ours == pytest.approx(plain, rel=1e-14)
    got = grad(lambda c: decorated([0.5, -1.0, 2.0], c))(0.3)
    assert got == pytest.approx(grad(lambda c: updates_a_list_argument([0.5, -1.0, 2.0], c))(0.3))
