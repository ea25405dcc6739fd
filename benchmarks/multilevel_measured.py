"""Two-level schedules measured: gradient time and peak RSS of a large state, one process each.

A 1-D heat step on a float64 state of n values, T steps, gradient of sum(x_T^2) with autograd:
`Multilevel(memory, disk)` with a temporary HDF5 file for the disk level (costs measured by the
driver; the same with reads ahead of the restores (``read_ahead=True``); then the measured costs
with the overlap model; and fixed costs of 4 steps per write and
read, without and with the overlap model), against `Revolve(memory + disk)` all in
memory and `Revolve(memory)` in memory only. Each configuration runs in a fresh process so that
its peak RSS is its own; times are the best of ``--repeat`` runs.

Peak RSS is given twice, in states of the loop: the process's peak (``ru_maxrss``, the
interpreter and libraries included) and that peak less the RSS just before the gradient (the
input, the interpreter and the libraries loaded by then), which is what the run itself added.

``--slow-write S`` emulates a slower disk than this machine's (whose writes land in the page cache
in less than a step): each checkpoint write waits S seconds more in the storage's writer thread,
as a network file system would; the driver's measured costs include the wait.

``--calibrate K`` measures the costs before the runs instead, in a process of their own: the
slowest of K flushed disk writes (a write slower than planned makes the overlap plan wait, a
faster one costs nothing) and the medians of K reads of the input and K taped steps with their
reverse (``"backward"``: what a recorded step hides a write behind in the overlap model), each
over the median of K passive steps chained as the loop runs them.
The driver's own measurement takes the fastest of the loop's first three steps (chained) and
one write, which a busy machine can skew by a factor of two. Every ``multilevel`` plan then
uses the calibrated figures.

``--rounds R`` runs every configuration R times in turn (a fresh process each time, each timing
the best of ``--repeat``) and keeps each one's best, so that a change of the machine's load
during the run falls on every configuration alike. The first ``multilevel`` run measures the
costs; every later plan, plain or overlap, uses those same figures. The load average is printed
before and after.

Run: ``PYTHONPATH=. python benchmarks/multilevel_measured.py [--n 1000000] [--steps 200]
[--memory 3] [--disk 30] [--repeat 1] [--rounds 1] [--calibrate K]
[--configs multilevel,revolve-all,...] [--slow-write S]``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

CONFIGS = [
    "multilevel",
    "multilevel-read-ahead",
    "multilevel-overlap",
    "multilevel-4",
    "multilevel-4-overlap",
    "revolve-all",
    "revolve-memory",
]
# Fixed costs for the overlap comparison (a write and a read of 4 steps each).
FIXED = {"write": 4.0, "read": 4.0}


def _rss() -> int:
    """The process's resident set now, in bytes (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _slow_writes(seconds: float) -> None:
    """Make every checkpoint file write wait ``seconds`` first (in the writer thread)."""
    from ckpt_transform.storage.hdf5.layout import CheckpointFile

    write = CheckpointFile.write

    def slow_write(self: Any, *args: Any, **kwargs: Any) -> Any:
        time.sleep(seconds)
        return write(self, *args, **kwargs)

    CheckpointFile.write = slow_write  # type: ignore[method-assign]


def _step(x: Any, i: int) -> Any:
    """The heat step of every configuration (autograd's numpy, so that it can be taped)."""
    import autograd.numpy as np

    return x + 0.2 * (np.roll(x, 1) - 2.0 * x + np.roll(x, -1))


def calibrate(args: argparse.Namespace) -> dict[str, float]:
    """The slowest flushed disk write and the median read and taped step, in median steps."""
    import statistics

    import autograd.numpy as anp
    import numpy as np
    from autograd import grad

    from ckpt_transform.storage.hdf5 import HDF5Storage

    if args.slow_write:
        _slow_writes(args.slow_write)
    x = np.sin(np.linspace(0.0, 6.0, args.n))
    k = args.calibrate

    def timed(fn: Any) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    # steps chained as the loop runs them (the same step run again from one state, its result
    # dropped, is about 25 % slower: its arrays are faulted in afresh each time)
    chained, y = [], x
    for i in range(k + 1):
        start = time.perf_counter()
        y = _step(y, i)
        chained.append(time.perf_counter() - start)
    step = statistics.median(chained[1:])
    taped = grad(lambda x: anp.sum(_step(x, 0) * x))  # a taped step and its reverse
    backward = statistics.median(timed(functools.partial(taped, x)) for _ in range(k))
    writes, reads = [], []
    with HDF5Storage().session() as session:
        for slot in range(k):
            start = time.perf_counter()
            session.put(slot, 0, [x], "x")
            session.flush()
            writes.append(time.perf_counter() - start)
            reads.append(timed(functools.partial(session.get, slot)))
            session.delete(slot)
    return {
        "write": float(f"{max(writes) / step:.2g}"),
        "read": float(f"{statistics.median(reads) / step:.2g}"),
        "backward": float(f"{backward / step:.2g}"),
    }


