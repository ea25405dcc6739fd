"""The adjoint of basic slicing: the package's slice assignment against autograd's ``np.add.at``.

Run: ``python benchmarks/slicing_vjp.py [--n N] [--reps R]``

Times one VJP (forward and reverse) of three ways to cut the ghost frame off an (n + 2)^2 block,
``p[1:-1, 1:-1]``, the pattern of a distributed step (`ckpt_transform.mpi.interior` is its named
form), and of a five-point stencil written with slices, in a rotating order within every
repetition:

* autograd's own adjoint of ``p[idx]`` (``untake``, adding with ``np.add.at``): the baseline;
* the adjoint that importing ckpt_transform gives a basic index (a slice assignment);
* ``ckpt_transform.mpi.interior`` (its own VJP) where MPI is installed, for the frame cut only.

Every figure is the median over the repetitions of the ratio to the baseline's CPU time in the
same repetition (quartiles in parentheses); each timing is the best of a few back-to-back calls.
The gradients are checked equal to autograd's before timing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as onp
from autograd import make_vjp
from autograd.core import primitive_vjps, vspace
from autograd.extend import defvjp
from autograd.numpy.numpy_boxes import ArrayBox
from autograd.numpy.numpy_vjps import untake

import ckpt_transform  # noqa: F401  (registers the basic-slicing adjoint)

OURS = primitive_vjps[ArrayBox.__getitem__]
defvjp(ArrayBox.__getitem__, lambda ans, A, idx: lambda g: untake(g, idx, vspace(A)))
AUTOGRAD = primitive_vjps[ArrayBox.__getitem__]
primitive_vjps[ArrayBox.__getitem__] = OURS


def frame(p):
    return p[1:-1, 1:-1]


def stencil(p):
    return p[2:, 1:-1] + p[:-2, 1:-1] + p[1:-1, 2:] + p[1:-1, :-2] - 4 * p[1:-1, 1:-1]


def vjp_time(fun: Callable, p: onp.ndarray, g: onp.ndarray, adjoint, calls: int = 5) -> float:
    """The best CPU time of ``calls`` VJPs of ``fun`` at ``p`` with ``adjoint`` installed."""
    primitive_vjps[ArrayBox.__getitem__] = adjoint
    try:
        best = float("inf")
        for _ in range(calls):
            start = time.process_time()
            vjp, _ = make_vjp(fun)(p)
            vjp(g)
            best = min(best, time.process_time() - start)
        return best
    finally:
        primitive_vjps[ArrayBox.__getitem__] = OURS


def gradient(fun: Callable, p: onp.ndarray, g: onp.ndarray, adjoint) -> onp.ndarray:
    primitive_vjps[ArrayBox.__getitem__] = adjoint
    try:
        return make_vjp(fun)(p)[0](g)
    finally:
        primitive_vjps[ArrayBox.__getitem__] = OURS


def candidates() -> list[tuple[str, Callable, object]]:
    rows = [
        ("p[1:-1, 1:-1], autograd's adjoint (np.add.at, the baseline)", frame, AUTOGRAD),
        ("p[1:-1, 1:-1], ckpt_transform's adjoint (slice assignment)", frame, OURS),
    ]
    try:
        from mpi4py import MPI

        from ckpt_transform import mpi
    except ImportError:
        return rows
    comm = MPI.COMM_SELF.Create_cart([1, 1], periods=[True, True])
    rows.append(("mpi.interior(p, comm), its own VJP", lambda p: mpi.interior(p, comm), OURS))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=128, help="interior side (128)")
    parser.add_argument("--reps", type=int, default=30, help="repetitions (30)")
    args = parser.parse_args()
    rng = onp.random.default_rng(0)
    p = rng.standard_normal((args.n + 2, args.n + 2))
    g = rng.standard_normal((args.n, args.n))
    groups = [
        candidates(),
        [
            (
                "five-point stencil with slices, autograd's adjoint (the baseline)",
                stencil,
                AUTOGRAD,
            ),
            ("five-point stencil, slices, ckpt_transform's adjoint", stencil, OURS),
        ],
    ]
    print(f"VJP of an {args.n + 2} x {args.n + 2} block, {args.reps} reps\n")
    print("| operation | median CPU time | time / baseline (quartiles) |")
    print("|---|---|---|")
    for rows in groups:
        reference = gradient(rows[0][1], p, g, rows[0][2])
        for _, fun, adjoint in rows[1:]:
            assert onp.array_equal(gradient(fun, p, g, adjoint), reference)
        times: list[list[float]] = [[] for _ in rows]
        for r in range(args.reps):
            for i in [(r + k) % len(rows) for k in range(len(rows))]:
                times[i].append(vjp_time(rows[i][1], p, g, rows[i][2]))
        for (name, _, _), ts in zip(rows, times):
            ratios = sorted(t / b for t, b in zip(ts, times[0]))
            q = statistics.quantiles(ratios, n=4)
            print(
                f"| {name} | {statistics.median(ts) * 1e6:.0f} us | "
                f"{statistics.median(ratios):.2f}x ({q[0]:.2f}-{q[2]:.2f}) |"
            )


if __name__ == "__main__":
    main()
