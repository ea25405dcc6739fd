"""The JAX backend: a checkpointed loop as one ``jax.custom_vjp``, its schedule run inside XLA.

`checkpointed_for` / `checkpointed_while` of `ckpt_transform.runtime.driver` hand a loop here
when its state or params hold jax arrays (or ``backend="jax"``). This module is the one place
that knows JAX, and it executes the same plans as the autograd driver; the schemes are shared.

How a plan becomes one XLA program:

* The plan is read once, in Python, at trace time, and encoded as an *action table*: one row
  ``(code, n0, n1, slot)`` per action. ``Free`` needs no row (a slot is simply overwritten); a
  ``Record(n0, n1)`` is always followed by its ``Reverse(n0, n1)``, and the pair becomes one row:
  the VJP of the segment, taken with ``jax.vjp`` (whose forward pass is the taped evaluation).
* One executor walks a table with ``lax.fori_loop``. For a large state every row runs the same
  straight-line program (a ``lax.cond`` restoring a slot, a ``lax.fori_loop`` advancing over
  ``[n0, n1)``, empty unless the row advances, a ``lax.cond`` storing a slot in place, and per
  segment length a ``lax.cond`` pulling the adjoint back through a segment of that length,
  which ``jax.vjp`` differentiates), so that XLA updates the current state, its adjoint and the
  checkpoint buffer in place rather than copying them between the branches of a switch. For a
  small state (below ``_SWITCH_BYTES``) those copies cost less than the straight-line program's
  control flow on every row, and a ``lax.switch`` over the rows' kinds advances or pulls back.
* Checkpoints live in one stacked device buffer per state leaf, ``(slots, *leaf.shape)``: the
  memory is ``slots`` states, not T. The checkpoint of the input state (every scheme keeps
  state 0) is the input itself, held by the program anyway, so the buffer has one slot less.
* A scheme with a storage (``storage=ArrayStorage()`` / ``HDF5Storage(...)``, or `Multilevel`)
  keeps its checkpoints there, on the host, instead (`_Host`): a store or restore row is an
  ``io_callback`` to the storage's session of that run, ordered by a token the loop carries,
  and the device holds only the working set.
* The forward sweep of a ``for`` loop runs the plan's forward table; a trailing ``Record`` (the
  last segment, taped during the primal run) is a ``jax.vjp`` whose pullback is kept as a
  residual, as the autograd driver keeps its tape. The reverse sweep runs the reverse table.
* A ``while`` loop runs in a ``lax.while_loop`` (at most ``max_steps`` iterations); the scheme's
  forward decisions (which state goes to which slot) are a table indexed by the step number,
  read off the plan of a loop of unknown length, so `OnlineR2` decides online as it does on the
  autograd backend. Once the loop has ended at T, the reverse table depends on T: it is computed
  on the host by the same plan (``plan.reverse(T)``) and fed to the executor in chunks through
  ``jax.pure_callback`` (integers only; the states never leave the device).

Evaluations (passive + taped step evaluations) are counted inside the program and reported to
the `RunStats` of ``return_stats=True`` through ``jax.debug.callback`` when the program runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import sys
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as onp

from ckpt_transform._checks import check_max_steps
from ckpt_transform.errors import CheckpointError
from ckpt_transform.runtime.levels import level_storages
from ckpt_transform.runtime.stats import RunStats
from ckpt_transform.runtime.tree import describe, flatten, unflatten
from ckpt_transform.schemes.actions import (
    Advance,
    EndForward,
    Free,
    Record,
    Restore,
    Reverse,
    Store,
)
from ckpt_transform.schemes.base import Scheme, cut_forward

__all__ = ["checkpointed_for", "checkpointed_while", "holds_jax"]

# Row codes of an action table; codes from _RECREV on are segment VJPs, one per segment length.
_RESTORE, _STORE, _ADVANCE, _RECREV = 0, 1, 2, 3
_CHUNK = 4096  # rows of a while loop's reverse table fetched from the host at a time
# States smaller than this run their rows as a `lax.switch` (`_Machine._switch_body`) and a while
# loop's forward stores without a `lax.cond` (`_store_where`); larger ones run the straight-line
# row program (`_Machine._straight_body`, least device memory) and `_store_cond`. The copies the
# former make cost little for a small state, whose cheap step the latter's control flow on every
# row or step dominates (adaptive ODE, n = 1000: 1.3x the time; docs/benchmarks.md).
_SWITCH_BYTES = 1 << 16


def holds_jax(*trees: Any) -> bool:
    """True when any leaf of ``trees`` is a jax array (or a jax tracer)."""
    if "jax" not in sys.modules:  # nothing can hold a jax array yet: do not import jax
        return False
    import jax

    outer, _ = flatten(trees)
    return any(isinstance(x, jax.Array) for x in jax.tree_util.tree_leaves(outer))


# -- the loop's state as flat leaves -------------------------------------------------------------


class _Layout:
    """A state or params value as flat jax leaves: the package's containers (tuples, lists,
    dicts, dataclasses, ...) opened first, then jax's own pytrees (an equinox module, ...)."""

    def __init__(self, value: Any, what: str) -> None:
        import jax
        import jax.numpy as jnp

        outer, self.odef = flatten(value)
        leaves, self.jdef = jax.tree_util.tree_flatten(outer)
        self.what = what
        self.static: dict[int, Any] = {}  # params leaves that are not arrays, passed as they are
        arrays: list[Any] = []
        for j, x in enumerate(leaves):
            if what == "params" and not isinstance(x, (jax.Array, onp.ndarray, onp.generic)):
                self.static[j] = x  # a plain number stays a Python value (a bound, a flag...)
            elif isinstance(x, (jax.Array, onp.ndarray, onp.generic, int, float, complex)):
                arrays.append(jnp.asarray(x))
            elif what == "params":
                self.static[j] = x
            else:
                raise CheckpointError(
                    f"the JAX backend carries a loop state of arrays and numbers; {what} holds a "
                    f"{type(x).__name__} ({x!r}). Pass it through params=(...) instead"
                )
        self.n = len(leaves)
        self.array_idx = [j for j in range(self.n) if j not in self.static]
        self.diff = [jnp.issubdtype(a.dtype, jnp.inexact) for a in arrays]
        self.arrays = arrays
        self.nbytes = sum(a.size * a.dtype.itemsize for a in arrays)  # one state

    def split(self, arrays: Sequence[Any]) -> tuple[list[Any], list[Any]]:
        """(differentiable leaves, other array leaves)."""
        d = [a for a, f in zip(arrays, self.diff) if f]
        s = [a for a, f in zip(arrays, self.diff) if not f]
        return d, s

    def join(self, d: Sequence[Any], s: Sequence[Any]) -> list[Any]:
        di, si = iter(d), iter(s)
        return [next(di) if f else next(si) for f in self.diff]

    def build(self, d: Sequence[Any], s: Sequence[Any]) -> Any:
        import jax

        leaves: list[Any] = [None] * self.n
        for j, a in zip(self.array_idx, self.join(d, s)):
            leaves[j] = a
        for j, x in self.static.items():
            leaves[j] = x
        return unflatten(self.odef, jax.tree_util.tree_unflatten(self.jdef, leaves))

    def arrays_of(self, value: Any, n: Any) -> list[Any]:
        """The array leaves of a step's output, checked against the input's structure."""
        import jax
        import jax.numpy as jnp

        outer, odef = flatten(value)
        leaves, jdef = jax.tree_util.tree_flatten(outer)
        if odef != self.odef or jdef != self.jdef:
            raise CheckpointError(
                f"the step changed the structure of the loop state: it received "
                f"{describe(self.odef)} ({self.jdef}) and returned {describe(odef)} ({jdef}); "
                "a step must return a state of the same structure"
            )
        out = []
        for j, x0 in zip(self.array_idx, self.arrays):
            y = jnp.asarray(leaves[j])
            if y.shape != x0.shape:
                raise CheckpointError(
                    f"the step changed the shape of a leaf of the loop state from {x0.shape} to "
                    f"{y.shape}; a step must keep every leaf's shape"
                )
            out.append(y.astype(x0.dtype))
        return out


