"""Peak memory of a checkpointed gradient with each storage, in states (issue 10's HDF5 row).

    python benchmarks/storage_memory.py [--n 50000] [--steps 100] [--snapshots 10] [--reps 3]

Prints, measured in one run: the peak memory (`tracemalloc`, above the memory in use before the
call, after a warm-up call) of ``grad`` through `checkpointed_for` with ``Revolve(snapshots)`` and
each storage, in units of the state's size, and how many states below `ArrayStorage` each HDF5
variant stays (goal: at least ``snapshots - 3``); then the time of each gradient over the one with
`ArrayStorage`, the variants interleaved (median of per-repetition ratios). The heat step of
issue 6 on an n-element float64 state.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness
import problems as P

from ckpt_transform import ArrayStorage, HDF5Storage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="state size (default 5e4)")
    parser.add_argument("--steps", type=int, default=100, help="loop length (default 100)")
    parser.add_argument("--snapshots", type=int, default=10, help="Revolve's budget (default 10)")
    parser.add_argument("--reps", type=int, default=3, help="timing repetitions (default 3)")
    args = parser.parse_args(argv)
    n, T, s = args.n, args.steps, args.snapshots
    step, x0 = P.heat_step(n), P.heat_x0(n)
    storages = {
        "ArrayStorage()": ArrayStorage(),
        "HDF5Storage()": HDF5Storage(),
        "HDF5Storage(background=False)": HDF5Storage(background=False),
    }
    grads = {
        name: P.ours_grad(step, x0, T, P.make_scheme("revolve", s, storage))
        for name, storage in storages.items()
    }
    state = n * 8
    peaks = {name: harness.traced_peak(fn) / state for name, fn in grads.items()}
    base_name, *others = grads
    _, timings = harness.compare(grads[base_name], {k: grads[k] for k in others}, args.reps)
    print(f"heat step, n = {n}, T = {T}, Revolve({s}); a state is {harness.fmt_bytes(state)}")
    rows = [[base_name, f"{peaks[base_name]:.2f}", "", "1"]]
    for name in others:
        below = peaks[base_name] - peaks[name]
        rows.append([name, f"{peaks[name]:.2f}", f"{below:.2f}", harness.fmt_ratio(timings[name])])
    header = ["storage", "peak (states)", "below ArrayStorage", "time / ArrayStorage"]
    print(harness.table(header, rows))
    print(f"goal: HDF5 at least snapshots - 3 = {s - 3} states below ArrayStorage")
    return 0


if __name__ == "__main__":
    sys.exit(main())
