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

    python benchmarks/hvp.py --per-step [--n 10000] [--reps 9]

prints instead what one step costs in each role, in plain steps (one untraced heat step, the
baseline, timed in the same run): taped and pulled back at first order, and the lifted
(state, tangent) step of the second-order sweeps, passive (forward mode: the package's
`forward_jvp`, and autograd's ``make_jvp`` beside it) and taped and pulled back with a
cotangent pair (reverse over forward); and forward mode's tracing of the step with the tangent
arithmetic left out, which is autograd's own share of a lifted step. The heat step is linear,
so its tangent is the step applied to the tangent: two plain steps bound a lifted passive step.
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
from ckpt_transform.backends import autograd as B
from ckpt_transform.backends.autograd import forward_jvp, make_leaves_vjp, make_segment_vjp


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


def per_step(n: int, repeat: int = 100) -> tuple[Callable, dict]:
    """(the plain step, {role: the step in that role}), each ``repeat`` times per call."""
    step, x = P.heat_step(n), P.heat_x0(n)
    xd, g, gd = np.cos(np.linspace(0.0, 5.0, n)), x * 2.0, np.sin(np.linspace(0.0, 3.0, n))

    def times(fn: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(repeat):
                fn()

        return run

    def tracing_only() -> object:
        # autograd's forward-mode tracing of the step with no tangent arithmetic (each node takes
        # its first parent's tangent): what the package cannot remove from a lifted step
        real = B._ForwardNode.__init__
        B._ForwardNode.__init__ = _first_parents_tangent
        try:
            return forward_jvp(step, x, xd, 0)
        finally:
            B._ForwardNode.__init__ = real

    def lifted_taped() -> object:
        pull, _ = make_leaves_vjp(lambda xs: forward_jvp(step, xs[0], xs[1], 0), (x, xd))
        return pull((gd, g))

    roles = {
        "plain step taped and pulled back (first order)": lambda: make_segment_vjp(step, x, 0)[0](
            g
        ),
        "lifted step, passive: forward_jvp": lambda: forward_jvp(step, x, xd, 0),
        "lifted step, passive: autograd's make_jvp": lambda: make_jvp(lambda y: step(y, 0))(x)(xd),
        "lifted step taped and pulled back with (gd, g)": lifted_taped,
        "forward mode's tracing alone (no tangent arithmetic)": tracing_only,
    }
    return times(lambda: step(x, 0)), {k: times(f) for k, f in roles.items()}


def _first_parents_tangent(self, value, fun, args, kwargs, argnums, parents) -> None:
    self.g = parents[0].g


def main_per_step(n: int, reps: int) -> int:
    base, res = harness.compare(*per_step(n), reps)
    print(f"heat step, n = {n}: one step in each role, in plain steps; {reps} repetitions")
    rows = [["plain step (untraced)", "1.00", harness.fmt_ms(base.median / 100)]]
    rows += [[k, f"{t.ratio:.2f}", harness.fmt_ms(t.median / 100)] for k, t in res.items()]
    print(harness.table(["step", "plain steps", "median"], rows))
    return 0


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
    parser.add_argument(
        "--per-step", action="store_true", help="one step's cost in each role, in plain steps"
    )
    args = parser.parse_args(argv)
    if args.per_step:
        return main_per_step(args.n, args.reps)
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
