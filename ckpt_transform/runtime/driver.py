"""The one driver: executes a scheme's plan on a real loop, under autograd.

`checkpointed_for` and `checkpointed_while` are what a user (or the code `checkpoint_struct`
generates) calls. Without tracing they simply run the loop. Under tracing the whole loop is one
autograd primitive: its forward pass is the primal run, walking the plan's forward actions
(advance passively, store checkpoints, tape the last segment); its VJP is the reverse sweep,
walking the rest (restore, advance, tape one segment, pull the adjoint back through it, drop the
tape), accumulating the adjoints of the parameters over every step.

Only this module brings schemes, storage and the autograd backend together.
"""

from __future__ import annotations

import itertools
import math
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import autograd.builtins as abuiltins
import numpy as onp

from ckpt_transform._checks import check_max_steps
from ckpt_transform.backends.autograd import (
    getval,
    is_differentiable,
    isbox,
    make_leaves_vjp,
    make_segment_vjp,
    reverse_over_forward,
    tangent_of,
    vspace,
)
from ckpt_transform.errors import CheckpointError
from ckpt_transform.runtime import guard, randomness
from ckpt_transform.runtime.higher_order import lifted_advance, loop_primitive
from ckpt_transform.runtime.levels import level_storages
from ckpt_transform.runtime.stats import RunStats
from ckpt_transform.runtime.tree import describe, flatten, leaf_paths, unflatten
from ckpt_transform.schemes.actions import Advance, Free, Record, Restore, Reverse, Store
from ckpt_transform.schemes.base import Scheme
from ckpt_transform.storage.base import StorageSession

__all__ = ["checkpointed_for", "checkpointed_while"]

Step = Callable[..., Any]


def checkpointed_for(
    step: Step,
    state: Any,
    steps: int | range,
    scheme: Scheme,
    *,
    params: Sequence[Any] = (),
    start: int = 0,
    progress: bool = False,
    report: Callable[[RunStats], None] | None = None,
    return_stats: bool = False,
    backend: str | None = None,
) -> Any:
    """Run ``state = step(state, i, *params)`` for each ``i`` of a range, checkpointed.

    Parameters
    ----------
    step
        ``step(state, i, *params) -> state``, a pure function returning a state of the same
        structure. ``i`` is the true loop value: ``start, start+1, ...`` for an int ``steps``,
        or the range's own values (``3, 5, 7, ...`` for ``range(3, 40, 2)``).
    state
        A tuple, list, dict, namedtuple or dataclass (nested as you like) of arrays and floats;
        ints, bools and other values in it are carried along and not differentiated.
    steps
        The number of iterations, or a `range` whose values are passed as ``i``.
    scheme
        `Revolve`, `Periodic`, `OnlineR2` or `StoreAll`: where to keep checkpoints and what to
        recompute in the reverse sweep.
    params
        Values the step only reads (coefficients, forcing); they receive gradients accumulated
        over every step. Non-numeric values (functions, modules, ints) pass through.
    start
        First value of ``i`` when ``steps`` is an int.
    progress
        Show a progress bar over the forward and reverse sweeps.
    report
        Called with the live `RunStats` of this run at its start (filled in as the run goes on,
        the reverse sweep included).
    return_stats
        Return ``(state, stats)`` instead of ``state``.
    backend
        ``"autograd"`` or ``"jax"``; None picks JAX when the state or params hold jax arrays
        (`ckpt_transform.backends.jax`: a ``jax.custom_vjp``, compiled whole under ``jax.jit``).

    Returns
    -------
    The state after the last iteration (and its `RunStats` when ``return_stats``).

    Notes
    -----
    Differentiable with autograd (``grad``, ``make_vjp``, ``jacobian``, ``make_jvp``) in
    ``state`` and ``params``, to every order (``hessian``, ``grad(grad(f))``,
    ``make_jvp(grad(f))``): second-order sweeps run over (state, tangent) pairs with the same
    scheme and storage (`ckpt_transform.runtime.higher_order`). Without tracing, it is the plain
    loop: no checkpoints, no tape.
    """
    if not isinstance(steps, range):
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise TypeError(f"steps must be an int >= 0 or a range, got {steps!r}")
        if isinstance(start, bool) or not isinstance(start, int):
            raise TypeError(f"start must be an int, got {start!r}")
        steps = range(start, start + steps)
    elif start != 0:
        raise ValueError(
            f"start={start} was given with steps={steps!r}; with a range, its values are the "
            "loop index: pass range(start, ...) instead"
        )
    if _jax_backend(backend, state, params):
        return _jax().checkpointed_for(
            step, state, steps, scheme, params=params, report=report, return_stats=return_stats
        )
    loop = _Loop(step, None, steps, scheme, progress)
    return loop.run(state, params, report, return_stats)


def checkpointed_while(
    cond: Callable[..., Any],
    step: Step,
    state: Any,
    scheme: Scheme,
    *,
    params: Sequence[Any] = (),
    progress: bool = False,
    report: Callable[[RunStats], None] | None = None,
    return_stats: bool = False,
    backend: str | None = None,
    max_steps: int | None = None,
) -> Any:
    """Run ``while cond(state, *params): state = step(state, i, *params)``, checkpointed.

    ``i`` counts iterations from 0. The loop's length is found as it runs: `OnlineR2`,
    `Periodic(period=...)` and `StoreAll` need nothing more; `Revolve` needs ``steps=`` and raises
    `CheckpointError` when the loop runs a different number of times. ``cond`` is evaluated on
    plain (untraced) values. ``max_steps``: the most iterations the loop runs; it stops there
    even when ``cond`` still holds, on either backend (required on JAX, whose compiled
    ``lax.while_loop`` needs the bound). Other arguments as in `checkpointed_for`.
    """
    if _jax_backend(backend, state, params):
        return _jax().checkpointed_while(
            cond,
            step,
            state,
            scheme,
            params=params,
            max_steps=max_steps,
            report=report,
            return_stats=return_stats,
        )
    if max_steps is not None:
        check_max_steps(max_steps, "an int >= 0 or None")
    loop = _Loop(step, cond, None, scheme, progress, max_steps=max_steps)
    return loop.run(state, params, report, return_stats)


