"""XAD-style checkpoint stages: a piece of a computation whose adjoint is computed on its own.

A *stage* is a function cut out of a longer computation. Under reverse-mode differentiation it is
one node of the outer autograd graph: on the way forward it runs passively (nothing is taped
inside it) and keeps only its inputs; on the way back its adjoint is computed by the method the
user chose, and its inputs are freed. This is the checkpoint callback of XAD's guide to
checkpointing, and the stage-wise checkpointing of Griewank & Walther (2008, ch. 12), brought to
autograd as one primitive.

Adjoint methods (``adjoint=``):

``"recompute"``
    Restore the inputs, record this stage alone with autograd (a nested recording), pull the
    cotangent back through it, and drop that recording before the previous stage's adjoint runs.
    Exact to rounding; memory: one stage's tape.
``"forward"``
    Forward mode (autograd's ``make_jvp``) column by column: one Jacobian-vector product per scalar
    input, each column contracted with the cotangent as it is computed. Exact to rounding; cost
    grows with the number of inputs; memory: one forward pass.
``"fd"``
    Central finite differences, two passive evaluations per scalar input. Accuracy about
    ``eps**(2/3)`` relative (about 1e-10 in float64) for smooth functions.
a function ``vjp(g, ans, *args)``
    The user's derivative (analytic, or from another library): returns one cotangent per
    positional argument, as a tuple, ``None`` for an argument that gets no gradient.

Nesting works in every direction: a stage may call stages and checkpointed loops, and a
checkpointed loop's step may call stages, because each of these is an autograd primitive that
behaves like a plain function when its arguments are not being traced.

References
----------
A. Griewank and A. Walther, *Evaluating Derivatives*, 2nd ed., SIAM, 2008, chapters 8 and 12.
https://doi.org/10.1137/1.9780898717761
XAD, "Checkpointing" (user manual), https://auto-differentiation.github.io/tutorials/checkpointing/
J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed., Springer, 2006, section 8.1.
https://doi.org/10.1007/978-0-387-40065-5
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import threading
import types
import warnings
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
from autograd import builtins as abuiltins
from autograd.core import make_jvp, make_vjp, vspace
from autograd.extend import defjvp_argnums, defvjp_argnums, primitive
from autograd.tracer import getval, isbox
from autograd.util import subvals

from ckpt_transform._checks import typechecked
from ckpt_transform.backends.autograd import dataclass_replace, is_differentiable
from ckpt_transform.errors import CheckpointError
from ckpt_transform.runtime.tree import describe, leaf_paths
from ckpt_transform.runtime.tree import flatten as tree_flatten
from ckpt_transform.runtime.tree import unflatten as tree_unflatten
from ckpt_transform.storage.base import Storage, StorageSession

__all__ = ["checkpoint_stage"]

_METHODS = ("recompute", "forward", "fd")
_ALLOWED = "'recompute', 'forward', 'fd', or a function vjp(g, ans, *args)"

# autograd warns when a traced function's output does not depend on its input. Inside a stage
# that is a legitimate case (the cotangent is zero), not something to tell the user about.
_INDEPENDENT = "Output seems independent of input."


@typechecked
def checkpoint_stage(
    adjoint: str | Callable[..., Any] = "recompute",
    *,
    storage: Storage | None = None,
    fd_step: float | None = None,
    keep_inputs: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Make a function an XAD-style checkpointed stage with the chosen adjoint method.

    Used as ``@checkpoint_stage(adjoint=...)`` on a function of positional arguments. Arrays,
    floats, and tuples/lists/dicts or dataclasses of them are differentiable; ints and any other
    values (and keyword arguments) pass through as non-differentiable. The stage may return an
    array, a float, or a tuple/list/dict or dataclass of them.

    Called on plain values, the stage simply calls the function. Under autograd's reverse mode it
    runs passively, keeps only its inputs (in ``storage``), and on the way back computes its
    adjoint by ``adjoint`` and frees the inputs.

    Parameters
    ----------
    adjoint
        How the stage's adjoint (vector-Jacobian product) is computed on the way back:

        ``"recompute"`` (default)
            Restore the inputs, record the stage alone with autograd, pull the cotangent back,
            drop the recording. Exact to rounding. Extra cost: one more forward evaluation plus the
            reverse sweep. Extra memory: the tape of this one stage, freed before the previous
            stage's adjoint runs.
        ``"forward"``
            Forward-mode derivatives (autograd's ``make_jvp``), one Jacobian column per scalar
            input, each contracted with the output cotangent as soon as it is computed (so the
            Jacobian is never held whole). Exact to rounding. Cost: one forward-mode pass per
            scalar input, so this is the right choice when a stage has few inputs and many outputs
            (or when its body holds operations that are cheaper to run forward than to tape).
            Memory: no tape at all.
        ``"fd"``
            Central finite differences: two passive evaluations per scalar input, with step
            ``h_i = eps**(1/3) * max(1, |x_i|)`` (``eps`` the machine epsilon of the coarser of
            ``x_i``'s dtype and the output's) unless ``fd_step`` is given. Expect the O(h^2)
            truncation error plus the O(eps/h) rounding error, about ``eps**(2/3)`` relative
            (~1e-10 in float64, ~1e-5 in float32) for a smooth function with moderate
            derivatives; worse where the function is not smooth. For stages whose body autograd
            cannot differentiate (a compiled library, a black box).
        a function ``vjp(g, ans, *args, **kwargs)``
            The user's vector-Jacobian product: ``g`` is the cotangent of the output (same
            structure as ``ans``), ``ans`` the stage's output, ``args`` its positional inputs (and
            keyword arguments, if the stage was called with any). It returns a tuple with one
            cotangent per positional argument, each shaped like its argument, or ``None`` for an
            argument that gets no gradient (an int, or an input the output does not depend on).
            For an analytic derivative or an external library's adjoint. The output ``ans`` is
            kept with the inputs for this method.
    storage
        Where the stage's inputs wait for the reverse sweep: ``None`` keeps references in memory
        (no copy); otherwise a `Storage` (``ArrayStorage()``, ``HDF5Storage(...)``). One session
        is opened per stage while any of its calls has inputs held, and closed when the last are
        freed: after the reverse sweep, or when the recorded computation is dropped without one.
    fd_step
        Absolute finite-difference step for ``adjoint="fd"`` (``> 0``); default: chosen per
        input element from its scale, as above.
    keep_inputs
        By default a stage's inputs are freed as soon as its adjoint has run, so the recorded
        computation can be pulled back once. With ``True`` they are kept until the recorded
        computation is dropped, so its VJP may be called several times (``autograd.jacobian``
        does that).

    Returns
    -------
    decorator
        Takes the stage function and returns the stage: a function with the same signature, with
        attributes ``original`` (the undecorated function), ``adjoint`` and ``storage``.

    Raises
    ------
    ValueError
        ``adjoint`` a string other than the three method names, ``fd_step <= 0``, or ``fd_step``
        given with a method other than ``"fd"``.
    TypeError
        An argument of the wrong type (``adjoint`` neither a string nor callable).

    Notes
    -----
    Forward-mode differentiation (``make_jvp``) through a stage is supported, to first order, for
    every method: by forward mode through the body for ``"recompute"`` and ``"forward"``, by one
    directional central difference for ``"fd"``, and by one call of the user's ``vjp`` per output
    element otherwise. It is what lets a stage sit inside a stage whose adjoint is ``"forward"``.

    Higher-order reverse mode (a derivative of a derivative) through a stage is supported only
    with ``adjoint="recompute"`` and ``storage=None`` (the stage's inputs are then traced values
    held in memory); other combinations raise `NotImplementedError` saying so.

    References
    ----------
    A. Griewank and A. Walther, *Evaluating Derivatives*, 2nd ed., SIAM, 2008.
    https://doi.org/10.1137/1.9780898717761

    Examples
    --------
    XAD's example: ``x = sin(x)`` repeated, one stage every four iterations.

    >>> import autograd.numpy as anp
    >>> from autograd import grad
    >>> @checkpoint_stage(adjoint="recompute")
    ... def four_sines(x):
    ...     for _ in range(4):
    ...         x = anp.sin(x)
    ...     return x
    >>> def repeated_sin(x):
    ...     for _ in range(3):
    ...         x = four_sines(x)
    ...     return x
    >>> round(float(grad(repeated_sin)(1.0)), 6)
    0.063988
    """
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

        @functools.wraps(fun)
        def stage(*args: Any, **kwargs: Any) -> Any:
            if kwargs and _contains_box(kwargs):
                raise TypeError(
                    f"stage {spec.name}: keyword arguments pass through as non-differentiable, "
                    "but one holds a value being differentiated. Pass it positionally."
                )
            try:
                return _run_stage(spec, *_prepare_args(spec, args), **kwargs)
            except BaseException:
                if _contains_box(args):  # a traced call: no file or thread outlives its failure
                    spec.keeper.abort()
                raise

        stage.original = fun  # type: ignore[attr-defined]
        stage.adjoint = adjoint  # type: ignore[attr-defined]
        stage.storage = storage  # type: ignore[attr-defined]
        return stage

    return decorate


