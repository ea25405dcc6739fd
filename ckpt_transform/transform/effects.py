"""Pass 3a, effects: what the helpers and methods a loop body calls write, read from their source.

The rewrite turns the loop body into a step function that returns the carried state. A write the
body makes is visible in its source; a write a helper makes (``grow(s)`` with
``def grow(s): s.u = s.u * 1.5``) is not, and if the field it writes is not carried the write is
lost. This module reads a helper's source with gast, as the body is read, and summarises what it
writes *through its parameters*:

* ``attribute``: ``p.u = v``, ``setattr(p, "u", v)``, ``p.u += v`` (``path`` ends with the field);
* ``element``: ``p[k] = v``, ``p.u[k] = v``, ``np.copyto(p, v)``, ``f(..., out=p)``, a write
  through a view ``row = p[0]; row[1] = v``;
* ``mutation``: a method that changes a container in place, ``p.append(v)``, ``p.update(d)``,
  ``p.fill(0)``;
* ``augmented``: ``p += v``, which changes an array ``p`` in place;
* ``delete``: ``del p.u``, ``del p[k]``.

Calls inside a helper are followed to any depth (a call with a parameter maps the callee's effects
back onto the caller's parameters); each function's summary is cached per code object. Only
functions written in Python outside the standard library, numpy, autograd and this package are
read; their writes are what matters here, library functions do not write into their arguments
unless told to (``out=``, ``np.copyto``), which is recognised at the call.

What cannot be modelled is recorded as an `Unmodelled` item (a helper writing a global object, a
``setattr`` with a computed name, a write through ``*args``); the analysis refuses the loop with a
`TransformError` naming the helper, its file and line, and the write. Whatever this reading
misses (a method of an object whose class is not known when decorating) is caught at run time by
`ckpt_transform.runtime.guard`.
"""

from __future__ import annotations

import inspect
import os
import sysconfig
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import gast

__all__ = [
    "MUTATING_METHODS",
    "BodyProblem",
    "BodyWrite",
    "Context",
    "Effect",
    "Summary",
    "Unmodelled",
    "body_effects",
    "call_effects",
    "describe_helper",
    "summarise",
]

#: Methods that change a list, dict, set or numpy array in place.
MUTATING_METHODS = frozenset(
    {
        "append",
        "extend",
        "insert",
        "pop",
        "remove",
        "clear",
        "sort",
        "reverse",
        "update",
        "setdefault",
        "popitem",
        "add",
        "discard",
        "difference_update",
        "intersection_update",
        "symmetric_difference_update",
        "fill",
        "put",
        "itemset",
        "resize",
        "partition",
    }
)

#: numpy functions that write into their first argument.
_IN_PLACE_FUNCTIONS = frozenset(
    {"copyto", "put", "place", "putmask", "fill_diagonal", "put_along_axis"}
)

_ELEMENT = "[]"  # a path step through an element or a view
_SCOPES = (gast.FunctionDef, gast.AsyncFunctionDef, gast.ClassDef)


@dataclass(frozen=True)
class Effect:
    """A write a function makes through one of its parameters.

    Attributes
    ----------
    param
        The parameter written through (``self`` for a method).
    path
        Attributes (and ``"[]"`` for elements) from the parameter to what is written:
        ``("u",)`` for ``p.u = v``, ``()`` for ``p.append(v)``.
    kind
        ``"attribute"``, ``"element"``, ``"mutation"``, ``"augmented"`` or ``"delete"``.
    text, where, helper
        The writing statement as written, its ``file:line``, and the function that holds it.
    """

    param: str
    path: tuple[str, ...]
    kind: str
    text: str
    where: str
    helper: str

    def target(self, root: str) -> str:
        """The written place spelled from ``root``: ``s.u``, ``traj``, ``a[...]``."""
        out = root
        for part in self.path:
            out += "[...]" if part == _ELEMENT else f".{part}"
        return out

    @property
    def field(self) -> str | None:
        """The attribute written, when this is a plain field write ``p.u = v``."""
        if self.kind == "attribute" and len(self.path) == 1 and self.path[0] != _ELEMENT:
            return self.path[0]
        return None


@dataclass(frozen=True)
class Unmodelled:
    """A write that cannot be carried as state: ``reason`` says what it changes."""

    reason: str
    text: str
    where: str
    helper: str


@dataclass
class Summary:
    """Everything a function writes through its parameters, and what cannot be modelled."""

    effects: list[Effect] = field(default_factory=list)
    problems: list[Unmodelled] = field(default_factory=list)


