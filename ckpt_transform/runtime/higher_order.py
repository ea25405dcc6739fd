"""The checkpointed loop as autograd primitives, differentiable to every order.

Write F(x0, p) for the loop (`loop_primitive`) and B(g, x0, p) = (J_x^T g, J_p^T g) for its VJP
(`reverse_primitive`: the reverse sweep, run on plain values by the driver). Every derivative of
either comes from one object, the *lifted loop* G over (state, tangent) pairs, whose step is

    (x, xd), i, (p, pd)  ->  (step(x, i, p), J_step(x, i, p) (xd, pd))

(forward mode through one step, `_LiftedStep`):

* JVP of F in direction (xd0, pd): the tangent part of G at ((x0, xd0), (p, pd)): the *tangent
  sweep*.
* VJP of B with cotangent c = (cx, cp): with respect to g it is J c, the tangent part of G at
  ((x0, cx), (p, cp)); with respect to (x0, p) it is the VJP of that tangent part with cotangent g,
  i.e. G's reverse sweep with output cotangent (0, g): the *second-order adjoint sweep*.
* JVP of B in direction (gd, xd0, pd): the (x0, p) part of G's VJP at ((x0, xd0), (p, pd)) with
  output cotangent (gd, g).

G is run by the same driver with the same scheme and storage, so both second-order sweeps are
checkpointed (a checkpoint of G holds a state and its tangent: twice a state) and hold at most one
taped lifted step. G is itself a loop F: its own derivatives follow from the same rules, so every
order works. See Griewank and Walther, *Evaluating Derivatives*, 2nd ed., SIAM 2008, chapter 5
(second-order adjoints) and chapter 12 (checkpointing), doi:10.1137/1.9780898717761.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from typing import Any

import autograd.builtins as abuiltins
from autograd.extend import defjvp_argnums, defvjp_argnums, primitive

from ckpt_transform.backends.autograd import (
    forward_jvp,
    getval,
    isbox,
    make_segment_vjp,
    tangent_of,
    vspace,
)
from ckpt_transform.errors import CheckpointError
from ckpt_transform.runtime.tree import describe, flatten, unflatten

__all__ = [
    "SECOND_ORDER_ADJOINT",
    "TANGENT",
    "lifted_advance",
    "loop_primitive",
    "reverse_primitive",
]

# The names of the two second-order sweeps, in stats and on progress bars.
TANGENT = "tangent"
SECOND_ORDER_ADJOINT = "second-order adjoint"


# -- F: the loop ----------------------------------------------------------------------------------


@primitive
def loop_primitive(run: Any, *dvals: Any) -> tuple:
    """F: the primal run of ``run`` from its differentiable state and parameter leaves."""
    run.d_state0 = dvals[: run.n_s]
    run.d_params0 = dvals[run.n_s :]
    run.swept = False
    if run.fuse_hvp and run.lifted_given is not None:
        out = _primal_from_lifted(run, dvals)
        if out is not None:
            return out
    return run.forward(run.d_state0, run.d_params0)


def _loop_vjp(argnums: tuple, ans: Any, args: tuple, kwargs: dict) -> Callable[[Any], Any]:
    """F's VJP is B, called as a primitive so that an outer recording can differentiate it."""
    run, dvals = args[0], args[1:]

    def vjp(g: Any) -> list[Any]:
        g = tuple(g[j] for j in range(run.n_s))
        run.fused = _fused_reverse(run, g, dvals)
        try:
            cots = reverse_primitive(run, *g, *dvals)
        finally:
            run.fused = None
        return [cots[a - 1] for a in argnums]

    return vjp


def _loop_jvp(argnums: tuple, gs: tuple, ans: Any, args: tuple, kwargs: dict) -> Any:
    """The tangent sweep: G's tangent part (checkpointed when an outer trace records it)."""
    run, dvals = args[0], args[1:]
    tangent = _fill(dvals, argnums, gs, offset=1)
    if run.fuse_hvp:
        given: list[Any] = [None] * len(dvals)
        for a, t in zip(argnums, gs):
            given[a - 1] = t
        tape, n_s = run.lifted_tape, run.n_s
        if (  # G already ran for F's value, in exactly this direction: its tangent part
            run.lifted_out is not None
            and tape is not None
            and all(a is b for a, b in zip(tape.dvals, dvals))
            and all(a is b for a, b in zip(tape.given, given))
        ):
            xd, run.lifted_out = run.lifted_out[n_s:], None
            return tuple(xd)
        return tuple(_tape_lifted(run, dvals, tangent, given)[n_s:])
    _, xd = _lifted(run, dvals, tangent)
    return tuple(xd)


