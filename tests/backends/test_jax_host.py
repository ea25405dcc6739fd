"""The JAX backend with its checkpoints on the host (ArrayStorage) or in a file (HDF5Storage),
against ``jax.grad`` of the plain loop."""

from __future__ import annotations

import os

import jax
import numpy as onp
import pytest

from ckpt_transform import (
    ArrayStorage,
    CheckpointError,
    HDF5Storage,
    Multilevel,
    OnlineR2,
    Periodic,
    Revolve,
    StoreAll,
    checkpointed_for,
    checkpointed_while,
)
from ckpt_transform.storage.memory import ArraySession

jnp = jax.numpy
jax.config.update("jax_enable_x64", True)
TOL = 1e-12


class Counting(ArrayStorage):
    """Host memory that counts the checkpoints put and got, and the sessions left open."""

    def __init__(self) -> None:
        super().__init__()
        self.puts, self.gets, self.sessions = 0, 0, []

    def session(self) -> ArraySession:
        storage = self

        class Session(ArraySession):
            def put(self, slot, step, leaves, structure):
                assert all(isinstance(x, onp.ndarray) for x in leaves)  # on the host
                storage.puts += 1
                return super().put(slot, step, leaves, structure)

            def get(self, slot):
                storage.gets += 1
                return super().get(slot)

        self.sessions.append(Session())
        return self.sessions[-1]

    @property
    def open(self) -> int:
        return sum(not s.closed for s in self.sessions)


def step(state, i, a):
    """A nonlinear step on a pytree: a dict of an array, a scalar and an int counter."""
    x, y = state["x"], state["y"]
    x = x + 0.1 * jnp.sin(a * x + jnp.roll(x, 1)) * (1.0 + 0.01 * i) + 0.05 * y
    return {"x": x, "y": 0.9 * y + 0.02 * jnp.cos(jnp.sum(x)), "n": state["n"] + 1}


def state0(x):
    return {"x": x, "y": jnp.asarray(0.3), "n": jnp.asarray(0)}


def loss(state):
    return jnp.sum(state["x"] ** 2) + jnp.sin(state["y"])


def plain(x, a, T):
    s = state0(x)
    for i in range(T):
        s = step(s, i, a)
    return loss(s)


X, A = jnp.linspace(0.1, 1.0, 5), jnp.asarray(0.7)


def assert_close(got, want):
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        assert onp.allclose(onp.asarray(g), onp.asarray(w), rtol=TOL, atol=TOL), (g, w)


SCHEMES = {
    "Revolve": lambda s: Revolve(3, storage=s),
    "Periodic": lambda s: Periodic(3, storage=s),
    "StoreAll": lambda s: StoreAll(storage=s),  # holds no checkpoints: no session is opened
    "Multilevel": lambda s: Multilevel(2, 2, memory_storage=s, disk_storage=HDF5Storage()),
}
EAGER = pytest.mark.slow


@pytest.mark.parametrize(
    ("name", "where", "jit"),
    [
        pytest.param("Revolve", "hdf5", False, marks=EAGER),  # eager host memory: the vjp test
        ("Revolve", "memory", True),
        ("Revolve", "hdf5", True),
        ("Periodic", "hdf5", True),
        ("StoreAll", "memory", True),
        ("Multilevel", "memory", True),
    ],
)
def test_host_checkpoints_equal_the_plain_loop(name, where, jit, tmp_path):
    path = tmp_path / "ckpt.h5"
    counted = Counting()
    scheme = SCHEMES[name](counted if where == "memory" else HDF5Storage(path))

    def f(x, a):
        return loss(checkpointed_for(step, state0(x), 13, scheme, params=(a,)))

    vg = jax.value_and_grad(f, (0, 1))
    value, grads = (jax.jit(vg) if jit else vg)(X, A)
    value0, grads0 = jax.value_and_grad(plain, (0, 1))(X, A, 13)
    assert_close((value, grads), (value0, grads0))
    assert not path.exists()  # the run's file is gone once its reverse sweep ended
    assert os.listdir(tmp_path) == []
    assert counted.open == 0  # every session the run opened is closed
    if where == "memory" and name != "StoreAll":  # the checkpoints went through the host
        assert counted.puts >= 1 and counted.gets >= counted.puts
        assert len(counted.sessions) == 1


