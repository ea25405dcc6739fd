"""A mock executor: replays a schedule on step *numbers* and checks every action.

This is the executable statement of what the actions in `ckpt_transform.schemes.actions` mean.
It runs no step; it tracks which state is current, which slot holds which state and which tape
segments are held, and raises `ScheduleViolation` at the first action that breaks the contract.
Tests run every scheme through it over a grid of (steps, snapshots); teachers can run it on a
scheme of their own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ckpt_transform.schemes.actions import (
    Action,
    Advance,
    EndForward,
    Free,
    Record,
    Restore,
    Reverse,
    Store,
)

__all__ = ["ScheduleCounts", "ScheduleViolation", "validate_schedule"]


class ScheduleViolation(AssertionError):
    """A schedule broke the action contract; the message names the action and its index."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleCounts:
    """What a valid schedule costs.

    ``forward_steps``: passive step evaluations (`Advance`); ``recorded_steps``: taped ones
    (`Record`); ``max_snapshots``: most slots held at once; ``max_taped_steps``: most steps whose
    tape was held at once; ``primal_forward_steps``/``primal_recorded_steps``: the part of the
    counts spent before `EndForward` (the primal run).
    """

    steps: int
    forward_steps: int
    recorded_steps: int
    max_snapshots: int
    max_taped_steps: int
    primal_forward_steps: int
    primal_recorded_steps: int
    actions: int

    @property
    def evaluations(self) -> int:
        """Total primal step evaluations, passive plus taped."""
        return self.forward_steps + self.recorded_steps


def validate_schedule(
    actions: Iterable[Action],
    steps: int,
    *,
    snapshots: int | None = None,
    max_taped_steps: int | None = None,
) -> ScheduleCounts:
    """Replay ``actions`` for a loop of ``steps`` iterations; raise at the first violation.

    Checks at every action: spans start at the current state and stay within ``[0, steps]``;
    restores and frees touch only slots holding that state; a store never overwrites a held slot;
    at most ``snapshots`` slots are held (when given) and at most ``max_taped_steps`` steps of tape
    (when given); the primal run (up to `EndForward`, which must be present) reaches the state at
    ``steps``; reverses go strictly backwards from ``steps`` to 0, each through a segment recorded
    and still held, so every step is reversed exactly once; nothing is held at the end.
    """
    current: int | None = 0
    slots: dict[int, int] = {}
    tapes: dict[int, int] = {}  # n1 -> n0 of held tape segments
    taped_now = 0
    next_end = steps  # the next Reverse must end here
    forward = recorded = 0
    primal: tuple[int, int] | None = None
    max_slots = max_taped = 0
    count = 0

    def fail(i: int, action: Action, why: str) -> ScheduleViolation:
        return ScheduleViolation(f"action {i} ({action}): {why}")

    for i, action in enumerate(actions):
        count += 1
        if isinstance(action, (Advance, Record)):
            if action.n1 is None:
                raise fail(i, action, "open-ended span in a schedule of known length")
            if current != action.n0:
                raise fail(i, action, f"the current state is {_state(current)}, not {action.n0}")
            if not action.n0 < action.n1 <= steps:
                raise fail(i, action, f"span must lie in [0, {steps}] and hold at least one step")
            if isinstance(action, Advance):
                forward += action.n1 - action.n0
            else:
                if any(n0 < action.n1 and action.n0 < n1 for n1, n0 in tapes.items()):
                    raise fail(i, action, "overlaps a tape segment still held")
                tapes[action.n1] = action.n0
                recorded += action.n1 - action.n0
                taped_now += action.n1 - action.n0
                max_taped = max(max_taped, taped_now)
                if max_taped_steps is not None and taped_now > max_taped_steps:
                    raise fail(i, action, f"holds {taped_now} taped steps, over {max_taped_steps}")
            current = action.n1
        elif isinstance(action, Reverse):
            if primal is None:
                raise fail(i, action, "reverse before the primal run ended (no EndForward)")
            if action.n1 != next_end:
                raise fail(i, action, f"the next reverse must end at {next_end}")
            if tapes.get(action.n1) != action.n0:
                raise fail(i, action, "no tape is held for exactly this segment")
            del tapes[action.n1]
            taped_now -= action.n1 - action.n0
            next_end = action.n0
            current = None  # the driver keeps no current state after a reverse
        elif isinstance(action, Store):
            if current != action.n:
                raise fail(i, action, f"the current state is {_state(current)}, not {action.n}")
            if action.slot in slots:
                raise fail(i, action, f"slot {action.slot} still holds state {slots[action.slot]}")
            slots[action.slot] = action.n
            max_slots = max(max_slots, len(slots))
            if snapshots is not None and len(slots) > snapshots:
                raise fail(i, action, f"{len(slots)} slots held, over the budget of {snapshots}")
        elif isinstance(action, (Restore, Free)):
            if slots.get(action.slot) != action.n:
                held = slots.get(action.slot)
                raise fail(i, action, f"slot {action.slot} holds {_state(held)}, not {action.n}")
            if isinstance(action, Restore):
                current = action.n
            else:
                del slots[action.slot]
        elif isinstance(action, EndForward):
            if primal is not None:
                raise fail(i, action, "a second EndForward")
            if action.n != steps:
                raise fail(i, action, f"the primal run must end at state {steps}")
            if current != steps:
                raise fail(i, action, f"the primal run left {_state(current)} current")
            primal = (forward, recorded)
        else:
            raise fail(i, action, f"unknown action type {type(action).__name__}")

    if primal is None:
        raise ScheduleViolation("the schedule has no EndForward marker")
    if next_end != 0:
        raise ScheduleViolation(f"steps [0, {next_end}) were never reversed")
    if slots:
        raise ScheduleViolation(f"slots still held at the end: {dict(sorted(slots.items()))}")
    if tapes:
        raise ScheduleViolation(f"tapes still held at the end: {sorted(tapes.items())}")
    return ScheduleCounts(
        steps=steps,
        forward_steps=forward,
        recorded_steps=recorded,
        max_snapshots=max_slots,
        max_taped_steps=max_taped,
        primal_forward_steps=primal[0],
        primal_recorded_steps=primal[1],
        actions=count,
    )


def _state(n: int | None) -> str:
    return "undefined" if n is None else f"state {n}"
