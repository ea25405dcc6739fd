"""No checkpointing at all: tape every step in the primal run, like plain reverse mode.

The primal run records the whole loop as one tape segment and the reverse sweep pulls the adjoint
back through it: each step is evaluated once, and memory grows with the number of steps. It is
the reference point the other schemes trade memory against (Griewank & Walther, Algorithm 799,
ACM TOMS 26(1), 2000, https://doi.org/10.1145/347837.347846).
"""

from __future__ import annotations

from collections.abc import Iterator

from ckpt_transform._checks import typechecked
from ckpt_transform.errors import CheckpointError
from ckpt_transform.schemes.actions import Action, Record, Reverse
from ckpt_transform.schemes.base import Plan, Scheme

__all__ = ["StoreAll"]


class StoreAll(Scheme):
    """Tape every step in the primal run; no step is evaluated twice and no checkpoint is taken.

    Parameters
    ----------
    storage
        Accepted for uniformity with the other schemes; StoreAll holds no checkpoints.

    References
    ----------
    A. Griewank and A. Walther, "Algorithm 799: Revolve: an implementation of checkpointing for
    the reverse or adjoint mode of computational differentiation", ACM Trans. Math. Softw.
    26(1), 19-45, 2000. https://doi.org/10.1145/347837.347846

    Examples
    --------
    >>> from ckpt_transform.schemes.store_all import StoreAll
    >>> for action in StoreAll().schedule(3):
    ...     print(action)
    record   [0, 3)
    -- primal run ends at state 3; reverse sweep --
    reverse  [0, 3)
    """

    @typechecked
    def __init__(self, *, storage: object | None = None) -> None:
        self.storage = storage

    def __repr__(self) -> str:
        return "StoreAll()" if self.storage is None else f"StoreAll(storage={self.storage!r})"

    def plan(self, steps: int | None) -> Plan:
        """A fresh plan for ``steps`` iterations (None: not known in advance)."""
        if steps is not None and (
            isinstance(steps, bool) or not isinstance(steps, int) or steps < 0
        ):
            raise ValueError(f"the number of steps must be an int >= 0 or None, got {steps!r}")
        return _StoreAllPlan(steps)


class _StoreAllPlan(Plan):
    def __init__(self, steps: int | None) -> None:
        self.steps = steps

    def forward(self) -> Iterator[Action]:
        """One segment: record the whole loop (to its end, when its length is unknown)."""
        if self.steps != 0:
            yield Record(n0=0, n1=self.steps)

    def reverse(self, steps: int) -> Iterator[Action]:
        """Pull the adjoint back through the whole tape."""
        if self.steps is not None and steps != self.steps:
            raise CheckpointError(
                f"StoreAll was planned for {self.steps} steps, but the loop ran {steps} times"
            )
        return iter([Reverse(n0=0, n1=steps)] if steps else [])