# -- forward over reverse in one lifted run -------------------------------------------------------
#
# In ``make_jvp(grad(f))`` the loop F runs under a reverse trace over a forward trace: its tangent
# sweep (the JVP of F) comes first, then the reverse trace calls B with cotangents that carry
# tangents, and B's JVP follows. Both B's value and its JVP are parts of *one* VJP of G at
# ((x0, xd0), (p, pd)) with output cotangent (gd, g): with respect to (xd0, pd) it is
# (J_x^T g, J_p^T g) = B's value, with respect to (x0, p) it is B's JVP. So the tangent sweep runs
# G's forward run (checkpointed: pairs of state and tangent), driven directly on plain values;
# F's own primal run is not made when the tangents are known on entry (its value is G's x part,
# `_primal_from_lifted`), or its checkpoints are dropped at once (no first-order reverse sweep of
# F follows); when B is called with the matching tangents one reverse sweep of G yields both
# (`_fused_reverse`); `reverse_primitive` and `_reverse_jvp` return them. Any other
# call (other tangents, a second pull) takes the general path: B's reverse sweep (which redoes
# F's primal run) and its JVP from a lifted run of its own.


class _LiftedTape:
    """G's run taped by the tangent sweep, for the one reverse sweep that gives B and its JVP."""

    __slots__ = ("dvals", "given", "grun")

    def __init__(self, dvals: Sequence[Any], given: list[Any], grun: Any) -> None:
        self.dvals, self.given, self.grun = tuple(dvals), given, grun


def _tape_lifted(run: Any, dvals: Sequence[Any], tangent: Sequence[Any], given: list) -> list:
    """The tangent sweep as G's forward run; return the tangent part of its output.

    G is run by the driver directly on the plain values (no autograd tape around it): its
    reverse sweep later takes the output cotangent as given, with no copy of it into a
    structure of zeros, and the x part of its output (F's output again) is not kept.
    """
    run.drop_checkpoints()  # F's reverse sweep will not run unless B takes the general path
    grun, out = _start_lifted(run, dvals, tangent)
    run.lifted_tape = _LiftedTape(dvals, given, grun)
    run.lifted_out = None
    return out


def _start_lifted(run: Any, dvals: Sequence[Any], tangent: Sequence[Any]) -> tuple[Any, list]:
    """G's forward run on plain values, driven directly; return (its run, its output).

    The output is the x part then the tangent part; ``run.reverse`` of the returned run takes
    G's output cotangent in the same order and returns the cotangents of the state's x part,
    its tangent part, the parameters and their tangents.
    """
    n_s, n_p = run.n_s, len(dvals) - run.n_s
    leaves = run._merge(run.s_static, run.s_diff, dvals[:n_s])
    state = (tuple(leaves), tuple(tangent[:n_s]))
    params = (tuple(dvals[n_s:]), tuple(tangent[n_s:]))
    diff = (list(run.s_diff) + [len(leaves) + j for j in range(n_s)], list(range(2 * n_p)))
    grun = _lifted_loop(run).start(state, params, run.stats.second_order.append, diff)
    d_state = [*dvals[:n_s], *tangent[:n_s]]
    d_params = [*dvals[n_s:], *tangent[n_s:]]
    grun.d_state0, grun.d_params0 = d_state, d_params
    return grun, list(grun.forward(d_state, d_params))


def _primal_from_lifted(run: Any, dvals: Sequence[Any]) -> tuple | None:
    """F's value as the x part of G's tangent sweep, when the direction is known beforehand.

    Under ``make_jvp(grad(f))`` the inputs carry their tangents before F is called (`_Run.call`
    reads them into ``run.lifted_given``): G's forward run then gives F's output too, and F's
    own primal run (which the fused path would discard with its checkpoints) is not made. Its
    tangent part waits in ``run.lifted_out`` for `_loop_jvp`. Only for a ``for`` loop (G runs
    for the primal's length, which a while loop knows only once its primal run has ended);
    None when the values are not the ones the tangents were read from.
    """
    expected, given = run.lifted_given
    run.lifted_given = None
    if run.loop.rng is None or any(a is not b for a, b in zip(expected, dvals)):
        return None
    tangent = [vspace(d).zeros() if t is None else t for d, t in zip(dvals, given)]
    run.s_static = [getval(x) for x in run.s_leaves]  # what F's primal run would have set
    run.p_static = [getval(x) for x in run.p_leaves]
    out = _tape_lifted(run, dvals, tangent, given)
    grun, n_s = run.lifted_tape.grun, run.n_s
    run.steps = run.stats.steps = grun.steps
    n_leaves = len(grun.final_static) - n_s
    run.final_static = list(grun.final_static[:n_leaves])
    run.lifted_out = out
    return tuple(out[:n_s])