# -- plans as tables -------------------------------------------------------------------------


class _Table:
    """A run of actions as rows ``(code, n0, n1, slot)``; segment lengths map to codes.

    ``pin`` is the plan's slot that holds the loop's input state all along (see `_input_slot`),
    or None: its store needs no row, a restore from it reads the input (slot -1), and the slots
    above it move down by one, so that the device buffer has no slot for the input.
    """

    def __init__(self, lengths: dict[int, int], pin: int | None = None) -> None:
        self.lengths = lengths  # segment length -> code
        self.pin = pin
        self.rows: list[tuple[int, int, int, int]] = []

    def slot(self, slot: int) -> int:
        """The buffer slot of the plan's ``slot`` (-1: the input state)."""
        if self.pin is None:
            return slot
        return -1 if slot == self.pin else slot - (slot > self.pin)

    def add(self, actions: Sequence[Any]) -> None:
        pending: Record | None = None
        for a in actions:
            if pending is not None:
                if not (isinstance(a, Reverse) and (a.n0, a.n1) == (pending.n0, pending.n1)):
                    raise CheckpointError(f"{pending} is not followed by its reverse, but {a}")
                length = a.n1 - a.n0
                code = self.lengths.setdefault(length, _RECREV + len(self.lengths))
                self.rows.append((code, a.n0, a.n1, 0))
                pending = None
            elif isinstance(a, Restore):
                self._check_pinned(a)
                self.rows.append((_RESTORE, a.n, a.n, self.slot(a.slot)))
            elif isinstance(a, Store):
                self._check_pinned(a)
                if a.slot != self.pin:  # the pinned slot's one store, of the input: no copy
                    self.rows.append((_STORE, a.n, a.n, self.slot(a.slot)))
            elif isinstance(a, Advance):
                self.rows.append((_ADVANCE, a.n0, a.n1, 0))
            elif isinstance(a, Record):
                pending = a
            elif not isinstance(a, (Free, EndForward)):  # a Reverse of no Record, say
                raise CheckpointError(f"the JAX backend cannot execute {a} here")
        if pending is not None:
            raise CheckpointError(f"{pending} is not followed by its reverse")

    def _check_pinned(self, a: Store | Restore) -> None:
        """The pinned slot holds the input state and nothing else: a row for another state
        there would read the input instead (a wrong derivative), so it is refused."""
        if a.slot == self.pin and a.n != 0:
            raise CheckpointError(
                f"{a} uses slot {a.slot}, which this compiled program keeps for the loop's "
                "input state (step 0); the plan must not reuse it for another state"
            )

    def array(self) -> onp.ndarray:
        return onp.asarray(self.rows, dtype=onp.int32).reshape(-1, 4)


def _host_storages(scheme: Scheme) -> dict[str, Any] | None:
    """The storage of each level when the scheme keeps its checkpoints on the host, else None.

    A scheme given a ``storage=`` (`ArrayStorage`: host memory, `HDF5Storage`: a file) keeps
    them there; `Multilevel` keeps both its levels on the host (its memory level in host memory,
    its disk level in a file, as on the autograd backend). A scheme without one keeps them in
    the device buffer.
    """
    if getattr(scheme, "storages", None) is None and scheme.storage is None:
        return None
    return level_storages(scheme)


def _level_keys(actions: list[Any]) -> list[Any]:
    """The actions of a two-level plan with each (level, slot) as one memory slot, numbered
    ``2 * slot`` in memory and ``2 * slot + 1`` on disk (`_Host` reads the level back)."""
    out = []
    for a in actions:
        if isinstance(a, (Store, Restore, Free)):
            a = type(a)(n=a.n, slot=2 * a.slot + (a.level == "disk"))
        out.append(a)
    return out


def _split_schedule(actions: list[Any]) -> tuple[list, list, list]:
    """(forward actions, trailing forward Records, reverse actions) of a whole schedule."""
    end = next(i for i, a in enumerate(actions) if isinstance(a, EndForward))
    fwd, rev = actions[:end], actions[end + 1 :]
    tail: list[Record] = []
    while fwd and isinstance(fwd[-1], Record):
        tail.insert(0, fwd.pop())
    for a in fwd:
        if isinstance(a, Record):
            raise CheckpointError(f"the JAX backend tapes only the primal run's last segment: {a}")
    for r in reversed(tail):  # the reverse sweep opens with their Reverses, last one first
        if not rev or not isinstance(rev[0], Reverse) or (rev[0].n0, rev[0].n1) != (r.n0, r.n1):
            raise CheckpointError(f"{r} taped in the primal run is not reversed first")
        rev.pop(0)
    return fwd, tail, rev


def _input_slot(*schedules: Sequence[Any]) -> int | None:
    """The slot the plans use for the loop's input state (state 0) and for nothing else, if any.

    That checkpoint is the input itself, which the program holds anyway (an argument of the
    compiled function, or a residual of the ``custom_vjp`` that refers to it): it is not copied
    into the device buffer, which then holds one state less (`Revolve`, `OnlineR2` and
    `Periodic` all keep state 0 in a slot of its own).
    """
    first = {a.slot for acts in schedules for a in acts if isinstance(a, Store) and a.n == 0}
    other = {a.slot for acts in schedules for a in acts if isinstance(a, Store) and a.n != 0}
    if len(first) != 1 or first & other:
        return None
    return first.pop()


def _max_slots(actions: Sequence[Any]) -> tuple[int, int]:
    """(number of slot indices used, most checkpoints held at once)."""
    held: set[int] = set()
    top, most = 0, 0
    for a in actions:
        if isinstance(a, Store):
            held.add(a.slot)
            top = max(top, a.slot + 1)
            most = max(most, len(held))
        elif isinstance(a, Free):
            held.discard(a.slot)
    return top, most


# -- the executor --------------------------------------------------------------------------------