def test_vjp_pullback_and_a_second_pullback_is_refused():
    counted = Counting()

    def run(x):
        return checkpointed_for(step, state0(x), 11, Revolve(2, storage=counted), params=(A,))

    out, pull = jax.vjp(lambda x: loss(run(x)), X)
    assert counted.open == 1  # the forward sweep's checkpoints wait for the pullback
    (g,) = pull(jnp.asarray(1.0))
    assert_close((out, g), jax.value_and_grad(plain)(X, A, 11))
    assert counted.open == 0
    with pytest.raises(Exception, match="checkpoints of this run are gone"):
        pull(jnp.asarray(1.0))


def test_while_loop_with_host_checkpoints(tmp_path):
    path = tmp_path / "w.h5"

    def f(x, a):
        out = checkpointed_while(
            lambda s, a: s["n"] < 17,
            step,
            state0(x),
            OnlineR2(3, storage=HDF5Storage(path)),
            params=(a,),
            max_steps=40,
        )
        return loss(out)

    g = jax.jit(jax.grad(f, (0, 1)))(X, A)
    assert_close(g, jax.grad(plain, (0, 1))(X, A, 17))
    assert not path.exists()


def test_multilevel_while_loop_is_refused_with_what_works():
    with pytest.raises(CheckpointError, match=r"one-level scheme.*OnlineR2"):
        checkpointed_while(
            lambda s: s < 2.0, lambda s, i: s * 1.1, X, Multilevel(1, 1), max_steps=5
        )


def test_vmap_jacrev_and_hessian_are_refused_with_what_works():
    counted = Counting()

    def f(x):
        return checkpointed_for(
            lambda s, i: s + 0.1 * jnp.sin(s), x, 5, Revolve(2, storage=counted)
        )

    x = jnp.linspace(0.0, 1.0, 3)
    with pytest.raises(CheckpointError, match=r"not through jax\.vmap.*drop the storage"):
        jax.jacrev(f)(x)
    with pytest.raises(CheckpointError, match=r"not through jax\.jvp / jax\.hessian"):
        jax.hessian(lambda x: jnp.sum(f(x) ** 2))(x)
    assert counted.open == 0  # the forward sweep jax.jacrev ran has released its checkpoints


FAIL_AT = [5]


def boom(i):
    if int(i) == FAIL_AT[0]:
        raise ValueError(f"step {int(i)} failed")


def failing_step(x, i):
    jax.debug.callback(boom, i)
    return x * 1.1 + 0.01 * jnp.sin(x)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_hdf5_file_removed_after_an_error_in_a_step(jit):
    storage = HDF5Storage()  # a temporary file per run, named in storage.last_path
    scheme = Revolve(2, storage=storage)

    def f(x):
        return jnp.sum(checkpointed_for(failing_step, x, 9, scheme) ** 2)

    g = jax.jit(jax.grad(f)) if jit else jax.grad(f)
    FAIL_AT[0] = 5
    with pytest.raises(Exception, match="step 5 failed"):
        g(X)
    failed = storage.last_path
    assert failed is not None
    if jit:  # the compiled program stopped where its host could not see: its next run cleans
        assert os.path.exists(failed)
        FAIL_AT[0] = -1
        g(X)
        assert storage.last_path != failed and not os.path.exists(storage.last_path)
    assert not os.path.exists(failed)


def test_device_memory_without_the_checkpoints():
    """jit(grad) of Revolve(4) with host checkpoints holds no checkpoint buffer on the device:
    three states fewer than with the device buffer (whose slots hold three of them)."""
    n = 20_000

    def heat(x, i):
        return x + 0.5 * (1.0 - 0.5 * x**2) * (jnp.roll(x, 1) - 2 * x)

    def states(scheme):
        def f(x):
            return jnp.sum(checkpointed_for(heat, x, 30, scheme))

        compiled = jax.jit(jax.grad(f)).lower(x).compile()
        mem = compiled.memory_analysis()
        return (mem.temp_size_in_bytes + mem.output_size_in_bytes) / (8 * n), compiled

    x = jnp.linspace(0.0, 1.0, n)
    device, _ = states(Revolve(4))
    host, compiled = states(Revolve(4, storage=ArrayStorage()))
    assert host < device - 2.9, (host, device)

    def plain(x):
        for i in range(30):
            x = heat(x, i)
        return jnp.sum(x)

    assert_close(compiled(x), jax.grad(plain)(x))
