"""Periodic: a checkpoint every period, every step reversed, whatever the remainder."""

from __future__ import annotations

import ast
import inspect

import pytest

from ckpt_transform.errors import CheckpointError
from ckpt_transform.schemes.actions import (
    Advance,
    EndForward,
    Free,
    Record,
    Restore,
    Reverse,
    Store,
)
from ckpt_transform.schemes.base import cut_forward
from ckpt_transform.schemes.cost import (
    periodic_evaluations,
    periodic_forward_steps,
    periodic_period,
    periodic_snapshots,
)
from ckpt_transform.schemes.periodic import Periodic
from ckpt_transform.schemes.validate import validate_schedule


def unknown_length_run(period: int, steps: int) -> list:
    """The actions a driver takes for a while loop that ends after ``steps`` iterations."""
    plan = Periodic(period=period).plan(None)
    return [*cut_forward(plan.forward(), steps), EndForward(n=steps), *plan.reverse(steps)]


def ceil_div(a: int, b: int) -> int:
    return (a + b - 1) // b


# --- grids -----------------------------------------------------------------------------------


def _check_snapshots_grid(snapshot_values, steps_values):
    for s in snapshot_values:
        for steps in steps_values:
            p = max(1, ceil_div(steps, s))
            counts = validate_schedule(
                Periodic(s).schedule(steps), steps, snapshots=s, max_taped_steps=p
            )
            # Periods [0, p), [p, 2p), ...; the last holds the remaining steps, taped in the
            # primal run; every other one is evaluated twice (passive, then taped).
            periods = ceil_div(steps, p)
            last = steps - (periods - 1) * p if steps else 0
            assert counts.forward_steps == steps - last, (steps, s)
            assert counts.recorded_steps == steps
            assert counts.primal_forward_steps + counts.primal_recorded_steps == steps
            assert counts.max_snapshots == max(0, periods - 1) <= s
            assert counts.max_taped_steps == min(p, steps)
            assert counts.forward_steps == periodic_forward_steps(steps, periodic_period(steps, s))


def _check_period_grid(periods, steps_values):
    # T = k p + r for every r: the Julia package drops the r remainder steps; none may be lost.
    for p in periods:
        for steps in steps_values:
            counts = validate_schedule(Periodic(period=p).schedule(steps), steps, max_taped_steps=p)
            k, r = divmod(steps, p)
            last = r if r else (p if steps else 0)
            assert counts.forward_steps == steps - last, (steps, p)
            assert counts.recorded_steps == steps
            assert counts.evaluations == 2 * steps - last
            assert counts.max_snapshots == (k if r else max(0, k - 1))
            assert counts.evaluations == periodic_evaluations(steps, p)
            assert counts.max_snapshots == periodic_snapshots(steps, p)


def test_snapshots_grid_short_loops():
    _check_snapshots_grid(range(1, 31), range(61))


def test_snapshots_grid_sampled():
    _check_snapshots_grid(range(1, 31, 4), range(61, 301, 11))


@pytest.mark.slow
def test_snapshots_grid_rest():
    # With test_snapshots_grid_short_loops: every (steps in 0..300, snapshots in 1..30).
    _check_snapshots_grid(range(1, 31), range(61, 301))


def test_period_grid_every_remainder():
    _check_period_grid(range(1, 31), range(61))
    _check_period_grid((4, 7, 13, 30), range(61, 301))


@pytest.mark.slow
def test_period_grid_rest():
    # With test_period_grid_every_remainder: every (steps in 0..300, period in 1..30).
    _check_period_grid(range(1, 31), range(61, 301))


def test_unknown_length_ends_at_every_step():
    for p in range(1, 13):
        for steps in range(121):
            counts = validate_schedule(unknown_length_run(p, steps), steps, max_taped_steps=p)
            # Without the length every step is evaluated passively in the primal run and taped
            # in the reverse sweep; a checkpoint at each period start before T (the primal run
            # stops as soon as the state T is current: nothing is stored there).
            assert counts.forward_steps == steps, (steps, p)
            assert counts.recorded_steps == steps
            assert counts.primal_recorded_steps == 0
            assert counts.max_snapshots == len(range(0, steps, p))
            assert counts.forward_steps == periodic_forward_steps(steps, p, known_length=False)
            assert counts.max_snapshots == periodic_snapshots(steps, p, known_length=False)