def _name_of(fun: object) -> str:
    return getattr(fun, "__name__", None) or repr(fun)


def _describe_method(method: object) -> str:
    if isinstance(method, str):
        return repr(method)
    return f"the function {_name_of(method)}"


# ---------------------------------------------------------------------------------------------
# The stage as one autograd primitive


@dataclasses.dataclass(frozen=True, eq=False)
class _StageSpec:
    """What a stage is: its function, adjoint method and where its inputs wait."""

    fun: Callable[..., Any]
    method: str | Callable[..., Any]
    keeper: _InputKeeper
    fd_step: float | None
    keep_inputs: bool

    @property
    def name(self) -> str:
        return _name_of(self.fun)


@primitive
def _run_stage(spec: _StageSpec, *args: Any, **kwargs: Any) -> Any:
    # Reached with plain values (a passive run): the stage is just its function.
    return spec.fun(*args, **kwargs)


def _stage_vjp_maker(argnums, ans, args, kwargs):
    """autograd's VJP maker: called once the forward value is known, under reverse mode.

    It keeps the stage's inputs (and the output, for a user VJP) and returns the VJP closure; the
    closure holds only a handle, so nothing else of the forward run stays alive.
    """
    spec, stage_args = args[0], args[1:]
    diff = tuple(a - 1 for a in argnums)  # positions in stage_args (args[0] is the spec)
    boxed = _contains_box(stage_args)
    if boxed and not (spec.method == "recompute" and spec.keeper.storage is None):
        raise NotImplementedError(_higher_order_message(spec))
    needs_ans = callable(spec.method)
    handle = spec.keeper.keep(stage_args, ans, needs_ans, boxed)
    out_eps = _output_eps(ans)  # a number: what "fd" needs to know of the output, not the output

    def stage_vjp(g):
        try:
            if spec.method != "recompute" and _contains_box(g):
                raise NotImplementedError(_higher_order_message(spec))
            kept_args, kept_ans = handle.restore()
            if not spec.keep_inputs:
                release()  # freed as the reverse sweep passes; the locals live until we return
            method = _VJP_METHODS[_method_key(spec)]
            return method(spec, diff, g, kept_ans, kept_args, kwargs, out_eps)
        except BaseException:
            handle.abort()  # no file or thread outlives a failed reverse sweep
            raise

    # If the reverse sweep never runs, the inputs go when the recorded computation is dropped.
    release = weakref.finalize(stage_vjp, handle.release)
    return stage_vjp