def _fused_reverse(run: Any, g: tuple, dvals: Sequence[Any]) -> tuple | None:
    """B's value and JVP from G's taped run, when B is called with the tangents it was run for.

    Returns ``(raw arguments, B's value, B's JVP)``, or None for the general path.
    """
    tape, run.lifted_tape = run.lifted_tape, None  # one use: G's checkpoints go with its sweep
    if tape is None:
        return None
    raw_d, trace = [], None
    for j, d in enumerate(dvals):
        vt = tangent_of(d)
        if vt is None:
            if isbox(d) or tape.given[j] is not None or d is not tape.dvals[j]:
                return None
            raw_d.append(d)
        elif vt[0] is not tape.dvals[j] or vt[1] is not tape.given[j]:
            return None
        else:
            trace = d._trace
            raw_d.append(vt[0])
    raw_g, gd = [], []
    for x in g:
        vt = tangent_of(x)
        if vt is None:
            if isbox(x):
                return None
            raw_g.append(x)
            gd.append(vspace(x).zeros())
        elif x._trace != trace:
            return None
        else:
            raw_g.append(vt[0])
            gd.append(vt[1])
    grun = tape.grun
    del tape
    of_values, of_tangents = _pull_lifted(grun, run.n_s, len(dvals), gd, raw_g)
    return (tuple(raw_g) + tuple(raw_d), of_tangents, of_values)


def _pull_lifted(grun: Any, n_s: int, n: int, gd: Sequence[Any], g: Sequence[Any]) -> tuple:
    """G's reverse sweep with output cotangent (``gd`` of its x part, ``g`` of its tangent
    part), over ``n`` inputs of which ``n_s`` are state leaves; return the cotangents of the
    inputs' values (x0, p) and of their tangents (xd0, pd), each state then parameters."""
    cot = grun.reverse((*gd, *g))  # the state's (x, then tangent), the parameters' (p, then pd)
    n_p = n - n_s
    adj, adj_p = cot[: 2 * n_s], cot[2 * n_s :]
    return (*adj[:n_s], *adj_p[:n_p]), (*adj[n_s:], *adj_p[n_p:])


def _matches(fused: tuple | None, args: Sequence[Any]) -> bool:
    return (
        fused is not None
        and len(fused[0]) == len(args)
        and all(a is b for a, b in zip(fused[0], args))
    )


defvjp_argnums(loop_primitive, _loop_vjp)
defjvp_argnums(loop_primitive, _loop_jvp)


# -- B: the loop's VJP ----------------------------------------------------------------------------


@primitive
def reverse_primitive(run: Any, *args: Any) -> tuple:
    """B: the reverse sweep from the output cotangent ``args[:n_s]`` (the rest are F's inputs)."""
    if _matches(run.fused, args):  # computed with its JVP by one reverse sweep of G
        return run.fused[1]
    return tuple(run.reverse(args[: run.n_s]))


def _reverse_vjp(argnums: tuple, ans: Any, args: tuple, kwargs: dict) -> Callable[[Any], Any]:
    """B's VJP for a cotangent c: J c (w.r.t. g) and G's second-order adjoint (w.r.t. x0, p)."""
    run = args[0]
    n_s = run.n_s
    g, dvals = args[1 : 1 + n_s], args[1 + n_s :]
    wants_inputs = any(a > n_s for a in argnums)

    def vjp(c: Any) -> list[Any]:
        c = tuple(c[j] for j in range(len(dvals)))

        def tangent_part(dv: Any) -> Any:
            return abuiltins.tuple(_lifted(run, [dv[j] for j in range(len(dvals))], c)[1])

        if wants_inputs and not any(isbox(v) for v in (*g, *dvals, *c)):
            # no outer trace to record G: drive it directly, with output cotangent (0, g)
            grun, out = _start_lifted(run, dvals, c)
            xd = out[n_s:]
            zero = [vspace(x).zeros() for x in out[:n_s]]
            del out
            cot, _ = _pull_lifted(grun, n_s, len(dvals), zero, g)
        elif wants_inputs:
            pull, xd = make_segment_vjp(tangent_part, tuple(dvals))
            cot = pull(tuple(g))
        else:
            xd = tangent_part(tuple(dvals))
        return [xd[a - 1] if a <= n_s else cot[a - 1 - n_s] for a in argnums]

    return vjp


