"""The mock executor itself: it must accept a correct schedule, count it right, and reject each
kind of broken schedule at the action that breaks it. Also the actions it reads (their
keyword construction, immutability, equality and text), since the executor relies on them."""

from __future__ import annotations

import dataclasses

import pytest

from ckpt_transform.schemes.actions import (
    Advance,
    EndForward,
    Free,
    Record,
    Restore,
    Reverse,
    Store,
)
from ckpt_transform.schemes.validate import ScheduleViolation, validate_schedule

# A correct schedule for 3 steps with 2 snapshots, written by hand: 2 passive evaluations.
GOOD = [
    Store(n=0, slot=0),
    Advance(n0=0, n1=1),
    Store(n=1, slot=1),
    Advance(n0=1, n1=2),
    Record(n0=2, n1=3),
    EndForward(n=3),
    Reverse(n0=2, n1=3),
    Restore(n=1, slot=1),
    Record(n0=1, n1=2),
    Reverse(n0=1, n1=2),
    Free(n=1, slot=1),
    Restore(n=0, slot=0),
    Record(n0=0, n1=1),
    Reverse(n0=0, n1=1),
    Free(n=0, slot=0),
]


def edited(**changes):
    """GOOD with some actions replaced (index -> action, or None to drop it)."""
    actions = list(GOOD)
    for key, action in sorted(changes.items(), key=lambda kv: -int(kv[0][1:])):
        index = int(key[1:])
        if action is None:
            del actions[index]
        else:
            actions[index] = action
    return actions


def test_accepts_and_counts_a_good_schedule():
    counts = validate_schedule(GOOD, 3, snapshots=2, max_taped_steps=1)
    assert counts.forward_steps == 2
    assert counts.recorded_steps == 3
    assert counts.evaluations == 5
    assert counts.max_snapshots == 2
    assert counts.max_taped_steps == 1
    assert (counts.primal_forward_steps, counts.primal_recorded_steps) == (2, 1)
    assert counts.actions == len(GOOD)


def test_accepts_the_empty_loop():
    assert validate_schedule([EndForward(n=0)], 0).evaluations == 0


def test_rejects_restore_of_an_empty_slot():
    actions = edited(a7=Restore(n=1, slot=2))
    with pytest.raises(ScheduleViolation, match=r"action 7 .*slot 2 holds undefined"):
        validate_schedule(actions, 3)


def test_rejects_restore_of_a_slot_holding_another_state():
    with pytest.raises(ScheduleViolation, match=r"action 7 .*slot 1 holds state 1, not 2"):
        validate_schedule(edited(a7=Restore(n=2, slot=1)), 3)


def test_rejects_a_budget_overrun():
    with pytest.raises(ScheduleViolation, match=r"action 2 .*2 slots held, over the budget of 1"):
        validate_schedule(GOOD, 3, snapshots=1)


def test_rejects_a_taped_overrun():
    actions = [Record(n0=0, n1=2), EndForward(n=2), Reverse(n0=0, n1=2)]
    assert validate_schedule(actions, 2).max_taped_steps == 2
    with pytest.raises(ScheduleViolation, match=r"holds 2 taped steps, over 1"):
        validate_schedule(actions, 2, max_taped_steps=1)


def test_rejects_reverse_out_of_order():
    # Step 0 before step 1: reverse [0, 1) while [1, 2) is still due.
    actions = [
        Record(n0=0, n1=1),
        Record(n0=1, n1=2),
        EndForward(n=2),
        Reverse(n0=0, n1=1),
        Reverse(n0=1, n1=2),
    ]
    with pytest.raises(ScheduleViolation, match=r"action 3 .*the next reverse must end at 2"):
        validate_schedule(actions, 2)


def test_rejects_a_double_reverse():
    actions = edited(a13=Reverse(n0=1, n1=2))
    with pytest.raises(ScheduleViolation, match=r"action 13 .*must end at 1"):
        validate_schedule(actions, 3)
    # Reversing a segment again, right after itself.
    actions = [Record(n0=0, n1=1), EndForward(n=1), Reverse(n0=0, n1=1), Reverse(n0=0, n1=1)]
    with pytest.raises(ScheduleViolation, match=r"action 3 .*must end at 0"):
        validate_schedule(actions, 1)


def test_rejects_a_reverse_without_its_tape():
    actions = edited(a12=Advance(n0=0, n1=1))
    with pytest.raises(ScheduleViolation, match=r"action 13 .*no tape is held"):
        validate_schedule(actions, 3)


def test_rejects_a_missing_step():
    # The last two actions of step 0's reversal dropped: step 0 never reversed.
    actions = [*GOOD[:11], Free(n=0, slot=0)]
    with pytest.raises(ScheduleViolation, match=r"steps \[0, 1\) were never reversed"):
        validate_schedule(actions, 3)


def test_rejects_leftover_slots():
    with pytest.raises(ScheduleViolation, match=r"slots still held at the end: \{0: 0\}"):
        validate_schedule(GOOD[:-1], 3)


def test_rejects_leftover_tapes():
    # Step 0 reversed, then recorded again and never reversed.
    actions = [
        Store(n=0, slot=0),
        Record(n0=0, n1=1),
        EndForward(n=1),
        Reverse(n0=0, n1=1),
        Restore(n=0, slot=0),
        Record(n0=0, n1=1),
        Free(n=0, slot=0),
    ]
    with pytest.raises(ScheduleViolation, match=r"tapes still held at the end: \[\(1, 0\)\]"):
        validate_schedule(actions, 1)