def _jax_backend(backend: str | None, state: Any, params: Any) -> bool:
    """True when the loop runs on the JAX backend (asked for, or jax arrays in it)."""
    if backend not in (None, "autograd", "jax"):
        raise ValueError(f"backend must be 'autograd', 'jax' or None, got {backend!r}")
    if backend is None:
        from ckpt_transform.backends.jax import holds_jax

        return holds_jax(state, params)
    return backend == "jax"


def _jax() -> Any:
    from ckpt_transform.backends import jax

    return jax


# -------------------------------------------------------------------------------------------------


class _Loop:
    """One call of a checkpointed loop: the step, its bounds, the scheme."""

    def __init__(
        self,
        step: Step,
        cond: Callable[..., Any] | None,
        rng: range | None,
        scheme: Scheme,
        progress: bool,
        sweeps: tuple[str, str] = ("forward", "reverse"),
        *,
        max_steps: int | None = None,
    ) -> None:
        if not callable(step):
            raise TypeError(f"step must be callable, got {step!r}")
        if cond is not None and not callable(cond):
            raise TypeError(f"cond must be callable, got {cond!r}")
        if not isinstance(scheme, Scheme):
            raise TypeError(
                f"scheme must be a checkpointing scheme (Revolve, Periodic, OnlineR2, StoreAll), "
                f"got {scheme!r}"
            )
        self.step = step
        self.cond = cond
        self.rng = rng
        self.scheme = scheme
        self.progress = progress
        self.sweeps = sweeps  # the names of its forward and reverse sweeps (stats, progress)
        self.max_steps = max_steps  # a while loop stops there whatever its condition says

    def goes_on(self, k: int, state: Any, params: Sequence[Any]) -> bool:
        """Whether a while loop runs another step from ``state``, the state at k."""
        return (self.max_steps is None or k < self.max_steps) and bool(self.cond(state, *params))

    def index(self, k: int) -> int:
        return k if self.rng is None else self.rng[k]

    def run(
        self,
        state: Any,
        params: Sequence[Any],
        report: Callable[[RunStats], None] | None,
        return_stats: bool,
    ) -> Any:
        if not isinstance(params, (tuple, list)):
            raise TypeError(
                f"params must be a tuple of the values the step reads, got {type(params).__name__}"
            )
        stats = self._stats(report)
        s_leaves, s_def = flatten(state)
        p_leaves, p_def = flatten(tuple(params))
        watch = guard.start(self.step, params)  # None unless the step asks to be guarded
        if any(isbox(x) for x in s_leaves) or any(isbox(x) for x in p_leaves):
            out = _Run(self, stats, s_leaves, s_def, p_leaves, p_def).call()
        else:
            out = self.plain(state, tuple(params), stats)
        guard.finish(watch)  # what the step changed outside its state, before returning
        return (out, stats) if return_stats else out

    def _stats(self, report: Callable[[RunStats], None] | None) -> RunStats:
        storage = self.scheme.storage
        stats = RunStats(
            scheme=repr(self.scheme),
            storage=repr(storage) if storage else "ArrayStorage()",
            sweep=self.sweeps[0],
        )
        if report is not None:
            report(stats)
        return stats

    def start(
        self,
        state: Any,
        params: Sequence[Any],
        report: Callable[[RunStats], None],
        diff: tuple[list[int], list[int]],
    ) -> _Run:
        """A run over plain values whose sweeps the caller drives (`_Run.forward`, `reverse`).

        ``diff`` names the differentiable state and parameter leaves (indices into their
        flattened lists): nothing is traced, so no autograd tape wraps the run and its output
        cotangent is used as given (the lifted loop's fused sweep, `higher_order`).
        """
        stats = self._stats(report)
        s_leaves, s_def = flatten(state)
        p_leaves, p_def = flatten(tuple(params))
        return _Run(self, stats, s_leaves, s_def, p_leaves, p_def, diff)

    def plain(self, state: Any, params: tuple, stats: RunStats) -> Any:
        """The loop itself, for an untraced call: no checkpoints, no tape."""
        step = self.step
        bar = _bar(self.progress, self.sweeps[0], None if self.rng is None else len(self.rng))
        if self.rng is not None:
            self.scheme.plan(len(self.rng))  # lets the scheme reject a loop it cannot plan
            for k, i in enumerate(self.rng):
                state = step(state, i, *params)
                stats.forward_steps = k + 1
                bar.update()
            stats.steps = len(self.rng)
        else:
            self.scheme.plan(None)
            k = 0
            while self.goes_on(k, state, params):
                state = step(state, k, *params)
                k += 1
                stats.forward_steps = k
                bar.update()
            stats.steps = k
            self.scheme.plan(k)  # e.g. Revolve(steps=N) on a loop that ran k != N times
        bar.close()
        if any(isbox(x) for x in flatten(state)[0]):
            raise CheckpointError(
                "the loop's state and params are not being differentiated, yet the step returned "
                "traced values: the step reads a value being differentiated from a closure, a "
                "global or an object that is not a dataclass. Pass it (or its arrays) through "
                "params=(...) so the loop is checkpointed (as it is, autograd would tape every "
                "step)"
            )
        return state


