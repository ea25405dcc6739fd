"""Pass 4b, vectorise: element loops of the step function become slice arithmetic.

A user who ports a solver from Fortran or Julia writes ``for i in range(1, n - 1): x[i] = ...``
inside the time loop; run as written, every element is a traced scalar. This pass, which runs on
the step function after the rewrite, replaces such a loop (or a perfect nest of them) by one
statement per element update acting on slices, when a dependence test proves every iteration
independent of the others:

* every loop is ``for i in range(lo, hi)`` (or ``range(hi)``), with bounds the nest does not
  change and that do not depend on another loop of the nest (a rectangular nest);
* the innermost body holds only element updates, scalar temporaries (``t = ...``, assigned before
  any read) and ``if`` statements whose branches hold only element updates;
* an array the nest writes is written and read only at one index, every loop index once, in the
  nest's order, plus a loop-invariant offset (``x[i + c, j]``): iteration (i, j) touches only its
  own element (Allen & Kennedy, *Optimizing Compilers for Modern Architectures*, 2001, ch. 2:
  no loop-carried dependence, so the loop runs as one vector statement per update);
* an array the nest does not write may be read at any such index, or at loop-invariant indices;
* everything else in an expression is loop-invariant (names, attributes, constants, arithmetic),
  a temporary, a loop index used as a value (it becomes the array of its values,
  `ckpt_transform.runtime.vector.span`), or an element-wise function of numpy (``np.sin``...);
* a loop index or temporary is not used anywhere else in the step function.

Slices differ from the scalar loop when a slice runs off an end of its array (a negative index
wraps around; a slice past the end is cut), when an array is not a numpy array of exactly the
indexed rank, or when an invariant operand is not a scalar (it would broadcast along the slice).
The vectorised statements therefore run under a guard, `ckpt_transform.runtime.vector.fits`,
that checks these with the actual values, and the scalar loop, kept as written, runs otherwise.
An ``if`` becomes ``_ckpt.where(condition, new, old)``; both branches are then evaluated
everywhere, so a branch may only use ``+``, ``-``, ``*`` (finite wherever its inputs are: no
``nan`` can leak into a gradient through the branch not taken).

The generated code says, above each vectorised statement, which loop it replaces and why that was
legal; with ``explain=True`` a loop left scalar gets a comment saying why.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import gast

from ckpt_transform.transform import nodes
from ckpt_transform.transform.naming import MACHINERY
from ckpt_transform.transform.nodes import VERBATIM_MARK
from ckpt_transform.transform.parse import FunctionSource
from ckpt_transform.transform.rewrite import Rewritten

__all__ = ["ELEMENTWISE", "vectorize"]

_SUPPORT = MACHINERY["support"]

#: Functions of numpy (or autograd.numpy) that act element by element, with their arity.
ELEMENTWISE = frozenset(
    "abs absolute arccos arccosh arcsin arcsinh arctan arctan2 arctanh cbrt ceil cos cosh deg2rad "
    "exp exp2 expm1 fabs floor hypot log log10 log1p log2 logaddexp maximum minimum negative "
    "power rad2deg sign sin sinh sqrt square tan tanh".split()
)
_NUMPY_MODULES = ("numpy", "autograd.numpy")
_SAFE_BRANCH_OPS = (gast.Add, gast.Sub, gast.Mult)


class _NotVectorizable(Exception):
    """Why a loop keeps its scalar form (the message is shown with ``explain=True``)."""


def vectorize(
    rewritten: Rewritten, source: FunctionSource, *, explain: bool = False
) -> tuple[Rewritten, list[str]]:
    """Vectorise the element loops of ``rewritten``'s step function, in place.

    Returns the rewritten module (the same object) and one line per element loop considered,
    saying what became of it (for ``verbose``).
    """
    scope = rewritten.module.body[0]
    (step,) = [
        f for f in scope.body if isinstance(f, gast.FunctionDef) and f.name == rewritten.step
    ]
    texts = rewritten.verbatim
    report: list[str] = []
    _Pass(source, texts, step, explain, report).statements(step.body)
    return rewritten, report


def _expand(stmt: Any, texts: tuple[str, ...]) -> list[Any]:
    """The statements a verbatim marker stands for (parsed from the user's text); else [stmt]."""
    if (
        isinstance(stmt, gast.Expr)
        and isinstance(stmt.value, gast.Constant)
        and isinstance(stmt.value.value, str)
        and stmt.value.value.startswith(VERBATIM_MARK)
    ):
        key = int(stmt.value.value[len(VERBATIM_MARK) :])
        return list(gast.parse(texts[key]).body)
    return [stmt]


def _expanded(node: Any, texts: tuple[str, ...]) -> Any:
    """A deep copy of ``node`` with every verbatim marker inside it parsed back into statements."""
    node = copy.deepcopy(node)
    for child in gast.walk(node):
        for name in ("body", "orelse", "finalbody"):
            value = getattr(child, name, None)
            if isinstance(value, list):
                setattr(child, name, [s for stmt in value for s in _expand(stmt, texts)])
    return node


class _Pass:
    def __init__(
        self,
        source: FunctionSource,
        texts: tuple[str, ...],
        step: Any,
        explain: bool,
        report: list[str],
    ) -> None:
        self.source = source
        self.texts = texts
        self.step = step
        self.explain = explain
        self.report = report
        self.whole = _expanded(step, texts)

    def statements(self, stmts: list[Any]) -> None:
        k = 0
        while k < len(stmts):
            stmt = stmts[k]
            if isinstance(stmt, gast.For):
                new = self.loop(stmt)
                if new is not None:
                    stmts[k : k + 1] = new
                    k += len(new)
                    continue
            for name in ("body", "orelse", "finalbody"):
                value = getattr(stmt, name, None)
                if isinstance(value, list) and not isinstance(
                    stmt, (gast.FunctionDef, gast.AsyncFunctionDef, gast.ClassDef)
                ):
                    self.statements(value)
            k += 1

    def loop(self, node: Any) -> list[Any] | None:
        """The replacement of an element loop, or None (its inner loops are then tried)."""
        where = self.source.where(node)
        header = f"for {_text(node.target)} in {_text(node.iter)}"
        try:
            nest = _Nest.build(_expanded(node, self.texts), self.source)
            nest.check_outside(self.whole, node)
            vector = nest.vectorised()
            guard = nest.guard()
        except _NotVectorizable as why:
            self.report.append(f"{where}: {header} kept as written: {why}")
            if self.explain:
                note = nodes.comment(f"not vectorised, {where}: {header}: {why}")
                self.statements(node.body)
                return [note, node]
            return None
        self.report.append(f"{where}: {header} vectorised ({nest.legal()})")
        notes = [
            nodes.comment(f"vectorised from {where}: {nest.headers()}"),
            nodes.comment(f"legal: {nest.legal()}"),
            nodes.comment(f"the loop as written runs when {nest.fallback} (see _ckpt.fits)"),
        ]
        return [*notes, gast.If(test=guard, body=vector, orelse=[node])]


@dataclass
class _Dim:
    index: str
    lo: Any
    hi: Any
    header: str  # ``for i in range(n)``, as written


@dataclass
class _Access:
    """``base[key]`` with, per key position, a loop dimension and offset or a fixed index."""

    base: Any
    entries: list[tuple[int, Any] | Any]  # (dim, offset) for a loop index, else the fixed index
    text: str


@dataclass
class _Nest:
    source: FunctionSource
    outer: Any
    dims: list[_Dim]
    body: list[Any]
    temps: list[str] = field(default_factory=list)
    written: dict[str, str] = field(default_factory=dict)  # array text -> its key text
    accesses: list[_Access] = field(default_factory=list)
    scalars: dict[str, Any] = field(default_factory=dict)  # invariant operands, by text
    stored: set[str] = field(default_factory=set)  # names and attribute paths assigned
    fallback: str = (
        "a slice would leave its array, an operand is not as assumed or the range is empty"
    )

    @staticmethod
    def build(node: Any, source: FunctionSource) -> _Nest:
        dims: list[_Dim] = []
        current = node
        while True:
            if current.orelse:
                raise _NotVectorizable("the loop has an else clause")
            if not isinstance(current.target, gast.Name):
                raise _NotVectorizable("the loop variable is not a single name")
            lo, hi = _range_bounds(current.iter)
            header = f"for {current.target.id} in {_text(current.iter)}"
            dims.append(_Dim(current.target.id, lo, hi, header))
            inner = [s for s in current.body if not nodes.is_comment(s)]
            if len(inner) == 1 and isinstance(inner[0], gast.For):
                current = inner[0]
                continue
            body = inner
            break
        nest = _Nest(source, node, dims, body)
        nest.analyse()
        return nest

    # -- analysis ---------------------------------------------------------------------------

    def analyse(self) -> None:
        indices = {d.index for d in self.dims}
        if len(indices) != len(self.dims):
            raise _NotVectorizable("two loops of the nest share a variable")
        for stmt in self.body:
            for child in gast.walk(stmt):
                if isinstance(child, gast.Name) and isinstance(child.ctx, gast.Store):
                    self.stored.add(child.id)
                elif isinstance(child, gast.Attribute) and isinstance(child.ctx, gast.Store):
                    self.stored.add(_text(child))
        # first pass: what is written, and where
        for stmt in self.body:
            for write in _writes(stmt):
                target, key = write
                text = _text(target)
                entries = self.key_entries(key)
                if [e[0] for e in entries if isinstance(e, tuple)] != list(range(len(self.dims))):
                    raise _NotVectorizable(
                        f"{text} is written at [{_text(key)}], which does not hold every loop "
                        f"index once, in the nest's order"
                    )
                key_text = _key_text(key)
                if self.written.setdefault(text, key_text) != key_text:
                    raise _NotVectorizable(
                        f"{text} is written at two different indices ([{self.written[text]}] and "
                        f"[{key_text}])"
                    )
        if not self.written:
            raise _NotVectorizable("the loop updates no array element")
        for dim in self.dims:  # element updates keep shapes: len(u) and u.shape stay invariant
            for bound in (dim.lo, dim.hi):
                if _names(bound) & indices:
                    raise _NotVectorizable("a range bound depends on another loop of the nest")
                self.invariant(bound, "a range bound")
        # second pass: every statement, in order
        defined: set[str] = set()
        for stmt in self.body:
            self.statement(stmt, defined)
        for text in self.written:
            if text.split(".")[0] in set(self.temps) | indices:
                raise _NotVectorizable(f"{text} is both an array and a loop variable")

    def statement(self, stmt: Any, defined: set[str]) -> None:
        if isinstance(stmt, gast.Assign) and _is_setitem(stmt):
            _, key, value = stmt.value.args
            self.expression(value, defined)
            self.access(stmt.value.args[0], key)
            return
        if (
            isinstance(stmt, gast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], gast.Name)
        ):
            name = stmt.targets[0].id
            if name in {d.index for d in self.dims}:
                raise _NotVectorizable(f"the loop variable {name} is assigned in the loop")
            self.expression(stmt.value, defined)
            defined.add(name)
            if name not in self.temps:
                self.temps.append(name)
            return
        if isinstance(stmt, gast.If):
            self.expression(stmt.test, defined, branch=True)
            if not isinstance(stmt.test, gast.Compare):
                raise _NotVectorizable(
                    f"the condition `{_text(stmt.test)}` is not a single comparison"
                )
            for branch in (stmt.body, stmt.orelse):
                for s in branch:
                    if nodes.is_comment(s):
                        continue
                    if not (isinstance(s, gast.Assign) and _is_setitem(s)):
                        raise _NotVectorizable(
                            f"`if {_text(stmt.test)}:` holds `{_first_line(s)}`; only element "
                            "updates are vectorised inside an if"
                        )
                    self.expression(s.value.args[2], defined, branch=True)
                    self.access(s.value.args[0], s.value.args[1])
            return
        raise _NotVectorizable(f"the loop body holds `{_first_line(stmt)}`")

    def expression(self, node: Any, defined: set[str], *, branch: bool = False) -> None:
        """Check a value expression; record its element accesses and invariant operands."""
        indices = {d.index for d in self.dims}
        used = _names(node)
        if not (used & indices) and not (used & set(self.temps)):
            if isinstance(node, gast.Constant):
                if isinstance(node.value, (bool, int, float, complex)):
                    return
                raise _NotVectorizable(f"the constant {node.value!r} is not a number")
            self.invariant(node, "an operand")
            self.scalars.setdefault(_text(node), node)
            return
        if isinstance(node, gast.Name):
            if node.id in indices:  # becomes _ckpt.span(lo, hi, dim, ndims): the index values
                return
            if node.id not in defined:
                raise _NotVectorizable(f"the temporary {node.id} is read before it is assigned")
            return
        if isinstance(node, gast.Subscript):
            self.access(node.value, node.slice)
            return
        if isinstance(node, gast.BinOp):
            if branch and not isinstance(node.op, _SAFE_BRANCH_OPS):
                raise _NotVectorizable(
                    f"`{_text(node)}` inside an if would be evaluated where its condition is "
                    "false too; only +, - and * are vectorised there"
                )
            self.expression(node.left, defined, branch=branch)
            self.expression(node.right, defined, branch=branch)
            return
        if isinstance(node, gast.UnaryOp) and isinstance(node.op, (gast.USub, gast.UAdd)):
            self.expression(node.operand, defined, branch=branch)
            return
        if isinstance(node, gast.Compare) and len(node.ops) == 1:
            self.expression(node.left, defined)
            self.expression(node.comparators[0], defined)
            return
        if isinstance(node, gast.Call) and not branch and self.elementwise(node.func):
            if node.keywords:
                raise _NotVectorizable(f"`{_text(node)}` has keyword arguments")
            for arg in node.args:
                self.expression(arg, defined)
            return
        if isinstance(node, gast.Call):
            raise _NotVectorizable(
                f"`{_text(node.func)}` is called element by element; only numpy's element-wise "
                "functions are known to act on slices the same way"
                + (" (and none inside an if)" if branch else "")
            )
        raise _NotVectorizable(f"`{_text(node)}` is not an element-wise expression")

    def elementwise(self, func: Any) -> bool:
        if isinstance(func, gast.Name) and func.id == "abs":
            return "abs" not in self.source.function.__globals__
        if not (
            isinstance(func, gast.Attribute)
            and isinstance(func.value, gast.Name)
            and func.attr in ELEMENTWISE
        ):
            return False
        module = self.source.function.__globals__.get(func.value.id)
        return getattr(module, "__name__", None) in _NUMPY_MODULES

    def access(self, base: Any, key: Any) -> None:
        text = _text(base)
        self.invariant(base, "an array", allow=set(self.written))
        entries = self.key_entries(key)
        key_text = _key_text(key)
        if isinstance(base, gast.Attribute) and text not in self.written:
            # `h.T` and a written `heat.T` may be the same field of one object under two names
            for written in self.written:
                if written.rsplit(".", 1)[-1] == base.attr and "." in written:
                    raise _NotVectorizable(
                        f"{text} is read and {written} written: they may be the same field of "
                        "one object"
                    )
        if text in self.written and self.written[text] != key_text:
            raise _NotVectorizable(
                f"{text} is written at [{self.written[text]}] and read at [{key_text}]: "
                "iterations would depend on each other"
            )
        if not any(isinstance(e, tuple) for e in entries):
            raise _NotVectorizable(f"{text}[{key_text}] does not depend on the loop")
        dims = [e[0] for e in entries if isinstance(e, tuple)]
        if dims != list(range(len(self.dims))):
            raise _NotVectorizable(
                f"{text}[{key_text}] does not hold every loop index once, in the nest's order"
            )
        self.accesses.append(_Access(base, entries, key_text))

    def key_entries(self, key: Any) -> list[tuple[int, Any] | Any]:
        elts = key.elts if isinstance(key, gast.Tuple) else [key]
        out: list[tuple[int, Any] | Any] = []
        position = {d.index: k for k, d in enumerate(self.dims)}
        for elt in elts:
            if isinstance(elt, gast.Slice):
                raise _NotVectorizable(f"the index [{_text(key)}] holds a slice")
            used = _names(elt) & set(position)
            if not used:
                if _names(elt) & set(self.temps):
                    raise _NotVectorizable(f"the index {_text(elt)} is computed in the loop")
                self.invariant(elt, "an index")
                out.append(elt)
                continue
            out.append(_affine(elt, position, lambda e: self.invariant(e, "an offset")))
        return out

    def invariant(self, node: Any, what: str, allow: set[str] = frozenset()) -> None:
        """``node`` is pure and the nest does not change it."""
        for child in gast.walk(node):
            if isinstance(child, gast.Call):
                if _is_len(child, self.source.function.__globals__):
                    continue
                raise _NotVectorizable(f"{what} `{_text(node)}` calls a function")
            if not isinstance(child, _PURE):
                raise _NotVectorizable(f"{what} `{_text(node)}` is not a plain expression")
        text = _text(node)
        if text in allow:
            return
        for path in _paths(_without_shapes(node, set(self.written))):
            for stored in self.stored:
                if path == stored or path.startswith(stored + "."):
                    raise _NotVectorizable(f"{what} `{text}` changes inside the loop")

    # -- checks outside the nest -------------------------------------------------------------

    def check_outside(self, whole: Any, node: Any) -> None:
        """Loop variables and temporaries must not be used anywhere else in the step function."""
        private = {d.index for d in self.dims} | set(self.temps)
        here = (node.lineno, node.col_offset)
        for name in sorted(private):
            for use in _uses_outside(whole, name, here):
                if getattr(use, "lineno", None) is None:  # in the step's own machinery
                    raise _NotVectorizable(f"{name} is carried from one time step to the next")
                raise _NotVectorizable(
                    f"{name} is also used at {self.source.where(use)}, outside the loop"
                )

    # -- generation --------------------------------------------------------------------------

    def slices(self, entries: list[tuple[int, Any] | Any]) -> Any:
        elts = []
        for entry in entries:
            if isinstance(entry, tuple):
                dim, offset = entry
                d = self.dims[dim]
                elts.append(
                    gast.Slice(lower=_shift(d.lo, offset), upper=_shift(d.hi, offset), step=None)
                )
            else:
                elts.append(copy.deepcopy(entry))
        return elts[0] if len(elts) == 1 else nodes.tuple_of(elts)

    def value(self, node: Any) -> Any:
        """``node`` with every element access replaced by its slice."""
        indices = {d.index for d in self.dims}

        position = {d.index: k for k, d in enumerate(self.dims)}

        class Slicer(gast.NodeTransformer):
            def visit_Name(inner, name: Any) -> Any:
                if name.id not in position:
                    return name
                dim = self.dims[position[name.id]]
                return gast.Call(
                    func=nodes.attribute(_SUPPORT, "span"),
                    args=[
                        copy.deepcopy(dim.lo),
                        copy.deepcopy(dim.hi),
                        nodes.constant(position[name.id]),
                        nodes.constant(len(self.dims)),
                    ],
                    keywords=[],
                )

            def visit_Subscript(inner, sub: Any) -> Any:
                if not (_names(sub.slice) & indices):
                    return sub
                return gast.Subscript(
                    value=copy.deepcopy(sub.value),
                    slice=self.slices(self.key_entries(sub.slice)),
                    ctx=gast.Load(),
                )

        return Slicer().visit(copy.deepcopy(node))

    def setitem(self, array: Any, key: Any, value: Any) -> Any:
        key_value = gast.Subscript(
            value=nodes.attribute(_SUPPORT, "index"),
            slice=self.slices(self.key_entries(key)),
            ctx=gast.Load(),
        )
        target = copy.deepcopy(array)
        _set_ctx(target, gast.Store())
        call = gast.Call(
            func=nodes.attribute(_SUPPORT, "setitem"),
            args=[copy.deepcopy(array), key_value, value],
            keywords=[],
        )
        return gast.Assign(targets=[target], value=call, type_comment=None)

    def vectorised(self) -> list[Any]:
        out: list[Any] = []
        for stmt in self.body:
            if isinstance(stmt, gast.Assign) and _is_setitem(stmt):
                array, key, value = stmt.value.args
                out.append(self.setitem(array, key, self.value(value)))
            elif isinstance(stmt, gast.Assign):
                out.append(
                    gast.Assign(
                        targets=copy.deepcopy(stmt.targets),
                        value=self.value(stmt.value),
                        type_comment=None,
                    )
                )
            else:  # an if holding element updates only
                condition = self.value(stmt.test)
                new: dict[str, tuple[Any, Any, Any | None, Any | None]] = {}
                for k, branch in enumerate((stmt.body, stmt.orelse)):
                    for s in branch:
                        if nodes.is_comment(s):
                            continue
                        array, key, value = s.value.args
                        text = _text(array)
                        if text in new and new[text][2 + k] is not None:
                            raise _NotVectorizable(
                                f"{text} is updated twice in one branch of `if {_text(stmt.test)}`"
                            )
                        entry = list(new.get(text, (array, key, None, None)))
                        entry[2 + k] = self.value(value)
                        new[text] = tuple(entry)  # type: ignore[assignment]
                for array, key, then, other in new.values():
                    old = gast.Subscript(
                        value=copy.deepcopy(array),
                        slice=self.slices(self.key_entries(key)),
                        ctx=gast.Load(),
                    )
                    chosen = gast.Call(
                        func=nodes.attribute(_SUPPORT, "where"),
                        args=[
                            copy.deepcopy(condition),
                            then if then is not None else old,
                            other if other is not None else copy.deepcopy(old),
                        ],
                        keywords=[],
                    )
                    out.append(self.setitem(array, key, chosen))
        return out

    def guard(self) -> Any:
        spans = nodes.tuple_of(
            [nodes.tuple_of([copy.deepcopy(d.lo), copy.deepcopy(d.hi)]) for d in self.dims]
        )
        seen: dict[str, tuple[Any, list[list[Any] | None]]] = {}
        for access in self.accesses:
            text = _text(access.base)
            base, per_axis = seen.setdefault(text, (access.base, [None] * len(access.entries)))
            if len(per_axis) != len(access.entries):
                raise _NotVectorizable(f"{text} is indexed with keys of different lengths")
            for axis, entry in enumerate(access.entries):
                if isinstance(entry, tuple):
                    dim, offset = entry
                    if per_axis[axis] is None:
                        per_axis[axis] = [nodes.constant(dim)]
                    elif per_axis[axis][0].value != dim:  # type: ignore[index]
                        raise _NotVectorizable(f"{text} is indexed by two loops on one axis")
                    if not any(_text(o) == _text(offset) for o in per_axis[axis][1:]):  # type: ignore[index]
                        per_axis[axis].append(copy.deepcopy(offset))  # type: ignore[union-attr]
        args: list[Any] = [spans]
        for base, per_axis in seen.values():
            args.append(copy.deepcopy(base))
            args.append(
                nodes.tuple_of(
                    [nodes.constant(None) if e is None else nodes.tuple_of(e) for e in per_axis]
                )
            )
        call = gast.Call(func=nodes.attribute(_SUPPORT, "fits"), args=args, keywords=[])
        if self.scalars:
            call.keywords.append(
                nodes.keyword(
                    "scalars",
                    nodes.tuple_of([copy.deepcopy(s) for s in self.scalars.values()]),
                )
            )
        return call

    # -- words -------------------------------------------------------------------------------

    def headers(self) -> str:
        return "; ".join(d.header for d in self.dims)

    def legal(self) -> str:
        parts = [f"{text} written and read only at [{key}]" for text, key in self.written.items()]
        others = sorted({_text(a.base) for a in self.accesses} - set(self.written))
        if others:
            parts.append(f"{', '.join(others)} not written")
        if self.temps:
            parts.append(f"temporaries {', '.join(self.temps)} assigned before use")
        return "; ".join(parts) + ": no iteration reads what another writes"


