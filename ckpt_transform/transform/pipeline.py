"""The transform as a short list of named passes: parse, fence, analyse, rewrite, codegen, compile.

`transform_function` runs them in order; with ``verbose=True`` it prints what each pass produced,
so a reader can follow a function from its source to the code that runs.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from ckpt_transform.transform import analysis, codegen, fence, parse, rewrite, vectorize
from ckpt_transform.transform.analysis import LoopAnalysis

__all__ = ["Transformed", "transform_function"]


@dataclass(frozen=True)
class Transformed:
    """Everything the transform made for one function."""

    source: str  # the generated source text, exactly what was compiled
    filename: str  # its linecache name
    analysis: LoopAnalysis
    functions: codegen.Bound


def transform_function(
    function: Any,
    *,
    scheme: Any,
    loop: int | str | None = None,
    progress: bool = False,
    max_steps: int | None = None,
    machinery: Mapping[str, Any],
    verbose: bool = False,
    out: TextIO | None = None,
    vectorize_loops: bool = True,
    explain: bool = False,
) -> Transformed:
    """Rewrite ``function``'s loop into a checkpointed driver call and build the result.

    Parameters
    ----------
    function
        The user's function.
    scheme
        The checkpointing scheme (only its text goes into the source; the object is bound as
        ``_ckpt_scheme`` through ``machinery``).
    loop, progress, max_steps
        As in `ckpt_transform.checkpoint_struct`.
    machinery
        Values of the generated scope's parameters: ``_ckpt``, ``_ckpt_scheme``, ``_ckpt_report``.
    verbose, out
        Print the result of every pass to ``out`` (standard output by default).
    vectorize_loops, explain
        As ``vectorize`` and ``explain`` in `ckpt_transform.checkpoint_struct`.
    """
    show = _printer(verbose, out)

    source = parse.read_function(function)
    chosen = parse.find_loop(source, loop)
    show(
        "parse",
        f"{source.where(chosen.node)}: {source.header_text(chosen.node)}\n" + "".join(source.lines),
    )

    fence.check(source, chosen)
    show("fence", "nothing rejected")

    info = analysis.analyse(source, chosen)
    show("analyse", _describe(info))

    if max_steps is not None and chosen.is_for:
        raise TypeError(
            f"max_steps bounds the iterations of a while loop; the loop "
            f"{source.where(chosen.node)} is a for loop, whose length its range gives: "
            "drop max_steps"
        )
    rewritten = rewrite.rewrite(source, chosen, info, progress=progress, max_steps=max_steps)
    show("rewrite", codegen.generate(rewritten, []))

    if vectorize_loops:
        rewritten, loops = vectorize.vectorize(rewritten, source, explain=explain)
        show("vectorize", "\n".join(loops) or "no element loop")

    text = codegen.generate(
        rewritten, codegen.header(source, info, rewritten, codegen.scheme_text(scheme), chosen.node)
    )
    show("codegen", text)

    compiled = codegen.compile_source(text, source, rewritten)
    functions = codegen.bind(compiled, rewritten, function, machinery)
    show("compile", f"compiled as {compiled.filename}")
    return Transformed(text, compiled.filename, info, functions)


def _describe(info: LoopAnalysis) -> str:
    lines = [
        f"kind:       {info.kind}" + (f" over {info.index}" if info.index else ""),
        f"state:      {', '.join(map(str, info.state))}",
        f"structs:    {', '.join(s.name for s in info.structs) or 'none'}",
        f"parameters: {', '.join(f'{p.name} ({p.origin})' for p in info.params) or 'none'}",
        f"by name:    {', '.join(info.by_name) or 'none'}",
        *[f"helpers:    {loc} is assigned by {helper}" for loc, helper in info.helper_writes],
    ]
    return "\n".join(lines)


def _printer(verbose: bool, out: TextIO | None) -> Any:
    def show(name: str, text: str) -> None:
        if verbose:
            stream = out if out is not None else sys.stdout
            print(f"---- after {name} ".ljust(72, "-"), file=stream)
            print(text.rstrip("\n"), file=stream)

    return show
