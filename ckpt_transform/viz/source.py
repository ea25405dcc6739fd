"""Showing what `checkpoint_struct` made of a function: its generated source, and how it differs.

A decorated function carries ``generated_source`` (the text that runs) and ``original`` (the
undecorated function). These helpers load such a function from a file, print its generated source
(highlighted with pygments on a terminal when pygments is installed, plain otherwise), and set it
against the original's source as a unified diff or side by side.
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import os
import shutil
import sys
import textwrap
from collections.abc import Callable
from itertools import zip_longest
from pathlib import Path
from typing import Any

from ckpt_transform._checks import typechecked

__all__ = [
    "SourceError",
    "SourceImportError",
    "color_default",
    "highlight",
    "load_function",
    "side_by_side",
    "unified_diff",
]

# ckpt_transform.api always holds the decorator (the package may also re-export it).
_HOW_TO_DECORATE = (
    "decorate it: `from ckpt_transform import Revolve; from ckpt_transform.api import "
    "checkpoint_struct`, then put `@checkpoint_struct(Revolve(4))` on the line above "
    "`def {name}(...)`"
)


class SourceError(LookupError):
    """A function to show cannot be found or loaded; the message says what and what to do."""


class SourceImportError(SourceError):
    """The file was found but running it failed (an exception, or a `TransformError`)."""


@typechecked
def load_function(spec: str) -> Callable[..., Any]:
    """Import ``FILE.py`` from its path and return its function ``FUNCTION`` (``FILE.py:FUNCTION``).

    The file is run as a module (not as ``__main__``, so an ``if __name__ == "__main__":`` block
    does not run), with its own folder first on ``sys.path`` so that it can import its
    neighbours. ``FUNCTION`` may be dotted (``Model.run``) for a function inside a class.

    Parameters
    ----------
    spec
        ``path/to/file.py:function_name``.

    Returns
    -------
    callable
        The function, decorated with `checkpoint_struct` (it has ``generated_source`` and
        ``original``).

    Raises
    ------
    SourceError
        When ``spec`` has no ``:FUNCTION`` part, the file does not exist or fails to import, the
        name is not in it, or the function is not decorated with `checkpoint_struct`.
    """
    path_text, sep, name = spec.rpartition(":")
    if not sep or not path_text or not name:
        raise SourceError(
            f"expected FILE.py:FUNCTION (a path, a colon, a function name), got {spec!r}"
        )
    path = Path(path_text)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise SourceError(f"file {path_text!r} {what}; give the path of a Python file")
    module = _import_path(path)

    obj: Any = module
    for i, part in enumerate(name.split(".")):
        if not hasattr(obj, part):
            where = path_text if i == 0 else ".".join(name.split(".")[:i])
            raise SourceError(f"{part!r} is not defined in {where}{_known(obj, module)}")
        obj = getattr(obj, part)
    if not hasattr(obj, "generated_source") or not hasattr(obj, "original"):
        kind = "function" if callable(obj) else type(obj).__name__
        how = _HOW_TO_DECORATE.format(name=name.rsplit(".", 1)[-1])
        raise SourceError(
            f"{name} in {path_text} is a {kind} not decorated with checkpoint_struct, so it has "
            f"no generated source; {how}"
        )
    return obj


def _known(scope: Any, module: Any) -> str:
    """The functions defined in ``scope`` (a module or class of the file), decorated first."""
    decorated, other = [], []
    for key, value in vars(scope).items():
        value = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
        if key.startswith("_") or not inspect.isfunction(value):
            continue
        if getattr(value, "__module__", None) != module.__name__:
            continue  # imported, not defined in the file
        (decorated if hasattr(value, "generated_source") else other).append(key)
    parts = []
    if decorated:
        parts.append(f"decorated with checkpoint_struct: {', '.join(sorted(decorated))}")
    if other:
        parts.append(f"other functions: {', '.join(sorted(other))}")
    return f" ({'; '.join(parts)})" if parts else ""


def _import_path(path: Path) -> Any:
    """Run the file as a fresh module named after it; raise `SourceError` if that fails."""
    name = "_ckpt_show_" + "".join(c if c.isalnum() else "_" for c in path.stem)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SourceError(f"cannot import {str(path)!r}: it is not a Python source file")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    previous = sys.modules.get(name)
    # Dataclasses and pickling look the module up by name while it runs.
    sys.modules[name] = module
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:  # TransformError is one: the decorator rejected a function
        raise SourceImportError(f"importing {str(path)!r} failed: {_describe(error)}") from error
    except (Exception, SystemExit) as error:
        raise SourceImportError(
            f"importing {str(path)!r} failed: {type(error).__name__}: {error}"
        ) from error
    finally:
        sys.path.remove(folder)
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
    return module


def _describe(error: SyntaxError) -> str:
    where = ""
    if error.filename:
        where = f" ({error.filename}, line {error.lineno})" if error.lineno else error.filename
    return f"{type(error).__name__}: {error.msg}{where}"


def color_default(stream: Any = None) -> bool:
    """Whether to colour output for ``stream`` (stdout): a terminal, and neither ``NO_COLOR`` set
    nor ``TERM=dumb`` (https://no-color.org)."""
    stream = sys.stdout if stream is None else stream
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


@typechecked
def highlight(text: str, *, language: str = "python", color: bool = True) -> str:
    """Colour ``text`` for a terminal with pygments; unchanged when not asked or not installed.

    Parameters
    ----------
    text
        Python source or a unified diff.
    language
        ``"python"`` or ``"diff"``.
    color
        False returns ``text`` as it is.

    Returns
    -------
    str
    """
    if language not in ("python", "diff"):
        raise ValueError(f"language must be 'python' or 'diff', got {language!r}")
    if not color:
        return text
    try:
        from pygments import highlight as pyg_highlight
        from pygments.formatters import TerminalFormatter
        from pygments.lexers import DiffLexer, PythonLexer
    except ImportError:
        return text
    lexer = PythonLexer() if language == "python" else DiffLexer()
    out = pyg_highlight(text, lexer, TerminalFormatter())
    # pygments always ends with a newline; keep the input's ending.
    return out if text.endswith("\n") else out.rstrip("\n")


def _original(function: Any) -> tuple[list[str], str]:
    """The original's source lines (dedented) and a label ``file:first-last``."""
    lines, label, _ = _original_numbered(function)
    return lines, label


def _original_numbered(function: Any) -> tuple[list[str], str, int]:
    """The original's source lines (dedented), a label ``file:first-last`` and the first line."""
    original = function.original
    try:
        lines, first = inspect.getsourcelines(original)
        filename = inspect.getsourcefile(original) or "<unknown>"
    except (OSError, TypeError) as error:
        raise SourceError(f"cannot read the source of the original function: {error}") from error
    text = textwrap.dedent("".join(lines))
    label = f"{os.path.basename(filename)}:{first}-{first + len(lines) - 1}"
    return text.splitlines(), label, first


@typechecked
def unified_diff(function: Callable[..., Any], *, context: int = 3, color: bool = False) -> str:
    """The unified diff from the original's source to the generated source.

    Parameters
    ----------
    function
        A function decorated with `checkpoint_struct`.
    context
        Lines of context around each change.
    color
        Highlight for a terminal (pygments).

    Returns
    -------
    str
    """
    left, label = _original(function)
    right = function.generated_source.splitlines()
    lines = difflib.unified_diff(
        left,
        right,
        fromfile=f"{label} (original)",
        tofile=f"{function.__name__}.generated_source",
        n=context,
        lineterm="",
    )
    return highlight("\n".join(lines), language="diff", color=color)


@typechecked
def side_by_side(function: Callable[..., Any], *, width: int | None = None) -> str:
    """The generated source beside the original lines each of its lines comes from.

    The right column is the generated source, in order and complete. Beside each of its lines
    the left column shows the line of the original it copies (the same text, indentation
    ignored; each original line used once), numbered as in the user's file, so that a statement
    that moved (the loop body into the step function) is found by its number. A provenance
    comment of the generated code that ends with an original line (``# the loop, heat.py:7-8:
    for i in range(n):``) stands beside that line. The middle column is blank for the same
    statement, ``~`` for a comment standing for the line, ``>`` for a line only in the generated
    code and ``<`` for a line only in the original (placed where it falls in the original's
    order). Long lines wrap.

    Parameters
    ----------
    function
        A function decorated with `checkpoint_struct`.
    width
        Total width in characters (the terminal's when None; at least 40).

    Returns
    -------
    str
    """
    if width is None:
        width = shutil.get_terminal_size((120, 24)).columns
    if width < 40:
        raise ValueError(f"width must be at least 40 characters, got {width}")
    left, label, first = _original_numbered(function)
    right = function.generated_source.splitlines()
    lw, rw = len(str(first + len(left) - 1)), len(str(len(right)))
    # number, space, text | space, marker, space | number, space, text
    column = max(8, (width - lw - rw - 5) // 2)

    def cells(number: int | None, text: str | None, digits: int) -> list[str]:
        if text is None:
            return []
        chunks = _wrap(text.expandtabs(4), column)
        head = f"{number:>{digits}} "
        return [
            (head if k == 0 else " " * (digits + 1)) + c.ljust(column) for k, c in enumerate(chunks)
        ]

    left_head = f"original: {label}"[: lw + 1 + column]
    right_head = f"generated: {function.__name__}.generated_source"[: rw + 1 + column]
    out = [f"{left_head:<{lw + 1 + column}}   {right_head}", "-" * width]

    def emit(i: int | None, j: int | None, mark: str) -> None:
        a = cells(None if i is None else first + i, None if i is None else left[i], lw)
        b = cells(None if j is None else j + 1, None if j is None else right[j], rw)
        blank = " " * (lw + 1 + column)
        for k, (x, y) in enumerate(zip_longest(a, b, fillvalue=None)):
            x = blank if x is None else x
            y = "" if y is None else y
            out.append(f"{x} {mark if k == 0 else ' '} {y}".rstrip())

    partner = _pair_lines(left, right)
    for i, j, mark in _rows(len(left), len(right), partner):
        emit(i, j, mark)
    return "\n".join(out)


def _pair_lines(left: list[str], right: list[str]) -> dict[int, tuple[int, str]]:
    """Generated line index -> (original line index, mark): which original line each copies.

    Each generated line pairs with the first unused original line of the same text (mark
    ``" "``); then each provenance comment left over with the first unused original line it
    ends with (mark ``"~"``). Each original line is used once.
    """
    stripped = [x.strip() for x in left]
    partner: dict[int, tuple[int, str]] = {}
    taken: set[int] = set()
    for j, line in enumerate(right):
        key = line.strip()
        for i, text in enumerate(stripped):
            if key and i not in taken and text == key:
                partner[j] = (i, " ")
                taken.add(i)
                break
    for j, line in enumerate(right):
        key = line.strip()
        if j in partner or not key.startswith("#"):
            continue
        for i, text in enumerate(stripped):
            if text and i not in taken and key.endswith(text):
                partner[j] = (i, "~")
                taken.add(i)
                break
    return partner


def _rows(
    n_left: int, n_right: int, partner: dict[int, tuple[int, str]]
) -> list[tuple[int | None, int | None, str]]:
    """The rows in order: (original index, generated index, mark), either index None if absent.

    Every generated line in order (``">"`` when it has no partner); an original line with no
    partner (``"<"``) comes before the first row whose original line comes after it (at the top
    when it comes before every paired line, at the end when after all of them).
    """
    taken = {i for i, _ in partner.values()}
    alone = [i for i in range(n_left) if i not in taken]
    rows: list[tuple[int | None, int | None, str]] = []
    shown = 0
    first_paired = min(taken, default=n_left)
    while shown < len(alone) and alone[shown] < first_paired:
        rows.append((alone[shown], None, "<"))
        shown += 1
    for j in range(n_right):
        if j not in partner:
            rows.append((None, j, ">"))
            continue
        i, mark = partner[j]
        while shown < len(alone) and alone[shown] < i:
            rows.append((alone[shown], None, "<"))
            shown += 1
        rows.append((i, j, mark))
    rows.extend((i, None, "<") for i in alone[shown:])
    return rows


def _wrap(text: str, column: int) -> list[str]:
    """``text`` in pieces of at most ``column`` characters, broken at spaces where possible."""
    if len(text) <= column:
        return [text]
    pieces = textwrap.wrap(
        text,
        column,
        expand_tabs=False,
        replace_whitespace=False,
        drop_whitespace=False,
        break_on_hyphens=False,
    )
    return [p.rstrip() for p in pieces] or [""]
