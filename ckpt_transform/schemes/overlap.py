"""The overlap model of two-level checkpointing: disk writes hidden behind the compute after them.

`HDF5Storage` writes behind, in a thread, one write at a time: a disk store queues its write and
returns, the steps that follow run while it goes on, and the next disk operation (a store, or a
restore of another slot) first waits for it. So a write costs the caller only what the compute
between it and the next disk operation does not cover: ``max(0, write - c)``.

The programme (`fill_overlap`) tracks that compute. ``s`` counts the whole steps computed since
the write still in flight began (``s = S = ceil(write)``: none is left to wait for), and
``H_L(l, a, b, s)`` is the cost of reversing ``[n0, n0 + l)`` with n0 current and held in level
L, ``a`` and ``b`` slots free, and a write in flight at ``s``; that write is charged
``charge(s') = max(0, write - s')`` at the part's first disk operation, s' steps after it began,
or at the part's end. A step recorded and reversed counts ``hide = floor(backward)`` steps (1 when
``backward`` is not given). ``H_L(1, s) = charge(min(S, s + hide))`` and for l >= 2 the least of

* a split with a right part of k = l - j >= 2 steps: ``j + RR(k, min(S, s + j)) + r_L +
  H_L(j, S)``, where the right part's first state goes to memory (``H_M(k, a - 1, b, s')``, the
  write in flight passed on to it) or to disk (``charge(s') + H_D(k, a, b - 1, 0)``: the store
  waits, then its own write starts);
* the split j = l - 1 (a right part of one step): from memory ``(l - 1) + H_M(l - 1, s'')``, the
  write in flight passed on to the left part; from disk ``(l - 1) + charge(s'') + read +
  H_D(l - 1, S)``, the restore waiting for it (s'' = min(S, s + l - 1 + hide));
* a move of n0: to disk ``charge(s) + H_D(l, a + 1, b - 1, 0)``, to memory ``H_M(l, a - 1, b + 1,
  s)``.

The loop's input is stored in memory (``H_M(T, S)``) or on disk (``H_D(T, 0)``).

Where the model charges more than the storage costs (it is an upper bound, equal in the plain
cases): a write in flight at the end of a right part kept in memory is charged there, while the
restore and the steps of the left part that follow could hide it further; a restore of the slot
whose write is still in flight costs nothing in the storage (it hands back the state being
written) but ``read`` and the wait here. ``tests/schemes/test_multilevel.py`` replays plans on a
timeline of the storage's rules and checks the bound.

Work: O(T^2 x S x lanes), S times the plain programme's, so the overlap model is for the loop
lengths of measured runs (T in the hundreds), not for T = 10^4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["OverlapTables", "TwoLevelTables", "fill_overlap", "hide_of"]

_MEMORY, _DISK = 0, 1


def hide_of(costs: dict[str, Any]) -> int:
    """Whole steps of compute a recorded and reversed step hides a write behind."""
    return math.floor(float(costs.get("backward", 1.0)))


@dataclass
class TwoLevelTables:
    """What the filled tables of both two-level programmes hold (the plain model's
    `ckpt_transform.schemes.multilevel.MultilevelTables` and `OverlapTables`): the problem, the
    lanes' extents (``A`` memory and ``B`` disk slots at most), and per level the optimum's cost,
    whether it moves n0 first, and the right part's cost and level."""

    steps: int
    memory: int
    disk: int | None
    costs: dict[str, Any]
    A: int
    B: int
    cost: tuple[np.ndarray, np.ndarray]
    moved: tuple[np.ndarray, np.ndarray]
    right: np.ndarray
    right_level: np.ndarray

    def lane(self, a: int, b: int) -> int:
        return min(a, self.A) * (self.B + 1) + min(b, self.B)


@dataclass
class OverlapTables(TwoLevelTables):
    """The filled overlap programme (module docstring), indexed ``[l, s, lane]``.

    ``cost[L]`` is ``H_L``, ``moved[L]`` says the optimum moves n0 first, ``plus[L][j, lane]`` is
    ``H_L(j, S) + j + r_L`` (the left part after a right part of two steps or more),
    ``right[k, s, lane]`` is ``RR(k, s)`` and ``right_level`` its level (0 memory, 1 disk).
    """

    S: int
    hide: int
    charge: np.ndarray
    plus: tuple[np.ndarray, np.ndarray]

    def cap(self, s: int) -> int:
        return min(self.S, s)

    def after_write(self, level: int, s: int) -> int:
        """``s`` once n0 has been stored in ``level`` (a disk store starts a write)."""
        return 0 if level == _DISK else s

    def left_s(self, level: int, j: int, rest: int, s: int) -> int:
        """``s`` when the left part ``[n0, n0 + j)`` starts (n0 in ``level``, s at the split)."""
        if rest >= 2 or level == _DISK:
            return self.S
        return self.cap(s + j + self.hide)

    def split(self, level: int, length: int, lane: int, s: int = 0) -> int:
        """The first advance of the optimum of ``H_level(length, s)`` in ``lane`` (0: a move),
        recomputed from the sums the build took the minimum of (the smallest j among equals)."""
        if self.moved[level][length, s, lane]:
            return 0
        sums = _split_sums(self, level, length, np.array([s]), lane)[0]
        return int(np.argmin(sums)) + 1

    def right_at(self, k: int, lane: int, s: int) -> int:
        return int(self.right_level[k, s, lane])

    def start(self, steps: int | None = None) -> tuple[int, float]:
        """The level of the loop's input (0 memory, 1 disk) and the plan's modeled cost."""
        T = self.steps if steps is None else steps
        m, d = self.memory, self.disk
        d_free = self.B if d is None else d
        options = []  # (cost, starts with a move, level): a move first loses ties
        if m >= 1:
            lane = self.lane(m - 1, d_free)
            value = float(self.cost[_MEMORY][T, self.S, lane])
            options.append((value, bool(self.moved[_MEMORY][T, self.S, lane]), _MEMORY))
        if d is None or d >= 1:
            lane = self.lane(m, d_free - 1)
            value = float(self.cost[_DISK][T, 0, lane])
            options.append((value, bool(self.moved[_DISK][T, 0, lane]), _DISK))
        best = min(value for value, _, _ in options)
        _, _, level = min(o for o in options if o[0] <= best + 1e-9)
        return level, best


