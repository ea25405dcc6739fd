"""Pass 1, parse: read a function's source, parse it with gast, and find the loop to rewrite.

The source is read with `inspect.getsourcelines`, so it works for functions in files, nested
functions, methods and notebook cells (whose text `linecache` holds), and not for lambdas or code
typed into an interactive interpreter. An indented definition (a method, a nested function) is
parsed inside a dummy ``if 1:`` block rather than dedented, so string literals keep their exact
text; `FunctionSource` maps every node back to its line and column in the user's file.
"""

from __future__ import annotations

import inspect
import os
import types
from dataclasses import dataclass
from typing import Any

import gast

from ckpt_transform.errors import TransformError

__all__ = ["FunctionSource", "LoopChoice", "find_loop", "read_function"]

LOOP_TYPES = (gast.For, gast.While, gast.AsyncFor)


@dataclass(frozen=True)
class FunctionSource:
    """The parsed source of one function and the way back to the user's file.

    Attributes
    ----------
    function
        The function given to the decorator.
    filename
        The file its code was compiled from (``co_filename``).
    lines
        The source lines as read (with their original indentation).
    first_line
        Line number, in the file, of ``lines[0]`` (the first decorator or the ``def``).
    node
        The ``FunctionDef`` node; its line numbers count from the first line of ``lines``
        (see `file_line`).
    """

    function: Any
    filename: str
    lines: tuple[str, ...]
    first_line: int
    node: gast.FunctionDef
    _line_shift: int

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def short_filename(self) -> str:
        """The file's base name, used in generated comments (stable across machines)."""
        return os.path.basename(self.filename) or self.filename

    def file_line(self, node: Any) -> int:
        """The line of ``node`` in the user's file."""
        return node.lineno + self._line_shift

    def file_end_line(self, node: Any) -> int:
        return (node.end_lineno or node.lineno) + self._line_shift

    def where(self, node: Any) -> str:
        """``heat.py:27`` for a node (``heat.py:27-29`` for a statement over several lines)."""
        first, last = self.file_line(node), self.file_end_line(node)
        lines = str(first) if first == last else f"{first}-{last}"
        return f"{self.short_filename}:{lines}"

    def where_span(self, nodes: list[Any]) -> str:
        """``heat.py:27-31`` for a list of consecutive statements."""
        first, last = self.file_line(nodes[0]), self.file_end_line(nodes[-1])
        lines = str(first) if first == last else f"{first}-{last}"
        return f"{self.short_filename}:{lines}"

    def source_line(self, node: Any) -> str:
        index = node.lineno + self._line_shift - self.first_line
        return self.lines[index].rstrip("\n") if 0 <= index < len(self.lines) else ""

    def header_text(self, node: Any) -> str:
        """The first line of a statement as the user wrote it, without indentation."""
        return self.source_line(node).strip()

    def _file_text(self, line: int) -> str:
        index = line - self.first_line
        return self.lines[index].rstrip("\n") if 0 <= index < len(self.lines) else ""

    def verbatim(self, stmt: Any, *, docstring: bool = False) -> str | None:
        """The statement's own text, dedented, after the comment lines just above it.

        None when it cannot be moved to another indentation without changing its meaning or
        layout: it shares its first line with other code, its indentation holds tabs, or it holds
        a string literal over several lines (re-indenting would change the string; a docstring
        is fine, since the original ``__doc__`` is kept).
        """
        text = self.own_text(stmt, docstring=docstring)
        if text is None:
            return None
        return "\n".join([*self.comments_above(stmt), text])

    def own_text(self, stmt: Any, *, docstring: bool = False) -> str | None:
        """The statement as written (with a comment ending its last line), dedented."""
        col = stmt.col_offset
        decorators = getattr(stmt, "decorator_list", None) or []
        first = min([stmt.lineno] + [d.lineno for d in decorators]) + self._line_shift
        last = (stmt.end_lineno or stmt.lineno) + self._line_shift
        lines = [self._file_text(k) for k in range(first, last + 1)]
        if not lines or _chars(lines[0], col).strip():
            return None
        if not docstring:
            for node in gast.walk(stmt):
                end_line = getattr(node, "end_lineno", None)
                multiline = end_line is not None and end_line != node.lineno
                if isinstance(node, gast.JoinedStr) and multiline:
                    return None
                if isinstance(node, gast.Constant) and multiline:
                    if isinstance(node.value, (str, bytes)):
                        return None
        end = len(_chars(lines[-1], stmt.end_col_offset))
        rest = lines[-1][end:]
        lines[-1] = lines[-1][:end] + (rest if rest.strip().startswith("#") else "")
        out = []
        for line in lines:
            lead = line[: len(line) - len(line.lstrip())]
            if "\t" in lead:
                return None
            out.append(line[min(col, len(lead)) :].rstrip())
        return "\n".join(out)

    def comments_above(self, stmt: Any) -> list[str]:
        """Comment lines just above a statement, at its indentation (blank lines skipped)."""
        col = stmt.col_offset
        decorators = getattr(stmt, "decorator_list", None) or []
        k = min([stmt.lineno] + [d.lineno for d in decorators]) + self._line_shift - 1
        above: list[str] = []
        while k >= self.first_line:
            line = self._file_text(k)
            stripped = line.strip()
            if stripped.startswith("#") and len(line) - len(line.lstrip()) == col:
                above.insert(0, stripped)
            elif stripped:
                break
            k -= 1
        return above

    def error(self, message: str, node: Any) -> TransformError:
        """A `TransformError` pointing at ``node`` in the user's file."""
        line = self.source_line(node)
        col = getattr(node, "col_offset", None)
        return TransformError(
            message,
            filename=self.filename,
            lineno=self.file_line(node),
            col_offset=None if col is None else len(_chars(line, col)),  # characters, not bytes
            source_line=line,
        )


