"""What the runtime guard costs on the seed's heat equation (goal: at most 1 %).

    python benchmarks/guard_cost.py [--n 100] [--steps 500] [--reps 7]

Times, interleaved in one run, each computation with the guard on (`ckpt_transform.runtime.guard`:
fingerprints before and after the primal run, struct views checked after each primal step) and
with it off (``guard.enabled = False``), on the seed's ``sumheat`` (examples/heat.py: a ``Heat``
struct, ``advance(heat)``, ``Revolve(4)``), the case with the most to check per step:

* an untraced call (the primal run alone, where the guard does all its work): the fastest of
  many interleaved runs each way, and their difference, the guard's cost per run;
* ``grad``: the median of per-repetition ratios, and the guard's share computed from the
  untraced difference (the guard acts in the primal run only, so it costs the same there; on a
  shared machine this share is steadier than the ratio of two long timings);
* ``grad`` of benchmarks/problems.py's decorated heat loop (an array state, a closure mask).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
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


def min_pair(on: Callable[[], Any], off: Callable[[], Any], reps: int) -> tuple[float, float]:
    """The fastest of ``reps`` interleaved runs of each: (on, off) seconds."""
    t_on, t_off = [], []
    for r in range(reps):
        pair = [(on, t_on), (off, t_off)]
        for fn, acc in pair if r % 2 else pair[::-1]:
            t0 = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t0)
    return min(t_on), min(t_off)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="rod points (default 100)")
    parser.add_argument("--steps", type=int, default=500, help="time steps (default 500)")
    parser.add_argument("--reps", type=int, default=7, help="repetitions of a grad (default 7)")
    args = parser.parse_args(argv)
    n, T = args.n, args.steps
    sumheat = checkpoint_struct(Revolve(4))(heat.sumheat.original)

    def fresh() -> Any:
        return heat.initial(n, 0.5, T)

    def primal() -> Any:
        return sumheat(fresh(), T)

    def gradient() -> Any:
        return grad(sumheat)(fresh(), T)

    print(f"seed heat (examples/heat.py sumheat), n = {n}, T = {T}, Revolve(4)")
    on, off = min_pair(primal, without_guard(primal), 20 * args.reps)
    cost = on - off
    print(
        f"untraced call (primal run alone): guard on / off {on / off:.3f} "
        f"(fastest of {20 * args.reps}: {on * 1e3:.2f} ms / {off * 1e3:.2f} ms; "
        f"guard {cost * 1e3:.2f} ms per run)"
    )
    base, res = harness.compare(without_guard(gradient), {"on": gradient}, args.reps)
    t = res["on"]
    lo, hi = t.spread
    print(
        f"grad: guard on / off {t.ratio:.3f} (quartiles {lo:.3f}-{hi:.3f}; "
        f"off median {base.median * 1e3:.0f} ms)"
    )
    print(
        f"grad: the guard's share, its per-run cost over the grad's time: "
        f"{100 * cost / base.median:.2f} %  (it acts in the primal run only)"
    )
    array = P.decorated_heat_grad(n, T, Revolve(4))
    base, res = harness.compare(without_guard(array), {"on": array}, args.reps)
    t = res["on"]
    lo, hi = t.spread
    print(
        f"grad of benchmarks/problems.py's array heat loop: guard on / off {t.ratio:.3f} "
        f"(quartiles {lo:.3f}-{hi:.3f}; off median {base.median * 1e3:.0f} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
