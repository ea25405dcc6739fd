"""Recover an unknown diffusion coefficient from observed final temperatures.

A rod on [0, 1] with both ends held at 0 starts from a known temperature profile and diffuses,
``T_t = D T_xx``, discretised as in examples/heat.py: explicit steps ``T + λ (T[i-1] - 2 T[i] +
T[i+1])`` with ``λ = D dt / dx²``. The time step is fixed so that every D in the search interval
[D_MIN, D_MAX] is stable (λ <= 0.4 < 1/2).

Sensors at a few points read the temperature at the final time, with Gaussian noise of standard
deviation σ. We recover D by least squares,

    J(D) = ½ Σ_k ((T_final(D)[x_k] - observed_k) / σ)²,

minimised with scipy.optimize.minimize (L-BFGS-B, bounds [D_MIN, D_MAX]). Its ``jac`` is dJ/dD
by reverse mode through the solver's loop, written as a plain loop and checkpointed by
``checkpoint_struct(Revolve(...))``: a few states are kept instead of every step's. The
statistical error to expect from the noise is ``σ / |dT_sensors/dD|`` (the Gauss-Newton standard
error; dT/dD by forward mode through the same loop); the script prints the recovered D, its error
and that standard error.

Run: ``python examples/fit_diffusion.py [--n N] [--steps T] [--noise SIGMA] [--snapshots S]``
"""

from __future__ import annotations

import argparse

import autograd.numpy as np
from autograd import make_jvp, value_and_grad
from scipy.optimize import minimize

from ckpt_transform import Revolve, checkpoint_struct

D_MIN, D_MAX = 1e-3, 1.0
D_TRUE = 0.37
D_GUESS = 0.05


def diffuse(T: np.ndarray, lam: float) -> np.ndarray:
    """One explicit step; the two end values stay as they are."""
    interior = T[1:-1] + lam * (T[:-2] - 2 * T[1:-1] + T[2:])
    return np.concatenate([T[:1], interior, T[-1:]])


def final_temperature(T0: np.ndarray, D: float, dt: float, dx: float, steps: int) -> np.ndarray:
    """The temperature after ``steps`` steps: the solver, written as a plain loop.

    `Experiment` decorates it with ``checkpoint_struct(scheme)``.
    """
    lam = D * dt / dx**2
    T = T0
    for _ in range(steps):
        T = diffuse(T, lam)
    return T


