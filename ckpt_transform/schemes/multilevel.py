"""Two-level checkpointing (memory + disk): the cheapest plan when disk copies cost time.

The cost model, in units of one passive step (H-Revolve, Herrmann & Pallez, ACM TOMS 46(2), 2020,
https://doi.org/10.1145/3378672; Disk-Revolve, Aupy, Herrmann, Hovland & Robert, SIAM J. Sci.
Comput. 38(2), 2016, https://doi.org/10.1137/15M1032955): a passive step costs 1, a taped step and
its reverse ``backward`` (every step is taped exactly once, so that term is the same for every
plan), a copy into or out of memory is free, a disk write costs ``write`` and a disk read ``read``.
At most ``memory`` states are held in memory and ``disk`` on disk at once, the loop's input among
them. The plan minimises passive steps + write x disk writes + read x disk reads.

The dynamic programme. Reversing ``[n0, n0 + l)`` with the state n0 current and held in level L
(restoring it costs ``r_L``: 0 in memory, ``read`` on disk), with ``a`` free memory and ``b`` free
disk slots, costs ``F_L(l, a, b)``: ``F_L(1, ., .) = 0`` (record and reverse the step) and for
l >= 2 the least of

* a split ``1 <= j < l``: advance j steps, reverse the right part ``[n0 + j, n0 + l)`` from the
  state there, restore n0 and reverse the left part: ``j + R(l - j, a, b) + r_L + F_L(j, a, b)``,
  where a right part of one step needs no slot (``R(1) = 0``) and a longer one stores its first
  state in memory or on disk: ``R(k, a, b) = min(F_M(k, a - 1, b), write + F_D(k, a, b - 1))``;
* a move of n0 to the other level (free the slot it leaves): ``write + F_D(l, a + 1, b - 1)`` from
  memory, ``F_M(l, a - 1, b + 1)`` from disk (n0 is current, so the memory copy is free).

With zero I/O costs ``F_M = F_D`` depends on ``a + b`` only and the programme is binomial
checkpointing's (`Revolve`), so the plan costs exactly ``P(T, memory + disk)`` passive steps.

Speed. The tables are filled for l = 2, 3, ... with every (level, a, b) and every split at once
as numpy arrays: O(T^2 x memory x disk) work in vectorised passes. The build takes only the
minimum of each cell's split sums (a reduction many times cheaper than finding its position);
the plan recomputes the position of the cells it visits, from the same sums in the same order,
so it chooses what a build storing every position would have chosen (the smallest optimal j).
The sums are made and reduced by blocks of rows that stay in the processor's cache
(`_least_split`): a minimum is the same number in any grouping, so the tables are those of one
whole-array pass bit for bit, and the pass over memory is one instead of three (1.4x less CPU
time at T = 800, memory 10, disk 100). The last tables built are kept, so planning the same
loop again (same budgets and costs) costs nothing.

Why every split is searched. Binomial checkpointing's costs are convex in l and its optimal
split is monotone in l, which would allow O(1) amortised work per cell (a Knuth-style window or
the merge of two convex slope sequences). Neither holds once disk I/O costs are in: for
``Multilevel(1, 1)`` with write = read = 1 the memory table is not convex in l, and with
write = read = 5 the first optimal split of ``F_M(l, 0, 1)`` moves down as l grows
(tests/schemes/test_multilevel.py checks both counterexamples), so a search window assuming
either loses optimality. Exact bounds do not narrow the search enough either: ``plus_j`` is
increasing in j and ``R`` non-decreasing in k, so a split whose ``plus_j[j]`` or
``1 + R(l - j)`` reaches the cell's optimum could be dropped; but even with the optimum itself
as the bound, 73-78% of the splits of a lane are left, and 98-99% of the range once the lanes
are searched together as the vectorised passes do (T = 300-1000, write = read = 2;
``benchmarks/multilevel.py --windows``). Capping the lanes (a part of length l holds at most
l - 1 checkpoints, so slots beyond l - 1 change nothing) saves only rows shorter than the
budgets, and at T = 10^4 every one of 110 slots still saves recomputation. The target of
T = 10^4, memory 10, disk 100 in under 1 s is therefore not reached by this exact programme:
its split search alone is about T^2 x lanes = 10^8 x 1111 sums (see docs/benchmarks.md for
measured times).

The overlap model (``costs["overlap"] = True``, `ckpt_transform.schemes.overlap`): a disk write
runs behind the steps that follow it (`HDF5Storage` writes in a thread, one write at a time), so
it costs only what the compute before the next disk operation does not cover; the programme
then tracks that compute, and prefers plans that leave enough of it after each disk write.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ckpt_transform._checks import check_int, typechecked
from ckpt_transform.errors import CheckpointError
from ckpt_transform.schemes.actions import (
    Action,
    Advance,
    Free,
    Record,
    Restore,
    Reverse,
    Store,
)
from ckpt_transform.schemes.base import ListedPlan, Plan, Scheme
from ckpt_transform.schemes.overlap import OverlapTables, TwoLevelTables, fill_overlap

__all__ = ["DEFAULT_COSTS", "Multilevel", "MultilevelTables"]

#: The costs a plan assumes when none were given and none were measured (`Multilevel.schedule`).
DEFAULT_COSTS: dict[str, float] = {"write": 2.0, "read": 2.0, "backward": 2.0}

_COST_KEYS = ("write", "read", "backward", "overlap")
# The largest table (entries x lanes) a plan may build, about 3 GB of tables.
_MAX_CELLS = 150_000_000
_MEMORY, _DISK = 0, 1
_NAMES = ("memory", "disk")
# The tables of the last plan built, (key, tables): about 43 bytes x (T + 1) x (memory + 1) x
# (disk + 1), held until another plan is built.
_TABLES: list[tuple[Any, Any]] = []
_TABLES_KEPT = 1


class Multilevel(Scheme):
    """Two-level checkpointing: a few states in memory, more on disk, optimal for I/O costs.

    Parameters
    ----------
    memory
        How many states may be held in memory at once (the loop's input among them when it is
        kept there), >= 0.
    disk
        How many states may be held on disk at once, >= 0; None: unlimited (the Disk-Revolve case;
        planning then costs O(T^3 memory)). ``memory + disk >= 1``.
    memory_storage
        Where memory checkpoints live (`ArrayStorage` when None).
    disk_storage
        Where disk checkpoints live (a temporary `HDF5Storage` file when None).
    costs
        ``{"write": wd, "read": rd}`` in units of one passive step, optionally ``"backward"`` (a
        taped step plus its reverse; it changes the modeled total, not the plan, except with
        overlap, where a recorded step hides a write behind ``floor(backward)`` steps) and
        ``"overlap": True`` (a disk write is hidden behind the compute that follows it, up to
        the next disk operation: `ckpt_transform.schemes.overlap`). None: the driver
        times a passive step (the fastest of the loop's first three), a disk write and a disk
        read on the loop's input and plans with those figures (``stats.costs`` says which were
        used); `schedule` then assumes `DEFAULT_COSTS`.
    steps
        The loop's length, needed for a ``while`` loop (as for `Revolve`).
    read_ahead
        Let the disk storage read a checkpoint ahead of its restore (False by default). In the
        reverse sweep a restore follows the VJP of a step, so a read ahead runs during that VJP,
        at the sweep's peak of memory, and holds one state more than the budgets there; this
        scheme is for states too large to spare one, so its reads start at the restore. The
        read then costs its full time (the plan's ``read`` cost assumes no overlap anyway).

    Notes
    -----
    With ``costs={"write": 0, "read": 0}`` the plan costs exactly what ``Revolve(memory + disk)``
    costs, ``P(T, memory + disk) + T`` step evaluations. The plan is the optimum of the cost model
    in `ckpt_transform.schemes.multilevel`.

    References
    ----------
    J. Herrmann and G. Pallez, "H-Revolve: a framework for adjoint computation on synchronous
    hierarchical platforms", ACM Trans. Math. Softw. 46(2), 2020. https://doi.org/10.1145/3378672

    G. Aupy, J. Herrmann, P. Hovland and Y. Robert, "Optimal multistage algorithm for adjoint
    computation", SIAM J. Sci. Comput. 38(2), C232-C255, 2016. https://doi.org/10.1137/15M1032955

    Examples
    --------
    >>> from ckpt_transform import Multilevel
    >>> for action in Multilevel(1, 1, costs={"write": 1, "read": 1}).schedule(3):
    ...     print(action)
    store    state 0 -> slot 0
    advance  [0, 1)
    store    state 1 -> disk slot 0
    advance  [1, 2)
    record   [2, 3)
    -- primal run ends at state 3; reverse sweep --
    reverse  [2, 3)
    restore  state 1 <- disk slot 0
    record   [1, 2)
    reverse  [1, 2)
    free     disk slot 0 (state 1)
    restore  state 0 <- slot 0
    record   [0, 1)
    reverse  [0, 1)
    free     slot 0 (state 0)
    """

    @typechecked
    def __init__(
        self,
        memory: int,
        disk: int | None,
        *,
        memory_storage: object | None = None,
        disk_storage: object | None = None,
        costs: Mapping[str, Any] | None = None,
        steps: int | None = None,
        read_ahead: bool = False,
    ) -> None:
        check_int("Multilevel memory", memory, 0)
        if disk is not None:
            check_int("Multilevel disk", disk, 0)
        if memory + (1 if disk is None else disk) < 1:
            raise ValueError(
                f"Multilevel needs at least one snapshot: memory + disk >= 1, got memory={memory}, "
                f"disk={disk}"
            )
        if steps is not None:
            check_int("Multilevel steps", steps, 0)
        self.memory = memory
        self.disk = disk
        self.memory_storage = memory_storage
        self.disk_storage = disk_storage
        self.costs = None if costs is None else check_costs(costs)
        self.steps = steps
        self.read_ahead = read_ahead

    @property
    def storage(self) -> object | None:  # type: ignore[override]
        """The memory level's storage (what single-level code reads as ``scheme.storage``)."""
        return self.memory_storage

    @property
    def snapshots(self) -> int | None:
        """States held at once in both levels (None when the disk is unlimited)."""
        return None if self.disk is None else self.memory + self.disk

    def storages(self) -> dict[str, object | None]:
        """The storage of each level as given (None: the driver's default for that level)."""
        return {"memory": self.memory_storage, "disk": self.disk_storage}

    def __repr__(self) -> str:
        args = [f"memory={self.memory}", f"disk={self.disk}"]
        if self.memory_storage is not None:
            args.append(f"memory_storage={self.memory_storage!r}")
        if self.disk_storage is not None:
            args.append(f"disk_storage={self.disk_storage!r}")
        if self.costs is not None:
            args.append(f"costs={self.costs!r}")
        if self.steps is not None:
            args.append(f"steps={self.steps}")
        if self.read_ahead:
            args.append("read_ahead=True")
        return f"Multilevel({', '.join(args)})"

    def with_costs(self, costs: Mapping[str, Any]) -> Multilevel:
        """The same scheme planning with ``costs`` (the driver's measured figures)."""
        return Multilevel(
            self.memory,
            self.disk,
            memory_storage=self.memory_storage,
            disk_storage=self.disk_storage,
            costs=costs,
            steps=self.steps,
            read_ahead=self.read_ahead,
        )

    def plan(self, steps: int | None) -> Plan:
        """A fresh plan for ``steps`` iterations (None: a ``while`` loop, which needs ``steps=``).

        Raises
        ------
        CheckpointError
            When the loop's length differs from ``steps=``, or is unknown and no ``steps=`` was
            given.
        """
        if steps is None:
            if self.steps is None:
                raise CheckpointError(
                    f"{self!r} cannot plan a loop of unknown length (a while loop): it needs the "
                    f"number of iterations in advance. Pass it as Multilevel({self.memory}, "
                    f"{self.disk}, steps=N), or use OnlineR2, which does not need it."
                )
            steps = self.steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"the number of steps must be an int >= 0 or None, got {steps!r}")
        if self.steps is not None and steps != self.steps:
            raise CheckpointError(
                f"{self!r} was planned for {self.steps} steps, but the loop runs {steps} "
                f"times; pass steps={steps} or leave steps out for a for loop."
            )
        costs = self.costs if self.costs is not None else DEFAULT_COSTS
        return _MultilevelPlan(steps, self.memory, self.disk, costs)

    def tables(self, steps: int) -> MultilevelTables | OverlapTables:
        """The filled dynamic programme for ``steps`` (for tests, the cost table and teaching)."""
        costs = self.costs if self.costs is not None else DEFAULT_COSTS
        return build_tables(steps, self.memory, self.disk, costs)