def _stage_jvp_maker(argnums, gs, ans, args, kwargs):
    """autograd's JVP maker: forward-mode derivative of the stage, for every adjoint method."""
    spec, stage_args = args[0], args[1:]
    diff = tuple(a - 1 for a in argnums)
    if _contains_box(stage_args) or _contains_box(gs):
        raise NotImplementedError(_higher_order_message(spec, forward=True))
    return _JVP_METHODS[_method_key(spec)](spec, diff, tuple(gs), ans, stage_args, kwargs)


defvjp_argnums(_run_stage, _stage_vjp_maker)
defjvp_argnums(_run_stage, _stage_jvp_maker)


def _method_key(spec: _StageSpec) -> str:
    return spec.method if isinstance(spec.method, str) else "user"


def _higher_order_message(spec: _StageSpec, forward: bool = False) -> str:
    storage = "None" if spec.keeper.storage is None else type(spec.keeper.storage).__name__
    if forward:
        return (
            f"stage {spec.name} is being differentiated in forward mode to higher order (a "
            "derivative of a derivative); stages support forward mode to first order only."
        )
    return (
        f"stage {spec.name} (adjoint={_describe_method(spec.method)}, storage={storage}) is being "
        "differentiated to higher order (a derivative of a derivative). That is supported only "
        "with adjoint='recompute' and storage=None; use those for this stage."
    )