class _Machine:
    """Steps, segments and the table executor of one loop, for one layout of state and params."""

    def __init__(
        self,
        step: Callable[..., Any],
        xl: _Layout,
        pl: _Layout,
        index: Callable[[Any], Any],
    ) -> None:
        self.step, self.xl, self.pl, self.index = step, xl, pl, index
        self.branches: dict[int, int] = {}
        self.hoisted, self.n_user = 0, 0
        self.host: _Host | None = None  # checkpoints on the host, else in the device buffer
        import jax.numpy as jnp

        self.jnp, self.kdtype = jnp, jnp.asarray(0).dtype

    def call(self, xd: list, xs: list, k: Any, pd: list, ps: list) -> tuple[list, list]:
        """One step on flat leaves; ``pd`` ends with the step's hoisted closure values."""
        k = self.jnp.asarray(k, self.kdtype)  # one dtype for i, however the loop counts
        if self.hoisted:
            u = self.n_user
            yd, ys = self.converted(xd, xs, k, pd[:u], ps, *pd[u : u + self.hoisted])
            return list(yd), list(ys)
        return self.user_call(xd, xs, k, pd, ps)

    def hoist(self, xd: list, xs: list, pd: list, ps: list) -> list:
        """Make traced values the step reads from a closure explicit inputs (so that they get
        gradients and do not leak from the loop's traces); return the params to pass."""
        import jax
        import jax.numpy as jnp

        def call(xd: list, xs: list, k: Any, pd: list, ps: list) -> tuple:
            return tuple(self.user_call(xd, xs, k, pd, ps))

        k = jnp.zeros((), self.kdtype)
        self.converted, consts = jax.closure_convert(call, xd, xs, k, pd, ps)
        self.n_user, self.hoisted = len(pd), len(consts)
        return [*pd, *consts]

    def user_call(self, xd: list, xs: list, k: Any, pd: list, ps: list) -> tuple[list, list]:
        state = self.xl.build(xd, xs)
        params = self.pl.build(pd, ps)
        out = self.step(state, self.index(k), *params)
        return self.xl.split(self.xl.arrays_of(out, k))

    def advance(self, x: tuple, n0: Any, n1: Any, p: tuple) -> tuple:
        from jax import lax

        return lax.fori_loop(n0, n1, lambda k, c: tuple(self.call(*c, k, *p)), x)

    def segment(self, length: int) -> Callable[..., Any]:
        """The taped evaluation of ``length`` steps from n0, as a function for ``jax.vjp``."""
        from jax import lax

        def seg(xd: list, pd: list, xs: list, ps: list, n0: Any) -> tuple:
            if length == 1:
                yd, ys = self.call(xd, xs, n0, pd, ps)
            else:
                yd, ys = lax.fori_loop(
                    0, length, lambda j, c: tuple(self.call(*c, n0 + j, pd, ps)), (xd, xs)
                )
            return yd, ys

        return seg

    def run(
        self, table: Any, nrows: Any, carry: tuple, p: tuple, x0: tuple | None, reverse: bool
    ) -> tuple:
        """Walk rows ``0 .. nrows-1`` of ``table``.

        ``carry = (xd, xs, buf, adj, pct, evals)``: the current state (differentiable and other
        leaves), the checkpoint buffers, the adjoint of the current state, the accumulated
        adjoint of the params, and ``evals = [passive, taped]`` step evaluations so far.
        ``x0 = (xd0, xs0)`` is the loop's input state, which a restore from slot -1 reads (None
        when the table has no such row).

        A row is one of two programs, chosen by the size of a state (`_SWITCH_BYTES`): a
        straight-line program that keeps the device memory at its least (`_straight_body`), or
        a ``lax.switch`` over the rows' kinds, which costs less control flow per row
        (`_switch_body`).
        """
        from jax import lax

        if isinstance(nrows, int) and nrows == 0:
            return carry
        jnp = self.jnp
        table = jnp.asarray(table)

        def saved(b: Any, x0: Any, slot: Any) -> Any:
            x = b[jnp.maximum(slot, 0)]
            return x if x0 is None else jnp.where(slot < 0, x0, x)

        rows = self._switch_body if self.xl.nbytes < _SWITCH_BYTES else self._straight_body
        return lax.fori_loop(0, nrows, rows(table, p, x0, saved, reverse), carry)

    def _straight_body(
        self, table: Any, p: tuple, x0: tuple | None, saved: Callable, reverse: bool
    ) -> Callable[..., Any]:
        """The row program for large states: the same straight-line program on every row.

        XLA then keeps one buffer for the current state and one for its adjoint, updated in
        place: a restore is a ``lax.cond`` that copies a slot (or the input) into the current
        state, an advance a loop of ``n1 - n0`` steps (none unless the row advances), a store a
        ``lax.cond`` around an in-place update of the buffer, and per segment length a
        ``lax.cond`` that pulls the adjoint back through a segment of that length. (A
        ``lax.switch`` over the rows' kinds gives each branch its own output buffers, and XLA
        copies between them and the loop's: four states more at n = 1e5.)
        """
        from jax import lax

        jnp = self.jnp
        recrevs = []
        if reverse:
            recrevs = [(code, self._recrev(n, p)) for n, code in sorted(self.branches.items())]

        def body(r: Any, c: tuple) -> tuple:
            xd, xs, buf, adj, pct, ev = c
            row = table[r]
            code, n0, n1 = row[0], row[1], row[2]
            xd, xs, buf = self.restore(row, xd, xs, buf, x0, saved)
            hi = jnp.where(code == _ADVANCE, n1, n0)
            xd, xs = map(list, self.advance((xd, xs), n0, hi, p))
            ev = ev.at[0].add(hi - n0)
            buf = self.store(row, xd, xs, buf)
            for k, recrev in recrevs:  # the VJP of a segment of the row's length
                adj, pct, ev = lax.cond(
                    code == k,
                    lambda a, recrev=recrev: recrev(xd, xs, row, *a),
                    lambda a: a,
                    (adj, pct, ev),
                )
            return xd, xs, buf, adj, pct, ev

        return body

    def _switch_body(
        self, table: Any, p: tuple, x0: tuple | None, saved: Callable, reverse: bool
    ) -> Callable[..., Any]:
        """The row program for small states: a ``lax.switch`` over the rows' kinds.

        A restore and a store stay ``lax.cond``s of their own (the checkpoint buffers are no
        branch's operands); the switch advances or pulls the adjoint back through a segment.
        Each branch has its own output buffers, which XLA copies to and from the loop's: a few
        states more on the device, cheap when a state is small, whereas the straight-line
        program runs an (empty) advance loop and one ``lax.cond`` per segment length on every
        row, which dominates when a step is cheap.
        """
        from jax import lax

        def nothing(c: tuple, row: Any) -> tuple:
            return c

        def advance(c: tuple, row: Any) -> tuple:
            xd, xs, adj, pct, ev = c
            xd, xs = self.advance((xd, xs), row[1], row[2], p)
            return list(xd), list(xs), adj, pct, ev.at[0].add(row[2] - row[1])

        branches = [nothing, nothing, advance]
        if reverse:
            order = sorted(self.branches.items(), key=lambda kv: kv[1])
            branches += [self._recrev_switch(n, p) for n, _ in order]

        def body(r: Any, c: tuple) -> tuple:
            xd, xs, buf, adj, pct, ev = c
            row = table[r]
            xd, xs, buf = self.restore(row, xd, xs, buf, x0, saved)
            buf = self.store(row, xd, xs, buf)
            xd, xs, adj, pct, ev = lax.switch(row[0], branches, (xd, xs, adj, pct, ev), row)
            return xd, xs, buf, adj, pct, ev

        return body

    def restore(
        self, row: Any, xd: list, xs: list, buf: Any, x0: tuple | None, saved: Callable
    ) -> tuple[list, list, Any]:
        """A table row's restore (`_row_restore`, or from the host); ``buf`` after it."""
        code, n, slot = row[0], row[1], row[3]
        if self.host is not None:
            return self.host.restore(code == _RESTORE, slot, n, xd, xs, buf, x0)
        bd, bs = buf
        xd, xs = _row_restore(code, slot, xd, xs, bd, bs, x0, saved)
        return xd, xs, buf

    def store(self, row: Any, xd: list, xs: list, buf: Any) -> Any:
        """A table row's store (`_row_store`, or to the host): ``buf`` after it."""
        code, n, slot = row[0], row[1], row[3]
        if self.host is not None:
            return self.host.store(code == _STORE, slot, n, xd, xs, buf)
        return _row_store(code, slot, xd, xs, *buf)

    def _recrev_switch(self, length: int, p: tuple) -> Callable[..., Any]:
        """The switch branch for `Record` + `Reverse` of a segment of ``length`` steps.

        Without ``jax.checkpoint``: the step's intermediate values of a small state are cheap to
        keep, and recomputing them inside the pullback costs time the cheap step cannot hide.
        """
        import jax

        seg = self.segment(length)
        pd, ps = p

        def branch(c: tuple, row: Any) -> tuple:
            xd, xs, adj, pct, ev = c
            yd, pull, ys = jax.vjp(
                lambda a, b: _aux(seg(a, b, xs, ps, row[1])), xd, pd, has_aux=True
            )
            gx, gp = pull(adj)
            pct = [a + g for a, g in zip(pct, gp)]
            return list(yd), list(ys), list(gx), pct, ev.at[1].add(length)

        return branch

    def _recrev(self, length: int, p: tuple) -> Callable[..., Any]:
        """`Record` + `Reverse` of a segment of ``length`` steps: the adjoint pulled back.

        The segment is rematerialised inside its VJP (``jax.checkpoint``): XLA then fuses the
        step's recomputation into the pullback instead of keeping its intermediate values in
        buffers of their own (three states for the heat step, say). The state after the segment
        is not needed: the reverse sweep restores a checkpoint next.
        """
        import jax

        seg = self.segment(length)
        pd, ps = p

        def branch(xd: list, xs: list, row: Any, adj: list, pct: list, ev: Any) -> tuple:
            _, pull, _ = jax.vjp(
                jax.checkpoint(lambda a, b: _aux(seg(a, b, xs, ps, row[1]))), xd, pd, has_aux=True
            )
            gx, gp = pull(adj)
            pct = [a + g for a, g in zip(pct, gp)]
            return list(gx), pct, ev.at[1].add(length)

        return branch


