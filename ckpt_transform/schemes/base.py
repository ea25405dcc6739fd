"""What every scheme provides: a plan of actions for one run of a loop.

A `Scheme` is the user-facing object (``Revolve(4)``); it holds the budget and options and makes
a fresh `Plan` for each run. A `Plan` is a pure planner with two halves:

* `Plan.forward` yields the actions of the primal run. When the loop's length T was given to
  `Scheme.plan`, these actions end with the state at T current (possibly with the last segment
  recorded). When the length is unknown (``plan(None)`` for a ``while`` loop) the iterator may be
  endless and may contain open-ended ``Advance(n0, None)``/``Record(n0, None)``; the driver stops
  consuming it when the loop ends, possibly in the middle of the last action it took.
* `Plan.reverse(T)` is called once, after the forward sweep stopped with the state at T current.
  The plan's bookkeeping reflects every action it has yielded, the last one cut short at T if the
  loop ended inside it. The actions reverse every step ``T-1, ..., 0`` exactly once, in that
  order, and free every checkpoint slot by the end.

A scheme imports nothing of autograd, storage or the runtime, and touches no state; numpy serves
only as a table for a planner's own arithmetic (`multilevel`'s dynamic programme).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

from ckpt_transform.errors import CheckpointError
from ckpt_transform.schemes.actions import Action, Advance, EndForward, Record

__all__ = ["ListedPlan", "Plan", "Scheme"]


class Plan(ABC):
    """The actions of one run; see the module docstring for the contract."""

    @abstractmethod
    def forward(self) -> Iterator[Action]:
        """Actions of the primal run (endless for a loop of unknown length)."""

    @abstractmethod
    def reverse(self, steps: int) -> Iterator[Action]:
        """Actions of the reverse sweep, once the primal run has stopped at state ``steps``."""


class ListedPlan(Plan):
    """A plan of known length whose actions are one stream, made before the loop runs.

    The primal run takes the stream up to and including its first `Record`, which is
    ``Record(T - 1, T)`` (the offline recursions descend into the right part first, and a right
    part starts with a record only at its last step); the reverse sweep takes the rest.
    """

    name = "the plan"

    def __init__(self, steps: int, actions: Iterator[Action]) -> None:
        self.steps = steps
        self._actions = actions
        self._forward_done = steps == 0

    def forward(self) -> Iterator[Action]:
        """The primal run: the stream up to the record of step T - 1."""
        for action in self._actions:
            if type(action) is Record:
                self._forward_done = True
                yield action
                return
            yield action

    def reverse(self, steps: int) -> Iterator[Action]:
        """The reverse sweep, once the primal run has stopped at state ``steps``."""
        if steps != self.steps:
            raise CheckpointError(
                f"{self._planned_for()}, but the loop ran {steps} times; pass steps={steps}."
            )
        if not self._forward_done:
            raise CheckpointError(
                f"the reverse sweep of {self.name} over {self.steps} steps was asked for before "
                f"its primal run reached state {self.steps}"
            )
        return self._actions

    def _planned_for(self) -> str:
        return f"{self.name} was planned for {self.steps} steps"


class Scheme(ABC):
    """A checkpointing scheme: makes plans; holds the budget and the storage choice.

    Attributes
    ----------
    storage
        Where checkpoints live (`ArrayStorage` when None).
    """

    storage: object | None = None

    @abstractmethod
    def plan(self, steps: int | None) -> Plan:
        """A fresh plan for a loop of ``steps`` iterations (None: not known in advance).

        Raises `CheckpointError` when the scheme cannot plan that loop (for instance a
        ``Revolve(steps=...)`` that disagrees with the loop, or a ``while`` loop given to a scheme
        that needs its length).
        """

    #: True for a scheme that plans without knowing the loop's length (it is never told it up
    #: front, even for a ``for`` loop); `schedule` then shows what it does not knowing it.
    online: bool = False

    #: False for a scheme whose runs must not read a checkpoint ahead of its restore (a read
    #: ahead is held while a step's VJP runs, at the sweep's memory peak: `Multilevel`).
    read_ahead: bool = True

    def second_order(self) -> Scheme:
        """The scheme a second-order derivative's sweeps run with (the lifted loop over
        (state, tangent) pairs, `ckpt_transform.runtime.higher_order`): this one by default."""
        return self

    def schedule(self, steps: int) -> Iterator[Action]:
        """The whole plan for a loop that turns out to have ``steps`` iterations.

        The forward actions as the driver executes them (open-ended ones closed, the one the loop
        ends in cut at ``steps``), an `EndForward` marker, then the reverse sweep. For teaching,
        printing and tests.
        """
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be an int >= 0, got {steps!r}")
        plan = self.plan(None if self.online else steps)
        yield from cut_forward(plan.forward(), steps)
        yield EndForward(n=steps)
        yield from plan.reverse(steps)


def cut_forward(actions: Iterator[Action], steps: int) -> Iterator[Action]:
    """Forward actions exactly as the driver executes them for a loop of ``steps`` iterations.

    The driver checks for the loop's end before the first action and after every
    `Advance`/`Record`, and stops the primal run as soon as the state at ``steps`` is current: a
    span that runs past ``steps`` is cut there and is the last action taken, and nothing planned
    at the final state (a store, a free) is taken. For ``steps == 0`` nothing is taken.
    """
    if steps == 0:
        return
    for action in actions:
        if isinstance(action, (Advance, Record)):
            n1 = steps if action.n1 is None or action.n1 > steps else action.n1
            yield action if n1 == action.n1 else type(action)(n0=action.n0, n1=n1)
            if n1 >= steps:
                return
        else:
            yield action
