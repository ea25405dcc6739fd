"""Derivatives of every order through checkpointed loops, against autograd on the plain loop.

Second order: ``grad(grad)``, ``hessian`` (reverse over reverse), ``hessian_tensor_product``,
``jacobian(grad)`` and ``make_jvp(grad)`` (forward over reverse), for every scheme x both storages
x ``for``/``while`` x functional/decorator; third order once; dataclass states, parameters that
are and are not differentiated, ints riding along, ranges with a start and a step.
"""

# ruff: noqa: B007  (time-stepping loops often do not read their index, as users write them)

from __future__ import annotations

import dataclasses
import warnings

import autograd.numpy as np
import pytest
from autograd import grad as _grad
from autograd import hessian, jacobian, make_jvp
from autograd.differential_operators import hessian_tensor_product

from ckpt_transform import checkpoint_struct
from ckpt_transform.errors import CheckpointError
from ckpt_transform.runtime.driver import checkpointed_for, checkpointed_while
from ckpt_transform.schemes.actions import Store
from ckpt_transform.schemes.multilevel import Multilevel
from ckpt_transform.schemes.online_r2 import OnlineR2
from ckpt_transform.schemes.periodic import Periodic
from ckpt_transform.schemes.revolve import Revolve
from ckpt_transform.schemes.store_all import StoreAll
from ckpt_transform.storage.hdf5 import HDF5Storage

TOL = 1e-10


def grad(fun, argnum=0):
    """autograd's grad, quiet about outputs that do not depend on the input."""

    def g(*args):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Output seems independent of input.")
            return _grad(fun, argnum)(*args)

    return g


def assert_close(got, want, tol=TOL):
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert got.shape == want.shape
    scale = max(float(np.max(np.abs(want), initial=0.0)), 1e-300)
    err = float(np.max(np.abs(got - want), initial=0.0))
    assert err <= tol * scale, f"max error {err:.3e} > {tol:.0e} x {scale:.3e}\n{got}\n{want}"


def make_scheme(kind, storage, steps=None):
    if kind == "storeall":
        return StoreAll()
    if kind == "revolve":
        return Revolve(2, storage=storage, steps=steps)
    if kind == "periodic":
        return Periodic(period=3, storage=storage)
    return OnlineR2(2, storage=storage)


SCHEMES = ["storeall", "revolve", "periodic", "online"]


@pytest.fixture(params=["memory", "hdf5"])
def storage(request, tmp_path):
    return None if request.param == "memory" else HDF5Storage(tmp_path / "checkpoints.h5")


# -- a nonlinear step with a parameter and an int riding along -------------------------------------


def step(s, i, a):
    x, k = s
    return (np.sin(x) * a + 0.1 * x * x * np.cos(0.3 * i) + 0.05 * np.roll(x, 1), k + 1)


def loss(x):
    return np.sum(x**2) + np.prod(np.tanh(x))


def plain_for(x, a, steps=7):
    s = (x, 0)
    for i in range(steps):
        s = step(s, i, a)
    return loss(s[0])


def plain_while(x, a, steps=7):
    s = (x, 0)
    k = 0
    while s[1] < steps:
        s = step(s, k, a)
        k += 1
    return loss(s[0])


def functional(kind, storage, loop):
    def f(x, a):
        if loop == "for":
            s = checkpointed_for(step, (x, 0), 7, make_scheme(kind, storage), params=(a,))
        else:
            s = checkpointed_while(
                lambda s, a: s[1] < 7, step, (x, 0), make_scheme(kind, storage, 7), params=(a,)
            )
        assert s[1] == 7 and type(s[1]) is int
        return loss(s[0])

    return f


X = np.array([0.3, -0.5, 0.8])
A = 1.3
V = np.array([1.0, -2.0, 0.5])


def check_second_order(f, plain):
    """Every second-order operator of autograd, in x and in the parameter, against the oracle."""
    assert_close(grad(f)(X, A), grad(plain)(X, A))
    assert_close(hessian(f)(X, A), hessian(plain)(X, A))
    assert_close(hessian_tensor_product(f)(X, A, V), hessian_tensor_product(plain)(X, A, V))
    assert_close(jacobian(grad(f))(X, A), jacobian(grad(plain))(X, A))
    got, want = make_jvp(grad(f))(X, A)(V), make_jvp(grad(plain))(X, A)(V)
    assert_close(got[0], want[0])
    assert_close(got[1], want[1])
    assert_close(grad(grad(f, 1), 1)(X, A), grad(grad(plain, 1), 1)(X, A))
    assert_close(
        grad(lambda a, x: np.sum(grad(f)(x, a)))(A, X),
        grad(lambda a, x: np.sum(grad(plain)(x, a)))(A, X),
    )


