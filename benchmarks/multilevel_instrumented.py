"""Where a two-level run's time goes: steps, disk waits and the writes themselves, plan by plan.

The heat step of `multilevel_measured.py` on n values, T steps, `Multilevel(memory, disk)` with
the costs given (no measurement, so both plans are made from the same figures), the plain model
and the overlap model (``costs["overlap"] = True``) run in turn, ``--pairs`` times, each run in
a fresh process after one warm-up gradient in it. Each run prints one JSON line:

* ``total``: the gradient's wall time (s); ``step_time``: the time spent inside the step (s),
  over ``evaluations`` calls (passive and taped);
* ``waits``: the time the main thread spent in each kind of disk call (``put`` waits for the
  write before it, ``get`` for a read and any write queued ahead of it, ``close`` for the last
  writes), with the number of calls;
* ``writes``: the fastest, median and slowest write in the storage's writer thread (s), with
  ``--slow-write`` included.

A plan that counts on hiding a write of W steps behind W steps waits in ``put`` when the write
really takes longer; ``writes`` over ``step_time / evaluations`` says what W really was. The
medians of the paired totals are printed at the end.

Run: ``PYTHONPATH=. python benchmarks/multilevel_instrumented.py --write 12 --read 0.34
--backward 3.9 --slow-write 0.1 [--pairs 6] [--n 1000000] [--steps 200] [--memory 3]
[--disk 30]``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _timed_methods(cls: Any, names: tuple[str, ...], spent: dict, calls: dict) -> None:
    """Wrap ``cls``'s methods ``names`` to add their time and calls into ``spent``, ``calls``."""
    for name in names:
        method = getattr(cls, name)

        def timed(*args: Any, _method: Any = method, _name: str = name, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return _method(*args, **kwargs)
            finally:
                spent[_name] += time.perf_counter() - start
                calls[_name] += 1

        setattr(cls, name, timed)


def child(args: argparse.Namespace) -> None:
    import autograd.numpy as np
    import multilevel_measured as measured
    from autograd import grad

    from ckpt_transform import Multilevel, checkpointed_for
    from ckpt_transform.storage.hdf5.layout import CheckpointFile
    from ckpt_transform.storage.hdf5.session import HDF5Session

    if args.slow_write:
        measured._slow_writes(args.slow_write)
    spent: dict[str, float] = collections.defaultdict(float)
    calls: dict[str, int] = collections.Counter()
    _timed_methods(HDF5Session, ("put", "get", "delete", "close"), spent, calls)
    writes: list[float] = []
    write = CheckpointFile.write

    def timed_write(self: Any, *a: Any, **k: Any) -> Any:
        start = time.perf_counter()
        try:
            return write(self, *a, **k)
        finally:
            writes.append(time.perf_counter() - start)

    CheckpointFile.write = timed_write  # type: ignore[method-assign]
    in_step = [0.0]

    def step(x: Any, i: int) -> Any:
        start = time.perf_counter()
        out = measured._step(x, i)
        in_step[0] += time.perf_counter() - start
        return out

    costs: dict[str, Any] = {"write": args.write, "read": args.read, "backward": args.backward}
    if args.child == "overlap":
        costs["overlap"] = True
    scheme = Multilevel(args.memory, args.disk, costs=costs)
    seen: dict[str, Any] = {}

    def loss(x: Any) -> Any:
        out = checkpointed_for(step, x, args.steps, scheme, report=lambda s: seen.update(s=s))
        return np.sum(out**2)

    x0 = np.sin(np.linspace(0.0, 6.0, args.n))
    grad(loss)(x0)  # warm-up
    spent.clear()
    calls.clear()
    writes.clear()
    in_step[0] = 0.0
    start = time.perf_counter()
    grad(loss)(x0)
    total = time.perf_counter() - start
    stats = seen["s"]
    ordered = sorted(writes) or [0.0]
    print(
        json.dumps(
            {
                "plan": args.child,
                "total": round(total, 3),
                "step_time": round(in_step[0], 3),
                "evaluations": stats.evaluations,
                "disk_writes": stats.disk_writes,
                "disk_reads": stats.disk_reads,
                "waits": {k: [round(v, 3), calls[k]] for k, v in spent.items()},
                "writes": [
                    round(w, 3) for w in (ordered[0], statistics.median(ordered), ordered[-1])
                ],
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=("plain", "overlap"), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--memory", type=int, default=3)
    parser.add_argument("--disk", type=int, default=30)
    parser.add_argument("--write", type=float, required=True, help="write cost, in steps")
    parser.add_argument("--read", type=float, required=True, help="read cost, in steps")
    parser.add_argument("--backward", type=float, required=True, help="taped step + reverse")
    parser.add_argument("--slow-write", type=float, default=0.0)
    parser.add_argument("--pairs", type=int, default=6)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    totals: dict[str, list[float]] = {"plain": [], "overlap": []}
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for _ in range(args.pairs):
        for plan in ("plain", "overlap"):
            argv = [sys.executable, __file__, "--child", plan]
            for name in ("n", "steps", "memory", "disk", "write", "read", "backward"):
                argv += [f"--{name}", str(getattr(args, name))]
            argv += ["--slow-write", str(args.slow_write)]
            out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
            line = out.strip().splitlines()[-1]
            print(line, flush=True)
            totals[plan].append(json.loads(line)["total"])
    faster = sum(o < p for p, o in zip(totals["plain"], totals["overlap"]))
    plain, overlap = statistics.median(totals["plain"]), statistics.median(totals["overlap"])
    print(
        f"medians: plain {plain:.2f} s, overlap {overlap:.2f} s ({1 - overlap / plain:+.1%} "
        f"faster); the overlap plan faster in {faster} of {args.pairs} pairs; load average "
        f"after: {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
