"""The run-time helpers the generated code calls (ckpt_transform.runtime.support)."""

from __future__ import annotations

from dataclasses import dataclass

import autograd.numpy as np
import numpy as onp
import pytest
from autograd import grad, make_jvp
from autograd.test_util import check_grads

from ckpt_transform import CheckpointError, Revolve
from ckpt_transform.backends.autograd import getval, isbox
from ckpt_transform.runtime import support

# -- setitem: the functional element update -------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (2, 1.5),
        (support.index[1:-1], 0.25),  # a scalar broadcast over a slice
        (support.index[1:3], onp.array([0.3, -0.4])),
        (support.index[::2], onp.array([1.0, 2.0, 3.0])),
        (onp.array([0, 4]), onp.array([5.0, 6.0])),
    ],
)
def test_setitem_gradients_in_both_arguments(key, value):
    x = onp.linspace(-1.0, 1.0, 5)

    def f(x, value):
        return np.sum(np.sin(support.setitem(x, key, value * value)) * np.arange(1.0, 6.0))

    check_grads(f, modes=["rev", "fwd"], order=2)(x, value)


def test_setitem_matches_the_in_place_update_and_leaves_its_input():
    x = onp.arange(6.0).reshape(2, 3)
    expected = x.copy()
    expected[1, 1:] = [7.0, 8.0]
    out = support.setitem(x, (1, support.index[1:]), onp.array([7.0, 8.0]))
    onp.testing.assert_array_equal(out, expected)
    onp.testing.assert_array_equal(x, onp.arange(6.0).reshape(2, 3))
    assert support.index[1:-1, 2] == (slice(1, -1, None), 2)


def test_setitem_gradient_by_hand():
    """d/dx sum(w * setitem(x, 1, v)) is w with a 0 at 1; d/dv is w[1]."""
    w = onp.array([2.0, 3.0, 5.0])
    dx, dv = grad(lambda x, v: np.sum(w * support.setitem(x, 1, v)), (0, 1))(onp.ones(3), 4.0)
    onp.testing.assert_array_equal(dx, [2.0, 0.0, 5.0])
    assert dv == 3.0
    jvp = make_jvp(lambda v: support.setitem(onp.zeros(3), 2, v))(1.0)
    onp.testing.assert_array_equal(jvp(2.0)[1], [0.0, 0.0, 2.0])


def test_setitem_on_lists_and_dicts_copies():
    xs = [1.0, 2.0]
    assert support.setitem(xs, 0, 5.0) == [5.0, 2.0] and xs == [1.0, 2.0]
    d = {"a": 1.0}
    assert support.setitem(d, "b", 2.0) == {"a": 1.0, "b": 2.0} and d == {"a": 1.0}
    with pytest.raises(TypeError, match="array, a list or a dict"):
        support.setitem((1.0, 2.0), 0, 3.0)


# -- structs --------------------------------------------------------------------------------------


@dataclass
class Plate:
    T: onp.ndarray
    k: float
    label: str


@dataclass(slots=True)
class Slotted:
    T: float
    k: float


class Plain:
    def __init__(self, T, k):
        self.T = T
        self.k = k
        self.inits = getattr(self, "inits", 0) + 1


def test_other_fields_and_view_of_a_dataclass():
    plate = Plate(onp.ones(2), 0.5, "p")
    fields = support.other_fields(plate, "T")
    assert fields == (Plate, {"k": 0.5, "label": "p"})
    view = support.struct_view(fields, T=onp.zeros(2))
    assert type(view) is Plate and view is not plate
    assert view.k == 0.5 and view.label == "p" and onp.all(view.T == 0.0)


def test_view_of_slotted_and_plain_classes_skips_init():
    cls, values = support.other_fields(Slotted(1.0, 2.0), "T")
    assert (cls, values) == (Slotted, {"k": 2.0})
    assert support.struct_view((cls, values), T=3.0) == Slotted(3.0, 2.0)
    plain = Plain(1.0, 2.0)
    view = support.struct_view(support.other_fields(plain, "T"), T=5.0)
    assert (view.T, view.k, view.inits) == (5.0, 2.0, 1)  # __init__ not run again


def test_an_object_without_fields_is_refused():
    with pytest.raises(CheckpointError, match="no fields"):
        support.other_fields(3.0, "real")


def test_struct_update_of_a_plain_object_and_of_a_traced_dataclass():
    plain = Plain(1.0, 2.0)
    assert support.struct_update(plain, T=7.0) is plain and plain.T == 7.0

    caller = Plate(onp.ones(2), 0.5, "p")
    seen = {}

    def loss(plate):
        out = support.struct_update(plate, T=plate.T * plate.k)
        seen["box"] = isbox(out)
        return np.sum(out.T * out.T)

    g = grad(loss)(caller)
    assert seen["box"]
    assert type(g) is Plate
    onp.testing.assert_allclose(g.T, 2 * 0.25 * onp.ones(2))
    assert g.k == pytest.approx(2 * 0.5 * 2)
    onp.testing.assert_array_equal(caller.T, [0.5, 0.5])  # the plain final value
    assert not isbox(caller.T)


def test_struct_set_refuses_a_traced_struct():
    def loss(plate):
        support.struct_set(plate, T=plate.T)
        return np.sum(plate.T)

    with pytest.raises(CheckpointError, match="pass the object to the function"):
        grad(loss)(Plate(onp.ones(2), 0.5, "p"))
    plain = Plain(1.0, 2.0)
    support.struct_set(plain, T=4.0)
    assert plain.T == 4.0


# -- the guarded step -----------------------------------------------------------------------------


def test_in_place_write_on_a_traced_array_becomes_a_checkpoint_error():
    def step(state, i):
        (x,) = state
        x[0] = 1.0  # an in-place write on a box
        return (x,)

    def loss(x0):
        (x,) = support.checkpointed_for(step, (x0,), 3, Revolve(2))
        return np.sum(x)

    with pytest.raises(CheckpointError, match="must be functional") as info:
        grad(loss)(onp.ones(2))
    assert "does not support item assignment" in str(info.value.__cause__)


def test_other_errors_pass_through_the_guard():
    def step(state, i):
        raise KeyError("not an in-place write")

    with pytest.raises(KeyError):
        support.checkpointed_for(step, (1.0,), 2, Revolve(2))
    assert getval(3.0) == 3.0
