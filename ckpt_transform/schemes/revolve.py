"""Binomial checkpointing (Revolve): the fewest step evaluations for a given memory budget.

With s snapshots (the loop's input state occupies one) and T steps, Revolve reverses the loop
with ``P(T, s) = t T - C(s + t, t - 1)`` passive evaluations, t the least integer with
``C(s + t, s) >= T``, plus one taped evaluation per step, holding one taped step at a time. That
is the proven minimum (Griewank & Walther, Algorithm 799, ACM TOMS 26(1), 2000,
https://doi.org/10.1145/347837.347846); `ckpt_transform.schemes.cost` has the closed forms.

The plan is the classical recursion, unrolled onto an explicit stack so that producing each
action costs O(1) whatever the depth (a chain of ``yield from`` would cost O(depth) per action).
To reverse l >= 2 steps from the state n0, current and held in a slot, with s >= 2 snapshots (n0's
among them):

1. advance j steps, store the state n0 + j (when the right part has 2 steps or more; a single
   step is simply recorded),
2. reverse the right part ``[n0 + j, n0 + l)`` with s - 1 snapshots, then free n0 + j,
3. restore n0 and reverse the left part ``[n0, n0 + j)`` with the same s snapshots.

With a single snapshot the l steps are reversed from n0 one by one, last first, each time
restoring n0 and advancing to the step (l (l - 1) / 2 passive evaluations). A single step is
recorded and reversed at once.

The split j: let t be the least integer with ``beta(s, t) >= l`` (``beta(s, t) = C(s + t, s)``,
``beta(s, -1) = 0``). The cost of reversing l steps with s snapshots is piecewise linear and convex
in l, with slope t on ``beta(s, t - 1) <= l <= beta(s, t)``. Any j with ``beta(s, t - 2) <= j <=
beta(s, t - 1)`` (the left part reversed with t - 1 repetitions) and ``beta(s - 1, t - 1) <= l - j
<= beta(s - 1, t)`` (the right part with t) sums to the optimum ``t l - beta(s + 1, t - 1)`` (by
``beta(s + 1, t - 1) = beta(s + 1, t - 2) + beta(s, t - 1)``). The least such j is

    j = max(l - beta(s - 1, t), beta(s, t - 2)),

clipped to ``[1, l - 1]`` (only needed for t = 1, where j = 1); every j up to
``min(beta(s, t - 1), l - beta(s - 1, t - 1))`` is optimal too. The tests check the rule against
an independent dynamic program for every l <= 300 and s <= 30.

The primal run (`Plan.forward`) is the chain of right parts from the input state: it advances to
the successive split points, storing each, and ends by recording step T - 1, so the output is
computed while the last step is taped; the reverse sweep (`Plan.reverse`) is the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, pairwise, repeat
from math import comb
from typing import Any

from ckpt_transform._checks import check_int, typechecked
from ckpt_transform.errors import CheckpointError
from ckpt_transform.schemes.actions import (
    Action,
    EndForward,
    advance_of,
    free_of,
    record_of,
    restore_of,
    reverse_of,
    store_of,
)
from ckpt_transform.schemes.base import ListedPlan, Plan, Scheme
from ckpt_transform.schemes.cost import revolve_forward_steps, revolve_repetitions

__all__ = ["Revolve"]


class Revolve(Scheme):
    """Binomial checkpointing: the minimum number of step evaluations for a memory budget.

    Parameters
    ----------
    snapshots
        How many states may be held at once, the loop's input state included (>= 1).
        ``Revolve(1)`` keeps only the input and recomputes quadratically.
    steps
        The loop's length, needed for a ``while`` loop; for a ``for`` loop it may be left out
        (the loop's length is used), and when given it must match the loop's length.
    storage
        Where checkpoints live (in memory when None).
    verbose
        0: quiet; 1: print the planned counts when a run starts; 2: also print each action as
        it is planned.
    second_order_snapshots
        How many (state, tangent) checkpoints the sweeps of a second-order derivative
        (``make_jvp(grad(f))``, ``hessian``) may hold, the input pair included; None (the
        default): ``snapshots``. A pair is two states, so the default holds up to twice the
        first-order checkpoints and recomputes least; ``(snapshots + 1) // 2`` keeps the pairs
        within the first-order checkpoints' memory at the price of more recomputation (figures
        in docs/second-order.md).

    Notes
    -----
    Every step is taped exactly once, one at a time, and the total of passive evaluations is
    ``P(T, s) = t T - C(s + t, t - 1)``, t the least integer with ``C(s + t, s) >= T``: the proven
    minimum. The primal run tapes the last step, so the total of step evaluations is exactly
    ``P(T, s) + T``.

    References
    ----------
    A. Griewank and A. Walther, "Algorithm 799: Revolve: an implementation of checkpointing for
    the reverse or adjoint mode of computational differentiation", ACM Trans. Math. Softw.
    26(1), 19-45, 2000. https://doi.org/10.1145/347837.347846

    Examples
    --------
    >>> from ckpt_transform.schemes.revolve import Revolve
    >>> for action in Revolve(2).schedule(3):
    ...     print(action)
    store    state 0 -> slot 0
    advance  [0, 1)
    store    state 1 -> slot 1
    advance  [1, 2)
    record   [2, 3)
    -- primal run ends at state 3; reverse sweep --
    reverse  [2, 3)
    restore  state 1 <- slot 1
    record   [1, 2)
    reverse  [1, 2)
    free     slot 1 (state 1)
    restore  state 0 <- slot 0
    record   [0, 1)
    reverse  [0, 1)
    free     slot 0 (state 0)
    """

    @typechecked
    def __init__(
        self,
        snapshots: int,
        steps: int | None = None,
        *,
        storage: object | None = None,
        verbose: int = 0,
        second_order_snapshots: int | None = None,
    ) -> None:
        check_int("Revolve snapshots", snapshots, 1)
        if second_order_snapshots is not None:
            check_int("Revolve second_order_snapshots", second_order_snapshots, 1)
        if steps is not None:
            check_int("Revolve steps", steps, 0)
        if verbose < 0:
            raise ValueError(f"Revolve verbose must be 0, 1 or 2, got {verbose!r}")
        self.snapshots = snapshots
        self.steps = steps
        self.storage = storage
        self.verbose = int(verbose)
        self.second_order_snapshots = second_order_snapshots

    def __repr__(self) -> str:
        args = [f"snapshots={self.snapshots}"]
        if self.steps is not None:
            args.append(f"steps={self.steps}")
        if self.storage is not None:
            args.append(f"storage={self.storage!r}")
        if self.verbose:
            args.append(f"verbose={self.verbose}")
        if self.second_order_snapshots is not None:
            args.append(f"second_order_snapshots={self.second_order_snapshots}")
        return f"Revolve({', '.join(args)})"

    def second_order(self) -> Revolve:
        """``Revolve(second_order_snapshots)`` for the (state, tangent) pairs, when it is given."""
        k = self.second_order_snapshots
        if k is None or k == self.snapshots:
            return self
        return Revolve(k, self.steps, storage=self.storage, verbose=self.verbose)

    def plan(self, steps: int | None) -> Plan:
        """A fresh plan for ``steps`` iterations (None: a ``while`` loop, which needs ``steps=``).

        Raises
        ------
        CheckpointError
            When the loop's length differs from the ``steps`` given at construction, or when
            the length is unknown and no ``steps`` was given.
        """
        if steps is None:
            if self.steps is None:
                raise CheckpointError(
                    f"{self!r} cannot plan a loop of unknown length (a while loop): binomial "
                    f"checkpointing needs the number of iterations in advance. Pass it as "
                    f"Revolve({self.snapshots}, steps=N), or use Periodic(period=...) or "
                    f"OnlineR2({self.snapshots}), which do not need it."
                )
            return _RevolvePlan(self.steps, self.snapshots, self.verbose)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"the number of steps must be an int >= 0 or None, got {steps!r}")
        if self.steps is not None and steps != self.steps:
            raise CheckpointError(
                f"{self!r} was planned for {self.steps} steps, but the loop runs {steps} "
                f"times; pass steps={steps} or leave steps out for a for loop."
            )
        return _RevolvePlan(steps, self.snapshots, self.verbose)

    def schedule(self, steps: int) -> Iterator[Action]:
        """The whole plan for a loop of ``steps`` iterations, as `Scheme.schedule` gives it.

        The same actions, chained in C (`itertools.chain`) rather than delegated through a
        generator per action: the plan of a long loop streams about 1.2x faster.
        """
        return chain.from_iterable(self._schedule_parts(steps))

    def _schedule_parts(self, steps: int) -> Iterator[Iterable[Action]]:
        # Lazy like a generator: nothing is checked or planned before the first action is asked
        # for, and the reverse sweep is asked of the plan only once the primal run is consumed.
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be an int >= 0, got {steps!r}")
        plan = self.plan(steps)
        # An offline plan for exactly `steps` iterations: its primal run ends at the state at
        # `steps` with nothing to cut (what `cut_forward` would do for a plan of unknown length).
        yield plan.forward()
        yield (EndForward(n=steps),)
        yield plan.reverse(steps)


class _RevolvePlan(ListedPlan):
    """One run of binomial checkpointing over ``steps`` iterations (see the module docstring)."""

    name = "Revolve"

    def __init__(self, steps: int, snapshots: int, verbose: int) -> None:
        super().__init__(steps, _revolve_actions(steps, snapshots))
        self.snapshots = snapshots
        self.verbose = verbose

    def _echo(self, actions: Iterator[Action]) -> Iterator[Action]:
        for action in actions:
            print(f"Revolve: {action}")
            yield action

    def forward(self) -> Iterator[Action]:
        """The primal run: store the split points, advance, record step T - 1."""
        if self.verbose >= 1:  # here, not in plan(): a plan may be made only to check a length
            steps, snapshots = self.steps, self.snapshots
            t = revolve_repetitions(steps, snapshots)
            passive = revolve_forward_steps(steps, snapshots)
            print(
                f"Revolve: {steps} steps, {snapshots} snapshots: repetition number {t}, "
                f"{passive} passive + {steps} taped step evaluations"
            )
        actions = super().forward()
        return self._echo(actions) if self.verbose >= 2 else actions

    def reverse(self, steps: int) -> Iterator[Action]:
        """The reverse sweep, once the primal run has stopped at state ``steps``."""
        actions = super().reverse(steps)
        return self._echo(actions) if self.verbose >= 2 else actions

    def _planned_for(self) -> str:
        return f"Revolve was planned for {self.steps} steps (steps={self.steps})"


# Construction speed. A long plan is several actions per step (593 000 for T = 1e5, s = 100), and
# a keyword call of an action's constructor costs about twice what the rest of the planning
# costs. The plan therefore builds its actions positionally, through the classes' C constructors
# (`actions.action_maker`: the very same objects, fields in declaration order).
_ADVANCE, _RECORD, _REVERSE = advance_of, record_of, reverse_of
_STORE, _RESTORE, _FREE = store_of, restore_of, free_of


def _advance(n0: int, n1: int) -> Action:
    return _ADVANCE((n0, n1))


def _record(n0: int, n1: int) -> Action:
    return _RECORD((n0, n1))


def _reverse(n0: int, n1: int) -> Action:
    return _REVERSE((n0, n1))


def _store(n: int, slot: int) -> Action:
    return _STORE((n, slot, "memory"))


def _restore(n: int, slot: int) -> Action:
    return _RESTORE((n, slot, "memory"))


def _free(n: int, slot: int) -> Action:
    return _FREE((n, slot, "memory"))


def _revolve_actions(steps: int, snapshots: int) -> Iterator[Action]:
    """Every action of binomial checkpointing over ``steps`` steps, primal run first."""
    return chain.from_iterable(_revolve_runs(steps, snapshots))


def _revolve_runs(steps: int, snapshots: int) -> Iterator[Sequence[Action]]:
    """`_revolve_actions` as short tuples of consecutive actions.

    Each resumption of a generator costs about as much as building an action: yielding the
    actions that always come together (advance and store, record and reverse, free and restore)
    as one tuple, flattened by `itertools.chain` in C, halves the resumptions.
    """
    if steps == 0:
        return
    advance, record, reverse = _advance, _record, _reverse
    store, restore, free = _store, _restore, _free
    if steps >= 2:
        yield (store(0, 0),)
    # Pending left parts, innermost last: (n0, length, s, t, slot, right_n, right_slot), each
    # saying: once the right part starting at right_n is reversed, free its slot (if right_n >= 0),
    # restore n0 from `slot` and reverse [n0, n0 + length) with s snapshots; t bounds the
    # repetition number of that part from above.
    pending: list[tuple[int, int, int, int, int, int, int]] = []
    n0, length, s, slot = 0, steps, min(snapshots, steps), 0
    t = revolve_repetitions(steps, s)
    while True:
        # Invariant: reverse [n0, n0 + length) with s snapshots. The state n0 is current; when
        # length >= 2 it is held in `slot` (slots above `slot` are free, s - 1 of them are ours);
        # t >= the least t with beta(s, t) >= length; nothing of the part is taped.
        while length >= 2 and s >= 2:
            if length <= s + 1:  # t = 1: j = 1 all the way down, in one list
                yield _short_part(n0, length, slot)
                break
            while comb(s + t - 1, s) >= length:  # beta(s, t - 1) >= length:
                t -= 1  # t was not the least (this stops at t >= 2)
            # max(length - beta(s - 1, t), beta(s, t - 2))
            j = max(length - comb(s + t - 1, s - 1), comb(s + t - 2, s))
            right = length - j
            if right >= 2:
                yield advance(n0, n0 + j), store(n0 + j, slot + 1)
                pending.append((n0, j, s, t - 1, slot, n0 + j, slot + 1))
            else:
                yield (advance(n0, n0 + j),)
                pending.append((n0, j, s, t - 1, slot, -1, -1))
            # The right part has beta(s - 1, t) >= length - j, so t still bounds its repetition
            # number; the left part has j <= beta(s, t - 1), so t - 1 bounds its own.
            n0, length, s, slot = n0 + j, right, s - 1, slot + 1
        else:
            if length == 1:
                yield record(n0, n0 + 1), reverse(n0, n0 + 1)
            elif length >= 2:  # s == 1: from n0 to each step, last first
                yield _one_snapshot(n0, length, slot)
        if not pending:
            break
        n0, length, s, t, slot, right_n, right_slot = pending.pop()
        if right_n >= 0:
            yield free(right_n, right_slot), restore(n0, slot)
        else:
            yield (restore(n0, slot),)
    if steps >= 2:
        yield (free(0, 0),)


def _short_part(n0: int, length: int, slot: int) -> list[Action]:
    """The actions reversing ``[n0, n0 + length)`` when ``2 <= length <= s + 1``.

    With that many snapshots the split rule gives j = 1 at every level: advance one step at a
    time storing each state (slots ``slot + 1, ...``; the state n0 is held in ``slot``) up to
    the last step, record and reverse it, then walk back, each state restored, its step recorded
    and reversed, and its successor's slot freed. The same actions as the recursion, built
    without its stack and without a Python loop: each kind of action is one `map` in C over
    field tuples made once (a step's advance, record and reverse share ``(n - 1, n)``; a state's
    store, restore and free share ``(n, slot, "memory")``), placed into the output by slice
    assignment.
    """
    last = n0 + length - 1  # the part's last step; the states n0 + 1 .. last - 1 are stored
    m = length - 2
    ns = list(range(n0, last + 2))  # each state number made once
    steps = list(pairwise(ns))  # (n - 1, n) for n = n0 + 1 .. last + 1
    held = list(zip(ns[:-2], range(slot, slot + m + 1), repeat("memory")))  # states n0 .. last - 1
    out: list[Any] = [None] * (6 * m + 6)
    out[0 : 2 * m : 2] = map(_ADVANCE, steps[:m])
    out[1 : 2 * m : 2] = map(_STORE, held[1:])
    out[2 * m : 2 * m + 6] = (
        _ADVANCE(steps[m]),
        _RECORD(steps[m + 1]),
        _REVERSE(steps[m + 1]),
        _RESTORE(held[m]),
        _RECORD(steps[m]),
        _REVERSE(steps[m]),
    )
    del steps[m:]  # the walk back: (n - 1, n) for n = last - 1 down to n0 + 1; states from last - 1
    steps.reverse()
    held.reverse()
    back = 2 * m + 6
    out[back::4] = map(_FREE, held[:m])
    out[back + 1 :: 4] = map(_RESTORE, held[1:])
    out[back + 2 :: 4] = map(_RECORD, steps)
    out[back + 3 :: 4] = map(_REVERSE, steps)
    return out


def _one_snapshot(n0: int, length: int, slot: int) -> list[Action]:
    """The actions reversing ``[n0, n0 + length)`` with one snapshot, the state n0 in ``slot``.

    Each step, last first, is reached by advancing from n0 (current for the first one, restored
    for the others; one immutable `Restore` serves them all), then recorded and reversed.
    """
    advance, record, reverse = _advance, _record, _reverse
    k = length - 1
    out: list[Action] = [
        advance(n0, n0 + k),
        record(n0 + k, n0 + k + 1),
        reverse(n0 + k, n0 + k + 1),
    ]
    back = _restore(n0, slot)
    add = out.extend
    for k in range(length - 2, 0, -1):
        add((back, advance(n0, n0 + k), record(n0 + k, n0 + k + 1), reverse(n0 + k, n0 + k + 1)))
    add((back, record(n0, n0 + 1), reverse(n0, n0 + 1)))
    return out