def _chars(line: str, byte_offset: int) -> str:
    """The start of ``line`` up to an ast column, which counts UTF-8 bytes, not characters."""
    return line.encode("utf-8")[:byte_offset].decode("utf-8", errors="ignore")


def read_function(function: Any) -> FunctionSource:
    """Read and parse the source of ``function``; raise `TransformError` when it cannot be read."""
    if not isinstance(function, types.FunctionType):
        raise TransformError(
            f"checkpoint_struct rewrites a function defined with def, got {function!r} "
            f"({type(function).__name__}). Instead of decorating it, decorate the def of the "
            "function that holds the loop."
        )
    code = function.__code__
    filename = code.co_filename
    if function.__name__ == "<lambda>":
        raise TransformError(
            "checkpoint_struct cannot rewrite a lambda: its loop would have to be a statement. "
            "Instead of a lambda, write a def with a for or while loop in its body.",
            filename=filename,
            lineno=code.co_firstlineno,
        )
    if hasattr(function, "__wrapped__"):
        raise TransformError(
            f"{function.__qualname__} is already wrapped by another decorator "
            f"({function.__wrapped__!r} is inside it); checkpoint_struct must see the function "
            "itself. Instead of putting it above that decorator, put @checkpoint_struct(...) "
            "directly on the def (the innermost decorator).",
            filename=filename,
            lineno=code.co_firstlineno,
        )
    try:
        lines, first_line = inspect.getsourcelines(function)
    except (OSError, TypeError) as err:
        raise TransformError(
            f"the source of {function.__qualname__} cannot be read ({err}): it was probably typed "
            "into an interactive interpreter or built with exec. checkpoint_struct rewrites "
            "source code; instead, define the function in a file or a notebook cell.",
            filename=filename,
            lineno=code.co_firstlineno,
        ) from None
    text = "".join(lines)
    indented = bool(lines) and lines[0][:1] in (" ", "\t")
    # An indented def (a method, a nested function) is parsed as the body of an `if 1:` block,
    # which keeps every column and every string literal exactly as written.
    wrapped = "if 1:\n" + text if indented else text
    try:
        tree = gast.parse(wrapped)
    except SyntaxError as err:
        raise TransformError(
            f"the source of {function.__qualname__} read from {filename} does not parse "
            f"({err.msg}); the file may have changed since it was imported. Reload the module.",
            filename=filename,
            lineno=first_line,
        ) from None
    body = tree.body[0].body if indented else tree.body
    node = body[0] if body else None
    # Line k of the parsed text is line k + shift of the file (the `if 1:` adds one line).
    shift = first_line - 1 - (1 if indented else 0)
    if not isinstance(node, (gast.FunctionDef, gast.AsyncFunctionDef)) or (
        node.name != function.__name__
    ):
        raise TransformError(
            f"the source read for {function.__qualname__} ({filename}, line {first_line}) is not "
            "its def; the file may have changed since it was imported. Reload the module.",
            filename=filename,
            lineno=first_line,
        )
    source = FunctionSource(function, filename, tuple(lines), first_line, node, shift)
    _check_decorator_order(source)
    return source