# -- reading a function's source ------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """A helper's parsed def and the way back to its file."""

    function: Any
    node: Any
    lines: tuple[str, ...]
    first: int  # the file's line number of lines[0]
    shift: int  # line k of the parsed text is line k + shift of the file

    def where(self, node: Any) -> str:
        filename = os.path.basename(self.function.__code__.co_filename)
        return f"{filename}:{node.lineno + self.shift}"

    def text(self, node: Any) -> str:
        """The first line of ``node`` as written, without indentation."""
        index = node.lineno + self.shift - self.first
        return self.lines[index].strip() if 0 <= index < len(self.lines) else ""


def _read(function: types.FunctionType) -> _Source | str:
    """The parsed source of ``function``, or why it cannot be read."""
    try:
        lines, first = inspect.getsourcelines(function)
    except (OSError, TypeError) as err:
        return f"its source cannot be read ({err})"
    indented = bool(lines) and lines[0][:1] in (" ", "\t")
    try:
        tree = gast.parse(("if 1:\n" if indented else "") + "".join(lines))
    except SyntaxError as err:
        return f"its source does not parse ({err.msg})"
    body = tree.body[0].body if indented else tree.body
    node = body[0] if body else None
    if not isinstance(node, (gast.FunctionDef, gast.AsyncFunctionDef)):
        return "its source is not a def (a lambda or a callable object)"
    return _Source(function, node, tuple(lines), first, first - 1 - (1 if indented else 0))


_LIBRARY_ROOTS = tuple(
    os.path.realpath(p)
    for p in {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
)
_LIBRARY_MODULES = ("numpy", "autograd", "scipy", "jax", "ckpt_transform", "builtins")


def is_user_function(value: Any) -> bool:
    """A function written in Python in the user's own code (not a library's)."""
    if not isinstance(value, types.FunctionType):
        return False
    module = (getattr(value, "__module__", None) or "").split(".")[0]
    if module in _LIBRARY_MODULES:
        return False
    filename = os.path.realpath(value.__code__.co_filename)
    return not filename.startswith(_LIBRARY_ROOTS)


# -- what a function can see ----------------------------------------------------------------------


@dataclass
class Context:
    """How names resolve where a call is made: the values a function can see.

    ``classes`` maps a variable to its class when it is known (``self`` in a method, a variable
    assigned ``S(...)``); ``defs`` holds functions defined in the analysed source itself.
    """

    globals: dict[str, Any]
    closure: dict[str, Any]
    local: frozenset[str] = frozenset()
    classes: dict[str, type] = field(default_factory=dict)
    defs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, function: Any, local: frozenset[str] = frozenset()) -> Context:
        closure: dict[str, Any] = {}
        for name, cell in zip(function.__code__.co_freevars, function.__closure__ or ()):
            try:
                closure[name] = cell.cell_contents
            except ValueError:  # an empty cell: defined later
                pass
        return cls(function.__globals__, closure, local)

    def value(self, name: str) -> tuple[bool, Any]:
        """``(True, value)`` for a closure or global name, ``(False, None)`` otherwise."""
        if name in self.local:
            return False, None
        if name in self.closure:
            return True, self.closure[name]
        if name in self.globals:
            return True, self.globals[name]
        return False, None

    def outside(self, name: str) -> str | None:
        """``"the global G"`` when ``name`` is a global or closure object a write would change."""
        if name in self.local:
            return None
        known, value = self.value(name)
        if not known or isinstance(value, (types.ModuleType, type)) or callable(value):
            return None
        where = "closure variable" if name in self.closure else "global"
        return f"the {where} {name}"


# -- the summary of one function ------------------------------------------------------------------

_CACHE: dict[tuple, Summary] = {}
_IN_PROGRESS: set[tuple] = set()


def summarise(function: Any, self_class: type | None = None) -> Summary | str:
    """What ``function`` writes through its parameters, or why its source cannot be read.

    ``self_class`` is the class of the first parameter, for a method. Cached per code object
    (and closure); a recursive call sees the part of the summary found so far.
    """
    key = (function.__code__, self_class, _closure_key(function))
    if key in _CACHE:
        return _CACHE[key]
    source = _read(function)
    if isinstance(source, str):
        return source
    summary = Summary()
    _CACHE[key] = summary  # a recursive call sees what is found so far
    _IN_PROGRESS.add(key)
    try:
        params = _param_names(source.node.args)
        context = Context.of(function, frozenset(params) | _locals(source.node.body))
        if self_class is not None and params:
            context.classes[params[0]] = self_class
        _Walker(source, context, params, summary).run(source.node.body)
    finally:
        _IN_PROGRESS.discard(key)
    return summary


