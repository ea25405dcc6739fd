"""Where a checkpointed gradient's time goes, piece by piece, in microseconds per loop step.

    python benchmarks/driver_pieces.py [scalar|heat|decorated] [--s 20] [--steps 2000] [--reps 5]

Wraps the driver's methods, the autograd backend's taping and autograd's backward pass, the
memory storage and the statistics in timers, runs the gradient ``--reps`` times with
``Revolve(s)`` (``--s 0``: as many snapshots as steps) and prints each piece's own time
(nested pieces taken out) per loop step, then the plain autograd loop's per-step time, measured
after. The user's step counts where it runs: a passive step in ``_advance``, a taped one in
the taping. A timer costs about a microsecond per call, counted in the piece it wraps: read the
small figures as upper bounds. A plan stream made lazily (Revolve with few snapshots) is
computed inside the sweep that iterates it, so its cost shows in that sweep's own time.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import problems as P

from ckpt_transform.backends import autograd as backend
from ckpt_transform.runtime import driver
from ckpt_transform.runtime.stats import RunStats
from ckpt_transform.storage.memory import ArraySession

own: dict[str, int] = {}
_stack: list[int] = []


def wrap(owner: Any, name: str, label: str | None = None) -> None:
    """Replace ``owner.name`` by a timer around it (exclusive of nested timers)."""
    f = getattr(owner, name, None)
    if f is None:
        return
    label = label or name

    @functools.wraps(f)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter_ns()
        _stack.append(0)
        try:
            return f(*args, **kwargs)
        finally:
            dt = time.perf_counter_ns() - start
            inner = _stack.pop()
            own[label] = own.get(label, 0) + dt - inner
            if _stack:
                _stack[-1] += dt

    setattr(owner, name, timed)


DRIVER = (
    "_forward",
    "_forward_actions",
    "_forward_leaf",
    "_advance",
    "_advance_leaf",
    "_record",
    "_record_leaf",
    "_store_leaf",
    "_slot_action",
    "_split",
    "reverse",
    "_sweep",
    "_sweep_leaf",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "case", nargs="?", default="scalar", choices=("scalar", "heat", "decorated")
    )
    parser.add_argument("--s", type=int, default=0)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    T, s = args.steps, args.s or args.steps
    for name in DRIVER:
        wrap(driver._Run, name, f"driver {name}")
    wrap(driver, "_pull_leaf", "driver _pull_leaf")
    wrap(backend, "_segment_vjp", "autograd: taping a segment")
    wrap(backend, "backward_pass", "autograd: backward pass")
    for name in ("put", "get", "delete"):
        wrap(ArraySession, name, f"storage {name}")
    for name in ("_stored", "_freed", "_read", "_taped"):
        wrap(RunStats, name, f"stats {name}")
    driver.make_segment_vjp = backend.make_segment_vjp  # resolves the wrapped `_segment_vjp`
    if args.case == "scalar":
        step, x0 = P.scalar_step, 0.3
    else:
        step, x0 = P.heat_step(100), P.heat_x0(100)
    scheme = P.make_scheme("revolve", s)
    if args.case == "decorated":
        fn = P.decorated_heat_grad(100, T, scheme)
    else:
        fn = P.ours_grad(step, x0, T, scheme)
    fn()
    own.clear()
    start = time.perf_counter()
    for _ in range(args.reps):
        fn()
    total = time.perf_counter() - start
    base = P.plain_grad(step, x0, T)
    base()
    start = time.perf_counter()
    for _ in range(args.reps):
        base()
    plain = time.perf_counter() - start
    per = 1e3 * args.reps * T  # ns -> us per step
    print(f"{args.case}, T = {T}, Revolve({s}), {args.reps} gradients: us per loop step")
    print(f"  {'whole gradient (timers included)':<36} {1e6 * total / args.reps / T:9.2f}")
    for k, v in sorted(own.items(), key=lambda kv: -kv[1]):
        print(f"  {k:<36} {v / per:9.2f}")
    rest = 1e6 * total / args.reps / T - sum(own.values()) / per
    print(f"  {'the rest (plan stream, grad, loop)':<36} {rest:9.2f}")
    print(f"  {'autograd on the plain loop':<36} {1e6 * plain / args.reps / T:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
