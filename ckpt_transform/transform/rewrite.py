"""Pass 4, rewrite: the loop body becomes a step function, the loop one call to the driver.

For ``sumheat`` with the loop ``for i in range(tsteps): <body>`` the result is a module holding one
function, ``_ckpt_scope``, that is never called: it only gives the functions defined inside it
their free names (``_ckpt``, the run-time support module; ``_ckpt_scheme``; ``_ckpt_report``; and
the closure variables of the original function). Inside it:

* ``sumheat_step(_ckpt_state, i, *params)``: unpacks the state, rebuilds each struct as a view
  (`ckpt_transform.runtime.support.struct_view`), runs the body, returns the new state;
* for a while loop, ``sumheat_cond(_ckpt_state, *params)``, the loop condition;
* ``sumheat`` itself: the statements before the loop, one call to ``checkpointed_for`` or
  ``checkpointed_while``, the struct fields written back, the statements after the loop.

The user's statements are kept as written, with two exceptions that the driver needs (a step
must not update its input in place, and autograd cannot differentiate in-place writes): an element
update ``x[i] = v`` becomes ``x = _ckpt.setitem(x, i, v)`` (``x = x.at[i].set(v)`` in a module
that works with JAX) and an augmented assignment ``x += v``
becomes ``x = x + v``; each such statement is preceded by a comment quoting the original.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import gast

from ckpt_transform.transform import nodes, templates
from ckpt_transform.transform.analysis import Location, LoopAnalysis, ViewCheck
from ckpt_transform.transform.naming import MACHINERY, Namer, identifiers
from ckpt_transform.transform.parse import FunctionSource, LoopChoice
from ckpt_transform.transform.text import expression_text as _text

__all__ = ["Rewritten", "rewrite"]

_M = MACHINERY


@dataclass(frozen=True)
class Rewritten:
    """The rewritten module and the names a reader (and the binder) needs."""

    module: Any
    function: str
    step: str
    cond: str | None
    freevars: tuple[str, ...]
    state_names: tuple[str, ...]  # the step's names for the state, in order
    param_names: tuple[str, ...]  # the step's parameter names after state and index
    verbatim: tuple[str, ...]  # the user's own text of unchanged statements, by marker key


class _Texts:
    """The user's text of statements kept unchanged, shown verbatim by codegen."""

    def __init__(self, source: FunctionSource) -> None:
        self.source = source
        self.texts: list[str] = []

    def keep(self, stmt: Any, *, docstring: bool = False) -> Any:
        """A marker for ``stmt``'s own text, or ``stmt`` itself when the text cannot move."""
        text = self.source.verbatim(stmt, docstring=docstring)
        if text is None:
            return stmt
        self.texts.append(text)
        return nodes.verbatim(len(self.texts) - 1)

    def keep_all(self, stmts: list[Any]) -> list[Any]:
        return [self.keep(s) for s in stmts]


@dataclass(frozen=True)
class _Names:
    """The generated functions' names and the step's names for the state and parameters."""

    step: str
    cond: str | None
    field_var: dict[Location, str]  # struct field -> the step's variable (`heat_Tnext`)
    fields_param: dict[str, str]  # struct -> the parameter holding its other fields
    state: tuple[str, ...]
    params: tuple[str, ...]

    @classmethod
    def of(cls, name: str, info: LoopAnalysis, namer: Namer) -> _Names:
        step_name = namer.step(name)
        cond_name = namer.cond(name) if info.kind == "while" else None
        field_var = {
            Location(s.name, f): namer.field(s.name, f) for s in info.structs for f in s.fields
        }
        fields_param = {s.name: namer.fields(s.name) for s in info.structs}
        return cls(
            step=step_name,
            cond=cond_name,
            field_var=field_var,
            fields_param=fields_param,
            state=tuple(field_var.get(loc, loc.name) for loc in info.state),
            params=tuple(
                fields_param[p.name] if p.origin == "struct" else p.name for p in info.params
            ),
        )

    def unpack(self) -> Any:
        return nodes.tuple_of([nodes.store(n) for n in self.state], gast.Store())

    def views(self, structs: list[Any]) -> list[Any]:
        """``heat = _ckpt.struct_view(heat_fields, Tnext=heat_Tnext, ...)`` for each struct."""
        out: list[Any] = []
        for s in structs:
            out += templates.fill(
                templates.struct_view,
                _ckpt=_M["support"],
                struct=s.name,
                fields=self.fields_param[s.name],
                keywords=[
                    nodes.keyword(f, nodes.load(self.field_var[Location(s.name, f)]))
                    for f in s.fields
                ],
            )
        return out