def _closure_key(function: Any) -> tuple:
    return tuple(id(c) for c in function.__closure__ or ())


def _param_names(args: Any) -> list[str]:
    names = [a.id for a in [*args.posonlyargs, *args.args]]
    if args.vararg is not None:
        names.append(args.vararg.id)
    names += [a.id for a in args.kwonlyargs]
    if args.kwarg is not None:
        names.append(args.kwarg.id)
    return names


def _locals(body: list[Any]) -> frozenset[str]:
    names: set[str] = set()
    for stmt in _statements(body):
        if isinstance(stmt, _SCOPES):
            names.add(stmt.name)
        for target in _targets(stmt):
            names.update(
                n.id
                for n in gast.walk(target)
                if isinstance(n, gast.Name) and isinstance(n.ctx, gast.Store)
            )
    return frozenset(names)


def _statements(stmts: list[Any]) -> Iterator[Any]:
    """Every statement at any depth, in source order, not entering nested defs or classes."""
    for stmt in stmts:
        yield stmt
        if isinstance(stmt, _SCOPES):
            continue
        for name in ("body", "orelse", "finalbody"):
            yield from _statements(getattr(stmt, name, None) or [])
        for handler in getattr(stmt, "handlers", None) or []:
            yield from _statements(handler.body)
        for case in getattr(stmt, "cases", None) or []:
            yield from _statements(case.body)


def _targets(stmt: Any) -> list[Any]:
    if isinstance(stmt, gast.Assign):
        return list(stmt.targets)
    if isinstance(stmt, (gast.AugAssign, gast.AnnAssign)):
        return [stmt.target]
    if isinstance(stmt, (gast.For, gast.AsyncFor)):
        return [stmt.target]
    if isinstance(stmt, (gast.With, gast.AsyncWith)):
        return [i.optional_vars for i in stmt.items if i.optional_vars is not None]
    return []


def _flat(targets: list[Any]) -> list[Any]:
    out: list[Any] = []
    for t in targets:
        if isinstance(t, (gast.Tuple, gast.List)):
            out += _flat(list(t.elts))
        elif isinstance(t, gast.Starred):
            out += _flat([t.value])
        else:
            out.append(t)
    return out


def _calls(node: Any) -> Iterator[Any]:
    """The calls in one statement's own expressions (not in nested statements or defs)."""
    todo = []
    for name in node._fields:
        if name in ("body", "orelse", "finalbody", "handlers", "cases"):
            continue
        value = getattr(node, name)
        todo += value if isinstance(value, list) else [value]
    while todo:
        n = todo.pop(0)
        if not isinstance(n, gast.AST) or isinstance(n, (gast.Lambda, *_SCOPES)):
            continue
        if isinstance(n, gast.Call):
            yield n
        todo.extend(gast.iter_child_nodes(n))


