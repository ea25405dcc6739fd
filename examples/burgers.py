"""2D viscous Burgers' equation on a periodic grid, with Revolve and checkpoints in an HDF5 file.

The velocity field (u, v) on the unit square, periodic in x and y, obeys

    u_t + u u_x + v u_y = ν (u_xx + u_yy)
    v_t + u v_x + v v_y = ν (v_xx + v_yy)

discretised on an n x n grid (dx = 1/n) with second-order central differences in space and
forward Euler in time: the explicit scheme of Checkpointing.jl's Burgers showcase, here on one
process and with periodic boundaries (``np.roll``). The time step is the stable one for this
scheme (Hindmarsh, Gresho & Griffiths, Int. J. Numer. Meth. Fluids 4(9), 853-897, 1984,
https://doi.org/10.1002/fld.1650040905): ``dt <= dx² / (4ν)`` and ``dt <= 2ν / max(u² + v²)``,
taken with a safety factor 0.8. The maximum of |u|, |v| does not grow under viscous Burgers
flow, so the step chosen from the initial field stays stable.

We differentiate the kinetic energy at the final time, ``E = ½ ∫ (u² + v²) dx dy``, with respect
to the initial velocity (u0, v0): two n x n gradient fields, from one reverse sweep. Revolve keeps
at most ``--snapshots`` velocity fields, in an HDF5 file (h5py) instead of memory. The gradient is
checked by a directional derivative: for a random direction d, ``<∇E, d>`` against the central
difference ``(E(x + εd) - E(x - εd)) / 2ε``.

Run: ``python examples/burgers.py [--n N] [--steps T] [--snapshots S] [--h5 FILE] [--out PNG]``
"""

from __future__ import annotations

import argparse

import autograd.numpy as np
from autograd import grad

from ckpt_transform import HDF5Storage, Revolve, checkpoint_struct
from ckpt_transform.schemes.cost import revolve_evaluations


def laplacian(f: np.ndarray, dx: float) -> np.ndarray:
    """Five-point Laplacian with periodic wrap-around (axis 0 is x, axis 1 is y)."""
    return (
        np.roll(f, 1, axis=0)
        + np.roll(f, -1, axis=0)
        + np.roll(f, 1, axis=1)
        + np.roll(f, -1, axis=1)
        - 4 * f
    ) / dx**2


def ddx(f: np.ndarray, dx: float, axis: int) -> np.ndarray:
    """Central difference along ``axis``, periodic."""
    return (np.roll(f, -1, axis=axis) - np.roll(f, 1, axis=axis)) / (2 * dx)


def burgers_step(u: np.ndarray, v: np.ndarray, nu: float, dx: float, dt: float) -> tuple:
    """One forward Euler step of the viscous Burgers equations: (u, v) at t -> at t + dt."""
    u_next = u + dt * (nu * laplacian(u, dx) - u * ddx(u, dx, 0) - v * ddx(u, dx, 1))
    v_next = v + dt * (nu * laplacian(v, dx) - u * ddx(v, dx, 0) - v * ddx(v, dx, 1))
    return u_next, v_next


def kinetic_energy(u: np.ndarray, v: np.ndarray, dx: float) -> float:
    """``½ ∫ (u² + v²)`` over the unit square (midpoint rule)."""
    return 0.5 * np.sum(u**2 + v**2) * dx**2


def final_energy(u, v, nu, dx, dt, steps):
    """E at t = steps * dt, from the initial velocity (u, v): the solver as one would write it.

    `main` decorates it with ``checkpoint_struct(Revolve(...))``; undecorated it is the plain
    loop, which is what the finite differences evaluate.
    """
    for _ in range(steps):
        u, v = burgers_step(u, v, nu, dx, dt)
    return kinetic_energy(u, v, dx)