_PURE = (
    gast.Name,
    gast.Attribute,
    gast.Constant,
    gast.BinOp,
    gast.UnaryOp,
    gast.Subscript,
    gast.Tuple,
    gast.Call,
    gast.Load,
    gast.operator,
    gast.unaryop,
    gast.expr_context,
)


def _range_bounds(node: Any) -> tuple[Any, Any]:
    if not (
        isinstance(node, gast.Call)
        and isinstance(node.func, gast.Name)
        and node.func.id == "range"
        and not node.keywords
        and 1 <= len(node.args) <= 2
    ):
        raise _NotVectorizable(
            f"it runs over `{_text(node)}`, not range(stop) or range(start, stop)"
        )
    if len(node.args) == 1:
        return nodes.constant(0), node.args[0]
    return node.args[0], node.args[1]


def _affine(elt: Any, position: dict[str, int], check: Any) -> tuple[int, Any]:
    """``i``, ``i + c``, ``c + i``, ``i - c`` (c invariant) -> (dim of i, offset expression c)."""
    if isinstance(elt, gast.Name) and elt.id in position:
        return position[elt.id], nodes.constant(0)
    if isinstance(elt, gast.BinOp) and isinstance(elt.op, (gast.Add, gast.Sub)):
        left, right = elt.left, elt.right
        invariant_right = not (_names(right) & set(position))
        if isinstance(left, gast.Name) and left.id in position and invariant_right:
            check(right)
            if isinstance(elt.op, gast.Add):
                return position[left.id], right
            if isinstance(right, gast.Constant) and isinstance(right.value, int):
                return position[left.id], nodes.constant(-right.value)
            return position[left.id], gast.UnaryOp(op=gast.USub(), operand=right)
        if (
            isinstance(elt.op, gast.Add)
            and isinstance(right, gast.Name)
            and right.id in position
            and not (_names(left) & set(position))
        ):
            check(left)
            return position[right.id], left
    raise _NotVectorizable(
        f"the index {_text(elt)} is not a loop variable plus a loop-invariant offset"
    )