def _check_decorator_order(source: FunctionSource) -> None:
    """The rewrite drops the def's decorators: ours must be the innermost (the last listed)."""
    decorators = source.node.decorator_list
    ours = [i for i, d in enumerate(decorators) if "checkpoint_struct" in gast.dump(d)]
    if ours and ours[-1] != len(decorators) - 1:
        inner = decorators[ours[-1] + 1]
        raise source.error(
            f"@checkpoint_struct is not the innermost decorator of {source.name}: the decorator "
            f"at line {source.file_line(inner)} is applied first and would be lost when the "
            "function is rewritten from its source. Instead, put @checkpoint_struct(...) last, "
            "directly above the def.",
            decorators[ours[-1]],
        )


@dataclass(frozen=True)
class LoopChoice:
    """The loop chosen for rewriting: the statement and its place in the function body."""

    node: Any
    position: int

    @property
    def is_for(self) -> bool:
        return isinstance(self.node, (gast.For, gast.AsyncFor))


def _describe_loop(source: FunctionSource, node: Any) -> str:
    return f"line {source.file_line(node)} ({source.header_text(node)})"


def _nested_loop(stmts: list[Any]) -> tuple[Any, Any] | None:
    """The first loop inside a compound statement of ``stmts``, with that statement."""
    for stmt in stmts:
        for child in gast.walk(stmt):
            if child is not stmt and isinstance(child, LOOP_TYPES):
                return stmt, child
    return None


def find_loop(source: FunctionSource, loop: int | str | None) -> LoopChoice:
    """Find the top-level loop to rewrite; ``loop`` picks one by index or by ``for`` target name.

    Only loops that are statements of the function body itself are candidates; loops nested in
    a candidate's body stay ordinary code inside the step function.
    """
    body = source.node.body
    loops = [(i, s) for i, s in enumerate(body) if isinstance(s, LOOP_TYPES)]
    name = source.name
    if not loops:
        nested = _nested_loop(body)
        if nested is not None:
            outer, inner = nested
            kind = type(outer).__name__.lower()
            raise source.error(
                f"the loop of {name} at {_describe_loop(source, inner)} is inside a `{kind}` "
                "statement; checkpoint_struct rewrites a loop that is a statement of the "
                "function body itself. Instead of nesting it, move the loop to the top level of "
                f"{name} (or into a function of its own, and decorate that).",
                inner,
            )
        raise source.error(
            f"{name} has no for or while loop to checkpoint. Instead of decorating it, decorate "
            "the function whose body holds the time-stepping loop.",
            source.node,
        )
    if loop is None:
        if len(loops) > 1:
            where = "; ".join(f"{k}: {_describe_loop(source, s)}" for k, (_, s) in enumerate(loops))
            raise source.error(
                f"{name} has {len(loops)} top-level loops ({where}), and checkpoint_struct "
                "rewrites one. Instead of leaving the choice open, name it: "
                "@checkpoint_struct(scheme, loop=0) picks by position, loop='i' by the name of "
                "the for loop's variable.",
                loops[1][1],
            )
        i, node = loops[0]
        return LoopChoice(node, i)
    if isinstance(loop, int):
        if not 0 <= loop < len(loops):
            raise source.error(
                f"loop={loop} but {name} has {len(loops)} top-level "
                f"loop{'s' if len(loops) != 1 else ''}; use an index from 0 to {len(loops) - 1}.",
                source.node,
            )
        i, node = loops[loop]
        return LoopChoice(node, i)
    named = [
        (i, s)
        for i, s in loops
        if isinstance(s, (gast.For, gast.AsyncFor))
        and isinstance(s.target, gast.Name)
        and s.target.id == loop
    ]
    if len(named) != 1:
        targets = [
            s.target.id
            for _, s in loops
            if isinstance(s, (gast.For, gast.AsyncFor)) and isinstance(s.target, gast.Name)
        ]
        found = "no" if not named else f"{len(named)}"
        raise source.error(
            f"loop={loop!r} but {name} has {found} top-level for loops over {loop!r} "
            f"(its for loop variables: {', '.join(map(repr, targets)) or 'none'}). Instead, "
            "give the position of the loop among the top-level loops: loop=0, loop=1, ...",
            source.node,
        )
    i, node = named[0]
    return LoopChoice(node, i)
