"""Closed forms for what the offline schemes cost: step evaluations and memory.

Conventions are those of the rest of `ckpt_transform.schemes`: ``steps`` (T) iterations of a loop,
``snapshots`` (s) checkpoints held at once *counting the loop's input state*, one taped step held
at a time by `Revolve`. A *passive* evaluation runs one step without a tape (`Advance`), a *taped*
one runs it with a tape (`Record`); every scheme tapes each step exactly once, so its total is
``T`` taped evaluations plus its passive ones.

The binomial results are those of

    A. Griewank and A. Walther, "Algorithm 799: Revolve: an implementation of checkpointing for
    the reverse or adjoint mode of computational differentiation", ACM Transactions on
    Mathematical Software 26(1), 19-45, 2000. https://doi.org/10.1145/347837.347846

(with the same formulas in A. Griewank, "Achieving logarithmic growth of temporal and spatial
complexity in reverse automatic differentiation", Optimization Methods and Software 1(1), 35-54,
1992, https://doi.org/10.1080/10556789208805505). In their notation ``s`` snapshots and ``t``
repetitions reverse at most ``beta(s, t) = C(s + t, s)`` steps.

Everything here is plain integer arithmetic (``math.comb``): exact for any size.
"""

from __future__ import annotations

from math import comb

from ckpt_transform._checks import check_int

__all__ = [
    "beta",
    "periodic_evaluations",
    "periodic_forward_steps",
    "periodic_period",
    "periodic_snapshots",
    "revolve_evaluations",
    "revolve_forward_steps",
    "revolve_repetitions",
    "store_all_evaluations",
]


def beta(snapshots: int, repetitions: int) -> int:
    """The most steps that ``snapshots`` checkpoints reverse with ``repetitions`` repetitions.

    ``beta(s, t) = C(s + t, s)``: with s snapshots (the input state's included) no step need be
    evaluated passively more than t times when T <= beta(s, t) (Griewank & Walther 2000,
    Algorithm 799, ACM TOMS 26(1), https://doi.org/10.1145/347837.347846).
    By convention ``beta(s, -1) = 0`` (and 0 for any negative ``repetitions``), which makes the
    recurrence ``beta(s, t) = beta(s, t - 1) + beta(s - 1, t)`` hold down to ``t = 0``.

    Parameters
    ----------
    snapshots
        s >= 0.
    repetitions
        t, any int (negative gives 0).

    Returns
    -------
    int
    """
    check_int("snapshots", snapshots, 0)
    if isinstance(repetitions, bool) or not isinstance(repetitions, int):
        raise TypeError(f"repetitions must be an int, got {repetitions!r}")
    if repetitions < 0:
        return 0
    return comb(snapshots + repetitions, snapshots)


def revolve_repetitions(steps: int, snapshots: int) -> int:
    """The repetition number t: the least t with ``beta(snapshots, t) >= steps``.

    Binomial checkpointing with this many repetitions is optimal (Griewank & Walther 2000,
    Algorithm 799, ACM TOMS 26(1), https://doi.org/10.1145/347837.347846). 0 for ``steps <= 1``.

    Parameters
    ----------
    steps
        T >= 0.
    snapshots
        s >= 1, counting the input state.

    Returns
    -------
    int
    """
    check_int("steps", steps, 0)
    check_int("snapshots", snapshots, 1)
    if snapshots == 1:
        return max(0, steps - 1)  # beta(1, t) = t + 1
    t = 0
    # beta(s, t) grows at least linearly in t (s >= 1), so this loop ends; it runs about sqrt(2 T)
    # times for s = 2 and a handful of times once s is a few units.
    while comb(snapshots + t, snapshots) < steps:
        t += 1
    return t


def revolve_forward_steps(steps: int, snapshots: int) -> int:
    """Passive step evaluations of optimal binomial checkpointing: P(T, s).

    ``P(T, s) = t * T - C(s + t, t - 1)`` with ``t = revolve_repetitions(T, s)`` (Griewank &
    Walther 2000, Algorithm 799, ACM TOMS 26(1), https://doi.org/10.1145/347837.347846).
    It counts every passive evaluation, those of the primal run included; it is
    the proven minimum for reversing T steps with s snapshots when one step is taped at a time.

    Parameters
    ----------
    steps
        T >= 0.
    snapshots
        s >= 1, counting the input state.

    Returns
    -------
    int
    """
    t = revolve_repetitions(steps, snapshots)
    if steps == 0:
        return 0
    return t * steps - (comb(snapshots + t, t - 1) if t >= 1 else 0)


