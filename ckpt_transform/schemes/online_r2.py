"""Online checkpointing for loops of unknown length (Stumm & Walther's r = 2, then onwards).

The plan never learns the loop's length in advance: its forward iterator is endless, and the
driver simply stops consuming it when the loop ends. Everything it decides is therefore decided
at a state n knowing only that the loop has run n steps so far.

Conventions (those of `ckpt_transform.schemes`): c snapshots, the loop's input state counted
among them; ``beta(s, t) = C(s + t, s)`` (``beta(s, -1) = 0``) is the most steps that s snapshots
reverse when no step is run passively more than t times (Griewank & Walther, Algorithm 799,
https://doi.org/10.1145/347837.347846).

How a run costs
---------------
When the loop ends at T, the plan holds checkpoints at ``0 = p_0 < p_1 < ... < p_{k-1} < T``.
They cut the loop into segments; segment j, ``[p_j, p_{j+1})`` (``p_k = T``), is reversed with
the ``c - j`` slots that are not held by checkpoints to its left (its own included), by binomial
(offline) reversal, at the optimal cost ``R(L, s) = (t + 1) L - beta(s + 1, t - 1)`` evaluations for
L steps and s slots (t the least integer with ``beta(s, t) >= L``; one taped evaluation per step
included). The run's total is ``T + sum_j R(L_j, c - j)``: the primal run evaluates every step once
(the last one too: the loop's end is only known after it).

``R(., s)`` is convex: its increments are ``t + 1`` on ``beta(s, t - 1) < L <= beta(s, t)``. So the
least total for T steps over all placements is T plus the T smallest increments of all segments
(`online_lower_bound`), reached exactly when, for one level tau, every segment j has a length in
``[beta(c - j, tau - 1), beta(c - j, tau)]``. With every segment at the top of its range
(``L_j = beta(c - j, tau)``) the loop has ``beta(c, tau + 1) - 1`` steps: that placement is the
only optimal one there, and it is also the only optimal one at the start of level tau + 1.

What the plan does
------------------
*Level 0* (n < c): store every state; T <= c steps are each evaluated twice, the least possible.

*Level 1* (Stumm & Walther's online algorithm with r = 2, Algorithm I of the paper): fixed
checkpoints ``q_0 = 0`` and ``q_k = q_{k-1} + c - k + 2`` (k = 1..c-1); at ``q_k`` the state is
stored in place of the newest checkpoint that is not fixed, and the next ``c - k - 1`` states are
stored each in place of the oldest one that is not fixed. Every segment then stays within
``beta(c - j, 1) = c - j + 1`` steps, so up to ``T = beta(c, 2) - 1`` steps no step is evaluated
more than three times (primal run, one recomputation, the taped run): repetition number 2, at
the least total ``3 T - c``. The paper's figures draw the same checkpoints with one step more:
there the end is known as the last step starts; here the last step has run passively when the
end is found, so the r = 2 range is ``T <= beta(c, 2) - 1`` and at ``T = beta(c, 2)`` one step is
evaluated four times (no placement avoids it).

*Levels tau >= 2* (past the r = 2 range; this placement is ours): at the start of level tau
(``n = beta(c, tau) - 1``) the checkpoints are the unique optimal placement, and the level's end
placement ``P_j = sum_{i<j} beta(c - i, tau)`` is taken as fixed targets: each ``P_j`` is stored
when reached, in place of a checkpoint that is not fixed, and kept to the level's end
(``beta(c, tau + 1) - 1``, where the placement is optimal again). At every other state the plan
chooses between not storing and storing in place of a checkpoint that is not fixed: among the
choices that keep every segment within ``cap`` repetitions (tau in level 2, so that up to
``beta(c, 3) - 1`` steps no step runs more than four times, as Stumm & Walther's r = 3 range
promises; tau + 1 beyond, one above the least possible), the one the run would cost least with
if the loop ended one step later; on equal costs, not storing, then the leftmost checkpoint.
(Were no choice within the cap, the cheapest would be taken; the tests never meet that case.)
The placement is optimal at every level's start and end and, in between, within a few percent
of `online_lower_bound` for small c and a fraction of a percent for c >= 10
(docs/online_r2.md has the measurements).

The reverse sweep reverses the segments right to left by binomial reversal, each with the slots
its left neighbours leave free, freeing each checkpoint once its segment is done.

Deciding costs O(1) per step and O(c) per stored state, so the driver is consulted only at
stores (one `Advance` spans the steps between).

A store planned at the state where the loop turns out to end is taken when the driver consumes
slot actions before it looks for the end (as `cut_forward` does): the checkpoint it replaced is
then lost to the reverse sweep, which stays correct and costs a little more.

References
----------
P. Stumm and A. Walther, "New algorithms for optimal online checkpointing", SIAM J. Sci. Comput.
32(2), 836-854, 2010. https://doi.org/10.1137/080742439

Q. Wang, P. Moin and G. Iaccarino, "Minimal repetition dynamic checkpointing algorithm for
unsteady adjoint calculation", SIAM J. Sci. Comput. 31(4), 2549-2567, 2009.
https://doi.org/10.1137/080727890

A. Griewank and A. Walther, "Algorithm 799: Revolve: an implementation of checkpointing for the
reverse or adjoint mode of computational differentiation", ACM Trans. Math. Softw. 26(1), 19-45,
2000. https://doi.org/10.1145/347837.347846
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from itertools import accumulate
from math import comb, isqrt

from ckpt_transform._checks import check_int, typechecked
from ckpt_transform.schemes.actions import (
    Action,
    Advance,
    Free,
    Record,
    Restore,
    Reverse,
    Store,
)
from ckpt_transform.schemes.base import Plan, Scheme

__all__ = ["OnlineR2", "Online_r2", "online_lower_bound", "reversal_cost"]


# -- binomial arithmetic -----------------------------------------------------------------------

_NEVER = float("inf")  # the sort key of a checkpoint that may not be replaced
_MEMO_SIZE = 1 << 17  # costs and repetitions a plan remembers at most

_ROWS: dict[int, list[int]] = {}  # s -> [beta(s, 0), beta(s, 1), ...], grown on demand


def _repetitions(length: int, s: int) -> int:
    """The least t >= 0 with ``beta(s, t) >= length`` (length >= 1, s >= 1)."""
    if s == 1:
        return length - 1
    if s == 2:
        # (t + 1)(t + 2) / 2 >= length; start from the real root and correct rounding.
        t = max(0, (isqrt(8 * length + 1) - 3) // 2)
        while (t + 1) * (t + 2) // 2 < length:
            t += 1
        return t
    row = _ROWS.get(s)
    if row is None:
        row = _ROWS[s] = [1]
    while row[-1] < length:
        row.append(comb(s + len(row), s))
    return bisect_left(row, length)


def reversal_cost(length: int, slots: int) -> int:
    """Step evaluations to reverse ``length`` steps from a checkpoint, with ``slots`` slots.

    Binomial (offline) reversal: the checkpoint's slot is one of the ``slots``; every step is
    taped once, and ``R = (t + 1) length - beta(slots + 1, t - 1)`` in all, t the least integer
    with ``beta(slots, t) >= length`` (Griewank & Walther 2000,
    https://doi.org/10.1145/347837.347846). Nothing of the segment is current beforehand: its
    first sweep is included.

    Parameters
    ----------
    length
        Steps of the segment, >= 0 (0 costs nothing).
    slots
        Checkpoint slots the segment may use, its first state's included, >= 1.

    Returns
    -------
    int
    """
    if length <= 0:
        return 0
    if slots == 1:
        return length * (length + 1) // 2
    t = _repetitions(length, slots)
    return (t + 1) * length - (comb(slots + t, slots + 1) if t >= 1 else 0)


def _split(length: int, s: int) -> int:
    """Where an optimal binomial reversal of ``length >= 2`` steps with ``s >= 2`` slots stores.

    The cost of storing after j steps, ``j + R(j, s) + R(length - j, s - 1)``, is convex in j, so
    the least j whose increment is not negative is optimal. On ``beta(s, u - 1) <= j <
    beta(s, u)`` that increment is ``1 + (u + 1) - (t' + 1)``, t' the repetitions of the right
    part, and it is >= 0 iff ``length - j <= beta(s - 1, u + 1)``; the first u where that happens
    is ``t - 1`` (t the repetitions of the whole), giving the least such j below.
    """
    t = _repetitions(length, s)
    j = length - comb(s + t - 1, s - 1)  # length - beta(s - 1, t)
    if t >= 2:
        j = max(j, comb(s + t - 2, s))  # beta(s, t - 2)
    return min(max(j, 1), length - 1)


def online_lower_bound(steps: int, snapshots: int) -> int:
    """The fewest step evaluations any plan can reach, for a loop whose end is found at ``steps``.

    Every step runs once in the primal run (the last one too: its end is found after it), and the
    reverse sweep costs at least ``sum_j R(L_j, snapshots - j)`` over the segments the checkpoints
    held at the end cut the loop into. By convexity of R that sum is least for the ``steps``
    smallest increments of all segments: ``snapshots`` increments of 1, then
    ``beta(snapshots, u + 1) - beta(snapshots, u)`` increments of ``u + 1`` for u = 1, 2, ...

    Parameters
    ----------
    steps
        T >= 0.
    snapshots
        c >= 1, the loop's input state included.

    Returns
    -------
    int
    """
    if steps <= 0:
        return 0
    total, left, u = steps, steps, 0
    while left > 0:
        count = (
            snapshots
            if u == 0
            else comb(snapshots + u + 1, snapshots) - comb(snapshots + u, snapshots)
        )
        take = min(count, left)
        total += take * (u + 1)
        left -= take
        u += 1
    return total


# -- the scheme ----------------------------------------------------------------------------------


class OnlineR2(Scheme):
    """Online checkpointing for loops whose length is not known in advance (``while`` loops).

    Stumm & Walther's online algorithm with repetition number r = 2 while the loop is short
    enough for it, then a placement of our own that keeps the total of step evaluations close to
    the least any online plan can reach, for any length, within the same snapshot budget.

    Parameters
    ----------
    snapshots
        How many states may be held at once, the loop's input state included (>= 1).
        ``OnlineR2(1)`` keeps only the input and recomputes quadratically.
    storage
        Where checkpoints live (in memory when None).

    Notes
    -----
    Up to ``T = (c + 1)(c + 2) / 2 - 1`` steps for c snapshots, no step is evaluated more than
    three times in all (primal run, one recomputation, the taped run) and the total is the least
    possible, ``3 T - c`` (for T >= c). Up to ``(c + 1)(c + 2)(c + 3) / 6 - 1`` steps no step is
    evaluated more than four times; beyond, at most once more than the least possible for that
    length. The plan goes on for any length; see the module docstring and docs/online_r2.md for
    what it does and what it costs. It ignores a known length (a ``for`` loop): it decides as if
    the loop could stop at any step.

    References
    ----------
    P. Stumm and A. Walther, "New algorithms for optimal online checkpointing", SIAM J. Sci.
    Comput. 32(2), 836-854, 2010. https://doi.org/10.1137/080742439

    Q. Wang, P. Moin and G. Iaccarino, "Minimal repetition dynamic checkpointing algorithm for
    unsteady adjoint calculation", SIAM J. Sci. Comput. 31(4), 2549-2567, 2009.
    https://doi.org/10.1137/080727890

    Examples
    --------
    >>> from ckpt_transform.schemes.online_r2 import OnlineR2
    >>> for action in OnlineR2(2).schedule(4):
    ...     print(action)
    store    state 0 -> slot 0
    advance  [0, 1)
    store    state 1 -> slot 1
    advance  [1, 3)
    free     slot 1 (state 1)
    store    state 3 -> slot 1
    advance  [3, 4)
    -- primal run ends at state 4; reverse sweep --
    restore  state 3 <- slot 1
    record   [3, 4)
    reverse  [3, 4)
    free     slot 1 (state 3)
    restore  state 0 <- slot 0
    advance  [0, 1)
    store    state 1 -> slot 1
    advance  [1, 2)
    record   [2, 3)
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

    online = True

    @typechecked
    def __init__(self, snapshots: int, *, storage: object | None = None) -> None:
        check_int("OnlineR2 snapshots", snapshots, 1)  # the loop's input state counts as one
        self.snapshots = snapshots
        self.storage = storage

    def __repr__(self) -> str:
        args = [f"snapshots={self.snapshots}"]
        if self.storage is not None:
            args.append(f"storage={self.storage!r}")
        return f"OnlineR2({', '.join(args)})"

    def plan(self, steps: int | None) -> Plan:
        """A fresh plan; a known length (``steps``) is accepted and not used.

        Raises
        ------
        ValueError
            When ``steps`` is neither None nor an int >= 0.
        """
        if steps is not None and (
            isinstance(steps, bool) or not isinstance(steps, int) or steps < 0
        ):
            raise ValueError(f"the number of steps must be an int >= 0 or None, got {steps!r}")
        return _OnlinePlan(self.snapshots)


#: The name Checkpointing.jl users know.
Online_r2 = OnlineR2


class _OnlinePlan(Plan):
    """One run: the checkpoints held, as the forward actions yielded so far leave them.

    Invariants: ``pos`` is sorted and ``pos[0] == 0`` once the forward run has begun;
    ``slot[i]`` holds the state at ``pos[i]``; ``fixed[i]`` says that ``pos[i]`` may not be
    replaced in the current level. Every list change happens just before the action that makes
    it is yielded, so whatever the driver has taken is what these lists say.
    """

    def __init__(self, snapshots: int) -> None:
        self.c = snapshots
        self.pos: list[int] = []
        self.slot: list[int] = []
        self.fixed: list[bool] = []
        self.free_slots = list(range(snapshots - 1, -1, -1))  # pop() gives the lowest
        self.reached: int | None = 0  # the end of the last span yielded (None: open-ended)
        self._inner: list[int] | None = None  # see _update_inner
        self._gain: list[int] = []
        self._memo: dict[tuple[int, int], int] = {}
        self.cap = 0  # most repetitions a segment may need in the current level
        self._reps: list[int] = []
        self._reps_more: list[int] = []
        self._merged: list[int] = []
        self._within_all = self._within_but_last = True  # segments within the cap
        self._any_key: list[float] = []
        self._ok_key: list[float] = []
        self.started = False
        self.reversed = False

    # -- forward -------------------------------------------------------------------------------

    def forward(self) -> Iterator[Action]:
        """Endless: store, advance, store, ...; the driver stops when the loop ends."""
        if self.started:
            raise RuntimeError("a plan's forward sweep can be walked only once")
        self.started = True
        yield self._store(0, fixed=True)
        if self.c == 1:
            self.reached = None
            yield Advance(n0=0, n1=None)
            return
        n = 0
        for m, drop in self._stores():
            # State m is where the next checkpoint goes (drop: the index of the one it replaces).
            self.reached = m
            yield Advance(n0=n, n1=m)
            if drop is not None:
                yield self._free(drop)
            yield self._store(m, fixed=False)
            n = m

    def _store(self, n: int, *, fixed: bool) -> Store:
        slot = self.free_slots.pop()
        self.pos.append(n)  # n is beyond every held checkpoint
        self.slot.append(slot)
        self.fixed.append(fixed)
        return Store(n=n, slot=slot)

    def _free(self, i: int) -> Free:
        n, slot = self.pos.pop(i), self.slot.pop(i)
        del self.fixed[i]
        self.free_slots.append(slot)
        return Free(n=n, slot=slot)

    def _stores(self) -> Iterator[tuple[int, int | None]]:
        """The store events in order: (state, index of the checkpoint it replaces or None).

        Each event is applied (by `forward`) before the next is computed.
        """
        c = self.c
        # Level 0: the first c states, into free slots.
        for n in range(1, c):
            yield n, None
        # Level 1: Stumm & Walther's r = 2 algorithm (the module docstring). Fixed checkpoints
        # q_k; the others ("temporaries") are replaced newest-first at q_k, then oldest-first.
        q = 0
        for k in range(1, c):
            q += c - k + 2
            newest = max(i for i in range(1, c) if not self.fixed[i])
            yield q, newest
            self.fixed[-1] = True
            for m in range(1, c - k):
                oldest = min(i for i in range(1, c) if not self.fixed[i])
                yield q + m, oldest
        # Levels 2, 3, ...: fixed targets at the level's end placement, greedy in between.
        tau = 2
        while True:
            yield from self._level(tau)
            tau += 1

    def _level(self, tau: int) -> Iterator[tuple[int, int | None]]:
        """Store events of level tau, for decisions at the states [beta(c, tau) - 1, end)."""
        c = self.c
        start = comb(c + tau, c) - 1
        end = comb(c + tau + 1, c) - 1  # the next level starts deciding here
        # Targets P_1 < ... < P_{c-1}: the optimal placement at the level's end.
        targets, p = [], 0
        for j in range(1, c):
            p += comb(c - j + 1 + tau, tau)  # beta(c - j + 1, tau)
            targets.append(p)
        # No segment may need more repetitions than this (the least possible is tau for every
        # loop that ends in this level): tau itself in level 2, as Stumm & Walther's r = 3
        # range promises, one more beyond.
        self.cap = cap = tau if tau == 2 else tau + 1
        fixed = self.fixed
        for i in range(1, c):
            fixed[i] = False
        ti = 0  # the next target is targets[ti]
        pos = self.pos
        n = max(start, pos[-1] + 1)
        best, best_i, ok, ok_i = self._begin_level()
        cost, reps = self._cost, self._rep
        while n < end:
            # Invariant: c checkpoints held, all before n; (best, best_i) is the cheapest inner
            # replacement and (ok, ok_i) the cheapest within the cap (see _best_inner), both
            # without what the last segment [pos[-1], n) adds to them.
            if best_i is None and fixed[-1]:
                # Nothing may be replaced: nothing happens before the next target.
                upcoming = targets[ti] if ti < len(targets) else end
                if upcoming > n:
                    n = upcoming
                    continue
            target = ti < len(targets) and n == targets[ti]
            x = n - pos[-1]  # the last segment [pos[-1], n) so far
            # The options are weighed by their cost at T = n + 1, less what they all share:
            # the cheapest within the cap (`within`), else the cheapest of all (`anyhow`), as
            # (cost, index of the checkpoint replaced); on equal costs the earlier option below.
            within = anyhow = None
            if not target:  # no store: the last segment (1 slot) grows to x + 1 steps
                anyhow = ((x + 1) * (x + 2) // 2, None)
                if x <= cap and self._within_all:
                    within = anyhow
            if best_i is not None:  # replace an inner checkpoint; [pos[-1], n) gets 2 slots
                tail = cost(x, 2) + 1
                if ok_i is not None and reps(x, 2) <= cap:
                    if within is None or ok + tail < within[0]:
                        within = (ok + tail, ok_i)
                if anyhow is None or best + tail < anyhow[0]:
                    anyhow = (best + tail, best_i)
            if not fixed[-1]:  # replace the last checkpoint: [pos[-2], n) gets 2 slots
                left = pos[-1] - pos[-2]
                v = cost(left + x, 2) - cost(left, 2) + 1
                if anyhow is None or v < anyhow[0]:
                    anyhow = (v, c - 1)
                if (within is None or v < within[0]) and (
                    self._within_but_last and reps(left + x, 2) <= cap
                ):
                    within = (v, c - 1)
            if anyhow is None:  # only at a target, where a checkpoint is always free to go
                raise RuntimeError(f"OnlineR2: no checkpoint to replace at target {n}")
            choice = (within or anyhow)[1]
            if choice is not None:
                yield n, choice
                if target:
                    fixed[-1] = True
                    ti += 1
                # Segments left of the replaced checkpoint's left neighbour are unchanged.
                self._update_inner(max(1, choice - 1))
                best, best_i, ok, ok_i = self._best_inner()
            n += 1

    def _begin_level(self) -> tuple[int, int | None, int, int | None]:
        """Set up (first level) or refresh (the cap and fixed marks changed) the inner data."""
        if self._inner is None:
            size = self.c - 1
            self._inner, self._gain = [0] * size, [0] * size
            self._reps, self._reps_more, self._merged = [0] * size, [0] * size, [0] * size
            self._any_key, self._ok_key = [_NEVER] * size, [_NEVER] * size
            self._update_inner(1)
        self._refresh_keys(1)
        return self._best_inner()

    def _best_inner(self) -> tuple[int, int | None, int, int | None]:
        """The cheapest inner checkpoint not fixed to replace, and the cheapest within the cap.

        Ties go to the smallest index. Replacing ``pos[i]`` keeps segments 0..i-2, merges i - 1
        and i (``merged[i]`` repetitions) and gives segments i+1..c-2 one more slot
        (``reps_more``); the segment [pos[-1], n) then gets 2 slots, checked by the caller.
        Within the cap, i must lie in an interval: no segment left of i - 1 beyond the cap
        (a prefix condition) and none right of i beyond it with one slot more (a suffix one).
        """
        c, cap, reps = self.c, self.cap, self._reps
        lo, hi = 1, c - 2
        if max(reps) <= cap:
            # The usual case (every choice keeps the cap, and the cap only grows): no segment
            # is beyond it, and none with one slot more either.
            self._within_all = self._within_but_last = True
        else:
            # prefix[k]: most repetitions among segments 0..k-1 (nondecreasing in k)
            prefix = list(accumulate(reps, max, initial=0))
            self._within_all = prefix[c - 1] <= cap
            self._within_but_last = prefix[c - 2] <= cap
            # i <= hi: prefix[i - 1] <= cap; i >= lo: the segments i+1..c-2 with one slot
            # more are within the cap (tail[k] covers the last k + 1 of them, nondecreasing).
            tail = list(accumulate(reversed(self._reps_more), max))
            hi = min(bisect_right(prefix, cap), c - 2)
            lo = max(1, c - 2 - bisect_right(tail, cap))
        if c < 3:
            return 0, None, 0, None
        any_key, ok_key = self._any_key, self._ok_key
        best_i: int | None = min(range(1, c - 1), key=any_key.__getitem__)
        best = any_key[best_i]
        if best == _NEVER:
            return 0, None, 0, None
        shared = self._gain[c - 2]
        if lo <= hi:
            ok_i: int | None = min(range(lo, hi + 1), key=ok_key.__getitem__)
            ok = ok_key[ok_i]
            if ok != _NEVER:
                return best + shared, best_i, ok + shared, ok_i
        return best + shared, best_i, 0, None

    def _refresh_keys(self, first: int) -> None:
        """Sort keys of inner checkpoints from ``first`` on: ``inner[i]``, or never if barred."""
        c, cap, fixed, inner, merged = self.c, self.cap, self.fixed, self._inner, self._merged
        any_key, ok_key = self._any_key, self._ok_key
        for i in range(first, c - 1):
            key = any_key[i] = _NEVER if fixed[i] else inner[i]
            ok_key[i] = key if merged[i] <= cap else _NEVER

    def _update_inner(self, first: int) -> None:
        """Refresh what replacing an inner checkpoint costs, from index ``first`` on.

        Replacing ``pos[i]`` (``1 <= i <= c - 2``) merges segments i - 1 and i and gives one
        more slot to every segment right of them; with ``L_j = pos[j+1] - pos[j]`` its cost
        relative to the other options is ``D_i = A_i + sum_{j=i+1}^{c-2} G_j``, where
        ``A_i = R(L_{i-1} + L_i, c-i+1) - R(L_{i-1}, c-i+1) - R(L_i, c-i)`` and
        ``G_j = R(L_j, c-j+1) - R(L_j, c-j)``. Kept as ``inner[i] = A_i - gain[i]`` with
        ``gain[i] = G_1 + ... + G_i``, so that ``D_i = inner[i] + gain[c-2]``: both depend only
        on segments 0..i, and a store that changes segments from i - 1 on leaves the entries
        left of it as they are. Neither depends on the current state. The repetitions of the
        segments (``reps``), with one slot more (``reps_more``) and of merged pairs
        (``merged``) are refreshed alongside.
        """
        c, pos, inner, gain = self.c, self.pos, self._inner, self._gain
        reps, more, merged = self._reps, self._reps_more, self._merged
        get, fill, rep = self._memo.get, self._fill, self._rep
        if first == 1:
            reps[0] = rep(pos[1] - pos[0], c)
        for i in range(first, c - 1):
            left, right, s = pos[i] - pos[i - 1], pos[i + 1] - pos[i], c - i
            # Every length here is >= 1, so every cost is >= 1 and `or` only fills a miss.
            r_right_more = get((right, s + 1)) or fill(right, s + 1)
            r_right = get((right, s)) or fill(right, s)
            r_left = get((left, s + 1)) or fill(left, s + 1)
            r_both = get((left + right, s + 1)) or fill(left + right, s + 1)
            g = gain[i] = gain[i - 1] + r_right_more - r_right
            inner[i] = r_both - r_left - r_right - g
            reps[i] = rep(right, s)
            more[i] = rep(right, s + 1)
            merged[i] = rep(left + right, s + 1)
        self._refresh_keys(first)

    def _rep(self, length: int, slots: int) -> int:
        key = (length, -slots)  # shares the memo with costs; negative slots mark repetitions
        value = self._memo.get(key)
        if value is None:
            if len(self._memo) > _MEMO_SIZE:
                self._memo.clear()
            value = self._memo[key] = _repetitions(length, slots)
        return value

    def _cost(self, length: int, slots: int) -> int:
        return self._memo.get((length, slots)) or self._fill(length, slots)

    def _fill(self, length: int, slots: int) -> int:
        if len(self._memo) > _MEMO_SIZE:  # bound the memory of very long loops
            self._memo.clear()
        value = self._memo[length, slots] = reversal_cost(length, slots)
        return value

    # -- reverse -------------------------------------------------------------------------------

    def reverse(self, steps: int) -> Iterator[Action]:
        """Reverse every step, last first, from the checkpoints the forward actions left."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be an int >= 0, got {steps!r}")
        if self.reversed:
            raise RuntimeError("a plan's reverse sweep can be walked only once")
        if self.reached is not None and steps > self.reached:
            raise ValueError(
                f"the loop cannot have ended at state {steps}: the forward actions taken stop "
                f"at state {self.reached}"
            )
        if self.pos and self.pos[-1] > steps:
            raise ValueError(
                f"the loop cannot have ended at state {steps}: the forward actions taken "
                f"stored state {self.pos[-1]}"
            )
        self.reversed = True
        return self._reverse(steps)

    def _reverse(self, T: int) -> Iterator[Action]:
        c, pos, slot = self.c, self.pos, self.slot
        free = self.free_slots
        # The state T may have been stored if the loop ended right where a store was planned;
        # it is of no use for reversing steps before T.
        while pos and pos[-1] >= T:
            yield self._free(len(pos) - 1)
        if T == 0:
            return
        # Segments right to left, each an explicit-stack binomial reversal (O(1) per action at
        # any depth). A frame (n0, n1, s, slot, own): reverse [n0, n1) with s slots, the state
        # n0 held in `slot`; `own`: free that slot when the frame is done.
        frames = [
            (pos[j], pos[j + 1] if j + 1 < len(pos) else T, c - j, slot[j], True)
            for j in range(len(pos))
        ]
        current: int | None = T  # the driver's current state (none after a Reverse)
        while frames:
            n0, n1, s, sl, own = frames.pop()
            length = n1 - n0
            if current != n0:
                yield Restore(n=n0, slot=sl)
            if length == 1:
                yield Record(n0=n0, n1=n1)
                yield Reverse(n0=n0, n1=n1)
                current = None
                if own:
                    yield self._release(n0, sl)
                continue
            if s == 1:
                # One slot: from n0 to step n1 - 1, tape it, reverse it; the rest stays pending.
                yield Advance(n0=n0, n1=n1 - 1)
                yield Record(n0=n1 - 1, n1=n1)
                yield Reverse(n0=n1 - 1, n1=n1)
                current = None
                frames.append((n0, n1 - 1, 1, sl, own))
                continue
            m = n0 + _split(length, s)
            yield Advance(n0=n0, n1=m)
            frames.append((n0, m, s, sl, own))
            if n1 - m == 1:  # a single step right of the split: tape it straight away
                yield Record(n0=m, n1=n1)
                yield Reverse(n0=m, n1=n1)
                current = None
                continue
            new = free.pop()
            yield Store(n=m, slot=new)
            frames.append((m, n1, s - 1, new, True))
            current = m

    def _release(self, n: int, sl: int) -> Free:
        """Free the slot of a checkpoint whose segment has been reversed."""
        if self.pos and self.pos[-1] == n and self.slot[-1] == sl:
            self.pos.pop()
            self.slot.pop()
            self.fixed.pop()
        self.free_slots.append(sl)
        return Free(n=n, slot=sl)
