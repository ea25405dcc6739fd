"""Pass 3, analyse: which names the loop carries, which it only reads, and where they live.

The loop body becomes ``state = step(state, i, *params)``. This pass decides what goes in
``state`` and ``params``:

* **carried state**: every variable the body assigns (plainly, by tuple or augmented assignment,
  or by an element update ``x[i] = v``) whose value the next iteration or the code after the loop
  may read: it is read in the body before being assigned on some path (*upward exposed*), or read
  after the loop, or read by a while condition;
* **struct fields**: every attribute the body assigns on a name it does not rebind
  (``heat.Tnext = ...``); all such fields are state, since the caller sees the object;
* **parameters**: names the body (or the while condition) only reads and that may hold traced
  values: arguments and locals of the function, closure variables, and globals that are not
  modules or callables; for a struct, its other fields, gathered at run time (helpers the body
  calls may read fields the body never names);
* **by name**: globals that are modules or callables, and builtins, which the step refers to
  directly (they cannot carry gradients);
* temporaries assigned in the body and not carried stay local to the step.

"Upward exposed" is a forward pass over the body tracking the names *definitely* assigned so far
(both branches of an ``if``; nothing from an inner loop's body, which may not run). Reading
inside a nested function or lambda counts as reading where it is defined.

It also rejects, with the line and a way out, what would silently compute something else:
assigning the loop index, an element update through a second name for the same array, a
carried variable with no value before the loop, a loop that carries nothing.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

import gast

from ckpt_transform.transform import effects, stale
from ckpt_transform.transform.parse import FunctionSource, LoopChoice
from ckpt_transform.transform.text import expression_text as _text

__all__ = ["Location", "LoopAnalysis", "Param", "Struct", "analyse", "reads"]

_NESTED_FUNCTIONS = (gast.FunctionDef, gast.AsyncFunctionDef, gast.Lambda)
_COMPREHENSIONS = (gast.ListComp, gast.SetComp, gast.GeneratorExp, gast.DictComp)


@dataclass(frozen=True, order=True)
class Location:
    """A place the body writes: a variable ``x`` or a struct field ``heat.Tnext``."""

    name: str
    attr: str | None = None

    def __str__(self) -> str:
        return self.name if self.attr is None else f"{self.name}.{self.attr}"


@dataclass(frozen=True)
class Struct:
    """An object whose attributes the body assigns.

    Attributes
    ----------
    name
        The variable holding it.
    fields
        The attributes the body assigns, in order of first assignment: carried state.
    rebindable
        True when ``name`` is a local of the function, so that after the loop it can be rebound
        to an updated (differentiable) object; False for a global or closure variable.
    """

    name: str
    fields: tuple[str, ...]
    rebindable: bool


@dataclass(frozen=True)
class Param:
    """A value the step only reads, passed to it through ``params``.

    ``origin`` is ``"argument"``, ``"local"``, ``"closure"``, ``"global"`` or ``"struct"`` (the
    other fields of the struct ``name``).
    """

    name: str
    origin: str


@dataclass(frozen=True)
class LoopAnalysis:
    """What the rewrite needs to know about the loop."""

    kind: str  # "for" or "while"
    index: str | None  # the for loop's variable
    state: tuple[Location, ...]  # carried, in order of first assignment in the body
    structs: tuple[Struct, ...]
    params: tuple[Param, ...]  # in order of first reading (the while condition first)
    by_name: tuple[str, ...]  # globals and builtins the step refers to directly
    cond_structs: tuple[str, ...]  # structs the while condition reads
    index_read_after: bool  # the for variable is read after the loop (it keeps its last value)
    helper_writes: tuple[tuple[Location, str], ...] = ()  # struct fields only helpers assign
    # positions in `state` of arrays (or lists, dicts) the body only updates element by element:
    # as in the plain loop, the object from before the loop ends holding the final values
    refill: tuple[int, ...] = ()
    # `a = x[i]` statements after which the generated code checks that `a` is not a view of x
    view_checks: tuple[ViewCheck, ...] = ()


@dataclass(frozen=True)
class ViewCheck:
    """``a = x[i]`` is a number on a one-axis x and a row of a bigger one, which a later write
    of x would change in the plain loop only; the generated code checks which it is as it runs.
    (An array held by a list is changed in place by ``a += v`` and ``x[i] += v`` too.)"""

    position: tuple[int, int]  # (line, column) of the statement the check follows
    alias: Any  # the expression `a`
    array: Any  # the expression `x`; None: an array is refused whatever holds it
    made: str  # "`a = x[i]` at heat.py:12"
    write: str  # "`x[i] = v` at heat.py:14"
    fix: str  # "a = np.array(x[i])"


# -- reading names ---------------------------------------------------------------------------


def _arg_names(args: Any) -> set[str]:
    names = {a.id for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    names.update(a.id for a in (args.vararg, args.kwarg) if a is not None)
    return names


def _arg_parts(args: Any) -> list[Any]:
    """What a def or lambda evaluates where it is defined: defaults and annotations."""
    parts = list(args.defaults) + [d for d in args.kw_defaults if d is not None]
    for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
        if a is not None and getattr(a, "annotation", None) is not None:
            parts.append(a.annotation)
    return parts


def reads(node: Any, bound: frozenset[str] = frozenset()) -> list[Any]:
    """The ``Name`` nodes ``node`` reads, in source order, leaving out names that a nested scope
    (lambda, def, comprehension) binds for itself."""
    out: list[Any] = []
    _reads(node, bound, out)
    out.sort(key=lambda n: (n.lineno, n.col_offset))
    return out


def _reads(node: Any, bound: frozenset[str], out: list[Any]) -> None:
    if isinstance(node, list):
        for item in node:
            _reads(item, bound, out)
        return
    if isinstance(node, gast.Name):
        if isinstance(node.ctx, gast.Load) and node.id not in bound:
            out.append(node)
        if node.annotation is not None:
            _reads(node.annotation, bound, out)
        return
    if isinstance(node, gast.Lambda):
        _reads(_arg_parts(node.args), bound, out)
        _reads(node.body, bound | _arg_names(node.args), out)
        return
    if isinstance(node, (gast.FunctionDef, gast.AsyncFunctionDef)):
        _reads(node.decorator_list + _arg_parts(node.args), bound, out)
        if node.returns is not None:
            _reads(node.returns, bound, out)
        inner = bound | _arg_names(node.args) | set(local_names(node.body))
        _reads(node.body, frozenset(inner), out)
        return
    if isinstance(node, gast.ClassDef):
        _reads(node.decorator_list + node.bases + [k.value for k in node.keywords], bound, out)
        _reads(node.body, bound, out)
        return
    if isinstance(node, _COMPREHENSIONS):
        generators = node.generators
        _reads(generators[0].iter, bound, out)
        inner = set(bound)
        for gen in generators:
            inner.update(_store_names(gen.target))
        inner_bound = frozenset(inner)
        for k, gen in enumerate(generators):
            if k:
                _reads(gen.iter, inner_bound, out)
            _reads(gen.ifs, inner_bound, out)
        elts = [node.key, node.value] if isinstance(node, gast.DictComp) else [node.elt]
        _reads(elts, inner_bound, out)
        return
    if isinstance(node, gast.AST):
        for field in node._fields:
            value = getattr(node, field)
            if isinstance(value, (gast.AST, list)):
                _reads(value, bound, out)


def _store_names(target: Any) -> list[str]:
    return [
        n.id
        for n in gast.walk(target)
        if isinstance(n, gast.Name) and isinstance(n.ctx, gast.Store)
    ]


def _walrus_names(node: Any) -> set[str]:
    return {
        n.target.id
        for n in _walk_same_scope(node)
        if isinstance(n, gast.NamedExpr) and isinstance(n.target, gast.Name)
    }


def _walk_same_scope(node: Any) -> Iterator[Any]:
    """``gast.walk`` that does not enter nested functions (their bodies are another scope)."""
    todo = [node]
    while todo:
        n = todo.pop()
        yield n
        if isinstance(n, _NESTED_FUNCTIONS) and n is not node:
            continue
        todo.extend(gast.iter_child_nodes(n))


def statements(stmts: list[Any]) -> Iterator[Any]:
    """Every statement in ``stmts`` at any depth, not entering nested functions or classes."""
    for stmt in stmts:
        yield stmt
        if isinstance(stmt, (gast.FunctionDef, gast.AsyncFunctionDef, gast.ClassDef)):
            continue
        for field in ("body", "orelse", "finalbody"):
            yield from statements(getattr(stmt, field, None) or [])
        for handler in getattr(stmt, "handlers", None) or []:
            yield from statements(handler.body)
        for case in getattr(stmt, "cases", None) or []:
            yield from statements(case.body)


def local_names(body: list[Any]) -> list[str]:
    """Names a function body binds (its locals, by Python's rules), in order of appearance."""
    names: list[str] = []
    declared: set[str] = set()
    for stmt in statements(body):
        if isinstance(stmt, (gast.Global, gast.Nonlocal)):
            declared.update(stmt.names)
        names.extend(_statement_binds(stmt))
    seen: set[str] = set()
    return [n for n in names if not (n in seen or seen.add(n)) and n not in declared]


def _statement_binds(stmt: Any) -> list[str]:
    """Names a single statement binds (its own targets; walrus targets anywhere in it)."""
    names: list[str] = []
    if isinstance(stmt, gast.Assign):
        for t in stmt.targets:
            names.extend(_store_names(t))
    elif isinstance(stmt, (gast.AugAssign, gast.AnnAssign)):
        names.extend(_store_names(stmt.target))
    elif isinstance(stmt, (gast.For, gast.AsyncFor)):
        names.extend(_store_names(stmt.target))
    elif isinstance(stmt, (gast.With, gast.AsyncWith)):
        for item in stmt.items:
            if item.optional_vars is not None:
                names.extend(_store_names(item.optional_vars))
    elif isinstance(stmt, (gast.Import, gast.ImportFrom)):
        names.extend((a.asname or a.name).split(".")[0] for a in stmt.names)
    elif isinstance(stmt, (gast.FunctionDef, gast.AsyncFunctionDef, gast.ClassDef)):
        names.append(stmt.name)
    elif isinstance(stmt, (gast.Try, gast.TryStar)):
        names.extend(h.name.id for h in stmt.handlers if isinstance(h.name, gast.Name))
    elif isinstance(stmt, gast.Match):
        for case in stmt.cases:
            names.extend(_pattern_names(case.pattern))
    elif isinstance(stmt, gast.Delete):
        for t in stmt.targets:
            names.extend(n.id for n in gast.walk(t) if isinstance(n, gast.Name))
    if not isinstance(stmt, (gast.FunctionDef, gast.AsyncFunctionDef, gast.ClassDef)):
        names.extend(sorted(_walrus_in_statement(stmt)))
    return names


def _walrus_in_statement(stmt: Any) -> set[str]:
    """Walrus targets in the expressions of ``stmt`` itself (not in its nested statements)."""
    names: set[str] = set()
    for field in stmt._fields:
        if field in ("body", "orelse", "finalbody", "handlers", "cases"):
            continue
        value = getattr(stmt, field)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, gast.AST):
                names |= _walrus_names(item)
    return names