def child(args: argparse.Namespace) -> None:
    import autograd.numpy as np
    from autograd import grad

    from ckpt_transform import Multilevel, Revolve, checkpointed_for

    config, n, steps, memory, disk = args.child, args.n, args.steps, args.memory, args.disk
    repeat, costs = args.repeat, args.costs
    if args.slow_write:
        _slow_writes(args.slow_write)

    step = _step
    if config == "multilevel":  # costs measured by the driver, or those measured before
        scheme = Multilevel(memory, disk, costs=json.loads(costs) or None)
    elif config == "multilevel-read-ahead":  # reads ahead during the VJPs: one state more
        scheme = Multilevel(memory, disk, read_ahead=True)
    elif config == "multilevel-overlap":
        scheme = Multilevel(memory, disk, costs={**json.loads(costs), "overlap": True})
    elif config == "multilevel-4":
        scheme = Multilevel(memory, disk, costs=FIXED)
    elif config == "multilevel-4-overlap":
        scheme = Multilevel(memory, disk, costs={**FIXED, "overlap": True})
    elif config == "revolve-all":
        scheme = Revolve(memory + disk)
    else:
        scheme = Revolve(memory)
    seen = {}

    def loss(x):
        out = checkpointed_for(step, x, steps, scheme, report=lambda s: seen.update(s=s))
        return np.sum(out**2)

    x0 = np.sin(np.linspace(0.0, 6.0, n))
    before = _rss()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        grad(loss)(x0)
        best = min(best, time.perf_counter() - start)
    stats = seen["s"]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps(
            {
                "config": config,
                "seconds": best,
                "rss_states": rss / x0.nbytes,
                "added_states": (rss - before) / x0.nbytes,
                "evaluations": stats.evaluations,
                "disk_writes": stats.disk_writes,
                "disk_reads": stats.disk_reads,
                "costs": stats.costs,
            }
        )
    )


def run_rounds(args: argparse.Namespace, configs: list[str]) -> dict[str, Any]:
    """Each configuration ``args.rounds`` times in turn, a fresh process each; the best of each."""
    results: dict[str, Any] = {}
    costs = "{}"
    if args.calibrate:
        argv = [sys.executable, __file__, "--child", "calibrate"]
        for name in ("n", "calibrate", "slow_write"):
            argv += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
        out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
        costs = out.strip().splitlines()[-1]
    for _ in range(args.rounds):
        for config in configs:
            argv = [sys.executable, __file__, "--child", config, "--costs", costs]
            for name in ("n", "steps", "memory", "disk", "repeat", "slow_write"):
                argv += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
            out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            if config == "multilevel" and costs == "{}":  # later plans use the costs measured
                measured = dict(result["costs"])
                measured.pop("measured", None)
                costs = json.dumps(measured)
            best = results.get(config)
            if best is None:
                results[config] = result
            elif result["seconds"] < best["seconds"]:
                best["seconds"] = result["seconds"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--memory", type=int, default=3)
    parser.add_argument("--disk", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--calibrate", type=int, default=0)
    parser.add_argument("--child", default=None)
    parser.add_argument("--costs", default="{}")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--slow-write", type=float, default=0.0)
    args = parser.parse_args()
    if args.child == "calibrate":
        print(json.dumps(calibrate(args)))
        return
    if args.child:
        child(args)
        return
    configs = args.configs.split(",")
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown or "revolve-all" not in configs:
        parser.error(f"--configs: {unknown} unknown, or revolve-all (the baseline) missing")
    load_before = os.getloadavg()
    results = run_rounds(args, configs)
    load_after = os.getloadavg()
    base = results["revolve-all"]["seconds"]
    print(
        f"n = {args.n} float64 values ({args.n * 8 / 1e6:.0f} MB), T = {args.steps}, memory "
        f"{args.memory}, disk {args.disk}"
        + (f", each write {args.slow_write} s slower" if args.slow_write else "")
        + f"; best of {args.rounds} round(s) x {args.repeat} repeat(s); load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    print(
        "| configuration | gradient (s) | vs Revolve(memory + disk) in memory | peak RSS (states) "
        "| added by the run (states) | evaluations | disk writes / reads | costs used |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for config, r in results.items():
        print(
            f"| {config} | {r['seconds']:.2f} | {r['seconds'] / base:.2f}x | "
            f"{r['rss_states']:.1f} | {r['added_states']:.1f} | {r['evaluations']} | "
            f"{r['disk_writes']} / "
            f"{r['disk_reads']} | {r['costs']} |"
        )


if __name__ == "__main__":
    main()
