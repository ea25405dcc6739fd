"""``@checkpoint_struct`` on a function written with jax.numpy: JAX code, golden-tested, and its
gradients against ``jax.grad`` of the undecorated function."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as onp
import pytest

from ckpt_transform import OnlineR2, Revolve, checkpoint_struct

jnp = jax.numpy
jax.config.update("jax_enable_x64", True)

GOLDEN = Path(__file__).resolve().parent / "golden_jax_heat.txt"


def heat_jax(T0, lam, tsteps):
    n = T0.shape[0]
    nxt = jnp.array(T0)
    last = jnp.array(T0)
    for t in range(tsteps):
        last = jnp.array(nxt)
        for i in range(1, n - 1):
            nxt[i] = last[i] + lam * (last[i - 1] - 2 * last[i] + last[i + 1])
        nxt[0] += 0.0 * t
    return jnp.sum(nxt**2)


def decay_while(x, k):
    t = 0.0
    while t < 1.0:
        x = x - 0.1 * k * x
        x[0] = x[0] + 0.01
        t = t + 0.1
    return jnp.sum(x)


def plain_heat(T0, lam, tsteps):
    n = T0.shape[0]
    nxt = jnp.array(T0)
    for t in range(tsteps):
        last = jnp.array(nxt)
        interior = last[1:-1] + lam * (last[:-2] - 2 * last[1:-1] + last[2:])
        nxt = nxt.at[1 : n - 1].set(interior)
        nxt = nxt.at[0].add(0.0 * t)
    return jnp.sum(nxt**2)


def test_generated_source_is_jax_code_matching_the_golden_file():
    f = checkpoint_struct(Revolve(4))(heat_jax)
    text = f.generated_source.replace(Path(__file__).name, "test_jax_decorator.py")
    assert "nxt = nxt.at[i].set(" in text and "_ckpt.setitem" not in text
    if os.environ.get("CKPT_REGENERATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_decorated_jax_function_value_and_gradient_equal_the_plain_function(jit):
    f = checkpoint_struct(Revolve(3))(heat_jax)
    T0 = jnp.sin(jnp.linspace(0.0, 3.0, 7)) ** 2
    vg = jax.value_and_grad(lambda t, lam: f(t, lam, 12), argnums=(0, 1))
    if jit:
        vg = jax.jit(vg)
    value, grads = vg(T0, jnp.asarray(0.3))
    value0, grads0 = jax.value_and_grad(lambda t, lam: plain_heat(t, lam, 12), argnums=(0, 1))(
        T0, jnp.asarray(0.3)
    )
    assert onp.allclose(value, value0, rtol=1e-12, atol=1e-12)
    for g, g0 in zip(grads, grads0):
        assert onp.allclose(g, g0, rtol=1e-12, atol=1e-12)
    assert f.stats.steps == 12


def plain_decay(x, k):
    t = 0.0
    while t < 1.0:
        x = x - 0.1 * k * x
        x = x.at[0].set(x[0] + 0.01)
        t = t + 0.1
    return jnp.sum(x)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_decorated_jax_while_loop_with_max_steps_equals_the_plain_function(jit):
    f = checkpoint_struct(OnlineR2(2), max_steps=50)(decay_while)
    assert "x = x.at[0].set(x[0] + 0.01)" in f.generated_source
    assert "max_steps=50" in f.generated_source
    vg = jax.value_and_grad(f, argnums=(0, 1))
    if jit:
        vg = jax.jit(vg)
    args = (jnp.linspace(0.5, 1.0, 3), jnp.asarray(0.5))
    value, grads = vg(*args)
    value0, grads0 = jax.value_and_grad(plain_decay, argnums=(0, 1))(*args)
    assert onp.allclose(value, value0, rtol=1e-12, atol=1e-12)
    for g, g0 in zip(grads, grads0):
        assert onp.allclose(g, g0, rtol=1e-12, atol=1e-12)
    jax.effects_barrier()
    assert f.stats.steps == 11


def test_decorated_jax_while_loop_without_max_steps_names_the_option():
    f = checkpoint_struct(OnlineR2(2))(decay_while)
    with pytest.raises(TypeError, match=r"@checkpoint_struct\(scheme, max_steps=N\)"):
        jax.grad(f, argnums=1)(jnp.ones(3), jnp.asarray(0.5))


def test_max_steps_on_a_for_loop_or_not_a_count_is_refused():
    with pytest.raises(TypeError, match=r"for loop.*drop max_steps"):
        checkpoint_struct(Revolve(2), max_steps=10)(heat_jax)
    for bad in (-1, True):
        with pytest.raises(TypeError, match="max_steps must be an int >= 0"):
            checkpoint_struct(OnlineR2(2), max_steps=bad)
