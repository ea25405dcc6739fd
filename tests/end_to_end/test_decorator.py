"""@checkpoint_struct gives the values and gradients of the undecorated function, for every scheme.

The oracle is always autograd on the plain loop. Where the plain loop cannot run under autograd
(it assigns attributes of a traced dataclass, or writes array elements in place), the oracle is the
same computation written functionally: the dataclass rebuilt each step, the element loop
vectorised; the plain loop itself, run without autograd, pins the values.
"""

# ruff: noqa: B007  (time-stepping loops often do not read their index, as users write them)

from __future__ import annotations

from dataclasses import dataclass

import autograd.numpy as np
import numpy as onp
import pytest
from autograd import grad, hessian, value_and_grad

from ckpt_transform import CheckpointError, Periodic, Revolve, StoreAll
from ckpt_transform.api import checkpoint_struct
from ckpt_transform.schemes.online_r2 import OnlineR2

RTOL = 1e-11


def assert_close(actual, expected, rtol=RTOL):
    actual, expected = onp.asarray(actual, dtype=float), onp.asarray(expected, dtype=float)
    assert actual.shape == expected.shape
    scale = max(float(onp.max(onp.abs(expected), initial=0.0)), 1e-300)
    err = float(onp.max(onp.abs(actual - expected), initial=0.0))
    assert err <= rtol * scale, f"max error {err:.3e} > {rtol:.0e} x {scale:.3e}"


def for_schemes():
    """Fresh schemes for a for loop (each test decorates its own function)."""
    return [
        pytest.param(lambda: StoreAll(), id="StoreAll"),
        pytest.param(lambda: Revolve(4), id="Revolve4"),
        pytest.param(lambda: Revolve(1), id="Revolve1"),
        pytest.param(lambda: Periodic(period=7), id="Periodic-period7"),
        pytest.param(lambda: Periodic(5), id="Periodic-snapshots5"),
        pytest.param(lambda: OnlineR2(4), id="OnlineR2"),
    ]


# -- the seed's heat equation, with a dataclass struct --------------------------------------------


@dataclass
class Heat:
    Tnext: np.ndarray
    Tlast: np.ndarray
    n: int
    λ: float
    tsteps: int


def advance(heat):
    last = heat.Tlast
    interior = last[1:-1] + heat.λ * (last[:-2] - 2 * last[1:-1] + last[2:])
    return np.concatenate([last[:1], interior, last[-1:]])


def sumheat(heat, tsteps):
    for i in range(tsteps):
        heat.Tlast = heat.Tnext
        heat.Tnext = advance(heat)
    return np.sum(heat.Tnext)


def sumheat_functional(Tnext, Tlast, lam, tsteps):
    """The same loop with the dataclass rebuilt each step: what autograd can differentiate."""
    heat = Heat(Tnext, Tlast, len(Tnext), lam, tsteps)
    for i in range(tsteps):
        heat = Heat(heat.Tnext, heat.Tnext, heat.n, heat.λ, heat.tsteps)
        heat = Heat(advance(heat), heat.Tlast, heat.n, heat.λ, heat.tsteps)
    return np.sum(heat.Tnext)


def initial_heat(n=100, lam=0.5, tsteps=500):
    T = onp.zeros(n)
    T[0] = 20.0
    return Heat(T, onp.zeros(n), n, lam, tsteps)