class _Run:
    """One traced run: the state split into differentiable and carried leaves, and the sweeps."""

    def __init__(
        self,
        loop: _Loop,
        stats: RunStats,
        s_leaves: list[Any],
        s_def: Any,
        p_leaves: list[Any],
        p_def: Any,
        diff: tuple[list[int], list[int]] | None = None,
    ) -> None:
        self.loop = loop
        self.stats = stats
        stats.differentiated = True
        self.s_def, self.p_def = s_def, p_def
        self.s_paths = leaf_paths(s_def)
        self.s_desc = describe(s_def)
        self.s_diff = [i for i, x in enumerate(s_leaves) if is_differentiable(x)]
        if diff is not None:  # a run over plain values (`_Loop.start`): the caller says which
            self.s_diff = list(diff[0])
        diff_set = set(self.s_diff)
        self.s_static_idx = [i for i in range(len(s_leaves)) if i not in diff_set]
        # A parameter is read, never written: one that is not being traced now (a constant
        # such as a mask, or a value the decorator passes on) can never carry a gradient, so it
        # is not taped as an input and no step's VJP computes its cotangent.
        self.p_diff = [i for i, x in enumerate(p_leaves) if isbox(x) and is_differentiable(x)]
        if diff is not None:
            self.p_diff = list(diff[1])
        self._check_untraced_leaves(s_leaves, p_leaves)
        self.s_leaves = s_leaves
        self.p_leaves = p_leaves
        self.n_s = len(self.s_diff)
        self.data_idx = [i for i, x in enumerate(s_leaves) if _is_data(getval(x))]
        # The common case of a state that is one array or float, with no parameter traced: its
        # segments are taped and its checkpoints kept without flattening or merging leaves. The
        # leaf may be bare or the one member of a tuple (the state `checkpoint_struct` makes of
        # a loop that carries one variable): ``wrap`` says which.
        self.wrap = s_def == _ONE_TUPLE
        self.one_leaf = (
            (s_def is None or self.wrap) and self.s_diff == [0] == self.data_idx and not self.p_diff
        )
        self.steps: int | None = None  # T, once the primal run has ended
        self.swept = False  # the reverse sweep has consumed the checkpoints
        self.session: Any = None
        self._cond_true_at: int | None = None  # a state where the while condition held
        self.tapes: dict[int, tuple[int, Callable[[Any], Any]]] = {}

    def _check_untraced_leaves(self, s_leaves: list[Any], p_leaves: list[Any]) -> None:
        p_paths = leaf_paths(self.p_def, "params")
        for leaves, diff, paths in (
            (s_leaves, self.s_diff, self.s_paths),
            (p_leaves, self.p_diff, p_paths),
        ):
            diff_set = set(diff)
            for i, x in enumerate(leaves):
                if isbox(x) and i not in diff_set:
                    raise CheckpointError(
                        f"{paths[i]} is being differentiated but holds "
                        f"{type(getval(x)).__name__} values; only floats, complex numbers "
                        "and float/complex arrays can carry gradients"
                    )

    # -- the autograd primitive ------------------------------------------------------------------

    def call(self) -> Any:
        d_state = [self.s_leaves[i] for i in self.s_diff]
        d_params = [self.p_leaves[i] for i in self.p_diff]
        # make_jvp(grad(f)): the tangent sweep runs the lifted loop taped, and one reverse sweep
        # of it gives the gradient and its JVP (`higher_order._fused_reverse`)
        hvp = any(reverse_over_forward(x) for x in d_state + d_params)
        # every value traced by exactly make_jvp(grad(f)) or by the reverse trace alone
        self.lifted_given = _tangents(d_state + d_params) if hvp else None
        self.fuse_hvp = self.lifted_given is not None
        self.lifted_tape: Any = None
        self.lifted_out: Any = None
        self.fused: Any = None
        out = loop_primitive(self, *d_state, *d_params)
        leaves = list(self.final_static)
        for j, i in enumerate(self.s_diff):
            leaves[i] = out[j]
        return unflatten(self.s_def, leaves)

    def drop_checkpoints(self) -> None:
        """Free the primal run's checkpoints and tape; a later reverse sweep redoes the run."""
        self._close()
        self.swept = True

    def _merge(self, static: list[Any], diff_idx: list[int], values: Sequence[Any]) -> list[Any]:
        leaves = list(static)
        for j, i in enumerate(diff_idx):
            leaves[i] = values[j]
        return leaves

    def _params(self, d_params: Sequence[Any]) -> tuple:
        return unflatten(self.p_def, self._merge(self.p_static, self.p_diff, d_params))

    # -- running steps ---------------------------------------------------------------------------

    def _split(self, state: Any, n: int, *, trace: int | None = None) -> tuple[list, list]:
        """Flatten a step's output into (all leaves, differentiable leaves), checking it."""
        leaves, tdef = flatten(state)
        if tdef != self.s_def:
            raise CheckpointError(
                f"the step changed the structure of the loop state at step {n}: it received "
                f"{describe(self.s_def)} and returned {describe(tdef)}; a step must return a "
                "state of the same structure (same containers, same keys and fields)"
            )
        for i in self.s_static_idx:
            x = leaves[i]
            if is_differentiable(x):
                raise CheckpointError(
                    f"{self.s_paths[i]} entered the loop as a {type(self.s_leaves[i]).__name__} "
                    f"({getval(self.s_leaves[i])!r}) but step {n} made it a "
                    f"{type(getval(x)).__name__}, so its derivative cannot be carried; start it "
                    "as a float (e.g. 0.0 instead of 0)"
                )
        # A box from another trace than this segment's (or any box in a passive step) means the
        # step read a traced value it was not given: its gradient would be lost.
        d_leaves = [leaves[i] for i in self.s_diff]
        for j, x in enumerate(d_leaves):
            if isbox(x) and (trace is None or x._trace != trace or isbox(x._value)):
                raise CheckpointError(
                    f"step {n} returned a traced value in {self.s_paths[self.s_diff[j]]} that "
                    "it was not given: the step reads a value being differentiated from a "
                    "closure, a global or an object that is not a dataclass. Pass it (or its "
                    "arrays) through params=(...) so its gradient is computed"
                )
        return leaves, d_leaves

    def _advance(self, n0: int, n1: int | None, bar: Any) -> int:
        """Run steps passively from the current state at n0; return where the loop stands.

        The hot path of every recomputing scheme: a passive step costs little more than the
        user's own arithmetic, so the loop does nothing per step but call it and compare the
        state's top-level type. The full structure check (`_split`: containers, keys, leaf
        kinds, stray traced values) runs every `_CHECK_EVERY` steps, on the state the advance
        ends at (the only state that is stored, taped or returned, so a changed structure
        raises before it could reach a checkpoint or a tape and give a wrong gradient), and on
        the state a failing step was given (so a step that breaks on a malformed state gets a
        `CheckpointError` naming the change, not an unrelated ``IndexError``).
        """
        loop, params = self.loop, self.params
        step, cond = loop.step, loop.cond
        state = self.cur
        stop = self._stop(n1)
        show = bar is not _NO_BAR
        k = n0
        if cond is None:
            stop = int(stop)
            indices = loop.rng[n0:stop] if loop.rng is not None else range(n0, stop)
            several = lifted_advance(step)  # the lifted loop runs a stretch in one trace
            if several is not None and not show and len(indices):
                state = several(state, indices, *params)
                k += len(indices)
                indices = ()
            state, k = self._steps(state, indices, k, bar if show else None)
        else:  # a while loop: its index is its count, and its condition is asked at each state
            known_true = self._cond_true_at == n0
            self._cond_true_at = None
            indices = itertools.count(n0) if stop == math.inf else range(n0, int(stop))
            state, k = self._steps(state, indices, k, bar if show else None, cond, known_true)
        return self._advanced(state, n0, k)

    def _advance_leaf(self, n0: int, n1: int | None) -> int:
        """`_advance` for a one-leaf `for` loop without a progress bar (the same checks)."""
        rng = self.loop.rng
        indices = rng[n0:n1] if n1 is not None and n1 <= len(rng) else rng[n0:]
        state, k = self._steps(self.cur, indices, n0, None)
        return self._advanced(state, n0, k)

    def _steps(
        self,
        state: Any,
        indices: Iterable[int],
        k: int,
        bar: Any,
        cond: Callable[..., Any] | None = None,
        known_true: bool = False,
    ) -> tuple[Any, int]:
        """Run the step at each of ``indices`` from ``state`` (the state at k), untaped: the
        state reached and its k. The state's top-level type is compared every step and its
        whole structure every `_CHECK_EVERY` steps (`_advance`); ``bar``: None or a bar. A while
        loop's ``cond`` stops it at the first state where it is false (``known_true``: it held
        at the first state, so it is not asked there again)."""
        step, params = self.loop.step, self.params
        top = type(state)
        first = k
        for i in indices:
            if cond is not None and not (known_true and k == first) and not cond(state, *params):
                break
            try:
                new = step(state, i, *params)
            except Exception:
                self._split(state, k)  # a malformed state it was given: say so
                raise
            state = new
            k += 1
            if type(state) is not top or not k % _CHECK_EVERY:
                self._split(state, k)
                top = type(state)
            if bar is not None:
                bar.update()
        return state, k

    def _advanced(self, state: Any, n0: int, k: int) -> int:
        """Make ``state``, reached at k from n0, the current state; return k."""
        self.stats.forward_steps += k - n0
        if k > n0:
            leaf = self._plain_leaf(state) if self.one_leaf else None
            self.cur_leaves = self._split(state, k)[0] if leaf is None else [leaf]
        self.cur = state
        return k

    def _plain_leaf(self, state: Any) -> Any:
        """A one-leaf state's leaf when it needs no further check (a plain array or number in
        the state's own form), else None (the caller runs the full check, `_split`)."""
        if self.wrap:
            if type(state) is not tuple or len(state) != 1:
                return None
            state = state[0]
        return state if type(state) in _PLAIN else None

    def _stop(self, n1: int | None) -> float:
        stop = math.inf if n1 is None else n1
        if self.loop.rng is not None:
            stop = min(stop, len(self.loop.rng))
        if self.loop.max_steps is not None:
            stop = min(stop, self.loop.max_steps)
        return stop

    def _record(self, n0: int, n1: int | None, bar: Any) -> int:
        """Tape steps from the current state at n0 as one segment; return where it ends.

        The segment's differentiable inputs (state leaves, then params) are taped as one value
        when there is only one (the common case of a single array or float state and no params),
        else each leaf on its own (`make_leaves_vjp`): no container is traced, so pulling a
        segment back allocates no tuple of zeros per leaf. Likewise a single differentiable
        output leaf is returned bare. `_SegmentVJP` maps the tape's VJP back to tuples of
        cotangents.
        """
        if self.one_leaf and bar is _NO_BAR and self.loop.cond is None:
            return self._record_leaf(n0, n1)
        loop, n_s = self.loop, self.n_s
        stop = self._stop(n1)
        static = self.cur_leaves
        out: dict[str, Any] = {}
        single_in = n_s + len(self.d_params) == 1
        single_out = n_s == 1
        show = bar is not _NO_BAR
        step, cond = loop.step, loop.cond
        s_def, s_diff = self.s_def, self.s_diff
        known_true = self._cond_true_at == n0
        self._cond_true_at = None

        def segment(x: Any) -> Any:
            xs = (x,) if single_in else x  # several leaves come as a plain tuple, each traced
            state = unflatten(s_def, self._merge(static, s_diff, xs[:n_s]))
            params = self._params(xs[n_s:]) if self.p_leaves else ()
            raw_params = self.params
            k = n0
            if cond is None and loop.rng is not None:
                for i in loop.rng[n0 : int(stop)]:
                    state = step(state, i, *params)
                    k += 1
                    if show:
                        bar.update()
            else:
                while k < stop:
                    if cond is not None and not (known_true and k == n0):
                        raw = unflatten(s_def, [getval(v) for v in flatten(state)[0]])
                        if not cond(raw, *raw_params):
                            break
                    state = step(state, loop.index(k), *params)
                    k += 1
                    if show:
                        bar.update()
            leaves, d_leaves = self._split(state, k, trace=trace_of(xs[0]) if xs else None)
            out["k"], out["leaves"] = k, leaves
            if not single_in:
                return tuple(d_leaves)
            return d_leaves[0] if single_out else abuiltins.tuple(d_leaves)

        cur = self.cur_leaves
        x = tuple([cur[i] for i in s_diff] + self.d_params)
        if single_in:
            vjp, value = make_segment_vjp(segment, x[0])
            tape = _SegmentVJP(vjp, True, single_out)
            values = (value,) if single_out else value
        else:
            vjp, values = make_leaves_vjp(segment, x)
            tape = _SegmentVJP(vjp, False, False)
        k = out["k"]
        if k > n0:
            self.tapes[k] = (n0, tape)
            self.stats._taped(k - n0)
        leaves = self._merge([getval(v) for v in out["leaves"]], s_diff, values)
        self.cur_leaves = leaves
        self.cur = unflatten(s_def, leaves)
        return k

    def _record_leaf(self, n0: int, n1: int | None) -> int:
        """`_record` for a state that is one differentiable leaf and no traced parameter.

        The segment is taped as `_run_steps` over the state itself: no closure, no flattening;
        an output that is not a plain array or number goes through the full check (`_split`),
        which names a changed structure or a traced value the step was not given.
        """
        rng = self.loop.rng
        indices = rng[n0:n1] if n1 is not None and n1 <= len(rng) else rng[n0:]
        self._cond_true_at = None
        wrap, step, x = self.wrap, self.loop.step, self.cur_leaves[0]
        if len(indices) == 1 and not wrap:  # one step: taped as the step itself
            vjp, value = make_segment_vjp(step, x, indices[0], *self.params)
        else:
            run = _run_steps_wrapped if wrap else _run_steps
            vjp, value = make_segment_vjp(run, x, step, indices, self.params)
        k = n0 + len(indices)
        if type(value) not in _PLAIN:  # any box here is foreign: the segment's own was unboxed
            end = value.state if type(value) is _Unwrapped else (value,) if wrap else value
            self._split(end, k)
        if k > n0:
            self.tapes[k] = (n0, _SegmentVJP(vjp, True, True))
            self.stats._taped(k - n0)
        self.cur = (value,) if wrap else value
        self.cur_leaves = [value]
        return k

    # -- the sweeps ------------------------------------------------------------------------------

    def forward(self, d_state: Sequence[Any], d_params: Sequence[Any]) -> tuple:
        """The primal run; on any error its checkpoints are dropped before the error leaves."""
        try:
            return self._forward(d_state, d_params)
        except BaseException:
            self._abort()
            raise

    def _forward(self, d_state: Sequence[Any], d_params: Sequence[Any]) -> tuple:
        """The primal run: execute the plan's forward actions; return the differentiable output."""
        loop, stats = self.loop, self.stats
        self.s_static = [getval(x) for x in self.s_leaves]
        self.p_static = [getval(x) for x in self.p_leaves]
        self.d_params = list(d_params)
        self.params = self._params(d_params)
        drawn = randomness.snapshot(loop.step, self.params)  # a step must not draw at random
        self.cur_leaves = self._merge(self.s_static, self.s_diff, d_state)
        self.cur = unflatten(self.s_def, self.cur_leaves)
        known = (
            self.steps if self.steps is not None else (None if loop.rng is None else len(loop.rng))
        )
        self._open(known)
        bar = _bar(loop.progress, loop.sweeps[0], known)
        # The loop's end is checked before the first action and after every Advance/Record,
        # and the primal run stops as soon as the state at T is current: nothing the plan puts
        # at the final state (a store, a free) is taken (`schemes.base.cut_forward`). A while
        # loop's condition is evaluated once per state: a True found here is handed on to the
        # next span (`_cond_true_at`), which does not ask again.
        n, ended = 0, False
        target = known if (loop.rng is not None or self.steps is not None) else None
        self._cond_true_at = None
        if target is None:
            if loop.goes_on(0, self.cur, self.params):
                self._cond_true_at = 0
            else:
                ended = True
        elif target == 0:
            ended = True
        if not ended:
            actions = self.plan.forward()
            if self.one_leaf and bar is _NO_BAR and loop.cond is None:
                n, ended = self._forward_leaf(actions, known)  # type: ignore[arg-type]
            else:
                n, ended = self._forward_actions(actions, target, bar)
        bar.close()
        if not ended:
            if target is None and loop.goes_on(n, self.cur, self.params):
                self._length_mismatch(n, running=True)
            if target is not None and n != target:
                self._length_mismatch(n)
        if target is None:
            # a while loop: its length is known now; a plan made for a fixed length checks it
            if not loop.scheme.online:
                try:
                    loop.scheme.plan(n)
                except CheckpointError:
                    self._close()
                    raise
        self.steps = stats.steps = n
        randomness.check(drawn, getattr(loop.step, "__name__", "step"))
        self.final_static = [getval(x) for x in self.cur_leaves]
        for i in self.s_diff:
            self.final_static[i] = None
        return tuple(self.cur_leaves[i] for i in self.s_diff)

    def _forward_actions(self, actions: Iterator[Any], target: int | None, bar: Any) -> tuple:
        """Execute the primal run's actions; return where it stands and whether it ended."""
        loop, n = self.loop, 0
        for action in actions:
            if isinstance(action, (Advance, Record)):
                if action.n0 != n:
                    raise CheckpointError(f"{action} does not start at the current state {n}")
                run = self._advance if isinstance(action, Advance) else self._record
                n = run(n, action.n1, bar)
                if action.n1 is None or n < action.n1:
                    return n, True
                if target is not None:
                    if n >= target:
                        return n, True
                elif loop.goes_on(n, self.cur, self.params):
                    self._cond_true_at = n
                else:
                    return n, True
            else:
                self._slot_action(action, n)
        return n, False

    def _forward_leaf(self, actions: Iterator[Any], target: int) -> tuple:
        """`_forward_actions` for a one-leaf `for` loop without a progress bar: actions told
        apart by exact type first, spans run by the one-leaf `_advance_leaf` and `_record_leaf`,
        memory stores by `_store_leaf`."""
        n = 0
        for action in actions:
            kind = type(action)
            if kind is Store and action[2] == "memory":
                self._store_leaf(action, n)
            elif kind is Advance or kind is Record or isinstance(action, (Advance, Record)):
                n0, n1 = action
                if n0 != n:
                    raise CheckpointError(f"{action} does not start at the current state {n}")
                if isinstance(action, Advance):
                    n = self._advance_leaf(n, n1)
                else:
                    n = self._record_leaf(n, n1)
                if n1 is None or n < n1 or n >= target:
                    return n, True
            else:
                self._slot_action(action, n)
        return n, False

    def _open(self, known: int | None) -> None:
        """Open the storage sessions and make the plan of a primal run of ``known`` steps."""
        scheme, stats = self.loop.scheme, self.stats
        self.sessions = _open_sessions(scheme)
        self.session = self.sessions["memory"]
        self._finalizer = weakref.finalize(self, _close_sessions, list(self.sessions.values()))
        if getattr(scheme, "costs", 0) is None and known:  # Multilevel: plan with measured costs
            scheme = scheme.with_costs(self._measure_costs(known))  # type: ignore[attr-defined]
        stats.costs = getattr(scheme, "costs", None) if stats.costs is None else stats.costs
        self.plan = scheme.plan(None if scheme.online else known)
        self.slot_bytes: dict[tuple[str, int], int] = {}
        self.slot_objects: dict[tuple[str, int], list[Any]] = {}

    def _length_mismatch(self, n: int, *, running: bool = False) -> None:
        self._close()
        scheme = self.loop.scheme
        if running:
            raise CheckpointError(
                f"the while loop is still running after the {n} iterations that {scheme!r} "
                "plans for; give the right steps= or use OnlineR2 for a loop of unknown length"
            )
        scheme.plan(n)  # the scheme's own message names both numbers
        raise CheckpointError(f"the loop ran {n} iterations, not the number {scheme!r} plans for")

    def _store_leaf(self, action: Store, n: int) -> None:
        """`_slot_action` for a one-leaf state's store in memory: the leaf list is kept as is."""
        at, slot, _ = action
        if at != n:
            raise CheckpointError(f"{action}: the current state is {n}")
        nbytes = self.session.put(slot, at, self.cur_leaves, self.s_desc)
        self.slot_bytes[("memory", slot)] = nbytes
        self.stats._stored(nbytes)

    def _slot_action(self, action: Any, n: int | None) -> None:
        # Storage holds the numeric leaves (arrays and numbers); other leaves (a label, a
        # function, None) stay here by reference, beside the slot. Each level (`Store.level`)
        # has its own session and its own slot numbers. A one-leaf state is its own data leaf.
        stats, data, one = self.stats, self.data_idx, self.one_leaf
        level = getattr(action, "level", "memory")
        session, key = self.sessions.get(level), (level, getattr(action, "slot", None))
        if session is None:
            raise CheckpointError(f"{action}: {self.loop.scheme!r} has no {level} storage")
        if isinstance(action, Store):
            if n is not None and action.n != n:
                raise CheckpointError(f"{action}: the current state is {n}")
            leaves = self.cur_leaves
            nbytes = session.put(
                action.slot, action.n, leaves if one else [leaves[i] for i in data], self.s_desc
            )
            self.slot_bytes[key] = nbytes
            if not one:
                kept = list(leaves)  # not the data leaves: storage holds them (on disk, perhaps)
                for i in data:
                    kept[i] = None
                self.slot_objects[key] = kept
            stats._stored(nbytes, level)
        elif isinstance(action, Restore):
            step, stored = session.get(action.slot)
            if step != action.n:
                raise CheckpointError(f"{action}: the slot holds the state at {step}")
            stats._read(level)
            if one:
                self.cur_leaves = [stored[0]]
                self.cur = (stored[0],) if self.wrap else stored[0]
                return
            leaves = list(self.slot_objects[key])
            for j, i in enumerate(data):
                leaves[i] = stored[j]
            self.cur_leaves = leaves
            self.cur = unflatten(self.s_def, leaves)
        elif isinstance(action, Free):
            session.delete(action.slot)
            stats._freed(self.slot_bytes.pop(key), level)
            if not one:
                del self.slot_objects[key]
        else:
            raise CheckpointError(f"{action} cannot be executed here")

    def reverse(self, g: Sequence[Any]) -> list[Any]:
        """The reverse sweep: the VJP of the whole loop, from the output cotangent ``g``."""
        if self.swept:  # a second VJP (jacobian): the checkpoints were consumed; redo the primal
            self.forward(self.d_state0, self.d_params0)
        self.swept = True
        stats, T = self.stats, self.steps
        stats.reverse_sweeps += 1
        stats._swept(self.loop.sweeps[1])
        adj = list(g)
        adj_p = [vspace(p).zeros() for p in self.d_params]
        bar = _bar(self.loop.progress, self.loop.sweeps[1], T)
        try:
            actions = self.plan.reverse(T)
            # A scheme may forgo reads ahead (`Multilevel`: a state read during a VJP is held at
            # the sweep's peak, above its budgets).
            if self.loop.scheme.read_ahead and any(
                type(s).prefetch is not StorageSession.prefetch for s in self.sessions.values()
            ):
                actions = _read_ahead(actions, self._prefetch)
            n_s = self.n_s
            if self.one_leaf and bar is _NO_BAR:  # the adjoint is that one leaf's, bare
                adj = [self._sweep_leaf(actions, adj[0])]
            elif self.one_leaf:
                adj = [self._sweep(actions, adj[0], _pull_leaf, bar)]
            else:

                def pull(tape: _SegmentVJP, a: tuple) -> tuple:
                    cot = tape(a)
                    for j, c in enumerate(cot[n_s:]):
                        adj_p[j] = adj_p[j] + c
                    return tuple(cot[:n_s])

                adj = self._sweep(actions, tuple(adj), pull, bar)
        except BaseException:
            self._abort()
            raise
        finally:
            bar.close()
        self._close()
        return list(adj) + adj_p

    def _sweep(
        self, actions: Iterator[Any], adj: Any, pull: Callable[[Any, Any], Any], bar: Any
    ) -> Any:
        """Execute the reverse sweep's actions; ``pull(tape, adj)`` pulls the adjoint back
        through one segment's tape and returns the adjoint before it."""
        stats, tapes, show = self.stats, self.tapes, bar is not _NO_BAR
        for action in actions:
            kind = type(action)
            if kind not in _KINDS:  # a subclass of an action: dispatch on its base
                kind = next((k for k in _KINDS if isinstance(action, k)), kind)
            if kind is Reverse:
                n0, tape = tapes.pop(action.n1, (None, None))
                if n0 != action.n0:
                    raise CheckpointError(f"{action}: no tape is held for this segment")
                # The state after the segment is not needed by its VJP nor after it: drop it
                # before the VJP's temporaries are made (the peak of the sweep is there).
                self.cur = self.cur_leaves = None
                adj = pull(tape, adj)
                del tape  # drop the tape now, not when the next segment replaces it
                stats.taped_now -= action.n1 - n0
                if show:
                    bar.update(action.n1 - n0)
            elif kind is Record:
                self._record(action.n0, action.n1, _NO_BAR)
            elif kind is Advance:
                self._advance(action.n0, action.n1, _NO_BAR)
            else:
                self._slot_action(action, None)
        return adj

    def _sweep_leaf(self, actions: Iterator[Any], adj: Any) -> Any:
        """`_sweep` for a one-leaf state without a progress bar: the hot path of a small state.

        Actions are told apart by exact type (a subclass goes through `_sweep`'s dispatch), read
        as the tuples they are, and the memory level's restores, frees and stores are done here,
        the leaf carried bare; anything else goes through the general `_slot_action`.
        """
        stats, tapes, memory, wrap = self.stats, self.tapes, self.session, self.wrap
        slot_bytes, loop_for = self.slot_bytes, self.loop.cond is None
        for action in actions:
            kind = type(action)
            if kind is Reverse:
                n0, n1 = action
                held = tapes.pop(n1, None)
                if held is None or held[0] != n0:
                    raise CheckpointError(f"{action}: no tape is held for this segment")
                # The state after the segment is not needed by its VJP nor after it: drop it
                # before the VJP's temporaries are made (the peak of the sweep is there).
                self.cur = self.cur_leaves = None
                adj = held[1].vjp(adj)
                del held  # drop the tape now, not when the next segment replaces it
                stats.taped_now -= n1 - n0
            elif kind is Record:
                if loop_for:
                    self._record_leaf(action[0], action[1])
                else:
                    self._record(action[0], action[1], _NO_BAR)
            elif kind is Restore and action[2] == "memory":
                at, stored = memory.get(action[1])
                if at != action[0]:
                    raise CheckpointError(f"{action}: the slot holds the state at {at}")
                stats.memory_reads += 1
                self.cur_leaves = [stored[0]]
                self.cur = (stored[0],) if wrap else stored[0]
                # no local may hold the state: a VJP that follows drops it (see Reverse)
                stored = None
            elif kind is Free and action[2] == "memory":
                memory.delete(action[1])
                stats._freed(slot_bytes.pop(("memory", action[1])))
            elif kind is Store and action[2] == "memory" and self.cur is not None:
                self._store_leaf(action, action[0])
            elif kind is Advance:
                if loop_for:
                    self._advance_leaf(action[0], action[1])
                else:
                    self._advance(action[0], action[1], _NO_BAR)
            else:
                adj = self._sweep(iter((action,)), adj, _pull_leaf, _NO_BAR)
        return adj

    def _prefetch(self, action: Restore) -> None:
        self.sessions[action.level].prefetch(action.slot)

    def _measure_costs(self, steps: int) -> dict[str, float]:
        """Time a passive step from the input and a disk write and read of it (in step units).

        The first steps of the loop (at most ``_TIMED_STEPS`` of its ``steps``) are evaluated
        once more than the plan needs (counted in ``forward_steps``), each from the state the
        one before made, as the loop runs them, and the fastest time is kept: a single timing is
        often twice the step's usual time (the first call allocates its arrays afresh, and a
        busy machine may preempt it), which would make writes look cheaper than they are, and a
        plan that counts on hiding them behind a few steps would wait for them instead. The same
        step run again from one state, its result dropped each time, is slower than in the loop
        too (12-13 ms against 9-10 ms for a heat step of 10^6 values: the allocator hands the
        freed result's memory back and faults it in again), so the steps are chained. The disk
        write (flushed to the file when the storage writes behind) and read use a slot the plan
        never takes, freed at once.
        """
        loop, probe = self.loop, 1 << 30
        leaves = [self.cur_leaves[i] for i in self.data_idx]
        step_time, state = float("inf"), self.cur
        timed = min(_TIMED_STEPS, steps)
        for k in range(timed):
            start = time.perf_counter()
            state = loop.step(state, loop.index(k), *self.params)
            step_time = min(step_time, max(time.perf_counter() - start, 1e-9))
        del state
        self.stats.forward_steps += timed
        disk = self.sessions["disk"]
        flush = getattr(disk, "flush", None)  # storage that writes behind: wait for the file
        start = time.perf_counter()
        disk.put(probe, 0, leaves, self.s_desc)
        if flush is not None:
            flush()
        write = time.perf_counter() - start
        start = time.perf_counter()
        disk.get(probe)
        read = time.perf_counter() - start
        disk.delete(probe)
        costs = {
            "write": float(f"{write / step_time:.2g}"),
            "read": float(f"{read / step_time:.2g}"),
        }
        self.stats.costs = {**costs, "measured": True}
        return costs

    def _close(self) -> None:
        self.tapes.clear()
        if self.session is not None:
            self._finalizer()

    def _abort(self) -> None:
        """Close the session on an error's way out (its file and thread go before the error
        reaches the caller); a failure to close must not hide the error that ended the run."""
        try:
            self._close()
        except CheckpointError:
            pass


