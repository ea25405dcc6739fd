"""Passes 5 and 6, codegen and compile: readable text, then code objects bound like the original.

`generate` unparses the rewritten module (gast -> ast -> `ast.unparse`), turns comment markers
into ``#`` lines, splits a long call into the run time over several lines, and puts a header on
top. `compile_source` compiles exactly that text under a name registered in `linecache`
(``<ckpt_transform generated: sumheat at heat.py:27>``), so tracebacks, `inspect.getsource` and
pdb show the generated code. `bind` builds the functions from the compiled code objects with the
original function's globals (live: a global assigned later is seen), its closure cells (live: the
generated function reads their current values) and its defaults. The scope function that holds
them in the text is never called; it only makes the machinery names and the closure variables
free names of the functions inside it.
"""

from __future__ import annotations
import __future__

import ast
import builtins
import linecache
import re
import textwrap
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gast

from ckpt_transform.transform.analysis import LoopAnalysis
from ckpt_transform.transform.naming import MACHINERY
from ckpt_transform.transform.nodes import COMMENT_MARK, VERBATIM_MARK
from ckpt_transform.transform.parse import FunctionSource
from ckpt_transform.transform.rewrite import Rewritten
from ckpt_transform.transform.text import expression_text

__all__ = ["Bound", "Compiled", "bind", "compile_source", "expression_text", "generate", "header"]

LINE_LENGTH = 100


def scheme_text(scheme: Any) -> str:
    """``repr(scheme)``, unless it would hold a memory address (the text must not vary by run)."""
    text = repr(scheme)
    return type(scheme).__name__ if re.search(r" at 0x[0-9a-fA-F]+", text) else text


def header(
    source: FunctionSource, info: LoopAnalysis, rewritten: Rewritten, scheme: str, loop_node: Any
) -> list[str]:
    """The comment lines on top of the generated source: where from, scheme, state, parameters."""
    name = rewritten.function
    driver = "checkpointed_for" if info.kind == "for" else "checkpointed_while"
    origin = f"{source.short_filename}:{source.file_line(source.node)}"
    params = []
    for param, step_name in zip(info.params, rewritten.param_names):
        if param.origin == "struct":
            params.append(f"{step_name} (the other fields of {param.name})")
        else:
            params.append(f"{param.name} ({param.origin})")
    state = [str(loc) for loc in info.state]
    glob = source.function.__globals__
    by_name = [n for n in info.by_name if n in glob or not hasattr(builtins, n)]
    lines = [
        f"{name} ({origin}), rewritten by ckpt_transform.checkpoint_struct.",
        f"The loop at {source.where(loop_node)} is one call to {driver}; this text is what runs.",
        f"scheme:     {scheme}",
        f"state:      {', '.join(state)}",
        f"parameters: {', '.join(params) or 'none'}",
        f"by name:    {', '.join(by_name) or 'none'}",
        *[f"helpers:    {loc} is assigned by {helper}" for loc, helper in info.helper_writes],
        "",
        f"{MACHINERY['scope']} is never called: it gives the functions inside it their free "
        f"names. They are built from their compiled code with the globals, closure cells and "
        f"defaults of {name}.",
    ]
    out: list[str] = []
    for line in lines:
        if not line:
            out.append("#")
            continue
        indent = "#             " if line[:11].endswith(": ") or ":  " in line[:12] else "# "
        out += textwrap.wrap(
            line,
            width=LINE_LENGTH,
            initial_indent="# ",
            subsequent_indent=indent,
            break_on_hyphens=False,
        )
    return out


def generate(rewritten: Rewritten, header_lines: list[str]) -> str:
    """The final source text: header, then the unparsed module with comments restored."""
    tree = gast.gast_to_ast(rewritten.module)
    ast.fix_missing_locations(tree)
    body: list[str] = []
    for line in ast.unparse(tree).splitlines():
        if not line.strip() and body and body[-1].endswith(":"):
            continue  # ast.unparse puts a blank line before a def, even first in a block
        verbatim = _marker(line, VERBATIM_MARK)
        if verbatim is not None:
            indent = line[: len(line) - len(line.lstrip())]
            body += [indent + t if t else t for t in rewritten.verbatim[int(verbatim)].split("\n")]
            continue
        marker = _marker(line, COMMENT_MARK)
        if marker is not None:
            indent = line[: len(line) - len(line.lstrip())]
            body += textwrap.wrap(
                marker,
                width=LINE_LENGTH,
                initial_indent=f"{indent}# ",
                subsequent_indent=f"{indent}#     ",
                break_on_hyphens=False,
                break_long_words=False,
            )
        else:
            body.extend(_wrap(_tidy(line)))
    return "\n".join([*header_lines, "", "", *body]) + "\n"


def _marker(line: str, mark: str) -> str | None:
    """The payload of a marker statement on this line, if it is one."""
    stripped = line.strip()
    if mark not in stripped or stripped[:1] not in "'\"":
        return None
    try:
        value = ast.literal_eval(stripped)
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, str) and value.startswith(mark):
        return value[len(mark) :]
    return None


