"""XAD's checkpointing example in Python: ``x = sin(x)`` repeated, one stage every 4 iterations.

The loop is cut into stages of (at most) 4 iterations; each stage keeps only its input on the way
forward and computes its adjoint on the way back by the chosen method. The derivative is checked
against the analytic one: with ``x_0 = x`` and ``x_{k+1} = sin(x_k)``,

    d x_n / d x_0 = prod_{k=0}^{n-1} cos(x_k).

Run ``python examples/repeated_sin.py`` (options: ``--n``, ``--x``, ``--every``).

Reference: XAD user manual, "Checkpointing",
https://auto-differentiation.github.io/tutorials/checkpointing/
"""

from __future__ import annotations

import argparse
import math

import autograd.numpy as anp
from autograd import value_and_grad

from ckpt_transform import checkpoint_stage


def repeated_sin(n, x):
    """The stage's body: ``x = sin(x)``, ``n`` times (``n`` is an int: not differentiated)."""
    for _ in range(n):
        x = anp.sin(x)
    return x


def sin_stage_vjp(g, ans, n, x):
    """Analytic adjoint of one stage: ``g * prod cos(x_k)`` over the stage's own iterations."""
    derivative = 1.0
    for _ in range(n):
        derivative = derivative * anp.cos(x)
        x = anp.sin(x)
    return None, g * derivative


METHODS = {
    "recompute": "recompute",
    "forward": "forward",
    "fd": "fd",
    "analytic": sin_stage_vjp,
}


def make_checkpointed(adjoint, n, every):
    """``x -> x_n`` with a stage every ``every`` iterations, the stage's adjoint by ``adjoint``."""
    stage = checkpoint_stage(adjoint)(repeated_sin)

    def run(x):
        for i in range(0, n, every):
            x = stage(min(every, n - i), x)
        return x

    return run


def analytic(n, x):
    """The value ``x_n`` and the derivative ``prod cos(x_k)``, in plain floating point."""
    derivative = 1.0
    for _ in range(n):
        derivative *= math.cos(x)
        x = math.sin(x)
    return x, derivative


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="iterations (default 100)")
    parser.add_argument("--x", type=float, default=1.0, help="input value (default 1.0)")
    parser.add_argument("--every", type=int, default=4, help="iterations per stage (default 4)")
    args = parser.parse_args(argv)
    value_exact, derivative_exact = analytic(args.n, args.x)
    print(f"x = sin(x) repeated {args.n} times from x = {args.x}, a stage every {args.every}")
    print(
        f"analytic: x_n = {value_exact:.16g}, dx_n/dx_0 = prod cos(x_k) = {derivative_exact:.16g}"
    )
    print(f"{'adjoint':<10} {'value':>22} {'derivative':>22} {'analytic':>22} {'rel. error':>10}")
    for name, adjoint in METHODS.items():
        value, derivative = value_and_grad(make_checkpointed(adjoint, args.n, args.every))(args.x)
        error = abs(derivative - derivative_exact) / abs(derivative_exact)
        print(
            f"{name:<10} {value:>22.16g} {derivative:>22.16g} {derivative_exact:>22.16g} "
            f"{error:>10.2e}"
        )


if __name__ == "__main__":
    main()