class _Walker:
    """One pass over a function body, recording its writes through ``params``.

    ``aliases`` maps a local name to the parameter path it refers to (``row = p.u[0]``); it is
    updated in source order, so ``x = x.copy()`` ends the alias of ``x``.
    """

    def __init__(
        self, source: _Source, context: Context, params: list[str], summary: Summary
    ) -> None:
        self.source = source
        self.context = context
        self.summary = summary
        self.aliases: dict[str, tuple[str, tuple[str, ...]]] = {p: (p, ()) for p in params}
        self.helper = source.function.__qualname__
        self.current: Any = None

    def ref(self, node: Any) -> tuple[str, tuple[str, ...]] | None:
        """The parameter path ``node`` refers to, if any."""
        if isinstance(node, gast.Name):
            return self.aliases.get(node.id)
        if isinstance(node, gast.Attribute):
            base = self.ref(node.value)
            return None if base is None else (base[0], (*base[1], node.attr))
        if isinstance(node, gast.Subscript):
            base = self.ref(node.value)
            return None if base is None else (base[0], (*base[1], _ELEMENT))
        return None

    def outside(self, node: Any) -> str | None:
        while isinstance(node, (gast.Attribute, gast.Subscript)):
            node = node.value
        if isinstance(node, gast.Name) and node.id not in self.aliases:
            return self.context.outside(node.id)
        return None

    def record(self, node: Any, target: Any, kind: str, extra: tuple[str, ...] = ()) -> None:
        ref = self.ref(target)
        text, where = self.source.text(node), self.source.where(node)
        if ref is not None:
            param, path = ref
            self.add_effect(Effect(param, (*path, *extra), kind, text, where, self.helper))
            return
        outside = self.outside(target)
        if outside is not None:
            self.add_problem(Unmodelled(f"changes {outside} in place", text, where, self.helper))

    def run(self, body: list[Any]) -> None:
        for stmt in _statements(body):
            self.current = stmt
            self.statement(stmt)

    def statement(self, stmt: Any) -> None:
        if isinstance(stmt, (gast.Global, gast.Nonlocal)):
            kind = "global" if isinstance(stmt, gast.Global) else "nonlocal"
            self.add_problem(
                Unmodelled(
                    f"declares {kind} {', '.join(stmt.names)} to assign it",
                    self.source.text(stmt),
                    self.source.where(stmt),
                    self.helper,
                )
            )
        for call in _calls(stmt):
            self.call(stmt, call)
        if isinstance(stmt, gast.Delete):
            for target in stmt.targets:
                if isinstance(target, gast.Attribute):
                    self.record(stmt, target.value, "delete", (target.attr,))
                elif isinstance(target, gast.Subscript):
                    self.record(stmt, target.value, "delete", (_ELEMENT,))
        for target in _flat(_targets(stmt)):
            self.assign(stmt, target)
        if isinstance(stmt, gast.Assign):
            self.alias(stmt)

    def assign(self, stmt: Any, target: Any) -> None:
        augmented = isinstance(stmt, gast.AugAssign)
        if isinstance(target, gast.Attribute):
            self.record(
                stmt, target.value, "augmented" if augmented else "attribute", (target.attr,)
            )
        elif isinstance(target, gast.Subscript):
            self.record(stmt, target.value, "element", (_ELEMENT,))
        elif isinstance(target, gast.Name) and augmented and target.id in self.aliases:
            self.record(stmt, target, "augmented")

    def alias(self, stmt: Any) -> None:
        """``b = p``, ``b = p.u``, ``b = p[0]`` make ``b`` refer to ``p``; anything else ends it."""
        for target in stmt.targets:
            if not isinstance(target, gast.Name):
                for name in _flat([target]):
                    if isinstance(name, gast.Name):
                        self.aliases.pop(name.id, None)
                continue
            ref = self.ref(stmt.value)
            if ref is None:
                self.aliases.pop(target.id, None)
            else:
                self.aliases[target.id] = ref

    def call(self, stmt: Any, call: Any) -> None:
        for keyword in call.keywords:
            if keyword.arg == "out":
                self.record(stmt, keyword.value, "element", (_ELEMENT,))
        func = call.func
        name = func.attr if isinstance(func, gast.Attribute) else getattr(func, "id", None)
        if name in _IN_PLACE_FUNCTIONS and call.args:
            self.record(stmt, call.args[0], "element", (_ELEMENT,))
            return
        if isinstance(func, gast.Attribute) and func.attr == "at" and call.args:
            self.record(stmt, call.args[0], "element", (_ELEMENT,))  # np.add.at(a, i, v)
            return
        if isinstance(func, gast.Name) and func.id in ("setattr", "delattr") and call.args:
            self.setattr_call(stmt, call)
            return
        if isinstance(func, gast.Attribute) and func.attr in MUTATING_METHODS:
            if self.resolve(func) is None:  # a container's method, not a helper we can read
                self.record(stmt, func.value, "mutation")
                return
        self.follow(stmt, call)

    def setattr_call(self, stmt: Any, call: Any) -> None:
        kind = "attribute" if call.func.id == "setattr" else "delete"
        key = call.args[1] if len(call.args) > 1 else None
        if isinstance(key, gast.Constant) and isinstance(key.value, str):
            self.record(stmt, call.args[0], kind, (key.value,))
        elif self.ref(call.args[0]) is not None or self.outside(call.args[0]) is not None:
            self.add_problem(
                Unmodelled(
                    f"calls {call.func.id} with a computed attribute name, so the field it "
                    "writes is not known",
                    self.source.text(stmt),
                    self.source.where(stmt),
                    self.helper,
                )
            )

    def resolve(self, func: Any) -> tuple[Any, type | None] | None:
        """The user function a call reaches, with the class of its ``self``, if it can be read."""
        return resolve_callee(func, self.context)

    def follow(self, stmt: Any, call: Any) -> None:
        found = self.resolve(call.func)
        if found is None:
            return
        callee, self_class = found
        summary = summarise(callee, self_class)
        if isinstance(summary, str):
            self.unreadable(stmt, call, callee, summary)
            return
        for arg, effect in map_effects(call, callee, self_class, summary):
            if arg is None:
                self.add_problem(_unmapped(effect))
            else:
                self.record_mapped(arg, effect)
        for problem in summary.problems:
            self.add_problem(problem)

    def unreadable(self, stmt: Any, call: Any, callee: Any, why: str) -> None:
        """A user function whose source cannot be read, called with one of our objects."""
        args = [*call.args, *(k.value for k in call.keywords)]
        if isinstance(call.func, gast.Attribute):
            args.append(call.func.value)
        for arg in args:
            arg = arg.value if isinstance(arg, gast.Starred) else arg
            if self.ref(arg) is not None or self.outside(arg) is not None:
                self.add_problem(
                    Unmodelled(
                        f"calls {describe_helper(callee)}, whose writes cannot be checked: {why}",
                        self.source.text(stmt),
                        self.source.where(stmt),
                        self.helper,
                    )
                )
                return

    def add_effect(self, effect: Effect) -> None:
        self.summary.effects.append(effect)

    def add_problem(self, problem: Unmodelled) -> None:
        self.summary.problems.append(problem)

    def record_mapped(self, arg: Any, effect: Effect) -> None:
        ref = self.ref(arg)
        if ref is not None:
            param, path = ref
            self.add_effect(
                Effect(
                    param,
                    (*path, *effect.path),
                    effect.kind,
                    effect.text,
                    effect.where,
                    effect.helper,
                )
            )
            return
        outside = self.outside(arg)
        if outside is not None:
            self.add_problem(
                Unmodelled(f"changes {outside} in place", effect.text, effect.where, effect.helper)
            )


