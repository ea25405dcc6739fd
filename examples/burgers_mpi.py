"""2D viscous Burgers on a px x py grid of MPI processes, with Revolve and per-rank HDF5 files.

The model of ``examples/burgers.py`` (the same equations, grid, initial field and time step),
split over a periodic Cartesian process grid: each rank holds an (n/px) x (n/py) block of the
velocity (u, v), and a time step first fills one ghost cell on each side from the neighbours
(`ckpt_transform.mpi.exchange_halos`, u and v together: one message per neighbour), then applies
burgers.py's step to the extended block and keeps its interior (`ckpt_transform.mpi.interior`).
Every rank runs the same ``@checkpoint_struct(Revolve(...))`` loop on its block, with its own
checkpoint file.

We differentiate the final kinetic energy, the sum over ranks of each block's share, with
respect to the initial velocity (distributed: each rank gets the gradient on its block) and the
viscosity (replicated: every rank gets the whole derivative), in one call of
`ckpt_transform.mpi.value_and_grad`. Rank 0 then runs the one-process model of
``examples/burgers.py`` on the same grid and checks the gathered gradient against it (relative
difference below 1e-12), prints the time of both runs and each rank's checkpoint bytes, and
draws the gradient with the process grid on it.

Run: ``mpiexec -n 4 python examples/burgers_mpi.py [--n N] [--steps T] [--snapshots S]
[--dims PX PY] [--out PNG]`` (any number of ranks, including 1).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import autograd.numpy as np
from mpi4py import MPI

from ckpt_transform import HDF5Storage, Revolve, checkpoint_struct, mpi

sys.path.insert(0, str(Path(__file__).resolve().parent))
import burgers  # the one-process model, beside this file


def burgers_step(u, v, nu, dx, dt, comm):
    """One forward Euler step on this rank's block.

    burgers.py's own step, applied to the block extended by one ghost cell on each side, then
    cut back to the block: inside, every stencil reads the same values in the same order as the
    one-process step on the whole grid (the wrapped-around values at the extended block's edge
    are cut away).
    """
    pu, pv = mpi.exchange_halos((u, v), comm)  # both fields, one message per neighbour
    u_next, v_next = burgers.burgers_step(pu, pv, nu, dx, dt)
    return mpi.interior(u_next, comm), mpi.interior(v_next, comm)


def final_energy(u, v, nu, dx, dt, steps, comm):
    """This rank's share of the kinetic energy after ``steps`` steps from its block of (u, v)."""
    for _ in range(steps):
        u, v = burgers_step(u, v, nu, dx, dt, comm)
    return burgers.kinetic_energy(u, v, dx)


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="grid points per side (default 64)")
    parser.add_argument("--steps", type=int, default=200, help="time steps (default 200)")
    parser.add_argument("--snapshots", type=int, default=10, help="Revolve snapshots (10)")
    parser.add_argument("--nu", type=float, default=0.01, help="viscosity (default 0.01)")
    parser.add_argument("--dims", type=int, nargs=2, default=None, help="process grid px py")
    parser.add_argument("--out", default="burgers_mpi.png", help="picture ('' for none)")
    args = parser.parse_args(argv)

    world = MPI.COMM_WORLD
    rank, size = world.Get_rank(), world.Get_size()
    dims = args.dims or MPI.Compute_dims(size, 2)
    if dims[0] * dims[1] != size or min(args.n // dims[0], args.n // dims[1]) < 1:
        parser.error(f"--dims {dims} does not fit {size} ranks and a {args.n} x {args.n} grid")
    comm = world.Create_cart(dims, periods=[True, True])

    n, nu = args.n, args.nu
    dx = 1.0 / n
    u0, v0 = burgers.initial_velocity(n)
    dt = burgers.stable_time_step(u0, v0, nu, dx)
    block = mpi.local_slices(comm, (n, n))
    u0_mine, v0_mine = u0[block], v0[block]

    # one checkpoint file per rank, in a directory rank 0 makes for this run
    folder = world.bcast(tempfile.mkdtemp(prefix="burgers_mpi-") if rank == 0 else None)
    scheme = Revolve(args.snapshots, storage=HDF5Storage(f"{folder}/ckpt-rank{rank}.h5"))
    energy = checkpoint_struct(scheme)(final_energy)
    if rank == 0:
        print(f"2D viscous Burgers: {n} x {n} periodic grid on {dims[0]} x {dims[1]} ranks")
        print(f"  ν = {nu}, dt = {dt:.3e}, {args.steps} steps, Revolve({args.snapshots}) per rank")
        print(f"  checkpoints of rank r in {folder}/ckpt-rank<r>.h5 (removed after the run)")

    world.Barrier()
    start = time.perf_counter()
    E, (gu, gv, gnu) = mpi.value_and_grad(energy, (0, 1, 2), comm, replicated=2)(
        u0_mine, v0_mine, nu, dx, dt, args.steps, comm
    )
    world.Barrier()
    elapsed = time.perf_counter() - start
    ckpt_bytes = world.gather(energy.stats.checkpoint_bytes_peak)
    grad_u = mpi.gather(gu, comm, (n, n))
    grad_v = mpi.gather(gv, comm, (n, n))
    if rank == 0:
        shutil.rmtree(folder, ignore_errors=True)

    ok = True
    if rank == 0:
        print(f"final kinetic energy {E:.12f}, dE/dν = {gnu:.10e}")
        print(f"distributed gradient on {size} ranks: {elapsed:.2f} s")
        # the one-process run of burgers.py's model, same grid, Revolve in memory
        single = checkpoint_struct(Revolve(args.snapshots))(burgers.final_energy)
        start = time.perf_counter()
        E1 = single(u0, v0, nu, dx, dt, args.steps)
        from autograd import grad

        ref_u, ref_v, ref_nu = grad(single, (0, 1, 2))(u0, v0, nu, dx, dt, args.steps)
        elapsed1 = time.perf_counter() - start
        print(f"one-process gradient (burgers.py's model): {elapsed1:.2f} s")
        errors = {
            "final energy": abs(E - E1) / abs(E1),
            "dE/du0": relative(grad_u, ref_u),
            "dE/dv0": relative(grad_v, ref_v),
            "dE/dν": abs(gnu - ref_nu) / abs(ref_nu),
        }
        print("relative difference from the one-process run:")
        for name, err in errors.items():
            print(f"  {name:14s} {err:.1e}")
        ok = max(errors.values()) <= 1e-12
        print("check against the one-process gradient:", "passed" if ok else "FAILED (> 1e-12)")
        single_bytes = single.stats.checkpoint_bytes_peak
        print("checkpoint bytes at most, per rank (HDF5 file each):")
        for r, b in enumerate(ckpt_bytes):
            print(f"  rank {r}: {b}")
        print(f"  one process: {single_bytes} (that / {size} ranks = {single_bytes // size})")
        if args.out:
            _plot(grad_u / dx**2, grad_v / dx**2, dims, args.out)
    ok = world.bcast(ok)
    return 0 if ok else 1


def _plot(gu: np.ndarray, gv: np.ndarray, dims: list[int], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib is not installed: no picture (pip install matplotlib to get {path})")
        return
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.6))
    for ax, g, name in ((axes[0], gu, "u0"), (axes[1], gv, "v0")):
        lim = float(np.max(np.abs(g)))
        im = ax.imshow(g.T, origin="lower", extent=(0, 1, 0, 1), cmap="RdBu_r", vmin=-lim, vmax=lim)
        for k in range(1, dims[0]):  # the blocks of the process grid
            ax.axvline(k / dims[0], color="k", lw=0.8, ls="--")
        for k in range(1, dims[1]):
            ax.axhline(k / dims[1], color="k", lw=0.8, ls="--")
        ax.set(
            title=f"δE(t_end) / δ{name}(x, y), {dims[0]} x {dims[1]} ranks", xlabel="x", ylabel="y"
        )
        fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())  # the same status on every rank