def _prepare_args(spec: _StageSpec, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Make differentiated values inside plain containers visible to autograd.

    autograd sees only top-level boxes: a plain tuple/list/dict or dataclass holding boxes is
    rebuilt with autograd's container constructors (and `dataclass_replace`), which box it as a
    whole. Any other object holding boxes would be differentiated through silently wrong, so it
    is an error.
    """
    out = list(args)
    for i, arg in enumerate(args):
        if isbox(arg) or not _contains_box(arg):
            continue
        if type(arg) in (tuple, list, dict) or _is_dataclass(arg):
            out[i] = _rebox(arg)
        else:
            raise TypeError(
                f"stage {spec.name}: positional argument {i} is a {type(arg).__name__} holding "
                "values being differentiated; a stage differentiates arrays, floats, and plain "
                "tuples/lists/dicts or dataclasses of them. Pass its arrays as separate arguments."
            )
    return tuple(out)


def _is_dataclass(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _rebox(value: Any) -> Any:
    """A plain container holding boxes, rebuilt so that autograd boxes it as a whole."""
    if not _contains_box(value) or isbox(value):
        return value
    if type(value) is tuple:
        return abuiltins.tuple([_rebox(v) for v in value])
    if type(value) is list:
        return abuiltins.list([_rebox(v) for v in value])
    if type(value) is dict:
        return abuiltins.dict({k: _rebox(v) for k, v in value.items()})
    if _is_dataclass(value):
        fields = (f.name for f in dataclasses.fields(value))
        return dataclass_replace(value, **{n: _rebox(getattr(value, n)) for n in fields})
    return value


def _contains_box(value: Any) -> bool:
    if isbox(value):
        return True
    if isinstance(value, (tuple, list)):
        return any(_contains_box(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_box(v) for v in value.values())
    if _is_dataclass(value):
        return any(_contains_box(getattr(value, f.name)) for f in dataclasses.fields(value))
    # Any other object: look at its attributes, one level (enough to catch a plain struct).
    attributes = getattr(value, "__dict__", None)
    if isinstance(attributes, dict) and not (
        callable(value) or isinstance(value, (type, types.ModuleType))
    ):
        return any(isbox(v) for v in attributes.values())
    return False


def _traceable(out: Any) -> Any:
    """A stage's output as autograd can trace it: plain containers of boxes become boxes."""
    if type(out) in (tuple, list, dict) or _is_dataclass(out):
        return _rebox(out)
    return out


class _Quiet:
    """Silence autograd's "output independent of input" warning for one traced call."""

    def __enter__(self) -> None:
        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.filterwarnings("ignore", message=_INDEPENDENT, category=UserWarning)

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)


def _of_diff(spec: _StageSpec, diff: tuple[int, ...], args: tuple[Any, ...], kwargs: dict):
    """The stage as a function of the tuple of its differentiated arguments only."""

    def fun(diff_values):
        full = subvals(args, zip(diff, diff_values))
        return _traceable(spec.fun(*full, **kwargs))

    return fun


def _of_diff_to_leaves(spec, diff, args, kwargs):
    """The stage as a function of its differentiated arguments, returning the tuple of its
    output's differentiable leaves (in `_Flat` order): forward mode then needs no JVP of the
    output's containers (a dataclass, say)."""

    def fun(diff_values):
        full = subvals(args, zip(diff, diff_values))
        leaves, _ = tree_flatten(spec.fun(*full, **kwargs))
        return abuiltins.tuple([leaf for leaf in leaves if is_differentiable(leaf)])

    return fun


def _tangent_vector(leaves: Any, dtype: np.dtype) -> np.ndarray:
    parts = [np.ravel(np.asarray(leaf, dtype=dtype)) for leaf in leaves]
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


# ---------------------------------------------------------------------------------------------
# Adjoint methods: each returns the cotangents of the differentiated arguments, in order.


def _vjp_recompute(spec, diff, g, ans, args, kwargs, out_eps=None):
    with _Quiet():
        # The recording of this stage alone; it lives only in this frame, so it is freed before
        # the outer sweep moves on to the previous stage. Its output value is not kept.
        pullback = make_vjp(_of_diff(spec, diff, args, kwargs), tuple(args[i] for i in diff))[0]
    return tuple(pullback(g))


