"""A stage's inputs in HDF5Storage: after any error of the stage, no file or worker thread is left.

A chain of three calls of one stage shares one session (one file). A full disk while storing a
call's inputs, an exception or an interrupt in the stage's function (forward), or in its adjoint
(reverse): when the error reaches the caller the file is gone and the worker has ended, with the
garbage collector off and the error (whose traceback holds the recorded computation) still alive.
"""

from __future__ import annotations

import errno
import gc
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad

from ckpt_transform.errors import CheckpointError
from ckpt_transform.stages import checkpoint_stage
from ckpt_transform.storage.hdf5 import HDF5Storage, layout

CALLS = 3
SWEEPS = {"forward": CALLS, "reverse": CALLS + 1}  # the call of the stage's function that fails


def hdf5_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("ckpt_transform-hdf5")}


@pytest.fixture(autouse=True)
def temporary_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    before = hdf5_threads()
    gc.disable()
    try:
        yield tmp
    finally:
        gc.enable()
    assert hdf5_threads() - before == set()


def assert_nothing_left(directory: Path) -> None:
    assert list(directory.iterdir()) == []
    assert [t.name for t in hdf5_threads()] == []


def chain(stage: Any, x: Any) -> Any:
    for _ in range(CALLS):
        x = stage(x) * 1.1
    return anp.sum(x)


def plain_gradient(x: np.ndarray) -> np.ndarray:
    return grad(lambda x: chain(anp.sin, x))(x)


class Sine:
    """``sin``, raising ``error`` at its ``at``-th call (CALLS forward, then the recomputations)."""

    def __init__(self, at: int, error: BaseException) -> None:
        self.at, self.error, self.calls = at, error, 0
        self.__name__ = "sine"

    def __call__(self, x: Any) -> Any:
        self.calls += 1
        if self.calls == self.at:
            raise self.error
        return anp.sin(x)


@pytest.mark.parametrize("background", [True, False], ids=["background", "inline"])
@pytest.mark.parametrize("at", [2, CALLS], ids=["second call", "last call"])
def test_full_disk_while_storing_inputs(
    monkeypatch: pytest.MonkeyPatch, temporary_dir: Path, background: bool, at: int
) -> None:
    real_write = layout.CheckpointFile.write
    writes = [0]

    def write(file: Any, *args: Any) -> None:
        writes[0] += 1
        if writes[0] == at:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(file, *args)

    monkeypatch.setattr(layout.CheckpointFile, "write", write)
    stage = checkpoint_stage(storage=HDF5Storage(background=background))(anp.sin)
    x = np.linspace(0.0, 1.0, 7)
    with pytest.raises(CheckpointError, match="disk is full"):
        grad(lambda x: chain(stage, x))(x)
    assert_nothing_left(temporary_dir)
    monkeypatch.setattr(layout.CheckpointFile, "write", real_write)
    np.testing.assert_allclose(grad(lambda x: chain(stage, x))(x), plain_gradient(x), rtol=1e-13)
    assert_nothing_left(temporary_dir)


@pytest.mark.parametrize("adjoint", ["recompute", "forward"])
@pytest.mark.parametrize("sweep", SWEEPS)
@pytest.mark.parametrize(
    "error", [ValueError("the model blew up"), KeyboardInterrupt()], ids=["exception", "interrupt"]
)
def test_error_in_the_stage_function(
    temporary_dir: Path, adjoint: str, sweep: str, error: BaseException
) -> None:
    sine = Sine(SWEEPS[sweep], error)
    stage = checkpoint_stage(adjoint, storage=HDF5Storage())(sine)
    x = np.linspace(0.0, 1.0, 7)
    with pytest.raises(type(error)) as info:
        grad(lambda x: chain(stage, x))(x)
    assert info.value is error and sine.calls == SWEEPS[sweep]
    assert_nothing_left(temporary_dir)
    sine.at = -1
    np.testing.assert_allclose(grad(lambda x: chain(stage, x))(x), plain_gradient(x), rtol=1e-13)
    assert_nothing_left(temporary_dir)


def test_error_in_a_user_adjoint(temporary_dir: Path) -> None:
    def sine_vjp(g: Any, ans: Any, x: Any) -> Any:
        raise ValueError("adjoint failed")

    stage = checkpoint_stage(sine_vjp, storage=HDF5Storage())(anp.sin)
    with pytest.raises(ValueError, match="adjoint failed"):
        grad(lambda x: chain(stage, x))(np.linspace(0.0, 1.0, 7))
    assert_nothing_left(temporary_dir)


def test_inputs_dropped_by_a_caught_failure_are_not_restored(temporary_dir: Path) -> None:
    sine = Sine(2, ValueError("second call fails"))
    stage = checkpoint_stage(storage=HDF5Storage())(sine)

    def loss(x: Any) -> Any:
        y = stage(x)
        try:
            stage(x)  # fails, and the program goes on: the first call's inputs are gone
        except ValueError:
            pass
        return anp.sum(y)

    with pytest.raises(CheckpointError, match="inputs of stage sine were dropped"):
        grad(loss)(np.linspace(0.0, 1.0, 7))
    assert_nothing_left(temporary_dir)
