"""The driver's own cost per step, against the leanest executor of the same plan.

    python benchmarks/driver_floor.py [--case scalar|heat|decorated] [--scheme revolve]
                                      [--s 20] [--steps 2000] [--reps 9]

Times, interleaved in every repetition (CPU time of this process, so other processes' load
counts less): autograd on the plain loop (the baseline); one untraced run of the loop; the lean
executor below; `checkpointed_for` (or, for ``decorated``, the heat loop under
``@checkpoint_struct``) with the same scheme, its primal run alone and the whole gradient.
Each is printed in microseconds per loop step (medians), with the driver's own cost: ours minus
the lean executor, per step of the loop (one taped segment per step for Revolve).

The lean executor walks the scheme's plan with nothing but what it needs: a dict of
checkpoints, autograd's tracer entered by hand for each taped segment and its backward pass.
No checks, no statistics, no storage sessions: the floor a driver of this plan can reach on
autograd. Its gradient is checked against autograd's on the plain loop before timing.
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

import autograd.numpy as np
import problems as P
from autograd import make_vjp
from autograd.core import VJPNode, backward_pass
from autograd.tracer import new_box, trace_stack

from ckpt_transform import checkpointed_for
from ckpt_transform.schemes.actions import Advance, Free, Record, Restore, Reverse, Store


def _tape(step: Callable, x: Any, n0: int, n1: int) -> tuple[Any, Any]:
    root = VJPNode.new_root()
    trace_stack.top += 1
    try:
        box = new_box(x, trace_stack.top, root)
        for i in range(n0, n1):
            box = step(box, i)
    finally:
        trace_stack.top -= 1
    return box._node, box._value


def lean(step: Callable, x0: Any, steps: int, scheme: Any) -> Callable[[], Any]:
    """The gradient of sum(x_T) by the leanest executor of ``scheme``'s plan."""

    def run() -> Any:
        plan = scheme.plan(steps)
        slots: dict[int, Any] = {}
        tapes: dict[int, Any] = {}
        x = x0
        for a in plan.forward():
            kind = type(a)
            if kind is Advance:
                for i in range(a.n0, a.n1):
                    x = step(x, i)
            elif kind is Store:
                slots[a.slot] = x
            elif kind is Record:
                tapes[a.n1], x = _tape(step, x, a.n0, a.n1)
        g = np.ones_like(x)
        for a in plan.reverse(steps):
            kind = type(a)
            if kind is Reverse:
                g = backward_pass(g, tapes.pop(a.n1))
            elif kind is Restore:
                x = slots[a.slot]
            elif kind is Free:
                del slots[a.slot]
            elif kind is Record:
                tapes[a.n1], x = _tape(step, x, a.n0, a.n1)
            elif kind is Advance:
                for i in range(a.n0, a.n1):
                    x = step(x, i)
            elif kind is Store:
                slots[a.slot] = x
        return g

    return run


def primal_only(step: Callable, x0: Any, steps: int, scheme: Any) -> Callable[[], Any]:
    """`checkpointed_for` traced by autograd, its VJP never called: the primal run alone."""
    return lambda: make_vjp(lambda x: checkpointed_for(step, x, steps, scheme))(x0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="scalar", choices=("scalar", "heat", "decorated"))
    parser.add_argument("--scheme", default="revolve", choices=("revolve", "storeall"))
    parser.add_argument("--s", type=int, default=20, help="snapshots (0: as many as steps)")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args(argv)
    T = args.steps
    s = args.s or T
    if args.case == "scalar":
        step, x0 = P.scalar_step, np.float64(0.3)
    else:
        step, x0 = P.heat_step(100), P.heat_x0(100)
    scheme = P.make_scheme(args.scheme, s)
    cands = {
        "autograd on the plain loop": P.plain_grad(step, x0, T),
        "untraced loop": P.untraced(step, x0, T),
        "lean executor": lean(step, x0, T, scheme),
        "ours, primal run only": primal_only(step, x0, T, scheme),
        "ours": P.ours_grad(step, x0, T, scheme),
    }
    if args.case == "decorated":
        cands["ours"] = P.decorated_heat_grad(100, T, scheme)
        del cands["ours, primal run only"]
    want = cands["autograd on the plain loop"]()
    for name in ("lean executor", "ours"):
        got = cands[name]()
        if not np.allclose(got, want, rtol=1e-12, atol=0.0):
            raise AssertionError(f"{name}: gradient {got!r} differs from autograd's {want!r}")
    times: dict[str, list[float]] = {k: [] for k in cands}
    for r in range(args.reps):
        names = list(cands)
        names = names[r % len(names) :] + names[: r % len(names)]  # rotate the order
        for k in names:
            start = time.process_time()
            cands[k]()
            times[k].append(time.process_time() - start)
    per = {k: 1e6 * statistics.median(v) / T for k, v in times.items()}
    base = per["autograd on the plain loop"]
    label = f"{args.scheme}({s})" if args.scheme == "revolve" else args.scheme
    print(f"{args.case}, T = {T}, {label}, {args.reps} interleaved repetitions (CPU time)")
    for k, v in per.items():
        print(f"  {k:<28} {v:9.2f} us/step  ({v / base:.3f}x the baseline)")
    print(
        f"  driver's own cost: {per['ours'] - per['lean executor']:.2f} us/step "
        f"({(per['ours'] - per['lean executor']) / base:.3f}x the baseline's step)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