# Full structure check of the state every this many passive steps (and always at an advance's
# end): a broken step is reported within a few steps, at no measurable cost per step.
_CHECK_EVERY = 64

# Passive steps the driver times before a `Multilevel` plan with measured costs (the fastest
# counts; `_Run._measure_costs`).
_TIMED_STEPS = 3


def _tangents(dvals: list[Any]) -> tuple[list[Any], list[Any]] | None:
    """``(values, tangents)`` that ``make_jvp(grad(f))`` traces ``dvals`` with, or None.

    Each value is reverse-traced over forward-traced (its tangent is read) or reverse-traced
    only (no tangent); any other nesting (a third order) gives None.
    """
    values, tangents = [], []
    for x in dvals:
        if not isbox(x):
            values.append(x)
            tangents.append(None)
            continue
        if tangent_of(x) is not None:  # forward-traced outside the reverse trace
            return None
        vt = tangent_of(x._value)
        if vt is not None and not isbox(vt[0]) and not isbox(vt[1]):
            values.append(vt[0])
            tangents.append(vt[1])
        elif not isbox(x._value):
            values.append(x._value)
            tangents.append(None)
        else:
            return None
    return values, tangents


class _SegmentVJP:
    """A segment's VJP taking and returning tuples, whatever form the tape was made in."""

    __slots__ = ("single_in", "single_out", "vjp")

    def __init__(self, vjp: Callable[[Any], Any], single_in: bool, single_out: bool) -> None:
        self.vjp, self.single_in, self.single_out = vjp, single_in, single_out

    def __call__(self, g: tuple) -> tuple:
        cot = self.vjp(g[0] if self.single_out else g)
        return (cot,) if self.single_in else cot