def _row_restore(
    code: Any, slot: Any, xd: list, xs: list, bd: list, bs: list, x0: tuple | None, saved: Callable
) -> tuple[list, list]:
    """A table row's restore: the state from ``slot`` (the input for slot -1) when the row is a
    `Restore`, else the current state, unchanged."""
    from jax import lax

    xd0, xs0 = x0 if x0 is not None else ([None] * len(xd), [None] * len(xs))
    return lax.cond(
        code == _RESTORE,
        lambda: (
            [saved(b, x, slot) for b, x in zip(bd, xd0)],
            [saved(b, x, slot) for b, x in zip(bs, xs0)],
        ),
        lambda: (list(xd), list(xs)),
    )


def _row_store(code: Any, slot: Any, xd: list, xs: list, bd: list, bs: list) -> tuple[list, list]:
    """A table row's store: the current state written into ``slot`` of the checkpoint buffers
    (in place) when the row is a `Store`, else the buffers, unchanged."""
    from jax import lax

    return lax.cond(
        code == _STORE,
        lambda: (
            [b.at[slot].set(x) for b, x in zip(bd, xd)],
            [b.at[slot].set(x) for b, x in zip(bs, xs)],
        ),
        lambda: (list(bd), list(bs)),
    )


def _forward_mode(*leaves: list) -> bool:
    """True when the loop is differentiated in forward mode (``jax.jvp``, ``jax.jacfwd``).

    A ``jax.custom_vjp`` has no forward-mode rule, and forward mode needs no tape: the loop then
    runs as its plain ``lax`` loop, which JAX differentiates forward step by step (two states,
    the value and its tangent). Reverse mode (``jax.grad``, ``jax.vjp``, and the inner half of
    ``jax.hessian``) linearises, with tracers of another type, and keeps the checkpointed
    ``custom_vjp``. With ``jax_use_direct_linearize`` off, reverse mode would trace JVP tracers
    too: then the loop is always the ``custom_vjp`` (and ``jax.jvp`` meets JAX's own error).
    """
    import jax
    from jax.interpreters import ad

    if not jax.config.jax_use_direct_linearize:
        return False
    return any(isinstance(x, ad.JVPTracer) for group in leaves for x in group)


def _store_cond(slot: Any, buf: tuple, xd: list, xs: list) -> tuple:
    """The buffers with the state in ``slot`` if ``slot >= 0``: a ``lax.cond`` around an update
    in place (no copy of a large state on the steps that store nothing)."""
    from jax import lax

    bd, bs = buf
    return lax.cond(
        slot >= 0,
        lambda: (
            [b.at[slot].set(x) for b, x in zip(bd, xd)],
            [b.at[slot].set(x) for b, x in zip(bs, xs)],
        ),
        lambda: (list(bd), list(bs)),
    )


def _store_where(slot: Any, buf: tuple, xd: list, xs: list) -> tuple:
    """`_store_cond` without control flow: every step writes a slot (the state, or the slot's
    own value back), cheaper than a ``lax.cond`` per step when a state is small."""
    import jax.numpy as jnp

    at = jnp.maximum(slot, 0)
    bd, bs = buf
    bd = [b.at[at].set(jnp.where(slot >= 0, x, b[at])) for b, x in zip(bd, xd)]
    bs = [b.at[at].set(jnp.where(slot >= 0, x, b[at])) for b, x in zip(bs, xs)]
    return bd, bs


def _aux(out: tuple) -> tuple:
    yd, ys = out
    return list(yd), list(ys)


def _zeros_ct(x: Any) -> Any:
    """The cotangent of a non-differentiable (integer) input."""
    import jax

    return onp.zeros(onp.shape(x), dtype=jax.dtypes.float0)


def _report(stats: RunStats | None, **counts: Any) -> None:
    """Add this program's counts to ``stats`` when it runs (a no-op without stats)."""
    if stats is None:
        return
    import jax

    def add(**values: Any) -> None:
        for k, v in values.items():
            v = int(v)
            if k in ("steps", "max_snapshots", "max_taped_steps", "checkpoint_bytes_peak"):
                setattr(stats, k, max(getattr(stats, k), v))
            else:
                setattr(stats, k, getattr(stats, k) + v)
        # The program reports maxima, not a timeline: snapshots and the taped steps are at
        # their most together at worst (as for Revolve: s snapshots and one taped step).
        stats.peak_states = max(stats.peak_states, stats.max_snapshots + stats.max_taped_steps)
        if stats.reverse_sweeps:
            stats._swept("reverse")

    jax.debug.callback(add, **counts)


def _stats(
    scheme: Scheme,
    report: Callable[[RunStats], None] | None,
    wanted: bool,
    host: _Host | None = None,
) -> RunStats | None:
    """The run's `RunStats` (handed to ``report`` now, filled in as the program runs)."""
    if report is None and not wanted:
        return None
    where = "jax device buffer" if host is None else f"{host!r} (host, from jax)"
    stats = RunStats(scheme=repr(scheme), storage=where)
    if report is not None:
        report(stats)
    return stats


def _checkpoints(machine: _Machine, slots: int, xd: list, xs: list) -> Any:
    """What the loop carries for its checkpoints: the stacked device buffers, or the
    ``(run, token)`` of a run whose checkpoints go to the host (its sessions opened)."""
    if machine.host is not None:
        return machine.host.begin()
    return _buffers(max(slots, 1), xd, xs)


def _host_mode(machine: _Machine, *groups: list) -> None:
    """Refuse, with what works, a transformation host checkpoints cannot go through: a host
    callback has no batching rule inside the sweeps' conditionals (``jax.vmap``, ``jax.jacrev``)
    and no forward-mode rule (``jax.hessian``, ``jax.jvp`` of ``jax.grad``)."""
    if machine.host is None:
        return
    from jax.interpreters import ad

    kinds = [(ad.JVPTracer, "jax.jvp / jax.hessian")]
    try:  # not exported by jax.interpreters.batching
        from jax._src.interpreters.batching import BatchTracer

        kinds.append((BatchTracer, "jax.vmap / jax.jacrev"))
    except ImportError:  # pragma: no cover - then JAX's own error says it
        pass
    for kind, what in kinds:
        if any(isinstance(x, kind) for group in groups for x in group):
            raise CheckpointError(
                f"checkpoints on the host ({machine.host!r}) go through jax.grad, jax.vjp, "
                f"jax.value_and_grad and jax.jit, not through {what}: drop the storage to keep "
                "the checkpoints in the device buffer, which those transformations go through"
            )