@pytest.mark.slow
@pytest.mark.parametrize("kind", SCHEMES)
@pytest.mark.parametrize("loop", ["for", "while"])
def test_second_order_functional(kind, loop, storage):
    check_second_order(functional(kind, storage, loop), plain_for)


def test_while_oracle_is_the_for_loop():
    assert plain_while(X, A) == plain_for(X, A)


# -- the decorator ---------------------------------------------------------------------------------


def test_issue_reproducer_grad_grad_through_the_decorator():
    """x = x * x, 3 steps: d2/dx2 x**8 = 56 x**6 at 1.1 is 99.207..., not 0.0."""

    def f(x):
        for i in range(3):
            x = x * x
        return x

    for scheme in (StoreAll(), Revolve(1), Revolve(2), Periodic(period=2), OnlineR2(1)):
        g = checkpoint_struct(scheme)(f)
        assert grad(grad(g))(1.1) == pytest.approx(56 * 1.1**6, rel=1e-14)
        assert grad(grad(g))(1.1) == pytest.approx(grad(grad(f))(1.1), rel=1e-14)


def heat_body(T, lam, steps):
    for i in range(steps):
        interior = T[1:-1] + lam * (T[:-2] - 2.0 * T[1:-1] + T[2:]) + 0.01 * T[1:-1] ** 2
        T = np.concatenate([T[:1], interior, T[-1:]])
    return np.sum(T**3)


def heat_while(T, lam, steps):
    t = 0.0
    while t < steps - 0.5:
        interior = T[1:-1] + lam * (T[:-2] - 2.0 * T[1:-1] + T[2:]) + 0.01 * T[1:-1] ** 2
        T = np.concatenate([T[:1], interior, T[-1:]])
        t = t + 1.0
    return np.sum(T**3)


@pytest.mark.slow
@pytest.mark.parametrize("kind", SCHEMES)
@pytest.mark.parametrize("plain", [heat_body, heat_while], ids=["for", "while"])
def test_second_order_decorator(kind, plain, storage):
    f = checkpoint_struct(make_scheme(kind, storage, 9))(plain)
    T0, lam = np.linspace(0.0, 1.0, 6) ** 2, 0.3
    v = np.linspace(-1.0, 1.0, 6)
    assert_close(hessian(f)(T0, lam, 9), hessian(plain)(T0, lam, 9))
    assert_close(
        hessian_tensor_product(f)(T0, lam, 9, v), hessian_tensor_product(plain)(T0, lam, 9, v)
    )
    assert_close(make_jvp(grad(f))(T0, lam, 9)(v)[1], make_jvp(grad(plain))(T0, lam, 9)(v)[1])
    assert_close(grad(grad(f, 1), 1)(T0, lam, 9), grad(grad(plain, 1), 1)(T0, lam, 9))


# -- third order, dataclass states, ranges, params not differentiated ------------------------------


def test_third_order():
    f = functional("revolve", None, "for")

    def third(fun):
        return grad(lambda a: grad(lambda a: grad(lambda a: fun(X, a))(a))(a))

    assert_close(third(f)(A), third(plain_for)(A))
    assert_close(jacobian(hessian(f))(X, A), jacobian(hessian(plain_for))(X, A))


@dataclasses.dataclass
class Particle:
    q: np.ndarray
    p: np.ndarray
    label: str
    count: int


def leapfrog(s, i, dt, mass):
    p = s.p - 0.5 * dt * np.sin(s.q)
    q = s.q + dt * p / mass
    p = p - 0.5 * dt * np.sin(q)
    return Particle(q, p, s.label, s.count + 1)


