"""A mock executor: replays a schedule on step *numbers* and checks every action.

This is the executable statement of what the actions in `ckpt_transform.schemes.actions` mean.
It runs no step; it tracks which state is current, which slot holds which state and which tape
segments are held, and raises `ScheduleViolation` at the first action that breaks the contract.
Tests run every scheme through it over a grid of (steps, snapshots); teachers can run it on a
scheme of their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

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
    counts spent before `EndForward` (the primal run); ``writes``/``reads``: stores and restores
    per storage level; ``level_max_snapshots``: most slots held at once in each level.
    """

    steps: int
    forward_steps: int
    recorded_steps: int
    max_snapshots: int
    max_taped_steps: int
    primal_forward_steps: int
    primal_recorded_steps: int
    actions: int
    writes: dict[str, int] = field(default_factory=dict)
    reads: dict[str, int] = field(default_factory=dict)
    level_max_snapshots: dict[str, int] = field(default_factory=dict)

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
    level_snapshots: Mapping[str, int | None] | None = None,
) -> ScheduleCounts:
    """Replay ``actions`` for a loop of ``steps`` iterations; raise at the first violation.

    Checks at every action: spans start at the current state and stay within ``[0, steps]``;
    restores and frees touch only slots holding that state; a store never overwrites a held slot;
    at most ``snapshots`` slots are held in all levels together (when given), at most
    ``level_snapshots[level]`` in a level (when given; None: unlimited) and at most
    ``max_taped_steps`` steps of tape (when given); the primal run (up to `EndForward`, which must
    be present) reaches the state at ``steps``; reverses go strictly backwards from ``steps`` to 0,
    each through a segment recorded and still held, so every step is reversed exactly once;
    nothing is held at the end. Slots are numbered per level (`Store.level`).
    """
    replay = _Replay(steps, snapshots, max_taped_steps, dict(level_snapshots or {}))
    for i, action in enumerate(actions):
        replay.count += 1
        handler = replay.handlers.get(type(action))
        if handler is None:  # a subclass of an action: dispatch on its base
            handler = next((h for k, h in replay.handlers.items() if isinstance(action, k)), None)
        if handler is None:
            raise _fail(i, action, f"unknown action type {type(action).__name__}")
        why = handler(action)
        if why is not None:
            raise _fail(i, action, why)
    return replay.finish()


def _fail(i: int, action: Action, why: str) -> ScheduleViolation:
    return ScheduleViolation(f"action {i} ({action}): {why}")