@pytest.mark.parametrize("make_scheme", for_schemes())
def test_seed_heat_values_and_gradients(make_scheme):
    scheme = make_scheme()
    steps = 500 if not isinstance(scheme, Revolve) or scheme.snapshots > 1 else 60
    f = checkpoint_struct(scheme)(sumheat)

    plain = initial_heat(tsteps=steps)
    expected = sumheat(plain, steps)  # the undecorated loop, without autograd
    heat = initial_heat(tsteps=steps)
    value = f(heat, steps)
    assert value == pytest.approx(expected, rel=RTOL)
    # the struct holds what the plain loop leaves in it
    assert_close(heat.Tnext, plain.Tnext)
    assert_close(heat.Tlast, plain.Tlast)
    assert f.stats.steps == steps

    fresh = initial_heat(tsteps=steps)
    oracle = grad(sumheat_functional, (0, 1, 2))
    d_next, d_last, d_lam = oracle(fresh.Tnext, fresh.Tlast, fresh.λ, steps)
    start = initial_heat(tsteps=steps)
    dheat = grad(f)(start, steps)
    assert type(dheat) is Heat
    assert_close(dheat.Tnext, d_next)
    assert_close(dheat.Tlast, d_last)
    assert float(dheat.λ) == pytest.approx(float(d_lam), rel=RTOL)
    assert f.stats.differentiated and f.stats.steps == steps
    if isinstance(scheme, Revolve):
        assert f.stats.max_snapshots <= scheme.snapshots
    # grad with respect to the struct leaves the caller's object holding the plain final state
    assert_close(start.Tnext, plain.Tnext)
    assert not hasattr(start.Tnext, "_value")


def test_seed_heat_revolve4_counts():
    """500 steps with 4 snapshots: the Revolve optimum, never more than 4 states held."""
    f = checkpoint_struct(Revolve(4))(sumheat)
    grad(f)(initial_heat(), 500)
    stats = f.stats
    # t = 9 is the least with C(4 + t, 4) >= 500 (C(12, 4) = 495 < 500 <= C(13, 4) = 715), so
    # P(500, 4) = t T - C(s + t, t - 1) = 9 * 500 - C(13, 8) = 4500 - 1287 = 3213 passive steps.
    assert stats.forward_steps == 3213
    assert stats.recorded_steps == 500
    assert stats.max_snapshots == 4


# -- element-wise updates (the seed's Julia advance) ----------------------------------------------


def sumheat_elementwise(heat, tsteps):
    for t in range(tsteps):
        heat.Tlast[:] = heat.Tnext
        for i in range(1, heat.n - 1):
            heat.Tnext[i] = heat.Tlast[i] + heat.λ * (
                heat.Tlast[i - 1] - 2 * heat.Tlast[i] + heat.Tlast[i + 1]
            )
    return np.sum(heat.Tnext)


def heat_elementwise_locals(T0, lam, tsteps):
    n = len(T0)
    nxt = np.array(T0)
    last = np.array(T0)
    for t in range(tsteps):
        last[:] = nxt
        for i in range(1, n - 1):
            nxt[i] = last[i] + lam * (last[i - 1] - 2 * last[i] + last[i + 1])
    return np.sum(nxt)


@pytest.mark.parametrize("make_scheme", for_schemes())
def test_elementwise_struct_matches_the_vectorised_oracle(make_scheme):
    n, steps = 12, 30
    f = checkpoint_struct(make_scheme())(sumheat_elementwise)
    plain = initial_heat(n, 0.3, steps)
    expected = sumheat_elementwise(plain, steps)  # in place, plain numpy
    heat = initial_heat(n, 0.3, steps)
    assert f(heat, steps) == pytest.approx(expected, rel=RTOL)
    assert_close(heat.Tnext, plain.Tnext)

    fresh = initial_heat(n, 0.3, steps)
    d_next, d_last, d_lam = grad(sumheat_functional, (0, 1, 2))(
        fresh.Tnext, fresh.Tlast, fresh.λ, steps
    )
    dheat = grad(f)(initial_heat(n, 0.3, steps), steps)
    assert_close(dheat.Tnext, d_next)
    assert_close(dheat.Tlast, d_last)
    assert float(dheat.λ) == pytest.approx(float(d_lam), rel=RTOL)