@pytest.mark.parametrize("kind", SCHEMES)
def test_dataclass_state(kind, storage):
    def run(q0, dt, loop):
        s = loop(leapfrog, Particle(q0, 0.5 * q0, "pendulum", 0), dt)
        assert s.count == 8 and s.label == "pendulum"
        return np.sum(s.q**3 + s.p**2)

    def f(q0, dt):
        scheme = make_scheme(kind, storage)
        return run(q0, dt, lambda st, s0, dt: checkpointed_for(st, s0, 8, scheme, params=(dt, 2.0)))

    def plain(q0, dt):
        def loop(st, s, dt):
            for i in range(8):
                s = st(s, i, dt, 2.0)
            return s

        return run(q0, dt, loop)

    q0 = np.array([0.4, 1.1])
    assert_close(hessian(f)(q0, 0.1), hessian(plain)(q0, 0.1))
    assert_close(grad(grad(f, 1), 1)(q0, 0.1), grad(grad(plain, 1), 1)(q0, 0.1))


def test_range_with_start_and_step():
    def st(x, i, a):
        return np.sin(x * a) + 0.01 * i * x

    def f(x, a):
        return np.sum(checkpointed_for(st, x, range(3, 20, 4), Revolve(2), params=(a,)) ** 2)

    def g(x, a):
        return np.sum(checkpointed_for(st, x, 4, Revolve(2), params=(a,), start=5) ** 2)

    def plain(x, a, indices):
        for i in indices:
            x = st(x, i, a)
        return np.sum(x**2)

    x = np.array([0.2, 0.7])
    assert_close(hessian(f)(x, 0.9), hessian(lambda x, a: plain(x, a, range(3, 20, 4)))(x, 0.9))
    assert_close(hessian(g)(x, 0.9), hessian(lambda x, a: plain(x, a, range(5, 9)))(x, 0.9))


def test_parameter_not_differentiated_and_params_of_every_kind():
    mask = np.array([1.0, 0.0, 1.0])

    def st(x, i, a, m, n_inner, fn):
        for _ in range(n_inner):
            x = fn(x) * a * m + (1.0 - m) * x**2 * 0.5
        return x

    def f(x, a):
        out = checkpointed_for(st, x, 5, OnlineR2(2), params=(a, mask, 2, np.cos))
        return np.sum(out)

    def plain(x, a):
        for i in range(5):
            x = st(x, i, a, mask, 2, np.cos)
        return np.sum(x)

    x = np.array([0.1, 0.4, -0.3])
    assert_close(hessian(f)(x, 0.8), hessian(plain)(x, 0.8))
    assert_close(hessian(f, 1)(x, 0.8), hessian(plain, 1)(x, 0.8))


def test_second_order_stats_name_the_sweeps():
    box = {}

    def f(x, a):
        s, box["stats"] = checkpointed_for(
            step, (x, 0), 7, Revolve(2), params=(a,), return_stats=True
        )
        return loss(s[0])

    hessian_tensor_product(f)(X, A, V)
    stats = box["stats"]
    assert stats.sweep == "forward, reverse"
    assert [s.sweep for s in stats.second_order] == ["tangent, second-order adjoint"]
    lifted = stats.second_order[0]
    assert lifted.steps == 7 and lifted.max_snapshots <= 2 and lifted.max_taped_steps == 1
    assert stats.second_order_evaluations == lifted.evaluations > 7
    assert "second_order_evaluations" in str(stats)


def test_forward_over_forward_is_the_tangent_sweep():
    box = {}

    def f(x):
        s, box["stats"] = checkpointed_for(
            step, (x, 0), 7, Revolve(2), params=(A,), return_stats=True
        )
        return loss(s[0])

    got = make_jvp(f)(X)(V)
    want = make_jvp(lambda x: plain_for(x, A))(X)(V)
    assert_close(got[1], want[1])
    assert [s.sweep for s in box["stats"].second_order] == ["tangent"]


def test_progress_bars_name_the_second_order_sweeps(capsys):
    def f(x):
        s = checkpointed_for(step, (x, 0), 7, Revolve(2), params=(A,), progress=True)
        return loss(s[0])

    hessian_tensor_product(f)(X, V)
    err = capsys.readouterr().err
    assert "tangent" in err and "second-order adjoint" in err


