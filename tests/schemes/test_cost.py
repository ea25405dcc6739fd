"""Closed forms, checked by hand, by brute force and against the independent dynamic program."""

from __future__ import annotations

from math import comb

import pytest

from ckpt_transform.schemes.cost import (
    beta,
    periodic_evaluations,
    periodic_forward_steps,
    periodic_period,
    periodic_snapshots,
    revolve_evaluations,
    revolve_forward_steps,
    revolve_repetitions,
    store_all_evaluations,
)

from .test_revolve import revolve_dp


def test_beta_by_hand():
    assert beta(2, 3) == 10  # C(5, 2)
    assert beta(3, 2) == 10
    assert beta(4, 0) == 1
    assert beta(0, 7) == 1
    assert beta(5, -1) == 0
    assert beta(5, -4) == 0
    assert beta(1, 9) == 10  # one snapshot: t + 1 steps with t repetitions


def test_beta_recurrence():
    # beta(s, t) = beta(s, t - 1) + beta(s - 1, t), down to t = 0 thanks to beta(s, -1) = 0.
    for s in range(1, 25):
        for t in range(25):
            assert beta(s, t) == beta(s, t - 1) + beta(s - 1, t)


def test_repetitions_is_the_least_by_brute_force():
    for s in range(1, 31):
        for steps in range(301):
            t = revolve_repetitions(steps, s)
            assert comb(s + t, s) >= steps
            assert t == 0 or comb(s + t - 1, s) < steps


def test_forward_steps_equal_the_dynamic_program():
    dp = revolve_dp()
    for s in range(1, 31):
        for steps in range(301):
            assert revolve_forward_steps(steps, s) == dp[s][steps]
            assert revolve_evaluations(steps, s) == dp[s][steps] + steps


def test_forward_steps_by_hand():
    assert revolve_forward_steps(0, 3) == 0
    assert revolve_forward_steps(1, 1) == 0
    assert revolve_forward_steps(4, 1) == 6  # 3 + 2 + 1
    assert revolve_forward_steps(10, 3) == 15  # t = 2: 2 * 10 - C(5, 1)
    assert revolve_forward_steps(7, 10) == 6  # enough snapshots: every step but the last once
    # One snapshot, a large loop: the repetition number is T - 1, the cost T (T - 1) / 2.
    assert revolve_repetitions(10**6, 1) == 10**6 - 1
    assert revolve_forward_steps(10**6, 1) == 10**6 * (10**6 - 1) // 2


def test_forward_steps_grow_by_t_per_step():
    # Within a repetition number the cost is linear with slope t, and at its ends it meets the
    # neighbouring pieces (the function is convex and continuous in T).
    for s in range(2, 8):
        for t in range(1, 8):
            lo, hi = beta(s, t - 1), beta(s, t)
            for steps in range(max(lo, 1), hi):
                step_cost = revolve_forward_steps(steps + 1, s) - revolve_forward_steps(steps, s)
                assert step_cost == t


def test_periodic_by_hand():
    assert periodic_period(10, 4) == 3
    assert periodic_period(12, 4) == 3
    assert periodic_period(0, 4) == 1
    assert periodic_period(3, 10) == 1
    # 10 steps every 3: periods [0,3) [3,6) [6,9) and [9,10), the last taped in the primal run.
    assert periodic_forward_steps(10, 3) == 9
    assert periodic_evaluations(10, 3) == 19
    assert periodic_snapshots(10, 3) == 3
    # 9 steps every 3: the last period is a whole one.
    assert periodic_forward_steps(9, 3) == 6
    assert periodic_snapshots(9, 3) == 2
    # Unknown length: everything twice; checkpoints at 0, 3, 6 when the loop ends at 9 (the
    # primal run stops there, before storing 9), and at 0, 3, 6, 9 when it ends at 10.
    assert periodic_forward_steps(9, 3, known_length=False) == 9
    assert periodic_evaluations(9, 3, known_length=False) == 18
    assert periodic_snapshots(9, 3, known_length=False) == 3
    assert periodic_snapshots(10, 3, known_length=False) == 4
    assert periodic_snapshots(0, 3, known_length=False) == 0
    assert periodic_snapshots(10, 3, known_length=False) == 4
    assert periodic_forward_steps(0, 3) == periodic_snapshots(0, 3) == 0


def test_store_all():
    assert store_all_evaluations(0) == 0
    assert store_all_evaluations(17) == 17


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: beta(-1, 2), ValueError, r"snapshots must be an int >= 0, got -1"),
        (lambda: beta(2, 1.5), TypeError, r"repetitions must be an int, got 1.5"),
        (lambda: revolve_repetitions(-1, 2), ValueError, r"steps must be an int >= 0, got -1"),
        (lambda: revolve_forward_steps(5, 0), ValueError, r"snapshots must be an int >= 1, got 0"),
        (
            lambda: revolve_evaluations(True, 2),
            TypeError,
            r"steps must be an int >= 0, got the bool True",
        ),
        (lambda: revolve_evaluations(5, "2"), TypeError, r"snapshots must be an int >= 1, got '2'"),
        (lambda: periodic_period(5, 0), ValueError, r"snapshots must be an int >= 1, got 0"),
        (lambda: periodic_forward_steps(5, 0), ValueError, r"period must be an int >= 1, got 0"),
        (lambda: periodic_snapshots(-5, 2), ValueError, r"steps must be an int >= 0, got -5"),
        (lambda: store_all_evaluations(-1), ValueError, r"steps must be an int >= 0, got -1"),
    ],
)
def test_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()