def _vjp_forward(spec, diff, g, ans, args, kwargs, out_eps=None):
    x = _Flat(tuple(args[i] for i in diff), spec, "an input")
    out = _Flat(g, spec, "the output")
    push = make_jvp(_of_diff_to_leaves(spec, diff, args, kwargs), tuple(args[i] for i in diff))
    cot = np.zeros(x.size, dtype=np.result_type(x.dtype, out.dtype))
    basis = np.zeros(x.size, dtype=x.dtype)
    for i in range(x.size):
        # Column i of the Jacobian, contracted with the cotangent at once: (J^T g)_i = <J e_i, g>.
        basis[i] = 1
        with _Quiet():
            _, column = push(x.build(basis))
        basis[i] = 0
        cot[i] = np.dot(_tangent_vector(column, out.dtype), out.vector)
    return x.build(cot)


def _vjp_fd(spec, diff, g, ans, args, kwargs, out_eps=None):
    x = _Flat(tuple(args[i] for i in diff), spec, "an input")
    out = _Flat(g, spec, "the output")
    fun = _of_diff(spec, diff, args, kwargs)
    cot = np.zeros(x.size, dtype=np.result_type(x.dtype, out.dtype))
    for i in range(x.size):
        xi = x.vector[i]
        if spec.fd_step is not None:
            h = spec.fd_step
        else:
            # rounding error ~ eps |f| / h comes from the coarser of input element and output
            h = max(x.eps[i], out_eps) ** (1 / 3) * max(1, abs(xi))
        plus, minus = x.vector.copy(), x.vector.copy()
        # The step actually taken, after rounding to the element's own dtype.
        plus[i], minus[i] = x.rounded(i, xi + h), x.rounded(i, xi - h)
        width = plus[i] - minus[i]
        if width == 0:
            raise ValueError(
                f"stage {spec.name}: fd_step={spec.fd_step!r} is below the resolution of input "
                f"element {i} (value {xi!r}); use a larger fd_step."
            )
        difference = out.of(fun(x.build(plus))) - out.of(fun(x.build(minus)))
        cot[i] = np.dot(difference, out.vector) / width
    return x.build(cot)


def _vjp_user(spec, diff, g, ans, args, kwargs, out_eps=None):
    result = spec.method(g, ans, *args, **kwargs)
    return tuple(_checked_cotangents(spec, result, args, diff))


_VJP_METHODS = {
    "recompute": _vjp_recompute,
    "forward": _vjp_forward,
    "fd": _vjp_fd,
    "user": _vjp_user,
}


def _checked_cotangents(spec, result, args, diff):
    """Validate a user VJP's return and yield the cotangents of the differentiated arguments."""
    where = f"the vjp function {_name_of(spec.method)} of stage {spec.name}"
    if not isinstance(result, (tuple, list)):
        raise TypeError(
            f"{where} returned a {type(result).__name__}; it must return a tuple with one "
            f"cotangent per positional argument ({len(args)}), None for an argument without one."
        )
    if len(result) != len(args):
        raise ValueError(
            f"{where} returned {len(result)} cotangents for {len(args)} positional arguments; "
            "it must return one per positional argument (None where there is none)."
        )
    for i in diff:
        cot = result[i]
        if cot is None:
            yield vspace(args[i]).zeros()
            continue
        problem = _layout_mismatch(cot, args[i])
        if problem:
            raise ValueError(
                f"{where} returned a cotangent for argument {i} that does not match the "
                f"argument: {problem}."
            )
        if isinstance(args[i], np.ndarray) and not isinstance(cot, np.ndarray) and not isbox(cot):
            cot = np.asarray(cot, dtype=np.result_type(args[i].dtype, float))
        yield cot


def _layout_mismatch(cot: Any, arg: Any) -> str | None:
    """Describe how a cotangent's structure or shapes differ from its argument's, or None."""
    arg_leaves, arg_def = tree_flatten(arg)
    cot_leaves, cot_def = tree_flatten(cot)
    if cot_def != arg_def:
        return f"it is structured as {describe(cot_def)}, the argument as {describe(arg_def)}"
    for path, a, c in zip(leaf_paths(arg_def, "the argument"), arg_leaves, cot_leaves):
        if is_differentiable(a) and np.shape(c) != np.shape(a):
            return f"it has shape {np.shape(c)} where {path} has shape {np.shape(a)}"
    return None


# Forward-mode derivative (JVP) of a stage, per method: the tangent of the output.


