"""The benchmark problems, and the gradient computations compared on them (autograd side).

* The heat step of issue 6: ``x <- x + λ·mask·(roll(x, 1) - 2x + roll(x, -1))`` with λ = 0.5 and a
  mask that holds both ends fixed, float64, J = sum(x_T), gradient with respect to x_0.
* A scalar state (a Python float): ``x <- x + 0.01·sin(x)``, J = x_T; it measures the per-step
  bookkeeping of the driver, since each step's arithmetic costs next to nothing.

Each ``*_grad`` function returns a zero-argument callable computing the gradient once; the
``case`` builder is what `harness.rss_in_child` calls in a fresh process.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

import autograd.numpy as np
from autograd import grad

from ckpt_transform import (
    ArrayStorage,
    HDF5Storage,
    Periodic,
    Revolve,
    StoreAll,
    checkpointed_for,
)

try:  # OnlineR2 is being added to the package
    from ckpt_transform.schemes.online_r2 import OnlineR2
except ImportError:  # pragma: no cover - an older checkout
    OnlineR2 = None  # type: ignore[assignment,misc]

LAMBDA = 0.5

Step = Callable[[Any, int], Any]


def heat_step(n: int) -> Step:
    """The issue's heat step on ``n`` points."""
    mask = np.ones(n)
    mask[0] = mask[-1] = 0.0

    def step(x: Any, i: int) -> Any:
        return x + LAMBDA * mask * (np.roll(x, 1) - 2 * x + np.roll(x, -1))

    return step


def heat_x0(n: int) -> np.ndarray:
    """A smooth initial field with both ends at 0."""
    return np.sin(np.linspace(0.0, np.pi, n)) + 0.1 * np.sin(np.linspace(0.0, 17.0, n))


def scalar_step(x: Any, i: int) -> Any:
    return x + 0.01 * np.sin(x)


def plain_loop(step: Step, x: Any, steps: int) -> Any:
    for i in range(steps):
        x = step(x, i)
    return x


def plain_grad(step: Step, x0: Any, steps: int) -> Callable[[], Any]:
    """autograd on the plain loop: the store-all baseline."""
    g = grad(lambda x: np.sum(plain_loop(step, x, steps)))
    return lambda: g(x0)


def untraced(step: Step, x0: Any, steps: int) -> Callable[[], Any]:
    """The loop run once without autograd: what a passive (recomputed) step costs."""
    return lambda: plain_loop(step, x0, steps)


def ours_grad(step: Step, x0: Any, steps: int, scheme: Any) -> Callable[[], Any]:
    """`checkpointed_for` with ``scheme``, differentiated by autograd."""
    g = grad(lambda x: np.sum(checkpointed_for(step, x, steps, scheme)))
    return lambda: g(x0)


def decorated_heat_grad(n: int, steps: int, scheme: Any) -> Callable[[], Any]:
    """The heat loop written as a plain loop under ``@checkpoint_struct(scheme)``."""
    from ckpt_transform import checkpoint_struct

    mask = np.ones(n)
    mask[0] = mask[-1] = 0.0

    @checkpoint_struct(scheme)
    def heat_loss(x: Any) -> Any:
        for _i in range(steps):
            x = x + LAMBDA * mask * (np.roll(x, 1) - 2 * x + np.roll(x, -1))
        return np.sum(x)

    g = grad(heat_loss)
    x0 = heat_x0(n)
    return lambda: g(x0)


def make_scheme(name: str, s: int | None = None, storage: Any = None) -> Any:
    """``storeall``, ``revolve``, ``periodic``, ``online`` with ``s`` snapshots."""
    if name == "storeall":
        return StoreAll(storage=storage)
    if name == "revolve":
        return Revolve(s, storage=storage)
    if name == "periodic":
        return Periodic(s, storage=storage)
    if name == "online":
        if OnlineR2 is None:
            raise ImportError("OnlineR2 is not in this checkout")
        return OnlineR2(s, storage=storage)
    raise ValueError(f"unknown scheme {name!r}")


def make_storage(name: str, path: str | None = None) -> Any:
    """``array``, ``hdf5``, ``hdf5-gzip``, ``hdf5-lzf``."""
    if name == "array":
        return ArrayStorage()
    if name == "hdf5":
        return HDF5Storage(path)
    if name.startswith("hdf5-"):
        return HDF5Storage(path, compression=name[5:])
    raise ValueError(f"unknown storage {name!r}")


def case(
    problem: str,
    n: int,
    steps: int,
    variant: str,
    s: int | None = None,
    storage: str = "array",
) -> Callable[[], Any]:
    """One gradient computation, by names (for measuring in a child process).

    ``variant`` is ``autograd`` (the plain loop), ``untraced``, or a scheme name for
    `make_scheme`.
    """
    if problem == "heat":
        step, x0 = heat_step(n), heat_x0(n)
    elif problem == "scalar":
        step, x0 = scalar_step, 0.3
    else:
        raise ValueError(f"unknown problem {problem!r}")
    if variant == "autograd":
        return plain_grad(step, x0, steps)
    if variant == "untraced":
        return untraced(step, x0, steps)
    return ours_grad(step, x0, steps, make_scheme(variant, s, make_storage(storage)))


def hdf5_file_size(step: Step, x0: Any, steps: int, s: int, compression: str | None) -> int:
    """Bytes of the checkpoint file a Revolve(s) run leaves when kept (for compression)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ckpt.h5")
        scheme = Revolve(s, storage=HDF5Storage(path, keep=True, compression=compression))
        ours_grad(step, x0, steps, scheme)()
        return os.path.getsize(path)
