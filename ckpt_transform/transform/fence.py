"""Pass 2, fence: reject what cannot become a step function, before any analysis.

The loop body becomes a function that the driver calls once per iteration, in an order the
scheme chooses, possibly several times for the same iteration. So the body must run every
iteration to its end (no ``break``, ``continue`` or ``return`` that leaves it), must not suspend
(``yield``, ``await``), must not rebind names outside itself (``global``, ``nonlocal``), and a
``for`` loop must count over a ``range`` so the driver knows each iteration's index.

`RULES` is the table of statements and expressions rejected inside the body; `check` walks the
body once and applies it, then checks the loop header and the function as a whole. Every error is
a `TransformError` at the offending line of the user's file, saying what was found, why it
breaks checkpointing and what to write instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gast

from ckpt_transform.transform.naming import RESERVED_PREFIX
from ckpt_transform.transform.parse import FunctionSource, LoopChoice

__all__ = ["RULES", "FenceRule", "check"]

_FUNCTION_SCOPES = (gast.FunctionDef, gast.AsyncFunctionDef, gast.Lambda, gast.ClassDef)
_INNER_LOOPS = (gast.For, gast.While, gast.AsyncFor)


@dataclass(frozen=True)
class FenceRule:
    """One rejected construct.

    Attributes
    ----------
    nodes
        The gast node types it applies to.
    leaves_loop_only
        True when the construct is rejected only where it would act on the checkpointed loop
        itself (a ``break`` inside an inner loop of the body is fine).
    found
        How the message names it.
    why
        Why it breaks checkpointing.
    instead
        What to write instead.
    """

    nodes: tuple[type, ...]
    leaves_loop_only: bool
    found: str
    why: str
    instead: str


RULES: tuple[FenceRule, ...] = (
    FenceRule(
        (gast.Break,),
        True,
        "`break`",
        "leaves the checkpointed loop early, but each iteration becomes one call of a step "
        "function that must run to its end",
        "Instead of breaking out of the loop, use a while loop whose condition stops it "
        "(`while i < n and not done:`), and set `done` in the body",
    ),
    FenceRule(
        (gast.Continue,),
        True,
        "`continue`",
        "skips the rest of an iteration, but each iteration becomes one call of a step "
        "function that runs the whole body",
        "Instead of `if skip: continue`, put the rest of the body under `if not skip:`",
    ),
    FenceRule(
        (gast.Return,),
        False,
        "`return`",
        "would leave the function from inside the checkpointed loop, but the body becomes a "
        "step function whose return value is the next state",
        "Instead of returning from the loop, end it with a while condition and return after it",
    ),
    FenceRule(
        (gast.Yield, gast.YieldFrom),
        False,
        "`yield`",
        "would suspend the function inside the checkpointed loop, but the body becomes a step "
        "function that the driver calls (and calls again when it recomputes)",
        "Instead of yielding from the loop, keep what you need in a loop variable and yield "
        "after the loop",
    ),
    FenceRule(
        (gast.Await,),
        False,
        "`await`",
        "would suspend the function inside the checkpointed loop, but the body becomes a plain "
        "step function that the driver calls",
        "Instead of awaiting in the loop, await before or after it",
    ),
    FenceRule(
        (gast.AsyncFor, gast.AsyncWith),
        False,
        "`async for` or `async with`",
        "would suspend the function inside the checkpointed loop, but the body becomes a plain "
        "step function that the driver calls",
        "Instead, use a plain for loop or with statement, or move the asynchronous part before "
        "or after the loop",
    ),
    FenceRule(
        (gast.Global,),
        False,
        "`global`",
        "would rebind a module variable from the step function, which the driver calls again "
        "when it recomputes, so the variable would end up with the wrong value",
        "Instead of `global x` in the loop, keep x in a local variable and assign the global "
        "after the loop",
    ),
    FenceRule(
        (gast.Nonlocal,),
        False,
        "`nonlocal`",
        "would rebind a variable of the enclosing function from the step function, which the "
        "driver calls again when it recomputes",
        "Instead of `nonlocal x` in the loop, keep x in a local variable and assign it after the "
        "loop",
    ),
    FenceRule(
        (gast.Delete,),
        False,
        "`del`",
        "would unbind a variable or change a container in place inside the step function, but "
        "the step must return every value the loop carries and leave its inputs unchanged",
        "Instead of `del x`, rebind x (or simply stop using it)",
    ),
)


def _walk_body(stmts: list[Any], in_inner_loop: bool = False) -> Iterator[tuple[Any, bool]]:
    """Every node of the loop body with "is it inside an inner loop"; nested scopes skipped."""
    for stmt in stmts:
        yield from _walk(stmt, in_inner_loop)


def _walk(node: Any, in_inner_loop: bool) -> Iterator[tuple[Any, bool]]:
    yield node, in_inner_loop
    if isinstance(node, _FUNCTION_SCOPES):
        # A nested function or class is ordinary code: its own returns and yields are its own.
        # Only the parts evaluated where it is defined stay in the loop.
        for part in _definition_time_parts(node):
            yield from _walk(part, in_inner_loop)
        return
    inner = in_inner_loop or isinstance(node, _INNER_LOOPS)
    for field in node._fields:
        value = getattr(node, field)
        children = value if isinstance(value, list) else [value]
        for child in children:
            if isinstance(child, gast.AST):
                # The else block of an inner loop runs after it: a break there leaves our loop.
                child_inner = inner and not (isinstance(node, _INNER_LOOPS) and field == "orelse")
                yield from _walk(child, child_inner)


def _definition_time_parts(node: Any) -> list[Any]:
    if isinstance(node, gast.Lambda):
        return list(node.args.defaults) + [d for d in node.args.kw_defaults if d is not None]
    parts = list(node.decorator_list)
    if isinstance(node, gast.ClassDef):
        return parts + list(node.bases) + [k.value for k in node.keywords]
    return parts + list(node.args.defaults) + [d for d in node.args.kw_defaults if d is not None]


def check(source: FunctionSource, loop: LoopChoice) -> None:
    """Raise `TransformError` for the first construct that cannot be checkpointed."""
    node = loop.node
    _check_reserved_names(source)
    _check_header(source, node)
    for child, in_inner_loop in _walk_body(node.body):
        for rule in RULES:
            if isinstance(child, rule.nodes) and not (rule.leaves_loop_only and in_inner_loop):
                raise source.error(
                    f"{rule.found} at {source.where(child)} inside the checkpointed loop "
                    f"{rule.why}. {rule.instead}.",
                    child,
                )
    _check_declared_writes(source, node)


def _check_header(source: FunctionSource, node: Any) -> None:
    if isinstance(node, gast.AsyncFor):
        raise source.error(
            f"`async for` at {source.where(node)}: the checkpointed loop must be a plain for "
            "loop over a range or a while loop, whose iterations the driver can run again. "
            "Instead of `async for`, collect the items first and loop over their indices with "
            "`for i in range(len(items)):`.",
            node,
        )
    if node.orelse:
        first = node.orelse[0]
        raise source.error(
            f"the checkpointed loop at {source.where(node)} has an `else:` block (line "
            f"{source.file_line(first)}); the rewritten loop is one call to the driver and has "
            "no else clause. Since break is not allowed in it, the else block always runs: "
            "instead of `else:`, put those statements after the loop.",
            first,
        )
    if isinstance(node, gast.While):
        for child in gast.walk(node.test):
            if isinstance(child, gast.NamedExpr):
                raise source.error(
                    f"the while condition at {source.where(node)} assigns {child.target.id} "
                    "with `:=`; the condition becomes a function of the loop state that must not "
                    "change it. Instead of assigning in the condition, assign at the end of the "
                    "body (and once before the loop).",
                    child,
                )
        return
    iterable = node.iter
    header = source.header_text(node)
    is_range = (
        isinstance(iterable, gast.Call)
        and isinstance(iterable.func, gast.Name)
        and iterable.func.id == "range"
    )
    if not is_range:
        raise source.error(
            f"the checkpointed loop at {source.where(node)} ({header}) iterates over something "
            "that is not range(...); the driver must know each iteration's index to run it again "
            "from a checkpoint. Instead of `for x in xs:`, write `for i in range(len(xs)):` "
            "with `x = xs[i]` in the body, or use a while loop.",
            iterable,
        )
    if (
        iterable.keywords
        or not 1 <= len(iterable.args) <= 3
        or any(isinstance(a, gast.Starred) for a in iterable.args)
    ):
        raise source.error(
            f"the checkpointed loop at {source.where(node)} ({header}) calls range with "
            "arguments it cannot take apart; instead, write range(stop), range(start, stop) or "
            "range(start, stop, step) with plain arguments.",
            iterable,
        )
    if not isinstance(node.target, gast.Name):
        raise source.error(
            f"the checkpointed loop at {source.where(node)} ({header}) unpacks its index into "
            "several names; a range gives one integer per iteration. Instead, loop over one "
            "name: `for i in range(...):`.",
            node.target,
        )


def _bound_names(target: Any) -> Iterator[str]:
    for child in gast.walk(target):
        if isinstance(child, gast.Name) and isinstance(child.ctx, gast.Store):
            yield child.id


def _check_declared_writes(source: FunctionSource, loop_node: Any) -> None:
    """A name declared global or nonlocal in the function must not be assigned in the loop."""
    declared: dict[str, Any] = {}
    for child, _ in _walk_body(source.node.body):
        if isinstance(child, (gast.Global, gast.Nonlocal)):
            for name in child.names:
                declared.setdefault(name, child)
    if not declared:
        return
    for child, _ in _walk_body(loop_node.body):
        targets: list[Any] = []
        if isinstance(child, gast.Assign):
            targets = child.targets
        elif isinstance(child, (gast.AugAssign, gast.AnnAssign, gast.NamedExpr)):
            targets = [child.target]
        elif isinstance(child, (gast.For, gast.AsyncFor)):
            targets = [child.target]
        for target in targets:
            for name in _bound_names(target):
                if name in declared:
                    kind = "global" if isinstance(declared[name], gast.Global) else "nonlocal"
                    raise source.error(
                        f"{name} is declared {kind} (line {source.file_line(declared[name])}) "
                        f"and assigned inside the checkpointed loop at {source.where(child)}; "
                        "the step function cannot rebind it, and the driver calls the step "
                        f"again when it recomputes. Instead of assigning the {kind} {name} in "
                        "the loop, keep a local variable and assign it after the loop.",
                        child,
                    )


def _check_reserved_names(source: FunctionSource) -> None:
    for child in gast.walk(source.node):
        name = None
        if isinstance(child, gast.Name):
            name = child.id
        elif isinstance(child, (gast.FunctionDef, gast.AsyncFunctionDef, gast.ClassDef)):
            name = child.name
        if name is not None and name.startswith(RESERVED_PREFIX):
            raise source.error(
                f"the name {name} starts with {RESERVED_PREFIX!r}, which checkpoint_struct keeps "
                "for the names of its generated code. Instead, rename it.",
                child,
            )
