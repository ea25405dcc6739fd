"""The seed's heat equation in JAX, checkpointed with Revolve and compiled end to end.

A rod with a conductivity that depends on its temperature, ``c(T) = λ (1 - T²/2)``, is stepped
explicitly ``steps`` times; the loss is the total heat left at the end. The step is written with
jax.numpy and the loop with ``@checkpoint_struct(Revolve(snapshots))``: the decorator writes the
element updates as ``T = T.at[i].set(...)`` and the loop runs on the JAX backend, so
``jax.jit(jax.grad(loss))`` is one XLA program that holds ``snapshots`` states, not ``steps``.

The gradient is checked against ``jax.grad`` of the same loop written with ``lax.scan`` (which
keeps every step's residuals), and the evaluations against the proven minimum of binomial
checkpointing (Griewank & Walther, ACM TOMS 26(1) 2000, https://doi.org/10.1145/347837.347846).

Run: ``python examples/heat_jax.py [--n N] [--steps T] [--snapshots S]``
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

from ckpt_transform import Revolve, checkpoint_struct
from ckpt_transform.schemes.cost import revolve_evaluations

jax.config.update("jax_enable_x64", True)


def make_loss(snapshots: int):
    @checkpoint_struct(Revolve(snapshots))
    def heat_loss(T0, lam, steps):
        n = T0.shape[0]
        T = jnp.array(T0)
        for _ in range(steps):
            c = lam * (1.0 - 0.5 * T**2)
            interior = T[1:-1] + c[1:-1] * (T[:-2] - 2 * T[1:-1] + T[2:])
            T[1 : n - 1] = interior
        return jnp.sum(T)

    return heat_loss


def scan_loss(T0, lam, steps):
    def step(T, _):
        c = lam * (1.0 - 0.5 * T**2)
        interior = T[1:-1] + c[1:-1] * (T[:-2] - 2 * T[1:-1] + T[2:])
        return T.at[1:-1].set(interior), None

    T, _ = jax.lax.scan(step, T0, None, length=steps)
    return jnp.sum(T)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--snapshots", type=int, default=4)
    args = parser.parse_args()

    T0 = jnp.sin(jnp.linspace(0.0, jnp.pi, args.n)) ** 2
    lam = jnp.asarray(0.5)
    heat_loss = make_loss(args.snapshots)
    grad = jax.jit(jax.grad(heat_loss, argnums=(0, 1)), static_argnums=2)
    dT0, dlam = grad(T0, lam, args.steps)
    jax.effects_barrier()
    ref_T0, ref_lam = jax.grad(scan_loss, argnums=(0, 1))(T0, lam, args.steps)

    stats = heat_loss.stats
    print(heat_loss.generated_source)
    print(f"steps {stats.steps}, snapshots held {stats.max_snapshots}")
    best = revolve_evaluations(args.steps, args.snapshots)
    print(f"evaluations {stats.evaluations} (optimum {best})")
    print(f"max |dL/dT0 - scan| = {float(jnp.max(jnp.abs(dT0 - ref_T0))):.3e}")
    print(f"dL/dlam = {float(dlam):.12f}, scan {float(ref_lam):.12f}")


if __name__ == "__main__":
    main()
