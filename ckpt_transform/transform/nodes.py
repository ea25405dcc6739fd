"""Small gast node builders: the only place, besides templates, where nodes are made by hand.

Comments cannot live in an AST, so a comment is carried as a marker statement (a string
constant starting with `COMMENT_MARK`) that `codegen` turns into a ``#`` line at the same
indentation.
"""

from __future__ import annotations

from typing import Any

import gast

__all__ = [
    "COMMENT_MARK",
    "VERBATIM_MARK",
    "attribute",
    "comment",
    "constant",
    "is_comment",
    "keyword",
    "load",
    "store",
    "tuple_of",
    "verbatim",
]

COMMENT_MARK = "@@ckpt-comment@@ "
VERBATIM_MARK = "@@ckpt-verbatim@@ "


def load(name: str) -> Any:
    return gast.Name(id=name, ctx=gast.Load(), annotation=None, type_comment=None)


def store(name: str) -> Any:
    return gast.Name(id=name, ctx=gast.Store(), annotation=None, type_comment=None)


def attribute(name: str, attr: str, ctx: Any = None) -> Any:
    return gast.Attribute(value=load(name), attr=attr, ctx=ctx or gast.Load())


def constant(value: Any) -> Any:
    return gast.Constant(value=value, kind=None)


def keyword(arg: str, value: Any) -> Any:
    return gast.keyword(arg=arg, value=value)


def tuple_of(elts: list[Any], ctx: Any = None) -> Any:
    return gast.Tuple(elts=list(elts), ctx=ctx or gast.Load())


def comment(text: str) -> Any:
    """A statement that codegen prints as ``# text`` (one line)."""
    return gast.Expr(value=constant(COMMENT_MARK + " ".join(text.split())))


def verbatim(key: int) -> Any:
    """A statement that codegen replaces by the user's own text number ``key``."""
    return gast.Expr(value=constant(f"{VERBATIM_MARK}{key}"))


def is_comment(stmt: Any) -> bool:
    return (
        isinstance(stmt, gast.Expr)
        and isinstance(stmt.value, gast.Constant)
        and isinstance(stmt.value.value, str)
        and stmt.value.value.startswith(COMMENT_MARK)
    )