def _right_parts(t: Any, n: int, s: np.ndarray) -> Any:
    """``RR(n - j, min(S, s + j))`` for j = 1 .. n - 2, shape (len(s), n - 2, lanes)."""
    js = np.arange(1, n - 1)
    return t.right[(n - js)[None, :], np.minimum(t.S, s[:, None] + js[None, :])]


def _split_sums(
    t: Any, level: int, n: int, s: np.ndarray, lane: Any = slice(None), parts: Any = None
) -> Any:
    """The split sums of ``H_level(n, s)`` for j = 1 .. n - 1, shape (len(s), n - 1, lanes):
    the same operations in the same order in the build and in the plan."""
    if parts is None:
        parts = _right_parts(t, n, s)
    sums = parts[..., lane] + t.plus[level][1 : n - 1][..., lane]
    last_s = np.minimum(t.S, s + n - 1 + t.hide)
    if level == _MEMORY:
        last = (n - 1) + t.cost[_MEMORY][n - 1][last_s][..., lane]
    else:
        read = float(t.costs["read"])
        head = (n - 1) + t.charge[last_s] + read
        tail = t.cost[_DISK][n - 1, t.S][lane]
        last = head[:, None] + tail if np.ndim(tail) else head + tail
    return np.concatenate([sums, last[:, None]], axis=1)


def fill_overlap(T: int, memory: int, disk: int | None, costs: dict[str, Any], ln: Any) -> Any:
    """Fill the overlap programme for a loop of T steps over the lanes ``ln`` (`_Lanes`)."""
    wd, rd = float(costs["write"]), float(costs["read"])
    S, hide = math.ceil(wd), hide_of(costs)
    t = OverlapTables(
        steps=T,
        memory=memory,
        disk=disk,
        costs=dict(costs),
        A=ln.A,
        B=ln.B,
        S=S,
        hide=hide,
        charge=np.maximum(0.0, wd - np.arange(S + 1)),
        cost=(np.zeros((T + 1, S + 1, ln.n)), np.zeros((T + 1, S + 1, ln.n))),
        moved=(np.zeros((T + 1, S + 1, ln.n), bool), np.zeros((T + 1, S + 1, ln.n), bool)),
        plus=(np.zeros((T + 1, ln.n)), np.zeros((T + 1, ln.n))),
        right=np.full((T + 1, S + 1, ln.n), np.inf),
        right_level=np.full((T + 1, S + 1, ln.n), -1, np.int8),
    )
    restore = (0.0, rd)
    every_s = np.arange(S + 1)
    if T >= 1:
        for L in (_MEMORY, _DISK):
            t.cost[L][1] = t.charge[np.minimum(S, every_s + hide)][:, None]
            t.plus[L][1] = t.cost[L][1, S] + 1 + restore[L]
    for n in range(2, T + 1):
        parts = _right_parts(t, n, every_s)
        vm, vd = (_split_sums(t, L, n, every_s, parts=parts).min(axis=1) for L in (_MEMORY, _DISK))
        inf = np.inf
        move_m = np.where(ln.can_to_disk, t.charge[:, None] + vd[0, ln.to_disk], inf)
        move_d = np.where(ln.can_to_mem, vm[:, ln.to_mem], inf)
        np.minimum(vm, move_m, out=t.cost[_MEMORY][n])
        np.minimum(vd, move_d, out=t.cost[_DISK][n])
        np.less(move_m, vm - 1e-9, out=t.moved[_MEMORY][n])
        np.less(move_d, vd - 1e-9, out=t.moved[_DISK][n])
        for L in (_MEMORY, _DISK):
            t.plus[L][n] = t.cost[L][n, S] + n + restore[L]
        # the right part of length n: its first state in memory (the write in flight passed on)
        # or on disk (the store waits for it, then starts its own)
        in_mem = np.where(ln.has_a, t.cost[_MEMORY][n][:, ln.less_a], inf)
        on_disk = np.where(ln.has_b, t.charge[:, None] + t.cost[_DISK][n, 0, ln.less_b], inf)
        np.minimum(in_mem, on_disk, out=t.right[n])
        disk_first = (on_disk < in_mem - 1e-9) | (
            (on_disk <= in_mem + 1e-9) & t.moved[_MEMORY][n][:, ln.less_a]
        )
        t.right_level[n] = np.where(np.isinf(t.right[n]), -1, np.where(disk_first, _DISK, _MEMORY))
    return t
