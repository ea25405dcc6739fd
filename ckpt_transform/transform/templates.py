"""Templates of the generated code, written as plain Python functions.

Each template's parameters are its placeholders; its body is the code it stands for. `fill`
parses a template's source and replaces every placeholder:

* by a name (a ``str``) or an expression node, where it is used as a value or a target;
* by a list of statements, where it stands alone as a statement (``body``);
* by a list of names, where it is a parameter of a def (``params``);
* by a list of keyword nodes, where it is ``**keywords`` in a call;
* by a list of expressions, where it is ``*args`` in a call or a tuple element;
* by a ``str``, where it is the name of a def.

`fill` fails loudly when the replacements do not match the template's parameters exactly, so a
template and its caller cannot drift apart. The templates stay valid Python that linters read.
"""

from __future__ import annotations

import copy
import functools
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

import gast

__all__ = ["fill"]

# ruff: noqa: F841, B018  (templates assign names and evaluate expressions for their shape only)


def step_function(name, _ckpt_state, index, params, unpack, prologue, body, result):
    def name(_ckpt_state, index, params):
        unpack = _ckpt_state
        prologue
        body
        return result


def cond_function(name, _ckpt_state, params, unpack, prologue, body, result):
    def name(_ckpt_state, params):
        unpack = _ckpt_state
        prologue
        body
        return result


def struct_view(_ckpt, struct, fields, keywords):
    struct = _ckpt.struct_view(fields, **keywords)


def checkpointed_for(_ckpt, targets, step, state, steps, _ckpt_scheme, params, _ckpt_report):
    targets = _ckpt.checkpointed_for(
        step, state, steps, _ckpt_scheme, params=params, report=_ckpt_report
    )


def checkpointed_while(_ckpt, targets, cond, step, state, _ckpt_scheme, params, _ckpt_report):
    targets = _ckpt.checkpointed_while(
        cond, step, state, _ckpt_scheme, params=params, report=_ckpt_report
    )


def other_fields(_ckpt, struct, names):
    _ckpt.other_fields(struct, *names)


def struct_update(_ckpt, struct, keywords):
    struct = _ckpt.struct_update(struct, **keywords)


def struct_set(_ckpt, struct, keywords):
    _ckpt.struct_set(struct, **keywords)


def not_a_view(_ckpt, alias, array, made, write, fix):
    _ckpt.not_a_view(alias, array, made, write, fix)


def keep_range(_ckpt_range, steps):
    _ckpt_range = steps


def last_index(_ckpt_range, index):
    if _ckpt_range:
        index = _ckpt_range[-1]


def setitem(_ckpt, array, key, value):
    _ckpt.setitem(array, key, value)


def jax_setitem(array, key, value):
    array.at[key].set(value)


def sliced_key(_ckpt, key):
    _ckpt.index[key]


# -- filling -------------------------------------------------------------------------------------


@functools.cache
def _parsed(template: Callable[..., Any]) -> tuple[tuple[str, ...], list[Any]]:
    source = textwrap.dedent(inspect.getsource(template))
    fdef = gast.parse(source).body[0]
    names = tuple(a.id for a in fdef.args.args)
    return names, fdef.body


def fill(template: Callable[..., Any], **replacements: Any) -> list[Any]:
    """The statements of ``template`` with its placeholders replaced.

    Raises
    ------
    ValueError
        When ``replacements`` does not name exactly the template's parameters.
    """
    names, body = _parsed(template)
    if set(replacements) != set(names):
        missing = sorted(set(names) - set(replacements))
        extra = sorted(set(replacements) - set(names))
        raise ValueError(
            f"template {template.__name__}{tuple(names)} filled with "
            f"{sorted(replacements)}: missing {missing}, unexpected {extra}"
        )
    filler = _Filler(replacements)
    out: list[Any] = []
    for stmt in copy.deepcopy(body):
        out.extend(filler.statement(stmt))
    return out


