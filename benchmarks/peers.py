"""The peers, each used the way its own documentation shows, where installed.

* checkpoint_schedules (firedrakeproject): a schedule is a stream of actions executed by the
  user; `cs_grad` is a hand-written per-step driver over its `MultistageCheckpointSchedule`
  with autograd taping one step at a time (`make_vjp`), checkpoints in a dict or, for
  ``disk=True``, in an HDF5 file written and read synchronously with h5py.
* pyrevolve (devitocodes): the C++ Revolve of Griewank, Walther and Stumm behind a Python
  binding; used here for its step counts, offline and online.
* JAX: ``lax.scan`` under ``jit(grad)`` (store-all), the same with ``jax.checkpoint`` on the step
  (store the carry only, recompute each step once), and equinox's checkpointed while loop
  (``eqx.internal.while_loop(..., kind="checkpointed", checkpoints=s)``, online Stumm-Walther).

Functions return None (or raise ImportError) when a peer is not installed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

import autograd.numpy as np
from autograd import make_vjp
from problems import LAMBDA, Step


def have(module: str) -> bool:
    try:
        __import__(module)
    except Exception:
        return False
    return True


# -- checkpoint_schedules: a hand-written per-step driver ----------------------------------------


def cs_grad(step: Step, x0: Any, steps: int, s: int, *, disk: bool = False) -> Callable[[], Any]:
    """Gradient of sum(x_T) by a per-step driver over checkpoint_schedules' Multistage."""
    from checkpoint_schedules import (
        Copy,
        EndForward,
        EndReverse,
        Forward,
        Move,
        MultistageCheckpointSchedule,
        Reverse,
        StorageType,
    )

    def run() -> Any:
        ram, on_disk = (0, s) if disk else (s, 0)
        schedule = MultistageCheckpointSchedule(steps, ram, on_disk)
        store: Any = _H5Dict() if disk else {}
        tapes: dict[int, Any] = {}
        x, adj = x0, None
        try:
            for action in schedule:
                if isinstance(action, Forward):
                    if action.write_ics:
                        store[action.n0] = x
                    for k in range(action.n0, action.n1):
                        if action.write_adj_deps:
                            vjp, x = make_vjp(step)(x, k)
                            tapes[k] = vjp
                        else:
                            x = step(x, k)
                elif isinstance(action, EndForward):
                    adj = np.ones_like(x)
                elif isinstance(action, Reverse):
                    for k in range(action.n1 - 1, action.n0 - 1, -1):
                        adj = tapes.pop(k)(adj)
                elif isinstance(action, Copy):
                    x = store[action.n]
                elif isinstance(action, Move):
                    value = store.pop(action.n)
                    if action.to_storage == StorageType.WORK:
                        x = value
                elif isinstance(action, EndReverse):
                    break
        finally:
            if disk:
                store.close()
        return adj

    return run


class _H5Dict:
    """Checkpoints in an HDF5 file, one dataset per step, written and read synchronously."""

    def __init__(self) -> None:
        import h5py

        fd, self.path = tempfile.mkstemp(suffix=".h5")
        os.close(fd)
        self.file = h5py.File(self.path, "w")

    def __setitem__(self, n: int, x: Any) -> None:
        name = str(n)
        if name in self.file:
            del self.file[name]
        self.file.create_dataset(name, data=x)

    def __getitem__(self, n: int) -> Any:
        return self.file[str(n)][()]

    def pop(self, n: int) -> Any:
        value = self[n]
        del self.file[str(n)]
        return value

    def close(self) -> None:
        self.file.close()
        os.unlink(self.path)


def cs_evaluations(steps: int, s: int) -> int:
    """Primal step evaluations (passive and taped) of Multistage(steps, s, 0)."""
    from checkpoint_schedules import EndReverse, Forward, MultistageCheckpointSchedule

    total = 0
    for action in MultistageCheckpointSchedule(steps, s, 0):
        if isinstance(action, Forward):
            total += action.n1 - action.n0
        elif isinstance(action, EndReverse):
            break
    return total


def cs_schedule_actions(steps: int, s: int) -> int:
    """Build and walk the whole Multistage schedule; return its number of actions."""
    from checkpoint_schedules import EndReverse, MultistageCheckpointSchedule

    count = 0
    for action in MultistageCheckpointSchedule(steps, s, 0):
        count += 1
        if isinstance(action, EndReverse):
            break
    return count


# -- pyrevolve: step counts ---------------------------------------------------------------------


