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
finish in minutes there).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

from ckpt_transform import Multilevel
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


def main(argv: list[str]) -> None:
    if "--build" in argv:
        build_table()
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
