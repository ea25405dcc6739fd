"""The driver against the oracle: autograd applied to the plain loop.

Every scheme x storage runs the same cases; gradients must agree to 1e-11 relative.
"""

from __future__ import annotations

import dataclasses
import os
import warnings

import autograd.numpy as np
import pytest
from autograd import grad as _grad
from autograd import jacobian, make_jvp

from ckpt_transform.errors import CheckpointError
from ckpt_transform.runtime.driver import checkpointed_for, checkpointed_while
from ckpt_transform.schemes.cost import revolve_evaluations
from ckpt_transform.schemes.online_r2 import OnlineR2
from ckpt_transform.schemes.periodic import Periodic
from ckpt_transform.schemes.revolve import Revolve
from ckpt_transform.schemes.store_all import StoreAll
from ckpt_transform.storage.hdf5 import HDF5Storage

RTOL = 1e-11


def grad(fun, argnum=0):
    """autograd's grad, quiet about outputs that do not depend on the input (0 steps)."""

    def g(*args):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Output seems independent of input.")
            return _grad(fun, argnum)(*args)

    return g


def rel_err(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = max(float(np.max(np.abs(b))), 1e-300) if b.size else 1.0
    return float(np.max(np.abs(a - b))) / scale if b.size else 0.0


def make_scheme(kind: str, snapshots: int, storage, steps: int):
    if kind == "storeall":
        return StoreAll()
    if kind == "revolve":
        return Revolve(snapshots, storage=storage)
    if kind == "periodic":
        return Periodic(snapshots, storage=storage) if steps else Periodic(period=1)
    return OnlineR2(snapshots, storage=storage)


SCHEMES = ["storeall", "revolve", "periodic", "online"]


@pytest.fixture(params=["memory", "hdf5"])
def storage(request, tmp_path):
    if request.param == "memory":
        return None
    return HDF5Storage(tmp_path / "checkpoints.h5")


# -- the seed's heat equation ------------------------------------------------------------------


def heat_step(T, i, lam):
    """One explicit step of the 1D heat equation; the boundary values stay fixed."""
    interior = T[1:-1] + lam * (T[:-2] - 2.0 * T[1:-1] + T[2:])
    return np.concatenate([T[:1], interior, T[-1:]])


def heat_plain(T0, lam, steps):
    T = T0
    for i in range(steps):
        T = heat_step(T, i, lam)
    return np.sum(T)


def heat_initial(n=100):
    T0 = np.zeros(n)
    T0[0] = 20.0
    T0[1:-1] = np.linspace(0.0, 1.0, n - 2) ** 2  # a non-trivial interior
    return T0


@pytest.mark.parametrize("kind", SCHEMES)
def test_heat_500_steps(kind, storage):
    T0, lam, steps = heat_initial(), 0.45, 500
    scheme = make_scheme(kind, 4, storage, steps)

    def f(T0, lam):
        return np.sum(checkpointed_for(heat_step, T0, steps, scheme, params=(lam,)))

    assert f(T0, lam) == pytest.approx(heat_plain(T0, lam, steps), rel=1e-14)
    for argnum in (0, 1):
        got = grad(f, argnum)(T0, lam)
        want = grad(heat_plain, argnum)(T0, lam, steps)
        assert rel_err(got, want) < RTOL


# -- dict and dataclass states, many lengths and budgets -------------------------------------


def dict_step(s, i, a, b):
    return {
        "x": s["x"] + a * np.sin(s["y"]) * np.cos(0.1 * i),
        "y": s["y"] * 0.95 + b * s["x"] ** 2 / (1.0 + s["x"] ** 2),
        "count": s["count"] + 1,
    }


def dict_plain(x, y, a, b, steps):
    s = {"x": x, "y": y, "count": 0}
    for i in range(steps):
        s = dict_step(s, i, a, b)
    return np.sum(s["x"] ** 2) + np.sum(np.tanh(s["y"])) + 0.0 * s["count"]


@pytest.mark.parametrize("kind", SCHEMES)
@pytest.mark.parametrize("steps", [0, 1, 2, 3, 7, 16])
@pytest.mark.parametrize("snapshots", [1, 2, 20])
def test_dict_state(kind, steps, snapshots, storage):
    rng = np.random.default_rng(steps * 31 + snapshots)
    x, y, a, b = rng.normal(size=3), rng.normal(size=3), 0.7, -0.4
    scheme = make_scheme(kind, snapshots, storage, steps)

    def f(x, y, a, b):
        s = checkpointed_for(dict_step, {"x": x, "y": y, "count": 0}, steps, scheme, params=(a, b))
        assert s["count"] == steps
        return np.sum(s["x"] ** 2) + np.sum(np.tanh(s["y"]))

    assert f(x, y, a, b) == pytest.approx(dict_plain(x, y, a, b, steps), rel=1e-14)
    for argnum in range(4):
        got = grad(f, argnum)(x, y, a, b)
        want = grad(dict_plain, argnum)(x, y, a, b, steps)
        assert rel_err(got, want) < RTOL, (argnum, got, want)


@dataclasses.dataclass
class Rod:
    T: np.ndarray
    flux: float
    n: int
    label: str = "rod"


def rod_step(rod, i, lam):
    T = rod.T + lam * (np.roll(rod.T, 1) - 2.0 * rod.T + np.roll(rod.T, -1)) + 0.01 * rod.flux
    return Rod(T=T, flux=rod.flux * 0.99 + 0.001 * np.sum(T), n=rod.n + 1, label=rod.label)


def rod_plain(T0, flux0, lam, steps):
    rod = Rod(T=T0, flux=flux0, n=0)
    for i in range(steps):
        rod = rod_step(rod, i, lam)
    return np.sum(rod.T**2) + rod.flux


@pytest.mark.parametrize("kind", SCHEMES)
@pytest.mark.parametrize("steps", [0, 1, 2, 9])
@pytest.mark.parametrize("snapshots", [1, 3, 12])
def test_dataclass_state_and_gradient_type(kind, steps, snapshots, storage):
    T0, flux0, lam = np.linspace(0.0, 1.0, 8) ** 2, 0.3, 0.2
    scheme = make_scheme(kind, snapshots, storage, steps)

    def f(rod, lam):
        out = checkpointed_for(rod_step, rod, steps, scheme, params=(lam,))
        return np.sum(out.T**2) + out.flux

    rod = Rod(T=T0, flux=flux0, n=0)
    g = grad(f)(rod, lam)
    assert type(g) is Rod
    assert rel_err(g.T, grad(rod_plain, 0)(T0, flux0, lam, steps)) < RTOL
    assert rel_err(g.flux, grad(rod_plain, 1)(T0, flux0, lam, steps)) < RTOL
    assert g.n == 0 and g.label == "rod"  # non-differentiable fields are copied, as in a shadow
    assert rel_err(grad(f, 1)(rod, lam), grad(rod_plain, 2)(T0, flux0, lam, steps)) < RTOL
    out = checkpointed_for(rod_step, rod, steps, scheme, params=(lam,))
    assert out.n == steps and out.label == "rod"


# -- the loop index ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SCHEMES)
def test_step_sees_the_true_loop_index_everywhere(kind):
    rng = range(3, 40, 2)
    seen: list[int] = []

    def step(x, i, c):
        seen.append(i)
        return x * np.cos(c * i) + 0.1 * i

    def plain(x, c):
        for i in rng:
            x = x * np.cos(c * i) + 0.1 * i
        return np.sum(x)

    scheme = make_scheme(kind, 3, None, len(rng))
    x0 = np.array([0.5, -1.0])

    def f(x, c):
        return np.sum(checkpointed_for(step, x, rng, scheme, params=(c,)))

    assert rel_err(grad(f)(x0, 0.3), grad(plain)(x0, 0.3)) < RTOL
    assert rel_err(grad(f, 1)(x0, 0.3), grad(plain, 1)(x0, 0.3)) < RTOL
    assert set(seen) == set(rng)  # primal run, recomputations and taped steps alike


def test_int_steps_with_start():
    seen = []

    def step(x, i):
        seen.append(i)
        return x + i

    assert checkpointed_for(step, 0.0, 4, Revolve(2), start=10) == 10 + 11 + 12 + 13
    assert seen == [10, 11, 12, 13]
    with pytest.raises(ValueError, match="start"):
        checkpointed_for(step, 0.0, range(3), Revolve(2), start=1)


# -- while loops -------------------------------------------------------------------------------


def ode_step(s, i, k, dt):
    t, y = s
    return (t + dt, y + dt * (-k * y + np.sin(t)))


def ode_cond(s, k, dt):
    return s[0] < 2.0


def ode_plain(y0, k, dt):
    s = (0.0, y0)
    while ode_cond(s, k, dt):
        s = ode_step(s, 0, k, dt)
    return np.sum(s[1] ** 2)


@pytest.mark.parametrize("kind", ["storeall", "online", "periodic", "revolve"])
def test_while_loop(kind, storage):
    y0, k, dt = np.array([1.0, 0.5, -0.25]), 0.8, 0.05
    steps = 40  # t runs 0, 0.05, ..., up to 2.0
    if kind == "revolve":
        scheme = Revolve(5, steps, storage=storage)
    elif kind == "periodic":
        scheme = Periodic(period=7, storage=storage)
    else:
        scheme = make_scheme(kind, 5, storage, steps)

    def f(y0, k):
        _, y = checkpointed_while(ode_cond, ode_step, (0.0, y0), scheme, params=(k, dt))
        return np.sum(y**2)

    assert f(y0, k) == pytest.approx(ode_plain(y0, k, dt), rel=1e-14)
    assert rel_err(grad(f)(y0, k), grad(ode_plain)(y0, k, dt)) < RTOL
    assert rel_err(grad(f, 1)(y0, k), grad(ode_plain, 1)(y0, k, dt)) < RTOL


def ode_plain_bounded(y0, k, dt, max_steps):
    s, n = (0.0, y0), 0
    while n < max_steps and ode_cond(s, k, dt):
        s = ode_step(s, 0, k, dt)
        n += 1
    return np.sum(s[1] ** 2)


@pytest.mark.parametrize("kind", ["storeall", "online", "periodic", "revolve"])
@pytest.mark.parametrize("max_steps", [0, 1, 13, 40, 41, 100])
def test_while_loop_stops_at_max_steps(kind, max_steps):
    # the loop's condition holds for 40 steps; max_steps stops it earlier, as on the JAX backend
    y0, k, dt = np.array([1.0, 0.5, -0.25]), 0.8, 0.05
    runs = []
    ran = min(max_steps, 40)
    if kind == "revolve":
        scheme = Revolve(3, ran)
    elif kind == "periodic":
        scheme = Periodic(period=7)
    else:
        scheme = make_scheme(kind, 3, None, ran)

    def f(y0, k):
        _, y = checkpointed_while(
            ode_cond,
            ode_step,
            (0.0, y0),
            scheme,
            params=(k, dt),
            max_steps=max_steps,
            report=runs.append,
        )
        return np.sum(y**2)

    assert f(y0, k) == pytest.approx(ode_plain_bounded(y0, k, dt, max_steps), rel=1e-14)
    assert runs[-1].steps == ran
    assert rel_err(grad(f)(y0, k), grad(ode_plain_bounded)(y0, k, dt, max_steps)) < RTOL
    assert rel_err(grad(f, 1)(y0, k), grad(ode_plain_bounded, 1)(y0, k, dt, max_steps)) < RTOL
    if ran:
        h = jacobian(grad(f))(y0, k)
        assert rel_err(h, jacobian(grad(ode_plain_bounded))(y0, k, dt, max_steps)) < 1e-10


@pytest.mark.parametrize("bad", [-1, 2.5, True, "3"])
def test_max_steps_must_be_a_count(bad):
    with pytest.raises(TypeError, match="max_steps must be an int >= 0 or None"):
        checkpointed_while(lambda s: s < 1.0, lambda s, i: s + 0.5, 0.0, StoreAll(), max_steps=bad)


@pytest.mark.parametrize("kind", SCHEMES)
@pytest.mark.parametrize("steps", [1, 5])
@pytest.mark.parametrize("traced_state", [False, True])
def test_closure_capture_of_a_traced_value_is_caught(kind, steps, traced_state):
    def f(dt):
        t, _ = checkpointed_while(
            lambda s: s[1] < steps,
            lambda s, i: (s[0] + dt * s[0] + 0.1, s[1] + 1),
            (1.0 + 0.0 * dt if traced_state else 1.0, 0),
            {"revolve": Revolve(2, steps), "periodic": Periodic(period=2)}.get(kind)
            or make_scheme(kind, 2, None, steps),
        )
        return t

    # dt is read from the closure instead of params: its gradient would be lost
    with pytest.raises(CheckpointError, match="params"):
        grad(f)(0.1)


# -- what the run did ----------------------------------------------------------------------------


@pytest.mark.parametrize(("steps", "snapshots"), [(10, 3), (50, 5), (100, 4), (37, 1), (20, 25)])
def test_revolve_run_is_optimal_and_stays_in_budget(steps, snapshots):
    runs = []
    x0 = np.linspace(0.0, 1.0, 5)

    def f(x):
        return np.sum(
            checkpointed_for(
                lambda x, i: np.sin(x) + 0.01 * i,
                x,
                steps,
                Revolve(snapshots),
                report=runs.append,
            )
        )

    grad(f)(x0)
    (stats,) = runs
    assert stats.steps == steps and stats.differentiated
    assert stats.forward_steps + stats.recorded_steps == revolve_evaluations(steps, snapshots)
    assert stats.recorded_steps == steps
    assert stats.max_snapshots <= snapshots
    assert stats.max_taped_steps == 1
    assert stats.checkpoint_bytes_peak <= snapshots * x0.nbytes
    assert stats.reverse_sweeps == 1


def test_untraced_call_is_the_plain_loop():
    out, stats = checkpointed_for(
        heat_step, heat_initial(), 50, Revolve(3), params=(0.4,), return_stats=True
    )
    assert not stats.differentiated
    assert stats.max_snapshots == 0 and stats.recorded_steps == 0 and stats.forward_steps == 50
    want = heat_initial()
    for i in range(50):
        want = heat_step(want, i, 0.4)
    assert np.array_equal(out, want)


@pytest.mark.parametrize("kind", SCHEMES)
def test_jacobian_runs_the_reverse_sweep_once_per_output(kind):
    scheme = make_scheme(kind, 2, None, 6)
    x0 = np.array([0.3, -0.2, 0.9])

    def step(x, i, c):
        return np.tanh(x * c + np.roll(x, 1))

    def f(x):
        return checkpointed_for(step, x, 6, scheme, params=(1.3,))

    def plain(x):
        for i in range(6):
            x = step(x, i, 1.3)
        return x

    assert rel_err(jacobian(f)(x0), jacobian(plain)(x0)) < RTOL
    v = np.array([1.0, 2.0, -1.0])
    assert rel_err(make_jvp(f)(x0)(v)[1], make_jvp(plain)(x0)(v)[1]) < RTOL


# -- errors ----------------------------------------------------------------------------------------


def test_revolve_steps_that_disagree_with_the_loop():
    with pytest.raises(CheckpointError, match=r"10.*12|12.*10"):
        grad(lambda x: checkpointed_for(lambda x, i: x * 1.1, x, 12, Revolve(3, 10)))(1.0)
    with pytest.raises(CheckpointError, match=r"10.*12|12.*10"):
        checkpointed_for(lambda x, i: x * 1.1, 1.0, 12, Revolve(3, 10))

    def run_while(steps, planned):
        def f(x):
            s = checkpointed_while(
                lambda s: s[1] < steps,
                lambda s, i: (s[0] * 1.1, s[1] + 1),
                (x, 0),
                Revolve(3, planned),
            )
            return s[0]

        return f

    with pytest.raises(CheckpointError, match="still running"):
        grad(run_while(12, 10))(1.0)
    with pytest.raises(CheckpointError, match=r"8.*10|10.*8"):
        grad(run_while(8, 10))(1.0)
    with pytest.raises(CheckpointError, match="steps="):
        grad(run_while(8, None))(1.0)
    assert grad(run_while(10, 10))(1.0) == pytest.approx(1.1**10)


def test_state_structure_change_is_an_error():
    def step(s, i):
        return (s[0] * 2.0,) if i == 2 else (s[0] * 2.0, s[1])

    with pytest.raises(CheckpointError, match="structure"):
        grad(lambda x: checkpointed_for(step, (x, 1.0), 5, Revolve(2))[0])(1.0)


def test_int_state_that_becomes_float_is_an_error():
    def step(s, i, dt):
        return (s[0] + dt, s[1] * 1.01)

    def f(dt):
        return checkpointed_for(step, (0, 1.0), 3, OnlineR2(2), params=(dt,))[0]

    with pytest.raises(CheckpointError, match=r"0\.0 instead of 0"):
        grad(f)(0.5)


def test_storage_failure_names_the_path(tmp_path):
    path = tmp_path / "no" / "such" / "dir" / "c.h5"
    scheme = Revolve(3, storage=HDF5Storage(path))
    with pytest.raises(CheckpointError, match=str(tmp_path / "no")):
        grad(lambda x: np.sum(checkpointed_for(lambda x, i: x * 1.1, x, 5, scheme)))(np.ones(3))


def test_no_checkpoint_file_is_left_behind(tmp_path):
    path = tmp_path / "c.h5"
    scheme = Revolve(3, storage=HDF5Storage(path))
    g = grad(lambda x: np.sum(checkpointed_for(lambda x, i: x * 1.1, x, 9, scheme)))(np.ones(3))
    assert rel_err(g, 1.1**9 * np.ones(3)) < RTOL
    assert not os.path.exists(path)


def test_bad_arguments():
    with pytest.raises(TypeError, match="scheme"):
        checkpointed_for(lambda x, i: x, 1.0, 3, "revolve")
    with pytest.raises(TypeError, match="steps"):
        checkpointed_for(lambda x, i: x, 1.0, -1, StoreAll())
    with pytest.raises(TypeError, match="params"):
        checkpointed_for(lambda x, i, a: x, 1.0, 3, StoreAll(), params=0.5)


def test_progress_bars_over_both_sweeps(capsys):
    def f(x):
        return np.sum(checkpointed_for(lambda x, i: np.sin(x), x, 12, Revolve(3), progress=True))

    grad(f)(np.ones(3))
    err = capsys.readouterr().err
    assert "forward" in err and "reverse" in err
    assert "12/12" in err  # steps done / total, for each sweep