def _jvp_traced(spec, diff, gs, ans, args, kwargs):
    out = _Flat(ans, spec, "the output")
    push = make_jvp(_of_diff_to_leaves(spec, diff, args, kwargs), tuple(args[i] for i in diff))
    with _Quiet():
        _, tangents = push(gs)
    return out.build(_tangent_vector(tangents, out.dtype))


def _jvp_fd(spec, diff, gs, ans, args, kwargs):
    x = _Flat(tuple(args[i] for i in diff), spec, "an input")
    v = x.of(gs)
    out = _Flat(ans, spec, "the output")
    size = float(np.max(np.abs(v))) if v.size else 0.0
    if size == 0:
        return vspace(ans).zeros()
    if spec.fd_step is not None:
        h = spec.fd_step / size
    else:
        eps = max(float(np.max(x.eps)), _output_eps(ans))  # no element below its resolution
        h = eps ** (1 / 3) * max(1.0, float(np.max(np.abs(x.vector)))) / size
    fun = _of_diff(spec, diff, args, kwargs)
    difference = out.of(fun(x.build(x.vector + h * v))) - out.of(fun(x.build(x.vector - h * v)))
    return out.build(difference / (2 * h))


def _jvp_user(spec, diff, gs, ans, args, kwargs):
    # Row j of the Jacobian is the user's VJP of output basis vector j: (J v)_j = <J^T e_j, v>.
    x = _Flat(tuple(args[i] for i in diff), spec, "an input")
    v = x.of(gs)
    out = _Flat(ans, spec, "the output")
    tangent = np.zeros(out.size, dtype=np.result_type(out.dtype, x.dtype))
    basis = np.zeros(out.size, dtype=out.dtype)
    for j in range(out.size):
        basis[j] = 1
        row = _vjp_user(spec, diff, out.build(basis), ans, args, kwargs)
        basis[j] = 0
        tangent[j] = np.dot(x.of(row), v)
    return out.build(tangent)


_JVP_METHODS = {
    "recompute": _jvp_traced,
    "forward": _jvp_traced,
    "fd": _jvp_fd,
    "user": _jvp_user,
}


def _output_eps(ans: Any) -> float:
    """The coarsest machine epsilon among a stage output's floating leaves (float64's if none)."""
    leaves, _ = tree_flatten(ans)
    dtypes = [np.asarray(getval(leaf)).dtype for leaf in leaves if is_differentiable(leaf)]
    return max([_eps_of(d) for d in dtypes] or [_eps_of(np.dtype(np.float64))])


def _eps_of(dtype: np.dtype) -> float:
    """Machine epsilon of a floating dtype (float64's for any other): h = eps**(1/3) balances
    O(h^2) truncation against O(eps/h) rounding (Nocedal & Wright, section 8.1)."""
    return float(np.finfo(dtype if np.issubdtype(dtype, np.floating) else np.float64).eps)


# ---------------------------------------------------------------------------------------------
# The differentiable leaves of a value as one flat real vector (plain numpy, never traced).