def _pattern_names(pattern: Any) -> list[str]:
    names: list[str] = []
    for n in gast.walk(pattern):
        if isinstance(n, (gast.MatchAs, gast.MatchStar)) and n.name is not None:
            names.append(n.name)
        elif isinstance(n, gast.MatchMapping) and n.rest is not None:
            names.append(n.rest)
    return names


# -- definite assignment and upward-exposed reads ---------------------------------------------


class _Flow:
    """A forward pass that records reads of names not definitely assigned before them."""

    def __init__(self) -> None:
        self.exposed: dict[str, Any] = {}

    def _read(self, node: Any, defined: frozenset[str]) -> None:
        for name in reads(node):
            if name.id not in defined:
                self.exposed.setdefault(name.id, name)

    def block(self, stmts: list[Any], defined: frozenset[str]) -> frozenset[str]:
        for stmt in stmts:
            defined = self.statement(stmt, defined)
        return defined

    def statement(self, s: Any, defined: frozenset[str]) -> frozenset[str]:
        if isinstance(s, gast.If):
            self._read(s.test, defined)
            defined |= _walrus_names(s.test)
            return self.block(s.body, defined) & self.block(s.orelse, defined)
        if isinstance(s, (gast.For, gast.AsyncFor)):
            self._read(s.iter, defined)
            defined |= _walrus_names(s.iter)
            self.block(s.body, defined | set(_store_names(s.target)))
            self.block(s.orelse, defined)
            return defined
        if isinstance(s, gast.While):
            self._read(s.test, defined)
            defined |= _walrus_names(s.test)
            self.block(s.body, defined)
            self.block(s.orelse, defined)
            return defined
        if isinstance(s, (gast.With, gast.AsyncWith)):
            for item in s.items:
                self._read(item.context_expr, defined)
                defined |= _walrus_names(item.context_expr)
                if item.optional_vars is not None:
                    self._read(item.optional_vars, defined)
                    defined |= set(_store_names(item.optional_vars))
            return self.block(s.body, defined)
        if isinstance(s, (gast.Try, gast.TryStar)):
            after = self.block(s.orelse, self.block(s.body, defined))
            for h in s.handlers:
                if h.type is not None:
                    self._read(h.type, defined)
                name = {h.name.id} if isinstance(h.name, gast.Name) else set()
                after &= self.block(h.body, defined | name)
            return after | self.block(s.finalbody, defined)
        if isinstance(s, gast.Match):
            self._read(s.subject, defined)
            for case in s.cases:
                inner = defined | set(_pattern_names(case.pattern))
                for n in gast.walk(case.pattern):
                    if isinstance(n, gast.MatchValue):
                        self._read(n.value, inner)
                if case.guard is not None:
                    self._read(case.guard, inner)
                self.block(case.body, inner)
            return defined  # no case may match: nothing is definitely assigned
        self._read(s, defined)
        if isinstance(s, gast.AugAssign) and isinstance(s.target, gast.Name):
            # `x += v` reads x although its target node is a Store
            if s.target.id not in defined:
                self.exposed.setdefault(s.target.id, s.target)
        if isinstance(s, gast.AnnAssign) and s.value is None:
            return defined
        return defined | set(_statement_binds(s))


