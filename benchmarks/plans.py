"""Plan building: Revolve's whole schedule streamed to the end, against checkpoint_schedules.

    python benchmarks/plans.py            # T = 1e4 and 1e5, s = 100, about a minute
    python benchmarks/plans.py --quick    # T = 1e4 only
    python benchmarks/plans.py --reps 15  # more repetitions (default 7, 5 with --quick)

Rows, timed in the same repetitions (harness.compare), the baseline being ours:

* ours: ``for action in Revolve(s).schedule(T)``, every action of the primal run and of the
  reverse sweep, streamed to the end;
* checkpoint_schedules' ``MultistageCheckpointSchedule(T, s, 0)`` (the same binomial
  checkpointing) iterated to its ``EndReverse``; a ratio above 1 is slower than ours.

Ours is also timed alone in process CPU time (``time.process_time``: the least and the median
over the repetitions), the figure the issue's 0.2 s goal for T = 1e5 is read against: on a
machine shared with other work the wall time counts the waits for a core as well. Beside it, in
the same units, the floor of any plan made of these objects: as many `Advance` actions made
by one `map` in C over prepared field tuples (``actions.action_maker``), streamed through the
same loop, with no planning at all.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness
import peers
from harness import fmt_ms, fmt_ratio, table

from ckpt_transform.schemes import revolve
from ckpt_transform.schemes.actions import Advance, action_maker


def ours(steps: int, s: int) -> Callable[[], int]:
    def run() -> int:
        count = 0
        for _ in revolve.Revolve(s).schedule(steps):
            count += 1
        return count

    return run


def floor(count: int) -> Callable[[], int]:
    """``count`` actions made and streamed with no planning: what the objects alone cost."""
    make = action_maker(Advance)

    def run() -> int:
        n = 0
        for _ in map(make, zip(range(count), range(1, count + 1))):
            n += 1
        return n

    return run


def cpu_seconds(fn: Callable[[], Any], reps: int) -> tuple[float, float]:
    """The least and the median process CPU time of ``reps`` calls of ``fn``."""
    times = []
    for _ in range(reps):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times), statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T = 1e4 only")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 7, 5 quick)")
    args = parser.parse_args(argv)
    sizes = [(10_000, 100)] if args.quick else [(10_000, 100), (100_000, 100)]
    rows: list[list[Any]] = []
    cpu: list[str] = []
    reps = args.reps or (5 if args.quick else 7)
    for steps, s in sizes:
        candidates = {}
        if peers.have("checkpoint_schedules"):
            candidates["cs"] = lambda steps=steps, s=s: peers.cs_schedule_actions(steps, s)
        base, out = harness.compare(ours(steps, s), candidates, reps)
        label = f"T = {steps}, s = {s}"
        rows.append([label, "ours: Revolve(s).schedule(T), streamed", fmt_ms(base.median), "1.00x"])
        if "cs" in out:
            rows.append([label, "checkpoint_schedules Multistage(T, s, 0), iterated"])
            rows[-1] += [fmt_ms(out["cs"].median), fmt_ratio(out["cs"])]
        least, median = cpu_seconds(ours(steps, s), reps)
        count = ours(steps, s)()
        low, mid = cpu_seconds(floor(count), reps)
        cpu.append(
            f"{label}: ours in process CPU time: least {least:.3f} s, median {median:.3f} s; "
            f"{count} actions made with no planning (the floor): least {low:.3f} s, "
            f"median {mid:.3f} s"
        )
    print(table(["size", "plan", "median time", "ratio to ours"], rows))
    print("\n".join(["", *cpu]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
