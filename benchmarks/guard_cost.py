"""What the runtime guard costs on the seed's heat equation (goal: at most 1 %).

    python benchmarks/guard_cost.py [--n 100] [--steps 500] [--reps 15]

Times, interleaved in one run, each computation with the guard on (`ckpt_transform.runtime.guard`:
fingerprints before and after the primal run, struct views checked after each primal step) over
the same computation with it off (``guard.enabled = False``):

* ``grad`` of the seed's ``sumheat`` (examples/heat.py: a ``Heat`` struct, ``advance(heat)``,
  ``Revolve(4)``), the case with the most to check per step (one struct view per step);
* an untraced call of ``sumheat`` (the primal run alone, where the guard's share is largest);
* ``grad`` of benchmarks/problems.py's decorated heat loop (an array state, a closure mask).

Each figure is the median of per-repetition ratios (guard on / guard off).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))

import harness  # noqa: E402
import heat  # noqa: E402  (examples/heat.py)
import problems as P  # noqa: E402
from autograd import grad  # noqa: E402

from ckpt_transform import Revolve, checkpoint_struct  # noqa: E402
from ckpt_transform.runtime import guard  # noqa: E402


def without_guard(fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        guard.enabled = False
        try:
            return fn()
        finally:
            guard.enabled = True

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="rod points (default 100)")
    parser.add_argument("--steps", type=int, default=500, help="time steps (default 500)")
    parser.add_argument("--reps", type=int, default=15, help="repetitions (default 15)")
    args = parser.parse_args(argv)
    n, T = args.n, args.steps
    sumheat = checkpoint_struct(Revolve(4))(heat.sumheat.original)

    def fresh() -> Any:
        return heat.initial(n, 0.5, T)

    cases = {
        "grad of sumheat (Heat struct), Revolve(4)": lambda: grad(sumheat)(fresh(), T),
        "untraced sumheat": lambda: sumheat(fresh(), T),
        "grad of the array heat loop, Revolve(4)": P.decorated_heat_grad(n, T, Revolve(4)),
    }
    print(f"heat n = {n}, T = {T}; guard on / guard off, median of {args.reps} interleaved runs")
    for name, fn in cases.items():
        base, res = harness.compare(without_guard(fn), {"on": fn}, args.reps)
        t = res["on"]
        lo, hi = t.spread
        print(
            f"{name:<44} {t.ratio:.4f}  (quartiles {lo:.4f}-{hi:.4f}; "
            f"off {base.median * 1e3:.1f} ms)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