def test_reverse_over_forward_with_a_file(tmp_path):
    """grad of make_jvp(f): the tangent sweep runs while the primal's file is open."""
    path = tmp_path / "checkpoints.h5"

    def f(x):
        scheme = Revolve(2, storage=HDF5Storage(path))
        return loss(checkpointed_for(step, (x, 0), 7, scheme, params=(A,))[0])

    def hvp(fun):
        return grad(lambda x: make_jvp(fun)(x)(V)[1])(X)

    assert_close(hvp(f), hvp(lambda x: plain_for(x, A)))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_forward_over_reverse_is_one_lifted_run():
    """make_jvp(grad(f)): the tangent sweep is G's taped run, whose x part is F's value; one
    reverse sweep of G gives the gradient and the Hessian-vector product, and neither F's own
    primal run nor its reverse sweep is made."""
    box = {}

    def f(x, a):
        s, box["stats"] = checkpointed_for(
            step, (x, 0), 7, Revolve(2), params=(a,), return_stats=True
        )
        return loss(s[0])

    got, want = make_jvp(grad(f))(X, A)(V), make_jvp(grad(plain_for))(X, A)(V)
    assert_close(got[0], want[0])
    assert_close(got[1], want[1])
    stats = box["stats"]
    assert stats.reverse_sweeps == 0 and stats.evaluations == 0 and stats.steps == 7
    assert [s.sweep for s in stats.second_order] == ["tangent, second-order adjoint"]
    assert stats.second_order[0].max_snapshots <= 2


@pytest.mark.parametrize("loop", ["for", "while"])
def test_forward_over_reverse_in_the_parameter_and_the_state(loop):
    """The one-run path with tangents on a parameter, and on the state and a parameter at once."""
    f = functional("revolve", None, loop)

    def both(fun):
        return make_jvp(lambda t: grad(fun)(X + t * V, A + 0.3 * t))(0.0)(1.0)

    for got, want in (
        (
            make_jvp(lambda a: grad(f, 1)(X, a))(A)(0.7),
            make_jvp(lambda a: grad(plain_for, 1)(X, a))(A)(0.7),
        ),
        (
            make_jvp(lambda a: grad(f)(X, a))(A)(0.7),
            make_jvp(lambda a: grad(plain_for)(X, a))(A)(0.7),
        ),
        (both(f), both(plain_for)),
    ):
        assert_close(got[0], want[0])
        assert_close(got[1], want[1])


def test_forward_over_reverse_pulled_back_twice():
    """make_jvp(jacobian(f)) pulls the loop back once per output: the first pull takes the
    one-run path, the next ones redo the primal run (its checkpoints were dropped)."""

    def f(x):
        return checkpointed_for(step, (x, 0), 7, Revolve(2), params=(A,))[0] ** 2

    def plain(x):
        s = (x, 0)
        for i in range(7):
            s = step(s, i, A)
        return s[0] ** 2

    got, want = make_jvp(jacobian(f))(X)(V), make_jvp(jacobian(plain))(X)(V)
    assert_close(got[0], want[0])
    assert_close(got[1], want[1])


def test_multilevel_second_order(tmp_path):
    """Multilevel with a memory and a disk level (files at given paths) to second order."""

    def scheme():
        return Multilevel(
            1,
            2,
            memory_storage=HDF5Storage(tmp_path / "memory.h5"),
            disk_storage=HDF5Storage(tmp_path / "disk.h5"),
            costs={"write": 2, "read": 1},
        )

    def f(x, a):
        return loss(checkpointed_for(step, (x, 0), 7, scheme(), params=(a,))[0])

    assert_close(hessian(f)(X, A), hessian(plain_for)(X, A))
    got, want = make_jvp(grad(f))(X, A)(V), make_jvp(grad(plain_for))(X, A)(V)
    assert_close(got[1], want[1])

    def hvp(fun):  # grad of make_jvp: the lifted loop runs while the primal's files are open
        return grad(lambda x: make_jvp(fun)(x, A)(V)[1])(X)

    assert_close(hvp(f), hvp(plain_for))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_multilevel_overlap_plan_second_order():
    """A plan of the overlap model (its own programme, `schemes.overlap`) to second order."""
    costs = {"write": 3, "read": 0.5, "backward": 2, "overlap": True}
    disk_stores = [
        a
        for a in Multilevel(1, 2, costs=costs).schedule(7)
        if isinstance(a, Store) and a.level == "disk"
    ]
    assert disk_stores  # the plan does use the disk level

    def f(x, a):
        return loss(
            checkpointed_for(step, (x, 0), 7, Multilevel(1, 2, costs=costs), params=(a,))[0]
        )

    assert_close(f(X, A), plain_for(X, A))
    assert_close(grad(f)(X, A), grad(plain_for)(X, A))
    assert_close(hessian(f)(X, A), hessian(plain_for)(X, A))
    got, want = make_jvp(grad(f))(X, A)(V), make_jvp(grad(plain_for))(X, A)(V)
    assert_close(got[1], want[1])