# -- writes in the body -------------------------------------------------------------------------


def target_location(source: FunctionSource, target: Any) -> Location:
    """The location an assignment target writes (an element update writes its array)."""
    if isinstance(target, gast.Name):
        return Location(target.id)
    if isinstance(target, gast.Attribute):
        if isinstance(target.value, gast.Name):
            return Location(target.value.id, target.attr)
        raise source.error(
            f"the checkpointed loop assigns the attribute {_text(target)} at "
            f"{source.where(target)}; only attributes of a variable (`heat.T = ...`) can be "
            "carried from one iteration to the next. Instead, give the inner object a name before "
            f"the loop (`inner = {_text(target.value)}`) and assign `inner.{target.attr} = ...`.",
            target,
        )
    if isinstance(target, gast.Subscript):
        base = target.value
        while isinstance(base, gast.Subscript):
            base = base.value
        if isinstance(base, (gast.Name, gast.Attribute)):
            return target_location(source, base)
        raise source.error(
            f"the checkpointed loop writes an element of {_text(target.value)} at "
            f"{source.where(target)}; element updates are rewritten into functional updates of "
            "a variable or of an attribute of a variable. Instead, give the array a name "
            f"(`a = {_text(base)}`), update `a[...] = ...`, and store it back if needed.",
            target,
        )
    raise source.error(
        f"unexpected assignment target {_text(target)} at {source.where(target)}.", target
    )