def _guard(machine: _Machine, buf: Any, reverse: bool = False) -> Any:
    """A context that closes a host run's sessions when a sweep run eagerly fails (for the
    reverse sweep, ``buf`` is the forward sweep's residual: see `_Host.reversing`)."""
    if machine.host is None:
        return contextlib.nullcontext()
    if reverse:
        machine.host.reversing(buf)
    return machine.host.guard(buf)


def _buffers(slots: int, xd: list, xs: list) -> tuple[list, list]:
    import jax.numpy as jnp

    return (
        [jnp.zeros((slots, *x.shape), x.dtype) for x in xd],
        [jnp.zeros((slots, *x.shape), x.dtype) for x in xs],
    )


# -- checkpoints on the host ---------------------------------------------------------------------


class _Host:
    """Checkpoints in the scheme's storage on the host, reached from the compiled program.

    Each run of the program (one forward sweep and its reverse sweep) opens its own sessions,
    one per level, when its forward sweep starts (`begin`), and closes them when its reverse
    sweep ends (`end`): a temporary HDF5 file is removed then. A store hands the state to the
    host through ``io_callback`` (the host copies it: `HDF5Storage` writes it behind, in its
    thread); a restore brings it back the same way, and the program puts it on the device.
    The loop carries ``(run, token)`` where the device buffer would be: every callback takes the
    token and returns a new one, so XLA runs them in the program's order (a restore never
    overtakes its store, the close comes after the last restore). A failing callback closes its
    run's sessions before the error reaches the caller.
    """

    def __init__(self, storages: dict[str, Any], xl: _Layout, levels: bool) -> None:
        import jax
        import jax.numpy as jnp

        self.storages, self.levels = storages, levels
        self.runs: dict[int, _Run] = {}
        self.order: list[int] = []  # the reverse sweep's restores (keys), in order, if known
        self.lock = threading.Lock()
        self.next_run = 0
        self.traced: tuple[Any, _Site] | None = None  # the run of the forward sweep last traced
        # Runs still open when the program is dropped (an error stopped them) close then.
        weakref.finalize(self, _close_runs, self.runs)
        self.structure = f"jax state: {describe(xl.odef)}"
        d, s = xl.split(xl.arrays)
        self.shapes = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in [*d, *s]]
        self.nd = len(d)
        self.token = jax.ShapeDtypeStruct((), jnp.int32)

    def __repr__(self) -> str:
        if not self.levels:
            return repr(self.storages["memory"])
        return ", ".join(f"{level}: {s!r}" for level, s in self.storages.items())

    def level(self, key: int) -> tuple[str, int]:
        """(level, slot) of a table's slot number."""
        if not self.levels:
            return "memory", key
        return ("disk" if key % 2 else "memory"), key // 2

    # On the host, called by the program.

    def _begin(self, site: _Site) -> onp.ndarray:
        with self.lock:
            run, self.next_run = self.next_run, self.next_run + 1
            stale = list(site.open) if site.fused else []
            site.open.add(run)
        for old in stale:  # runs of this program that an error stopped (see `_Site`)
            self.discard(old)
        sessions: dict[str, Any] = {}
        try:
            for level, storage in self.storages.items():
                sessions[level] = storage.session()
        except BaseException:
            _close_all(sessions.values())
            raise
        self.runs[run] = _Run(sessions, site)
        return onp.int32(run)

    def _run(self, run: Any) -> _Run:
        held = self.runs.get(int(run))
        if held is None:
            raise CheckpointError(
                "the checkpoints of this run are gone: its reverse sweep has already run (each "
                "forward sweep's checkpoints serve one reverse sweep; call jax.vjp again for "
                "another pullback), or an error ended it"
            )
        return held

    # The program passes (run, token, slot, step) as one int32 array: one argument to convert
    # on each call rather than four, a good part of a callback's fixed cost.

    def _put(self, meta: Any, *leaves: Any) -> onp.ndarray:
        run, tok, key, n = (int(v) for v in onp.asarray(meta))
        with self.failing(run, "store"):
            held, (level, slot) = self._run(run), self.level(key)
            if (level, slot) in held.slots:  # the slot's previous checkpoint
                held.sessions[level].delete(slot)
            held.slots.discard((level, slot))
            held.sessions[level].put(slot, n, [onp.array(x) for x in leaves], self.structure)
            held.slots.add((level, slot))
        return onp.int32(tok + 1)

    def _get(self, meta: Any) -> tuple:
        run, tok, key, n = (int(v) for v in onp.asarray(meta))
        with self.failing(run, "restore"):
            held, (level, slot) = self._run(run), self.level(key)
            step, leaves = held.sessions[level].get(slot)
            if step != n:
                raise CheckpointError(f"slot {slot} holds the state at {step}, not at {n}")
            held.restored += 1
            if held.restored < len(self.order):  # read the next restore ahead (HDF5)
                ahead, slot = self.level(self.order[held.restored])
                held.sessions[ahead].prefetch(slot)
            out = [onp.asarray(x, s.dtype).reshape(s.shape) for x, s in zip(leaves, self.shapes)]
        return (onp.int32(tok + 1), *out)

    def _end(self, run: Any, tok: Any) -> onp.ndarray:
        self.discard(int(run), quiet=False)
        return onp.int32(tok + 1)

    def discard(self, run: int, quiet: bool = True) -> None:
        """Close the sessions of ``run`` (if still open); raise their errors unless ``quiet``."""
        held = self.runs.pop(run, None)
        if held is not None:
            held.site.open.discard(run)
            errors = _close_all(held.sessions.values())
            if errors and not quiet:
                raise errors[0]

    @contextlib.contextmanager
    def failing(self, run: Any, doing: str) -> Iterator[None]:
        """Close the sessions of ``run`` when the block (a callback) fails."""
        try:
            yield
        except BaseException as exc:
            self.discard(int(run))
            if isinstance(exc, CheckpointError) or not isinstance(exc, Exception):
                raise
            raise CheckpointError(f"JAX backend, host checkpoints: {doing} failed: {exc}") from exc

    # In the program.

    def begin(self) -> tuple:
        """A new run's ``(run, token)``, its sessions open."""
        from jax.experimental import io_callback

        site = _Site()
        run = io_callback(functools.partial(self._begin, site), self.token)
        self.traced = (run, site)
        return run, run * 0

    def store(self, cond: Any, key: Any, n: Any, xd: list, xs: list, buf: tuple) -> tuple:
        """``buf`` after storing the state at ``n`` in ``key`` if ``cond``."""
        from jax import lax
        from jax.experimental import io_callback

        run, tok = buf

        def put() -> Any:
            return io_callback(self._put, self.token, _meta(run, tok, key, n), *xd, *xs)

        return run, lax.cond(cond, put, lambda: tok)

    def restore(
        self, cond: Any, key: Any, n: Any, xd: list, xs: list, buf: tuple, x0: tuple | None
    ) -> tuple[list, list, tuple]:
        """The state at ``n`` from ``key`` (the input ``x0`` for key -1) if ``cond``."""
        from jax import lax
        from jax.experimental import io_callback

        run, tok = buf
        nd = self.nd

        def get() -> tuple:
            out = io_callback(self._get, [self.token, *self.shapes], _meta(run, tok, key, n))
            return list(out[1 : 1 + nd]), list(out[1 + nd :]), out[0]

        def unchanged() -> tuple:
            return list(xd), list(xs), tok

        if x0 is not None:
            xd0, xs0 = x0
            fetch = get

            def get() -> tuple:
                return lax.cond(key < 0, lambda: (list(xd0), list(xs0), tok), fetch)

        xd, xs, tok = lax.cond(cond, get, unchanged)
        return xd, xs, (run, tok)

    def end(self, buf: tuple) -> None:
        """Close the run's sessions once every callback before has run."""
        from jax.experimental import io_callback

        io_callback(self._end, self.token, *buf)

    def reversing(self, buf: tuple) -> None:
        """Note that the reverse sweep of the run ``buf`` (the forward sweep's residual) is
        being traced: into its forward sweep's program when the run is the very value traced
        there (``jax.jit(jax.grad(f))``), see `_Site`."""
        if self.traced is not None and self.traced[0] is buf[0]:
            self.traced[1].fused = True
        self.traced = None

    @contextlib.contextmanager
    def guard(self, buf: Any) -> Iterator[None]:
        """Close the run's sessions when a sweep run eagerly (not under ``jax.jit``) fails."""
        try:
            yield
        except BaseException:
            if buf is not None and not isinstance(buf[0], _tracer()):
                self.discard(int(buf[0]))
            raise


