"""Canonical decorated functions whose generated source is checked in under tests/golden/.

Each function is written the way a user would write it. Moving a line here moves the line numbers
in the generated comments: regenerate the golden files deliberately (see test_golden.py).
"""

# ruff: noqa: B007  (time-stepping loops often do not read their index, as users write them)

from __future__ import annotations

from dataclasses import dataclass

import autograd.numpy as np

from ckpt_transform.api import checkpoint_struct
from ckpt_transform.schemes.periodic import Periodic
from ckpt_transform.schemes.revolve import Revolve
from ckpt_transform.schemes.store_all import StoreAll


@dataclass
class Heat:
    """The seed's struct: the 1D heat equation's two time levels and its parameters."""

    Tnext: np.ndarray
    Tlast: np.ndarray
    n: int
    lam: float
    tsteps: int


def advance(heat: Heat) -> np.ndarray:
    """One explicit step from heat.Tlast; the boundary values are kept."""
    last = heat.Tlast
    inner = last[1:-1] + heat.lam * (last[:-2] - 2 * last[1:-1] + last[2:])
    return np.concatenate([last[:1], inner, last[-1:]])


# 1. The seed's example: a struct whose fields the loop updates, passed whole to a helper.
@checkpoint_struct(Revolve(4))
def sumheat(heat, tsteps):
    for i in range(tsteps):
        heat.Tlast = heat.Tnext
        heat.Tnext = advance(heat)
    return np.sum(heat.Tnext)


# 2. Local variables as state: augmented and tuple assignment.
@checkpoint_struct(Revolve(3))
def oscillator(x, v, k, dt, steps):
    """Symplectic Euler for x'' = -k x."""
    t = 0.0
    for n in range(steps):
        v -= dt * k * x
        x, t = x + dt * v, t + dt
    return x, v, t


def rhs(y, rate):
    return -rate * y


# 3. A while loop integrating an ODE to a final time; k1 and k2 are temporaries of the body.
@checkpoint_struct(StoreAll())
def decay(y0, rate, t_end, dt):
    t = 0.0
    y = y0
    while t < t_end - 0.5 * dt:
        k1 = rhs(y, rate)
        k2 = rhs(y + 0.5 * dt * k1, rate)
        y = y + dt * k2
        t = t + dt
    return y


@dataclass
class Body:
    T: float
    h: float


# 4. A struct and a closure variable (the ambient temperature) read by the loop.
def make_cooling(ambient):
    @checkpoint_struct(Periodic(period=5))
    def cool(body, steps):
        for i in range(steps):
            body.T = body.T + body.h * (ambient - body.T)
        return body.T

    return cool


cool = make_cooling(20.0)


# 5. A nested inner loop: fixed-point sweeps of implicit Euler inside each time step.
@checkpoint_struct(Revolve(2))
def picard(u, lam, dt, steps, sweeps):
    for n in range(steps):
        w = u
        for k in range(sweeps):
            w = u + dt * lam * np.sin(w)
        u = w
    return u


# 6. Element-wise updates, as the seed's Julia advance writes them (kept scalar, for teaching).
@checkpoint_struct(Revolve(4), vectorize=False)
def heat_elementwise(T0, lam, tsteps):
    n = len(T0)
    nxt = np.array(T0)
    last = np.array(T0)
    for t in range(tsteps):
        last[:] = nxt
        for i in range(1, n - 1):
            nxt[i] = last[i] + lam * (last[i - 1] - 2 * last[i] + last[i + 1])
    return np.sum(nxt)


# 7. The seed's struct updated element by element in the loop body (Julia's `.=` and `next[i]`).
@checkpoint_struct(Revolve(4), vectorize=False)
def sumheat_elementwise(heat, tsteps):
    for t in range(tsteps):
        heat.Tlast[:] = heat.Tnext
        for i in range(1, heat.n - 1):
            heat.Tnext[i] = heat.Tlast[i] + heat.lam * (
                heat.Tlast[i - 1] - 2 * heat.Tlast[i] + heat.Tlast[i + 1]
            )
    return np.sum(heat.Tnext)


# 8. Two loops, the second chosen by its variable; its index is read after it; a progress bar.
@checkpoint_struct(Revolve(2), loop="step", progress=True)
def warm_then_run(x, warmup, steps):
    for w in range(warmup):
        x = 0.5 * (x + 1.0)
    for step in range(1, steps + 1):
        x = np.cos(x) * x
    return x, step


# 9. The seed's element-wise heat as issue 12 quotes it: the inner loop becomes slices.
@checkpoint_struct(Revolve(4))
def sumheat_vectorized(heat, tsteps):
    for t in range(tsteps):
        heat.Tlast = np.array(heat.Tnext)
        for i in range(1, heat.n - 1):
            heat.Tnext[i] = heat.Tlast[i] + heat.lam * (
                heat.Tlast[i - 1] - 2 * heat.Tlast[i] + heat.Tlast[i + 1]
            )
    return np.sum(heat.Tnext)


# 10. A 2D five-point stencil with a scalar temporary: a nest of two loops becomes 2D slices.
@checkpoint_struct(Revolve(3))
def stencil_vectorized(u, c, steps):
    n, m = u.shape
    for t in range(steps):
        old = np.array(u)
        for i in range(1, n - 1):
            for j in range(1, m - 1):
                lap = old[i - 1, j] + old[i + 1, j] + old[i, j - 1] + old[i, j + 1] - 4 * old[i, j]
                u[i, j] = old[i, j] + c * lap
    return np.sum(u)


# 11. An if as np.where, and a sweep that keeps its loop (explain=True says why).
@checkpoint_struct(Revolve(2), explain=True)
def clip_and_sweep(x, a, steps):
    n = len(x)
    for t in range(steps):
        y = np.array(x)
        for i in range(n):
            if x[i] > 0.5:
                y[i] = x[i] * x[i]
        x = np.array(y)
        for k in range(1, n):
            x[k] = x[k] + a * x[k - 1]
    return np.sum(x)


GOLDEN = {
    "heat_struct": sumheat,
    "local_state": oscillator,
    "while_loop": decay,
    "struct_closure": cool,
    "nested_loop": picard,
    "elementwise": heat_elementwise,
    "elementwise_struct": sumheat_elementwise,
    "loop_choice": warm_then_run,
    "vectorize_heat": sumheat_vectorized,
    "vectorize_stencil": stencil_vectorized,
    "vectorize_explain": clip_and_sweep,
}