def _targets(stmt: Any) -> list[Any]:
    """The assignment targets of one statement, tuples and starred unpacked."""
    if isinstance(stmt, gast.Assign):
        raw = list(stmt.targets)
    elif isinstance(stmt, (gast.AugAssign, gast.AnnAssign)):
        raw = [stmt.target] if not (isinstance(stmt, gast.AnnAssign) and stmt.value is None) else []
    elif isinstance(stmt, (gast.For, gast.AsyncFor)):
        raw = [stmt.target]
    elif isinstance(stmt, (gast.With, gast.AsyncWith)):
        raw = [i.optional_vars for i in stmt.items if i.optional_vars is not None]
    else:
        raw = []
    out: list[Any] = []
    while raw:
        t = raw.pop(0)
        if isinstance(t, (gast.Tuple, gast.List)):
            raw[:0] = list(t.elts)
        elif isinstance(t, gast.Starred):
            raw.insert(0, t.value)
        else:
            out.append(t)
    return out


@dataclass
class _Writes:
    variables: dict[str, Any]  # name -> first target node writing it
    fields: dict[Location, Any]  # struct field -> first target node
    element_updates: dict[Location, Any]  # array location -> first element-update target
    # a field only helpers assign -> "helper (file:line)"
    helpers: dict[Location, str] = dataclass_field(default_factory=dict)
    whole: set[Location] = dataclass_field(default_factory=set)  # assigned other than by element


def _body_writes(source: FunctionSource, body: list[Any]) -> _Writes:
    found: list[tuple[Any, Location, bool]] = []
    for stmt in statements(body):
        for target in _targets(stmt):
            if isinstance(target, (gast.Name, gast.Attribute, gast.Subscript)):
                loc = target_location(source, target)
                found.append((target, loc, isinstance(target, gast.Subscript)))
        for name in _statement_binds(stmt):
            if not any(loc == Location(name) for _, loc, _ in found):
                found.append((stmt, Location(name), False))
    found.sort(key=lambda item: (item[0].lineno, item[0].col_offset))
    writes = _Writes({}, {}, {})
    for node, loc, element in found:
        if loc.attr is None:
            writes.variables.setdefault(loc.name, node)
        else:
            writes.fields.setdefault(loc, node)
        if element:
            writes.element_updates.setdefault(loc, node)
        else:
            writes.whole.add(loc)
    return writes


# -- the pass -------------------------------------------------------------------------------------


def _is_by_name(value: Any) -> bool:
    """Values a step may refer to directly: they are never traced and carry no gradient."""
    return isinstance(value, types.ModuleType) or callable(value)


@dataclass(frozen=True)
class _Scope:
    """The parts of the function around the chosen loop, and what its names are."""

    source: FunctionSource
    node: Any  # the loop
    pre: list[Any]
    post: list[Any]
    kind: str
    index: str | None
    arguments: set[str]
    function_locals: set[str]
    closure: set[str]

    @classmethod
    def of(cls, source: FunctionSource, loop: LoopChoice) -> _Scope:
        fdef = source.node
        arguments = _arg_names(fdef.args)
        return cls(
            source=source,
            node=loop.node,
            pre=fdef.body[: loop.position],
            post=fdef.body[loop.position + 1 :],
            kind="for" if loop.is_for else "while",
            index=loop.node.target.id if loop.is_for else None,
            arguments=arguments,
            function_locals=arguments | set(local_names(fdef.body)),
            closure=set(source.function.__code__.co_freevars),
        )

    @property
    def body(self) -> list[Any]:
        return self.node.body


@dataclass
class _Usage:
    """Where the loop's names are read: before assignment in the body, by the condition, after."""

    exposed: dict[str, Any]
    cond_reads: list[Any]
    cond_names: set[str]
    read_after: set[str]


def analyse(source: FunctionSource, loop: LoopChoice) -> LoopAnalysis:
    """Classify the names of the chosen loop; raise `TransformError` for what cannot work."""
    scope = _Scope.of(source, loop)
    writes = _body_writes(source, scope.body)
    _check_index_not_written(scope, writes)
    calls = _call_writes(scope, writes)
    usage = _usage(scope)
    carried_vars = [
        name
        for name in writes.variables
        if name != scope.index
        and (name in usage.exposed or name in usage.read_after or name in usage.cond_names)
    ]
    _check_call_writes(scope, calls, writes, carried_vars)
    structs = _structs(scope, writes, carried_vars)
    state = _state(scope, writes, carried_vars, structs, usage)
    view_checks = _check_aliases(
        source, scope.pre, scope.body, writes, usage.read_after | usage.cond_names
    )
    _check_stale_closures(source, scope.pre, scope.body, {loc.name for loc in state})
    params, by_name, cond_structs = _parameters(scope, writes, structs, usage)
    struct_names = {s.name for s in structs}
    return LoopAnalysis(
        kind=scope.kind,
        index=scope.index,
        state=tuple(state),
        structs=structs,
        params=params,
        by_name=by_name,
        cond_structs=cond_structs,
        index_read_after=scope.index is not None and scope.index in usage.read_after,
        helper_writes=tuple(
            (loc, helper) for loc, helper in writes.helpers.items() if loc.name in struct_names
        ),
        refill=tuple(
            k
            for k, loc in enumerate(state)
            if loc in writes.element_updates and loc not in writes.whole
        ),
        view_checks=tuple(view_checks),
    )


def _check_index_not_written(scope: _Scope, writes: _Writes) -> None:
    index = scope.index
    if index is not None and index in writes.variables:
        bad = writes.variables[index]
        raise scope.source.error(
            f"the loop variable {index} is assigned inside the checkpointed loop at "
            f"{scope.source.where(bad)}; the driver passes each iteration its own {index}. "
            f"Instead of assigning {index}, use another name (`j = {index} + 1`).",
            bad,
        )


