"""RunStats: labels are attribute names, and ``peak_states`` counts what a run really holds."""

from __future__ import annotations

import dataclasses

import autograd.numpy as np
import numpy
import pytest
from autograd import grad

from ckpt_transform.runtime.driver import checkpointed_for
from ckpt_transform.runtime.stats import RunStats, replay_counts
from ckpt_transform.schemes.actions import Free, Record, Reverse, Store
from ckpt_transform.schemes.online_r2 import OnlineR2
from ckpt_transform.schemes.periodic import Periodic
from ckpt_transform.schemes.revolve import Revolve
from ckpt_transform.schemes.store_all import StoreAll


def step(x, i, a):
    return np.sin(x) * a + 0.01 * i


def held_at_most(actions) -> int:
    """The oracle: slots plus taped steps held at once, counted directly from the actions."""
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


SCHEMES = [
    Revolve(4),
    Revolve(1),
    Periodic(4),
    Periodic(period=7),
    OnlineR2(3),
    StoreAll(),
]


@pytest.mark.parametrize("scheme", SCHEMES, ids=repr)
@pytest.mark.parametrize("steps", [1, 9, 40])
def test_a_run_reports_the_states_its_schedule_holds(scheme, steps):
    x0 = np.linspace(0.1, 0.9, 3)
    runs: list[RunStats] = []

    def f(x, a):
        out, stats = checkpointed_for(step, x, steps, scheme, params=(a,), return_stats=True)
        runs.append(stats)
        return np.sum(out**2)

    def plain(x, a):
        for i in range(steps):
            x = step(x, i, a)
        return np.sum(x**2)

    assert f(x0, 0.8) == pytest.approx(plain(x0, 0.8), rel=1e-13)
    got, want = grad(f, (0, 1))(x0, 0.8), grad(plain, (0, 1))(x0, 0.8)
    numpy.testing.assert_allclose(got[0], want[0], rtol=1e-11)
    assert got[1] == pytest.approx(want[1], rel=1e-11)
    stats = runs[-1]
    assert stats.peak_states == held_at_most(scheme.schedule(steps))
    assert stats.peak_states >= max(stats.max_snapshots, stats.max_taped_steps)
    assert stats.peak_states <= stats.max_snapshots + stats.max_taped_steps
    replayed = replay_counts(scheme.schedule(steps), steps)
    assert (replayed.peak_states, replayed.max_snapshots) == (
        stats.peak_states,
        stats.max_snapshots,
    )
    assert replayed.evaluations == stats.evaluations


def test_the_figures_a_user_would_expect():
    assert replay_counts(StoreAll().schedule(500)).peak_states == 500
    assert replay_counts(Revolve(4).schedule(500)).peak_states == 5  # 4 snapshots + 1 taped step
    periodic = replay_counts(Periodic(4).schedule(500))
    assert (periodic.max_snapshots, periodic.max_taped_steps) == (3, 125)
    assert periodic.peak_states == 128  # not 3: a period's 125 taped states are held too


def test_replay_refuses_an_open_ended_span():
    with pytest.raises(ValueError, match="open-ended"):
        replay_counts([Store(slot=0, n=0), Record(n0=0, n1=None)])


def test_labels_are_the_attribute_names():
    stats = RunStats(scheme="Revolve(snapshots=4)", storage="ArrayStorage()", steps=10)
    stats.forward_steps, stats.recorded_steps, stats.peak_states = 17, 10, 5
    lines = str(stats).splitlines()
    printed = dict(line.split(None, 1) for line in lines)
    assert list(printed)[:6] == [
        "scheme",
        "storage",
        "steps",
        "forward_steps",
        "recorded_steps",
        "evaluations",
    ]
    for name, value in printed.items():
        assert str(getattr(stats, name)) == value.strip(), name
    assert "snapshots_now" not in printed and "taped_now" not in printed
    assert "peak_states=5" in repr(stats) and "forward_steps=17" in repr(stats)


def test_a_field_added_later_prints_too():
    @dataclasses.dataclass
    class MoreStats(RunStats):
        disk_snapshots: int = 0

    stats = MoreStats(disk_snapshots=3)
    assert str(stats).splitlines()[-1].split() == ["disk_snapshots", "3"]
