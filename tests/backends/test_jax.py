"""The JAX backend against ``jax.grad`` of the plain loop, and its counts against autograd's."""

from __future__ import annotations

import dataclasses

import autograd.numpy as anp
import jax
import numpy as onp
import pytest
from autograd import grad as agrad

from ckpt_transform import (
    CheckpointError,
    OnlineR2,
    Periodic,
    Revolve,
    StoreAll,
    checkpointed_for,
    checkpointed_while,
)
from ckpt_transform.schemes.cost import revolve_evaluations

jnp = jax.numpy
jax.config.update("jax_enable_x64", True)

TOL = 1e-12
FOR_SCHEMES = [
    Revolve(1),
    Revolve(3),
    Revolve(5),
    Periodic(3),
    Periodic(period=4),
    OnlineR2(3),
    OnlineR2(6),
    StoreAll(),
]
WHILE_SCHEMES = [OnlineR2(2), OnlineR2(4), Periodic(period=3)]


def step(state, i, a, b):
    """A nonlinear step on a pytree: a dict holding an array, a tuple and an int counter."""
    x, (y, z) = state["x"], state["yz"]
    x = x + 0.05 * jnp.sin(a * x + jnp.roll(x, 1)) * (1.0 + 0.01 * i) + b * y
    y = 0.9 * y + 0.02 * jnp.cos(jnp.sum(x) * z)
    z = z - 0.01 * jnp.tanh(z * a)
    return {"x": x, "yz": (y, z), "n": state["n"] + 1}


def state0(x, y, z):
    return {"x": x, "yz": (y, z), "n": jnp.asarray(0)}


def loss(state):
    return jnp.sum(state["x"] ** 2) + jnp.sin(state["yz"][0]) * state["yz"][1]


def plain_for(x, y, z, a, b, steps):
    s = state0(x, y, z)
    for i in steps:
        s = step(s, i, a, b)
    return loss(s), s["n"]


X, Y, Z = jnp.linspace(0.1, 1.0, 6), jnp.asarray(0.3), jnp.asarray(1.2)
A, B = jnp.asarray(0.7), jnp.asarray(0.2)


def rows_program(monkeypatch, scheme, schemes, jit):
    """Run the straight-line row program (`_SWITCH_BYTES` 0) for every other scheme under jit;
    the small states here otherwise run their rows as a `lax.switch`: both are checked."""
    from ckpt_transform.backends import jax as jax_backend

    if jit and schemes.index(scheme) % 2 == 0:
        monkeypatch.setattr(jax_backend, "_SWITCH_BYTES", 0)


def assert_close(got, want):
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        assert onp.allclose(onp.asarray(g), onp.asarray(w), rtol=TOL, atol=TOL), (g, w)


# Eager runs walk the same tables through the same executor as jitted ones (only dispatch
# differs), so three schemes of different kinds stand for all of them there.
EAGER_SCHEMES = [Revolve(3), Periodic(period=4), OnlineR2(3)]
FOR_CASES = [
    *(pytest.param(s, range(3, 40, 3), True, id=f"{s!r}-jit") for s in FOR_SCHEMES),
    *(
        pytest.param(s, range(13), False, id=f"{s!r}-eager", marks=pytest.mark.slow)
        for s in EAGER_SCHEMES
    ),
]


@pytest.mark.parametrize(("scheme", "steps", "jit"), FOR_CASES)
def test_for_loop_value_and_gradient_equal_the_plain_loop(scheme, steps, jit, monkeypatch):
    rows_program(monkeypatch, scheme, FOR_SCHEMES, jit)

    def f(x, y, z, a, b):
        out = checkpointed_for(step, state0(x, y, z), steps, scheme, params=(a, b))
        return loss(out), out["n"]

    vg = jax.value_and_grad(f, argnums=(0, 1, 2, 3, 4), has_aux=True)
    if jit:
        vg = jax.jit(vg)
    (value, n), grads = vg(X, Y, Z, A, B)
    oracle = jax.value_and_grad(plain_for, argnums=(0, 1, 2, 3, 4), has_aux=True)
    (value0, n0), grads0 = oracle(X, Y, Z, A, B, steps)
    assert int(n) == int(n0) == len(steps)
    assert_close(value, value0)
    assert_close(grads, grads0)


