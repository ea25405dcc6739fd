"""Periodic checkpointing: a checkpoint every ``period`` steps, each period recomputed once.

The primal run stores the state at the start of each period and advances through it; in the
reverse sweep each period, last first, is restored from its checkpoint, recorded whole (one tape
segment of up to ``period`` steps, held), reversed and freed. Every step is thus evaluated twice
(once passively, once taped) and the memory is the checkpoints plus one period of tape: simple,
and the right choice when a period of tape is cheap. Binomial checkpointing (`Revolve`) evaluates
fewer steps for the same checkpoints while holding one taped step (Griewank & Walther, Algorithm
799, ACM TOMS 26(1), 2000, https://doi.org/10.1145/347837.347846).

When the loop's length T is known, the last period is recorded in the primal run itself (it needs
no checkpoint and is never evaluated twice). When T is not a multiple of the period the last
period is shorter; it is reversed like the others (no step is dropped).

For a loop of unknown length (a ``while`` loop, ``Periodic(period=p)``), the primal run goes on
storing and advancing period by period until the loop ends, possibly inside a period or exactly at
a period's end, in which case the state T may have been stored as the next period's start: the
reverse sweep frees it and then reverses every period, the last (partial) one included.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import overload

from ckpt_transform._checks import check_int, typechecked
from ckpt_transform.errors import CheckpointError
from ckpt_transform.schemes.actions import (
    Action,
    advance_of,
    free_of,
    record_of,
    restore_of,
    reverse_of,
    store_of,
)
from ckpt_transform.schemes.base import Plan, Scheme
from ckpt_transform.schemes.cost import periodic_period

__all__ = ["Periodic"]


class Periodic(Scheme):
    """Periodic checkpointing: a checkpoint every ``period`` steps, or ``snapshots`` spread evenly.

    Two forms; give exactly one of ``snapshots`` and ``period``:

    * ``Periodic(snapshots)`` (or ``Periodic(snapshots=s)``): at most ``s`` checkpoints spread
      evenly over a loop whose length is known when it starts (a ``for`` loop);
    * ``Periodic(period=p)``: a checkpoint every ``p`` steps, for ``for`` and ``while`` loops.

    ``Periodic()`` and ``Periodic(s, period=p)`` raise ``ValueError``; ``Periodic(s)`` on a
    ``while`` loop raises `CheckpointError` when the loop starts.

    Parameters
    ----------
    snapshots
        At most this many checkpoints, spread evenly: the period is ``ceil(T / snapshots)`` for a
        loop of T steps (so the loop's length must be known: a ``for`` loop). Not with ``period``.
    period
        A checkpoint every ``period`` steps; works for ``while`` loops too. Not with
        ``snapshots``.
    storage
        Where checkpoints live (in memory when None).

    Notes
    -----
    With a known length T and period p the primal run evaluates T steps (the last period taped),
    the reverse sweep ``T - last`` more (taped), ``last`` the length of the last period; at most
    ``ceil(T / p) - 1`` checkpoints and p taped steps are held at once
    (`ckpt_transform.schemes.cost.periodic_evaluations`).

    References
    ----------
    A. Griewank and A. Walther, "Algorithm 799: Revolve: an implementation of checkpointing for
    the reverse or adjoint mode of computational differentiation", ACM Trans. Math. Softw.
    26(1), 19-45, 2000. https://doi.org/10.1145/347837.347846 (the optimal alternative).

    Examples
    --------
    >>> from ckpt_transform.schemes.periodic import Periodic
    >>> for action in Periodic(period=2).schedule(3):
    ...     print(action)
    store    state 0 -> slot 0
    advance  [0, 2)
    record   [2, 3)
    -- primal run ends at state 3; reverse sweep --
    reverse  [2, 3)
    restore  state 0 <- slot 0
    record   [0, 2)
    reverse  [0, 2)
    free     slot 0 (state 0)
    """

    # The two valid forms, for readers, help() and type checkers; the implementation below
    # takes the union and refuses the other two combinations.
    @overload
    def __init__(self, snapshots: int, *, storage: object | None = None) -> None: ...

    @overload
    def __init__(self, *, period: int, storage: object | None = None) -> None: ...

    @typechecked
    def __init__(
        self,
        snapshots: int | None = None,
        *,
        period: int | None = None,
        storage: object | None = None,
    ) -> None:
        if (snapshots is None) == (period is None):
            given = (
                "neither"
                if snapshots is None
                else f"both (snapshots={snapshots!r}, period={period!r})"
            )
            raise ValueError(
                f"Periodic takes exactly one of snapshots= (how many checkpoints, spread evenly "
                f"over a loop of known length) and period= (a checkpoint every that many steps); "
                f"got {given}. Write Periodic(snapshots) for a for loop, or Periodic(period=p) "
                f"for a for or while loop"
            )
        if snapshots is not None:
            check_int("Periodic snapshots", snapshots, 1)
        if period is not None:
            check_int("Periodic period", period, 1)
        self.snapshots = snapshots
        self.period = period
        self.storage = storage

    def __repr__(self) -> str:
        arg = f"snapshots={self.snapshots}" if self.period is None else f"period={self.period}"
        if self.storage is not None:
            arg += f", storage={self.storage!r}"
        return f"Periodic({arg})"

    def plan(self, steps: int | None) -> Plan:
        """A fresh plan for ``steps`` iterations (None: a ``while`` loop, which needs ``period``).

        Raises
        ------
        CheckpointError
            When the length is unknown and the scheme was given ``snapshots`` instead of
            ``period``.
        """
        if steps is None:
            if self.period is None:
                raise CheckpointError(
                    f"{self!r} cannot spread its checkpoints over a loop of unknown length (a "
                    f"while loop); pass period= instead, e.g. Periodic(period=10) for a "
                    f"checkpoint every 10 steps."
                )
            return _PeriodicPlan(None, self.period)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"the number of steps must be an int >= 0 or None, got {steps!r}")
        if self.snapshots is not None:
            return _PeriodicPlan(steps, periodic_period(steps, self.snapshots))
        return _PeriodicPlan(steps, self.period)


# The plan's actions are made positionally, through the classes' C constructors (the very objects
# the keyword calls make; see `actions.action_maker`): the keyword call was most of the cost of a
# plan with many periods.
_ADVANCE, _RECORD, _REVERSE = advance_of, record_of, reverse_of
_STORE, _RESTORE, _FREE = store_of, restore_of, free_of


class _PeriodicPlan(Plan):
    """One run of periodic checkpointing; period i is ``[i p, min((i + 1) p, T))``, slot i."""

    def __init__(self, steps: int | None, period: int) -> None:
        self.steps = steps
        self.period = period
        self._stores = 0  # periods whose start has been yielded as a Store (slots 0 .. _stores-1)
        self._reached = 0  # the farthest state an Advance yielded so far runs to
        self._forward_done = steps == 0

    def forward(self) -> Iterator[Action]:
        """Store each period's start and advance through it; record the last (known length)."""
        p, steps = self.period, self.steps
        if steps is None:
            i = 0
            while True:  # endless: the driver stops consuming when the loop ends
                m = i * p
                self._stores = i + 1
                yield _STORE((m, i, "memory"))
                self._reached = m + p
                yield _ADVANCE((m, m + p))
                i += 1
        last = (steps - 1) // p  # index of the last period (the one holding step T - 1)
        for i in range(last):
            m = i * p
            self._stores = i + 1
            yield _STORE((m, i, "memory"))
            self._reached = m + p
            yield _ADVANCE((m, m + p))
        if steps:
            self._forward_done = True
            yield _RECORD((last * p, steps))

    def reverse(self, steps: int) -> Iterator[Action]:
        """Per period, last first: restore its start, record it whole, reverse it, free it."""
        p = self.period
        if self.steps is not None:
            if steps != self.steps:
                raise CheckpointError(
                    f"Periodic was planned for {self.steps} steps, but the loop ran {steps} times"
                )
            if not self._forward_done:
                raise CheckpointError(
                    f"the reverse sweep of Periodic over {steps} steps was asked for before its "
                    f"primal run reached state {steps}"
                )
            return self._reverse_known(steps)
        # Unknown length: the primal run stored the starts 0, p, ..., (k - 1) p (k = _stores),
        # each before advancing from it, so the loop ended in [(k - 1) p, k p] -- or at 0 when
        # nothing at all was taken.
        k = self._stores
        fits = (k - 1) * p <= steps <= self._reached if k else steps == 0
        if not fits:
            raise CheckpointError(
                f"Periodic(period={p}): the primal run stored {k} checkpoints and ran to at most "
                f"state {self._reached}, which does not fit a loop that ended at state {steps}"
            )
        return self._reverse_unknown(steps, k)

    def _reverse_known(self, steps: int) -> Iterator[Action]:
        if steps == 0:
            return
        p = self.period
        last = (steps - 1) // p
        # The last period was recorded in the primal run.
        yield _REVERSE((last * p, steps))
        for i in range(last - 1, -1, -1):
            m = i * p
            held, span = (m, i, "memory"), (m, m + p)
            yield _RESTORE(held)
            yield _RECORD(span)
            yield _REVERSE(span)
            yield _FREE(held)

    def _reverse_unknown(self, steps: int, stored: int) -> Iterator[Action]:
        p = self.period
        top = stored - 1  # the last slot held
        if top >= 0 and top * p == steps:
            # The loop ended exactly at a period's end, after the next period's start (the
            # state T) was stored: nothing is left to reverse from it.
            yield _FREE((steps, top, "memory"))
            top -= 1
        for i in range(top, -1, -1):
            m = i * p
            end = min(m + p, steps)  # the last period may be partial
            held, span = (m, i, "memory"), (m, end)
            yield _RESTORE(held)
            yield _RECORD(span)
            yield _REVERSE(span)
            yield _FREE(held)
