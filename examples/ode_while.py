"""An adaptive-step ODE integration (``while t < t_end``), differentiated with OnlineR2.

The Van der Pol oscillator

    y1' = y2,    y2' = μ (1 - y1²) y2 - y1,    y(0) = (2, 0),

is integrated to ``t_end`` with the Bogacki-Shampine 3(2) embedded Runge-Kutta pair and the
standard step-size controller (Hairer, Nørsett & Wanner, *Solving Ordinary Differential Equations
I*, 2nd ed., Springer 1993, section II.4): each iteration of the loop tries one step of size h,
accepts it when the estimated error is within the tolerance, and picks the next h from that error.
The integrator is written as a plain ``while t < t_end`` loop (`integrate`) and checkpointed
with ``checkpoint_struct(OnlineR2(...))``. How many iterations the loop runs is known only when it
ends, so the scheme is `OnlineR2` (Stumm & Walther, https://doi.org/10.1137/080742439), which
decides where to keep checkpoints without knowing the length in advance.

We differentiate ``y1(t_end)`` with respect to μ and check the derivative against plain autograd
(which tapes every iteration) and against central finite differences.

What is differentiated. The loop is a discrete map from μ to the computed ``y(t_end)``, and
reverse mode gives the derivative of that map, the step sizes included (h depends on μ through
the error estimate). The map is only piecewise smooth: whether a step is accepted, the clipping of
the step-size factor and the shortening of the last step are decisions that jump when μ crosses
certain values. Between such values every decision stays the same and the map is smooth; the
derivative computed is that of the piece μ lies in, and a central difference with a small ε
agrees with it when μ ± ε lie in the same piece, which the script checks by counting the
accepted and rejected steps at μ - ε, μ and μ + ε. (The derivative of the exact solution differs
from that of the discrete map by about the tolerance.)

Run: ``python examples/ode_while.py [--mu M] [--t-end T] [--rtol R] [--snapshots S]``

References
----------
P. Bogacki and L. F. Shampine, "A 3(2) pair of Runge-Kutta formulas", Appl. Math. Lett. 2(4),
321-325, 1989. https://doi.org/10.1016/0893-9659(89)90079-7

P. Stumm and A. Walther, "New algorithms for optimal online checkpointing", SIAM J. Sci.
Comput. 32(2), 836-854, 2010. https://doi.org/10.1137/080742439
"""

from __future__ import annotations

import argparse

import autograd.numpy as np
from autograd import grad

from ckpt_transform import OnlineR2, checkpoint_struct
from ckpt_transform.schemes.cost import revolve_evaluations
from ckpt_transform.schemes.online_r2 import online_lower_bound

# Bogacki-Shampine: nodes, stages, the 3rd-order weights and the embedded 2nd-order weights
# (the 3rd-order solution's derivative is the 4th stage: "first same as last").
A21, A32 = 1 / 2, 3 / 4
B1, B2, B3 = 2 / 9, 1 / 3, 4 / 9
E1, E2, E3, E4 = 7 / 24, 1 / 4, 1 / 3, 1 / 8

# Step-size controller: h_new = h * clip(SAFETY * err^(-1/3), SHRINK, GROW); 1/3 = 1/(q + 1)
# with q = 2 the order of the embedded formula. The clip is written with np.minimum/np.maximum:
# these constants reach the loop as parameters, and autograd's np.clip has no derivative with
# respect to its bounds.
SAFETY, SHRINK, GROW = 0.9, 0.2, 5.0


def van_der_pol(y: np.ndarray, mu: float) -> np.ndarray:
    y1, y2 = y[0], y[1]
    return np.array([y2, mu * (1 - y1**2) * y2 - y1])


def bs32(y: np.ndarray, h: float, mu: float) -> tuple[np.ndarray, np.ndarray]:
    """One Bogacki-Shampine step: the 3rd-order solution and the 2nd-order one."""
    k1 = van_der_pol(y, mu)
    k2 = van_der_pol(y + h * A21 * k1, mu)
    k3 = van_der_pol(y + h * A32 * k2, mu)
    y3 = y + h * (B1 * k1 + B2 * k2 + B3 * k3)
    k4 = van_der_pol(y3, mu)
    y2 = y + h * (E1 * k1 + E2 * k2 + E3 * k3 + E4 * k4)
    return y3, y2