_KINDS = (Reverse, Record, Advance, Store, Restore, Free)


def _pull_leaf(tape: _SegmentVJP, adj: Any) -> Any:
    """A one-leaf segment's tape maps a bare leaf's adjoint to a bare leaf's adjoint."""
    return tape.vjp(adj)


# How far the reverse sweep looks ahead in the plan for the next restore to read ahead.
_LOOKAHEAD = 256


def _read_ahead(actions: Iterator[Any], prefetch: Callable[[Any], None]) -> Iterator[Any]:
    """Yield ``actions`` in order, telling storage which slot the next `Restore` reads.

    After each restore (and at the start) the plan is read ahead, at most `_LOOKAHEAD` actions,
    to the next `Restore`, and ``prefetch(restore)`` is called, so storage with a background thread
    (`HDF5Storage`) reads that checkpoint while the steps before it compute. Actions are still
    executed one by one, in the plan's order; a slot stored or freed before it is restored drops
    its read-ahead in the storage, so reading early never returns stale data.
    """
    ahead: deque[Any] = deque()
    want = True  # the next restore is not known (or not yet announced)

    def scan() -> bool:
        """Buffer actions up to the next restore; True when announced or the plan is done."""
        while len(ahead) < _LOOKAHEAD:
            action = next(actions, None)
            if action is None:
                return True
            ahead.append(action)
            if type(action) is Restore:
                prefetch(action)
                return True
        return False

    while True:
        if want:
            want = not scan()
        if ahead:
            action = ahead.popleft()
        else:
            action = next(actions, None)
            if action is None:
                return
        yield action
        if type(action) is Restore:
            following = next((a for a in ahead if type(a) is Restore), None)
            if following is not None:
                prefetch(following)
                want = False
            else:
                want = True