@dataclasses.dataclass
class _Site:
    """The forward sweep of one trace, and the runs it began that have not ended.

    When the reverse sweep is traced into the same program (``jax.jit(jax.grad(f))``), each run
    of that program ends before the program returns, unless an error (a step's callback that
    raises, say) stopped it: then its sessions are still open, with nothing left to close them.
    Such a program's next run closes them (``fused``). When the reverse sweep is a later call
    (``jax.vjp``, run eagerly or jitted apart), a run stays open until its pullback ends it.
    """

    fused: bool = False
    open: set[int] = dataclasses.field(default_factory=set)


@dataclasses.dataclass
class _Run:
    """One run's sessions (by level), the (level, slot)s they hold, and its restores so far."""

    sessions: dict[str, Any]
    site: _Site
    slots: set[tuple[str, int]] = dataclasses.field(default_factory=set)
    restored: int = 0


def _meta(*values: Any) -> Any:
    import jax.numpy as jnp

    return jnp.stack([jnp.asarray(v, jnp.int32) for v in values])


def _close_runs(runs: dict[int, _Run]) -> None:
    while runs:
        _close_all(runs.popitem()[1].sessions.values())


def _tracer() -> type:
    import jax

    return jax.core.Tracer


def _close_all(sessions: Any) -> list[BaseException]:
    """Close every session; return the errors (every session is closed all the same)."""
    errors = []
    for session in sessions:
        try:
            session.close()
        except Exception as exc:
            errors.append(exc)
    return errors


# -- the for loop --------------------------------------------------------------------------------


class _ForLoop:
    """The primal and the two sweeps of one checkpointed for loop, for its ``jax.custom_vjp``."""

    def __init__(
        self,
        machine: _Machine,
        T: int,
        tail: list[Record],
        slots: tuple[int, int, bool],
        stats: RunStats | None,
        fwd: tuple[Any, int],
        rev: tuple[Any, int],
    ) -> None:
        self.machine, self.T, self.tail, self.stats = machine, T, tail, stats
        self.slots, self.most, self.pinned = slots
        self.tail_evals = sum(r.n1 - r.n0 for r in tail)
        (self.fwd_rows, self.fwd_n), (self.rev_rows, self.rev_n) = fwd, rev

    def loop(self, xd: list, xs: list, pd: list, ps: list) -> tuple:
        """The loop run straight through, with no checkpoints (the undifferentiated primal)."""
        out = self.machine.advance((xd, xs), 0, self.T, (pd, ps))
        _report(self.stats, steps=self.T, forward_steps=self.T)
        return out

    def loop_fwd(self, xd: list, xs: list, pd: list, ps: list) -> tuple:
        """The forward sweep: run the forward table, tape the last segment, keep residuals."""
        import jax
        import jax.numpy as jnp

        machine, stats, tail = self.machine, self.stats, self.tail
        if stats is not None:
            stats.differentiated = True
        _host_mode(machine, xd, pd)
        buf = _checkpoints(machine, self.slots, xd, xs)
        carry = (xd, xs, buf, [], [], jnp.zeros(2, jnp.int32))
        with _guard(machine, buf):
            fwd = machine.run(self.fwd_rows, self.fwd_n, carry, (pd, ps), None, False)
            xd1, xs1, buf, _, _, ev = fwd
            pulls = []
            for r in tail:  # the primal run's last segment, taped: its pullback is a residual
                seg = machine.segment(r.n1 - r.n0)
                xd1, pull, xs1 = jax.vjp(
                    lambda a, b, n0=r.n0, xs1=xs1, seg=seg: _aux(seg(a, b, xs1, ps, n0)),
                    xd1,
                    pd,
                    has_aux=True,
                )
                pulls.append(pull)
        _report(
            stats,
            steps=self.T,
            forward_steps=ev[0],
            recorded_steps=self.tail_evals,
            max_snapshots=self.most,
            checkpoint_bytes_peak=self.most * machine.xl.nbytes,
            max_taped_steps=max([r.n1 - r.n0 for r in tail], default=0),
        )
        # The input state is the pinned checkpoint: a residual that refers to it, not a copy.
        xd0 = xd if self.pinned else None
        return (xd1, xs1), (buf, pulls, pd, ps, xd0, xs)

    def loop_bwd(self, res: tuple, g: tuple) -> tuple:
        """The reverse sweep: pull back through the taped tail, then run the reverse table."""
        import jax.numpy as jnp

        buf, pulls, pd, ps, xd0, xs0 = res
        machine = self.machine
        with _guard(machine, buf, reverse=True):
            _host_mode(machine, g[0], pd)
            adj = list(g[0])
            pct = [jnp.zeros_like(a) for a in pd]
            for pull in reversed(pulls):
                gx, gp = pull(adj)
                adj = list(gx)
                pct = [a + b for a, b in zip(pct, gp)]
            cur = [jnp.zeros_like(a) for a in adj]
            carry = (cur, list(xs0), buf, adj, pct, jnp.zeros(2, jnp.int32))
            x0 = None if xd0 is None else (xd0, xs0)
            rev = machine.run(self.rev_rows, self.rev_n, carry, (pd, ps), x0, True)
            _, _, buf, adj, pct, ev = rev
            if machine.host is not None:
                machine.host.end(buf)
        _report(self.stats, forward_steps=ev[0], recorded_steps=ev[1], reverse_sweeps=1)
        return adj, [_zeros_ct(x) for x in xs0], pct, [_zeros_ct(x) for x in ps]


def _for_tables(
    scheme: Scheme, T: int, storages: dict[str, Any] | None
) -> tuple[_Table, list[Record], _Table, tuple[int, int, int | None]]:
    """(forward table, the primal run's taped tail, reverse table, (slot indices used, most
    checkpoints held at once, the input's slot)) of the plan of ``T`` steps."""
    actions = list(scheme.schedule(T))  # raises CheckpointError for a loop it cannot plan
    levels = storages is not None and len(storages) > 1
    if levels:
        actions = _level_keys(actions)
    fwd_actions, tail, rev_actions = _split_schedule(actions)
    slots, most = _max_slots(actions)
    # A two-level plan's slot numbers carry the level in their parity: no slot moves down.
    pin = None if levels else _input_slot(actions)
    fwd_table = _Table({}, pin)
    fwd_table.add(fwd_actions)
    rev_table = _Table({}, pin)
    rev_table.add(rev_actions)
    return fwd_table, tail, rev_table, (slots, most, pin)


