"""The adjoint methods of a stage: its VJP (reverse mode) and JVP (forward mode), per method.

Each VJP method returns the cotangents of the differentiated arguments, in order; each JVP method
returns the tangent of the output. ``"recompute"`` tapes the body with autograd, ``"forward"``
builds J^T g column by column with forward mode, ``"fd"`` uses central differences, and a user
function is called and its result checked. `vjp_differentiable` and `jvp_differentiable` are the
forms that an outer autograd recording can differentiate again (higher order).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from autograd import builtins as abuiltins
from autograd.core import make_jvp, make_vjp, vspace
from autograd.tracer import getval, isbox
from autograd.util import subvals

from ckpt_transform.backends.autograd import is_differentiable
from ckpt_transform.runtime.tree import describe, leaf_paths
from ckpt_transform.runtime.tree import flatten as tree_flatten
from ckpt_transform.runtime.tree import unflatten as tree_unflatten
from ckpt_transform.stages.arguments import _traceable
from ckpt_transform.stages.spec import _describe_method, _name_of, _StageSpec

__all__ = ["JVP_METHODS", "VJP_METHODS", "jvp_differentiable", "vjp_differentiable"]

# autograd warns when a traced function's output does not depend on its input. Inside a stage
# that is a legitimate case (the cotangent is zero), not something to tell the user about.
_INDEPENDENT = "Output seems independent of input."


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


VJP_METHODS = {
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


def vjp_differentiable(spec, diff, g, args, kwargs):
    """J^T g in a form an outer recording differentiates (a derivative of a derivative).

    ``"recompute"`` and ``"forward"`` (both J^T g exactly) tape the body with autograd; a user
    VJP is called with the output recomputed from the inputs under the same recording, so its
    dependence on them is differentiated too (the user's function must use autograd.numpy).
    """
    if not callable(spec.method):
        return _vjp_recompute(spec, diff, g, None, args, kwargs)
    ans = _traceable(spec.fun(*args, **kwargs))
    return _vjp_user(spec, diff, g, ans, args, kwargs)


def jvp_differentiable(spec, diff, gs, args, kwargs):
    """J v by forward mode through the body, in a form an outer recording differentiates."""
    push = make_jvp(_of_diff(spec, diff, args, kwargs), tuple(args[i] for i in diff))
    with _Quiet():
        return push(gs)[1]


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


JVP_METHODS = {
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
