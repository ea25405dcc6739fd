"""Two-level (memory + disk) schedules: modeled cost and plan-building time against the peers.

Each row is one (T, memory, disk, write, read) case; every scheme's whole schedule is built and
replayed by counting: step evaluations (passive and taped), disk writes and disk reads, and the
modeled cost ``evaluations + write x disk writes + read x disk reads`` (units of one passive step;
the taped steps' reverse is the same for all and left out). Ours: `Multilevel`; peers:
checkpoint_schedules ``HRevolve``, ``MultistageCheckpointSchedule`` and ``DiskRevolve`` (its disk
unlimited, so it is compared with ``Multilevel(memory, None)``), each given the same memory and
disk numbers as its own arguments.

Run: ``PYTHONPATH=. python benchmarks/multilevel.py`` (add ``--quick`` for three rows).
"""

from __future__ import annotations

import sys
import time
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


def _row(evaluations: int, writes: int, reads: int, wd: float, rd: float, build: float) -> dict:
    cost = evaluations + wd * writes + rd * reads
    return {"evals": evaluations, "writes": writes, "reads": reads, "cost": cost, "build": build}


def main(argv: list[str]) -> None:
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