@pytest.mark.parametrize("make_scheme", for_schemes())
def test_elementwise_locals_match_the_vectorised_oracle(make_scheme):
    T0 = onp.linspace(0.0, 1.0, 10) ** 2
    f = checkpoint_struct(make_scheme())(heat_elementwise_locals)
    assert f(T0, 0.25, 25) == pytest.approx(heat_elementwise_locals(T0, 0.25, 25), rel=RTOL)
    dT0, dlam = grad(f, (0, 1))(T0, 0.25, 25)
    oracle = grad(sumheat_functional, (0, 2))
    eT0, elam = oracle(T0, T0, 0.25, 25)
    assert_close(dT0, eT0)
    assert float(dlam) == pytest.approx(float(elam), rel=RTOL)


@pytest.mark.slow
def test_elementwise_struct_over_the_seeds_500_steps():
    """The seed's Julia-style loop as written, 500 steps with Revolve(4) (autograd
    differentiates element by element, so each taped step costs about n^2); on 16 points."""
    n, steps = 16, 500
    f = checkpoint_struct(Revolve(4))(sumheat_elementwise)
    dheat = grad(f)(initial_heat(n, 0.5, steps), steps)
    fresh = initial_heat(n, 0.5, steps)
    d_next, _, d_lam = grad(sumheat_functional, (0, 1, 2))(fresh.Tnext, fresh.Tlast, 0.5, steps)
    assert_close(dheat.Tnext, d_next)
    assert float(dheat.λ) == pytest.approx(float(d_lam), rel=RTOL)
    assert f.stats.max_snapshots <= 4
    assert f.stats.forward_steps == 3213  # the Revolve optimum for 500 steps and 4 snapshots


# -- a while loop integrating an ODE to a final time ----------------------------------------------


def logistic_to(y0, rate, capacity, t_end, dt):
    t = 0.0
    y = y0
    while t < t_end - 0.5 * dt:
        k1 = rate * y * (1.0 - y / capacity)
        mid = y + 0.5 * dt * k1
        y = y + dt * rate * mid * (1.0 - mid / capacity)
        t = t + dt
    return np.sum(y**2)


def while_schemes(steps):
    return [
        pytest.param(lambda: StoreAll(), id="StoreAll"),
        pytest.param(lambda: Revolve(3, steps=steps), id="Revolve3"),
        pytest.param(lambda: Periodic(period=6), id="Periodic-period6"),
        pytest.param(lambda: OnlineR2(3), id="OnlineR2"),
    ]


@pytest.mark.parametrize("make_scheme", while_schemes(40))
def test_while_loop_ode(make_scheme):
    y0 = onp.array([0.1, 0.5, 1.3])
    args = (y0, 0.8, 2.0, 4.0, 0.1)  # 40 steps of 0.1 to t = 4
    f = checkpoint_struct(make_scheme())(logistic_to)
    assert f(*args) == pytest.approx(logistic_to(*args), rel=RTOL)
    assert f.stats.steps == 40
    got = grad(f, (0, 1, 2))(*args)
    want = grad(logistic_to, (0, 1, 2))(*args)
    for g, w in zip(got, want):
        assert_close(g, w)


def logistic_to_bounded(y0, rate, capacity, t_end, dt, max_steps):  # the oracle for max_steps
    t = 0.0
    y = y0
    k = 0
    while k < max_steps and t < t_end - 0.5 * dt:
        k1 = rate * y * (1.0 - y / capacity)
        mid = y + 0.5 * dt * k1
        y = y + dt * rate * mid * (1.0 - mid / capacity)
        t = t + dt
        k += 1
    return np.sum(y**2)


