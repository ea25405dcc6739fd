"""Multilevel: valid two-level schedules, optimal for the I/O cost model, Revolve at zero I/O.

The optimum is checked against an independent, plain recursion over every split (a brute-force
dynamic programme written here from the model's definition) for every T <= 60 and small budgets,
and each plan is replayed by the mock executor, whose counts give the modeled cost.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from math import inf

import numpy as np
import pytest

from ckpt_transform import CheckpointError, Multilevel
from ckpt_transform.schemes.actions import Advance, Free, Record, Restore, Store
from ckpt_transform.schemes.cost import revolve_forward_steps
from ckpt_transform.schemes.multilevel import modeled_cost
from ckpt_transform.schemes.validate import validate_schedule

COSTS = [(0, 0), (1, 1), (2, 1), (0.5, 3), (5, 5), (3, 0), (20, 20)]
BUDGETS = [(m, d) for m in range(4) for d in range(4) if m + d >= 1]


def brute_force(T: int, m: int, d: int, wd: float, rd: float) -> float:
    """The model's optimum by exhaustive recursion over every split (see the scheme's docs)."""

    @functools.lru_cache(None)
    def splits(level: int, length: int, a: int, b: int) -> tuple[float, int]:
        """(cost, first advance) of the best split of [n0, n0 + length), n0 held in level."""
        if length == 1:
            return 0.0, 0
        read = 0.0 if level == 0 else rd
        return min(
            (j + right(length - j, a, b) + read + best(level, j, a, b), j) for j in range(1, length)
        )

    @functools.lru_cache(None)
    def best(level: int, length: int, a: int, b: int) -> float:
        value = splits(level, length, a, b)[0]
        if level == 0 and b >= 1 and a + 1 <= m:  # move n0 to disk
            value = min(value, wd + splits(1, length, a + 1, b - 1)[0])
        if level == 1 and a >= 1 and b + 1 <= d:  # move n0 to memory
            value = min(value, splits(0, length, a - 1, b + 1)[0])
        return value

    @functools.lru_cache(None)
    def right(k: int, a: int, b: int) -> float:
        if k == 1:
            return 0.0
        options = []
        if a >= 1:
            options.append(best(0, k, a - 1, b))
        if b >= 1:
            options.append(wd + best(1, k, a, b - 1))
        return min(options, default=inf)

    if T <= 1:
        return 0.0
    options = []
    if m >= 1:
        options.append(best(0, T, m - 1, d))
    if d >= 1:
        options.append(wd + best(1, T, m, d - 1))
    return min(options)


def brute_force_overlap(m: int, d: int, wd: float, rd: float, hide: int) -> Callable[[int], float]:
    """The overlap model's optimum by exhaustive recursion (`ckpt_transform.schemes.overlap`),
    as a function of T: ``s`` whole steps computed since the write in flight began, S = ceil(wd)
    when none is. The parts of every length are shared by every T."""
    S = math.ceil(wd)

    def charge(s: int) -> float:
        return max(0.0, wd - s)

    @functools.lru_cache(None)
    def splits(level: int, length: int, a: int, b: int, s: int) -> float:
        if length == 1:
            return charge(min(S, s + hide))
        value = inf
        for j in range(1, length):
            k = length - j
            if k == 1 and level == 0:  # the write in flight goes on into the left part
                left = best(0, j, a, b, min(S, s + j + hide))
            elif k == 1:  # the restore from disk waits for it
                left = charge(min(S, s + j + hide)) + rd + best(1, j, a, b, S)
            else:
                left = right(k, a, b, min(S, s + j)) + level * rd + best(level, j, a, b, S)
            value = min(value, j + left)
        return value

    @functools.lru_cache(None)
    def best(level: int, length: int, a: int, b: int, s: int) -> float:
        value = splits(level, length, a, b, s)
        if length >= 2 and level == 0 and b >= 1 and a + 1 <= m:  # move n0 to disk: a write
            value = min(value, charge(s) + splits(1, length, a + 1, b - 1, 0))
        if length >= 2 and level == 1 and a >= 1 and b + 1 <= d:  # move n0 to memory
            value = min(value, splits(0, length, a - 1, b + 1, s))
        return value

    def right(k: int, a: int, b: int, s: int) -> float:
        options = []
        if a >= 1:
            options.append(best(0, k, a - 1, b, s))
        if b >= 1:
            options.append(charge(s) + best(1, k, a, b - 1, 0))
        return min(options, default=inf)

    def optimum(T: int) -> float:
        if T <= 1:
            return 0.0
        options = []
        if m >= 1:
            options.append(best(0, T, m - 1, d, S))
        if d >= 1:
            options.append(best(1, T, m, d - 1, 0))
        return min(options)

    return optimum


def storage_timeline(actions, wd: float, rd: float, hide: int) -> float:
    """Passive steps plus the waits and reads of one write-behind storage (as `HDF5Storage`
    does with one write in flight): a disk store waits for the write in flight and starts its
    own; a disk restore waits for it and reads, unless it restores the slot being written (the
    state put is handed back); a recorded and reversed step computes ``hide``."""
    now, write_ends, writing = 0.0, 0.0, None
    for action in actions:
        if isinstance(action, (Advance, Record)):
            now += action.n1 - action.n0 if isinstance(action, Advance) else hide
        elif isinstance(action, Store) and action.level == "disk":
            now = max(now, write_ends)
            write_ends, writing = now + wd, action.slot
        elif isinstance(action, Restore) and action.level == "disk":
            if action.slot == writing and now < write_ends:
                continue
            now = max(now, write_ends) + rd
        elif isinstance(action, Free) and action.level == "disk" and action.slot == writing:
            writing = None  # the write goes on, but the slot is no longer that state
    return max(now, write_ends)


def replay(scheme: Multilevel, T: int):
    return validate_schedule(
        scheme.schedule(T),
        T,
        snapshots=scheme.memory + (scheme.disk or 0),
        max_taped_steps=1,
        level_snapshots={"memory": scheme.memory, "disk": scheme.disk},
    )


@pytest.mark.slow
@pytest.mark.parametrize(("wd", "rd"), COSTS)
def test_optimal_against_brute_force(wd, rd):
    costs = {"write": wd, "read": rd, "backward": 0}
    for m, d in BUDGETS:
        scheme = Multilevel(m, d, costs=costs)
        tables = scheme.tables(60)  # holds the optimum of every T <= 60
        for T in range(2, 61):
            want = brute_force(T, m, d, wd, rd)
            assert tables.start(T)[1] == pytest.approx(want, abs=1e-9), (m, d, T)
        for T in range(0, 61, 7):  # and the plan built from them costs that, replayed
            counts = replay(scheme, T)
            assert counts.recorded_steps == T
            got = modeled_cost(counts, costs)
            assert got == pytest.approx(brute_force(T, m, d, wd, rd), abs=1e-9), (m, d, T)


def test_zero_io_costs_cost_exactly_revolve():
    for m, d in [*BUDGETS, (5, 7), (1, 12)]:
        for T in range(1, 80, 3):
            counts = replay(Multilevel(m, d, costs={"write": 0, "read": 0}), T)
            assert counts.forward_steps == revolve_forward_steps(T, m + d), (m, d, T)
            assert counts.evaluations == revolve_forward_steps(T, m + d) + T


@pytest.mark.slow
def test_overlap_model_against_brute_force():
    for wd, rd, backward in [(3, 1, None), (6.5, 2, 2), (2.5, 0, 0)]:
        costs = {"write": wd, "read": rd, "overlap": True}
        if backward is not None:
            costs["backward"] = backward
        hide = 1 if backward is None else backward
        for m, d in [(1, 1), (1, 2), (2, 2), (0, 3), (3, 1)]:
            scheme = Multilevel(m, d, costs=costs)
            tables = scheme.tables(60)
            optimum = brute_force_overlap(m, d, wd, rd, hide)
            for T in range(2, 61):
                want = optimum(T)
                assert tables.start(T)[1] == pytest.approx(want, abs=1e-9), (costs, m, d, T)


def test_overlap_plans_cost_at_most_their_model_on_the_storage_timeline():
    """Replayed on the timeline of a write-behind storage, an overlap plan waits and reads no
    longer than the model charges (it is an upper bound); its passive steps and full-price I/O
    are no less than the model's total."""
    for wd, rd, m, d in [(3, 1, 1, 2), (6.5, 2, 2, 4), (9, 0.5, 3, 30), (0, 0, 1, 3)]:
        costs = {"write": wd, "read": rd, "overlap": True}
        for T in (7, 30, 61):
            scheme = Multilevel(m, d, costs=costs)
            actions = list(scheme.schedule(T))
            modeled = scheme.tables(T).start()[1]
            timeline = storage_timeline(actions, wd, rd, hide=1) - T  # less the T records
            assert timeline <= modeled + 1e-9, (wd, rd, m, d, T)
            counts = replay(scheme, T)
            assert modeled <= modeled_cost(counts, {**costs, "backward": 0}) + 1e-9
            assert counts.forward_steps <= modeled + 1e-9


