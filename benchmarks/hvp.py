"""Hessian-vector products through a checkpointed loop: time and memory (issue 10's figures).

    python benchmarks/hvp.py [--n 10000] [--steps 500] [--snapshots 10] [--reps 3] [--pairs 5 4 3]

The heat step of `problems.heat_step` on n points, T steps, J = sum(x_T**2), differentiated
with respect to x_0. Measured in one run, the computations interleaved in every repetition:

* the first-order gradient through ``checkpointed_for`` with ``Revolve(snapshots)``: the baseline;
* the Hessian-vector product through the same loop, reverse over reverse (autograd's
  ``hessian_tensor_product``) and forward over reverse (``make_jvp(grad(J))``);
* the forward-over-reverse product with ``Revolve(snapshots, second_order_snapshots=k)`` for
  each k of ``--pairs`` (fewer (state, tangent) checkpoints: less memory, more recomputation);
* autograd's own Hessian-vector product of the plain loop (it tapes every step).

Each time is printed as the median of per-repetition ratios to the baseline (goal for the
checkpointed HVP: <= 3). Peak memory is the `tracemalloc` peak of one call, in states of n
float64 (goal for the checkpointed HVP: <= 25; the plain loop holds about one per step and more).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import autograd.numpy as np
import harness
import problems as P
from autograd import grad, make_jvp
from autograd.differential_operators import hessian_tensor_product

from ckpt_transform import Revolve, checkpointed_for


def computations(n: int, T: int, snapshots: int, pairs: Sequence[int] = ()) -> dict:
    """The zero-argument callables to compare, by name (the first is the baseline)."""
    step, x0 = P.heat_step(n), P.heat_x0(n)
    v = np.cos(np.linspace(0.0, 5.0, n))
    scheme = Revolve(snapshots)

    def loss(scheme: Revolve) -> Callable:
        return lambda x: np.sum(checkpointed_for(step, x, T, scheme) ** 2)

    ours = loss(scheme)

    def plain(x):
        for i in range(T):
            x = step(x, i)
        return np.sum(x**2)

    fns = {
        f"grad, Revolve({snapshots})": lambda: grad(ours)(x0),
        f"HVP reverse over reverse, Revolve({snapshots})": lambda: hessian_tensor_product(ours)(
            x0, v
        ),
        f"HVP forward over reverse, Revolve({snapshots})": lambda: make_jvp(grad(ours))(x0)(v)[1],
        "HVP of the plain loop (autograd)": lambda: hessian_tensor_product(plain)(x0, v),
    }
    for k in pairs:
        f = loss(Revolve(snapshots, second_order_snapshots=k))
        fns[f"HVP forward over reverse, second_order_snapshots={k}"] = lambda f=f: make_jvp(
            grad(f)
        )(x0)(v)[1]
    return fns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10**4, help="state size (default 1e4)")
    parser.add_argument("--steps", type=int, default=500, help="loop length (default 500)")
    parser.add_argument("--snapshots", type=int, default=10, help="Revolve's snapshots")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument(
        "--pairs",
        type=int,
        nargs="*",
        default=[5, 4, 3],
        help="second_order_snapshots values to compare (default 5 4 3)",
    )
    args = parser.parse_args(argv)
    n, T, s = args.n, args.steps, args.snapshots
    fns = computations(n, T, s, args.pairs)
    names = list(fns)
    plain_hvp = fns[names[3]]()
    err = max(
        float(np.max(np.abs(fns[k]() - plain_hvp)) / np.max(np.abs(plain_hvp)))
        for k in names[1:]
        if k != names[3]
    )
    base, res = harness.compare(fns[names[0]], {k: fns[k] for k in names[1:]}, args.reps)
    state = n * 8
    print(f"heat step, n = {n}, T = {T}, J = sum(x_T**2); {len(base.seconds)} repetitions")
    print(f"largest HVP relative difference, checkpointed vs plain autograd: {err:.1e}")
    rows = [[names[0], "1.00", harness.fmt_ms(base.median), _states(fns[names[0]], state)]]
    for name, t in res.items():
        rows.append([name, f"{t.ratio:.2f}", harness.fmt_ms(t.median), _states(fns[name], state)])
    print(harness.table(["computation", "time / grad", "median", "peak (states)"], rows))
    return 0


def _states(fn, state: int) -> str:
    return f"{harness.traced_peak(fn) / state:.1f}"


if __name__ == "__main__":
    sys.exit(main())