def _reverse_jvp(argnums: tuple, gs: tuple, ans: Any, args: tuple, kwargs: dict) -> Any:
    """B's JVP in direction (gd, xd0, pd): the (x0, p) part of G's VJP for cotangent (gd, g)."""
    run = args[0]
    if _matches(run.fused, args[1:]):
        return run.fused[2]
    n_s = run.n_s
    g, dvals = args[1 : 1 + n_s], args[1 + n_s :]
    tangent = _fill(args[1:], argnums, gs, offset=1)
    gd, td = tangent[:n_s], tangent[n_s:]

    def both_parts(dv: Any) -> Any:
        x, xd = _lifted(run, [dv[j] for j in range(len(dvals))], td)
        return abuiltins.tuple(list(x) + list(xd))

    pull, _ = make_segment_vjp(both_parts, tuple(dvals))
    return tuple(pull(tuple(gd) + tuple(g)))


defvjp_argnums(reverse_primitive, _reverse_vjp)
defjvp_argnums(reverse_primitive, _reverse_jvp)


def _fill(values: Sequence[Any], argnums: tuple, gs: tuple, offset: int) -> list[Any]:
    """Tangents for ``values``: ``gs`` at ``argnums`` (shifted by ``offset``), zeros elsewhere."""
    out = [None] * len(values)
    for a, t in zip(argnums, gs):
        out[a - offset] = t
    return [vspace(v).zeros() if t is None else t for v, t in zip(values, out)]


# -- G: the lifted loop ---------------------------------------------------------------------------


def _lifted(run: Any, dvals: Sequence[Any], tangent: Sequence[Any]) -> tuple[list, list]:
    """Run G from ((x0, xd0), (p, pd)); return (the x part, the tangent part) of its output.

    G runs for exactly the primal's iterations (a while loop's length is known once its primal
    run has ended), with the primal's loop index values, scheme and storage. Its `RunStats` is
    appended to the primal's ``second_order`` list.
    """
    n_s = run.n_s
    leaves = run._merge(run.s_static, run.s_diff, dvals[:n_s])
    state = (tuple(leaves), tuple(tangent[:n_s]))
    params = (tuple(dvals[n_s:]), tuple(tangent[n_s:]))
    lifted = _lifted_loop(run)
    out_leaves, xd = lifted.run(state, params, run.stats.second_order.append, False)
    return [out_leaves[i] for i in run.s_diff], list(xd)


def _lifted_loop(run: Any) -> Any:
    """G as a loop: the lifted step over the primal's loop indices, scheme and storage."""
    loop = run.loop
    rng = loop.rng if loop.rng is not None else range(run.steps)
    scheme = _lifted_scheme(loop.scheme)
    return type(loop)(  # the driver's loop class (it imports this module, not the reverse)
        _LiftedStep(run), None, rng, scheme, loop.progress, (TANGENT, SECOND_ORDER_ADJOINT)
    )


def _lifted_scheme(scheme: Any) -> Any:
    """The scheme for G: the primal's, each storage that writes to a path given a file of its own.

    G may run while the primal's session is open (``grad`` of ``make_jvp(f)``), and a file
    serves one session at a time: G's checkpoints go beside it, to ``<name>.tangent<ext>``. A
    two-level scheme (`Multilevel`) has a storage per level (``memory_storage``,
    ``disk_storage``); a single-level scheme has ``storage``.
    """
    scheme = scheme.second_order()  # e.g. Revolve(second_order_snapshots=...)
    levels = getattr(scheme, "storages", None)
    attrs = [f"{level}_storage" for level in levels()] if levels is not None else ["storage"]
    moved = {}
    for attr in attrs:
        storage = getattr(scheme, attr, None)
        path = getattr(storage, "path", None)
        if isinstance(path, str):
            root, ext = os.path.splitext(path)
            moved[attr] = copy.copy(storage)
            moved[attr].path = f"{root}.tangent{ext}"
    if not moved:
        return scheme
    lifted = copy.copy(scheme)
    for attr, storage in moved.items():
        setattr(lifted, attr, storage)
    return lifted


