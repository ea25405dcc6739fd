"""`checkpoint_struct`: the decorator that rewrites a function's loop into a checkpointed one."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from ckpt_transform._checks import check_max_steps, typechecked
from ckpt_transform.runtime import support
from ckpt_transform.schemes.base import Scheme
from ckpt_transform.transform.pipeline import transform_function

__all__ = ["checkpoint_struct"]

F = TypeVar("F", bound=Callable[..., Any])


class _Reporter:
    """Receives the live stats of each run and keeps them on the decorated function."""

    def __init__(self) -> None:
        self.target: Any = None

    def __call__(self, stats: Any) -> None:
        if self.target is not None:
            self.target.stats = stats


def _check_scheme(scheme: Any) -> None:
    if isinstance(scheme, Scheme):
        return
    if isinstance(scheme, type) and issubclass(scheme, Scheme):
        raise TypeError(
            f"checkpoint_struct was given the class {scheme.__name__}, not a scheme; instead of "
            f"@checkpoint_struct({scheme.__name__}), create one: "
            f"@checkpoint_struct({scheme.__name__}(...)) (e.g. Revolve(4), StoreAll())"
        )
    hint = (
        "; instead of decorating the function directly, give the scheme first: "
        "@checkpoint_struct(Revolve(4))"
        if callable(scheme)
        else ""
    )
    raise TypeError(
        f"checkpoint_struct needs a checkpointing scheme (Revolve, Periodic, OnlineR2 or "
        f"StoreAll), got {scheme!r} ({type(scheme).__name__}){hint}"
    )


@typechecked
def checkpoint_struct(
    scheme: Any,
    *,
    loop: int | str | None = None,
    progress: bool = False,
    verbose: bool = False,
    vectorize: bool = True,
    explain: bool = False,
    max_steps: int | None = None,
) -> Callable[[F], F]:
    """Rewrite a function's time-stepping loop into a checkpointed, differentiable loop.

    The decorated function computes what the undecorated one computes and is differentiable
    with autograd in any argument; the loop runs as one call to
    `ckpt_transform.runtime.driver.checkpointed_for` (or ``checkpointed_while``), each iteration
    differentiated by autograd and the whole loop driven by ``scheme``, so the reverse sweep holds
    at most the scheme's snapshots instead of every state.

    Parameters
    ----------
    scheme
        The checkpointing scheme: ``Revolve(snapshots)``, ``Periodic(...)``, ``OnlineR2(...)`` or
        ``StoreAll()``.
    loop
        Which top-level loop to rewrite when the function has several: its position among them
        (0, 1, ...) or the name of a for loop's variable.
    progress
        Show a progress bar over the forward and reverse sweeps.
    verbose
        Print the result of each transform pass (parse, fence, analyse, rewrite, codegen,
        compile) when decorating.
    vectorize
        Replace element loops of the body (``for i in range(1, n - 1): x[i] = ...``) whose
        iterations are provably independent by slice arithmetic, under a run-time guard that
        falls back to the loop as written; the generated source says which loop became which
        statement and why that was legal. False keeps every loop as written.
    explain
        With ``vectorize``, also say in the generated source why a loop was kept as written.
    max_steps
        The most iterations a while loop runs, as in `checkpointed_while` (required on JAX).

    Returns
    -------
    A decorator. The function it returns has the original's name, docstring, signature and
    attributes, and also:

    ``generated_source``
        The source of the rewritten function and of its step (and condition) function, exactly
        the text that runs; tracebacks and `inspect.getsource` show it.
    ``original``
        The undecorated function.
    ``stats``
        The `RunStats` of the last run (None before the first call).

    Raises
    ------
    TransformError
        At decoration time, when the function cannot be rewritten (no loop, ``break``,
        ``return`` or ``yield`` in the loop, a loop ``else``, ``global`` writes, a ``for`` loop
        not over ``range``, unreadable source), pointing at the line in the user's file.
    TypeError
        When ``scheme`` is not a checkpointing scheme, or an option is wrong (its type;
        ``max_steps`` for a for loop).

    Notes
    -----
    What the loop carries from one iteration to the next (its *state*) is every variable it
    assigns and later reads, and every attribute it assigns on an object (a *struct*, as in
    Checkpointing.jl's ``@checkpoint_struct``); everything it only reads is a parameter and
    receives gradients. Element updates ``x[i] = v`` in the loop body are rewritten into
    functional updates. The helpers and methods the body calls are read too: a field they assign
    is carried; an in-place write or a container they grow is a `TransformError`.

    References
    ----------
    Griewank, A. and Walther, A. (2000). Algorithm 799: revolve. ACM TOMS 26(1), 19-45.
    https://doi.org/10.1145/347837.347846
    """
    options = dict(progress=progress, verbose=verbose, vectorize=vectorize, explain=explain)
    return functools.partial(_decorate, **_checked(scheme, loop, max_steps), **options)


def _checked(scheme: Any, loop: Any, max_steps: int | None) -> dict[str, Any]:
    """The options that need more than their type checked, checked."""
    _check_scheme(scheme)
    if max_steps is not None:
        check_max_steps(max_steps, "an int >= 0 or None")
    if isinstance(loop, bool):
        raise TypeError(
            f"loop must be the position of a top-level loop (0, 1, ...) or the name of a for "
            f"loop's variable, got {loop!r}"
        )
    return {"scheme": scheme, "loop": loop, "max_steps": max_steps}


def _decorate(
    function: F,
    *,
    scheme: Any,
    loop: Any,
    progress: bool,
    verbose: bool,
    vectorize: bool,
    explain: bool,
    max_steps: int | None,
) -> F:
    """Transform ``function`` and give the result the attributes `checkpoint_struct` promises."""
    reporter = _Reporter()
    result = transform_function(
        function,
        scheme=scheme,
        loop=loop,
        progress=progress,
        max_steps=max_steps,
        machinery={"_ckpt": support, "_ckpt_scheme": scheme, "_ckpt_report": reporter},
        verbose=verbose,
        vectorize_loops=vectorize,
        explain=explain,
    )
    decorated = result.functions.function
    functools.update_wrapper(decorated, function)
    # inspect follows __wrapped__; without it, inspect.getsource shows the code that runs.
    del decorated.__wrapped__
    decorated.generated_source = result.source  # type: ignore[attr-defined]
    decorated.original = function  # type: ignore[attr-defined]
    decorated.stats = None  # type: ignore[attr-defined]
    reporter.target = decorated
    return decorated  # type: ignore[return-value]