def test_rejects_a_record_over_a_held_tape():
    actions = [Store(n=0, slot=0), Record(n0=0, n1=2), Restore(n=0, slot=0), Record(n0=0, n1=1)]
    with pytest.raises(ScheduleViolation, match=r"action 3 .*overlaps a tape segment still held"):
        validate_schedule(actions, 2)


def test_rejects_a_span_from_the_wrong_state():
    with pytest.raises(ScheduleViolation, match=r"action 3 .*current state is state 1, not 0"):
        validate_schedule(edited(a3=Advance(n0=0, n1=2)), 3)
    # After a reverse no state is current until a restore.
    with pytest.raises(ScheduleViolation, match=r"current state is undefined"):
        validate_schedule(edited(a7=None), 3)


def test_rejects_a_span_out_of_range():
    actions = [Record(n0=0, n1=4), EndForward(n=4), Reverse(n0=0, n1=4)]
    with pytest.raises(ScheduleViolation, match=r"span must lie in \[0, 3\]"):
        validate_schedule(actions, 3)
    with pytest.raises(ScheduleViolation, match=r"span must lie"):
        validate_schedule([Advance(n0=0, n1=0), EndForward(n=0)], 0)


def test_rejects_an_open_span():
    actions = [Record(n0=0, n1=None), EndForward(n=3), Reverse(n0=0, n1=3)]
    with pytest.raises(ScheduleViolation, match="open-ended"):
        validate_schedule(actions, 3)


def test_rejects_a_store_over_a_held_slot():
    with pytest.raises(ScheduleViolation, match=r"slot 0 still holds state 0"):
        validate_schedule(edited(a2=Store(n=1, slot=0)), 3)


def test_rejects_store_of_a_state_not_current():
    with pytest.raises(ScheduleViolation, match=r"action 2 .*not 2"):
        validate_schedule(edited(a2=Store(n=2, slot=1)), 3)


def test_rejects_bad_primal_runs():
    with pytest.raises(ScheduleViolation, match="no EndForward"):
        validate_schedule([a for a in GOOD if not isinstance(a, EndForward)][:5], 3)
    with pytest.raises(ScheduleViolation, match="reverse before the primal run ended"):
        validate_schedule([Record(n0=0, n1=1), Reverse(n0=0, n1=1), EndForward(n=1)], 1)
    with pytest.raises(ScheduleViolation, match="must end at state 3"):
        validate_schedule(edited(a5=EndForward(n=2)), 3)
    with pytest.raises(ScheduleViolation, match=r"primal run left .*state 2 current"):
        validate_schedule([Advance(n0=0, n1=2), EndForward(n=3)], 3)
    with pytest.raises(ScheduleViolation, match="a second EndForward"):
        validate_schedule([EndForward(n=0), EndForward(n=0)], 0)


def test_rejects_unknown_actions():
    class Teleport:
        pass

    with pytest.raises(ScheduleViolation, match=r"action 0 .*unknown action type Teleport"):
        validate_schedule([Teleport()], 0)  # type: ignore[list-item]


# --- the actions it reads ----------------------------------------------------------------


ALL = [
    Advance(n0=0, n1=3),
    Advance(n0=0, n1=None),
    Record(n0=2, n1=3),
    Reverse(n0=2, n1=3),
    Store(n=1, slot=0),
    Restore(n=1, slot=0),
    Free(n=1, slot=0),
    EndForward(n=3),
]


def test_actions_are_frozen_keyword_dataclasses():
    for action in ALL:
        assert dataclasses.is_dataclass(action)
        field = dataclasses.fields(action)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(action, field, 7)
        with pytest.raises(TypeError):
            type(action)(*[getattr(action, f.name) for f in dataclasses.fields(action)])
        # Rebuilt by keyword: equal, same hash, same text.
        clone = type(action)(
            **{f.name: getattr(action, f.name) for f in dataclasses.fields(action)}
        )
        assert clone == action and hash(clone) == hash(action) and str(clone) == str(action)
    with pytest.raises(TypeError, match="slot"):
        Store(n=1)  # type: ignore[call-arg]


def test_actions_equality_depends_on_kind_and_numbers():
    assert Record(n0=2, n1=3) != Reverse(n0=2, n1=3)
    assert Advance(n0=2, n1=3) != Record(n0=2, n1=3)
    assert Store(n=1, slot=0) != Restore(n=1, slot=0)
    assert Store(n=1, slot=0) != Store(n=1, slot=1)
    assert len(set(ALL)) == len(ALL)


def test_actions_read_aloud():
    assert [a.kind for a in ALL] == [
        "advance",
        "advance",
        "record",
        "reverse",
        "store",
        "restore",
        "free",
        "end_forward",
    ]
    assert str(Advance(n0=0, n1=3)) == "advance  [0, 3)"
    assert str(Advance(n0=5, n1=None)) == "advance  [5, end of loop)"
    assert str(Store(n=1, slot=0)) == "store    state 1 -> slot 0"
    assert str(Free(n=1, slot=0)) == "free     slot 0 (state 1)"
    assert repr(Record(n0=2, n1=3)) == "Record(n0=2, n1=3)"
    assert Record(n0=2, n1=5).steps == range(2, 5)
    assert Store(n=4, slot=1).steps == range(4, 5)
    with pytest.raises(ValueError, match="open-ended"):
        _ = Advance(n0=0, n1=None).steps
