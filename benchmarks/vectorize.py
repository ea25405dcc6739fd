"""Element loops: the decorator's vectorised loop against the same model written with slices.

    python benchmarks/vectorize.py          # about a minute on 2 busy cores; prints a table
    python benchmarks/vectorize.py --quick  # smaller problems, a few seconds

Two models of issue 12, each differentiated with ``Revolve(4)``:

* the seed's heat equation written element by element (a struct ``heat``,
  ``heat.Tlast = np.array(heat.Tnext)``, inner ``for i in range(1, n - 1): heat.Tnext[i] = ...``),
  n = 200, T = 200;
* a 2D five-point stencil with two inner loops, 24 x 24, T = 40.

The baseline is the same model written with slices by hand and run through
``checkpointed_for``. Rows: the decorated element loop with ``vectorize=False`` (the loop as
written, every element a traced scalar), with ``vectorize=True`` (the default), and the baseline.
Ratios are medians of per-repetition ratios to the baseline timed in the same repetition
(harness.compare); the scalar rows get fewer repetitions, being 100x slower or more. Every row's
gradient is checked against the baseline's to 1e-12 before timing.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import autograd.numpy as np
import harness
import numpy as onp
from autograd import grad
from harness import fmt_ms, fmt_ratio, table

from ckpt_transform import Revolve, checkpoint_struct
from ckpt_transform.runtime.driver import checkpointed_for

LAM = 0.25


@dataclass
class Heat:
    Tnext: Any
    Tlast: Any
    n: int
    lam: float


def heat_elementwise(heat: Heat, tsteps: int) -> Any:
    for _t in range(tsteps):
        heat.Tlast = np.array(heat.Tnext)
        for i in range(1, heat.n - 1):
            heat.Tnext[i] = heat.Tlast[i] + heat.lam * (
                heat.Tlast[i - 1] - 2 * heat.Tlast[i] + heat.Tlast[i + 1]
            )
    return np.sum(heat.Tnext)


def heat_by_hand(x0: Any, tsteps: int) -> Any:
    def step(x: Any, _t: int) -> Any:
        inner = x[1:-1] + LAM * (x[:-2] - 2 * x[1:-1] + x[2:])
        return np.concatenate([x[:1], inner, x[-1:]])

    return np.sum(checkpointed_for(step, x0, tsteps, Revolve(4)))


def stencil_elementwise(u: Any, c: float, steps: int) -> Any:
    n, m = u.shape
    for _t in range(steps):
        old = np.array(u)
        for i in range(1, n - 1):
            for j in range(1, m - 1):
                lap = old[i - 1, j] + old[i + 1, j] + old[i, j - 1] + old[i, j + 1] - 4 * old[i, j]
                u[i, j] = old[i, j] + c * lap
    return np.sum(u)


def stencil_by_hand(u0: Any, c: float, steps: int) -> Any:
    def step(u: Any, _t: int) -> Any:
        lap = u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:] - 4 * u[1:-1, 1:-1]
        inner = u[1:-1, 1:-1] + c * lap
        middle = np.concatenate([u[1:-1, :1], inner, u[1:-1, -1:]], axis=1)
        return np.concatenate([u[:1], middle, u[-1:]], axis=0)

    return np.sum(checkpointed_for(step, u0, steps, Revolve(4)))


def _problems(quick: bool) -> list[tuple[str, Any, dict[str, Any]]]:
    n, T = (50, 40) if quick else (200, 200)
    x0 = onp.sin(onp.linspace(0.0, onp.pi, n)) + 0.1 * onp.sin(onp.linspace(0.0, 17.0, n))
    side, S = (10, 10) if quick else (24, 40)
    u0 = onp.random.default_rng(0).uniform(size=(side, side))

    def heat_grad(fn: Any) -> Any:
        g = grad(lambda x: fn(Heat(x, np.array(x), n, LAM), T))
        return lambda: g(x0)

    def stencil_grad(fn: Any) -> Any:
        g = grad(lambda u: fn(u, 0.2, S))
        return lambda: g(u0)

    heat_row = (
        f"seed heat, element by element: n = {n}, T = {T}",
        (lambda: grad(lambda x: heat_by_hand(x, T))(x0)),
        {
            "scalar": heat_grad(checkpoint_struct(Revolve(4), vectorize=False)(heat_elementwise)),
            "vectorised": heat_grad(checkpoint_struct(Revolve(4))(heat_elementwise)),
        },
    )
    stencil_row = (
        f"2D five-point stencil: {side} x {side}, T = {S}",
        (lambda: grad(lambda u: stencil_by_hand(u, 0.2, S))(u0)),
        {
            "scalar": stencil_grad(
                checkpoint_struct(Revolve(4), vectorize=False)(stencil_elementwise)
            ),
            "vectorised": stencil_grad(checkpoint_struct(Revolve(4))(stencil_elementwise)),
        },
    )
    return [heat_row, stencil_row]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small problems, few repetitions")
    args = parser.parse_args(argv)
    reps = 3 if args.quick else 9
    rows = []
    for title, baseline, candidates in _problems(args.quick):
        expected = baseline()
        for name, fn in candidates.items():
            assert onp.allclose(fn(), expected, rtol=1e-12, atol=1e-12), (title, name)
        base, vec = harness.compare(baseline, {"v": candidates["vectorised"]}, reps)
        _, scalar = harness.compare(baseline, {"s": candidates["scalar"]}, 2, warmup=0)
        rows.append([title, "hand-vectorised `checkpointed_for` (baseline)", fmt_ms(base.median)])
        rows[-1].append("1.00x")
        for label, t in (
            ("decorated, `vectorize=False` (scalar loop, before)", scalar["s"]),
            ("decorated, vectorised (after)", vec["v"]),
        ):
            rows.append([title, label, fmt_ms(t.median), fmt_ratio(t)])
    print(table(["problem", "Revolve(4) gradient", "median time", "ratio to baseline"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