def _usage(scope: _Scope) -> _Usage:
    """Upward-exposed reads of the body, reads by the while condition, and reads after the loop."""
    flow = _Flow()
    flow.block(scope.body, frozenset({scope.index} if scope.index else ()))
    cond_reads = reads(scope.node.test) if scope.kind == "while" else []
    read_after = {n.id for n in reads(scope.post)}
    for stmt in scope.pre:  # functions defined before the loop may read its results after it
        for child in gast.walk(stmt):
            if isinstance(child, _NESTED_FUNCTIONS):
                read_after |= {n.id for n in reads(child)}
    return _Usage(flow.exposed, cond_reads, {n.id for n in cond_reads}, read_after)


def _structs(scope: _Scope, writes: _Writes, carried_vars: list[str]) -> tuple[Struct, ...]:
    """Structs: names whose attributes the body (or a helper it calls) assigns, not rebound."""
    source = scope.source
    struct_fields: dict[str, list[str]] = {}
    for loc in writes.fields:
        struct_fields.setdefault(loc.name, []).append(loc.attr)  # type: ignore[arg-type]
    for name in list(struct_fields):
        attr_node = writes.fields[Location(name, struct_fields[name][0])]
        if name in writes.variables:
            if name in carried_vars:
                raise source.error(
                    f"{name} is both rebound (at {source.where(writes.variables[name])}) and "
                    f"has attributes assigned (at {source.where(attr_node)}) in the "
                    "checkpointed loop, so it is unclear whether the loop carries the object or "
                    f"its fields. Instead, either only assign attributes of {name}, or build a "
                    f"new object each iteration (`{name} = replace({name}, ...)`).",
                    attr_node,
                )
            del struct_fields[name]  # a temporary of the body: ordinary code
        elif name == scope.index:
            raise source.error(
                f"the loop variable {scope.index} has attributes assigned in the checkpointed "
                "loop; instead, use another name.",
                attr_node,
            )
    return tuple(
        Struct(name, tuple(fields), name in scope.function_locals)
        for name, fields in struct_fields.items()
    )


def _state(
    scope: _Scope,
    writes: _Writes,
    carried_vars: list[str],
    structs: tuple[Struct, ...],
    usage: _Usage,
) -> list[Location]:
    """The carried locations in order of first assignment; each must have a value before."""
    source, node = scope.source, scope.node
    struct_names = {s.name for s in structs}
    state = [Location(n) for n in carried_vars]
    state += [loc for loc in writes.fields if loc.name in struct_names]
    first_write = {Location(n): writes.variables[n] for n in carried_vars}
    first_write.update({loc: writes.fields[loc] for loc in writes.fields})
    state.sort(key=lambda loc: (first_write[loc].lineno, first_write[loc].col_offset))
    if not state:
        raise source.error(
            f"the checkpointed loop at {source.where(node)} assigns no variable that the next "
            "iteration or the code after it reads, and no attribute of an object: there is no "
            "state to checkpoint. Instead, assign the values the loop computes to variables "
            "used after it (or to attributes of an object).",
            node,
        )
    defined_before = _Flow().block(scope.pre, frozenset(scope.arguments))
    for loc in state:
        if loc.attr is None and loc.name not in defined_before:
            written = first_write[loc]
            why = (
                "read after the loop"
                if loc.name in usage.read_after
                else "read by the loop condition"
                if loc.name in usage.cond_names
                else f"read at {source.where(usage.exposed[loc.name])} before it is assigned"
            )
            raise source.error(
                f"{loc.name} is carried by the checkpointed loop (assigned at "
                f"{source.where(written)}, {why}) but may have no value before the loop at "
                f"{source.where(node)}; the checkpointed loop starts from the values its "
                f"variables hold before it. Instead of leaving {loc.name} unset, give it a value "
                "of the same kind before the loop (e.g. `y = 0.0` or `y = np.zeros_like(x)`).",
                written,
            )
    return state


def _parameters(
    scope: _Scope, writes: _Writes, structs: tuple[Struct, ...], usage: _Usage
) -> tuple[tuple[Param, ...], tuple[str, ...], tuple[str, ...]]:
    """What the condition and the body read but do not assign: parameters, by-name values, and
    the structs the condition reads."""
    struct_names = {s.name for s in structs}
    params: list[Param] = []
    by_name: list[str] = []
    seen: set[str] = set()
    cond_structs: list[str] = []
    glob = scope.source.function.__globals__
    for name_node in usage.cond_reads + reads(scope.body):
        name = name_node.id
        if name in struct_names and name_node in usage.cond_reads and name not in cond_structs:
            cond_structs.append(name)
        if name in seen or name == scope.index or name in writes.variables:
            continue
        seen.add(name)
        if name in struct_names:
            params.append(Param(name, "struct"))
        elif name in scope.function_locals:
            params.append(Param(name, "argument" if name in scope.arguments else "local"))
        elif name in scope.closure:
            params.append(Param(name, "closure"))
        elif name in glob:
            if _is_by_name(glob[name]):
                by_name.append(name)
            else:
                params.append(Param(name, "global"))
        else:
            by_name.append(name)  # a builtin, or a global defined after the decoration
    return tuple(params), tuple(by_name), tuple(cond_structs)


# -- writes made through calls --------------------------------------------------------------------


