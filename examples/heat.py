"""The explicit 1D heat equation from Checkpointing.jl's README, differentiated with Revolve(4).

A rod of n = 100 points starts at 0 except its left end, held at 20 (the right end is held at 0).
Each of the 500 steps replaces the interior by ``T + λ (T[i-1] - 2 T[i] + T[i+1])`` with λ = 0.5.
We differentiate the total heat at the end, sum(T_final), with respect to the initial field and to
λ, keeping at most 4 states instead of all 500, and check the result against plain autograd.

The loop is written as in the seed: ``@checkpoint_struct`` on ``sumheat``, whose loop updates the
fields of the struct ``heat``; the decorator rewrites that loop into one checkpointed call (run
with ``--show-source`` to read the code it generates).

Run: ``python examples/heat.py [--steps N] [--snapshots S] [--out heat.png] [--show-source]``
"""

# ruff: noqa: B007  (the time loop does not read its index, as in the seed)

from __future__ import annotations

import argparse
from dataclasses import dataclass

import autograd.numpy as np
from autograd import grad

from ckpt_transform import Revolve, checkpoint_struct
from ckpt_transform.schemes.cost import revolve_evaluations


@dataclass
class Heat:
    Tnext: np.ndarray  # the field after the latest step
    Tlast: np.ndarray  # the field before it
    n: int
    λ: float
    tsteps: int


def advance(heat: Heat) -> np.ndarray:
    """The next field: interior points diffuse, the two boundary values stay as they are.

    The seed's Julia ``advance`` writes ``next[i]`` into ``heat.Tnext`` in place; a function the
    checkpointed loop calls must instead return a new array (autograd cannot differentiate
    in-place writes, and the loop keeps earlier states to run it again from them).
    """
    last, lam = heat.Tlast, heat.λ
    interior = last[1:-1] + lam * (last[:-2] - 2 * last[1:-1] + last[2:])
    return np.concatenate([last[:1], interior, last[-1:]])


SCHEME = Revolve(4)  # the seed's choice: 4 snapshots for 500 steps


@checkpoint_struct(SCHEME)
def sumheat(heat: Heat, tsteps: int) -> float:
    for i in range(1, tsteps + 1):
        heat.Tlast = heat.Tnext  # Tlast .= Tnext
        heat.Tnext = advance(heat)
    return np.sum(heat.Tnext)


def heat(scheme: Revolve, tsteps: int, n: int = 100, lam: float = 0.5) -> tuple:
    """The seed's ``heat(scheme, tsteps)``: the final struct, its gradient and the run's figures.

    As with Enzyme's ``Duplicated(heat, dheat)``, differentiating with respect to the struct
    leaves ``heat`` at the loop's final state and returns ``dheat``, a ``Heat`` of gradients.
    """
    # sumheat.original is the undecorated function: decorating it again runs the same loop
    # under another scheme.
    run = sumheat if scheme is SCHEME else checkpoint_struct(scheme)(sumheat.original)
    state = initial(n, lam, tsteps)
    dheat = grad(run)(state, tsteps)
    return state, dheat, run.stats


def heat_step(heat: Heat) -> Heat:
    """One step with the struct rebuilt instead of updated: what plain autograd differentiates."""
    heat = Heat(heat.Tnext, heat.Tnext, heat.n, heat.λ, heat.tsteps)  # Tlast .= Tnext
    return Heat(advance(heat), heat.Tlast, heat.n, heat.λ, heat.tsteps)


def sumheat_plain(heat: Heat, tsteps: int) -> float:
    for i in range(1, tsteps + 1):
        heat = heat_step(heat)
    return np.sum(heat.Tnext)


def initial(n: int, lam: float, tsteps: int) -> Heat:
    T = np.zeros(n)
    T[0] = 20.0  # boundary conditions: 20 on the left, 0 on the right
    return Heat(Tnext=T, Tlast=np.zeros(n), n=n, λ=lam, tsteps=tsteps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--snapshots", type=int, default=4)
    parser.add_argument("--out", default="heat.png", help="picture to write ('' for none)")
    parser.add_argument(
        "--show-source", action="store_true", help="print the code @checkpoint_struct generated"
    )
    args = parser.parse_args()

    if args.show_source:
        print(sumheat.generated_source)
    scheme = SCHEME if args.snapshots == SCHEME.snapshots else Revolve(args.snapshots)
    final, dheat, stats = heat(scheme, args.steps, args.n)
    value = float(np.sum(final.Tnext))
    print(f"1D heat equation: n = {args.n}, λ = {final.λ}, {args.steps} steps, {scheme!r}")
    print(f"final field: sum {value:.6f}, min {final.Tnext.min():.4f}, max {final.Tnext.max():.4f}")
    print("  T[0:8]   =", np.array2string(final.Tnext[:8], precision=4))
    print("gradient of sum(T_final):")
    print("  d/dT0[1:-1] (interior): min {:.6f}, max {:.6f}".format(*_range(dheat.Tnext[1:-1])))
    print("  d/dT0[1:9]  =", np.array2string(dheat.Tnext[1:9], precision=4))
    print(f"  d/dλ        = {float(dheat.λ):.10f}")

    oracle = grad(sumheat_plain)(initial(args.n, 0.5, args.steps), args.steps)
    err = max(
        np.max(np.abs(dheat.Tnext - oracle.Tnext)) / np.max(np.abs(oracle.Tnext)),
        abs(dheat.λ - oracle.λ) / abs(oracle.λ),
    )
    print(f"  relative difference from plain autograd: {err:.1e}")

    optimum = revolve_evaluations(args.steps, args.snapshots)
    print("checkpointing:")
    print(f"  steps                          {stats.steps}")
    print(
        f"  primal evaluations             {stats.evaluations} "
        f"({stats.forward_steps} passive + {stats.recorded_steps} taped; "
        f"proven minimum {optimum})"
    )
    print(f"  snapshots held at most         {stats.max_snapshots} (plain autograd: {args.steps})")
    print(f"  checkpoint bytes at most       {stats.checkpoint_bytes_peak}")

    if args.out:
        _plot(final.Tnext, dheat.Tnext, args.out)


def _range(x: np.ndarray) -> tuple[float, float]:
    return float(np.min(x)), float(np.max(x))


def _plot(T: np.ndarray, dT: np.ndarray, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib is not installed: no picture (pip install matplotlib to get {path})")
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(T)
    ax1.set(title="temperature after the last step", xlabel="grid point", ylabel="T")
    ax2.plot(range(1, len(dT) - 1), dT[1:-1])
    ax2.set(
        title="gradient of sum(T_final) w.r.t. the initial field",
        xlabel="grid point",
        ylabel="d sum(T_final) / d T0",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