def check_costs(costs: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a ``costs`` mapping; return it as a plain dict of floats (and the overlap flag)."""
    if not isinstance(costs, Mapping):
        raise TypeError(f"costs must be a dict such as {{'write': 2, 'read': 1}}, got {costs!r}")
    unknown = sorted(set(costs) - set(_COST_KEYS))
    if unknown:
        raise ValueError(f"unknown costs {unknown}; allowed keys: {list(_COST_KEYS)}")
    missing = [k for k in ("write", "read") if k not in costs]
    if missing:
        raise ValueError(f"costs must give {missing} (in units of one passive step), got {costs!r}")
    out: dict[str, Any] = {}
    for key in ("write", "read", "backward"):
        if key not in costs:
            continue
        value = costs[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"costs[{key!r}] must be a number >= 0, got {value!r}")
        if value == float("inf"):
            raise ValueError(f"costs[{key!r}] must be finite, got {value!r}")
        out[key] = float(value)
    if "overlap" in costs:
        if not isinstance(costs["overlap"], bool):
            raise TypeError(f"costs['overlap'] must be True or False, got {costs['overlap']!r}")
        out["overlap"] = costs["overlap"]
    return out


@dataclass
class MultilevelTables(TwoLevelTables):
    """The filled dynamic programme (see the module docstring).

    ``cost[L][l, lane]`` is ``F_L(l, a, b)`` with ``lane = a * (B + 1) + b``; ``moved[L][l, lane]``
    says the optimum moves n0 to the other level first; ``plus_j[L][j, lane]`` is
    ``F_L(j, a, b) + j``; ``right[k, lane]`` the cost ``R(k, a, b)`` and ``right_level[k, lane]``
    its level (0 memory, 1 disk, -1 none). The chosen split of a cell (`split`) is recomputed
    when the plan visits it, from the same sums the build minimised: the build only needs the
    minima, which are many times cheaper to take than the positions.
    """

    plus_j: tuple[np.ndarray, np.ndarray]
    # No write is in flight in this model: the state ``s`` of the overlap model stays 0.
    S: int = 0
    hide: int = 0

    def cap(self, s: int) -> int:
        return 0

    def after_write(self, level: int, s: int) -> int:
        return 0

    def left_s(self, level: int, j: int, rest: int, s: int) -> int:
        return 0

    def right_at(self, k: int, lane: int, s: int) -> int:
        return int(self.right_level[k, lane])

    def split(self, level: int, length: int, lane: int, s: int = 0) -> int:
        """The first advance of the optimum of ``F_level(length)`` in ``lane`` (0: a move).

        The sums are those the build took the minimum of, in the same floating-point order, so
        the position found is the build's: the smallest j among equal values.
        """
        if self.moved[level][length, lane]:
            return 0
        sums = self.plus_j[level][1:length, lane] + self.right[length - 1 : 0 : -1, lane]
        return int(np.argmin(sums)) + 1

    def start(self, steps: int | None = None) -> tuple[int, float]:
        """The level of the loop's input (0 memory, 1 disk) and the plan's modeled I/O+passive.

        ``steps`` (at most the tables' own) reads the optimum of a shorter loop off the same
        tables: the entries of lengths up to T are those of every shorter loop.
        """
        T = self.steps if steps is None else steps
        m, d = self.memory, self.disk
        d_free = self.B if d is None else d
        options = []  # (cost, starts with a move, level): a move first loses ties
        if m >= 1:
            lane = self.lane(m - 1, d_free)
            value = float(self.cost[_MEMORY][T, lane])
            options.append((value, bool(self.moved[_MEMORY][T, lane]), _MEMORY))
        if d is None or d >= 1:
            lane = self.lane(m, d_free - 1)
            value = self.costs["write"] + float(self.cost[_DISK][T, lane])
            options.append((value, bool(self.moved[_DISK][T, lane]), _DISK))
        best = min(value for value, _, _ in options)
        _, _, level = min(o for o in options if o[0] <= best + 1e-9)
        return level, best


def _check_size(T: int, memory: int, disk: int | None, n_lanes: int, states: int = 1) -> None:
    if states > 1 and (T + 1) * n_lanes * states > _MAX_CELLS // 8:
        raise CheckpointError(
            f"Multilevel({memory}, {disk}) over {T} steps with the overlap model needs a plan "
            f"table of {(T + 1) * n_lanes * states:,} entries ({states} per step and budget: a "
            f"write of up to {states - 1} steps), over the limit of {_MAX_CELLS // 8:,}; plan "
            "without overlap, or give smaller budgets"
        )
    if (T + 1) * n_lanes > _MAX_CELLS:
        raise CheckpointError(
            f"Multilevel({memory}, {disk}) over {T} steps needs a plan table of "
            f"{(T + 1) * n_lanes:,} entries, over the limit of {_MAX_CELLS:,}; give a smaller "
            "disk budget (disk=None plans with up to T disk slots)"
        )


@dataclass
class _Lanes:
    """Index arrays of the lanes (a, b) and of their neighbours, for one (A, B)."""

    A: int
    B: int

    def __post_init__(self) -> None:
        A, B = self.A, self.B
        self.n = (A + 1) * (B + 1)
        a_of = np.repeat(np.arange(A + 1), B + 1)
        b_of = np.tile(np.arange(B + 1), A + 1)
        lanes = np.arange(self.n)
        self.has_a, self.has_b = a_of >= 1, b_of >= 1
        self.less_a = np.where(self.has_a, lanes - (B + 1), 0)  # lane (a - 1, b)
        self.less_b = np.where(self.has_b, lanes - 1, 0)  # lane (a, b - 1)
        self.can_to_disk = (a_of + 1 <= A) & self.has_b  # lane (a + 1, b - 1)
        self.to_disk = np.where(self.can_to_disk, lanes + (B + 1) - 1, 0)
        self.can_to_mem = self.has_a & (b_of + 1 <= B)  # lane (a - 1, b + 1)
        self.to_mem = np.where(self.can_to_mem, lanes - (B + 1) + 1, 0)


def build_tables(steps: int, memory: int, disk: int | None, costs: Mapping[str, Any]) -> Any:
    """Fill the dynamic programme for a loop of ``steps`` iterations (module docstring).

    The last tables built are kept (`_TABLES`): a driver planning the same loop again, with the
    same budgets and costs, reuses them.
    """
    key = (steps, memory, disk, tuple(sorted(costs.items())))
    for cached_key, tables in _TABLES:
        if cached_key == key:
            return tables
    tables = _fill(steps, memory, disk, dict(costs))
    _TABLES.insert(0, (key, tables))
    del _TABLES[_TABLES_KEPT:]
    return tables


# Bytes of split sums per block (`_least_split`): a block stays in the processor's cache between
# the sum and the minimum, which takes them in one pass over memory instead of three.
_BLOCK_BYTES = 1 << 18


def _block_rows(lanes: int) -> int:
    return max(8, _BLOCK_BYTES // (8 * lanes))


def _least_split(plus: np.ndarray, flipped: np.ndarray, shift: int, n: int, buf: np.ndarray) -> Any:
    """``min over j = 1 .. n-1 of plus[j] + flipped[shift + j]`` for every lane, by blocks of
    ``len(buf)`` splits. The minimum of the same sums in any grouping is the same number, so the
    result equals the whole-array minimum bit for bit (and the plan's recomputed splits)."""
    rows = len(buf)
    least = np.full(plus.shape[1], np.inf)
    for lo in range(1, n, rows):
        hi = min(lo + rows, n)
        v = np.add(plus[lo:hi], flipped[shift + lo : shift + hi], out=buf[: hi - lo])
        np.minimum(least, np.minimum.reduce(v, axis=0), out=least)
    return least


def _fill(T: int, memory: int, disk: int | None, costs: dict[str, Any]) -> Any:
    wd, rd = float(costs["write"]), float(costs["read"])
    A, B = min(memory, T), min(T if disk is None else disk, T)
    ln = _Lanes(A, B)
    if costs.get("overlap", False):
        _check_size(T, memory, disk, ln.n, int(np.ceil(wd)) + 1)
        return fill_overlap(T, memory, disk, costs, ln)
    _check_size(T, memory, disk, ln.n)
    inf = np.inf
    cost = (np.zeros((T + 1, ln.n)), np.zeros((T + 1, ln.n)))
    moved = (np.zeros((T + 1, ln.n), bool), np.zeros((T + 1, ln.n), bool))
    right = np.full((T + 1, ln.n), inf)
    right_level = np.full((T + 1, ln.n), -1, np.int8)
    restore = (0.0, rd)
    # Contiguous forms for the split search: plus_j[L][j] = F_L(j) + j, and flipped[T - k] = R(k),
    # so that R(l - j) for j = 1 .. l-1 is the forward slice flipped[T - l + 1 : T].
    plus_j = (np.zeros((T + 1, ln.n)), np.zeros((T + 1, ln.n)))
    flipped = np.full((T + 1, ln.n), inf)
    if T >= 1:
        right[1] = 0.0
        flipped[T - 1] = 0.0
        for L in (_MEMORY, _DISK):
            plus_j[L][1] = 1.0  # F_L(1) + 1
    values = np.empty((_block_rows(ln.n), ln.n))
    for n in range(2, T + 1):
        best = []
        for L in (_MEMORY, _DISK):
            least = _least_split(plus_j[L], flipped, T - n, n, values)
            best.append(least + restore[L])
        vm, vd = best
        # moves of n0 to the other level, judged against the other level's splits
        move_m = np.where(ln.can_to_disk, wd + vd[ln.to_disk], inf)
        move_d = np.where(ln.can_to_mem, vm[ln.to_mem], inf)
        np.minimum(vm, move_m, out=cost[_MEMORY][n])
        np.minimum(vd, move_d, out=cost[_DISK][n])
        np.less(move_m, vm - 1e-9, out=moved[_MEMORY][n])
        np.less(move_d, vd - 1e-9, out=moved[_DISK][n])
        # the right part of length n: store its first state in memory or on disk
        in_mem = np.where(ln.has_a, cost[_MEMORY][n, ln.less_a], inf)
        on_disk = np.where(ln.has_b, wd + cost[_DISK][n, ln.less_b], inf)
        np.minimum(in_mem, on_disk, out=right[n])
        flipped[T - n] = right[n]
        np.add(cost[_MEMORY][n], n, out=plus_j[_MEMORY][n])
        np.add(cost[_DISK][n], n, out=plus_j[_DISK][n])
        # disk on a tie too when the memory option would start by moving the state to disk
        disk_first = (on_disk < in_mem - 1e-9) | (
            (on_disk <= in_mem + 1e-9) & moved[_MEMORY][n, ln.less_a]
        )
        right_level[n] = np.where(np.isinf(right[n]), -1, np.where(disk_first, _DISK, _MEMORY))
    return MultilevelTables(
        steps=T,
        memory=memory,
        disk=disk,
        costs=dict(costs),
        A=A,
        B=B,
        cost=cost,
        moved=moved,
        plus_j=plus_j,
        right=right,
        right_level=right_level,
    )


class _Slots:
    """Free slot numbers of each level (the lowest free one is taken first)."""

    def __init__(self) -> None:
        self.free: tuple[list[int], list[int]] = ([], [])
        self.count = [0, 0]

    def take(self, level: int) -> int:
        free = self.free[level]
        if free:
            return free.pop()
        self.count[level] += 1
        return self.count[level] - 1

    def give(self, level: int, slot: int) -> None:
        self.free[level].append(slot)
        self.free[level].sort(reverse=True)


def plan_actions(tables: MultilevelTables | OverlapTables) -> Iterator[Action]:
    """Every action of the tabled plan, primal run first (the first `Record` ends it).

    ``s`` is the overlap model's count of steps since the write in flight began
    (`ckpt_transform.schemes.overlap`); it stays 0 in the plain model."""
    T = tables.steps
    if T == 0:
        return
    if T == 1:
        yield Record(n0=0, n1=1)
        yield Reverse(n0=0, n1=1)
        return
    slots = _Slots()
    level, _ = tables.start()
    d_free = tables.B if tables.disk is None else tables.disk
    a, b = (tables.memory - 1, d_free) if level == _MEMORY else (tables.memory, d_free - 1)
    slot = slots.take(level)
    where = {0: (level, slot)}  # state -> (level, slot) of every checkpoint held
    s = tables.after_write(level, tables.S)
    yield Store(n=0, slot=slot, level=_NAMES[level])
    # Pending left parts, innermost last: (n0, length, a, b, right_n, s): once the right part
    # from right_n is reversed, free its checkpoint (right_n >= 0), restore n0 and reverse
    # [n0, n0 + length) with a, b free slots.
    pending: list[tuple[int, int, int, int, int, int]] = []
    n0, length = 0, T
    while True:
        # Invariant: reverse [n0, n0 + length); n0 is current and, when length >= 2, held in
        # (level, slot), with a memory and b disk slots free for this part.
        while length >= 2:
            j = tables.split(level, length, tables.lane(a, b), s)
            if j == 0:  # move n0 to the other level: store there, free here
                other = 1 - level
                new = slots.take(other)
                yield Store(n=n0, slot=new, level=_NAMES[other])
                yield Free(n=n0, slot=slot, level=_NAMES[level])
                slots.give(level, slot)
                a, b = (a + 1, b - 1) if level == _MEMORY else (a - 1, b + 1)
                level, slot = other, new
                where[n0] = (level, slot)
                s = tables.after_write(level, s)
                continue
            rest = length - j
            yield Advance(n0=n0, n1=n0 + j)
            pending.append((n0, j, a, b, -1, tables.left_s(level, j, rest, s)))
            if rest >= 2:
                s = tables.cap(s + j)
                r_level = tables.right_at(rest, tables.lane(a, b), s)
                r_slot = slots.take(r_level)
                yield Store(n=n0 + j, slot=r_slot, level=_NAMES[r_level])
                where[n0 + j] = (r_level, r_slot)
                pending[-1] = (n0, j, a, b, n0 + j, pending[-1][5])
                a, b = (a - 1, b) if r_level == _MEMORY else (a, b - 1)
                level, slot = r_level, r_slot
                s = tables.after_write(level, s)
            n0, length = n0 + j, rest
        yield Record(n0=n0, n1=n0 + 1)
        yield Reverse(n0=n0, n1=n0 + 1)
        if not pending:
            break
        n0, length, a, b, right_n, s = pending.pop()
        if right_n >= 0:  # where the right part's state is now (it may have moved)
            r_level, r_slot = where.pop(right_n)
            yield Free(n=right_n, slot=r_slot, level=_NAMES[r_level])
            slots.give(r_level, r_slot)
        level, slot = where[n0]
        yield Restore(n=n0, slot=slot, level=_NAMES[level])
    level, slot = where.pop(0)
    yield Free(n=0, slot=slot, level=_NAMES[level])


def modeled_cost(counts: Any, costs: Mapping[str, Any]) -> float:
    """The cost model's total for replayed counts (`validate_schedule`): passive steps, taped
    steps at ``backward`` each (1 when not given), disk writes and reads at their costs."""
    return (
        counts.forward_steps
        + counts.recorded_steps * float(costs.get("backward", 1.0))
        + counts.writes.get("disk", 0) * float(costs["write"])
        + counts.reads.get("disk", 0) * float(costs["read"])
    )


class _MultilevelPlan(ListedPlan):
    """One run of two-level checkpointing over ``steps`` iterations (stores in their level)."""

    name = "Multilevel"

    def __init__(self, steps: int, memory: int, disk: int | None, costs: Mapping[str, Any]):
        self.tables = build_tables(steps, memory, disk, costs)
        super().__init__(steps, plan_actions(self.tables))