def _body_context(scope: _Scope) -> effects.Context:
    """Names as the loop body sees them, with the classes of variables known when decorating:
    an argument annotated with a class (``s: State``), a variable assigned ``S(...)`` once
    before the loop."""
    context = effects.Context.of(scope.source.function, frozenset(scope.function_locals))
    outer = effects.Context.of(scope.source.function)

    def class_of(node: Any) -> type | None:
        if isinstance(node, gast.Constant) and isinstance(node.value, str):
            node = gast.Name(id=node.value, ctx=gast.Load(), annotation=None, type_comment=None)
        if isinstance(node, gast.Name) and node.id.isidentifier():
            known, value = outer.value(node.id)
            if known and isinstance(value, type):
                return value
        return None

    args = scope.source.node.args
    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
        cls = class_of(arg.annotation) if arg.annotation is not None else None
        if cls is not None:
            context.classes[arg.id] = cls
    assigned: dict[str, list[Any]] = {}
    for stmt in statements(scope.pre):
        for name in _statement_binds(stmt):
            assigned.setdefault(name, []).append(stmt)
    for name, stmts in assigned.items():
        (stmt,) = stmts if len(stmts) == 1 else (None,)
        if isinstance(stmt, gast.Assign) and isinstance(stmt.value, gast.Call):
            cls = class_of(stmt.value.func)
            if cls is not None and name not in scope.arguments:
                context.classes[name] = cls
    return context


def _call_writes(scope: _Scope, writes: _Writes) -> list[effects.BodyWrite]:
    """Writes the body makes through calls; a helper's field writes become struct fields.

    Returns the writes that are not plain field writes (element writes, container mutation),
    for `_check_call_writes` to judge once the carried variables are known; raises at once for
    what cannot be modelled.
    """
    source = scope.source
    found, problems = effects.body_effects(source, scope.body, _body_context(scope))
    if problems:
        _refuse_unmodelled(source, problems[0])
    others: list[effects.BodyWrite] = []
    for write in found:
        attr = write.effect.field
        if write.fresh and (attr is not None or write.effect.kind == "mutation"):
            continue  # a new object of this iteration: its fields and items are its own
        if attr is None or write.root == scope.index:
            others.append(write)
            continue
        loc = Location(write.root, attr)
        if loc not in writes.fields:
            writes.fields[loc] = write.stmt
            if write.effect.helper != source.function.__qualname__:
                writes.helpers[loc] = f"{write.effect.helper} at {write.effect.where}"
    writes.fields = dict(
        sorted(writes.fields.items(), key=lambda kv: (kv[1].lineno, kv[1].col_offset))
    )
    return others


def _refuse_unmodelled(source: FunctionSource, found: effects.BodyProblem) -> None:
    problem, stmt = found.problem, found.stmt
    own = problem.helper == source.function.__qualname__
    who = "the loop body" if own else f"{problem.helper}, called at {source.where(stmt)},"
    raise source.error(
        f"{who} {problem.reason}: `{problem.text}` ({problem.where}). The checkpointed loop "
        "runs the body (and what it calls) again when it recomputes a step, and carries only "
        "the variables the body assigns and the fields of its structs, so this write cannot be "
        "carried. Instead, return the new value and assign it in the loop body "
        "(`x = helper(x)` or `s.field = helper(s)`), or pass the object as an argument and "
        "assign its fields.",
        stmt,
    )


def _check_call_writes(
    scope: _Scope, calls: list[effects.BodyWrite], writes: _Writes, carried_vars: list[str]
) -> None:
    """Element writes and container mutation through calls, on objects from outside the step."""
    source = scope.source
    for write in calls:  # in place on an array: autograd cannot differentiate it, even on a new one
        effect = write.effect
        target = effect.target(write.root)
        own = effect.helper == source.function.__qualname__
        if own and effect.kind == "mutation":
            how = f"changes {target} in place"
        elif own:
            how = f"writes {target} in place"
        else:
            how = (
                f"calls {effect.helper}, which writes {target} in place at {effect.where}: "
                f"`{effect.text}`"
            )
        if effect.kind == "mutation":
            instead = (
                "Instead of growing a container, preallocate an array before the loop and "
                "assign its elements in the body (`traj = np.zeros(n)` before the loop, "
                "`traj[i] = x` inside), or keep in a variable what the code after the loop needs."
            )
        else:
            instead = (
                "Instead of writing in place, compute a new value and assign it in the loop body "
                f"(`{target.split('[')[0]} = ...`; for one element, `a[k] = v` in the body itself "
                "is rewritten into a functional update)."
            )
        why = (
            "autograd cannot differentiate in-place writes (a traced array cannot be written "
            "into, so under grad the plain loop itself would compute something else)"
            if write.fresh
            else f"{write.root} holds an object from outside the step (the state it was given, "
            "or a value from before the loop): a checkpointed loop carries a state of fixed "
            "structure that it stores and runs again from, and autograd cannot differentiate "
            "in-place writes"
        )
        raise source.error(
            f"`{source.header_text(write.stmt)}` at {source.where(write.stmt)} {how}. {why}. "
            f"{instead}",
            write.stmt,
        )