def replay_costs(scheme: Multilevel, T: int) -> float:
    return storage_timeline(list(scheme.schedule(T)), 9, 0.5, hide=1) - T


def test_overlap_never_costs_more_and_plans_stay_valid():
    for T in (10, 40, 90):
        plain = Multilevel(2, 6, costs={"write": 4, "read": 1})
        overlap = Multilevel(2, 6, costs={"write": 4, "read": 1, "overlap": True})
        replay(overlap, T)
        assert overlap.tables(T).start()[1] <= plain.tables(T).start()[1]
    # the case: on the storage's timeline the overlap plan is faster than the plain one
    plain = Multilevel(3, 30, costs={"write": 9, "read": 0.5})
    overlap = Multilevel(3, 30, costs={"write": 9, "read": 0.5, "overlap": True})
    assert replay_costs(overlap, 200) < replay_costs(plain, 200)


def test_expensive_disk_is_avoided_and_cheap_disk_is_used():
    T = 40
    costly = replay(Multilevel(2, 10, costs={"write": 1000, "read": 1000}), T)
    assert costly.writes.get("disk", 0) == 0  # two memory slots beat any disk copy
    assert costly.forward_steps == revolve_forward_steps(T, 2)
    cheap = replay(Multilevel(2, 10, costs={"write": 0.1, "read": 0.1}), T)
    assert cheap.writes.get("disk", 0) > 0
    assert cheap.forward_steps < costly.forward_steps