def _unmapped(effect: Effect) -> Unmodelled:
    return Unmodelled(
        f"writes through {effect.param}, which the call does not pass by name or position "
        "(it is filled by *args, **kwargs or a default value)",
        effect.text,
        effect.where,
        effect.helper,
    )


# -- calls ----------------------------------------------------------------------------------------


def resolve_callee(func: Any, context: Context) -> tuple[Any, type | None] | None:
    """``(function, class of self)`` for a call's callee when it is a readable user function.

    Resolved: a name bound to a function (a global, a closure variable, a def in the analysed
    source), a method of an object whose class is known (``self.f()`` in a method,
    ``s.grow()`` for ``s = S(...)``, a global object), and ``C.f(obj)``.
    """
    if isinstance(func, gast.Name):
        if func.id in context.defs:
            return context.defs[func.id], None
        known, value = context.value(func.id)
        if known and is_user_function(value):
            return value, None
        return None
    if not isinstance(func, gast.Attribute):
        return None
    owner = func.value
    cls: type | None = None
    if isinstance(owner, gast.Name):
        if owner.id in context.classes:
            cls = context.classes[owner.id]
        else:
            known, value = context.value(owner.id)
            if known and isinstance(value, type):
                method = inspect.getattr_static(value, func.attr, None)
                if isinstance(method, staticmethod):
                    method = method.__func__
                return (method, None) if is_user_function(method) else None
            if known and not isinstance(value, types.ModuleType):
                cls = type(value)
    if cls is None:
        return None
    method = inspect.getattr_static(cls, func.attr, None)
    if isinstance(method, staticmethod):
        fn = method.__func__
        return (fn, None) if is_user_function(fn) else None
    if is_user_function(method):
        return method, cls
    return None


def map_effects(
    call: Any, callee: Any, self_class: type | None, summary: Summary
) -> list[tuple[Any, Effect]]:
    """Each effect of ``callee`` paired with the caller's expression bound to its parameter.

    ``None`` in place of the expression when it cannot be told (``*args``, ``**kwargs``, a
    default value).
    """
    if not summary.effects:
        return []
    code = callee.__code__
    positional = list(code.co_varnames[: code.co_posonlyargcount + code.co_argcount])
    positional = positional[: code.co_argcount]
    kwonly = list(code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount])
    args = list(call.args)
    if self_class is not None:  # obj.method(...): obj is self
        args = [call.func.value, *args]
    starred = any(isinstance(a, gast.Starred) for a in args) or any(
        k.arg is None for k in call.keywords
    )
    bound: dict[str, Any] = {}
    if not starred:
        bound.update(zip(positional, args))
        for k in call.keywords:
            if k.arg in positional or k.arg in kwonly:
                bound[k.arg] = k.value
    return [(bound.get(e.param), e) for e in summary.effects]


