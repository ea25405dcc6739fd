"""An adaptive-step ODE integration (``while t < t_end``), differentiated with OnlineR2.

The Van der Pol oscillator

    y1' = y2,    y2' = μ (1 - y1²) y2 - y1,    y(0) = (2, 0),

is integrated to ``t_end`` with the Bogacki-Shampine 3(2) embedded Runge-Kutta pair and the
standard step-size controller (Hairer, Nørsett & Wanner, *Solving Ordinary Differential Equations
I*, 2nd ed., Springer 1993, section II.4): each iteration of the loop tries one step of size h,
accepts it when the estimated error is within the tolerance, and picks the next h from that error.
How many iterations the loop runs is known only when it ends, so the checkpointing scheme is
`OnlineR2` (Stumm & Walther, https://doi.org/10.1137/080742439), which decides where to keep
checkpoints without knowing the length in advance.

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
from collections.abc import Callable

import autograd.numpy as np
from autograd import grad

from ckpt_transform import checkpointed_while
from ckpt_transform.schemes.cost import revolve_evaluations
from ckpt_transform.schemes.online_r2 import OnlineR2, online_lower_bound

# Bogacki-Shampine: nodes, stages, the 3rd-order weights and the embedded 2nd-order weights
# (the 3rd-order solution's derivative is the 4th stage: "first same as last").
A21, A32 = 1 / 2, 3 / 4
B1, B2, B3 = 2 / 9, 1 / 3, 4 / 9
E1, E2, E3, E4 = 7 / 24, 1 / 4, 1 / 3, 1 / 8

# Step-size controller: h_new = h * clip(SAFETY * err^(-1/3), SHRINK, GROW); 1/3 = 1/(q + 1)
# with q = 2 the order of the embedded formula.
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


def make_step(t_end: float, rtol: float, atol: float) -> Callable[..., tuple]:
    """The loop body: try one step from the state ``(t, y, h, accepted, rejected)``."""

    def attempt(state: tuple, i: int, mu: float) -> tuple:
        t, y, h, accepted, rejected = state
        last = t + h >= t_end  # this step reaches the end: shorten it to land on t_end
        if last:
            h = t_end - t
        y_high, y_low = bs32(y, h, mu)
        scale = atol + rtol * np.maximum(np.abs(y), np.abs(y_high))
        err = np.sqrt(np.mean(((y_high - y_low) / scale) ** 2))
        factor = np.clip(SAFETY * np.maximum(err, 1e-10) ** (-1 / 3), SHRINK, GROW)
        if err <= 1.0:
            t = t_end if last else t + h
            return (t, y_high, h * factor, accepted + 1, rejected)
        return (t, y, h * factor, accepted, rejected + 1)

    return attempt


def not_done(t_end: float) -> Callable[..., bool]:
    def cond(state: tuple, mu: float) -> bool:
        return state[0] < t_end

    return cond


def initial_state(h0: float) -> tuple:
    return (0.0, np.array([2.0, 0.0]), h0, 0, 0)


def solve(mu, scheme, t_end, rtol, atol, h0, report=None):
    """The final state ``(t, y, h, accepted, rejected)``, checkpointed by ``scheme``."""
    step = make_step(t_end, rtol, atol)
    return checkpointed_while(
        not_done(t_end), step, initial_state(h0), scheme, params=(mu,), report=report
    )


def solve_plain(mu, t_end, rtol, atol, h0):
    """The same loop as plain Python: autograd tapes every iteration."""
    step = make_step(t_end, rtol, atol)
    state, i = initial_state(h0), 0
    while state[0] < t_end:
        state = step(state, i, mu)
        i += 1
    return state


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

    def y1_end(mu, report=None):
        return solve(mu, scheme, *opts, report=report)[1][0]

    def y1_end_plain(mu):
        return solve_plain(mu, *opts)[1][0]

    mu = args.mu
    _, y, _, accepted, rejected = solve(mu, scheme, *opts)
    print(f"Van der Pol, μ = {mu}, y(0) = (2, 0), to t = {args.t_end}")
    print(f"  Bogacki-Shampine 3(2), rtol = {args.rtol:g}, atol = {args.atol:g}")
    print(f"  steps taken: {accepted} accepted + {rejected} rejected = {accepted + rejected}")
    print(f"  y(t_end) = ({y[0]:.10f}, {y[1]:.10f})")

    runs = []
    d_mu = grad(y1_end)(mu, runs.append)
    stats = runs[-1]
    d_plain = grad(y1_end_plain)(mu)
    eps = 1e-6 * max(1.0, abs(mu))
    lo, hi = solve(mu - eps, scheme, *opts), solve(mu + eps, scheme, *opts)
    fd = (hi[1][0] - lo[1][0]) / (2 * eps)
    print("d y1(t_end) / dμ:")
    print(f"  reverse mode, {scheme!r:<24} {d_mu:.12e}")
    print(f"  plain autograd{'':<24} {d_plain:.12e}")
    print(f"  central difference, ε = {eps:<14.0e} {fd:.12e}")
    print(f"  relative difference from plain autograd {abs(d_mu - d_plain) / abs(d_plain):.1e}")
    print(f"  relative difference from the difference {abs(d_mu - fd) / abs(fd):.1e}")
    same = (lo[3], lo[4]) == (accepted, rejected) == (hi[3], hi[4])
    print(
        f"  accepted/rejected at μ - ε, μ, μ + ε: {lo[3]}/{lo[4]}, {accepted}/{rejected}, "
        f"{hi[3]}/{hi[4]} ({'the same piece' if same else 'DIFFERENT pieces: decisions changed'})"
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