def test_multilevel_second_order_default_levels():
    """Multilevel with the driver's default storages and measured I/O costs, to second order."""

    def f(x, a):
        return loss(checkpointed_for(step, (x, 0), 7, Multilevel(1, 1), params=(a,))[0])

    assert_close(hessian(f)(X, A), hessian(plain_for)(X, A))
    got, want = make_jvp(grad(f))(X, A)(V), make_jvp(grad(plain_for))(X, A)(V)
    assert_close(got[1], want[1])


@dataclasses.dataclass
class Heat:
    Tnext: np.ndarray
    Tlast: np.ndarray
    n: int
    lam: float


def advance(heat):
    last = heat.Tlast
    interior = last[1:-1] + heat.lam * (last[:-2] - 2 * last[1:-1] + last[2:])
    return np.concatenate([last[:1], interior + 0.05 * last[1:-1] ** 2, last[-1:]])


def sumheat(heat, tsteps):
    for i in range(tsteps):
        heat.Tlast = heat.Tnext
        heat.Tnext = advance(heat)
    return np.sum(heat.Tnext**2)


def sumheat_functional(T0, lam, tsteps):
    """The same loop with the dataclass rebuilt each step: what autograd can differentiate."""
    heat = Heat(T0, T0 * 0.0, len(T0), lam)
    for i in range(tsteps):
        heat = Heat(heat.Tnext, heat.Tnext, heat.n, heat.lam)
        heat = Heat(advance(heat), heat.Tlast, heat.n, heat.lam)
    return np.sum(heat.Tnext**2)


@pytest.mark.parametrize("kind", SCHEMES)
def test_seed_heat_struct_through_the_decorator(kind):
    f = checkpoint_struct(make_scheme(kind, None))(sumheat)

    def via(T0, lam):
        return f(Heat(T0, T0 * 0.0, len(T0), lam), 9)

    T0 = np.linspace(0.0, 1.0, 6) ** 2
    assert_close(hessian(via)(T0, 0.3), hessian(sumheat_functional)(T0, 0.3, 9))
    assert_close(grad(grad(via, 1), 1)(T0, 0.3), grad(grad(sumheat_functional, 1), 1)(T0, 0.3, 9))
    assert f.stats.second_order and f.stats.second_order[0].steps == 9


@pytest.mark.parametrize("pairs", [1, 2, 3])
def test_second_order_snapshots_bound_the_pairs(pairs):
    """Revolve(second_order_snapshots=k): the lifted loop holds at most k (state, tangent)
    checkpoints; the Hessian-vector product (both ways) and the Hessian are unchanged."""
    box = {}

    def f(x, a):
        scheme = Revolve(4, second_order_snapshots=pairs)
        s, box["stats"] = checkpointed_for(step, (x, 0), 7, scheme, params=(a,), return_stats=True)
        return loss(s[0])

    got, want = make_jvp(grad(f))(X, A)(V), make_jvp(grad(plain_for))(X, A)(V)
    assert_close(got[0], want[0])
    assert_close(got[1], want[1])
    lifted = box["stats"].second_order
    assert len(lifted) == 1 and 1 <= lifted[0].max_snapshots <= pairs
    assert box["stats"].max_snapshots == 0  # F's own primal run is not made
    assert_close(hessian_tensor_product(f)(X, A, V), hessian_tensor_product(plain_for)(X, A, V))
    assert box["stats"].second_order[-1].max_snapshots <= pairs