def lifted_advance(step: Any) -> Callable[..., Any] | None:
    """``advance`` of G's step (several steps in one forward trace); None for any other step.

    Asked by type, not by attribute: a user's step object may well have a method ``advance``.
    """
    return step.advance if type(step) is _LiftedStep else None


class _LiftedStep:
    """G's step: the primal step and its JVP in the direction of the tangent, in one pass."""

    def __init__(self, run: Any) -> None:
        self.step = run.loop.step
        self.s_def, self.s_diff = run.s_def, run.s_diff
        self.p_def, self.p_diff, self.p_static = run.p_def, run.p_diff, run.p_static
        self.merge = run._merge
        # One differentiable leaf and no differentiated parameter (the common case): the leaf
        # goes through forward mode bare, with no tuple to box and unbox per step, and the
        # parameters are the same every step.
        self.single = len(self.s_diff) == 1 and not self.p_diff
        self.params = unflatten(self.p_def, list(self.p_static)) if self.single else None

    def __call__(self, pair: Any, i: int, dp: Any = (), pd: Any = ()) -> Any:
        return self.advance(pair, (i,), dp, pd)

    def advance(self, pair: Any, indices: Sequence[int], dp: Any = (), pd: Any = ()) -> Any:
        """G's steps at ``indices`` from ``pair``, in one forward trace (not one per step).

        The driver runs a passive stretch of G through this (`_Run._advance`): the traced
        state goes from step to step as it is, with no trace entered, no pair unpacked and
        built and no output checked by the driver per step.
        """
        leaves, xd = pair
        s_diff = self.s_diff
        side: list[Any] = []
        if self.single:
            args = (leaves, indices, side)
            x1, xd1 = forward_jvp(self._one_leaf, leaves[s_diff[0]], xd[0], *args)
            x1, xd1 = (x1,), (xd1,)
        else:
            xs = tuple(leaves[j] for j in s_diff)
            args = (leaves, indices, side)
            x1, xd1 = forward_jvp(self._leaves, (xs, tuple(dp)), (tuple(xd), tuple(pd)), *args)
        new = self.merge([getval(v) for v in side[0]], s_diff, x1) if side else list(leaves)
        return (tuple(new), tuple(xd1))

    def _one_leaf(self, x: Any, leaves: Sequence[Any], indices: Sequence[int], side: list) -> Any:
        """The steps from the traced leaf ``x`` (the other leaves as in ``leaves``)."""
        j, s_def, params, step = self.s_diff[0], self.s_def, self.params, self.step
        out = None
        for i in indices:
            if s_def is None:
                out = self._checked(step(x, i, *params), i)
            else:
                if out is not None:
                    leaves = [getval(v) for v in out]
                state = unflatten(s_def, self.merge(leaves, self.s_diff, (x,)))
                out = self._checked(step(state, i, *params), i)
            x = out[j]
        if out is not None:
            side.append(out)
        return x

    def _leaves(self, args: Any, leaves: Sequence[Any], indices: Sequence[int], side: list) -> Any:
        """The steps from the traced ``(differentiable leaves, differentiated parameters)``."""
        xs, ps = args
        s_diff = self.s_diff
        params = unflatten(self.p_def, self.merge(self.p_static, self.p_diff, ps))
        out = None
        for i in indices:
            if out is not None:
                leaves = [getval(v) for v in out]
            state = unflatten(self.s_def, self.merge(leaves, s_diff, xs))
            out = self._checked(self.step(state, i, *params), i)
            xs = [out[j] for j in s_diff]
        if out is not None:
            side.append(out)
        return abuiltins.tuple(list(xs))

    def _checked(self, state: Any, i: int) -> list[Any]:
        """The leaves of the step's output, which must have the structure it was given."""
        out, tdef = flatten(state)
        if tdef != self.s_def:
            raise CheckpointError(
                f"the step changed the structure of the loop state at index {i}: it "
                f"received {describe(self.s_def)} and returned {describe(tdef)}"
            )
        return out