def initial_velocity(n: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth periodic field: a cellular flow plus two shear waves that steepen into fronts."""
    x = np.arange(n) / n
    X, Y = np.meshgrid(x, x, indexing="ij")
    two_pi = 2 * np.pi
    u0 = np.sin(two_pi * X) * np.cos(two_pi * Y) + 0.5 * np.sin(two_pi * Y)
    v0 = -np.cos(two_pi * X) * np.sin(two_pi * Y) + 0.5 * np.cos(two_pi * X)
    return u0, v0


def stable_time_step(u0: np.ndarray, v0: np.ndarray, nu: float, dx: float) -> float:
    """0.8 of the largest stable forward Euler step for central advection-diffusion in 2D."""
    speed2 = float(np.max(u0**2 + v0**2))
    return 0.8 * min(dx**2 / (4 * nu), 2 * nu / speed2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="grid points per side (default 64)")
    parser.add_argument("--steps", type=int, default=400, help="time steps (default 400)")
    parser.add_argument("--snapshots", type=int, default=10, help="Revolve snapshots (10)")
    parser.add_argument("--nu", type=float, default=0.01, help="viscosity (default 0.01)")
    parser.add_argument("--h5", default=None, help="checkpoint file (default: a temporary file)")
    parser.add_argument("--out", default="burgers.png", help="picture to write ('' for none)")
    args = parser.parse_args(argv)
    if args.n < 4 or args.steps < 1:
        parser.error(f"need --n >= 4 and --steps >= 1, got --n {args.n} --steps {args.steps}")

    n, nu = args.n, args.nu
    dx = 1.0 / n
    u0, v0 = initial_velocity(n)
    dt = stable_time_step(u0, v0, nu, dx)
    storage = HDF5Storage(args.h5)
    scheme = Revolve(args.snapshots, storage=storage)
    print(f"2D viscous Burgers: {n} x {n} periodic grid, ν = {nu}, dt = {dt:.3e}")
    print(f"  {args.steps} steps to t = {args.steps * dt:.4f}, {scheme!r}")

    checkpointed = checkpoint_struct(scheme)(final_energy)
    E0 = kinetic_energy(u0, v0, dx)
    E = final_energy(u0, v0, nu, dx, dt, args.steps)
    dE_du0, dE_dv0 = grad(checkpointed, (0, 1))(u0, v0, nu, dx, dt, args.steps)
    stats = checkpointed.stats
    print(f"kinetic energy: initial {E0:.6f}, final {E:.6f}")
    print(
        f"gradient of the final energy: |dE/du0| max {np.max(np.abs(dE_du0)):.4e}, "
        f"|dE/dv0| max {np.max(np.abs(dE_dv0)):.4e}"
    )

    # Directional derivative against central differences, in a random direction of unit norm.
    rng = np.random.default_rng(0)
    du, dv = rng.standard_normal((2, n, n))
    norm = np.sqrt(np.sum(du**2 + dv**2))
    du, dv = du / norm, dv / norm
    eps = 1e-5
    e_plus = final_energy(u0 + eps * du, v0 + eps * dv, nu, dx, dt, args.steps)
    e_minus = final_energy(u0 - eps * du, v0 - eps * dv, nu, dx, dt, args.steps)
    fd = (e_plus - e_minus) / (2 * eps)
    ad = float(np.sum(dE_du0 * du) + np.sum(dE_dv0 * dv))
    print("directional derivative <grad E, d> (random unit d):")
    print(f"  reverse mode        {ad:.12e}")
    print(f"  central difference  {fd:.12e}  (ε = {eps:g})")
    print(f"  relative difference {abs(ad - fd) / abs(fd):.1e}")

    state_bytes = 2 * u0.nbytes
    print("checkpointing:")
    print(f"  steps                          {stats.steps}")
    print(
        f"  primal evaluations             {stats.evaluations} "
        f"({stats.forward_steps} passive + {stats.recorded_steps} taped; "
        f"proven minimum {revolve_evaluations(args.steps, args.snapshots)})"
    )
    print(f"  snapshots held at most         {stats.max_snapshots} (plain autograd: {args.steps})")
    print(f"  checkpoint file                {storage.last_path} (removed after the run)")
    print(
        f"  checkpoint bytes at most       {stats.checkpoint_bytes_peak} "
        f"(all {args.steps} states: {args.steps * state_bytes})"
    )

    if args.out:
        u, v = u0, v0
        for _ in range(args.steps):
            u, v = burgers_step(u, v, nu, dx, dt)
        # The picture shows the gradient per unit area, dE/du0 / dx², which does not change
        # with the grid (the functional derivative δE/δu0(x, y)); the printed gradient is per
        # grid value, dx² (1/n²) times smaller.
        _plot(u, v, dE_du0 / dx**2, dE_dv0 / dx**2, args.steps * dt, args.out)


def _plot(u, v, dE_du0, dE_dv0, t_end: float, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib is not installed: no picture (pip install matplotlib to get {path})")
        return
    extent = (0.0, 1.0, 0.0, 1.0)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    speed = np.sqrt(u**2 + v**2)
    im = axes[0].imshow(speed.T, origin="lower", extent=extent, cmap="viridis")
    n = u.shape[0]
    k = max(1, n // 16)
    x = (np.arange(n) / n)[::k]
    axes[0].quiver(x, x, u[::k, ::k].T, v[::k, ::k].T, color="white")
    axes[0].set(title=f"speed |(u, v)| at t = {t_end:.3f}", xlabel="x", ylabel="y")
    fig.colorbar(im, ax=axes[0])
    for ax, g, name in ((axes[1], dE_du0, "u0"), (axes[2], dE_dv0, "v0")):
        lim = float(np.max(np.abs(g)))
        im = ax.imshow(g.T, origin="lower", extent=extent, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set(title=f"δE(t_end) / δ{name}(x, y)", xlabel="x", ylabel="y")
        fig.colorbar(im, ax=ax, label=f"dE/d{name} / dx²  (gradient per unit area)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