@pytest.mark.parametrize("make_scheme", while_schemes(25))
def test_while_loop_stops_at_max_steps(make_scheme):
    # the condition holds for 40 steps; max_steps=25 stops the loop there, as on the JAX backend
    y0 = onp.array([0.1, 0.5, 1.3])
    args = (y0, 0.8, 2.0, 4.0, 0.1)
    f = checkpoint_struct(make_scheme(), max_steps=25)(logistic_to)
    assert "max_steps=25" in f.generated_source
    assert f(*args) == pytest.approx(logistic_to_bounded(*args, 25), rel=RTOL)
    assert f.stats.steps == 25
    got = grad(f, (0, 1, 2))(*args)
    want = grad(logistic_to_bounded, (0, 1, 2))(*args, 25)
    for g, w in zip(got, want):
        assert_close(g, w)
    assert_close(hessian(f)(*args), hessian(logistic_to_bounded)(*args, 25))


def test_revolve_on_a_while_loop_of_another_length_says_so():
    f = checkpoint_struct(Revolve(3, steps=30))(logistic_to)
    with pytest.raises(CheckpointError, match="30"):
        grad(f)(onp.array([0.1]), 0.8, 2.0, 4.0, 0.1)


# -- closure variables, globals, plain objects ----------------------------------------------------


def damped(x0, k, scheme, steps=50, dt=0.05):
    """A loss whose loop is decorated inside it and captures k, traced under grad."""

    def integrate(x):
        for i in range(steps):
            x = x + dt * (-k * x + np.sin(x))
        return x

    run = checkpoint_struct(scheme)(integrate) if scheme is not None else integrate
    return np.sum(run(x0) ** 2)


@pytest.mark.parametrize("make_scheme", for_schemes())
def test_closure_captured_parameter(make_scheme):
    x0 = onp.array([0.3, -1.2, 2.0])
    got = grad(damped, (0, 1))(x0, 0.7, make_scheme())
    want = grad(damped, (0, 1))(x0, 0.7, None)
    assert_close(got[0], want[0])
    assert float(got[1]) == pytest.approx(float(want[1]), rel=RTOL)


FORCING = onp.array([0.5, -0.25, 1.0])


def forced(x, steps):
    for i in range(3, 3 + 2 * steps, 2):
        x = np.tanh(x + 0.01 * i * FORCING)
    return np.sum(x), i


def test_global_array_and_range_with_a_step():
    f = checkpoint_struct(Revolve(2))(forced)
    x0 = onp.array([0.1, 0.2, 0.3])
    assert f(x0, 17) == pytest.approx(forced(x0, 17), rel=RTOL)
    assert f(x0, 17)[1] == forced(x0, 17)[1] == 35

    def loss(x):
        return f(x, 17)[0]

    def oracle(x):
        return forced(x, 17)[0]

    assert_close(grad(loss)(x0), grad(oracle)(x0))


class Rod:
    """A plain (non-dataclass) object as the struct."""

    def __init__(self, T, conductivity):
        self.T = T
        self.conductivity = conductivity

    def flux(self):
        return self.conductivity * (self.T[:-2] - 2 * self.T[1:-1] + self.T[2:])


def relax(rod, steps):
    for i in range(steps):
        rod.T = np.concatenate([rod.T[:1], rod.T[1:-1] + rod.flux(), rod.T[-1:]])
    return np.sum(rod.T**2)


@pytest.mark.parametrize("make_scheme", for_schemes())
def test_plain_object_struct_with_a_method(make_scheme):
    f = checkpoint_struct(make_scheme())(relax)
    T0 = onp.array([1.0, 0.0, 0.5, 0.0, 2.0])

    def loss(T, c, fn):
        return fn(Rod(T, c), 20)

    # the undecorated loop works under autograd here: Rod is a plain object holding boxes
    got = grad(loss, (0, 1))(T0, 0.2, f)
    want = grad(loss, (0, 1))(T0, 0.2, relax)
    assert_close(got[0], want[0])
    assert float(got[1]) == pytest.approx(float(want[1]), rel=RTOL)
    rod, plain = Rod(T0, 0.2), Rod(T0, 0.2)
    assert f(rod, 20) == pytest.approx(relax(plain, 20), rel=RTOL)
    assert_close(rod.T, plain.T)