def checkpointed_for(
    step: Callable[..., Any],
    state: Any,
    steps: range,
    scheme: Scheme,
    *,
    params: Sequence[Any] = (),
    report: Callable[[RunStats], None] | None = None,
    return_stats: bool = False,
) -> Any:
    """The JAX form of `ckpt_transform.checkpointed_for` (``steps`` already a range).

    The result is a ``jax.custom_vjp`` of the state and params: ``jax.grad``, ``jax.vjp``,
    ``jax.jit`` and ``jax.value_and_grad`` work through it, and under ``jax.jit`` the whole
    checkpointed loop (both sweeps and the schedule) is one XLA program.
    """
    import jax

    T = len(steps)
    storages = _host_storages(scheme)
    fwd_table, tail, rev_table, (slots, most, pin) = _for_tables(scheme, T, storages)
    xl = _Layout(state, "state")
    pl = _Layout(tuple(params), "params")
    start, stride = steps.start, steps.step
    machine = _Machine(step, xl, pl, lambda k: start + k * stride)
    machine.branches = rev_table.lengths
    if storages is not None and any(r[0] == _STORE for r in fwd_table.rows + rev_table.rows):
        machine.host = _Host(storages, xl, len(storages) > 1)
        # the reverse sweep's restores from the host, in order: each reads the next one ahead
        if scheme.read_ahead:
            machine.host.order = [r[3] for r in rev_table.rows if r[0] == _RESTORE and r[3] >= 0]
    stats = _stats(scheme, report, return_stats, machine.host)
    # Host arrays: the sweeps make them constants of their own traces (a jax array made here,
    # under an enclosing jax.jit, would be a tracer of that trace, leaked into a later one).
    fwd_rows, fwd_n = fwd_table.array(), len(fwd_table.rows)
    rev_rows, rev_n = rev_table.array(), len(rev_table.rows)
    slots = (slots - (pin is not None), most, pin is not None)
    run = _ForLoop(machine, T, tail, slots, stats, (fwd_rows, fwd_n), (rev_rows, rev_n))

    loop = jax.custom_vjp(run.loop)
    loop.defvjp(run.loop_fwd, run.loop_bwd)
    xd, xs = xl.split(xl.arrays)
    pd, ps = pl.split(pl.arrays)
    pd = machine.hoist(xd, xs, pd, ps)
    yd, ys = (run.loop if _forward_mode(xd, pd) else loop)(xd, xs, pd, ps)
    out = xl.build(yd, ys)
    return (out, stats) if return_stats else out


# -- the while loop ------------------------------------------------------------------------------


def _while_forward(scheme: Scheme, max_steps: int) -> list[Any]:
    """The plan's forward actions for a loop of unknown length, up to ``max_steps``.

    An online plan's forward actions do not depend on where the loop will end, so they are
    read off once; the loop consults them (as `_slot_of`) at each state it reaches.
    """
    actions = list(cut_forward(scheme.plan(None).forward(), max_steps))
    for a in actions:
        if isinstance(a, Record):
            raise CheckpointError(
                f"{scheme!r} tapes steps during the primal run of a while loop ({a}); the JAX "
                "backend runs a while loop with a scheme that only stores checkpoints on the "
                "way forward: OnlineR2(snapshots) or Periodic(period=...)"
            )
    return actions


def _slot_of(actions: list[Any], max_steps: int, pin: int | None) -> tuple[onp.ndarray, int]:
    """(``slot_of[n]``: the buffer slot the state at n goes to, -1 for none; buffer slots)."""
    table = _Table({}, pin)
    slot_of = onp.full(max_steps + 1, -1, dtype=onp.int32)
    slots = 0
    for a in actions:
        if isinstance(a, Store) and a.slot != pin:
            slot_of[a.n] = table.slot(a.slot)
            slots = max(slots, int(slot_of[a.n]) + 1)
    return slot_of, slots


def _while_schedule(scheme: Scheme, steps: int) -> list[Any]:
    """The whole plan of a while loop that ran ``steps`` times, as the autograd driver runs it:
    planned for a loop of unknown length, its forward cut where the loop ended."""
    plan = scheme.plan(None)
    actions = list(cut_forward(plan.forward(), steps))
    return [*actions, EndForward(n=steps), *plan.reverse(steps)]


def _while_tables(
    scheme: Scheme, max_steps: int, forward: list[Any]
) -> tuple[dict[int, int], int | None]:
    """(segment lengths the reverse sweeps of loops of up to ``max_steps`` iterations use, the
    plan's slot for the input state as `_input_slot` finds it).

    Every length needs its own compiled branch. The short loops show every length a scheme's
    reverse sweep uses (one for `OnlineR2`, up to the period for `Periodic`), and how it uses
    its slots; a longer loop needing another length, or storing another state in the input's
    slot, raises a `CheckpointError` naming it when its table is built.
    """
    lengths: dict[int, int] = {}
    schedules = [forward]
    for t in sorted({*range(1, min(max_steps, 64) + 1), max_steps}):
        schedule = _while_schedule(scheme, t)
        schedules.append(schedule)
        _, _, rev = _split_schedule(schedule)
        for a in rev:
            if isinstance(a, Reverse):
                lengths.setdefault(a.n1 - a.n0, _RECREV + len(lengths))
    return lengths, _input_slot(*schedules)