@pytest.mark.parametrize("loop", ["for", "while"])
def test_third_order_through_a_hessian_vector_product_equals_the_plain_loop(loop):
    # make_jvp(grad(f)) with its direction (or its point) traced by an outer derivative: three
    # traces, which the fused forward-over-reverse run (plain values only) must leave to the
    # general path; value and derivatives against autograd on the undecorated loop.
    T = 5

    def step(x, i, a):
        return np.sin(x) * a + 0.1 * x**2

    def ours(x, a):
        if loop == "for":
            x = checkpointed_for(step, x, T, Revolve(2), params=(a,))
        else:
            x, _ = checkpointed_while(
                lambda s, a: s[1] < T,
                lambda s, i, a: (step(s[0], i, a), s[1] + 1),
                (x, 0),
                Revolve(2, steps=T),
                params=(a,),
            )
        return np.sum(x**3)

    def plain(x, a):
        for i in range(T):
            x = step(x, i, a)
        return np.sum(x**3)

    X, A = np.array([0.3, -0.7, 1.1]), 0.8
    V, W = np.array([1.0, 0.5, -0.25]), np.array([0.2, -1.0, 0.4])
    for f in (ours, plain):
        assert np.isfinite(f(X, A))
    assert_close(ours(X, A), plain(X, A))

    def hvp_dot(f):
        return lambda v, x: np.sum(make_jvp(grad(f))(x, A)(v)[1] * W)

    for argnum in (0, 1):  # derivative in the direction, then in the point
        assert_close(grad(hvp_dot(ours), argnum)(V, X), grad(hvp_dot(plain), argnum)(V, X))
    assert_close(hvp_dot(ours)(V, X), hvp_dot(plain)(V, X))


@pytest.mark.parametrize("kind", ["revolve", "storeall"])
@pytest.mark.parametrize("loop", ["for", "while"])
def test_forward_over_reverse_of_a_bare_array_state(kind, loop):
    """The lifted step's one-leaf path (a bare array, constant parameters) through operations
    with direct forward rules (add, subtract, multiply, divide, negative, roll, slices, sum)
    and through ones without (sin, a broadcast scalar): value, gradient and Hessian-vector
    product against autograd on the plain loop."""
    W = np.array([0.7, 1.1, 0.9])

    def step(x, i, w):
        y = x + 0.3 * w * (np.roll(x, 1) - 2 * x + np.roll(x, -1)) - x * x / (3.0 + W)
        return y - 0.01 * (-np.sin(x)) * np.sum(x[1:] * x[:-1]) + 0.001 * i

    T = 6

    def f(x):
        if loop == "for":
            x = checkpointed_for(step, x, T, make_scheme(kind, None), params=(W,))
        else:
            x, _ = checkpointed_while(
                lambda s, w: s[1] < T,
                lambda s, i, w: (step(s[0], i, w), s[1] + 1),
                (x, 0),
                make_scheme(kind, None, T),
                params=(W,),
            )
        return np.sum(x**2) + np.prod(np.tanh(x))

    def plain(x):
        for i in range(T):
            x = step(x, i, W)
        return np.sum(x**2) + np.prod(np.tanh(x))

    assert_close(f(X), plain(X))
    assert_close(grad(f)(X), grad(plain)(X))
    got, want = make_jvp(grad(f))(X)(V), make_jvp(grad(plain))(X)(V)
    assert_close(got[0], want[0])
    assert_close(got[1], want[1])


@pytest.mark.parametrize("at", [2, 6])
def test_forward_over_reverse_refuses_a_step_that_changes_the_state(at):
    """The lifted loop runs passive stretches in one forward trace (and F's own primal run is
    not made): a step that changes the state's structure is still named, within a stretch
    (index 2) or at its end (index 6, the last step)."""

    def step(x, i):
        return (x, x) if i == at else np.sin(x)

    def f(x):
        return np.sum(checkpointed_for(step, x, 7, Revolve(2)) ** 2)

    with pytest.raises(CheckpointError, match=f"structure of the loop state at index {at}"):
        make_jvp(grad(f))(X)(V)


def test_a_step_object_with_its_own_advance_method_is_only_called():
    """The driver runs a stretch of the lifted loop through the lifted step's ``advance``; a
    user's step that happens to have a method of that name is called step by step as usual."""

    class Stepper:
        def __call__(self, x, i):
            return np.sin(x) * 1.1 + 0.01 * i

        def advance(self, *args):
            raise AssertionError("the driver called the user's advance")

    def f(x):
        return np.sum(checkpointed_for(Stepper(), x, 7, Revolve(2)) ** 2)

    def plain(x):
        for i in range(7):
            x = Stepper()(x, i)
        return np.sum(x**2)

    assert_close(grad(f)(X), grad(plain)(X))
    got, want = make_jvp(grad(f))(X)(V), make_jvp(grad(plain))(X)(V)
    assert_close(got[0], want[0])
    assert_close(got[1], want[1])
