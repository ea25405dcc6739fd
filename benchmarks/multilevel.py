"""Two-level (memory + disk) schedules: modeled cost and plan-building time against the peers.

Each row is one (T, memory, disk, write, read) case; every scheme's whole schedule is built and
replayed by counting: step evaluations (passive and taped), disk writes and disk reads, and the
modeled cost ``evaluations + write x disk writes + read x disk reads`` (units of one passive step;
the taped steps' reverse is the same for all and left out). Ours: `Multilevel`; peers:
checkpoint_schedules ``HRevolve``, ``MultistageCheckpointSchedule`` and ``DiskRevolve`` (its disk
unlimited, so it is compared with ``Multilevel(memory, None)``), each given the same memory and
disk numbers as its own arguments; pyrevolve's ``MultiLevelRevolver`` through the scheduler it
builds (``HRevolve`` over an ``Architecture`` of a memory level with write = read = 0 and a disk
level with the row's costs, exactly what ``MultiLevelRevolver.reload_scheduler`` does with its
storage list; the operators and storages it would drive take no part in the plan).

pyrevolve's schedules follow the graph of the H-Revolve paper: the primal run ends with a passive
step to the final state, and the adjoint of step i (``B_i``) re-runs that step taped from the
state i. Its forward steps are therefore passive and each of its T step adjoints tapes one step:
its evaluations are its forward steps + T, counted on the same footing as ours.

Run: ``PYTHONPATH=. python benchmarks/multilevel.py`` (add ``--quick`` for three rows); ``--build``
prints a second table, the time to build a plan at larger sizes (ours against the peers that
finish in minutes there); ``--scaling`` the build time of ``Multilevel(10, 100)`` for T = 10^3 ..
10^4 (built whole up to ``--whole-up-to``, default 2000; above that, the split search alone,
timed on sampled rows and summed over all rows); ``--windows`` how much of the split range exact
bounds would leave to search.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ckpt_transform import Multilevel
from ckpt_transform.schemes.multilevel import _block_rows, _least_split
from ckpt_transform.schemes.validate import validate_schedule

GRID = [
    # (T, memory, disk, write, read)
    (30, 2, 4, 2, 2),
    (50, 3, 5, 5, 5),
    (100, 2, 10, 2, 1),
    (100, 4, 10, 10, 10),
    (200, 3, 30, 3, 3),
    (300, 5, 20, 1, 1),
    (500, 4, 30, 5, 2),
]
QUICK = GRID[:3]


def ours(T: int, m: int, d: int | None, wd: float, rd: float) -> dict[str, Any]:
    start = time.perf_counter()
    scheme = Multilevel(m, d, costs={"write": wd, "read": rd})
    counts = validate_schedule(scheme.schedule(T), T, level_snapshots={"memory": m, "disk": d})
    build = time.perf_counter() - start
    w, r = counts.writes.get("disk", 0), counts.reads.get("disk", 0)
    return _row(counts.evaluations, w, r, wd, rd, build)


def peer(kind: str, T: int, m: int, d: int, wd: float, rd: float) -> dict[str, Any] | None:
    try:
        import checkpoint_schedules as cs
    except ImportError:
        return None
    start = time.perf_counter()
    if kind == "HRevolve":
        schedule = cs.HRevolve(T, m, d, wd=wd, rd=rd)
    elif kind == "Multistage":
        schedule = cs.MultistageCheckpointSchedule(T, m, d)
    else:
        schedule = cs.DiskRevolve(T, m, wd=wd, rd=rd)
    evaluations = writes = reads = 0
    for action in schedule:
        if isinstance(action, cs.Forward):
            evaluations += action.n1 - action.n0
            if action.write_ics and action.storage == cs.StorageType.DISK:
                writes += 1
        elif isinstance(action, (cs.Copy, cs.Move)):
            if action.from_storage == cs.StorageType.DISK:
                reads += 1
            elif action.to_storage == cs.StorageType.DISK:
                writes += 1
        elif isinstance(action, cs.EndReverse):
            break
    return _row(evaluations, writes, reads, wd, rd, time.perf_counter() - start)


def pyrevolve_peer(T: int, m: int, d: int, wd: float, rd: float) -> dict[str, Any] | None:
    """pyrevolve's MultiLevelRevolver plan: its HRevolve scheduler over (memory, disk) levels."""
    try:
        from pyrevolve.schedulers.base import Architecture
        from pyrevolve.schedulers.hrevolve import HRevolve
    except ImportError:
        return None
    start = time.perf_counter()
    levels = [_Level(wd=0, rd=0, nckp=m), _Level(wd=wd, rd=rd, nckp=d)]
    scheduler = HRevolve(T, T, Architecture(levels))
    forward = writes = reads = 0
    for op in scheduler.oplist:
        if op.type == "Forwards":
            forward += op.index[1] - op.index[0] + 1
        elif op.type == "Forward":
            forward += 1
        elif op.type == "Write" and op.index[0] == 1:
            writes += 1
        elif op.type == "Read" and op.index[0] == 1:
            reads += 1
    return _row(forward + T, writes, reads, wd, rd, time.perf_counter() - start)