def rewrite(
    source: FunctionSource,
    loop: LoopChoice,
    info: LoopAnalysis,
    *,
    progress: bool = False,
    max_steps: int | None = None,
) -> Rewritten:
    """Build the module of generated functions (see the module docstring).

    ``progress`` and ``max_steps`` (a while loop's bound on its iterations) become keywords
    of the driver call when set.
    """
    keywords = {"progress": True} if progress else {}
    if max_steps is not None:
        keywords["max_steps"] = max_steps
    fdef = source.node
    function = source.function
    freevars = tuple(function.__code__.co_freevars)
    namer = Namer(identifiers(fdef) | set(freevars) | set(function.__code__.co_names))
    names = _Names.of(fdef.name, info, namer)
    texts = _Texts(source)
    functions = _step_functions(source, loop, info, names, texts)
    functions.append(
        _outer_function(
            source, loop, info, names.step, names.cond, names.field_var, keywords, texts
        )
    )
    module = gast.Module(body=[_scope(functions, freevars)], type_ignores=[])
    return Rewritten(
        module,
        fdef.name,
        names.step,
        names.cond,
        freevars,
        names.state,
        names.params,
        tuple(texts.texts),
    )


def _step_functions(
    source: FunctionSource, loop: LoopChoice, info: LoopAnalysis, names: _Names, texts: _Texts
) -> list[Any]:
    """The step function, and for a while loop the condition function."""
    result = nodes.tuple_of(
        [
            nodes.load(loc.name) if loc.attr is None else nodes.attribute(loc.name, loc.attr)
            for loc in info.state
        ]
    )
    rewriter = _Rewriter(source, texts, info.view_checks)
    body, _ = rewriter.statements(copy.deepcopy(loop.node.body))
    functions = templates.fill(
        templates.step_function,
        name=names.step,
        _ckpt_state=_M["state"],
        index=info.index or _M["iteration"],
        params=list(names.params),
        unpack=names.unpack(),
        prologue=names.views(list(info.structs)),
        body=[nodes.comment(f"loop body, {source.where_span(loop.node.body)}"), *body],
        result=result,
    )
    if names.cond is not None:
        cond_structs = [s for s in info.structs if s.name in info.cond_structs]
        functions += templates.fill(
            templates.cond_function,
            name=names.cond,
            _ckpt_state=_M["state"],
            params=list(names.params),
            unpack=names.unpack(),
            prologue=names.views(cond_structs),
            body=[nodes.comment(f"loop condition, {source.where(loop.node.test)}")],
            result=copy.deepcopy(loop.node.test),
        )
    return functions


def _scope(functions: list[Any], freevars: tuple[str, ...]) -> Any:
    """``def _ckpt_scope(_ckpt, _ckpt_scheme, _ckpt_report, *freevars): <functions>``."""
    return gast.FunctionDef(
        name=_M["scope"],
        args=gast.arguments(
            args=[
                gast.Name(id=n, ctx=gast.Param(), annotation=None, type_comment=None)
                for n in (_M["support"], _M["scheme"], _M["report"], *freevars)
            ],
            posonlyargs=[],
            vararg=None,
            kwonlyargs=[],
            kw_defaults=[],
            kwarg=None,
            defaults=[],
        ),
        body=functions,
        decorator_list=[],
        returns=None,
        type_comment=None,
        type_params=[],
    )