@pytest.mark.parametrize("scheme", [Revolve(3), Periodic(3), StoreAll()], ids=repr)
def test_vjp_and_undifferentiated_call(scheme):
    def run(x, a):
        return checkpointed_for(step, state0(x, Y, Z), 11, scheme, params=(a, B))["x"]

    def plain(x, a):
        s = state0(x, Y, Z)
        for i in range(11):
            s = step(s, i, a, B)
        return s["x"]

    out, pull = jax.vjp(run, X, A)
    out0, pull0 = jax.vjp(plain, X, A)
    ct = jnp.linspace(-1.0, 2.0, X.size)
    assert_close(out, out0)
    assert_close(pull(ct), pull0(ct))
    assert_close(jax.jit(run)(X, A), out0)


def cond(state, a, b):
    return state["yz"][1] > 0.9


def plain_while(x, y, z, a, b):
    s = state0(x, y, z)
    i = 0
    while cond(s, a, b):
        s = step(s, i, a, b)
        i += 1
    return loss(s), s["n"]


@pytest.mark.parametrize(
    "jit", [pytest.param(False, marks=pytest.mark.slow), True], ids=["eager", "jit"]
)
@pytest.mark.parametrize("scheme", WHILE_SCHEMES, ids=repr)
def test_while_loop_value_and_gradient_equal_the_plain_loop(scheme, jit, monkeypatch):
    rows_program(monkeypatch, scheme, WHILE_SCHEMES, jit)

    def f(x, y, z, a, b):
        out = checkpointed_while(cond, step, state0(x, y, z), scheme, params=(a, b), max_steps=200)
        return loss(out), out["n"]

    vg = jax.value_and_grad(f, argnums=(0, 1, 2, 3, 4), has_aux=True)
    if jit:
        vg = jax.jit(vg)
    (value, n), grads = vg(X, Y, Z, A, B)
    (value0, n0), grads0 = jax.value_and_grad(plain_while, argnums=(0, 1, 2, 3, 4), has_aux=True)(
        X, Y, Z, A, B
    )
    assert int(n) == int(n0) > 20
    assert_close(value, value0)
    assert_close(grads, grads0)


def test_one_step_loop_and_empty_loop():
    for steps in (1, 0):
        f = jax.grad(
            lambda x, a, steps=steps: loss(
                checkpointed_for(step, state0(x, Y, Z), steps, Revolve(2), params=(a, B))
            ),
            (0, 1),
        )
        g0 = jax.grad(lambda x, a, steps=steps: plain_for(x, Y, Z, a, B, range(steps))[0], (0, 1))(
            X, A
        )
        assert_close(f(X, A), g0)


def test_values_read_from_a_closure_get_their_gradient():
    def run(x, c):
        return checkpointed_for(lambda s, i: s * c + x, x, 6, Revolve(2))

    def plain(x, c):
        s = x
        for _ in range(6):
            s = s * c + x
        return s

    args = (jnp.asarray(0.3), jnp.asarray(1.1))
    assert_close(jax.jit(jax.grad(run, (0, 1)))(*args), jax.grad(plain, (0, 1))(*args))


def test_while_loop_stops_at_max_steps():
    out = checkpointed_while(
        lambda s: True, lambda s, i: s + 1.0, jnp.asarray(0.0), OnlineR2(2), max_steps=7
    )
    assert float(out) == 7.0
    g = jax.grad(
        lambda x: checkpointed_while(
            lambda s: True, lambda s, i: s * x, jnp.asarray(1.0), OnlineR2(2), max_steps=7
        )
    )(jnp.asarray(1.5))
    assert onp.isclose(float(g), 7 * 1.5**6, rtol=TOL)


# -- counts: the same evaluations as the autograd backend ----------------------------------------


def np_step(x, i, a):
    return x + 0.05 * anp.sin(a * x + 0.1 * i)


def jax_step(x, i, a):
    return x + 0.05 * jnp.sin(a * x + 0.1 * i)


def counts(stats):
    return (stats.steps, stats.forward_steps, stats.recorded_steps, stats.max_snapshots)


def jax_stats(run, *args):
    box = {}

    def f(*xs):
        out, box["stats"] = run(*xs)
        return jnp.sum(jax.tree_util.tree_leaves(out)[0])

    jax.jit(jax.grad(f))(*args)
    jax.effects_barrier()  # the counts arrive with the program's callbacks
    return box["stats"]