class _Flat:
    """A value's differentiable leaves (floats, float arrays) as one flat vector, and back.

    The value may nest tuples, lists, dicts, namedtuples and dataclasses; other leaves (ints,
    strings, ...) are carried unchanged. `of` reads a value of the same structure (a cotangent or
    tangent) as a vector; `build` puts a vector back into that structure, each leaf in its own
    type and dtype.
    """

    def __init__(self, value: Any, spec: _StageSpec, what: str) -> None:
        self.leaves, self.tdef = tree_flatten(value)
        self.what = what
        self.diff = [i for i, leaf in enumerate(self.leaves) if is_differentiable(leaf)]
        for i in self.diff:
            if np.iscomplexobj(self.leaves[i]):
                raise TypeError(
                    f"stage {spec.name}: {what} is complex; adjoint="
                    f"{_describe_method(spec.method)} handles real values only. Use "
                    "adjoint='recompute'."
                )
        dtypes = [np.asarray(self.leaves[i]).dtype for i in self.diff]
        self.dtype = np.result_type(*dtypes, np.float32) if dtypes else np.dtype(np.float64)
        self.vector = self._concat(self.leaves)
        # Each element's own leaf dtype: a float32 leaf is perturbed on its own scale even when a
        # float64 leaf makes the flat vector float64.
        sizes = [int(np.size(self.leaves[i])) for i in self.diff]
        self.leaf_dtypes = dtypes
        self.owner = np.repeat(np.arange(len(dtypes), dtype=np.intp), sizes)
        self.eps = np.array([_eps_of(d) for d in dtypes] or [0.0])[self.owner]

    def rounded(self, i: int, value: float) -> float:
        """``value`` as element ``i`` holds it once put back into its leaf's dtype."""
        dtype = self.leaf_dtypes[self.owner[i]]
        return float(dtype.type(value)) if dtype.kind == "f" else float(value)

    @property
    def size(self) -> int:
        return self.vector.size

    def _concat(self, leaves: list[Any]) -> np.ndarray:
        parts = [np.ravel(np.asarray(leaves[i], dtype=self.dtype)) for i in self.diff]
        return np.concatenate(parts) if parts else np.zeros(0, self.dtype)

    def of(self, value: Any) -> np.ndarray:
        leaves, tdef = tree_flatten(value)
        if tdef != self.tdef:
            raise TypeError(
                f"a derivative of {self.what} is structured as {describe(tdef)}, the value as "
                f"{describe(self.tdef)}"
            )
        return self._concat(leaves)

    def build(self, vector: np.ndarray) -> Any:
        leaves = list(self.leaves)
        offset = 0
        for i in self.diff:
            leaf = leaves[i]
            size = int(np.size(leaf))
            chunk = vector[offset : offset + size]
            offset += size
            if isinstance(leaf, np.ndarray):
                leaves[i] = chunk.reshape(leaf.shape).astype(leaf.dtype, copy=True)
            elif isinstance(leaf, np.generic):
                leaves[i] = leaf.dtype.type(chunk[0])
            else:
                leaves[i] = float(chunk[0])
        return tree_unflatten(self.tdef, leaves)


# ---------------------------------------------------------------------------------------------
# Where a stage's inputs wait for the reverse sweep.


class _InputKeeper:
    """Holds the inputs of a stage's calls, in memory or in a storage session.

    With a `Storage`, one session is opened when the first call's inputs arrive and closed when
    the last held inputs are freed, so a chain of calls shares one file and none is left behind.
    """

    def __init__(self, storage: Storage | None, name: str) -> None:
        self.storage = storage
        self.name = name
        self._lock = threading.Lock()
        self._session: StorageSession | None = None
        self._live = 0
        self._slots = itertools.count()
        self._calls = itertools.count()
        self._aborted: weakref.WeakSet[StorageSession] = weakref.WeakSet()

    def keep(self, args: tuple[Any, ...], ans: Any, with_ans: bool, boxed: bool) -> _Handle:
        """Keep a call's inputs (and its output ``ans`` when ``with_ans``) until released."""
        kept = (args, ans) if with_ans else (args,)
        if self.storage is None or boxed:
            return _MemoryHandle(kept, self.name)
        statics: list[Any] = []
        leaves: list[Any] = []
        tree = _split(kept, leaves, statics)
        structure = f"stage {self.name}: inputs {_describe(tree[1][0])}"
        if with_ans:
            structure += f", output {_describe(tree[1][1])}"
        with self._lock:
            if self._session is None:
                self._session = self.storage.session()
            session = self._session
            slot = next(self._slots)
            self._live += 1
        try:
            session.put(slot, next(self._calls), leaves, structure)
        except BaseException:
            self._drop(session, slot, stored=False)
            raise
        return _StorageHandle(self, session, slot, tree, statics)

    def abort(self, session: StorageSession | None = None) -> None:
        """Close ``session`` (default: the open one) on an error's way out, so its file and
        thread go before the error reaches the caller; the inputs it held cannot be restored."""
        with self._lock:
            session = session or self._session
            if session is None or session in self._aborted:
                return
            if self._session is session:
                self._session, self._live = None, 0
            self._aborted.add(session)
        try:
            session.close()
        except CheckpointError:
            pass  # the error on its way out says more

    def _drop(self, session: StorageSession, slot: int, *, stored: bool = True) -> None:
        with self._lock:
            if session in self._aborted:
                return  # closed with everything it held
            self._live -= 1
            last = self._live == 0 and self._session is session
            if last:
                self._session = None
        try:
            if stored:
                session.delete(slot)
        finally:
            if last:
                session.close()


