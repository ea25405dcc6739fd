"""A step that draws random numbers gives other numbers when it runs again from a checkpoint.

Checkpointing runs steps again from stored states. A step that draws from a generator living
across its calls (numpy's global generator behind ``np.random.normal``, Python's `random`, a
``np.random.Generator`` or ``RandomState`` it reads from a closure, a global or its parameters)
draws different numbers each time it runs, so the reverse sweep would differentiate steps the
primal run never took: a wrong gradient, with no error. The driver therefore looks at those
generators before and after a differentiated primal run (`snapshot`, `check`) and refuses a run
that moved any of them. A generator made inside the step from the step's index
(``np.random.default_rng([seed, i])``) or noise drawn before the loop and indexed by ``i`` give
the same numbers every time, and pass.
"""

from __future__ import annotations

import itertools
import random
import types
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ckpt_transform.errors import CheckpointError
from ckpt_transform.runtime import guard

__all__ = ["check", "snapshot"]

# items looked at inside one value (a generator sits near the top: `rng`, `model.rng`)
_MAX_ITEMS = 256
_GENERATORS = (np.random.Generator, np.random.RandomState, np.random.BitGenerator, random.Random)


def _state(gen: Any) -> Any:
    """A comparable copy of a generator's state."""
    if isinstance(gen, np.random.Generator):
        gen = gen.bit_generator
    if isinstance(gen, np.random.BitGenerator):
        return _plain(gen.state)
    if isinstance(gen, np.random.RandomState):
        return _plain(gen.get_state(legacy=False))
    try:
        return gen.getstate()
    except NotImplementedError:  # random.SystemRandom: no state to compare (nor to repeat)
        return None


def _plain(value: Any) -> Any:
    """``value`` with its arrays as bytes, so that ``==`` compares it whole."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.tobytes())
    return value


def _found(step: Any, params: Any) -> Iterator[tuple[str, Any]]:
    """The generators ``step`` can reach: the global ones, and those among (or one level inside,
    the first `_MAX_ITEMS` items) the values of its closure, the globals it names and its
    parameters."""
    # the generators behind `np.random.normal(...)` and `random.gauss(...)`
    yield "numpy's global random generator (np.random)", getattr(np.random.mtrand, "_rand", None)
    yield "Python's random module", getattr(random, "_inst", None)
    for path, value in guard.roots(step, params):
        if isinstance(value, _GENERATORS):
            yield path, value
            continue
        if isinstance(value, (types.ModuleType, type)) or callable(value):
            continue
        if isinstance(value, dict):
            items: Iterable[tuple[Any, Any]] = value.items()
        elif isinstance(value, (list, tuple)):
            items = enumerate(value)
        else:
            items = getattr(value, "__dict__", {}).items()
        for key, item in itertools.islice(items, _MAX_ITEMS):
            if isinstance(item, _GENERATORS):
                yield f"{path} (its item {key!r})", item


def snapshot(step: Any, params: Any) -> list[tuple[str, Any, Any]]:
    """The generators ``step`` can reach, with their states now."""
    seen: set[int] = set()
    out = []
    for path, gen in _found(step, params):
        if gen is not None and id(gen) not in seen:
            seen.add(id(gen))
            out.append((path, gen, _state(gen)))
    return out


def check(before: list[tuple[str, Any, Any]], name: str, *, stage: bool = False) -> None:
    """Raise `CheckpointError` when a generator of ``before`` has moved since (during the primal
    run of the loop whose step is ``name``, or of the stage ``name``)."""
    for path, gen, state in before:
        if _state(gen) == state:
            continue
        if stage:
            what = f"the checkpoint stage {name} drew random numbers from {path}"
            again = (
                "its adjoint runs the stage again from its kept inputs (a user's adjoint does so "
                "once differentiated itself)"
            )
            instead = (
                "draw the noise outside the stage and pass it in as an argument, or make the "
                "generator inside the stage from a seed it is given"
            )
        else:
            what = (
                f"the checkpointed loop {name} drew random numbers from {path} during its "
                "primal run"
            )
            again = "a checkpointed loop runs steps again from stored states"
            instead = (
                "draw the noise before the loop (`noise = rng.normal(size=(steps, ...))`) and "
                "read `noise[i]` in the step, or make the generator from the step's index "
                "inside it (`np.random.default_rng([seed, i])`)"
            )
        raise CheckpointError(
            f"{what}: {again}, and each run would draw other numbers, so the gradient would be "
            f"that of a computation that never took place. Instead, {instead}, so that every "
            "run gives the same numbers."
        )