class Settings:
    """A plain object the loop only reads, built inside the function being differentiated."""

    def __init__(self, rate, t_end):
        self.rate = rate
        self.t_end = t_end


def decay_with_settings(y, settings, dt):
    t = 0.0
    while t < settings.t_end - 0.5 * dt:
        y = y - dt * settings.rate * np.sin(y)
        t = t + dt
    return np.sum(y)


@pytest.mark.parametrize("make_scheme", while_schemes(20))
def test_read_only_plain_object_receives_gradients(make_scheme):
    f = checkpoint_struct(make_scheme())(decay_with_settings)
    y0 = onp.array([0.4, 1.1])

    def loss(y, rate, fn):
        return fn(y, Settings(rate, 2.0), 0.1)

    got = grad(loss, (0, 1))(y0, 0.7, f)
    want = grad(loss, (0, 1))(y0, 0.7, decay_with_settings)
    assert_close(got[0], want[0])
    assert float(got[1]) == pytest.approx(float(want[1]), rel=RTOL)


@dataclass
class Clock:
    t: float
    y: np.ndarray
    t_end: float


def run_clock(clock, dt):
    while clock.t < clock.t_end - 0.5 * dt:
        clock.y = clock.y * (1.0 - dt * np.cos(clock.y))
        clock.t = clock.t + dt
    return np.sum(clock.y)


def run_clock_functional(t, y, t_end, dt):
    clock = Clock(t, y, t_end)
    while clock.t < clock.t_end - 0.5 * dt:
        clock = Clock(clock.t, clock.y * (1.0 - dt * np.cos(clock.y)), clock.t_end)
        clock = Clock(clock.t + dt, clock.y, clock.t_end)
    return np.sum(clock.y)


@pytest.mark.parametrize("make_scheme", while_schemes(25))
def test_struct_in_a_while_condition(make_scheme):
    f = checkpoint_struct(make_scheme())(run_clock)
    y0 = onp.array([0.5, 1.5])
    clock = Clock(0.0, y0, 2.5)
    assert f(clock, 0.1) == pytest.approx(run_clock(Clock(0.0, y0, 2.5), 0.1), rel=RTOL)
    assert clock.t == pytest.approx(2.5) and f.stats.steps == 25
    d = grad(f)(Clock(0.0, y0, 2.5), 0.1)
    assert type(d) is Clock
    assert_close(d.y, grad(run_clock_functional, 1)(0.0, y0, 2.5, 0.1))


class Counter:
    def __init__(self, value):
        self.value = value


COUNTER = Counter(1.0)


def double_global(n):
    for i in range(n):
        COUNTER.value = COUNTER.value * 2.0
    return COUNTER.value


def test_struct_held_in_a_global_is_updated_in_place():
    f = checkpoint_struct(Revolve(2))(double_global)
    assert "_ckpt.struct_set(COUNTER" in f.generated_source
    COUNTER.value = 1.0
    assert f(5) == 32.0 and COUNTER.value == 32.0
    COUNTER.value = 1.0
    assert double_global(5) == 32.0


# -- what the caller sees -------------------------------------------------------------------------


def test_empty_range_leaves_everything_as_it_was():
    f = checkpoint_struct(Revolve(3))(sumheat)
    heat = initial_heat(tsteps=0)
    before = heat.Tnext
    assert f(heat, 0) == 20.0
    assert heat.Tnext is before
    d = grad(f)(initial_heat(), 0)
    assert_close(d.Tnext, onp.ones(100))


def test_value_and_grad_and_the_reported_stats():
    f = checkpoint_struct(Periodic(period=10), progress=True)(logistic_to)
    y0 = onp.array([0.2, 0.4])
    value, g = value_and_grad(f)(y0, 0.8, 2.0, 4.0, 0.1)
    assert value == pytest.approx(logistic_to(y0, 0.8, 2.0, 4.0, 0.1), rel=RTOL)
    assert_close(g, grad(logistic_to)(y0, 0.8, 2.0, 4.0, 0.1))
    assert f.stats.steps == 40 and f.stats.reverse_sweeps == 1