class _Handle:
    """A call's kept values: `restore` gives ``(args, ans)`` (``ans`` None unless kept)."""

    def restore(self) -> tuple[tuple[Any, ...], Any]:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """Drop what the kept values hold outside memory, after an error."""


_FREED = (
    "the inputs of stage {name} were freed after its first reverse sweep, and the same "
    "recorded computation is being pulled back again (autograd.jacobian does that). Create the "
    "stage with checkpoint_stage(..., keep_inputs=True) to keep them until the computation is "
    "dropped."
)


class _MemoryHandle(_Handle):
    def __init__(self, kept: tuple[Any, ...], name: str) -> None:
        self._kept: tuple[Any, ...] | None = kept
        self._name = name

    def restore(self):
        if self._kept is None:
            raise CheckpointError(_FREED.format(name=self._name))
        return self._kept[0], self._kept[1] if len(self._kept) == 2 else None

    def release(self) -> None:
        self._kept = None


class _StorageHandle(_Handle):
    def __init__(self, keeper, session, slot, tree, statics) -> None:
        self._keeper = keeper
        self._session = session
        self._slot: int | None = slot
        self._tree = tree
        self._statics = statics

    def restore(self):
        if self._slot is None:
            raise CheckpointError(_FREED.format(name=self._keeper.name))
        if self._session in self._keeper._aborted:
            raise CheckpointError(
                f"the inputs of stage {self._keeper.name} were dropped when a traced call or an "
                "adjoint of it failed (its storage is closed at once, so that no file is left "
                "behind); compute the derivative again"
            )
        _, leaves = self._session.get(self._slot)
        kept = _join(self._tree, iter(leaves), iter(self._statics))
        return kept[0], kept[1] if len(kept) == 2 else None

    def release(self) -> None:
        slot, self._slot = self._slot, None
        if slot is not None:
            self._keeper._drop(self._session, slot)

    def abort(self) -> None:
        self._keeper.abort(self._session)


def _storable(value: Any) -> bool:
    if type(value) in (float, int):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "iufc"
    return isinstance(value, np.number)


def _split(value: Any, leaves: list, statics: list) -> Any:
    """Split nested inputs into storable leaves and other values kept in memory.

    A dataclass is kept as a copy whose fields are emptied, so its arrays live only in storage.
    """
    t = type(value)
    if t in (tuple, list):
        return (t, [_split(v, leaves, statics) for v in value])
    if t is dict:
        return (dict, [(k, _split(v, leaves, statics)) for k, v in value.items()])
    if isinstance(value, tuple) and hasattr(t, "_fields"):  # a namedtuple
        return ("namedtuple", t, [_split(v, leaves, statics) for v in value])
    if _is_dataclass(value):
        names = [f.name for f in dataclasses.fields(value)]
        empty = dataclass_replace(value, **dict.fromkeys(names))
        return (
            "dataclass",
            empty,
            [(n, _split(getattr(value, n), leaves, statics)) for n in names],
        )
    if _storable(value):
        leaves.append(value)
        return ("leaf",)
    statics.append(value)
    return ("static",)


def _join(tree: Any, leaves, statics) -> Any:
    kind = tree[0]
    if kind == "leaf":
        return next(leaves)
    if kind == "static":
        return next(statics)
    if kind is dict:
        return {k: _join(child, leaves, statics) for k, child in tree[1]}
    if kind == "namedtuple":
        return tree[1](*(_join(child, leaves, statics) for child in tree[2]))
    if kind == "dataclass":
        fields = {n: _join(child, leaves, statics) for n, child in tree[2]}
        return dataclass_replace(tree[1], **fields)
    return kind(_join(child, leaves, statics) for child in tree[1])


def _describe(tree: Any) -> str:
    kind = tree[0]
    if kind in ("leaf", "static"):
        return kind
    if kind is dict:
        return "{" + ", ".join(f"{k!r}: {_describe(c)}" for k, c in tree[1]) + "}"
    if kind == "namedtuple":
        return f"{tree[1].__name__}(" + ", ".join(_describe(c) for c in tree[2]) + ")"
    if kind == "dataclass":
        inner = ", ".join(f"{n}={_describe(c)}" for n, c in tree[2])
        return f"{type(tree[1]).__name__}({inner})"
    inner = ", ".join(_describe(c) for c in tree[1])
    if kind is tuple:
        return f"({inner},)" if len(tree[1]) == 1 else f"({inner})"
    return f"[{inner}]"