class _Replay:
    """The mock executor's bookkeeping; each handler returns why an action breaks, or None."""

    def __init__(
        self,
        steps: int,
        snapshots: int | None,
        max_taped_steps: int | None,
        level_snapshots: dict[str, int | None],
    ) -> None:
        self.steps, self.snapshots, self.max_taped_steps = steps, snapshots, max_taped_steps
        self.level_snapshots = level_snapshots
        self.current: int | None = 0
        self.slots: dict[tuple[str, int], int] = {}  # (level, slot) -> state
        self.tapes: dict[int, int] = {}  # n1 -> n0 of held tape segments
        self.taped_now = self.max_taped = self.max_slots = 0
        self.next_end = steps  # the next Reverse must end here
        self.forward = self.recorded = self.count = 0
        self.primal: tuple[int, int] | None = None
        self.writes: dict[str, int] = {}
        self.reads: dict[str, int] = {}
        self.level_max: dict[str, int] = {}
        self.handlers = {
            Advance: self.span,
            Record: self.span,
            Reverse: self.reverse,
            Store: self.store,
            Restore: self.restore_or_free,
            Free: self.restore_or_free,
            EndForward: self.end_forward,
        }

    def span(self, action: Advance | Record) -> str | None:
        if action.n1 is None:
            return "open-ended span in a schedule of known length"
        if self.current != action.n0:
            return f"the current state is {_state(self.current)}, not {action.n0}"
        if not action.n0 < action.n1 <= self.steps:
            return f"span must lie in [0, {self.steps}] and hold at least one step"
        length = action.n1 - action.n0
        if isinstance(action, Advance):
            self.forward += length
        else:
            if any(n0 < action.n1 and action.n0 < n1 for n1, n0 in self.tapes.items()):
                return "overlaps a tape segment still held"
            self.tapes[action.n1] = action.n0
            self.recorded += length
            self.taped_now += length
            self.max_taped = max(self.max_taped, self.taped_now)
            limit = self.max_taped_steps
            if limit is not None and self.taped_now > limit:
                return f"holds {self.taped_now} taped steps, over {limit}"
        self.current = action.n1
        return None

    def reverse(self, action: Reverse) -> str | None:
        if self.primal is None:
            return "reverse before the primal run ended (no EndForward)"
        if action.n1 != self.next_end:
            return f"the next reverse must end at {self.next_end}"
        if self.tapes.get(action.n1) != action.n0:
            return "no tape is held for exactly this segment"
        del self.tapes[action.n1]
        self.taped_now -= action.n1 - action.n0
        self.next_end = action.n0
        self.current = None  # the driver keeps no current state after a reverse
        return None

    def store(self, action: Store) -> str | None:
        if self.current != action.n:
            return f"the current state is {_state(self.current)}, not {action.n}"
        key = (action.level, action.slot)
        if key in self.slots:
            return f"{_slot(key)} still holds state {self.slots[key]}"
        self.slots[key] = action.n
        self.writes[action.level] = self.writes.get(action.level, 0) + 1
        self.max_slots = max(self.max_slots, len(self.slots))
        if self.snapshots is not None and len(self.slots) > self.snapshots:
            return f"{len(self.slots)} slots held, over the budget of {self.snapshots}"
        held = sum(1 for level, _ in self.slots if level == action.level)
        self.level_max[action.level] = max(self.level_max.get(action.level, 0), held)
        limit = self.level_snapshots.get(action.level)
        if limit is not None and held > limit:
            return f"{held} {action.level} slots held, over the {action.level} budget of {limit}"
        return None

    def restore_or_free(self, action: Restore | Free) -> str | None:
        key = (action.level, action.slot)
        if self.slots.get(key) != action.n:
            return f"{_slot(key)} holds {_state(self.slots.get(key))}, not {action.n}"
        if isinstance(action, Restore):
            self.current = action.n
            self.reads[action.level] = self.reads.get(action.level, 0) + 1
        else:
            del self.slots[key]
        return None

    def end_forward(self, action: EndForward) -> str | None:
        if self.primal is not None:
            return "a second EndForward"
        if action.n != self.steps:
            return f"the primal run must end at state {self.steps}"
        if self.current != self.steps:
            return f"the primal run left {_state(self.current)} current"
        self.primal = (self.forward, self.recorded)
        return None

    def finish(self) -> ScheduleCounts:
        if self.primal is None:
            raise ScheduleViolation("the schedule has no EndForward marker")
        if self.next_end != 0:
            raise ScheduleViolation(f"steps [0, {self.next_end}) were never reversed")
        if self.slots:
            held = {_slot(k): n for k, n in sorted(self.slots.items())}
            if all(level == "memory" for level, _ in self.slots):
                held = {slot: n for (_, slot), n in sorted(self.slots.items())}  # type: ignore[misc]
            raise ScheduleViolation(f"slots still held at the end: {held}")
        if self.tapes:
            raise ScheduleViolation(f"tapes still held at the end: {sorted(self.tapes.items())}")
        return ScheduleCounts(
            steps=self.steps,
            forward_steps=self.forward,
            recorded_steps=self.recorded,
            max_snapshots=self.max_slots,
            max_taped_steps=self.max_taped,
            primal_forward_steps=self.primal[0],
            primal_recorded_steps=self.primal[1],
            actions=self.count,
            writes=dict(self.writes),
            reads=dict(self.reads),
            level_max_snapshots=dict(self.level_max),
        )


def _slot(key: tuple[str, int]) -> str:
    level, slot = key
    return f"slot {slot}" if level == "memory" else f"{level} slot {slot}"


def _state(n: int | None) -> str:
    return "undefined" if n is None else f"state {n}"