def _outer_function(
    source: FunctionSource,
    loop: LoopChoice,
    info: LoopAnalysis,
    step_name: str,
    cond_name: str | None,
    field_var: dict[Location, str],
    keywords: dict[str, Any],
    texts: _Texts,
) -> Any:
    fdef = copy.deepcopy(source.node)
    pre = fdef.body[: loop.position]
    post = fdef.body[loop.position + 1 :]
    node = fdef.body[loop.position]

    head: list[Any] = []
    if pre and _is_docstring(pre[0]):
        head, pre = [texts.keep(pre[0], docstring=True)], pre[1:]
    if pre:
        # the statements before the loop unchanged, with a run-time check after `a = x[i]`
        # where it may give a row that the loop changes
        kept, _ = _Rewriter(source, texts, info.view_checks, only_checks=True).statements(pre)
        head += [nodes.comment(f"before the loop, {source.where_span(pre)}"), *kept]

    targets = nodes.tuple_of(
        [nodes.store(field_var.get(loc, loc.name)) for loc in info.state], gast.Store()
    )
    initial = nodes.tuple_of(
        [
            nodes.load(loc.name) if loc.attr is None else nodes.attribute(loc.name, loc.attr)
            for loc in info.state
        ]
    )
    call_site = [nodes.comment(f"the loop, {source.where(node)}: {source.header_text(node)}")]
    steps: Any = node.iter if cond_name is None else None
    if info.index_read_after:
        call_site += templates.fill(templates.keep_range, _ckpt_range=_M["range"], steps=steps)
        steps = nodes.load(_M["range"])
    call_site += _driver_call(info, targets, initial, steps, step_name, cond_name, keywords)
    for struct in info.structs:
        fields = [
            nodes.keyword(f, nodes.load(field_var[Location(struct.name, f)])) for f in struct.fields
        ]
        template = templates.struct_update if struct.rebindable else templates.struct_set
        call_site += templates.fill(
            template, _ckpt=_M["support"], struct=struct.name, keywords=fields
        )
    if info.index_read_after:
        call_site += templates.fill(templates.last_index, _ckpt_range=_M["range"], index=info.index)
    tail = []
    if post:
        tail = [nodes.comment(f"after the loop, {source.where_span(post)}"), *texts.keep_all(post)]
    fdef.body = head + call_site + tail
    fdef.decorator_list = []
    return fdef


def _driver_call(
    info: LoopAnalysis,
    targets: Any,
    initial: Any,
    steps: Any,
    step_name: str,
    cond_name: str | None,
    keywords: dict[str, Any],
) -> list[Any]:
    """The statement that runs the loop: ``state = checkpointed_for(...)`` (or ``_while``)."""
    params = nodes.tuple_of([_param_value(p, info) for p in info.params])
    if cond_name is None:
        call = templates.fill(
            templates.checkpointed_for,
            _ckpt=_M["support"],
            targets=targets,
            step=step_name,
            state=initial,
            steps=steps,
            _ckpt_scheme=_M["scheme"],
            params=params,
            _ckpt_report=_M["report"],
        )
    else:
        call = templates.fill(
            templates.checkpointed_while,
            _ckpt=_M["support"],
            targets=targets,
            cond=cond_name,
            step=step_name,
            state=initial,
            _ckpt_scheme=_M["scheme"],
            params=params,
            _ckpt_report=_M["report"],
        )
    for name, value in keywords.items():
        call[0].value.keywords.append(nodes.keyword(name, nodes.constant(value)))
    if info.refill:
        refill = nodes.tuple_of([nodes.constant(k) for k in info.refill])
        call[0].value.keywords.append(nodes.keyword("refill", refill))
    return call


def _param_value(param: Any, info: LoopAnalysis) -> Any:
    if param.origin != "struct":
        return nodes.load(param.name)
    (struct,) = [s for s in info.structs if s.name == param.name]
    return templates.fill_expression(
        templates.other_fields,
        _ckpt=_M["support"],
        struct=struct.name,
        names=[nodes.constant(f) for f in struct.fields],
    )


