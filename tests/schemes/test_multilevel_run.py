"""Multilevel run by the driver: value and gradient equal autograd's on the plain loop, each level's
checkpoints in its own storage, per-level stats, and the measured costs when none are given."""

from __future__ import annotations

import autograd.numpy as np
import pytest
from autograd import value_and_grad

from ckpt_transform import (
    ArrayStorage,
    CheckpointError,
    HDF5Storage,
    Multilevel,
    checkpoint_struct,
    checkpointed_for,
    checkpointed_while,
)
from ckpt_transform.schemes.cost import revolve_forward_steps


def step(x, i, c):
    return np.sin(x) * c + 0.1 * x + 0.01 * i


def plain(x, c, T):
    for i in range(T):
        x = step(x, i, c)
    return np.sum(x**2)


X0 = np.linspace(0.1, 1.0, 5)


def run(scheme, T, x=X0, c=1.3):
    seen = {}

    def f(x, c):
        out = checkpointed_for(step, x, T, scheme, params=(c,), report=lambda s: seen.update(s=s))
        return np.sum(out**2)

    value, (gx, gc) = value_and_grad(f, (0, 1))(x, c)
    want, (wx, wc) = value_and_grad(lambda x, c: plain(x, c, T), (0, 1))(x, c)
    assert value == pytest.approx(want, rel=1e-12)
    assert np.allclose(gx, wx, rtol=1e-12, atol=0)
    assert gc == pytest.approx(wc, rel=1e-12)
    return seen["s"]


@pytest.mark.parametrize(
    "scheme",
    [
        Multilevel(1, 3, costs={"write": 1, "read": 1}),
        Multilevel(0, 4, costs={"write": 0.5, "read": 2}),
        Multilevel(2, None, costs={"write": 3, "read": 3}),
        Multilevel(1, 2, costs={"write": 2, "read": 1, "overlap": True}),
        Multilevel(1, 4, costs={"write": 6, "read": 0.5, "backward": 2, "overlap": True}),
        Multilevel(1, 3, costs={"write": 1, "read": 1}, read_ahead=True),
    ],
)
def test_gradient_equals_autograd_on_the_plain_loop(scheme, tmp_path):
    stats = run(scheme, 30)
    assert stats.disk_writes > 0 and stats.disk_reads > 0
    assert stats.disk_max_snapshots <= (scheme.disk or 30)
    assert stats.memory_max_snapshots <= scheme.memory
    assert stats.disk_bytes_peak == stats.disk_max_snapshots * X0.nbytes
    assert stats.costs == scheme.costs


def test_zero_io_costs_evaluate_as_revolve():
    stats = run(Multilevel(2, 3, costs={"write": 0, "read": 0}), 40)
    assert stats.evaluations == revolve_forward_steps(40, 5) + 40


def test_each_level_uses_its_own_storage(tmp_path):
    path = tmp_path / "disk.h5"
    scheme = Multilevel(
        1,
        3,
        memory_storage=ArrayStorage(),
        disk_storage=HDF5Storage(path, keep=True),
        costs={"write": 1, "read": 1},
    )
    stats = run(scheme, 25)
    assert path.exists()  # the disk level wrote its checkpoints there
    assert stats.disk_writes > 0
    assert "disk_writes" in str(stats)


@pytest.mark.parametrize("read_ahead", [False, True])
def test_reads_ahead_only_when_asked(monkeypatch, read_ahead):
    """By default the disk level is read at each restore, not ahead of it during a VJP (where a
    state read ahead would sit at the sweep's peak); read_ahead=True gives the storage its hints.
    The gradient is autograd's either way."""
    from ckpt_transform.storage.hdf5.session import HDF5Session

    hinted = []
    real = HDF5Session.prefetch

    def prefetch(self, slot):
        hinted.append(slot)
        real(self, slot)

    monkeypatch.setattr(HDF5Session, "prefetch", prefetch)
    scheme = Multilevel(1, 3, costs={"write": 1, "read": 1}, read_ahead=read_ahead)
    stats = run(scheme, 30)
    assert stats.disk_reads > 0
    assert bool(hinted) == read_ahead
    assert ("read_ahead=True" in repr(scheme)) == read_ahead
    assert scheme.with_costs({"write": 2, "read": 2}).read_ahead == read_ahead


def test_measured_costs_when_none_are_given():
    stats = run(Multilevel(1, 3), 20)
    assert stats.costs["measured"] is True
    assert stats.costs["write"] >= 0 and stats.costs["read"] >= 0
    assert stats.forward_steps >= 3  # the timing steps are counted


@pytest.mark.parametrize("T", [1, 2, 20])
def test_measured_costs_time_the_first_steps_chained(T):
    # the timing steps run as the loop does, each from the state the one before made (a step run
    # again from one state, its result dropped, is slower: a write would look cheaper in steps)
    calls = []

    def traced(x, i, c):
        calls.append((i, np.array(getattr(x, "_value", x))))
        return step(x, i, c)

    scheme = Multilevel(1, 3)
    value_and_grad(lambda x: np.sum(checkpointed_for(traced, x, T, scheme, params=(1.3,))))(X0)
    timed = min(3, T)
    x = X0
    for k in range(timed):
        assert calls[k][0] == k
        assert (calls[k][1] == x).all()
        x = step(x, k, 1.3)
    assert calls[timed][0] == 0  # then the run itself starts from the input
    assert (calls[timed][1] == X0).all()


def test_while_loop_with_steps():
    scheme = Multilevel(1, 2, costs={"write": 1, "read": 1}, steps=12)

    def f(x):
        out = checkpointed_while(
            lambda s: s[1] < 12, lambda s, i: (np.sin(s[0]) * 1.1, s[1] + 1), (x, 0), scheme
        )
        return np.sum(out[0] ** 2)

    def g(x):
        for _ in range(12):
            x = np.sin(x) * 1.1
        return np.sum(x**2)

    value, grad = value_and_grad(f)(X0)
    want, wgrad = value_and_grad(g)(X0)
    assert value == pytest.approx(want, rel=1e-12)
    assert np.allclose(grad, wgrad, rtol=1e-12, atol=0)
    bad = Multilevel(1, 2, costs={"write": 1, "read": 1}, steps=11)
    with pytest.raises(CheckpointError, match="11"):
        checkpointed_while(lambda s: s[1] < 12, lambda s, i: (s[0] * 1.1, s[1] + 1), (X0, 0), bad)


def test_decorator():
    @checkpoint_struct(Multilevel(1, 2, costs={"write": 1, "read": 1}))
    def f(x, c):
        for i in range(17):
            x = np.sin(x) * c + 0.1 * x + 0.01 * i
        return np.sum(x**2)

    value, grads = value_and_grad(f, (0, 1))(X0, 0.9)
    want, wgrads = value_and_grad(lambda x, c: plain(x, c, 17), (0, 1))(X0, 0.9)
    assert value == pytest.approx(want, rel=1e-12)
    assert np.allclose(grads[0], wgrads[0], rtol=1e-12, atol=0)
    assert grads[1] == pytest.approx(wgrads[1], rel=1e-12)
    assert f.stats.disk_writes > 0