def _one_statement(line: str) -> ast.stmt | None:
    """The simple statement on ``line``, or None (a block header, a blank line, a comment)."""
    try:
        body = ast.parse(line.strip()).body
    except SyntaxError:
        return None
    return body[0] if len(body) == 1 else None


def _tidy(line: str) -> str:
    """Two spellings of ast.unparse that black would not write: ``u, = s`` and
    ``return (a, b)``; they become ``(u,) = s`` and ``return a, b``."""
    stmt = _one_statement(line)
    indent = line[: len(line) - len(line.lstrip())]
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        target = stmt.targets[0]
        if isinstance(target, ast.Tuple) and len(target.elts) == 1:
            return f"{indent}({ast.unparse(target.elts[0])},) = {ast.unparse(stmt.value)}"
    if isinstance(stmt, ast.Return) and isinstance(stmt.value, ast.Tuple):
        elts = stmt.value.elts
        if len(elts) > 1 and not any(isinstance(e, ast.Starred) for e in elts):
            return f"{indent}return {', '.join(ast.unparse(e) for e in elts)}"
    return line


def _wrap(line: str) -> list[str]:
    """A call into the run time too long for one line, one argument per line (as black would)."""
    if len(line) <= LINE_LENGTH or f"{MACHINERY['support']}." not in line:
        return [line]
    indent = line[: len(line) - len(line.lstrip())]
    stmt = _one_statement(line)
    call = getattr(stmt, "value", None)
    if not isinstance(stmt, (ast.Assign, ast.Expr)) or not isinstance(call, ast.Call):
        return [line]
    lead = "".join(_target_text(t) + " = " for t in getattr(stmt, "targets", []))
    args = [ast.unparse(a) for a in call.args]
    args += [
        f"{k.arg}={ast.unparse(k.value)}" if k.arg else f"**{ast.unparse(k.value)}"
        for k in call.keywords
    ]
    inner = indent + "    "
    return [
        f"{indent}{lead}{ast.unparse(call.func)}(",
        *(f"{inner}{a}," for a in args),
        f"{indent})",
    ]


def _target_text(target: ast.AST) -> str:
    if isinstance(target, ast.Tuple) and len(target.elts) > 1:
        return ", ".join(ast.unparse(e) for e in target.elts)
    return ast.unparse(target)


@dataclass(frozen=True)
class Compiled:
    """The generated text compiled under its registered file name."""

    filename: str
    text: str
    codes: Mapping[str, types.CodeType]  # the functions inside the scope, by name


def compile_source(text: str, source: FunctionSource, rewritten: Rewritten) -> Compiled:
    """Compile ``text`` under a linecache-registered name; return the functions' code objects."""
    base = (
        f"<ckpt_transform generated: {rewritten.function} at "
        f"{source.short_filename}:{source.file_line(source.node)}"
    )
    filename, k = base + ">", 2
    # Another function with the same name and line (decorated twice, or in a loop) but a
    # different text gets its own name, so each traceback shows the code that ran.
    while filename in linecache.cache and "".join(linecache.cache[filename][2]) != text:
        filename, k = f"{base} #{k}>", k + 1
    linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)
    # Annotations are kept in the text but never evaluated here: the originals are copied over.
    flags = __future__.annotations.compiler_flag
    module = compile(text, filename, "exec", flags=flags, dont_inherit=True)
    (scope,) = [c for c in module.co_consts if isinstance(c, types.CodeType)]
    codes = {c.co_name: c for c in scope.co_consts if isinstance(c, types.CodeType)}
    return Compiled(filename, text, codes)


@dataclass(frozen=True)
class Bound:
    """The generated functions, ready to call."""

    function: types.FunctionType
    step: types.FunctionType
    cond: types.FunctionType | None


def bind(
    compiled: Compiled,
    rewritten: Rewritten,
    original: types.FunctionType,
    machinery: Mapping[str, Any],
) -> Bound:
    """Build the generated functions with the original's globals, closure cells and defaults.

    ``machinery`` gives the values of the scope's own parameters (``_ckpt``, ``_ckpt_scheme``,
    ``_ckpt_report``).
    """
    cells: dict[str, Any] = {name: types.CellType(value) for name, value in machinery.items()}
    cells.update(zip(original.__code__.co_freevars, original.__closure__ or ()))
    qualprefix = original.__qualname__[: -len(original.__name__)]

    def make(name: str, defaults: tuple | None = None) -> types.FunctionType:
        code = compiled.codes[name]
        closure = tuple(cells[n] for n in code.co_freevars)
        fn = types.FunctionType(code, original.__globals__, name, defaults, closure)
        fn.__qualname__ = qualprefix + name
        fn.__module__ = original.__module__
        return fn

    step = make(rewritten.step)
    cells[rewritten.step] = types.CellType(step)
    cond = None
    if rewritten.cond is not None:
        cond = make(rewritten.cond)
        cells[rewritten.cond] = types.CellType(cond)
    function = make(rewritten.function, original.__defaults__)
    function.__kwdefaults__ = dict(original.__kwdefaults__) if original.__kwdefaults__ else None
    return Bound(function, step, cond)