def _is_docstring(stmt: Any) -> bool:
    return (
        isinstance(stmt, gast.Expr)
        and isinstance(stmt.value, gast.Constant)
        and isinstance(stmt.value.value, str)
    )


class _Rewriter:
    """Element updates and augmented assignments of the body, made functional.

    Every statement left unchanged (and holding nothing that changed) is shown in the user's own
    text; a compound statement holding a rewritten one is unparsed around it.
    """

    def __init__(
        self,
        source: FunctionSource,
        texts: _Texts,
        view_checks: tuple[ViewCheck, ...] = (),
        *,
        only_checks: bool = False,
    ) -> None:
        self.source = source
        self.texts = texts
        self.jax = _uses_jax(source.function)
        # JAX arrays are never written in place, so an element of one is never a changing view
        self.checks = {} if self.jax else {c.position: c for c in view_checks}
        self.only_checks = only_checks  # statements before the loop: add checks, rewrite nothing

    def statements(self, stmts: list[Any], *, elif_chain: bool = False) -> tuple[list[Any], bool]:
        out: list[Any] = []
        changed = False
        for stmt in stmts:
            if self.only_checks:
                nested = isinstance(stmt, (gast.FunctionDef, gast.AsyncFunctionDef, gast.ClassDef))
                new, stmt_changed = [stmt], not nested and self._children(stmt)
            else:
                new, stmt_changed = self.statement(stmt)
            changed |= stmt_changed
            if not stmt_changed and not elif_chain:
                new = [self.texts.keep(n) for n in new]
            out.extend(new)
            check = self.checks.get(
                (getattr(stmt, "lineno", None), getattr(stmt, "col_offset", None))
            )
            if check is not None:
                out.extend(_view_check(check))
                changed = True
        return out, changed

    def _children(self, stmt: Any) -> bool:
        """Rewrite the statement lists inside a compound statement; True when any changed."""
        changed = False
        for field in ("body", "orelse", "finalbody"):
            value = getattr(stmt, field, None)
            if isinstance(value, list) and value:
                # `elif` is an If alone in an orelse: its own text starts with "elif"
                elif_chain = (
                    field == "orelse"
                    and isinstance(stmt, gast.If)
                    and len(value) == 1
                    and isinstance(value[0], gast.If)
                )
                new, field_changed = self.statements(value, elif_chain=elif_chain)
                setattr(stmt, field, new)
                changed |= field_changed
        for handler in getattr(stmt, "handlers", None) or []:
            handler.body, handler_changed = self.statements(handler.body)
            changed |= handler_changed
        for case in getattr(stmt, "cases", None) or []:
            case.body, case_changed = self.statements(case.body)
            changed |= case_changed
        return changed

    def statement(self, stmt: Any) -> tuple[list[Any], bool]:
        if isinstance(stmt, (gast.FunctionDef, gast.AsyncFunctionDef, gast.ClassDef)):
            return [stmt], False  # a nested function is ordinary code; its writes are its own
        original = copy.deepcopy(stmt)
        if self._children(stmt):
            return [stmt], True
        self._reject_element_targets(stmt)
        if isinstance(stmt, gast.Assign) and isinstance(stmt.targets[0], gast.Subscript):
            new = self._update(stmt.targets[0], stmt.value)
        elif isinstance(stmt, gast.AugAssign):
            current = copy.deepcopy(stmt.target)
            _to_load(current)
            value = gast.BinOp(left=current, op=stmt.op, right=stmt.value)
            if isinstance(stmt.target, gast.Subscript):
                new = self._update(stmt.target, value)
            else:
                new = gast.Assign(targets=[stmt.target], value=value, type_comment=None)
        else:
            return [original], False
        text = self.source.own_text(original)
        shown = text if text is not None and "\n" not in text else _text(original)
        notes = [nodes.comment(c.lstrip("#").strip()) for c in self.source.comments_above(original)]
        notes.append(nodes.comment(f"rewritten from {self.source.where(original)}: {shown}"))
        return [*notes, new], True

    def _update(self, target: Any, value: Any) -> Any:
        """``a[k1][k2] = v`` -> ``a = setitem(a, k1, setitem(a[k1], k2, v))``."""
        while isinstance(target, gast.Subscript):
            array = copy.deepcopy(target.value)
            _to_load(array)
            if self.jax:  # JAX arrays are immutable: ``a = a.at[k].set(v)``
                value = templates.fill_expression(
                    templates.jax_setitem, array=array, key=copy.deepcopy(target.slice), value=value
                )
            else:
                value = templates.fill_expression(
                    templates.setitem,
                    _ckpt=_M["support"],
                    array=array,
                    key=_key(target.slice),
                    value=value,
                )
            target = target.value
        target = copy.deepcopy(target)
        target.ctx = gast.Store()
        return gast.Assign(targets=[target], value=value, type_comment=None)

    def _reject_element_targets(self, stmt: Any) -> None:
        """Element updates are rewritten only as ``a[k] = v`` or ``a[k] op= v`` statements."""
        if isinstance(stmt, gast.Assign):
            if len(stmt.targets) == 1 and isinstance(stmt.targets[0], gast.Subscript):
                return
            targets = stmt.targets
        elif isinstance(stmt, gast.AugAssign):
            return
        elif isinstance(stmt, gast.AnnAssign):
            targets = [stmt.target]
        elif isinstance(stmt, (gast.For, gast.AsyncFor)):
            targets = [stmt.target]
        elif isinstance(stmt, (gast.With, gast.AsyncWith)):
            targets = [i.optional_vars for i in stmt.items if i.optional_vars is not None]
        else:
            return
        for target in targets:
            for child in gast.walk(target):
                if isinstance(child, gast.Subscript) and isinstance(child.ctx, gast.Store):
                    raise self.source.error(
                        f"`{_text(stmt)}` at {self.source.where(stmt)} writes an element as part "
                        "of a larger assignment; inside the checkpointed loop element updates are "
                        "rewritten into functional updates one statement at a time. Instead, "
                        f"write `{_text(child)} = ...` as a statement of its own.",
                        stmt,
                    )


