"""The driver's overhead when nothing is recomputed (issue 2's closing figure).

    python benchmarks/overhead.py [--n 1000000] [--steps 100] [--reps 5]

Prints, measured in one run: the time of ``grad`` through `checkpointed_for` with `StoreAll`
and with ``Revolve(snapshots=steps)``, each over the time of ``grad`` through the plain loop
(autograd store-all), for the heat step of issue 6 on an n-element state. Each figure is the
median of per-repetition ratios, the three computations interleaved in every repetition.
Target: <= 1.05.

``Revolve(snapshots=steps)`` stores every state in the primal run and tapes each step once in
the reverse sweep: it evaluates 2T - 1 steps where autograd evaluates T (API.md fixes Revolve's
count at the optimum P(T, s) + T, and P(T, s) = T - 1 for s >= T). The untraced loop is timed
beside them so the cost of those T - 1 passive steps can be read off.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness
import problems as P


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10**6, help="state size (default 1e6)")
    parser.add_argument("--steps", type=int, default=100, help="loop length (default 100)")
    parser.add_argument("--reps", type=int, default=5, help="repetitions (default 5)")
    args = parser.parse_args(argv)
    n, T = args.n, args.steps
    step, x0 = P.heat_step(n), P.heat_x0(n)
    base = P.plain_grad(step, x0, T)
    cands = {
        "StoreAll": P.ours_grad(step, x0, T, P.make_scheme("storeall")),
        f"Revolve(snapshots={T})": P.ours_grad(step, x0, T, P.make_scheme("revolve", T)),
        "untraced loop": P.untraced(step, x0, T),
    }
    b, res = harness.compare(base, cands, args.reps)
    print(f"heat step, n = {n}, T = {T}, {len(b.seconds)} interleaved repetitions")
    print(f"grad through the plain loop (autograd store-all): median {b.median:.3f} s")
    for name, t in res.items():
        lo, hi = t.spread
        what = "untraced loop / plain grad" if name == "untraced loop" else f"{name} / plain grad"
        print(f"{what:<40} {t.ratio:.3f}  (quartiles {lo:.3f}-{hi:.3f}; median {t.median:.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
