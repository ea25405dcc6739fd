"""The runtime guard: what the transform cannot see, a step changing it is a CheckpointError.

Each case is a program the decorator accepts at decoration time (the write happens where the
analysis cannot read it) and that would otherwise lose a write or repeat a side effect on every
recomputation; each must raise before returning anything. Programs that change nothing outside
their state run as before, and `checkpointed_for` given a step directly is not guarded.
"""

# ruff: noqa: B007  (time-stepping loops often do not read their index, as users write them)

from __future__ import annotations

from dataclasses import dataclass

import autograd.numpy as np
import pytest
from autograd import grad

from ckpt_transform import CheckpointError, Revolve, StoreAll, checkpointed_for
from ckpt_transform.api import checkpoint_struct
from ckpt_transform.runtime import guard


class Model:  # its class is not known when the decorated function is read (no annotation)
    def __init__(self, k):
        self.k = k
        self.calls = 0

    def bump(self):
        self.calls = self.calls + 1

    def scale(self):
        self.k = self.k * 1.5


def calls_a_counting_method(model, x):
    for i in range(4):
        model.bump()
        x = x * model.k
    return x


@dataclass
class S:
    u: float
    n: float


class Grower:
    def grow(self, s):
        s.u = s.u * 1.5


def method_writes_a_struct_field(u0, grower):
    s = S(u=u0, n=0.0)
    for i in range(3):
        grower.grow(s)  # grower's class is not known when decorating
        s.n = s.n + 1.0
    return s.u + s.n


def callback_appends(x, callback):
    for i in range(3):
        x = x * 1.5
        callback(x)
    return x


@pytest.mark.parametrize("traced", [False, True], ids=["plain call", "under grad"])
def test_a_method_changing_a_parameter_object_is_reported(traced):
    f = checkpoint_struct(Revolve(2))(calls_a_counting_method)
    with pytest.raises(CheckpointError, match=r"changed the parameter model .*attribute calls"):
        if traced:
            grad(f, 1)(Model(0.9), 1.3)
        else:
            f(Model(0.9), 1.3)


@pytest.mark.parametrize("traced", [False, True], ids=["plain call", "under grad"])
def test_a_field_assigned_on_a_struct_view_is_reported(traced):
    f = checkpoint_struct(Revolve(2))(method_writes_a_struct_field)
    with pytest.raises(CheckpointError, match=r"assigned the field u of a S .*not carry"):
        if traced:
            grad(f)(1.2, Grower())
        else:
            f(1.2, Grower())


def nested_helper_writes_a_field(u0):
    s = S(u=u0, n=0.0)

    def grow(t):  # defined inside the decorated function: not read when decorating
        t.u = t.u * 1.5

    for i in range(3):
        grow(s)
        s.n = s.n + 1.0
    return s.u + s.n


def test_a_field_assigned_by_a_function_defined_inside_is_reported():
    f = checkpoint_struct(Revolve(2))(nested_helper_writes_a_field)
    with pytest.raises(CheckpointError, match=r"field u of a S .*defined inside"):
        f(1.2)


def test_a_callback_growing_a_list_is_reported():
    log: list = []
    f = checkpoint_struct(StoreAll())(callback_appends)
    with pytest.raises(CheckpointError, match=r"length went from 0 to 3"):
        f(1.0, log.append)


GLOBAL_CACHE: dict = {}


def remember(x):
    GLOBAL_CACHE["last"] = x
    return x


def through_a_function_argument(x, fn):
    for i in range(3):
        x = fn(x) * 1.5
    return x


def test_a_global_dict_changed_by_a_function_argument_is_reported():
    f = checkpoint_struct(Revolve(2))(through_a_function_argument)
    with pytest.raises(CheckpointError, match=r"the global GLOBAL_CACHE .*keys added: \['last'\]"):
        f(1.0, remember)


def reads_only(model, x):
    for i in range(4):
        x = x * model.k + np.sin(x)
    return x


def test_a_step_that_changes_nothing_outside_runs_as_before():
    f = checkpoint_struct(Revolve(2))(reads_only)
    model = Model(0.9)
    assert f(model, 1.3) == pytest.approx(reads_only(model, 1.3), rel=1e-14)
    assert grad(f, 1)(model, 1.3) == pytest.approx(grad(reads_only, 1)(model, 1.3), rel=1e-12)
    assert vars(model) == {"k": 0.9, "calls": 0}


def test_the_guard_can_be_turned_off(monkeypatch):
    monkeypatch.setattr(guard, "enabled", False)
    f = checkpoint_struct(Revolve(2))(calls_a_counting_method)
    model = Model(0.9)
    f(model, 1.3)
    assert model.calls == 4


def test_a_step_given_to_checkpointed_for_directly_is_not_guarded():
    seen = []

    def step(x, i):
        seen.append(i)
        return x * 1.5

    assert checkpointed_for(step, 1.0, 3, Revolve(2)) == pytest.approx(3.375)
    assert seen == [0, 1, 2]