@dataclass
class _Level:
    """What pyrevolve's Architecture reads off a storage: its costs and number of slots."""

    wd: float
    rd: float
    nckp: int


def _row(evaluations: int, writes: int, reads: int, wd: float, rd: float, build: float) -> dict:
    cost = evaluations + wd * writes + rd * reads
    return {"evals": evaluations, "writes": writes, "reads": reads, "cost": cost, "build": build}


BUILD_GRID = [
    # (T, memory, disk, write, read, the peers run too)
    (1000, 4, 30, 2, 2, True),
    (2000, 10, 100, 2, 2, False),
]


def build_table() -> None:
    """Plan-building time at larger sizes, each scheme's whole schedule built and counted."""
    print("| T | memory | disk | write | read | scheme | modeled cost | build (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for T, m, d, wd, rd, with_peers in BUILD_GRID:
        rows = [("Multilevel (ours)", ours(T, m, d, wd, rd))]
        if with_peers:
            rows.append(("HRevolve", peer("HRevolve", T, m, d, wd, rd)))
            rows.append(("pyrevolve MultiLevelRevolver", pyrevolve_peer(T, m, d, wd, rd)))
        for name, r in rows:
            if r is not None:
                cost, build = r["cost"], r["build"]
                print(f"| {T} | {m} | {d} | {wd} | {rd} | {name} | {cost:g} | {build:.2f} |")
        sys.stdout.flush()


def split_search_seconds(T: int, lanes: int, samples: int = 12) -> float:
    """The split search of a whole build over T steps, as `_fill` runs it (`_least_split`: a
    sum and a minimum over every split, for each level and lane), timed on ``samples`` rows
    spread over the lengths and summed over all rows (the time of a row is linear in its
    length). A lower bound of the build: the rest of a row (moves, right parts) is O(lanes)."""
    rng = np.random.default_rng(0)
    plus = rng.random((T + 1, lanes))
    flipped = rng.random((T + 1, lanes))
    buf = np.empty((_block_rows(lanes), lanes))
    per_split = []
    for n in np.linspace(T // samples, T, samples).astype(int):
        start = time.process_time()
        for _ in range(2):  # the two levels
            _least_split(plus, flipped, T - n, n, buf)
        per_split.append((time.process_time() - start) / (n - 1))
    return float(np.median(per_split)) * T * (T - 1) / 2


def scaling_table(whole_up_to: int) -> None:
    """Build time of Multilevel(10, 100), write = read = 2, for T = 10^3 .. 10^4, in CPU
    seconds of the process (less sensitive than the clock to other jobs on the machine)."""
    m, d, costs = 10, 100, {"write": 2.0, "read": 2.0}
    print("| T | memory | disk | build (CPU s) | how |")
    print("|---|---|---|---|---|")
    for T in (1000, 2000, 5000, 10000):
        if T <= whole_up_to:
            start = time.process_time()
            Multilevel(m, d, costs=costs).tables(T)
            seconds, how = time.process_time() - start, "whole build"
        else:
            seconds = split_search_seconds(T, (m + 1) * (d + 1))
            how = "split search alone, sampled rows summed (a lower bound)"
        print(f"| {T} | {m} | {d} | {seconds:.1f} | {how} |")
        sys.stdout.flush()


WINDOW_GRID = [(300, 10, 100, 2.0, 2.0), (600, 10, 100, 2.0, 2.0), (1000, 4, 30, 2.0, 2.0)]


def window_table() -> None:
    """How much of the split range exact bounds leave, given the best bound there is.

    For the cell (l, lane) with optimum V (of the split sums), a split j can be dropped when a
    lower bound of its sum reaches V: ``plus_j[j]`` (R >= 0; plus_j is increasing in j) or
    ``1 + R(l - j)`` (plus_j[1] = 1; R is non-decreasing). V itself is the tightest candidate a
    search could start from, so these shares are the most that bounding can save.
    """
    print("| T | memory | disk | write | read | splits left per lane | left, lanes together |")
    print("|---|---|---|---|---|---|---|")
    for T, m, d, wd, rd in WINDOW_GRID:
        t = Multilevel(m, d, costs={"write": wd, "read": rd}).tables(T)
        total = per_lane = union = 0
        for level in (0, 1):
            for n in range(3, T + 1, max(1, T // 150)):
                sums = t.plus_j[level][1:n] + t.right[n - 1 : 0 : -1]
                best = sums.min(axis=0)
                ok = np.isfinite(best)
                hi = (t.plus_j[level][1:n] < best).sum(axis=0)[ok]  # j <= hi
                lo = n - (t.right[1:n] + 1 < best).sum(axis=0)[ok]  # j >= lo
                total += (n - 1) * ok.sum()
                per_lane += np.maximum(hi - lo + 1, 0).sum()
                union += max(hi.max() - lo.min() + 1, 0) * ok.sum()
        print(
            f"| {T} | {m} | {d} | {wd:g} | {rd:g} | {per_lane / total:.0%} | {union / total:.0%} |"
        )
        sys.stdout.flush()


def main(argv: list[str]) -> None:
    if "--build" in argv:
        build_table()
        return
    if "--scaling" in argv:
        limit = argv[argv.index("--whole-up-to") + 1] if "--whole-up-to" in argv else "2000"
        scaling_table(int(limit))
        return
    if "--windows" in argv:
        window_table()
        return
    grid = QUICK if "--quick" in argv else GRID
    kinds = ["HRevolve", "Multistage", "DiskRevolve"]
    print(
        "| T | memory | disk | write | read | scheme | modeled cost | evaluations | disk writes "
        "| disk reads | build (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for T, m, d, wd, rd in grid:
        rows = [("Multilevel (ours)", ours(T, m, d, wd, rd))]
        rows += [(k, peer(k, T, m, d, wd, rd)) for k in kinds[:2]]
        rows.append(("pyrevolve MultiLevelRevolver", pyrevolve_peer(T, m, d, wd, rd)))
        # DiskRevolve's disk is unlimited: against ours with disk=None
        rows.append(("Multilevel, disk=None (ours)", ours(T, m, None, wd, rd)))
        rows.append(("DiskRevolve (disk unlimited)", peer("DiskRevolve", T, m, d, wd, rd)))
        for name, r in rows:
            if r is None:
                print(f"| {T} | {m} | {d} | {wd} | {rd} | {name} | not installed | | | | |")
                continue
            print(
                f"| {T} | {m} | {d} | {wd} | {rd} | {name} | {r['cost']:g} | {r['evals']} | "
                f"{r['writes']} | {r['reads']} | {r['build']:.3f} |"
            )
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