def _shift(bound: Any, offset: Any) -> Any:
    """``bound + offset``, folding integer constants (``n - 1`` and -1 give ``n - 2``)."""
    bound = copy.deepcopy(bound)
    if not (isinstance(offset, gast.Constant) and isinstance(offset.value, int)):
        return gast.BinOp(left=bound, op=gast.Add(), right=copy.deepcopy(offset))
    c = offset.value
    if c == 0:
        return bound
    if isinstance(bound, gast.Constant) and isinstance(bound.value, int):
        return nodes.constant(bound.value + c)
    if (
        isinstance(bound, gast.BinOp)
        and isinstance(bound.op, (gast.Add, gast.Sub))
        and isinstance(bound.right, gast.Constant)
        and isinstance(bound.right.value, int)
    ):
        k = bound.right.value if isinstance(bound.op, gast.Add) else -bound.right.value
        return _shift(bound.left, nodes.constant(k + c))
    op = gast.Add() if c > 0 else gast.Sub()
    return gast.BinOp(left=bound, op=op, right=nodes.constant(abs(c)))


def _is_setitem(stmt: Any) -> bool:
    value = stmt.value
    return (
        len(stmt.targets) == 1
        and isinstance(value, gast.Call)
        and isinstance(value.func, gast.Attribute)
        and isinstance(value.func.value, gast.Name)
        and value.func.value.id == _SUPPORT
        and value.func.attr == "setitem"
        and len(value.args) == 3
        and _text(value.args[0]) == _text(stmt.targets[0])
        and not _is_nested_setitem(value.args[2])
    )


