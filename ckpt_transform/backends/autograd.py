"""Everything this package asks of autograd, in one place.

* Dataclasses are differentiable with no registration step: importing this module teaches autograd
  to box any dataclass instance (a `DataclassBox`, whose attribute reads are traced) and to treat it
  as a vector space whose gradient is a dataclass of the same type (the counterpart of Enzyme's
  shadow copy). Fields holding floats, complex numbers or float/complex arrays (or containers of
  them) carry gradients; other fields (ints, strings, functions) are copied unchanged.
* `make_segment_vjp` tapes a function of one tuple argument and returns its VJP and value: the one
  operation the driver needs to differentiate steps. It uses autograd's tracer directly
  (``VJPNode``, ``trace_stack``, ``new_box``, ``backward_pass``), checked at import against the
  public ``make_vjp``; with an autograd whose internals differ it falls back to ``make_vjp`` per
  segment, with one warning (see "autograd versions" below).
* Slicing a traced array with a basic index (ints, slices, ``...``, ``None``) gets an adjoint that
  adds the cotangent with one slice assignment instead of autograd's ``np.add.at`` (about ten
  times slower; still used for advanced indices, which may select a cell twice).

autograd finds vector spaces and box types by exact type (``VSpace.mappings[type(x)]``,
``box_type_mappings[type(x)]``); both tables are replaced here by dicts that register a dataclass
type the first time they are asked about it.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import types
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import autograd.tracer as _tracer
import numpy as onp
from autograd import make_vjp
from autograd.builtins import SequenceBox, container_take  # noqa: F401  (re-exported helper)
from autograd.core import JVPNode as _JVPNode
from autograd.core import SparseObject, VSpace, vspace
from autograd.core import VJPNode as _VJPNode
from autograd.core import make_jvp as _make_jvp
from autograd.extend import defjvp, defjvp_argnum, defvjp, defvjp_argnum, primitive
from autograd.numpy.numpy_boxes import ArrayBox
from autograd.numpy.numpy_vjps import untake as _untake
from autograd.tracer import Box, box_types, getval, isbox

__all__ = [
    "DataclassBox",
    "DataclassVSpace",
    "dataclass_replace",
    "forward_jvp",
    "getval",
    "is_basic_index",
    "is_differentiable",
    "isbox",
    "make_leaves_vjp",
    "make_segment_vjp",
    "reverse_over_forward",
    "tangent_of",
    "untake_basic",
    "vspace",
]


# -- which values carry gradients ------------------------------------------------------------

_SCALAR_TYPES = (float, complex, onp.floating, onp.complexfloating)


def is_differentiable(value: Any) -> bool:
    """True for a float/complex scalar or a float/complex array (boxed or not)."""
    value = getval(value)
    if isinstance(value, onp.ndarray):
        return value.dtype.kind in "fc"
    return isinstance(value, _SCALAR_TYPES) and not isinstance(value, bool)


def _has_gradient(value: Any) -> bool:
    """True when a field's value has a vector space: differentiable leaves or containers of them."""
    value = getval(value)
    if is_differentiable(value):
        return True
    if isinstance(value, (tuple, list)):
        return len(value) > 0 and all(_has_gradient(v) for v in value)
    if isinstance(value, dict):
        return len(value) > 0 and all(_has_gradient(v) for v in value.values())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return True
    return False


# -- dataclasses as autograd values --------------------------------------------------------------


def _copy_with(obj: Any, fields: dict[str, Any]) -> Any:
    """A shallow copy of dataclass ``obj`` with ``fields`` replaced (frozen and init=False too)."""
    new = object.__new__(type(obj))
    if hasattr(obj, "__dict__"):
        new.__dict__.update(obj.__dict__)
    for f in dataclasses.fields(obj):
        if not hasattr(obj, "__dict__") or f.name not in obj.__dict__:
            if hasattr(obj, f.name):  # slotted dataclasses
                object.__setattr__(new, f.name, getattr(obj, f.name))
    for name, value in fields.items():
        object.__setattr__(new, name, value)
    return new