@pytest.mark.parametrize("steps", [1, 30])
@pytest.mark.parametrize("scheme", FOR_SCHEMES, ids=repr)
def test_for_loop_evaluations_equal_the_autograd_backend(scheme, steps):
    box = {}

    def f(x):
        out, box["stats"] = checkpointed_for(
            np_step, x, steps, scheme, params=(0.7,), return_stats=True
        )
        return anp.sum(out)

    agrad(f)(onp.linspace(0.0, 1.0, 4))
    ours = jax_stats(
        lambda x: checkpointed_for(
            jax_step, x, steps, scheme, params=(jnp.asarray(0.7),), return_stats=True
        ),
        jnp.linspace(0.0, 1.0, 4),
    )
    assert counts(ours) == counts(box["stats"])
    assert ours.reverse_sweeps == 1
    if isinstance(scheme, Revolve):  # the proven minimum P(T, s) + T, or one more
        best = revolve_evaluations(steps, scheme.snapshots)
        assert ours.evaluations in (best, best + 1)


@pytest.mark.parametrize("scheme", [OnlineR2(2), OnlineR2(3), Periodic(period=4)], ids=repr)
def test_while_loop_evaluations_equal_the_autograd_backend(scheme):
    box = {}

    def f(x):
        out, box["stats"] = checkpointed_while(
            lambda s: s[1] < 5.0,
            lambda s, i: (np_step(s[0], i, 0.7), s[1] + 0.1),
            (x, 0.0),
            scheme,
            return_stats=True,
        )
        return anp.sum(out[0])

    agrad(f)(onp.linspace(0.0, 1.0, 4))
    ours = jax_stats(
        lambda x: checkpointed_while(
            lambda s: s[1] < 5.0,
            lambda s, i: (jax_step(s[0], i, 0.7), s[1] + 0.1),
            (x, jnp.asarray(0.0)),
            scheme,
            max_steps=100,
            return_stats=True,
        ),
        jnp.linspace(0.0, 1.0, 4),
    )
    assert counts(ours) == counts(box["stats"])
    assert ours.steps > 40 and ours.differentiated


# -- states and dispatch -------------------------------------------------------------------------


@dataclasses.dataclass
class Rod:
    T: object
    lam: object


def test_dataclass_state_is_opened_without_registration():
    def run(t, lam):
        rod = checkpointed_for(
            lambda r, i: Rod(r.T + r.lam * jnp.roll(r.T, 1), r.lam * 0.99),
            Rod(t, lam),
            9,
            Revolve(2),
        )
        return jnp.sum(rod.T**2) * rod.lam

    def plain(t, lam):
        rod = Rod(t, lam)
        for _ in range(9):
            rod = Rod(rod.T + rod.lam * jnp.roll(rod.T, 1), rod.lam * 0.99)
        return jnp.sum(rod.T**2) * rod.lam

    args = (jnp.linspace(0.0, 1.0, 5), jnp.asarray(0.1))
    assert_close(jax.grad(run, (0, 1))(*args), jax.grad(plain, (0, 1))(*args))


def test_backend_is_picked_from_the_state_or_asked_for():
    out = checkpointed_for(lambda x, i: x * 2.0, onp.ones(2), 3, Revolve(2), backend="jax")
    assert isinstance(out, jax.Array) and onp.allclose(out, 8.0)
    out = checkpointed_for(lambda x, i: x * 2.0, onp.ones(2), 3, Revolve(2))
    assert isinstance(out, onp.ndarray)
    out = checkpointed_for(lambda x, i, a: x * a, onp.ones(2), 3, Revolve(2), params=(A,))
    assert isinstance(out, jax.Array)  # a jax parameter picks JAX too
    with pytest.raises(ValueError, match="backend must be"):
        checkpointed_for(lambda x, i: x, X, 3, Revolve(2), backend="torch")


def test_errors_say_what_was_wrong():
    with pytest.raises(CheckpointError, match="structure"):
        checkpointed_for(lambda x, i: (x, x), X, 3, Revolve(2))
    with pytest.raises(CheckpointError, match="shape"):
        checkpointed_for(lambda x, i: jnp.concatenate([x, x]), X, 3, Revolve(2))
    with pytest.raises(TypeError, match="max_steps"):
        checkpointed_while(lambda x: True, lambda x, i: x, X, OnlineR2(2))
    with pytest.raises(CheckpointError, match="OnlineR2"):
        checkpointed_while(lambda x: True, lambda x, i: x, X, StoreAll(), max_steps=5)
    with pytest.raises(CheckpointError, match="boolean scalar"):
        checkpointed_while(lambda x: x, lambda x, i: x, X, OnlineR2(2), max_steps=5)
    with pytest.raises(CheckpointError, match="Revolve"):
        checkpointed_for(lambda x, i: x, X, 5, Revolve(2, steps=4))
    with pytest.raises(CheckpointError, match="params"):
        checkpointed_for(lambda s, i: s, (X, "label"), 3, Revolve(2))