def test_unknown_length_driver_that_stops_right_at_the_end():
    # A driver may also stop pulling actions as soon as an advance reaches the loop's end, never
    # taking the store of the state T that follows; the reverse sweep must not free it then.
    for p in range(1, 6):
        for steps in range(1, 40):
            plan = Periodic(period=p).plan(None)
            taken = []
            for action in plan.forward():
                cut = isinstance(action, Advance) and action.n1 >= steps
                taken.append(Advance(n0=action.n0, n1=steps) if cut else action)
                if cut:
                    break
            actions = [*taken, EndForward(n=steps), *plan.reverse(steps)]
            counts = validate_schedule(actions, steps)
            assert counts.max_snapshots == (steps - 1) // p + 1


def reference_schedule(period: int, steps: int) -> list:
    """Periodic checkpointing of a loop of known length, written from its description: store each
    period's start and advance through it, record the last period; then, last first, reverse it
    and restore, record, reverse and free every earlier one. Every action by its keyword call."""
    if steps == 0:
        return [EndForward(n=0)]
    last = (steps - 1) // period  # the period holding step T - 1
    out: list = []
    for i in range(last):
        out += [Store(n=i * period, slot=i), Advance(n0=i * period, n1=(i + 1) * period)]
    out += [Record(n0=last * period, n1=steps), EndForward(n=steps)]
    out.append(Reverse(n0=last * period, n1=steps))
    for i in range(last - 1, -1, -1):
        m = i * period
        out += [Restore(n=m, slot=i), Record(n0=m, n1=m + period), Reverse(n0=m, n1=m + period)]
        out.append(Free(n=m, slot=i))
    return out


def test_known_length_equals_the_description_action_for_action():
    for period in (1, 2, 3, 7, 50):
        for steps in [*range(40), 97, 1000]:
            assert list(Periodic(period=period).schedule(steps)) == reference_schedule(
                period, steps
            ), (period, steps)


# --- golden orders ---------------------------------------------------------------------------


def test_golden_remainder_is_reversed():
    # 10 steps, a checkpoint every 3: periods [0,3) [3,6) [6,9) and the remainder [9,10).
    assert list(Periodic(period=3).schedule(10)) == [
        Store(n=0, slot=0),
        Advance(n0=0, n1=3),
        Store(n=3, slot=1),
        Advance(n0=3, n1=6),
        Store(n=6, slot=2),
        Advance(n0=6, n1=9),
        Record(n0=9, n1=10),
        EndForward(n=10),
        Reverse(n0=9, n1=10),
        Restore(n=6, slot=2),
        Record(n0=6, n1=9),
        Reverse(n0=6, n1=9),
        Free(n=6, slot=2),
        Restore(n=3, slot=1),
        Record(n0=3, n1=6),
        Reverse(n0=3, n1=6),
        Free(n=3, slot=1),
        Restore(n=0, slot=0),
        Record(n0=0, n1=3),
        Reverse(n0=0, n1=3),
        Free(n=0, slot=0),
    ]


def test_golden_snapshots_spread_evenly():
    # 7 steps with 3 snapshots: period ceil(7 / 3) = 3, periods [0,3) [3,6) [6,7).
    assert list(Periodic(3).schedule(7)) == list(Periodic(period=3).schedule(7))
    # 6 steps with 3 snapshots: period 2, the last period [4, 6) recorded in the primal run.
    assert list(Periodic(3).schedule(6))[:6] == [
        Store(n=0, slot=0),
        Advance(n0=0, n1=2),
        Store(n=2, slot=1),
        Advance(n0=2, n1=4),
        Record(n0=4, n1=6),
        EndForward(n=6),
    ]


def test_golden_unknown_length_ending_at_a_period_end():
    # A while loop of 4 iterations with a checkpoint every 2: the primal run stops as soon as
    # the state 4 is current, before the store that would start a third period.
    assert unknown_length_run(2, 4) == [
        Store(n=0, slot=0),
        Advance(n0=0, n1=2),
        Store(n=2, slot=1),
        Advance(n0=2, n1=4),
        EndForward(n=4),
        Restore(n=2, slot=1),
        Record(n0=2, n1=4),
        Reverse(n0=2, n1=4),
        Free(n=2, slot=1),
        Restore(n=0, slot=0),
        Record(n0=0, n1=2),
        Reverse(n0=0, n1=2),
        Free(n=0, slot=0),
    ]


def test_golden_unknown_length_ending_inside_a_period():
    assert unknown_length_run(3, 4) == [
        Store(n=0, slot=0),
        Advance(n0=0, n1=3),
        Store(n=3, slot=1),
        Advance(n0=3, n1=4),  # cut: the loop ended after step 3
        EndForward(n=4),
        Restore(n=3, slot=1),
        Record(n0=3, n1=4),
        Reverse(n0=3, n1=4),
        Free(n=3, slot=1),
        Restore(n=0, slot=0),
        Record(n0=0, n1=3),
        Reverse(n0=0, n1=3),
        Free(n=0, slot=0),
    ]