def revolve_evaluations(steps: int, snapshots: int) -> int:
    """All step evaluations of optimal binomial checkpointing: ``P(T, s) + T``.

    The passive ones (`revolve_forward_steps`) plus one taped evaluation per step (Griewank &
    Walther 2000, Algorithm 799, ACM TOMS 26(1), https://doi.org/10.1145/347837.347846).
    For example 25 for T = 10, s = 3.

    Parameters
    ----------
    steps
        T >= 0.
    snapshots
        s >= 1, counting the input state.

    Returns
    -------
    int
    """
    return revolve_forward_steps(steps, snapshots) + steps


def periodic_period(steps: int, snapshots: int) -> int:
    """The period `Periodic(snapshots=s)` uses for T steps: ``ceil(T / s)`` (at least 1).

    Checkpoints at ``0, p, 2p, ...`` then number ``ceil(T / p) <= s``. Unlike binomial
    checkpointing (Griewank & Walther 2000, Algorithm 799, ACM TOMS 26(1),
    https://doi.org/10.1145/347837.347846), this spacing recomputes every step once but holds a
    whole period of taped steps in the reverse sweep.

    Parameters
    ----------
    steps
        T >= 0.
    snapshots
        s >= 1.

    Returns
    -------
    int
    """
    check_int("steps", steps, 0)
    check_int("snapshots", snapshots, 1)
    return max(1, -(-steps // snapshots))


def _last_period(steps: int, period: int) -> int:
    # Length of the last (possibly partial) period of [0, T): in 1..period for T >= 1.
    return steps - (steps - 1) // period * period if steps else 0


def periodic_forward_steps(steps: int, period: int, *, known_length: bool = True) -> int:
    """Passive step evaluations of periodic checkpointing every ``period`` steps.

    Every step is evaluated passively once in the primal run and taped once in the reverse sweep,
    except that with a known length the last period (``T - p * floor((T - 1) / p)`` steps, the
    remainder when p does not divide T) is taped in the primal run itself. Equal to
    ``T - last`` with a known length and ``T`` without. See Griewank & Walther 2000,
    Algorithm 799, ACM TOMS 26(1), https://doi.org/10.1145/347837.347846, for the binomial
    alternative that trades these for fewer taped steps held.

    Parameters
    ----------
    steps
        T >= 0.
    period
        p >= 1.
    known_length
        False for a loop whose length was not known in advance (``plan(None)``).

    Returns
    -------
    int
    """
    check_int("steps", steps, 0)
    check_int("period", period, 1)
    return steps if not known_length else steps - _last_period(steps, period)


def periodic_evaluations(steps: int, period: int, *, known_length: bool = True) -> int:
    """All step evaluations of periodic checkpointing: `periodic_forward_steps` plus T taped.

    At most ``2 T``; compare ``revolve_evaluations`` (Griewank & Walther 2000, Algorithm 799,
    ACM TOMS 26(1), https://doi.org/10.1145/347837.347846).

    Parameters
    ----------
    steps
        T >= 0.
    period
        p >= 1.
    known_length
        False for a loop whose length was not known in advance.

    Returns
    -------
    int
    """
    return periodic_forward_steps(steps, period, known_length=known_length) + steps


def periodic_snapshots(steps: int, period: int, *, known_length: bool = True) -> int:
    """Most checkpoints periodic checkpointing holds at once.

    With a known length, one per period but the last (which is taped in the primal run instead):
    ``ceil(T / p) - 1``. Without, one per period begun: ``ceil(T / p)`` (the primal run stops as
    soon as the loop's last state is current, so nothing is stored there). The taped steps held
    at once are at most ``min(p, T)``. See Griewank & Walther 2000, Algorithm 799, ACM TOMS 26(1),
    https://doi.org/10.1145/347837.347846, for the memory-optimal alternative.

    Parameters
    ----------
    steps
        T >= 0.
    period
        p >= 1.
    known_length
        False for a loop whose length was not known in advance.

    Returns
    -------
    int
    """
    check_int("steps", steps, 0)
    check_int("period", period, 1)
    if not known_length:
        return -(-steps // period)
    return max(0, -(-steps // period) - 1)


def store_all_evaluations(steps: int) -> int:
    """Step evaluations of `StoreAll`: each step once, taped (plain reverse mode, no checkpoints).

    The reference point of Griewank & Walther 2000, Algorithm 799, ACM TOMS 26(1),
    https://doi.org/10.1145/347837.347846: T evaluations, T taped steps held.

    Parameters
    ----------
    steps
        T >= 0.

    Returns
    -------
    int
    """
    check_int("steps", steps, 0)
    return steps
