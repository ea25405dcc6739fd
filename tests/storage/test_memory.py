"""ArrayStorage: checkpoints held in memory, by reference unless copy=True."""

from __future__ import annotations

import numpy as np
import pytest

from ckpt_transform.errors import CheckpointError
from ckpt_transform.storage.base import Storage, StorageSession
from ckpt_transform.storage.memory import ArraySession, ArrayStorage, leaf_nbytes


def leaves_of_every_kind() -> list:
    return [
        1.5,
        -3,
        True,
        2 - 1j,
        np.float32(0.25),
        np.int16(-7),
        np.bool_(False),
        np.array(4.0),
        np.arange(12, dtype=np.int32).reshape(3, 4),
        np.zeros((0, 2)),
        np.ones(3, dtype=np.complex64),
    ]


def test_is_a_storage_and_opens_sessions() -> None:
    storage = ArrayStorage()
    assert isinstance(storage, Storage)
    session = storage.session()
    assert isinstance(session, StorageSession) and isinstance(session, ArraySession)
    assert session is not storage.session()  # each run gets its own


def test_round_trip_keeps_every_leaf_by_reference() -> None:
    leaves = [*leaves_of_every_kind(), "a label", None, object()]
    with ArrayStorage().session() as s:
        s.put(3, 17, leaves, "(many,)")
        step, out = s.get(3)
        assert step == 17
        assert len(out) == len(leaves)
        for a, b in zip(leaves, out):
            assert b is a  # no copy: states are never modified in place
        # The list handed back is the session's own copy of the list, not the caller's.
        assert out is not leaves
        out.append("extra")
        assert len(s.get(3)[1]) == len(leaves)


def test_put_returns_the_bytes_of_the_numeric_leaves() -> None:
    leaves = leaves_of_every_kind()
    # Worked out by hand: floats/ints/bools 8 each, complex 16, numpy scalars their itemsize,
    # arrays size * itemsize.
    expected = 8 + 8 + 8 + 16 + 4 + 2 + 1 + 8 + 12 * 4 + 0 + 3 * 8
    with ArrayStorage().session() as s:
        assert s.put(0, 0, leaves, "x") == expected
        assert s.put(1, 1, ["text", None], "y") == 0
        assert s.nbytes == expected
        s.delete(0)
        assert s.nbytes == 0


@pytest.mark.parametrize(
    ("leaf", "nbytes"),
    [(1.0, 8), (1, 8), (False, 8), (1j, 16), (np.float16(1), 2), (np.empty((5, 3)), 120)],
)
def test_leaf_nbytes(leaf: object, nbytes: int) -> None:
    assert leaf_nbytes(leaf) == nbytes


def test_copy_protects_checkpoints_from_in_place_writes() -> None:
    x = np.arange(4.0)
    with ArrayStorage(copy=True).session() as s:
        s.put(0, 0, [x, 2.0], "(x, c)")
        x[0] = 100.0  # the step writes into the live state after it was stored
        _, (restored, c) = s.get(0)
        assert restored[0] == 0.0 and c == 2.0
        restored[1] = -1.0  # the step writes into a restored state
        _, (again, _) = s.get(0)
        np.testing.assert_array_equal(again, np.arange(4.0))


def test_without_copy_in_place_writes_reach_the_checkpoint() -> None:
    # The documented trade-off of the default: no copy, so the caller must not write in place.
    x = np.arange(4.0)
    with ArrayStorage().session() as s:
        s.put(0, 0, [x], "(x,)")
        x[0] = 100.0
        assert s.get(0)[1][0][0] == 100.0


def test_slots_are_reused_after_delete() -> None:
    with ArrayStorage().session() as s:
        s.put(0, 1, [1.0], "a")
        s.put(1, 2, [2.0], "a")
        s.delete(0)
        s.put(0, 5, [5.0], "a")
        assert s.get(0) == (5, [5.0])
        assert s.get(1) == (2, [2.0])


def test_misuse_gives_checkpoint_errors() -> None:
    s = ArrayStorage().session()
    s.put(0, 4, [1.0], "a")
    with pytest.raises(CheckpointError, match=r"slot 0 already holds the checkpoint of step 4"):
        s.put(0, 6, [2.0], "a")
    with pytest.raises(CheckpointError, match=r"slot 1 holds no checkpoint \(held: \[0\]\)"):
        s.get(1)
    with pytest.raises(CheckpointError, match=r"slot 2 holds no checkpoint to delete"):
        s.delete(2)
    s.close()
    s.close()  # idempotent
    assert s.closed
    for call in (lambda: s.get(0), lambda: s.put(1, 0, [], ""), lambda: s.delete(0)):
        with pytest.raises(CheckpointError, match="session is closed"):
            call()


def test_close_drops_the_references() -> None:
    s = ArrayStorage().session()
    s.put(0, 0, [np.ones(3)], "x")
    s.close()
    assert s.nbytes == 0
    assert "closed" in repr(s)


def test_exception_in_with_block_still_closes() -> None:
    with pytest.raises(ZeroDivisionError):
        with ArrayStorage().session() as s:
            s.put(0, 0, [1.0], "x")
            1 / 0  # noqa: B018
    assert s.closed


def test_repr_and_equality() -> None:
    assert repr(ArrayStorage()) == "ArrayStorage()"
    assert repr(ArrayStorage(copy=True)) == "ArrayStorage(copy=True)"
    assert ArrayStorage() == ArrayStorage()
    assert ArrayStorage() != ArrayStorage(copy=True)
    assert len({ArrayStorage(), ArrayStorage()}) == 1
    s = ArrayStorage().session()
    s.put(0, 0, [np.zeros(2)], "x")
    assert repr(s) == "<ArraySession open: 1 slot(s) held, 16 bytes, copy=False>"


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match="copy"):
        ArrayStorage(copy="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ArrayStorage(True)  # type: ignore[misc]