def _is_nested_setitem(node: Any) -> bool:
    return any(
        isinstance(c, gast.Attribute) and isinstance(c.value, gast.Name) and c.value.id == _SUPPORT
        for c in gast.walk(node)
    )


def _writes(stmt: Any) -> Iterator[tuple[Any, Any]]:
    for child in gast.walk(stmt):
        if isinstance(child, gast.Assign) and _is_setitem(child):
            yield child.value.args[0], child.value.args[1]


def _names(node: Any) -> set[str]:
    return {c.id for c in gast.walk(node) if isinstance(c, gast.Name)}


def _paths(node: Any) -> Iterator[str]:
    """Every longest name or attribute path ``node`` reads (``heat.Tlast``, not ``heat``); an
    attribute of something else (``f(x).y``) gives the paths inside it."""
    if isinstance(node, (gast.Name, gast.Attribute)):
        text = _text(node)
        if all(part.isidentifier() for part in text.split(".")):
            yield text
            return
    for child in gast.iter_child_nodes(node):
        yield from _paths(child)


def _uses_outside(whole: Any, name: str, here: tuple[int, int]) -> Iterator[Any]:
    """Nodes of ``whole`` naming ``name`` outside the loop at ``here`` and outside any other
    loop over ``name`` (whose own binding they see)."""

    def visit(node: Any) -> Iterator[Any]:
        if isinstance(node, gast.For) and _position(node) == here:
            return
        if isinstance(node, gast.For) and isinstance(node.target, gast.Name):
            if node.target.id == name:
                yield from visit(node.iter)
                return
        if isinstance(node, gast.Name) and node.id == name:
            yield node
        for child in gast.iter_child_nodes(node):
            yield from visit(child)

    for stmt in whole.body:
        yield from visit(stmt)


