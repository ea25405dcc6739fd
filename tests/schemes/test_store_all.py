"""StoreAll: one tape over the whole loop, no checkpoint, no step evaluated twice."""

from __future__ import annotations

import pytest

from ckpt_transform.errors import CheckpointError
from ckpt_transform.schemes.actions import EndForward, Record, Reverse
from ckpt_transform.schemes.base import cut_forward
from ckpt_transform.schemes.cost import store_all_evaluations
from ckpt_transform.schemes.store_all import StoreAll
from ckpt_transform.schemes.validate import validate_schedule


def test_known_lengths():
    for steps in range(301):
        counts = validate_schedule(StoreAll().schedule(steps), steps, snapshots=0)
        assert counts.forward_steps == 0
        assert counts.recorded_steps == steps == store_all_evaluations(steps)
        assert counts.primal_recorded_steps == steps
        assert counts.max_taped_steps == steps
        assert counts.max_snapshots == 0


def test_unknown_length_ends_at_every_step():
    for steps in range(301):
        plan = StoreAll().plan(None)
        actions = [*cut_forward(plan.forward(), steps), EndForward(n=steps), *plan.reverse(steps)]
        counts = validate_schedule(actions, steps, snapshots=0)
        assert counts.evaluations == steps
        assert counts.primal_recorded_steps == steps


def test_golden():
    assert list(StoreAll().schedule(4)) == [
        Record(n0=0, n1=4),
        EndForward(n=4),
        Reverse(n0=0, n1=4),
    ]
    assert list(StoreAll().schedule(0)) == [EndForward(n=0)]
    assert list(StoreAll().plan(None).forward()) == [Record(n0=0, n1=None)]


def test_reverse_for_another_length():
    plan = StoreAll().plan(5)
    list(plan.forward())
    with pytest.raises(CheckpointError, match=r"5.*6"):
        plan.reverse(6)


def test_construction():
    assert repr(StoreAll()) == "StoreAll()"
    marker = object()
    assert StoreAll(storage=marker).storage is marker
    assert StoreAll().storage is None
    with pytest.raises(TypeError):
        StoreAll(3)  # type: ignore[misc]
    with pytest.raises(ValueError, match="got -1"):
        StoreAll().plan(-1)