def test_jit_grad_of_a_for_loop_is_one_program_without_host_calls():
    def f(x, a):
        return loss(checkpointed_for(step, state0(x, Y, Z), 40, Revolve(3), params=(a, B)))

    text = jax.jit(jax.grad(f, (0, 1))).lower(X, A).as_text()
    assert "callback" not in text.lower()  # the schedule is data inside the program
    assert text.count("stablehlo.while") >= 2  # the forward and reverse executors
    # a while loop calls the host once, for the reverse table of the length it reached
    g = jax.jit(
        jax.grad(
            lambda x: loss(
                checkpointed_while(
                    cond, step, state0(x, Y, Z), OnlineR2(3), params=(A, B), max_steps=100
                )
            )
        )
    )
    assert "callback" in g.lower(X).as_text().lower()


def test_device_memory_is_the_checkpoints_but_the_input_plus_two_states():
    """jit(grad) of Revolve(4) holds 3 buffer slots (state 0 is the input), the current state,
    one temporary for a step or its VJP, and the adjoint (the output): 6 states in all."""
    n = 20_000

    def step(x, i):
        return x + 0.5 * (1.0 - 0.5 * x**2) * (jnp.roll(x, 1) - 2 * x)

    def f(x):
        return jnp.sum(checkpointed_for(step, x, 30, Revolve(4)))

    def plain(x):
        for i in range(30):
            x = step(x, i)
        return jnp.sum(x)

    x = jnp.linspace(0.0, 1.0, n)
    compiled = jax.jit(jax.grad(f)).lower(x).compile()
    mem = compiled.memory_analysis()
    states = (mem.temp_size_in_bytes + mem.output_size_in_bytes) / (8 * n)
    assert 5.9 < states < 6.1, states
    oracle = jax.grad(plain)(x)
    assert_close(compiled(x), oracle)


# -- forward mode and second order ---------------------------------------------------------------


def small_step(x, i, a):
    return x + 0.1 * jnp.sin(a * x + jnp.roll(x, 1)) * (1.0 + 0.01 * i)


def small_cond(x, a):
    return jnp.sum(x) < 3.0


def small_loss(run, x, a):
    return jnp.sum(run(x, a) ** 2)


def for_run(x, a):
    return checkpointed_for(small_step, x, 9, Revolve(2), params=(a,))


def for_plain(x, a):
    for i in range(9):
        x = small_step(x, i, a)
    return x


def while_run(x, a):
    return checkpointed_while(small_cond, small_step, x, OnlineR2(2), params=(a,), max_steps=50)


def while_plain(x, a):
    i = 0
    while small_cond(x, a):
        x, i = small_step(x, i, a), i + 1
    return x


@pytest.mark.parametrize(
    ("run", "plain"), [(for_run, for_plain), (while_run, while_plain)], ids=["for", "while"]
)
def test_forward_mode_and_hessian_vector_products_equal_the_plain_loop(run, plain):
    x, a = jnp.linspace(0.1, 0.5, 4), jnp.asarray(0.7)
    tangents = (jnp.linspace(-1.0, 1.0, 4), jnp.asarray(0.5))
    out, tan = jax.jit(lambda p, t: jax.jvp(run, p, t))((x, a), tangents)
    out0, tan0 = jax.jvp(plain, (x, a), tangents)
    assert_close((out, tan), (out0, tan0))
    assert_close(jax.jit(jax.jacfwd(run, (0, 1)))(x, a), jax.jacfwd(plain, (0, 1))(x, a))

    def hvp(run):  # forward over reverse, as jax.hessian (the Hessian of 5 of these) does
        return jax.jvp(jax.grad(lambda x, a: small_loss(run, x, a), (0, 1)), (x, a), tangents)

    assert_close(jax.jit(hvp, static_argnums=0)(run), hvp(plain))


def test_a_plan_reusing_the_input_slot_for_another_state_is_refused():
    # The compiled program keeps the loop's input in its pinned slot: a store of another state
    # there, and a restore of one from it, would read the input instead (a wrong derivative).
    from ckpt_transform.backends.jax import _Table
    from ckpt_transform.schemes.actions import Restore, Store

    _Table({}, 0).add([Store(n=0, slot=0), Restore(n=0, slot=0)])  # the input itself: fine
    for bad in ([Store(n=5, slot=0)], [Restore(n=5, slot=0)]):
        with pytest.raises(CheckpointError, match="keeps for the loop's input"):
            _Table({}, 0).add(bad)