def call_effects(
    call: Any, context: Context
) -> tuple[Any, list[tuple[Any, Effect]], list[Unmodelled]] | str | None:
    """What a call in the loop body writes: ``(callee, [(argument, effect)], problems)``.

    None when the callee is not a readable user function; a string saying why when it is one
    but its source cannot be read.
    """
    found = resolve_callee(call.func, context)
    if found is None:
        return None
    callee, self_class = found
    summary = summarise(callee, self_class)
    if isinstance(summary, str):
        return summary
    return callee, map_effects(call, callee, self_class, summary), list(summary.problems)


@dataclass(frozen=True)
class BodyWrite:
    """A write the loop body makes through a call: ``root`` is the body's variable written."""

    stmt: Any  # the body's statement holding the call
    root: str
    effect: Effect
    fresh: bool = False  # root was assigned earlier in the same iteration: a new object


@dataclass(frozen=True)
class BodyProblem:
    """An `Unmodelled` write reached from the body's statement ``stmt``."""

    stmt: Any
    problem: Unmodelled


class _BodyWalker(_Walker):
    """The loop body read like a helper whose parameters are all the names it finds.

    Assignments in the body are the rewrite's business (they become functional updates); what
    this pass adds is the writes made by calls: container methods (``traj.append(x)``),
    ``setattr``, ``out=``, and the effects of helpers mapped back onto the body's variables. A
    write through a name the body assigned earlier in the iteration is marked ``fresh`` (it
    changes a new object, not one from outside the step).
    """

    def __init__(self, source: Any, context: Context) -> None:
        super().__init__(source, context, [], Summary())
        self.ended: set[str] = set()
        self.writes: list[BodyWrite] = []
        self.problems: list[BodyProblem] = []

    def ref(self, node: Any) -> tuple[str, tuple[str, ...]] | None:
        if isinstance(node, gast.Name) and node.id not in self.aliases:
            return (node.id, ())
        return super().ref(node)

    def outside(self, node: Any) -> str | None:
        return None  # every name of the body is followed (`ref`)

    def assign(self, stmt: Any, target: Any) -> None:
        return None  # the rewrite makes the body's own writes functional

    def alias(self, stmt: Any) -> None:
        for target in stmt.targets:
            for name in _flat([target]):
                if isinstance(name, gast.Name):
                    self.aliases.pop(name.id, None)
                    self.ended.add(name.id)
            if isinstance(target, gast.Name):
                ref = self.ref(stmt.value)
                if ref is not None:
                    self.ended.discard(target.id)
                    self.aliases[target.id] = ref

    def statement(self, stmt: Any) -> None:
        super().statement(stmt)
        for target in _flat(_targets(stmt)) if not isinstance(stmt, gast.Assign) else []:
            for name in _flat([target]):
                if isinstance(name, gast.Name):
                    self.ended.add(name.id)

    def add_effect(self, effect: Effect) -> None:
        fresh = effect.param in self.ended
        self.writes.append(BodyWrite(self.current, effect.param, effect, fresh))

    def add_problem(self, problem: Unmodelled) -> None:
        self.problems.append(BodyProblem(self.current, problem))


def body_effects(
    source: Any, body: list[Any], context: Context
) -> tuple[list[BodyWrite], list[BodyProblem]]:
    """The writes the loop body makes through calls, and what cannot be modelled.

    ``source`` gives ``where(node)``, ``header_text(node)`` and ``function`` for the body.
    """
    walker = _BodyWalker(_BodyText(source), context)
    walker.run(body)
    return walker.writes, walker.problems


@dataclass(frozen=True)
class _BodyText:
    """The decorated function's source seen through the interface `_Walker` reads."""

    inner: Any

    @property
    def function(self) -> Any:
        return self.inner.function

    def where(self, node: Any) -> str:
        return self.inner.where(node)

    def text(self, node: Any) -> str:
        return self.inner.header_text(node)


def describe_helper(function: Any) -> str:
    """``grow (model.py:12)``: a helper's name and where it is defined."""
    code = function.__code__
    return f"{function.__qualname__} ({os.path.basename(code.co_filename)}:{code.co_firstlineno})"