def integrate(mu, t_end, rtol, atol, h0):
    """``y(t_end)`` and the numbers of accepted and rejected steps: the integrator as written.

    `main` decorates it with ``checkpoint_struct(OnlineR2(...))``; undecorated it is the plain
    loop, which autograd differentiates by taping every iteration.
    """
    t, y, h = 0.0, np.array([2.0, 0.0]), h0
    accepted = rejected = 0
    while t < t_end:
        last = t + h >= t_end  # this step reaches the end: shorten it to land on t_end
        if last:
            h = t_end - t
        y_high, y_low = bs32(y, h, mu)
        scale = atol + rtol * np.maximum(np.abs(y), np.abs(y_high))
        err = np.sqrt(np.mean(((y_high - y_low) / scale) ** 2))
        factor = np.minimum(GROW, np.maximum(SHRINK, SAFETY * np.maximum(err, 1e-10) ** (-1 / 3)))
        if err <= 1.0:  # accept the step
            t = t_end if last else t + h
            y = y_high
            accepted += 1
        else:
            rejected += 1
        h = h * factor
    return y, accepted, rejected


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mu", type=float, default=2.0, help="Van der Pol's μ (default 2)")
    parser.add_argument("--t-end", type=float, default=10.0, help="final time (default 10)")
    parser.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance (1e-6)")
    parser.add_argument("--atol", type=float, default=1e-9, help="absolute tolerance (1e-9)")
    parser.add_argument("--h0", type=float, default=1e-3, help="first trial step (1e-3)")
    parser.add_argument("--snapshots", type=int, default=16, help="OnlineR2 snapshots (16)")
    args = parser.parse_args(argv)
    if not (args.t_end > 0 and args.rtol > 0 and args.atol > 0 and args.h0 > 0):
        parser.error("--t-end, --rtol, --atol and --h0 must be positive")
    opts = (args.t_end, args.rtol, args.atol, args.h0)
    scheme = OnlineR2(args.snapshots)
    checkpointed = checkpoint_struct(scheme)(integrate)

    def y1_end(mu):
        return checkpointed(mu, *opts)[0][0]

    def y1_end_plain(mu):
        return integrate(mu, *opts)[0][0]

    mu = args.mu
    y, accepted, rejected = checkpointed(mu, *opts)
    print(f"Van der Pol, μ = {mu}, y(0) = (2, 0), to t = {args.t_end}")
    print(f"  Bogacki-Shampine 3(2), rtol = {args.rtol:g}, atol = {args.atol:g}")
    print(f"  steps taken: {accepted} accepted + {rejected} rejected = {accepted + rejected}")
    print(f"  y(t_end) = ({y[0]:.10f}, {y[1]:.10f})")

    d_mu = grad(y1_end)(mu)
    stats = checkpointed.stats
    d_plain = grad(y1_end_plain)(mu)
    eps = 1e-6 * max(1.0, abs(mu))
    lo, hi = integrate(mu - eps, *opts), integrate(mu + eps, *opts)
    fd = (hi[0][0] - lo[0][0]) / (2 * eps)
    print("d y1(t_end) / dμ:")
    print(f"  reverse mode, {scheme!r:<24} {d_mu:.12e}")
    print(f"  plain autograd{'':<24} {d_plain:.12e}")
    print(f"  central difference, ε = {eps:<14.0e} {fd:.12e}")
    print(f"  relative difference from plain autograd {abs(d_mu - d_plain) / abs(d_plain):.1e}")
    print(f"  relative difference from the difference {abs(d_mu - fd) / abs(fd):.1e}")
    same = lo[1:] == (accepted, rejected) == hi[1:]
    print(
        f"  accepted/rejected at μ - ε, μ, μ + ε: {lo[1]}/{lo[2]}, {accepted}/{rejected}, "
        f"{hi[1]}/{hi[2]} ({'the same piece' if same else 'DIFFERENT pieces: decisions changed'})"
    )

    print("checkpointing (the length was not known in advance):")
    print(f"  loop iterations                {stats.steps}")
    print(
        f"  primal evaluations             {stats.evaluations} "
        f"({stats.forward_steps} passive + {stats.recorded_steps} taped; "
        f"{stats.evaluations / stats.steps:.2f} per iteration)"
    )
    T, c = stats.steps, args.snapshots
    print(
        f"  least possible online          {online_lower_bound(T, c)} (the length found at the end)"
    )
    print(f"  Revolve, told the length       {revolve_evaluations(T, c)} (offline optimum)")
    print(f"  snapshots held at most         {stats.max_snapshots} (plain autograd: {stats.steps})")
    print(f"  checkpoint bytes at most       {stats.checkpoint_bytes_peak}")


if __name__ == "__main__":
    main()