def _run_steps(state: Any, step: Step, indices: range, params: tuple) -> Any:
    """``state = step(state, i, *params)`` for each ``i`` of ``indices``: one taped segment."""
    for i in indices:
        state = step(state, i, *params)
    return state


def _run_steps_wrapped(x: Any, step: Step, indices: range, params: tuple) -> Any:
    """`_run_steps` over the state ``(x,)``, returning the one member of the state it ends at
    (or that state as an `_Unwrapped` when it is not a tuple of one)."""
    state = (x,)
    for i in indices:
        state = step(state, i, *params)
    if type(state) is tuple and len(state) == 1:
        return state[0]
    return _Unwrapped(state)


class _Unwrapped:
    """A segment's final state that is not the tuple of one it was given (`_split` says why)."""

    __slots__ = ("state",)

    def __init__(self, state: Any) -> None:
        self.state = state


# The structure of a state that is a tuple of one leaf (`_Run.wrap`).
_ONE_TUPLE = flatten((0.0,))[1]


# Leaf types a one-leaf state's segment may return without the full structure check.
_PLAIN = frozenset({float, complex, onp.ndarray, onp.float64, onp.complex128})


def _is_data(x: Any) -> bool:
    """Leaves that checkpoint storage holds: numbers and arrays."""
    return isinstance(x, (int, float, complex, onp.ndarray, onp.generic))


def trace_of(x: Any) -> int | None:
    """The trace a segment's input box belongs to (None when nothing is traced)."""
    return x._trace if isbox(x) else None


# -- storage and progress ------------------------------------------------------------------------


def _open_sessions(scheme: Scheme) -> dict[str, Any]:
    """One storage session per level the scheme uses (``memory`` always).

    A level left without a storage gets its default: `ArrayStorage` in memory, a temporary
    `HDF5Storage` on disk (schemes only plan: the runtime is what brings storage in).
    """
    return {level: storage.session() for level, storage in level_storages(scheme).items()}


def _close_sessions(sessions: list[Any]) -> None:
    for session in sessions:
        session.close()


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


_NO_BAR = _NoBar()


def _bar(enabled: bool, desc: str, total: int | None) -> Any:
    if not enabled:
        return _NO_BAR
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=True)
