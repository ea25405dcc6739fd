"""Plan building: Revolve's whole schedule streamed to the end, against checkpoint_schedules.

    python benchmarks/plans.py            # T = 1e5, s = 100 (and 1e4), about half a minute
    python benchmarks/plans.py --quick    # T = 1e4 only

Rows, each timed in the same repetitions (harness.compare):

* ours, before: the same Revolve plan with every action made by its keyword constructor and
  streamed through the generic `Scheme.schedule` (what `Revolve.schedule` did before the
  positional factories and the chained schedule);
* ours: ``for action in Revolve(s).schedule(T)``, every action of the primal run and of the
  reverse sweep, streamed to the end;
* checkpoint_schedules' ``MultistageCheckpointSchedule(T, s, 0)`` (the same binomial
  checkpointing) iterated to its ``EndReverse``.

The baseline is ours (after); a ratio above 1 is slower than ours.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness
import peers
from harness import fmt_ms, fmt_ratio, table

from ckpt_transform.schemes import revolve
from ckpt_transform.schemes.actions import Advance, Free, Record, Restore, Reverse, Store
from ckpt_transform.schemes.base import Scheme

_KEYWORD = {
    "_advance": lambda a, b: Advance(n0=a, n1=b),
    "_record": lambda a, b: Record(n0=a, n1=b),
    "_reverse": lambda a, b: Reverse(n0=a, n1=b),
    "_store": lambda a, b: Store(n=a, slot=b),
    "_restore": lambda a, b: Restore(n=a, slot=b),
    "_free": lambda a, b: Free(n=a, slot=b),
}


def ours(steps: int, s: int) -> Callable[[], int]:
    def run() -> int:
        count = 0
        for _ in revolve.Revolve(s).schedule(steps):
            count += 1
        return count

    return run


def ours_before(steps: int, s: int) -> Callable[[], int]:
    """The same plan through keyword constructors and the generic generator schedule."""

    def run() -> int:
        saved = {name: getattr(revolve, name) for name in _KEYWORD}
        for name, make in _KEYWORD.items():
            setattr(revolve, name, make)
        try:
            count = 0
            for _ in Scheme.schedule(revolve.Revolve(s), steps):
                count += 1
            return count
        finally:
            for name, make in saved.items():
                setattr(revolve, name, make)

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T = 1e4 only")
    args = parser.parse_args(argv)
    sizes = [(10_000, 100)] if args.quick else [(10_000, 100), (100_000, 100)]
    rows: list[list[Any]] = []
    for steps, s in sizes:
        assert ours(steps, s)() == ours_before(steps, s)()
        candidates = {"before": ours_before(steps, s)}
        if peers.have("checkpoint_schedules"):
            candidates["cs"] = lambda steps=steps, s=s: peers.cs_schedule_actions(steps, s)
        base, out = harness.compare(ours(steps, s), candidates, 5 if args.quick else 7)
        label = f"T = {steps}, s = {s}"
        rows.append([label, "ours: Revolve(s).schedule(T), streamed", fmt_ms(base.median), "1.00x"])
        before = out["before"]
        rows.append(
            [label, "ours before (keyword actions, generic schedule)", fmt_ms(before.median)]
        )
        rows[-1].append(fmt_ratio(before))
        if "cs" in out:
            rows.append([label, "checkpoint_schedules Multistage(T, s, 0), iterated"])
            rows[-1] += [fmt_ms(out["cs"].median), fmt_ratio(out["cs"])]
    print(table(["size", "plan", "median time", "ratio to ours"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