class DataclassVSpace(VSpace):
    """The vector space of a dataclass: one sub-space per field that carries gradients."""

    def __init__(self, value: Any) -> None:
        self.cls = type(value)
        self.template = value
        self.shape = {
            f.name: vspace(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if _has_gradient(getattr(value, f.name))
        }

    @property
    def size(self) -> int:
        return sum(vs.size for vs in self.shape.values())

    def _map(self, f: Callable[..., Any], *args: Any) -> Any:
        return _copy_with(
            self.template,
            {k: f(vs, *[getattr(x, k) for x in args]) for k, vs in self.shape.items()},
        )

    def zeros(self) -> Any:
        return self._map(lambda vs: vs.zeros())

    def ones(self) -> Any:
        return self._map(lambda vs: vs.ones())

    def randn(self) -> Any:
        return self._map(lambda vs: vs.randn())

    def standard_basis(self) -> Any:
        zero = self.zeros()
        for name, vs in self.shape.items():
            for x in vs.standard_basis():
                yield _copy_with(zero, {name: x})

    def _add(self, xs: Any, ys: Any) -> Any:
        return self._map(lambda vs, x, y: vs._add(x, y), xs, ys)

    def _mut_add(self, xs: Any, ys: Any) -> Any:
        return self._map(lambda vs, x, y: vs._mut_add(x, y), xs, ys)

    def _scalar_mul(self, xs: Any, a: Any) -> Any:
        return self._map(lambda vs, x: vs._scalar_mul(x, a), xs)

    def _inner_prod(self, xs: Any, ys: Any) -> Any:
        return sum(vs._inner_prod(getattr(xs, k), getattr(ys, k)) for k, vs in self.shape.items())

    def _covector(self, xs: Any) -> Any:
        return self._map(lambda vs, x: vs._covector(x), xs)

    def __eq__(self, other: object) -> bool:
        return (
            type(self) is type(other)
            and self.cls is other.cls  # type: ignore[attr-defined]
            and self.shape == other.shape  # type: ignore[attr-defined]
        )

    def __hash__(self) -> int:
        return hash(self.cls)

    def __repr__(self) -> str:
        return f"DataclassVSpace({self.cls.__name__}, {self.shape})"


@primitive
def dataclass_getfield(obj: Any, name: str) -> Any:
    """``obj.name``, traced: the VJP puts the cotangent in that field of a zero dataclass."""
    return getattr(obj, name)


def _getfield_vjp(ans: Any, obj: Any, name: str) -> Callable[[Any], Any]:
    vs = vspace(obj)

    def vjp(g: Any) -> Any:
        if name not in vs.shape:
            return vs.zeros()

        def mut_add(acc: Any) -> Any:
            return _copy_with(acc, {name: vs.shape[name]._mut_add(getattr(acc, name), g)})

        return SparseObject(vs, mut_add)

    return vjp


defvjp_argnum(dataclass_getfield, lambda argnum, ans, args, kwargs: _getfield_vjp(ans, *args))
defjvp_argnum(
    dataclass_getfield, lambda argnum, g, ans, args, kwargs: dataclass_getfield(g, args[1])
)


@primitive
def _replace_fields(obj: Any, names: tuple[str, ...], *values: Any) -> Any:
    return _copy_with(obj, dict(zip(names, values)))


def _replace_vjp(argnum: int, ans: Any, args: tuple, kwargs: dict) -> Callable[[Any], Any]:
    obj, names = args[0], args[1]
    if argnum == 0:
        vs = vspace(obj)
        return lambda g: _copy_with(g, {n: vs.shape[n].zeros() for n in names if n in vs.shape})
    name = names[argnum - 2]
    return lambda g: getattr(g, name)


defvjp_argnum(_replace_fields, _replace_vjp)


def _replace_jvp(argnum: int, g: Any, ans: Any, args: tuple, kwargs: dict) -> Any:
    names = args[1]
    vs = vspace(ans)
    if argnum == 0:  # the untouched fields move with the tangent of obj
        return _copy_with(g, {n: vs.shape[n].zeros() for n in names if n in vs.shape})
    name = names[argnum - 2]
    return _copy_with(vs.zeros(), {name: g})


defjvp_argnum(_replace_fields, _replace_jvp)


def dataclass_replace(obj: Any, **fields: Any) -> Any:
    """A copy of dataclass ``obj`` with ``fields`` replaced, differentiable in both.

    Unlike `dataclasses.replace` it works on a traced (boxed) dataclass, on frozen dataclasses and
    on fields with ``init=False``, and keeps attributes set outside the fields.
    """
    if not isbox(obj):
        # A plain instance whose fields may hold traced values: pass every traced field through
        # the primitive too, so the result is one traced dataclass holding no boxes inside (as
        # autograd.builtins.tuple does for a tuple of traced values).
        fields = {
            **{
                f.name: getattr(obj, f.name)
                for f in dataclasses.fields(obj)
                if isbox(getattr(obj, f.name, None))
            },
            **fields,
        }
    names = tuple(fields)
    return _replace_fields(obj, names, *(fields[n] for n in names))


class DataclassBox(Box):
    """A traced dataclass instance: reading a field is a traced operation.

    Methods are bound to the box, so ``self.field`` inside them is traced too. Fields cannot be
    assigned on a traced instance: build a new one with `dataclass_replace`.
    """

    __slots__ = []

    def __getattr__(self, name: str) -> Any:
        value = self._value
        if name in {f.name for f in dataclasses.fields(value)}:
            field_value = getattr(value, name)
            # Fields without a vector space (ints, strings, functions) are not traced.
            return dataclass_getfield(self, name) if _has_gradient(field_value) else field_value
        attr = getattr(type(value), name, None)
        if isinstance(attr, types.FunctionType):
            return types.MethodType(attr, self)
        if isinstance(attr, property) and attr.fget is not None:
            return attr.fget(self)
        return getattr(value, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in Box.__slots__:
            object.__setattr__(self, name, value)
            return
        raise TypeError(
            f"cannot assign {type(self._value).__name__}.{name} while it is being differentiated; "
            f"build an updated copy instead: obj = dataclass_replace(obj, {name}=...) "
            "(ckpt_transform.backends.autograd)"
        )


class _AutoRegister(dict):
    """A type table that registers a dataclass type the first time it is looked up."""

    def __init__(self, table: dict, register: Callable[[type], Any]) -> None:
        super().__init__(table)
        self._register = register

    def __missing__(self, key: type) -> Any:
        if isinstance(key, type) and dataclasses.is_dataclass(key):
            self._register(key)
            return dict.__getitem__(self, key)
        raise KeyError(key)


def _register_dataclass(cls: type) -> None:
    DataclassBox.register(cls)
    DataclassVSpace.register(cls)


def _install() -> None:
    if isinstance(_tracer.box_type_mappings, _AutoRegister):
        return
    boxes = _AutoRegister(Box.type_mappings, _register_dataclass)
    Box.type_mappings = boxes
    _tracer.box_type_mappings = boxes
    VSpace.mappings = _AutoRegister(VSpace.mappings, _register_dataclass)


_install()


# -- the adjoint of basic indexing ----------------------------------------------------------------


def is_basic_index(idx: Any) -> bool:
    """True when ``x[idx]`` is numpy basic indexing: ints, slices, ``...`` and ``None`` only.

    Basic indexing reads every element of ``x`` at most once (it returns a view), so its adjoint
    may add the cotangent into the selected cells with one slice assignment. Lists, arrays and
    booleans (``x[True]`` is advanced indexing) are not basic: they may select a cell twice.
    """
    for part in idx if type(idx) is tuple else (idx,):
        if part is None or part is Ellipsis or type(part) is slice:
            continue
        if isinstance(part, (int, onp.integer)) and not isinstance(part, (bool, onp.bool_)):
            continue
        return False
    return True


@primitive
def untake_basic(x: Any, idx: Any, vs: Any) -> SparseObject:
    """autograd's ``untake`` for a basic index: ``x`` added into zeros of ``vs`` at ``idx``.

    autograd's own adds with ``np.add.at``, needed when an advanced index repeats a cell and
    about ten times slower than the ``A[idx] += x`` used here, which is the same sum when no cell
    repeats (each selected cell gets exactly one addition).
    """

    def mut_add(A: Any) -> Any:
        A[idx] += x
        return A

    return SparseObject(vs, mut_add)


defvjp(untake_basic, lambda ans, x, idx, _: lambda g: g[idx])
defjvp(untake_basic, "same")


def _getitem_vjp(ans: Any, A: Any, idx: Any) -> Callable[[Any], Any]:
    untake = untake_basic if is_basic_index(idx) else _untake
    return lambda g: untake(g, idx, vspace(A))


# Every ``box[idx]`` traced by autograd (a model's slices, ``u[1:-1]``) gets the faster adjoint
# when its index is basic; other indices keep autograd's own.
defvjp(ArrayBox.__getitem__, _getitem_vjp)


try:  # autograd's tracer internals (not public API): see "autograd versions" below
    from autograd.core import VJPNode, add_outgrads, backward_pass
    from autograd.tracer import new_box, toposort, trace_stack
except ImportError:  # pragma: no cover - an autograd whose internals moved
    VJPNode = add_outgrads = backward_pass = new_box = toposort = trace_stack = None


# -- taping a segment -----------------------------------------------------------------------------


def _internal_segment_vjp(fun: Callable[..., Any], x: Any, *args: Any) -> tuple[Any, Any]:
    """Tape ``fun(x, *args)`` and return ``(vjp, value)``, as autograd's ``make_vjp`` does.

    Unlike ``make_vjp`` it does not warn when the output does not depend on the input: for a loop
    step that is a legitimate case (a state that a step resets to constants), and the VJP then
    returns zeros. Tracing here directly also spares a ``warnings.catch_warnings`` per segment,
    which cost as much as a small step, and the trace is entered by hand (what autograd's
    ``new_trace`` context manager does, at a fraction of its cost on a one-step segment).
    """
    start_node = VJPNode.new_root()
    stack = trace_stack
    stack.top += 1
    try:
        trace = stack.top
        start_box = new_box(x, trace, start_node)
        end_box = fun(start_box, *args)
    finally:
        stack.top -= 1
    if isbox(end_box) and end_box._trace == trace:
        end_node = end_box._node
        return partial(backward_pass, end_node=end_node), end_box._value
    return _Zeros(x), end_box


class _Zeros:
    """The VJP of a segment whose output does not depend on its input: zeros like the input."""

    __slots__ = ("x",)

    def __init__(self, x: Any) -> None:
        self.x = x

    def __call__(self, g: Any) -> Any:
        return vspace(self.x).zeros()


def _internal_leaves_vjp(fun: Callable[[tuple], Any], xs: tuple) -> tuple[Callable, tuple]:
    """Tape ``fun(xs)`` for a tuple of leaves, each traced on its own; return ``(vjp, values)``.

    ``fun`` receives a plain tuple of traced leaves and returns a tuple or list of values;
    ``vjp`` takes a tuple of output cotangents and returns one cotangent per leaf. Nothing is
    traced as a container: a tuple traced whole costs a traced index per leaf on the way in and,
    on the way back, a tuple of zeros per index (a pair (state, tangent) would allocate four
    states per step to pull back).
    """
    roots = [VJPNode.new_root() for _ in xs]
    stack = trace_stack  # entered by hand, as in `_internal_segment_vjp`
    stack.top += 1
    try:
        trace = stack.top
        outs = fun(tuple(new_box(x, trace, r) for x, r in zip(xs, roots)))
    finally:
        stack.top -= 1
    values, ends = [], []
    for out in outs:
        mine = isbox(out) and out._trace == trace
        values.append(out._value if mine else out)
        ends.append(out._node if mine else None)

    def vjp(gs: Sequence[Any]) -> tuple:
        return _leaves_backward([(n, g) for n, g in zip(ends, gs) if n is not None], roots, xs)

    return vjp, tuple(values)


def _leaves_backward(live: list, roots: list, xs: tuple) -> tuple:
    """autograd's backward pass from several end nodes to several root nodes."""
    if not live:
        return tuple(vspace(x).zeros() for x in xs)
    top = VJPNode.__new__(VJPNode)  # a node joining the ends: its VJP hands each its cotangent
    top.parents = [n for n, _ in live]
    top.vjp = lambda g: g
    outgrads = {top: (tuple(g for _, g in live), False)}
    index = {id(r): k for k, r in enumerate(roots)}
    found: dict[int, Any] = {}
    for node in toposort(top):
        outgrad = outgrads.pop(node)
        k = index.get(id(node))
        if k is not None:
            found[k] = outgrad[0]
            continue
        for parent, ingrad in zip(node.parents, node.vjp(outgrad[0])):
            outgrads[parent] = add_outgrads(outgrads.get(parent), ingrad)
    return tuple(found[k] if k in found else vspace(x).zeros() for k, x in enumerate(xs))


def _public_leaves_vjp(fun: Callable[[tuple], Any], xs: tuple) -> tuple[Callable, tuple]:
    """`make_leaves_vjp` through the public ``make_vjp``: the tuple is traced whole."""
    import autograd.builtins as abuiltins

    n = len(xs)
    vjp, value = _public_segment_vjp(
        lambda t: abuiltins.tuple(list(fun(tuple(t[j] for j in range(n))))), xs
    )
    return (lambda gs: tuple(vjp(tuple(gs)))), tuple(value)


# -- autograd versions ---------------------------------------------------------------------------
#
# pyproject allows autograd>=1.5,<2. `_internal_segment_vjp` relies on autograd's tracer, which is
# not public API: at import it is checked on a small function against the public `make_vjp` (the
# same value and VJP). If that fails (an autograd whose internals moved), or when the environment
# variable CKPT_AUTOGRAD_PUBLIC=1 asks for it, every segment is taped with `make_vjp` instead: the
# same gradients, a little slower on tiny steps. One warning says so.

#: True when segments are taped through autograd's public ``make_vjp`` (see above).
PUBLIC_API_ONLY = False


def _public_segment_vjp(fun: Callable[..., Any], x: Any, *args: Any) -> tuple[Any, Any]:
    """`make_segment_vjp` through the public ``autograd.make_vjp`` only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Output seems independent of input")
        vjp, value = make_vjp(lambda y: fun(y, *args))(x)
    return vjp, value


def _internals_fit() -> str | None:
    """None when the internal path agrees with ``make_vjp`` here, else why it does not."""
    import autograd.numpy as anp

    def probe(x: Any) -> Any:
        return anp.sin(x) * x[::-1] + 2.0 * x

    x, g = onp.array([0.3, -1.2]), onp.array([1.0, 0.5])
    try:
        vjp, value = _internal_segment_vjp(probe, x)
        got = vjp(g)
        vjp_ref, value_ref = _public_segment_vjp(probe, x)
        want = vjp_ref(g)
    except Exception as error:  # any change of the internals: a missing name, a new signature
        return f"{type(error).__name__}: {error}"
    if not (onp.allclose(value, value_ref) and onp.allclose(got, want)):
        return f"the internal path gave {got!r}, make_vjp {want!r}"
    return None


def _choose() -> Callable[..., tuple[Any, Any]]:
    global PUBLIC_API_ONLY
    if os.environ.get("CKPT_AUTOGRAD_PUBLIC") == "1":
        why: str | None = "CKPT_AUTOGRAD_PUBLIC=1 is set"
    else:
        why = _internals_fit()
    if why is None:
        return _internal_segment_vjp
    PUBLIC_API_ONLY = True
    warnings.warn(
        f"ckpt_transform: autograd {_autograd_version()}'s tracer internals do not fit ({why}); "
        "each checkpointed segment is taped with autograd.make_vjp instead (the same gradients, "
        "slower for very small steps).",
        RuntimeWarning,
        stacklevel=2,
    )
    return _public_segment_vjp


def _autograd_version() -> str:
    try:
        return importlib.metadata.version("autograd")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a source checkout
        return "(unknown version)"


_segment_vjp = _choose()


def make_leaves_vjp(fun: Callable[[tuple], Any], xs: tuple) -> tuple[Callable, tuple]:
    """Tape ``fun(xs)`` for a tuple of leaves traced one by one; return ``(vjp, values)``.

    ``fun`` takes and returns tuples (not traced as containers); ``vjp`` maps a tuple of output
    cotangents to a tuple of input cotangents. See `make_segment_vjp` for the rest.
    """
    if PUBLIC_API_ONLY:
        return _public_leaves_vjp(fun, xs)
    return _internal_leaves_vjp(fun, xs)


def make_segment_vjp(fun: Callable[..., Any], x: Any, *args: Any) -> tuple[Any, Any]:
    """Tape ``fun(x, *args)`` in ``x`` and return ``(vjp, value)``, as autograd's ``make_vjp`` does.

    Unlike ``make_vjp`` it does not warn when the output does not depend on the input: for a loop
    step that is a legitimate case (a state that a step resets to constants), and the VJP then
    returns zeros. ``args`` are passed on untraced (the driver's segment bounds: no closure to
    build per segment).
    """
    return _segment_vjp(fun, x, *args)


# -- forward mode under reverse mode ------------------------------------------------------------


def reverse_over_forward(x: Any) -> bool:
    """True when ``x`` is traced by reverse mode over forward mode (``make_jvp(grad(f))``).

    A value traced that way will be pulled back by the reverse trace with cotangents that carry
    the forward trace's tangents: a Hessian-vector product is being taken. Exactly these two
    traces, over a plain value and a plain tangent: the fused sweep runs the lifted loop on plain
    values, so a third trace anywhere (a derivative of the Hessian-vector product) is False and
    takes the general path, which traces the lifted loop.
    """
    if not isbox(x) or not isinstance(x._node, _VJPNode):
        return False
    vt = tangent_of(x._value)
    return vt is not None and not isbox(vt[0]) and not isbox(vt[1])


def tangent_of(x: Any) -> tuple[Any, Any] | None:
    """``(value, tangent)`` of a forward-mode traced value; None for any other value."""
    if isbox(x) and isinstance(x._node, _JVPNode):
        return x._value, x._node.g
    return None


# -- forward mode with direct rules --------------------------------------------------------------
#
# autograd's forward mode builds each operation's tangent through generic plumbing: a rule per
# argument, summed by ``sum_outgrads`` (a ``reduce`` over a generator), each term passed through
# ``broadcast`` (four metadata queries) and, for ``a - b``, a ``negative`` then an ``add``. On a
# step of a few array operations this costs as much as the arithmetic. `forward_jvp` runs forward
# mode with a node type of its own (`_ForwardNode`) that computes the tangents of the commonest
# operations directly, with the same floating-point operations in the same order, so the tangents
# are identical to autograd's; every other operation, and every case a direct rule does not
# cover (broadcast tangents, complex results), goes to autograd's own rule. The node type is local
# to `forward_jvp`: autograd's forward mode elsewhere is unchanged.


def _real_like(g: Any, ans: Any) -> bool:
    """True when tangent ``g`` already has the shape of the real-valued result ``ans``.

    autograd's ``broadcast`` is then the identity: it repeats a tangent only along a missing or
    size-1 axis, and adds ``0j`` only to a real tangent of a complex result.
    """
    dtype = getattr(ans, "dtype", None)
    if dtype is None:
        return type(ans) is not complex and getattr(g, "shape", ()) == ()
    return dtype.kind != "c" and getattr(g, "shape", ()) == ans.shape


def _jvp_add(argnums: tuple, parents: tuple, ans: Any, args: tuple, kwargs: dict) -> Any:
    g = parents[0].g
    if not _real_like(g, ans):
        return None
    if len(parents) == 1:
        return g
    g1 = parents[1].g
    return g + g1 if _real_like(g1, ans) else None


def _jvp_subtract(argnums: tuple, parents: tuple, ans: Any, args: tuple, kwargs: dict) -> Any:
    g = parents[0].g
    if not _real_like(g, ans):
        return None
    if len(parents) == 2:
        g1 = parents[1].g
        # autograd's g + (-g1): the same number, one operation less
        return g - g1 if _real_like(g1, ans) else None
    return g if argnums[0] == 0 else -g


def _jvp_multiply(argnums: tuple, parents: tuple, ans: Any, args: tuple, kwargs: dict) -> Any:
    if kwargs:
        return None
    x, y = args
    if len(parents) == 2:
        return parents[0].g * y + x * parents[1].g
    return parents[0].g * y if argnums[0] == 0 else x * parents[0].g


def _jvp_divide(argnums: tuple, parents: tuple, ans: Any, args: tuple, kwargs: dict) -> Any:
    if kwargs or argnums != (0,):  # the divisor's tangent: autograd's rule
        return None
    return parents[0].g / args[1]


def _jvp_negative(argnums: tuple, parents: tuple, ans: Any, args: tuple, kwargs: dict) -> Any:
    return None if kwargs else -parents[0].g


def _jvp_linear_in_first(fun: Callable[..., Any]) -> Callable[..., Any]:
    """The rule of an operation linear in its first argument, the others constant (``roll``).

    With no traced value among the tangent and the other arguments (forward mode alone, not
    under a reverse trace), numpy's own function is called, past autograd's wrapper.
    """
    raw = fun.fun  # type: ignore[attr-defined]

    def rule(argnums: tuple, parents: tuple, ans: Any, args: tuple, kwargs: dict) -> Any:
        if argnums != (0,):
            return None
        g = parents[0].g
        if type(g) in box_types or any(type(a) in box_types for a in args[1:]):
            return fun(g, *args[1:], **kwargs)
        return raw(g, *args[1:], **kwargs)

    return rule


def _direct_rules() -> dict[Any, Callable[..., Any]]:
    import autograd.numpy as anp

    return {
        anp.add: _jvp_add,
        anp.subtract: _jvp_subtract,
        anp.multiply: _jvp_multiply,
        anp.true_divide: _jvp_divide,
        anp.divide: _jvp_divide,
        anp.negative: _jvp_negative,
        anp.roll: _jvp_linear_in_first(anp.roll),
        anp.reshape: _jvp_linear_in_first(anp.reshape),
        anp.sum: _jvp_linear_in_first(anp.sum),
        ArrayBox.__getitem__: _jvp_linear_in_first(ArrayBox.__getitem__),
    }


_DIRECT_JVPS = _direct_rules()


class _ForwardNode(_JVPNode):
    """autograd's forward-mode node, with the direct rules of `_DIRECT_JVPS` tried first."""

    __slots__ = ()

    def __init__(
        self, value: Any, fun: Any, args: tuple, kwargs: dict, argnums: tuple, parents: tuple
    ) -> None:
        rule = _DIRECT_JVPS.get(fun)
        if rule is not None:
            g = rule(argnums, parents, value, args, kwargs)
            if g is not None:
                self.g = g
                return
        _JVPNode.__init__(self, value, fun, args, kwargs, argnums, parents)


try:  # operations autograd's forward mode does not trace (shape queries...) are not ours either
    from autograd.tracer import notrace_primitives as _notrace

    _notrace[_ForwardNode] = _notrace[_JVPNode]
except ImportError:  # pragma: no cover - an autograd whose internals moved
    pass


def forward_jvp(fun: Callable[..., Any], x: Any, tangent: Any, *args: Any) -> tuple[Any, Any]:
    """``(fun(x, *args), its derivative in x along tangent)`` by forward mode.

    The tangents equal autograd's ``make_jvp`` (the same operations in the same order, see
    `_ForwardNode`); an output that does not depend on ``x`` gets a zero tangent, with no
    warning. The trace is entered by hand, as `make_segment_vjp` does; ``args`` are passed on
    untraced. With autograd's internals out of reach (`PUBLIC_API_ONLY`) it is ``make_jvp``.
    """
    if PUBLIC_API_ONLY:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Output seems independent of input")
            return _make_jvp(lambda y: fun(y, *args), x)(tangent)
    root = _ForwardNode.new_root(tangent)
    stack = trace_stack
    stack.top += 1
    try:
        trace = stack.top
        out = fun(new_box(x, trace, root), *args)
    finally:
        stack.top -= 1
    if isbox(out) and out._trace == trace:
        return out._value, out._node.g
    return out, vspace(out).zeros()