class Experiment:
    """The rod, the sensors, the observations, and the checkpointed forward model."""

    def __init__(self, n: int, steps: int, sensors: int, noise: float, scheme: Revolve) -> None:
        self.x = np.linspace(0.0, 1.0, n)
        self.dx = self.x[1] - self.x[0]
        self.dt = 0.4 * self.dx**2 / D_MAX  # λ = 0.4 D / D_MAX <= 0.4
        self.steps = steps
        self.model = checkpoint_struct(scheme)(final_temperature)
        # a smooth hump and a sharper bump, both zero at the ends
        self.T0 = (
            np.sin(np.pi * self.x)
            + np.exp(-(((self.x - 0.3) / 0.05) ** 2)) * self.x * (1 - self.x) * 4
        )
        self.sensors = np.linspace(0, n - 1, sensors + 2).astype(int)[1:-1]
        self.sigma = noise if noise > 0 else 1e-3  # scale of J when the data are exact
        rng = np.random.default_rng(1)
        exact = self.predict(D_TRUE)
        self.observed = exact + noise * rng.standard_normal(exact.shape)

    def predict(self, D: float) -> np.ndarray:
        """Temperatures at the sensors after ``steps`` steps with diffusion coefficient D."""
        return self.model(self.T0, D, self.dt, self.dx, self.steps)[self.sensors]

    def misfit(self, D: float) -> float:
        r = (self.predict(D) - self.observed) / self.sigma
        return 0.5 * np.sum(r**2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=101, help="grid points (default 101)")
    parser.add_argument("--steps", type=int, default=1000, help="time steps (default 1000)")
    parser.add_argument("--sensors", type=int, default=9, help="sensors (default 9)")
    parser.add_argument("--noise", type=float, default=1e-3, help="noise σ (default 1e-3)")
    parser.add_argument("--snapshots", type=int, default=16, help="Revolve snapshots (16)")
    args = parser.parse_args(argv)
    if args.n < 3 or args.steps < 1 or not 1 <= args.sensors <= args.n - 2 or args.noise < 0:
        parser.error("need --n >= 3, --steps >= 1, 1 <= --sensors <= n - 2 and --noise >= 0")

    scheme = Revolve(args.snapshots)
    exp = Experiment(args.n, args.steps, args.sensors, args.noise, scheme)
    print(
        f"rod of {args.n} points, {args.steps} steps to t = {args.steps * exp.dt:.4g}, "
        f"{args.sensors} sensors, noise σ = {args.noise:g}"
    )
    print(f"true D = {D_TRUE}, first guess {D_GUESS}, bounds [{D_MIN}, {D_MAX}], {scheme!r}")

    misfit_and_grad = value_and_grad(exp.misfit)

    last: dict[str, object] = {}

    def fun(p: np.ndarray) -> tuple[float, np.ndarray]:
        value, d = misfit_and_grad(float(p[0]))
        last.update(D=float(p[0]), J=float(value), dJ=float(d), stats=exp.model.stats)
        return float(value), np.array([d])

    # One look at the gradient before trusting it: against a central difference.
    J0, g0 = fun(np.array([D_GUESS]))
    h = 1e-6
    fd = (exp.misfit(D_GUESS + h) - exp.misfit(D_GUESS - h)) / (2 * h)
    print(
        f"dJ/dD at the first guess: reverse mode {g0[0]:.10e}, central difference {fd:.10e} "
        f"(relative difference {abs(g0[0] - fd) / abs(fd):.1e})"
    )

    print(f"{'iteration':>9} {'D':>14} {'J(D)':>14} {'dJ/dD':>14}")
    print(f"{0:>9} {D_GUESS:>14.8f} {J0:>14.6e} {g0[0]:>14.6e}")
    iterations = []

    def show(p: np.ndarray) -> None:
        # L-BFGS-B calls back after its line search, whose last evaluation was at p.
        if last["D"] != p[0]:
            fun(p)
        J, g = last["J"], last["dJ"]
        iterations.append(p[0])
        print(f"{len(iterations):>9} {p[0]:>14.8f} {J:>14.6e} {g:>14.6e}")

    result = minimize(
        fun,
        np.array([D_GUESS]),
        jac=True,
        method="L-BFGS-B",
        bounds=[(D_MIN, D_MAX)],
        callback=show,
    )
    D = float(result.x[0])
    stats = last["stats"]
    # Gauss-Newton standard error: σ / |dT_sensors/dD|, dT/dD by forward mode (a JVP).
    sensitivity = make_jvp(exp.predict)(D)(1.0)[1]
    standard_error = exp.sigma / np.sqrt(np.sum(sensitivity**2)) if args.noise > 0 else 0.0
    print(f"L-BFGS-B: {result.message}")
    print(f"  iterations {result.nit}, misfit evaluations {result.nfev} (each with its gradient)")
    print(f"recovered D = {D:.8f}, true D = {D_TRUE}")
    print(f"  error {D - D_TRUE:+.3e} (relative {abs(D - D_TRUE) / D_TRUE:.2e})")
    print(f"  standard error from the noise {standard_error:.3e}")
    print(
        f"checkpointing of one gradient: {stats.steps} steps, {stats.evaluations} step "
        f"evaluations ({stats.forward_steps} passive + {stats.recorded_steps} taped), "
        f"{stats.max_snapshots} snapshots held at most (plain autograd: {stats.steps})"
    )


if __name__ == "__main__":
    main()
