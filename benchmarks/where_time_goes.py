"""Where the time of one checkpointed gradient goes, grouped by who spends it.

    python benchmarks/where_time_goes.py [heat|scalar|large] [--scheme revolve] [--s 4]
                                         [--steps 500] [--tree]

Runs the case a few times under cProfile and adds up each function's own time (``tottime``) by
the module it lives in: the user's step, numpy, autograd (tracing and the backward pass), the
driver (ckpt_transform/runtime), the scheme's planner (ckpt_transform/schemes), storage, and
the rest. ``--tree`` also prints pyinstrument's call tree when pyinstrument is installed.
cProfile slows small Python functions more than numpy kernels, so read the shares as an upper
bound for the bookkeeping.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import problems as P

GROUPS = (
    ("driver (ckpt_transform/runtime)", ("ckpt_transform/runtime/",)),
    ("scheme planner (ckpt_transform/schemes)", ("ckpt_transform/schemes/",)),
    ("storage (ckpt_transform/storage)", ("ckpt_transform/storage/",)),
    ("ckpt_transform autograd backend", ("ckpt_transform/backends/",)),
    ("the user's step (benchmarks/problems.py)", ("benchmarks/problems.py",)),
    ("autograd (tracing, VJPs, backward pass)", ("/autograd/",)),
    ("numpy", ("/numpy/", "{method", "{built-in method numpy")),
)


def group_of(filename: str) -> str:
    for name, keys in GROUPS:
        if any(k in filename for k in keys):
            return name
    return "other (Python built-ins, warnings, ...)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", nargs="?", default="heat", choices=("heat", "scalar", "large"))
    parser.add_argument("--scheme", default="revolve")
    parser.add_argument("--s", type=int, default=4)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--tree", action="store_true", help="also print pyinstrument's tree")
    args = parser.parse_args(argv)
    problem, n, steps = {
        "heat": ("heat", 100, 500),
        "scalar": ("scalar", 1, 10_000),
        "large": ("heat", 10**5, 200),
    }[args.case]
    steps = args.steps or steps
    fn = P.case(problem, n, steps, args.scheme, args.s)
    fn()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(args.reps):
        fn()
    prof.disable()
    stats = pstats.Stats(prof)
    totals: dict[str, float] = {}
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        g = group_of(filename)
        totals[g] = totals.get(g, 0.0) + tottime
    whole = sum(totals.values())
    print(f"{args.case}: n = {n}, T = {steps}, {args.scheme}({args.s}), {args.reps} gradients")
    print(f"{'who':<45} {'own time':>9} {'share':>7}")
    for g, t in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"{g:<45} {t:>8.3f}s {100 * t / whole:>6.1f}%")
    if args.tree:
        try:
            from pyinstrument import Profiler
        except ImportError:
            print("(pyinstrument is not installed: pip install pyinstrument)")
            return 0
        p = Profiler(interval=0.001)
        p.start()
        for _ in range(args.reps):
            fn()
        p.stop()
        print(p.output_text(unicode=False, color=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