def _view_check(check: ViewCheck) -> list[Any]:
    """``_ckpt.not_a_view(a, x, ...)`` after ``a = x[i]``, with a comment saying why."""
    alias = _text(check.alias)
    if check.array is None:
        why = (
            f"refused if {alias} is an array, which the write below changes in the plain loop only"
        )
    else:
        array = _text(check.array)
        why = (
            f"refused if {alias} is a row of {array}, which a write of {array} changes in the "
            "plain loop only"
        )
    return [
        nodes.comment(why),
        *templates.fill(
            templates.not_a_view,
            _ckpt=_M["support"],
            alias=_loaded(check.alias),
            array=nodes.constant(None) if check.array is None else _loaded(check.array),
            made=nodes.constant(check.made),
            write=nodes.constant(check.write),
            fix=nodes.constant(check.fix),
        ),
    ]


def _uses_jax(function: Any) -> bool:
    """True when the function's module works with JAX: it binds ``jax`` or ``jax.numpy`` (and
    not ``autograd.numpy``, which keeps the autograd form)."""
    modules = [getattr(v, "__name__", "") for v in getattr(function, "__globals__", {}).values()]
    roots = {m.split(".")[0] for m in modules if isinstance(m, str)}
    return "jax" in roots and "autograd.numpy" not in modules


def _key(index: Any) -> Any:
    """The key of a subscript as a value: slices go through ``_ckpt.index[...]``."""
    has_slice = isinstance(index, gast.Slice) or (
        isinstance(index, gast.Tuple) and any(isinstance(e, gast.Slice) for e in index.elts)
    )
    if not has_slice:
        return copy.deepcopy(index)
    return templates.fill_expression(
        templates.sliced_key, _ckpt=_M["support"], key=copy.deepcopy(index)
    )


def _loaded(node: Any) -> Any:
    """A copy of an expression, to be read."""
    node = copy.deepcopy(node)
    _to_load(node)
    return node


def _to_load(node: Any) -> None:
    node.ctx = gast.Load()