def _check_stale_closures(
    source: FunctionSource, pre: list[Any], body: list[Any], carried: set[str]
) -> None:
    """A function defined before the loop that reads a carried variable would see a stale value.

    In the plain loop ``rhs = lambda: -k * y`` reads the current ``y`` through its closure cell;
    inside the step ``y`` is the step's own variable and the cell still holds the value from
    before the loop.
    """
    defined: dict[str, Any] = {}
    for stmt in statements(pre):
        if isinstance(stmt, (gast.FunctionDef, gast.AsyncFunctionDef)):
            defined[stmt.name] = stmt
        elif isinstance(stmt, gast.Assign) and isinstance(stmt.value, gast.Lambda):
            for target in stmt.targets:
                if isinstance(target, gast.Name):
                    defined[target.id] = stmt.value
    if not defined:
        return
    used = {n.id for n in reads(body)}
    for name, node in defined.items():
        if name not in used:
            continue
        stale = sorted({n.id for n in reads(node)} & carried)
        if stale:
            var = stale[0]
            raise source.error(
                f"{name}, defined at {source.where(node)} before the checkpointed loop, reads "
                f"{', '.join(stale)}, which the loop carries; called inside the loop it would see "
                f"the value {var} had before the loop, not the current one (the loop body becomes "
                f"a step function with its own {var}). Instead of reading {var} from the "
                f"enclosing function, pass it as an argument: `{name}({var}, ...)`.",
                node,
            )


def _alias_pairs(stmt: Any) -> list[tuple[Location, Location, bool, Any, Any]]:
    """``(target, source, is_view, target node, value node)`` for each assignment in ``stmt`` that
    makes a second name for an object (``a = b``, ``a = b[1:]``, ``a, c = b, d``)."""
    if not isinstance(stmt, gast.Assign):
        return []
    pairs: list[tuple[Any, Any]] = []
    value = stmt.value
    for target in stmt.targets:
        if isinstance(target, (gast.Tuple, gast.List)) and isinstance(
            value, (gast.Tuple, gast.List)
        ):
            if len(target.elts) == len(value.elts):
                pairs.extend(zip(target.elts, value.elts))
        else:
            pairs.append((target, value))
    assigned = {_ref(t) for t, _ in pairs}
    out = []
    for target, value in pairs:
        source, view = value, False
        while isinstance(source, gast.Subscript):
            source, view = source.value, True
        ref_t, ref_s = _ref(target), _ref(source)
        if ref_t is None or ref_s is None or ref_t == ref_s:
            continue
        if ref_s in assigned and not view:
            continue  # a swap or rotation: the names still hold distinct objects
        out.append((ref_t, ref_s, view, target, value))
    return out


def _sliced(value: Any) -> bool:
    """True when ``value`` indexes with a slice somewhere (``x[1:]``, ``x[:, 0]``): a view."""
    while isinstance(value, gast.Subscript):
        index = value.slice
        parts = index.elts if isinstance(index, gast.Tuple) else [index]
        if any(isinstance(part, gast.Slice) for part in parts):
            return True
        value = value.value
    return False


def _indices(value: Any) -> int | None:
    """How many axes the subscripts of ``value`` index (None: an ellipsis, unknown)."""
    count = 0
    while isinstance(value, gast.Subscript):
        index = value.slice
        parts = index.elts if isinstance(index, gast.Tuple) else [index]
        for part in parts:
            if isinstance(part, gast.Constant) and part.value is Ellipsis:
                return None
        count += len(parts)
        value = value.value
    return count


def _fewer_indices(alias: Any, update: Any) -> bool:
    """True when ``update`` (an element-update target) indexes more axes than ``alias`` reads:
    the array then has more axes than the alias indexes, so the alias is a view of it
    (``row = grid[0]`` before ``grid[0, 1] = v``)."""
    if update is None:
        return False
    mine, theirs = _indices(alias), _indices(update)
    return mine is not None and theirs is not None and theirs > mine


def _ref(node: Any) -> Location | None:
    if isinstance(node, gast.Name):
        return Location(node.id)
    if isinstance(node, gast.Attribute) and isinstance(node.value, gast.Name):
        return Location(node.value.id, node.attr)
    return None


def _check_aliases(
    source: FunctionSource,
    pre: list[Any],
    body: list[Any],
    writes: _Writes,
    read_after: set[str] = frozenset(),  # type: ignore[assignment]
) -> list[ViewCheck]:
    """An element update through one of two names for the same array would only change one.

    In the plain loop ``last = nxt`` followed by ``nxt[i] = v`` changes ``last`` too; the
    rewritten update builds a new array for ``nxt`` and leaves ``last`` alone. Rather than compute
    something else silently, ask for an explicit copy. ``a = x[i]`` may be a number or a row:
    where ``a`` can be read after a write of ``x``, the run-time checks to make are returned.
    """
    updated = writes.element_updates
    # `x += v` writes into an array x as well (rewritten as `x = x + v`, a new array)
    augmented = {
        target_location(source, stmt.target): stmt
        for stmt in statements(body)
        if isinstance(stmt, gast.AugAssign) and isinstance(stmt.target, (gast.Name, gast.Attribute))
    }
    if not updated and not augmented:
        return []
    # An alias made before the loop of an array the loop updates by `+=` matters only when the
    # other name is read afterwards (`u = u0` before `u += ...` is the common way to start);
    # likewise a slice taken before the loop of an array it updates element by element.
    before = {id(stmt) for stmt in statements(pre)}
    read_later = read_after | {n.id for n in reads(body)}
    checks: list[ViewCheck] = []
    placed_body = stale.placed(body)
    for stmt in statements(pre + body):
        for ref_t, ref_s, view, target, value in _alias_pairs(stmt):
            if ref_t in updated or ref_t in augmented:
                other, mine = ref_s, ref_t
            elif ref_s in updated or ref_s in augmented:
                # a slice is a view whatever the array's shape; an integer index may be a scalar,
                # unless the update indexes the same array with more axes than the alias does
                other, mine = ref_t, ref_s
                if view and not _sliced(value) and not _fewer_indices(value, updated.get(ref_s)):
                    check = _view_check(
                        source,
                        stmt,
                        target,
                        value,
                        ref_s,
                        updated,
                        augmented,
                        placed_body,
                        read_later if id(stmt) in before else None,
                        read_after,
                    )
                    checks += [check] if check is not None else []
                    continue
            else:
                continue
            # (an alias of an array updated element by element is refused wherever it is made,
            # but a slice of it or an alias of one updated by `+=` only when the other name is
            # read later)
            relaxed = mine not in updated or (view and mine == ref_s)
            if (
                relaxed
                and id(stmt) in before
                and (other.name not in read_later or other.name == mine.name)
            ):
                continue
            if mine == ref_t and mine not in updated and view and not _sliced(value):
                # `a = x[i]` then `a += v`: a new number when x[i] is one, a write into x when
                # it is a row; the step checks which as it runs
                update = augmented[mine]
                shown = f"`{_text(update)}`"
                check = _new_view_check(
                    source, stmt, target, value, shown, update, any_container=True
                )
                checks.append(check)
                continue
            raise _alias_error(
                source, stmt, (ref_t, ref_s, view, target, value), mine, updated, augmented
            )
    return checks