def _position(node: Any) -> tuple[int, int] | None:
    return (getattr(node, "lineno", None), getattr(node, "col_offset", None))  # type: ignore[return-value]


def _is_len(call: Any, globals_: dict[str, Any]) -> bool:
    return (
        isinstance(call.func, gast.Name)
        and call.func.id == "len"
        and "len" not in globals_
        and len(call.args) == 1
    )


def _without_shapes(node: Any, written: set[str]) -> Any:
    """``node`` with ``len(a)`` and ``a.shape`` of the written arrays ``a`` replaced by 0: an
    element update keeps an array's shape, so these do not change inside the loop."""

    class Strip(gast.NodeTransformer):
        def visit_Call(self, call: Any) -> Any:
            if _is_len(call, {}) and _text(call.args[0]) in written:
                return nodes.constant(0)
            return self.generic_visit(call)

        def visit_Attribute(self, attr: Any) -> Any:
            if attr.attr == "shape" and _text(attr.value) in written:
                return nodes.constant(0)
            return self.generic_visit(attr)

    return Strip().visit(copy.deepcopy(node))


def _set_ctx(node: Any, ctx: Any) -> None:
    node.ctx = ctx


def _text(node: Any) -> str:
    from ckpt_transform.transform.codegen import expression_text

    return expression_text(node)


def _key_text(key: Any) -> str:
    """``i, j + 1`` for the key of ``a[i, j + 1]``."""
    if isinstance(key, gast.Tuple):
        return ", ".join(_text(e) for e in key.elts)
    return _text(key)


def _first_line(stmt: Any) -> str:
    return _text(stmt).split("\n")[0]
