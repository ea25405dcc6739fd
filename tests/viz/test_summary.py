"""Totals and the cost table: replayed counts beside the closed-form optimum."""

from __future__ import annotations

import re

import pytest

from ckpt_transform.schemes.actions import Free, Record, Reverse, Store
from ckpt_transform.schemes.cost import revolve_evaluations
from ckpt_transform.schemes.online_r2 import OnlineR2, online_lower_bound
from ckpt_transform.schemes.periodic import Periodic
from ckpt_transform.schemes.revolve import Revolve
from ckpt_transform.schemes.store_all import StoreAll
from ckpt_transform.schemes.validate import validate_schedule
from ckpt_transform.viz.summary import MAX_STEPS, compare_schemes, cost_table, schedule_totals

SCHEMES = [Revolve(3), Periodic(3), Periodic(period=4), OnlineR2(3), StoreAll()]


def held_at_most(actions) -> int:
    """Checkpoint slots plus taped steps held at once, counted directly from the actions."""
    slots: set[int] = set()
    taped = peak = 0
    for action in actions:
        if isinstance(action, Store):
            slots.add(action.slot)
        elif isinstance(action, Free):
            slots.discard(action.slot)
        elif isinstance(action, Record):
            taped += action.n1 - action.n0
        elif isinstance(action, Reverse):
            taped -= action.n1 - action.n0
        peak = max(peak, len(slots) + taped)
    return peak


@pytest.mark.parametrize("scheme", SCHEMES, ids=repr)
@pytest.mark.parametrize("steps", [1, 2, 7, 20, 57])
def test_totals_are_the_replayed_counts(scheme, steps):
    totals = schedule_totals(scheme, steps)
    assert totals.counts == validate_schedule(scheme.schedule(steps), steps)
    assert totals.evaluations == totals.counts.forward_steps + totals.counts.recorded_steps
    assert totals.recomputation == pytest.approx(totals.evaluations / steps)
    assert totals.scheme == repr(scheme)
    assert totals.peak_states == held_at_most(scheme.schedule(steps))


def test_periodic_peak_memory_is_its_checkpoints_and_one_period():
    # 500 steps, 4 snapshots: period 125, three checkpoints (0, 125, 250) while the last period
    # ([375, 500)) is taped, then each period taped while its checkpoint is held.
    totals = schedule_totals(Periodic(4), 500)
    assert (totals.counts.max_snapshots, totals.counts.max_taped_steps) == (3, 125)
    assert totals.peak_states == 128
    assert schedule_totals(Revolve(4), 500).peak_states == 5
    assert schedule_totals(StoreAll(), 500).peak_states == 500


def test_the_budget_compared_with():
    # The scheme's own snapshots when it has them ...
    assert schedule_totals(Revolve(4), 30).snapshots == 4
    assert schedule_totals(Revolve(4), 30).optimum == revolve_evaluations(30, 4)
    # ... else the most checkpoints its schedule held (Periodic(period=4) over 10 steps stores
    # the states 0 and 4: two) ...
    periodic = schedule_totals(Periodic(period=4), 10)
    assert periodic.snapshots == 2
    assert periodic.optimum == revolve_evaluations(10, 2)
    # ... and none for StoreAll, which holds no checkpoint, unless one is given.
    assert schedule_totals(StoreAll(), 10).optimum is None
    assert schedule_totals(StoreAll(), 10, snapshots=3).optimum == revolve_evaluations(10, 3)


def test_revolve_reaches_the_optimum_and_others_do_not_beat_it_with_one_taped_step():
    for steps in (5, 20, 64, 100):
        for s in (2, 3, 5):
            totals = schedule_totals(Revolve(s), steps)
            assert totals.evaluations == totals.optimum
            online = schedule_totals(OnlineR2(s), steps)
            assert online.counts.max_taped_steps == 1
            assert online.evaluations >= online.optimum
            assert online.online_bound == online_lower_bound(steps, s)
            assert online.evaluations >= online.online_bound


def test_compare_schemes_covers_every_scheme_in_order():
    rows = compare_schemes(40, 4)
    assert [r.scheme for r in rows] == [
        "Revolve(snapshots=4)",
        "Periodic(snapshots=4)",
        "OnlineR2(snapshots=4)",
        "StoreAll()",
    ]
    assert all(r.snapshots == 4 and r.optimum == revolve_evaluations(40, 4) for r in rows)


def test_cost_table_numbers_are_the_replayed_counts():
    steps, s = 100, 5
    text = cost_table(steps, s)
    optimum = revolve_evaluations(steps, s)
    for scheme in (Revolve(s), Periodic(s), OnlineR2(s), StoreAll()):
        counts = validate_schedule(scheme.schedule(steps), steps)
        line = next(x for x in text.splitlines() if x.startswith(repr(scheme)))
        cells = line[len(repr(scheme)) :].split()
        assert cells == [
            str(counts.forward_steps),
            str(counts.recorded_steps),
            str(counts.evaluations),
            f"{counts.evaluations / steps:.2f}",
            f"{counts.evaluations / optimum:.3f}",
            str(counts.max_snapshots),
            str(counts.max_taped_steps),
            str(held_at_most(scheme.schedule(steps))),
        ]
    assert re.search(rf"optimum: {optimum} evaluations", text)
    bound = online_lower_bound(steps, s)
    assert f"the least any such plan can do here is {bound}." in text


def test_bad_arguments():
    with pytest.raises(ValueError, match="at most 100000"):
        schedule_totals(Revolve(2), MAX_STEPS + 1)
    with pytest.raises(ValueError, match=">= 0, got -1"):
        schedule_totals(Revolve(2), -1)
    with pytest.raises(ValueError, match=">= 1, got 0"):
        compare_schemes(10, 0)