def _alias_error(
    source: FunctionSource,
    stmt: Any,
    pair: tuple[Location, Location, bool, Any, Any],
    mine: Location,
    updated: dict[Location, Any],
    augmented: dict[Location, Any],
) -> Exception:
    """The error for the alias ``pair`` of `_alias_pairs`, made by ``stmt``, of ``mine``, an
    array the loop updates element by element (``updated``) or by ``+=`` (``augmented``)."""
    ref_t, ref_s, view, target, value = pair
    other = ref_s if mine == ref_t else ref_t
    how = "a view of" if view else "the same array as"
    if mine in updated:
        where = source.where(updated[mine])
        write = f"`{mine}[...] = ...` at {where} updates it element by element"
    else:
        update = augmented[mine]
        write = (
            f"`{_text(update)}` at {source.where(update)} updates it in place (an "
            "augmented assignment writes into an array)"
        )
    return source.error(
        f"`{_text(stmt)}` at {source.where(stmt)} makes {ref_t} {how} {ref_s}, and "
        f"{write}. In the plain loop that write changes both {mine} and {other}; in the "
        "checkpointed loop the update builds a new array, so only "
        f"{mine} would change. Instead of sharing the array, copy it: "
        f"`{ref_t} = np.array({_text(value)})`.",
        target,
    )


def _view_check(
    source: FunctionSource,
    stmt: Any,
    target: Any,
    value: Any,
    array: Location,
    updated: dict[Location, Any],
    augmented: dict[Location, Any],
    body: list[stale.Placed],
    read_later: set[str] | None,
    read_after: set[str],
) -> ViewCheck | None:
    """The run-time check after ``a = x[i]`` (``stmt``), or None when ``a`` cannot be read
    after a write of ``x``. ``read_later`` is given for a statement before the loop: the names
    read in the loop or after it."""
    name = _ref(target).name  # type: ignore[union-attr]

    def writes(node: Any) -> bool:
        if isinstance(node, gast.AugAssign) and isinstance(
            node.target, (gast.Name, gast.Attribute)
        ):
            return _ref(node.target) == array
        return any(
            isinstance(t, gast.Subscript) and target_location(source, t) == array
            for t in _targets(node)
        )

    if read_later is not None:
        if name not in read_later:
            return None
    elif not stale.read_after_write(stmt, name, body, writes, name in read_after):
        return None
    # `x[k] += v` adds into an array x[k] holds, whatever x is (a list of arrays too)
    into = [
        p.stmt
        for p in body
        if isinstance(p.stmt, gast.AugAssign)
        and isinstance(p.stmt.target, gast.Subscript)
        and target_location(source, p.stmt.target) == array
    ]
    if into:
        shown = f"`{_text(into[0])}`"
        return _new_view_check(source, stmt, target, value, shown, into[0], any_container=True)
    if array in updated:
        write = updated[array]
        shown = f"`{_text(write)} = ...`"
        return _new_view_check(source, stmt, target, value, shown, write)
    write = augmented[array]
    return _new_view_check(source, stmt, target, value, f"`{_text(write)}`", write)


def _new_view_check(
    source: FunctionSource,
    stmt: Any,
    target: Any,
    value: Any,
    shown: str,
    write: Any,
    *,
    any_container: bool = False,
) -> ViewCheck:
    """The check after ``target = value`` (``stmt``) for the write ``write``, shown as ``shown``.

    ``any_container``: the write adds into the object ``target`` holds, so an array is refused
    whatever holds it (an item of a list as well as a row of an array)."""
    base = value
    while isinstance(base, gast.Subscript):
        base = base.value
    return ViewCheck(
        position=(stmt.lineno, stmt.col_offset),
        alias=target,
        array=None if any_container else base,
        made=f"`{_text(stmt)}` at {source.where(stmt)}",
        write=f"{shown} at {source.where(write)}",
        fix=f"{_text(target)} = np.array({_text(value)})",
    )