def pyrevolve_offline(steps: int, s: int) -> int:
    """Evaluations of pyrevolve's offline Revolve: every advance, plus one per taped step."""
    from pyrevolve import crevolve as cr

    r = cr.CRevolve(s, steps)
    total = 0
    while True:
        a = r.revolve()
        if a == cr.Action.advance:
            total += r.capo - r.oldcapo
        elif a in (cr.Action.firstrun, cr.Action.youturn):
            total += 1
        elif a == cr.Action.terminate:
            return total


def pyrevolve_online(steps: int, s: int, *, strict: bool = False) -> int:
    """Evaluations of pyrevolve's online mode (``CRevolve(s)`` with no length).

    The loop's end is found the way a while loop finds it: running, it reaches state ``steps``
    inside an advance, and `turn(steps)` is called. This protocol reproduces the figures quoted
    in issue 6 (29, 176, 486, 4171, 4637, 48120). pyrevolve's first taped step after `turn` is
    step ``steps - 1``, taped from the *current* state, which it takes to be ``steps - 1``; the
    driver there holds the state at ``steps``. With ``strict=True`` the recomputation that
    really brings the state back to ``steps - 1`` (restore the latest checkpoint before it,
    advance) is counted too, as a driver that finds the end only at ``steps`` must do it.
    """
    from pyrevolve import crevolve as cr

    r = cr.CRevolve(s)
    total, turned, current = 0, False, 0
    held: dict[int, int] = {}  # checkpoint index -> state
    while True:
        a = r.revolve()
        if a == cr.Action.advance:
            if not turned and r.capo > steps:
                total += steps - r.oldcapo
                current = steps
                r.turn(steps)
                turned = True
            else:
                total += r.capo - r.oldcapo
                current = r.capo
        elif a == cr.Action.takeshot:
            held[r.check] = r.capo
        elif a == cr.Action.restore:
            current = r.capo
        elif a in (cr.Action.firstrun, cr.Action.youturn):
            if strict and current != r.capo:
                start = max(v for v in held.values() if v <= r.capo)
                total += r.capo - start
            total += 1
            current = r.capo
        elif a == cr.Action.terminate:
            return total


# -- JAX and equinox -------------------------------------------------------------------------


def _jax() -> Any:
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax


def jax_heat(n: int, steps: int, kind: str, s: int | None = None) -> Callable[[], Any]:
    """``jit(grad)`` of sum(x_T) for the heat step: ``scan``, ``checkpoint`` or ``equinox``."""
    jax = _jax()
    import jax.numpy as jnp

    mask = np.ones(n)
    mask[0] = mask[-1] = 0.0
    mask = jnp.asarray(mask)

    def step(x: Any) -> Any:
        return x + LAMBDA * mask * (jnp.roll(x, 1) - 2 * x + jnp.roll(x, -1))

    if kind in ("scan", "checkpoint"):
        body_step = jax.checkpoint(step) if kind == "checkpoint" else step

        def loss(x: Any) -> Any:
            out, _ = jax.lax.scan(lambda c, _: (body_step(c), None), x, None, length=steps)
            return out.sum()

    elif kind == "equinox":
        import equinox as eqx

        def loss(x: Any) -> Any:
            out = eqx.internal.while_loop(
                lambda c: c[0] < steps,
                lambda c: (c[0] + 1, step(c[1])),
                (0, x),
                max_steps=steps,
                kind="checkpointed",
                checkpoints=s,
            )
            return out[1].sum()

    else:
        raise ValueError(kind)
    g = jax.jit(jax.grad(loss))
    from problems import heat_x0

    x0 = jnp.asarray(heat_x0(n))
    return lambda: g(x0).block_until_ready()


def equinox_evaluations(steps: int, s: int) -> int:
    """Step evaluations of equinox's checkpointed while loop, counted by a host callback."""
    jax = _jax()
    import equinox as eqx
    import jax.numpy as jnp

    count = [0]

    def bump() -> None:
        count[0] += 1

    def body(c: Any) -> Any:
        jax.debug.callback(bump)
        return c[0] + 1, c[1] * 1.001 + 0.1 * jnp.sin(c[1])

    def loss(x: Any) -> Any:
        out = eqx.internal.while_loop(
            lambda c: c[0] < steps,
            body,
            (0, x),
            max_steps=steps,
            kind="checkpointed",
            checkpoints=s,
        )
        return out[1].sum()

    jax.grad(loss)(jnp.ones(3)).block_until_ready()
    jax.effects_barrier()
    return count[0]
