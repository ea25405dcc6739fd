"""Actions are frozen keyword dataclasses; made positionally they are the same objects."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle

import pytest

from ckpt_transform.schemes.actions import (
    Action,
    Advance,
    EndForward,
    Free,
    Record,
    Restore,
    Reverse,
    Store,
    action_maker,
    new_action,
)

KEYWORD = [
    Advance(n0=3, n1=7),
    Advance(n0=3, n1=None),
    Record(n0=3, n1=4),
    Reverse(n0=3, n1=4),
    Store(n=5, slot=1),
    Restore(n=5, slot=1, level="disk"),
    Free(n=5, slot=1),
    EndForward(n=9),
]


def test_positional_construction_makes_the_keyword_object():
    for action in KEYWORD:
        values = tuple(getattr(action, f.name) for f in dataclasses.fields(action))
        fast = new_action(type(action), values)
        assert type(fast) is type(action)
        assert fast == action and hash(fast) == hash(action)
        assert repr(fast) == repr(action) and str(fast) == str(action)


def test_equal_only_to_the_same_kind_with_the_same_fields():
    assert Advance(n0=1, n1=2) != Record(n0=1, n1=2)
    assert Advance(n0=1, n1=2) != (1, 2) and (1, 2) != Advance(n0=1, n1=2)
    assert Store(n=1, slot=0) != Store(n=1, slot=0, level="disk")
    assert Store(n=1, slot=0) == Store(n=1, slot=0, level="memory")
    assert len({Record(n0=1, n1=2), Record(n0=1, n1=2), Reverse(n0=1, n1=2)}) == 2
    with pytest.raises(TypeError, match="not supported"):
        Advance(n0=1, n1=2) < Advance(n0=1, n1=3)  # noqa: B015


def test_fields_defaults_copies_and_pickles():
    assert [(f.name, f.kw_only) for f in dataclasses.fields(Store)] == [
        ("n", True),
        ("slot", True),
        ("level", True),
    ]
    assert [f.default for f in dataclasses.fields(Store)][2] == "memory"
    assert dataclasses.fields(Advance)[0].default is dataclasses.MISSING
    for action in KEYWORD:
        for clone in (copy.copy(action), copy.deepcopy(action), pickle.loads(pickle.dumps(action))):
            assert type(clone) is type(action) and clone == action
    assert dataclasses.replace(Advance(n0=1, n1=2), n1=5) == Advance(n0=1, n1=5)
    with pytest.raises(TypeError, match="unexpected keyword argument 'n2'"):
        Advance(n0=1, n1=2, n2=3)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="level must be one of"):
        Free(n=1, slot=0, level="tape")


def test_the_makers_build_the_keyword_object_without_the_keyword_call():
    for action in KEYWORD:
        values = tuple(getattr(action, f.name) for f in dataclasses.fields(action))
        made = action_maker(type(action))(values)
        assert type(made) is type(action) and made == action and hash(made) == hash(action)
        assert repr(made) == repr(action) and str(made) == str(action)
        with pytest.raises(dataclasses.FrozenInstanceError):
            made.n = 0  # type: ignore[misc]
    for not_an_action in (Action, tuple, int, "Advance"):
        with pytest.raises(TypeError, match="action_maker needs an action class"):
            action_maker(not_an_action)  # type: ignore[arg-type]


def test_keyword_call_only_and_its_signature():
    for call in (lambda: Advance(3, 7), lambda: Advance((3, 7))):  # type: ignore[call-arg]
        with pytest.raises(TypeError, match=r"by keyword \(Advance\(n0=\.\.\., n1=\.\.\.\)\), got"):
            call()
    with pytest.raises(TypeError, match=r"Record\(n0=\.\.\., n1=\.\.\.\)\), got no n1$"):
        Record(n0=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"got no n and no slot$"):
        Free(level="disk")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'slot'"):
        EndForward(n=3, slot=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="Action is not an action of its own"):
        Action()
    assert str(inspect.signature(Advance)) == "(*, n0: 'int', n1: 'int | None') -> 'Any'"
    assert list(inspect.signature(Store).parameters) == ["n", "slot", "level"]
    assert inspect.signature(Store).parameters["level"].default == "memory"
    assert list(inspect.signature(EndForward).parameters) == ["n"]


def test_every_pickle_protocol_round_trips():
    for action in KEYWORD:
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            clone = pickle.loads(pickle.dumps(action, protocol=protocol))
            assert type(clone) is type(action) and clone == action and repr(clone) == repr(action)