def test_golden_empty_loops():
    assert list(Periodic(period=3).schedule(0)) == [EndForward(n=0)]
    assert list(Periodic(2).schedule(0)) == [EndForward(n=0)]
    assert unknown_length_run(3, 0) == [EndForward(n=0)]  # the loop ended before any action


# --- the plan protocol -----------------------------------------------------------------------


def test_unknown_length_forward_is_endless():
    forward = Periodic(period=5).plan(None).forward()
    first = [next(forward) for _ in range(2000)]
    assert first[-1] == Advance(n0=4995, n1=5000)


def test_plans_are_fresh():
    scheme = Periodic(period=4)
    first = scheme.plan(None)
    steps = 9
    actions = [*cut_forward(first.forward(), steps), EndForward(n=steps)]
    second = scheme.plan(None)  # a new run must not see the first run's checkpoints
    assert list(second.reverse(0)) == []
    validate_schedule([*actions, *first.reverse(steps)], steps)


def test_unknown_length_reverse_inconsistent_with_the_primal_run():
    plan = Periodic(period=4).plan(None)
    list(cut_forward(plan.forward(), 5))
    with pytest.raises(CheckpointError, match="ended at state 50"):
        plan.reverse(50)


def test_known_length_reverse_for_another_length():
    plan = Periodic(period=4).plan(10)
    list(plan.forward())
    with pytest.raises(CheckpointError, match=r"10.*12"):
        plan.reverse(12)


def test_reverse_before_the_primal_run_is_refused():
    plan = Periodic(period=4).plan(10)
    with pytest.raises(CheckpointError, match="before"):
        plan.reverse(10)


def test_snapshots_on_a_while_loop_says_to_pass_period():
    with pytest.raises(CheckpointError, match="period="):
        Periodic(4).plan(None)


# --- construction ----------------------------------------------------------------------------


def test_repr_and_attributes():
    assert repr(Periodic(4)) == "Periodic(snapshots=4)"
    assert repr(Periodic(period=10)) == "Periodic(period=10)"
    marker = object()
    scheme = Periodic(period=3, storage=marker)
    assert scheme.storage is marker
    assert (scheme.snapshots, scheme.period) == (None, 3)


def test_both_or_neither_is_refused_with_what_was_given():
    with pytest.raises(ValueError, match=r"exactly one of snapshots= .* and period=.*got neither"):
        Periodic()
    with pytest.raises(ValueError, match=r"got both \(snapshots=4, period=10\)"):
        Periodic(4, period=10)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"snapshots": 0}, ValueError, r"snapshots must be an int >= 1, got 0"),
        ({"period": 0}, ValueError, r"period must be an int >= 1, got 0"),
        ({"period": -2}, ValueError, r"got -2"),
        ({"snapshots": True}, TypeError, r"bool True"),
        ({"period": True}, TypeError, r"bool True"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        Periodic(**kwargs)


@pytest.mark.parametrize("kwargs", [{"snapshots": 2.0}, {"period": "3"}])
def test_wrong_types_are_caught_at_construction(kwargs):
    with pytest.raises(TypeError):
        Periodic(**kwargs)


def test_bad_steps_given_to_plan():
    with pytest.raises(ValueError, match="got -1"):
        Periodic(period=2).plan(-1)


def test_the_error_and_the_signature_name_the_two_valid_forms():
    for bad in ({}, {"snapshots": 4, "period": 10}):
        with pytest.raises(ValueError) as info:
            Periodic(**bad)
        assert "Write Periodic(snapshots) for a for loop, or Periodic(period=p)" in str(info.value)
    # The overloads (read from the source: typing.get_overloads needs Python 3.11).
    tree = ast.parse(inspect.getsource(Periodic))
    overloads = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        and any(getattr(d, "id", None) == "overload" for d in node.decorator_list)
    ]
    forms = [[a.arg for a in f.args.args[1:] + f.args.kwonlyargs] for f in overloads]
    assert forms == [["snapshots", "storage"], ["period", "storage"]]
    assert "Periodic(snapshots)" in Periodic.__doc__ and "Periodic(period=p)" in Periodic.__doc__
    assert repr(Periodic(4)) == "Periodic(snapshots=4)"
    assert repr(Periodic(period=3)) == "Periodic(period=3)"
