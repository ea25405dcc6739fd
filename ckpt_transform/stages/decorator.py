"""`checkpoint_stage`: the decorator that makes a function an XAD-style checkpointed stage."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from ckpt_transform._checks import typechecked
from ckpt_transform.runtime import randomness
from ckpt_transform.stages.arguments import _contains_box, _prepare_args
from ckpt_transform.stages.keeper import _InputKeeper
from ckpt_transform.stages.primitive import _run_stage
from ckpt_transform.stages.spec import (
    _ALLOWED,
    _METHODS,
    _describe_method,
    _name_of,
    _StageSpec,
)
from ckpt_transform.storage.base import Storage

__all__ = ["checkpoint_stage"]


@typechecked
def checkpoint_stage(
    adjoint: str | Callable[..., Any] = "recompute",
    *,
    storage: Storage | None = None,
    fd_step: float | None = None,
    keep_inputs: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Make a function an XAD-style checkpointed stage with the chosen adjoint method.

    On a function of positional arguments: arrays, floats, and tuples/lists/dicts/dataclasses of
    them are differentiable; ints, other values and keyword arguments pass through. Called on
    plain values, the stage calls the function; under autograd's reverse mode it runs passively,
    keeps only its inputs (in ``storage``), and on the way back computes its adjoint by
    ``adjoint`` and frees them.

    Parameters
    ----------
    adjoint
        ``"recompute"`` (default: tape the stage alone on the way back; exact; memory: one
        stage's tape), ``"forward"`` (one forward-mode column per scalar input, contracted at
        once; exact; no tape), ``"fd"`` (central differences with step
        ``eps**(1/3) * max(1, |x_i|)``, about ``eps**(2/3)`` relative accuracy), or a function
        ``vjp(g, ans, *args, **kwargs)`` returning one cotangent per positional argument
        (``None`` for none). Costs and accuracy: `ckpt_transform.stages` and docs/stages.md.
    storage
        Where the inputs wait: ``None`` keeps references in memory; otherwise a `Storage`
        (``ArrayStorage()``, ``HDF5Storage(...)``), one session per stage while inputs are held.
    fd_step
        Absolute finite-difference step for ``adjoint="fd"`` (``> 0``).
    keep_inputs
        Keep the inputs until the recorded computation is dropped, so its VJP may be called
        several times (``jacobian``, ``hessian``); by default they are freed after the first.

    Returns
    -------
    decorator
        Takes the function, returns the stage (attributes ``original``, ``adjoint``, ``storage``).

    Raises
    ------
    ValueError
        An unknown method name, ``fd_step <= 0``, or ``fd_step`` with a method other than "fd"
        (`TypeError` for an argument of the wrong type).

    Notes
    -----
    Differentiable to every order (``hessian``, ``grad(grad(f))``, ``make_jvp(grad(f))``) with
    "recompute", "forward" and a ``vjp`` written with autograd.numpy, with any storage;
    "fd" refuses a derivative of its derivative with `NotImplementedError`.

    Examples
    --------
    >>> import autograd.numpy as anp; from autograd import grad
    >>> @checkpoint_stage(adjoint="recompute")
    ... def four_sines(x):
    ...     for _ in range(4):
    ...         x = anp.sin(x)
    ...     return x
    >>> round(float(grad(lambda x: four_sines(four_sines(x)))(1.0)), 6)
    0.102057
    """
    _check_options(adjoint, fd_step)

    def decorate(fun: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(fun):
            raise TypeError(
                "checkpoint_stage(...) returns a decorator that takes the stage function; it was "
                f"given {type(fun).__name__} {fun!r}. Write @checkpoint_stage() or "
                "@checkpoint_stage(adjoint=...) above the function (with parentheses)."
            )
        spec = _StageSpec(
            fun=fun,
            method=adjoint,
            keeper=_InputKeeper(storage, _name_of(fun)),
            fd_step=None if fd_step is None else float(fd_step),
            keep_inputs=keep_inputs,
        )
        return _make_stage(spec, storage)

    return decorate


def _check_options(adjoint: str | Callable[..., Any], fd_step: float | None) -> None:
    if isinstance(adjoint, str) and adjoint not in _METHODS:
        raise ValueError(f"adjoint must be {_ALLOWED}; got {adjoint!r}")
    if fd_step is not None:
        if adjoint != "fd":
            raise ValueError(
                f"fd_step is the finite-difference step of adjoint='fd'; got fd_step={fd_step!r} "
                f"with adjoint={_describe_method(adjoint)}. Drop fd_step or use adjoint='fd'."
            )
        if not np.isfinite(fd_step) or fd_step <= 0:
            raise ValueError(f"fd_step must be a finite number > 0; got {fd_step!r}")


def _make_stage(spec: _StageSpec, storage: Storage | None) -> Callable[..., Any]:
    """The stage function: the primitive called on the prepared arguments."""

    @functools.wraps(spec.fun)
    def stage(*args: Any, **kwargs: Any) -> Any:
        if kwargs and _contains_box(kwargs):
            raise TypeError(
                f"stage {spec.name}: keyword arguments pass through as non-differentiable, "
                "but one holds a value being differentiated. Pass it positionally."
            )
        # a stage its adjoint runs again must not draw at random (a user's own adjoint does not
        # at first order, but its derivative, at second order, runs the stage again)
        drawn = randomness.snapshot(spec.fun, args) if _contains_box(args) else None
        try:
            out = _run_stage(spec, *_prepare_args(spec, args), **kwargs)
            if drawn is not None:
                randomness.check(drawn, spec.name, stage=True)
            return out
        except BaseException:
            if _contains_box(args):  # a traced call: no file or thread outlives its failure
                spec.keeper.abort()
            raise

    stage.original = spec.fun  # type: ignore[attr-defined]
    stage.adjoint = spec.method  # type: ignore[attr-defined]
    stage.storage = storage  # type: ignore[attr-defined]
    return stage