class _WhileLoop:
    """The primal and the two sweeps of one checkpointed while loop, for its ``jax.custom_vjp``."""

    def __init__(
        self,
        scheme: Scheme,
        machine: _Machine,
        max_steps: int,
        slot_of: onp.ndarray,
        slots: int,
        tables: tuple[dict[int, int], int | None],
        stats: RunStats | None,
    ) -> None:
        import jax
        import jax.numpy as jnp

        self.scheme, self.machine, self.max_steps = scheme, machine, max_steps
        self.slots, (self.lengths, self.pin), self.stats = slots, tables, stats
        self.slot_rows = slot_of  # a host array, as the tables of `checkpointed_for`
        self.tables: dict[int, tuple[onp.ndarray, int]] = {}
        self.cond_call: Callable[..., Any] | None = None  # set once the cond is converted
        self.shapes = (
            jax.ShapeDtypeStruct((_CHUNK, 4), jnp.int32),
            jax.ShapeDtypeStruct((), jnp.int32),
            jax.ShapeDtypeStruct((), jnp.int32),
        )

    def holds(self, xd: list, xs: list, pd: list, ps: list) -> Any:
        """The user's cond on flat leaves, checked to be a boolean scalar."""
        import jax.numpy as jnp

        u = self.machine.n_user
        ok = self.cond_call(xd, xs, pd[:u], ps, *pd[u + self.machine.hoisted :])
        ok = jnp.asarray(ok)
        if ok.shape != () or ok.dtype != jnp.bool_:
            raise CheckpointError(
                f"cond must return a boolean scalar, got {ok.dtype}{list(ok.shape)}"
            )
        return ok

    def primal(self, xd: list, xs: list, pd: list, ps: list, buf: Any) -> tuple:
        """Run the loop to its end, storing checkpoints in ``buf`` (if any) as the plan says."""
        import jax.numpy as jnp
        from jax import lax

        max_steps, slot_rows, machine = self.max_steps, jnp.asarray(self.slot_rows), self.machine

        def go(c: tuple) -> Any:
            k, xd, xs, _ = c
            return (k < max_steps) & self.holds(xd, xs, pd, ps)

        store = _store_where if self.machine.xl.nbytes < _SWITCH_BYTES else _store_cond
        host = machine.host

        def body(c: tuple) -> tuple:
            k, xd, xs, buf = c
            if buf is not None and host is not None:  # to the host where the plan says so
                buf = host.store(slot_rows[k] >= 0, slot_rows[k], k, xd, xs, buf)
            elif buf is not None:  # store the state at k where the plan says so (in place)
                buf = store(slot_rows[k], buf, xd, xs)
            xd, xs = machine.call(xd, xs, k, pd, ps)
            return k + 1, xd, xs, buf

        return lax.while_loop(go, body, (jnp.zeros((), jnp.int32), xd, xs, buf))

    def table_chunk(self, t: Any, chunk: Any) -> tuple[onp.ndarray, onp.ndarray, onp.ndarray]:
        """On the host: one chunk of the reverse table of a loop that ran ``t`` times."""
        scheme, lengths, tables = self.scheme, self.lengths, self.tables
        t, chunk = int(t), int(chunk)
        if t not in tables:
            actions = _while_schedule(scheme, t)
            _, _, rev = _split_schedule(actions)
            table = _Table(dict(lengths), self.pin)
            table.add(rev)
            if len(table.lengths) != len(lengths):
                extra = sorted(set(table.lengths) - set(lengths))
                raise CheckpointError(
                    f"the reverse sweep of {scheme!r} over {t} iterations tapes segments of "
                    f"{extra} steps, which the compiled program has no branch for"
                )
            rows = table.array()
            outside = (rows[:, 3] >= max(self.slots, 1)).any()
            if _input_slot(actions) not in (self.pin, None) or outside:
                raise CheckpointError(
                    f"the reverse sweep of {scheme!r} over {t} iterations uses its slots "
                    f"otherwise than the loops the program was compiled for (buffer of "
                    f"{self.slots} slots, the input state in slot {self.pin})"
                )
            padded = onp.zeros((max(-(-len(rows) // _CHUNK), 1) * _CHUNK, 4), onp.int32)
            padded[: len(rows)] = rows  # rows past the end are never walked
            tables[t] = (padded, len(rows), _max_slots(actions)[1])
        rows, n, most = tables[t]
        part = rows[chunk * _CHUNK : (chunk + 1) * _CHUNK]
        return part, onp.int32(n), onp.int32(most)

    def loop(self, xd: list, xs: list, pd: list, ps: list) -> tuple:
        """The loop run with no checkpoints (the undifferentiated primal)."""
        k, yd, ys, _ = self.primal(xd, xs, pd, ps, None)
        _report(self.stats, steps=k, forward_steps=k)
        return yd, ys

    def loop_fwd(self, xd: list, xs: list, pd: list, ps: list) -> tuple:
        """The forward sweep: the loop run with checkpoints; they and its length are residuals."""
        if self.stats is not None:
            self.stats.differentiated = True
        _host_mode(self.machine, xd, pd)
        buf = _checkpoints(self.machine, self.slots, xd, xs)
        with _guard(self.machine, buf):
            k, yd, ys, buf = self.primal(xd, xs, pd, ps, buf)
        _report(self.stats, steps=k, forward_steps=k)
        xd0 = xd if self.pin is not None else None  # the pinned checkpoint: the input itself
        return (yd, ys), (buf, k, pd, ps, xd0, xs)

    def loop_bwd(self, res: tuple, g: tuple) -> tuple:
        """The reverse sweep: the host's reverse table for the loop's length, run in chunks."""
        import jax
        import jax.numpy as jnp
        from jax import lax

        machine, shapes, table_chunk = self.machine, self.shapes, self.table_chunk
        buf, t, pd, ps, xd0, xs0 = res
        with _guard(machine, buf, reverse=True):
            _host_mode(machine, g[0], pd)
        x0 = None if xd0 is None else (xd0, xs0)
        adj = list(g[0])
        pct = [jnp.zeros_like(a) for a in pd]
        cur = [jnp.zeros_like(a) for a in adj]

        def more(c: tuple) -> Any:
            return c[0] < c[1]

        def chunk(c: tuple) -> tuple:
            r, n, inner = c
            rows, _, _ = jax.pure_callback(table_chunk, shapes, t, r // _CHUNK)
            inner = machine.run(rows, jnp.minimum(n - r, _CHUNK), inner, (pd, ps), x0, True)
            return r + _CHUNK, n, inner

        # One host call for the first chunk of rows (enough for a loop of ~1000 steps); a
        # longer table is fetched chunk by chunk.
        carry = (cur, list(xs0), buf, adj, pct, jnp.zeros(2, jnp.int32))
        zero = jnp.zeros((), jnp.int32)
        with _guard(machine, buf):
            rows, n, most = jax.pure_callback(table_chunk, shapes, t, zero)
            carry = machine.run(rows, jnp.minimum(n, _CHUNK), carry, (pd, ps), x0, True)
            _, _, carry = lax.while_loop(more, chunk, (zero + _CHUNK, n, carry))
            _, _, buf, adj, pct, ev = carry
            if machine.host is not None:
                machine.host.end(buf)
        _report(
            self.stats,
            forward_steps=ev[0],
            recorded_steps=ev[1],
            max_snapshots=most,
            checkpoint_bytes_peak=most * machine.xl.nbytes,
            max_taped_steps=jnp.minimum(ev[1], 1),
            reverse_sweeps=1,
        )
        return adj, [_zeros_ct(x) for x in xs0], pct, [_zeros_ct(x) for x in ps]


def checkpointed_while(
    cond: Callable[..., Any],
    step: Callable[..., Any],
    state: Any,
    scheme: Scheme,
    *,
    params: Sequence[Any] = (),
    max_steps: int | None = None,
    report: Callable[[RunStats], None] | None = None,
    return_stats: bool = False,
) -> Any:
    """The JAX form of `ckpt_transform.checkpointed_while`; see the module docstring.

    The loop runs in a ``lax.while_loop`` of at most ``max_steps`` iterations (it stops there
    even when ``cond`` still holds, as ``lax``-style bounded loops do); the scheme's forward
    decisions are read off its plan, and the reverse sweep's table is computed on the host from
    the length the loop turned out to have.
    """
    import jax
    import jax.numpy as jnp

    if max_steps is None:
        raise TypeError(
            "the JAX backend compiles a while loop with a bound on its length: give "
            "max_steps=N, the most iterations the loop may run (it stops there): "
            "checkpointed_while(..., max_steps=N), or @checkpoint_struct(scheme, max_steps=N) "
            "on a decorated function"
        )
    check_max_steps(max_steps)
    storages = _host_storages(scheme)
    if storages is not None and len(storages) > 1:
        raise CheckpointError(
            f"the JAX backend runs a while loop with a one-level scheme: {scheme!r} plans two "
            "storage levels for a loop of known length; use checkpointed_for, or "
            "OnlineR2(snapshots, storage=...) for a while loop with checkpoints on the host"
        )
    forward = _while_forward(scheme, max_steps)
    tables = _while_tables(scheme, max_steps, forward) if max_steps else ({}, None)
    slot_of, slots = _slot_of(forward, max_steps, tables[1])
    xl = _Layout(state, "state")
    pl = _Layout(tuple(params), "params")
    machine = _Machine(step, xl, pl, lambda k: k)
    machine.branches = tables[0]
    if storages is not None:
        machine.host = _Host(storages, xl, False)
    stats = _stats(scheme, report, return_stats, machine.host)
    run = _WhileLoop(scheme, machine, max_steps, slot_of, slots, tables, stats)

    loop = jax.custom_vjp(run.loop)
    loop.defvjp(run.loop_fwd, run.loop_bwd)
    xd, xs = xl.split(xl.arrays)
    pd, ps = pl.split(pl.arrays)

    def user_cond(xd: list, xs: list, pd: list, ps: list) -> Any:
        return jnp.asarray(cond(xl.build(xd, xs), *pl.build(pd, ps)))

    pd_user = pd
    pd = machine.hoist(xd, xs, pd, ps)
    run.cond_call, cond_consts = jax.closure_convert(user_cond, xd, xs, pd_user, ps)
    pd = [*pd, *cond_consts]
    yd, ys = (run.loop if _forward_mode(xd, pd) else loop)(xd, xs, pd, ps)
    out = xl.build(yd, ys)
    return (out, stats) if return_stats else out