def advance_in_place(heat):
    nxt, last = heat.Tnext, heat.Tlast
    for i in range(1, heat.n - 1):
        nxt[i] = last[i] + heat.λ * (last[i - 1] - 2 * last[i] + last[i + 1])
    return nxt


def sumheat_in_place_helper(heat, tsteps):
    for i in range(tsteps):
        heat.Tlast = np.array(heat.Tnext)
        heat.Tnext = advance_in_place(heat)
    return np.sum(heat.Tnext)


def test_in_place_write_in_a_helper_is_explained():
    f = checkpoint_struct(Revolve(2))(sumheat_in_place_helper)
    with pytest.raises(CheckpointError, match="must be functional") as info:
        grad(f)(initial_heat(8, 0.3, 5), 5)
    assert "advance(heat)" in str(info.value)
    assert isinstance(info.value.__cause__, (TypeError, ValueError))


class Simulation:
    """A method whose object is the struct."""

    def __init__(self, u, nu):
        self.u = u
        self.nu = nu

    @checkpoint_struct(Revolve(3))
    def run(self, steps):
        for n in range(steps):
            self.u = self.u - self.nu * np.sin(self.u)
        return np.sum(self.u)


def test_decorated_method():
    u0 = onp.array([0.5, 1.0, 1.5])

    def loss(u, nu, method):
        sim = Simulation(u, nu)
        return method(sim, 30)

    def plain_run(sim, steps):
        for n in range(steps):
            sim.u = sim.u - sim.nu * np.sin(sim.u)
        return np.sum(sim.u)

    assert loss(u0, 0.1, Simulation.run) == pytest.approx(loss(u0, 0.1, plain_run), rel=RTOL)
    got = grad(loss, (0, 1))(u0, 0.1, Simulation.run)
    want = grad(loss, (0, 1))(u0, 0.1, plain_run)
    assert_close(got[0], want[0])
    assert float(got[1]) == pytest.approx(float(want[1]), rel=RTOL)


@pytest.mark.parametrize("scheme", [Revolve(2), Periodic(2), OnlineR2(2), StoreAll()], ids=repr)
def test_an_array_updated_in_place_is_not_the_checkpoint_the_reverse_sweep_restores(scheme):
    """The caller's array receives the final values after the loop (as in the plain loop); the
    checkpoint of the initial state must not be that same object, or the reverse sweep restores
    the final values in its place and the gradient with respect to ``lam`` is wrong."""

    def heat(u, lam, steps):
        n = len(u)
        for t in range(steps):
            old = np.array(u)
            for i in range(1, n - 1):
                u[i] = old[i] + lam * (old[i - 1] - 2 * old[i] + old[i + 1])
        return np.sum(u * u)

    def plain(u, lam, steps):
        for t in range(steps):
            u = np.concatenate([u[:1], u[1:-1] + lam * (u[:-2] - 2 * u[1:-1] + u[2:]), u[-1:]])
        return np.sum(u * u)

    decorated = checkpoint_struct(scheme, vectorize=False)(heat)
    u0 = onp.linspace(0.0, 1.0, 12) ** 2
    u = u0.copy()
    assert onp.allclose(decorated(u, 0.3, 7), plain(u0, 0.3, 7), rtol=1e-12)
    assert not onp.array_equal(u, u0)  # the final values are in the caller's array
    got = grad(decorated, 1)(u0.copy(), 0.3, 7)
    assert onp.allclose(got, grad(plain, 1)(u0, 0.3, 7), rtol=1e-12)
    hvp = grad(grad(decorated, 1), 1)(u0.copy(), 0.3, 7)
    assert onp.allclose(hvp, grad(grad(plain, 1), 1)(u0, 0.3, 7), rtol=1e-10)
