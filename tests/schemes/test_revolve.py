"""Revolve: every schedule valid, and exactly as cheap as an independent dynamic program says.

The reference for optimality is the dynamic program below, written from the recursion alone
(reverse l steps from a stored, current state with s snapshots: advance j, reverse the right part
with one snapshot fewer, restore, reverse the left part), independently of the closed form in
`ckpt_transform.schemes.cost` and of the split rule in `ckpt_transform.schemes.revolve`.
"""

from __future__ import annotations

import functools
import itertools

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
from ckpt_transform.schemes.cost import (
    beta,
    revolve_evaluations,
    revolve_forward_steps,
    revolve_repetitions,
)
from ckpt_transform.schemes.revolve import Revolve
from ckpt_transform.schemes.validate import validate_schedule

MAX_STEPS = 300
MAX_SNAPSHOTS = 30


@functools.cache
def revolve_dp(max_steps: int = MAX_STEPS, max_snapshots: int = MAX_SNAPSHOTS) -> list[list[int]]:
    """``F[s][l]``: fewest passive evaluations to reverse l steps with s snapshots.

    The state at the start is current and held (it counts among the s snapshots); each step is
    taped once, one at a time. ``F(1, s) = 0`` (record it at once); ``F(l, 1) = l (l - 1) / 2``
    (from the start to each step, last first); otherwise
    ``F(l, s) = min_j [j + F(l - j, s - 1) + F(j, s)]``. Row 0 is unused.
    """
    table = [[0] * (max_steps + 1) for _ in range(max_snapshots + 1)]
    table[1] = [length * (length - 1) // 2 for length in range(max_steps + 1)]
    for s in range(2, max_snapshots + 1):
        prev, cur = table[s - 1], table[s]
        for length in range(2, max_steps + 1):
            cur[length] = min(j + prev[length - j] + cur[j] for j in range(1, length))
    return table


def replay(snapshots: int, steps: int):
    return validate_schedule(
        Revolve(snapshots).schedule(steps), steps, snapshots=snapshots, max_taped_steps=1
    )


# --- optimality ---------------------------------------------------------------------------


def test_dynamic_program_small_values_by_hand():
    dp = revolve_dp()
    # s = 2, l = 3: advance 1, store, then [1, 3) with one snapshot (1 passive), restore, record
    # [0, 1): 2 passive; splitting at 2 costs 2 + 0 + F(2, 2) = 3.
    assert dp[2][3] == 2
    # s = 2, l = 4: j = 1: 1 + F(3, 1) = 4; j = 2: 2 + F(2, 1) + F(2, 2) = 2 + 1 + 1 = 4.
    assert dp[2][4] == 4
    # Snapshots enough for every state: each step but the last advanced once.
    assert dp[30][20] == 19


def test_closed_form_equals_dynamic_program_on_the_whole_grid():
    dp = revolve_dp()
    for s in range(1, MAX_SNAPSHOTS + 1):
        for steps in range(MAX_STEPS + 1):
            assert revolve_forward_steps(steps, s) == dp[s][steps], (steps, s)


@pytest.mark.parametrize(
    ("steps", "snapshots", "evaluations"),
    # The Griewank-Walther optimum, passive plus taped evaluations. By hand for the first:
    # t = 2 (C(5, 3) = 10 >= 10 > C(4, 3)), P = 2 * 10 - C(5, 1) = 15, plus 10 taped = 25.
    [
        (10, 3, 25),
        (50, 5, 172),
        (100, 4, 474),
        (500, 4, 3713),
        (1000, 10, 4636),
        (10000, 20, 47976),
    ],
)
def test_pinned_counts(steps, snapshots, evaluations):
    counts = replay(snapshots, steps)
    assert counts.evaluations == evaluations
    assert revolve_evaluations(steps, snapshots) == evaluations
    assert counts.recorded_steps == steps
    assert counts.max_snapshots <= snapshots


def _check_grid(steps_values, snapshot_values):
    dp = revolve_dp()
    for s in snapshot_values:
        for steps in steps_values:
            counts = replay(s, steps)
            # Every step taped exactly once, one at a time, and the passive evaluations the
            # minimum. A total equal to the minimum also means every split was optimal: each
            # part costs at least its own minimum, so no part may cost more.
            assert counts.recorded_steps == steps, (steps, s)
            assert counts.forward_steps == dp[s][steps], (steps, s)
            assert counts.max_taped_steps == min(steps, 1)
            assert counts.max_snapshots <= s
            # The primal run ends by taping the last step, so the output costs nothing extra.
            assert counts.primal_recorded_steps == min(steps, 1), (steps, s)


def test_grid_few_snapshots_every_length():
    _check_grid(range(MAX_STEPS + 1), (1, 2, 3))


def test_grid_every_budget_short_loops():
    _check_grid(range(61), range(1, MAX_SNAPSHOTS + 1))


SAMPLED_LENGTHS = range(61, MAX_STEPS + 1, 13)
SAMPLED_BUDGETS = range(4, MAX_SNAPSHOTS + 1, 3)


def test_grid_every_budget_sampled_lengths():
    _check_grid(SAMPLED_LENGTHS, SAMPLED_BUDGETS)


@pytest.mark.slow
def test_grid_rest():
    # With the three tests above: every (steps in 0..300, snapshots in 1..30), each once.
    for s in range(4, MAX_SNAPSHOTS + 1):
        lengths = range(61, MAX_STEPS + 1)
        if s in SAMPLED_BUDGETS:
            lengths = [steps for steps in lengths if steps not in SAMPLED_LENGTHS]
        _check_grid(lengths, (s,))


def test_first_split_is_optimal_for_every_length_and_budget():
    # The first advance of the primal run is the split rule's j for (T, s); checked against the
    # dynamic program for every pair: j + F(T - j, s - 1) + F(j, s) must be the minimum.
    dp = revolve_dp()
    for s in range(2, MAX_SNAPSHOTS + 1):
        for steps in range(2, MAX_STEPS + 1):
            plan = Revolve(s).plan(steps)
            first = next(a for a in plan.forward() if isinstance(a, (Advance, Record)))
            assert isinstance(first, Advance), (steps, s)
            j = first.n1 - first.n0
            assert 1 <= j < steps
            assert j + dp[s - 1][steps - j] + dp[s][j] == dp[s][steps], (steps, s, j)


def test_optimal_splits_are_exactly_the_documented_range():
    # By the dynamic program, the optimal first splits j for (l, s) are exactly the integers in
    # [max(l - beta(s - 1, t), beta(s, t - 2)), min(beta(s, t - 1), l - beta(s - 1, t - 1))],
    # clipped to [1, l - 1]; the split rule takes the least.
    dp = revolve_dp()
    for s in range(2, MAX_SNAPSHOTS + 1):
        for length in range(2, MAX_STEPS + 1):
            t = revolve_repetitions(length, s)
            least = max(length - beta(s - 1, t), beta(s, t - 2), 1)
            most = min(beta(s, t - 1), length - beta(s - 1, t - 1), length - 1)
            optimal = [
                j for j in range(1, length) if j + dp[s - 1][length - j] + dp[s][j] == dp[s][length]
            ]
            assert optimal == list(range(least, most + 1)), (length, s)


@pytest.mark.parametrize(("steps", "snapshots"), [(12345, 2), (12345, 3), (20000, 7), (65536, 16)])
def test_large_lengths_match_the_closed_form(steps, snapshots):
    counts = replay(snapshots, steps)
    assert counts.forward_steps == revolve_forward_steps(steps, snapshots)
    assert counts.recorded_steps == steps


@pytest.mark.slow
def test_large_length_many_snapshots():
    counts = replay(100, 10**5)
    assert counts.forward_steps == revolve_forward_steps(10**5, 100)


def test_one_snapshot_is_quadratic():
    for steps in range(30):
        counts = replay(1, steps)
        assert counts.forward_steps == steps * (steps - 1) // 2
        assert counts.max_snapshots == (1 if steps >= 2 else 0)


def test_snapshots_beyond_steps_advance_each_step_once():
    for steps in range(1, 40):
        counts = replay(50, steps)
        assert counts.forward_steps == steps - 1


# --- golden orders, derived by hand from the recursion ------------------------------------


def test_golden_five_steps_two_snapshots():
    # T = 5, s = 2: t = 2 (C(3, 2) = 3 < 5 <= C(4, 2) = 6); j = max(5 - C(3, 1), C(2, 2)) = 2.
    # Right part [2, 5) with one snapshot: from 2 to 4, 3, 2 in turn. Left part [0, 2) with two:
    # t = 1, j = 1, its right part is the single step [1, 2) (recorded, no store).
    expected = [
        Store(n=0, slot=0),
        Advance(n0=0, n1=2),
        Store(n=2, slot=1),
        Advance(n0=2, n1=4),
        Record(n0=4, n1=5),
        EndForward(n=5),
        Reverse(n0=4, n1=5),
        Restore(n=2, slot=1),
        Advance(n0=2, n1=3),
        Record(n0=3, n1=4),
        Reverse(n0=3, n1=4),
        Restore(n=2, slot=1),
        Record(n0=2, n1=3),
        Reverse(n0=2, n1=3),
        Free(n=2, slot=1),
        Restore(n=0, slot=0),
        Advance(n0=0, n1=1),
        Record(n0=1, n1=2),
        Reverse(n0=1, n1=2),
        Restore(n=0, slot=0),
        Record(n0=0, n1=1),
        Reverse(n0=0, n1=1),
        Free(n=0, slot=0),
    ]
    assert list(Revolve(2).schedule(5)) == expected
    # 2 + 2 + 1 + 1 = 6 passive = 2 * 5 - C(4, 1).
    assert validate_schedule(expected, 5, snapshots=2).forward_steps == 6


def test_golden_four_steps_one_snapshot():
    expected = [
        Store(n=0, slot=0),
        Advance(n0=0, n1=3),
        Record(n0=3, n1=4),
        EndForward(n=4),
        Reverse(n0=3, n1=4),
        Restore(n=0, slot=0),
        Advance(n0=0, n1=2),
        Record(n0=2, n1=3),
        Reverse(n0=2, n1=3),
        Restore(n=0, slot=0),
        Advance(n0=0, n1=1),
        Record(n0=1, n1=2),
        Reverse(n0=1, n1=2),
        Restore(n=0, slot=0),
        Record(n0=0, n1=1),
        Reverse(n0=0, n1=1),
        Free(n=0, slot=0),
    ]
    assert list(Revolve(1).schedule(4)) == expected


def test_golden_trivial_lengths():
    assert list(Revolve(3).schedule(0)) == [EndForward(n=0)]
    # One step needs no checkpoint at all.
    assert list(Revolve(3).schedule(1)) == [
        Record(n0=0, n1=1),
        EndForward(n=1),
        Reverse(n0=0, n1=1),
    ]


# --- the plan protocol ---------------------------------------------------------------------


def test_forward_is_the_primal_run():
    for steps, s in itertools.product((1, 2, 7, 100), (1, 2, 5)):
        forward = list(Revolve(s).plan(steps).forward())
        assert all(isinstance(a, (Store, Advance, Record)) for a in forward)
        assert forward[-1] == Record(n0=steps - 1, n1=steps)
        assert sum(isinstance(a, Record) for a in forward) == 1
        if steps >= 2:
            assert forward[0] == Store(n=0, slot=0)


def test_plans_are_fresh_and_independent():
    scheme = Revolve(3)
    first, second = scheme.plan(20), scheme.plan(20)
    a = list(first.forward())
    b = list(second.forward())
    assert a == b
    assert list(first.reverse(20)) == list(second.reverse(20))


def test_while_loop_with_steps_plans_that_length():
    scheme = Revolve(3, steps=20)
    plan = scheme.plan(None)
    actions = [*plan.forward(), EndForward(n=20), *plan.reverse(20)]
    assert actions == list(Revolve(3).schedule(20))


def test_reverse_for_another_length_names_both_numbers():
    plan = Revolve(3, steps=20).plan(None)
    list(plan.forward())
    with pytest.raises(CheckpointError, match=r"20.*17|17.*20"):
        list(plan.reverse(17))


def test_reverse_before_the_primal_run_is_refused():
    plan = Revolve(3).plan(10)
    with pytest.raises(CheckpointError, match="before"):
        plan.reverse(10)


def test_steps_disagreeing_with_the_loop_names_both_numbers():
    with pytest.raises(CheckpointError, match=r"500.*499"):
        Revolve(4, steps=500).plan(499)
    with pytest.raises(CheckpointError, match=r"500.*499"):
        list(Revolve(4, steps=500).schedule(499))


def test_steps_agreeing_with_the_loop():
    assert list(Revolve(4, steps=30).schedule(30)) == list(Revolve(4).schedule(30))


def test_while_loop_without_steps_says_what_to_pass():
    with pytest.raises(CheckpointError, match="steps="):
        Revolve(4).plan(None)


# --- construction --------------------------------------------------------------------------


def test_repr_and_attributes():
    assert repr(Revolve(4, steps=500)) == "Revolve(snapshots=4, steps=500)"
    assert repr(Revolve(4)) == "Revolve(snapshots=4)"
    marker = object()
    scheme = Revolve(snapshots=2, storage=marker)
    assert scheme.storage is marker
    assert scheme.snapshots == 2
    assert scheme.steps is None
    assert Revolve(2).storage is None


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"snapshots": 0}, ValueError, r"snapshots must be an int >= 1, got 0"),
        ({"snapshots": -3}, ValueError, r"got -3"),
        ({"snapshots": True}, TypeError, r"snapshots .*bool True"),
        ({"snapshots": 4, "steps": -1}, ValueError, r"steps must be an int >= 0, got -1"),
        ({"snapshots": 4, "steps": False}, TypeError, r"steps .*bool False"),
        ({"snapshots": 4, "verbose": -1}, ValueError, r"verbose"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        Revolve(**kwargs)


@pytest.mark.parametrize(
    "kwargs", [{"snapshots": 4.0}, {"snapshots": "4"}, {"snapshots": 4, "steps": 2.5}]
)
def test_wrong_types_are_caught_at_construction(kwargs):
    with pytest.raises(TypeError, match=r"snapshots|steps"):
        Revolve(**kwargs)


def test_bad_steps_given_to_plan():
    with pytest.raises(ValueError, match="got -2"):
        Revolve(2).plan(-2)


def test_verbose_prints_the_plan(capsys):
    plan = Revolve(3, verbose=1).plan(10)
    assert capsys.readouterr().out == ""  # planning only to check a length prints nothing
    list(plan.forward())
    out = capsys.readouterr().out
    assert "10 steps" in out and "3 snapshots" in out and "15 passive" in out
    assert "record" not in out
    plan = Revolve(3, verbose=2).plan(10)
    list(plan.forward())
    assert "record   [9, 10)" in capsys.readouterr().out
    list(plan.reverse(10))
    assert "reverse  [0, 1)" in capsys.readouterr().out
    list(Revolve(3).schedule(10))
    assert capsys.readouterr().out == ""


# --- action for action against the plain recursion ------------------------------------------


def reference_schedule(steps: int, snapshots: int) -> list:
    """Binomial checkpointing written as the plain recursion of `ckpt_transform.schemes.revolve`'s
    docstring: one recursive call per part, every action made by its keyword constructor.

    Reverse l steps from the state n0 (current, held in ``slot`` when l >= 2) with s snapshots:
    one step is recorded and reversed; with one snapshot each step, last first, is reached from n0;
    otherwise advance j (the least optimal split), store n0 + j when the right part has two steps
    or more, reverse the right part with s - 1 snapshots, free, restore n0, reverse the left part.
    """
    out: list = []

    def reverse(n0: int, length: int, s: int, slot: int) -> None:
        if length == 1:
            out.extend([Record(n0=n0, n1=n0 + 1), Reverse(n0=n0, n1=n0 + 1)])
        elif s == 1:
            for k in range(length - 1, -1, -1):
                if k < length - 1:
                    out.append(Restore(n=n0, slot=slot))
                if k > 0:
                    out.append(Advance(n0=n0, n1=n0 + k))
                out.extend([Record(n0=n0 + k, n1=n0 + k + 1), Reverse(n0=n0 + k, n1=n0 + k + 1)])
        else:
            t = next(t for t in itertools.count() if beta(s, t) >= length)
            j = min(max(length - beta(s - 1, t), beta(s, t - 2), 1), length - 1)
            held = length - j >= 2
            out.append(Advance(n0=n0, n1=n0 + j))
            if held:
                out.append(Store(n=n0 + j, slot=slot + 1))
            reverse(n0 + j, length - j, s - 1, slot + 1)
            if held:
                out.append(Free(n=n0 + j, slot=slot + 1))
            out.append(Restore(n=n0, slot=slot))
            reverse(n0, j, s, slot)

    if steps >= 2:
        out.append(Store(n=0, slot=0))
    if steps >= 1:
        reverse(0, steps, min(snapshots, steps), 0)
    if steps >= 2:
        out.append(Free(n=0, slot=0))
    # the primal run ends with the record of the last step (the first record of the plan)
    end = next((i + 1 for i, a in enumerate(out) if type(a) is Record), 0)
    return [*out[:end], EndForward(n=steps), *out[end:]]


REFERENCE_PAIRS = [
    *itertools.product(range(41), [1, 2, 3, 4, 5, 8, 13, 40, 41]),
    *itertools.product([97, 256, 1000], [1, 2, 3, 6, 30, 100]),
    *itertools.product([2048, 4500], [2, 5, 16, 200]),
]


def test_schedule_equals_the_plain_recursion_action_for_action():
    for steps, snapshots in REFERENCE_PAIRS:
        assert list(Revolve(snapshots).schedule(steps)) == reference_schedule(steps, snapshots), (
            steps,
            snapshots,
        )


# --- the fast action factories ------------------------------------------------------------


def test_schedule_equals_the_generic_schedule_action_for_action():
    from ckpt_transform.schemes.base import Scheme

    for snapshots in range(1, 7):
        for steps in range(0, 40):
            fast = list(Revolve(snapshots).schedule(steps))
            generic = list(Scheme.schedule(Revolve(snapshots), steps))
            assert fast == generic
            assert [type(a) for a in fast] == [type(a) for a in generic]
            assert [repr(a) for a in fast] == [repr(a) for a in generic]


def test_schedule_is_lazy_and_checks_its_argument():
    stream = Revolve(3, steps=5).schedule(6)  # nothing is checked before the first action
    with pytest.raises(CheckpointError, match="planned for 5 steps"):
        next(stream)
    with pytest.raises(ValueError, match="int >= 0"):
        next(Revolve(3).schedule(-1))


def test_factories_make_the_same_objects_as_the_keyword_constructors():
    from ckpt_transform.schemes import revolve

    pairs = [
        (revolve._advance(3, 7), Advance(n0=3, n1=7)),
        (revolve._record(3, 4), Record(n0=3, n1=4)),
        (revolve._reverse(3, 4), Reverse(n0=3, n1=4)),
        (revolve._store(5, 1), Store(n=5, slot=1)),
        (revolve._restore(5, 1), Restore(n=5, slot=1)),
        (revolve._free(5, 1), Free(n=5, slot=1)),
    ]
    for fast, keyword in pairs:
        assert type(fast) is type(keyword)
        assert fast == keyword and hash(fast) == hash(keyword) and repr(fast) == repr(keyword)
        field = next(iter(type(fast).__dataclass_fields__))
        for action in (fast, keyword):  # still frozen, refused the same way
            with pytest.raises((AttributeError, TypeError)):
                setattr(action, field, 0)


def test_second_order_snapshots():
    """The scheme of the second-order sweeps: Revolve(second_order_snapshots) when given."""
    scheme = Revolve(6, storage=None, second_order_snapshots=3)
    assert repr(scheme) == "Revolve(snapshots=6, second_order_snapshots=3)"
    lifted = scheme.second_order()
    assert isinstance(lifted, Revolve) and lifted.snapshots == 3 and lifted.steps is None
    assert list(lifted.schedule(9)) == list(Revolve(3).schedule(9))
    plain = Revolve(6)
    assert plain.second_order() is plain
    assert Revolve(6, second_order_snapshots=6).second_order().snapshots == 6
    for bad in (0, -1):
        with pytest.raises(ValueError, match="second_order_snapshots"):
            Revolve(6, second_order_snapshots=bad)
    with pytest.raises(TypeError, match="second_order_snapshots"):
        Revolve(6, second_order_snapshots=2.5)