def fill_expression(template: Callable[..., Any], **replacements: Any) -> Any:
    """The expression of a template whose body is a single expression statement."""
    (stmt,) = fill(template, **replacements)
    if not isinstance(stmt, gast.Expr):
        raise ValueError(f"template {template.__name__} is not a single expression")
    return stmt.value


class _Filler(gast.NodeTransformer):
    def __init__(self, replacements: dict[str, Any]) -> None:
        self.replacements = replacements

    def statement(self, stmt: Any) -> list[Any]:
        if (
            isinstance(stmt, gast.Expr)
            and isinstance(stmt.value, gast.Name)
            and stmt.value.id in self.replacements
        ):
            value = self.replacements[stmt.value.id]
            if not isinstance(value, list):
                raise ValueError(f"placeholder {stmt.value.id} stands for statements: give a list")
            return copy.deepcopy(value)
        return [self.visit(stmt)]

    def _statements(self, stmts: list[Any]) -> list[Any]:
        out: list[Any] = []
        for stmt in stmts:
            out.extend(self.statement(stmt))
        return out

    def generic_visit(self, node: Any) -> Any:
        # Each template node is visited once; what replaces a placeholder is never visited, so a
        # user's name that happens to equal a placeholder is left alone.
        for field, old in gast.iter_fields(node):
            if isinstance(old, list):
                if field in ("body", "orelse", "finalbody"):
                    new = self._statements(old)
                else:
                    new = [self.visit(x) if isinstance(x, gast.AST) else x for x in old]
                setattr(node, field, new)
            elif isinstance(old, gast.AST):
                setattr(node, field, self.visit(old))
        return node

    def visit_FunctionDef(self, node: Any) -> Any:
        if node.name in self.replacements:
            node.name = self.replacements[node.name]
        args: list[Any] = []
        for arg in node.args.args:
            value = self.replacements.get(arg.id, arg.id)
            for name in value if isinstance(value, list) else [value]:
                args.append(
                    gast.Name(id=name, ctx=gast.Param(), annotation=None, type_comment=None)
                )
        node.args.args = args
        node.body = self._statements(node.body)
        return node

    def visit_Call(self, node: Any) -> Any:
        node.func = self.visit(node.func)
        args: list[Any] = []
        for arg in node.args:
            if isinstance(arg, gast.Starred) and _placeholder(arg.value, self.replacements):
                args.extend(copy.deepcopy(self.replacements[arg.value.id]))
            else:
                args.append(self.visit(arg))
        keywords: list[Any] = []
        for kw in node.keywords:
            if kw.arg is None and _placeholder(kw.value, self.replacements):
                keywords.extend(copy.deepcopy(self.replacements[kw.value.id]))
            else:
                kw.value = self.visit(kw.value)
                keywords.append(kw)
        node.args, node.keywords = args, keywords
        return node

    def visit_Name(self, node: Any) -> Any:
        if node.id not in self.replacements:
            return node
        value = self.replacements[node.id]
        if isinstance(value, str):
            return gast.Name(id=value, ctx=node.ctx, annotation=None, type_comment=None)
        if isinstance(value, gast.AST):
            value = copy.deepcopy(value)
            if hasattr(value, "ctx"):
                _set_ctx(value, node.ctx)
            return value
        raise ValueError(f"placeholder {node.id} used as a value: give a name or a node")


def _placeholder(node: Any, replacements: dict[str, Any]) -> bool:
    return isinstance(node, gast.Name) and node.id in replacements


def _set_ctx(node: Any, ctx: Any) -> None:
    """Give a target (a name, an attribute, a tuple of them) the context it is used in."""
    node.ctx = type(ctx)()
    if isinstance(node, (gast.Tuple, gast.List)):
        for elt in node.elts:
            _set_ctx(elt, ctx)
    elif isinstance(node, gast.Starred):
        _set_ctx(node.value, ctx)