def test_per_level_budgets_hold_and_levels_are_named():
    scheme = Multilevel(2, 3, costs={"write": 1, "read": 1})
    actions = list(scheme.schedule(30))
    counts = replay(scheme, 30)
    assert counts.level_max_snapshots["memory"] <= 2
    assert counts.level_max_snapshots["disk"] <= 3
    levels = {a.level for a in actions if isinstance(a, (Store, Restore, Free))}
    assert levels == {"memory", "disk"}
    disk = next(a for a in actions if isinstance(a, Store) and a.level == "disk")
    assert "disk slot" in str(disk)


def test_unlimited_disk():
    scheme = Multilevel(1, None, costs={"write": 1, "read": 1})
    counts = validate_schedule(scheme.schedule(25), 25, level_snapshots={"memory": 1})
    assert counts.recorded_steps == 25
    assert "disk=None" in repr(scheme)


def test_small_loops():
    for T in (0, 1, 2):
        counts = replay(Multilevel(1, 1, costs={"write": 1, "read": 1}), T)
        assert counts.evaluations == (0 if T == 0 else T + (T == 2))


def test_while_loop_needs_steps():
    with pytest.raises(CheckpointError, match="steps=N"):
        Multilevel(1, 2).plan(None)
    assert Multilevel(1, 2, steps=5).plan(None) is not None
    with pytest.raises(CheckpointError, match="planned for 5 steps"):
        Multilevel(1, 2, steps=5).plan(6)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((-1, 2), {}, ValueError, "memory must be an int >= 0"),
        ((0, 0), {}, ValueError, "at least one snapshot"),
        ((1, 2), {"costs": {"write": 1}}, ValueError, "read"),
        ((1, 2), {"costs": {"write": 1, "read": -1}}, ValueError, "read"),
        ((1, 2), {"costs": {"write": 1, "read": 1, "speed": 2}}, ValueError, "unknown costs"),
        ((1, 2), {"costs": {"write": 1, "read": 1, "overlap": 1}}, TypeError, "overlap"),
        ((1.5, 2), {}, TypeError, "memory"),
        ((1, 2), {"read_ahead": 1}, TypeError, "read_ahead"),
    ],
)
def test_bad_arguments(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        Multilevel(*args, **kwargs)


def test_too_large_a_table_is_refused():
    with pytest.raises(CheckpointError, match="smaller disk budget"):
        Multilevel(50, None, costs={"write": 1, "read": 1}).tables(100_000)
    with pytest.raises(CheckpointError, match=r"overlap model .* a write of up to 1000000 steps"):
        Multilevel(3, 30, costs={"write": 1e6, "read": 1, "overlap": True}).tables(200)


def test_random_cases_against_brute_force():
    """Random budgets and costs (overlap too): table optimum and replayed plan both equal the
    brute force; the plan's splits are recomputed from the table sums, so this checks them."""
    import random

    rng = random.Random(14)
    for _ in range(8):
        T, m, d = rng.randint(2, 30), rng.randint(0, 3), rng.randint(0, 4)
        if m + d == 0:
            d = 1
        wd, rd = round(rng.uniform(0, 6), 2), round(rng.uniform(0, 6), 2)
        overlap = rng.random() < 0.5
        costs = {"write": wd, "read": rd, "backward": 0, "overlap": overlap}
        if overlap:
            want = brute_force_overlap(m, d, wd, rd, hide=0)(T)
        else:
            want = brute_force(T, m, d, wd, rd)
        scheme = Multilevel(m, d, costs=costs)
        assert scheme.tables(T).start()[1] == pytest.approx(want, abs=1e-9), (T, m, d, costs)
        if not overlap:  # the replayed counts price writes at full cost
            got = modeled_cost(replay(scheme, T), costs)
            assert got == pytest.approx(want, abs=1e-9), (T, m, d, costs)


def test_tables_are_reused_for_the_same_plan_only():
    costs = {"write": 2, "read": 1}
    first = Multilevel(2, 3, costs=costs).tables(30)
    assert Multilevel(2, 3, costs=dict(costs)).tables(30) is first
    assert Multilevel(2, 3, costs={"write": 2, "read": 2}).tables(30) is not first
    assert Multilevel(2, 4, costs=costs).tables(30) is not first


def test_costs_are_not_convex_and_splits_not_monotone_with_io():
    """Why the programme searches every split (module docstring): with I/O costs the tables are
    not convex in the length and the first optimal split moves down as the length grows, so a
    search window that assumes either would lose the optimum. Free I/O is binomial: convex."""
    free = Multilevel(1, 1, costs={"write": 0, "read": 0}).tables(40)
    assert (np.diff(free.cost[0][1:], 2, axis=0) >= -1e-9).all()
    io = Multilevel(1, 1, costs={"write": 1, "read": 1}).tables(40)
    assert (np.diff(io.cost[0][1:], 2, axis=0) < -1e-9).any()
    costly = Multilevel(1, 1, costs={"write": 5, "read": 5}).tables(40)
    lane = costly.lane(0, 1)
    firsts = []  # the first optimal split of F_M(n, 0, 1), by brute force over every j
    for n in range(2, 41):
        sums = [k + costly.right[n - k, lane] + costly.cost[0][k, lane] for k in range(1, n)]
        firsts.append(1 + min(range(n - 1), key=lambda i: (sums[i], i)))
        if not costly.moved[0][n, lane]:  # the plan's recomputed split is that one
            assert costly.split(0, n, lane) == firsts[-1], n
    assert any(later < earlier for earlier, later in itertools.pairwise(firsts)), firsts


def test_split_minimum_by_blocks_is_the_whole_minimum():
    """The build takes each cell's least split sum by blocks of rows (`_least_split`): equal bit
    for bit to the minimum over the whole range, whatever the block, infinities included."""
    from ckpt_transform.schemes.multilevel import _least_split

    rng = np.random.default_rng(3)
    T, lanes = 40, 7
    plus = np.cumsum(rng.random((T + 1, lanes)), axis=0)
    flipped = rng.random((T + 1, lanes)) * 50
    flipped[rng.random((T + 1, lanes)) < 0.3] = np.inf
    for rows in (1, 3, 8, 64):
        buf = np.empty((rows, lanes))
        for n in range(2, T + 1):
            whole = np.minimum.reduce(plus[1:n] + flipped[T - n + 1 : T], axis=0)
            got = _least_split(plus, flipped, T - n, n, buf)
            assert np.array_equal(got, whole), (rows, n)
