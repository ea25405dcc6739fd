"""Strong and weak scaling of a checkpointed MPI run on 1 and 2 ranks, against one process.

Run: ``mpiexec -n 2 python benchmarks/mpi_scaling.py [--n N] [--steps T] [--reps R]``

The model is examples/burgers_mpi.py's 2D viscous Burgers step (one ghost cell from
`exchange_halos`), differentiated with `ckpt_transform.mpi.value_and_grad` under
``Revolve(snapshots)`` with checkpoints in memory. One launch of two ranks times, in every
repetition and in an order that rotates from one repetition to the next:

* the baseline: examples/burgers.py's one-process model on an n x n grid (no MPI), on rank 0
  while rank 1 sleeps;
* ``1 rank``: the MPI model on the same n x n grid, on a one-rank communicator;
* ``2 ranks, strong``: the same n x n grid split over 2 x 1 ranks;
* ``2 ranks, weak``: a 2n x n grid, so each rank holds n x n as the baseline does;
* ``two one-process runs at once``: the baseline on both ranks at the same time, without any
  communication: what the machine itself allows two processes (two cores that are hyperthreads
  of one, or shared with other work, slow both down); the weak run's time over it is the cost of
  the communication alone.

Each wall time is the slowest rank's, and its ratio is taken to the baseline of the same
repetition (the figure is the median of the ratios, quartiles in parentheses). The same is done
with CPU time (`time.process_time`, the busiest rank's): on a machine shared with other work, two
ranks seldom get two whole cores, which stretches wall time but not CPU time. Strong-scaling
efficiency is ``t_baseline / (2 t_strong)``, weak ``t_baseline / t_weak``, from either time.
Memory is, per rank, the `tracemalloc` peak of one gradient call above the memory in use before
it (after a warm-up call) and the checkpoint bytes held at most.
Rank 0 prints the tables (Markdown) that docs/benchmarks.md shows.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import autograd.numpy as np
from autograd import value_and_grad
from mpi4py import MPI

from ckpt_transform import Revolve, checkpoint_struct, mpi

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import burgers  # the one-process model
import burgers_mpi  # the distributed model

import ckpt_transform.mpi as _mpi_module

WORLD = MPI.COMM_WORLD
RANK = WORLD.Get_rank()


# Time spent in ckpt_transform.mpi's waits (wall, CPU) on this rank: the part of a run that is
# waiting for a neighbour rather than computing. Measured by wrapping its one wait function.
WAITED = [0.0, 0.0]
_original_wait = _mpi_module._wait


def _timed_wait(*args, **kwargs) -> None:
    start, start_cpu = time.perf_counter(), time.process_time()
    try:
        _original_wait(*args, **kwargs)
    finally:
        WAITED[0] += time.perf_counter() - start
        WAITED[1] += time.process_time() - start_cpu


_mpi_module._wait = _timed_wait


def idle_until_all_arrive() -> None:
    """A barrier that sleeps while waiting (a busy wait would take a core from the runner)."""
    request = WORLD.Ibarrier()
    while not request.Test():
        time.sleep(1e-3)


def initial(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """burgers.py's initial field, tiled along x when the grid is longer there."""
    u0, v0 = burgers.initial_velocity(shape[1])
    reps = shape[0] // shape[1]
    return np.tile(u0, (reps, 1)), np.tile(v0, (reps, 1))


class Case:
    """One candidate: which ranks take part, on which grid, and how to run one gradient."""

    def __init__(
        self, name: str, ranks: int, shape: tuple[int, int], args, *, copies: int = 1
    ) -> None:
        self.name, self.ranks, self.shape, self.copies = name, ranks, shape, copies
        n = shape[1]
        self.dx, self.nu, self.steps = 1.0 / n, args.nu, args.steps
        u0, v0 = initial(shape)
        self.dt = burgers.stable_time_step(u0, v0, self.nu, self.dx)
        self.active = RANK < max(ranks, copies)
        color = 0 if self.active else MPI.UNDEFINED
        sub = WORLD.Split(color, RANK)
        self.scheme = Revolve(args.snapshots)
        if ranks == 0:  # the one-process model, no MPI
            self.energy = checkpoint_struct(self.scheme)(burgers.final_energy)
            self.fun = value_and_grad(self.energy, (0, 1))
            self.args = (u0, v0, self.nu, self.dx, self.dt, self.steps)
        elif self.active:
            comm = sub.Create_cart(MPI.Compute_dims(ranks, 2), periods=[True, True])
            block = mpi.local_slices(comm, shape)
            self.energy = checkpoint_struct(self.scheme)(burgers_mpi.final_energy)
            self.fun = mpi.value_and_grad(self.energy, (0, 1), comm)
            self.args = (u0[block], v0[block], self.nu, self.dx, self.dt, self.steps, comm)

    def run(self) -> tuple[float, float, float, float]:
        """Time one gradient on the ranks that take part (the others sleep).

        Returns the slowest rank's wall time, the largest CPU time of a rank (the time the rank
        computed, which a shared machine's other work does not stretch), and the largest wall
        and CPU time a rank spent waiting for its neighbours.
        """
        WORLD.Barrier()
        seconds = cpu = 0.0
        WAITED[:] = [0.0, 0.0]
        if self.active:
            gc.collect()
            start, start_cpu = time.perf_counter(), time.process_time()
            self.fun(*self.args)
            seconds = time.perf_counter() - start
            cpu = time.process_time() - start_cpu
        idle_until_all_arrive()
        out = [seconds, cpu, *WAITED]
        return tuple(WORLD.allreduce(x, op=MPI.MAX) for x in out)  # type: ignore[return-value]

    def memory(self) -> tuple[int, int]:
        """(tracemalloc peak above start, checkpoint bytes at most) of one call on this rank."""
        peak = ckpt = 0
        if self.active:
            self.fun(*self.args)
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            self.fun(*self.args)
            peak = tracemalloc.get_traced_memory()[1] - before
            tracemalloc.stop()
            ckpt = self.energy.stats.checkpoint_bytes_peak
        idle_until_all_arrive()
        return peak, ckpt


def median_and_spread(values: list[float]) -> tuple[float, tuple[float, float]]:
    """The median and the quartiles (the whole range below 4 values)."""
    q = sorted(values)
    if len(q) < 4:
        return statistics.median(q), (q[0], q[-1])
    quartiles = statistics.quantiles(q, n=4)
    return statistics.median(q), (quartiles[0], quartiles[2])


def mib(n: float) -> str:
    return f"{n / 2**20:.2f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=128, help="grid side of the baseline (128)")
    parser.add_argument("--steps", type=int, default=100, help="time steps (100)")
    parser.add_argument("--snapshots", type=int, default=10, help="Revolve snapshots (10)")
    parser.add_argument("--nu", type=float, default=0.01, help="viscosity (0.01)")
    parser.add_argument("--reps", type=int, default=5, help="repetitions (5)")
    args = parser.parse_args()
    if WORLD.Get_size() != 2:
        sys.exit("run with exactly two ranks: mpiexec -n 2 python benchmarks/mpi_scaling.py")

    n = args.n
    cases = [
        Case("one process, no MPI (the baseline)", 0, (n, n), args),
        Case(f"1 rank, {n} x {n}", 1, (n, n), args),
        Case(f"2 ranks, strong: {n} x {n}", 2, (n, n), args),
        Case(f"2 ranks, weak: {2 * n} x {n}", 2, (2 * n, n), args),
        Case("two one-process runs at once, no MPI", 0, (n, n), args, copies=2),
    ]
    for case in cases:  # warm-up
        case.run()
    times: dict[str, list[float]] = {c.name: [] for c in cases}
    ratios: dict[str, list[float]] = {c.name: [] for c in cases}
    cpu_ratios: dict[str, list[float]] = {c.name: [] for c in cases}
    waits: dict[str, list[tuple[float, float, float, float]]] = {c.name: [] for c in cases}
    for r in range(args.reps):
        order = cases[r % len(cases) :] + cases[: r % len(cases)]
        got = {c.name: c.run() for c in order}
        wall0, cpu0 = got[cases[0].name][:2]
        for c in cases:
            times[c.name].append(got[c.name][0])
            ratios[c.name].append(got[c.name][0] / wall0)
            cpu_ratios[c.name].append(got[c.name][1] / cpu0)
            waits[c.name].append(got[c.name])
    memory = {c.name: WORLD.gather(c.memory()) for c in cases}

    if RANK != 0:
        return
    print(f"Burgers {args.steps} steps, Revolve({args.snapshots}) in memory, {args.reps} reps\n")
    print(
        "| run | ranks | median wall time | wall time / one process (quartiles) | "
        "CPU time of the busiest rank / one process | efficiency: wall, CPU |"
    )
    print("|---|---|---|---|---|---|")
    for c in cases:
        ratio, spread = median_and_spread(ratios[c.name])
        cpu_ratio, cpu_spread = median_and_spread(cpu_ratios[c.name])
        if c.ranks == 2:
            strong = "strong" in c.name
            eff = [1 / (2 * x) if strong else 1 / x for x in (ratio, cpu_ratio)]
            efficiency = f"{eff[0]:.2f}, {eff[1]:.2f} ({'strong' if strong else 'weak'})"
        elif c.copies == 2:
            efficiency = f"{1 / ratio:.2f}, {1 / cpu_ratio:.2f} (the machine's ceiling for weak)"
        else:
            efficiency = "-"
        print(
            f"| {c.name} | {max(c.ranks, c.copies)} | "
            f"{statistics.median(times[c.name]) * 1e3:.0f} ms | "
            f"{ratio:.2f}x ({spread[0]:.2f}-{spread[1]:.2f}) | "
            f"{cpu_ratio:.2f}x ({cpu_spread[0]:.2f}-{cpu_spread[1]:.2f}) | {efficiency} |"
        )
    print("\n| run | wall time waiting | CPU time waiting | CPU time outside the waits |")
    print("|---|---|---|---|")
    for c in cases:
        if c.ranks >= 1:
            rows = waits[c.name]
            wall_wait = statistics.median(r[2] for r in rows)
            cpu_wait = statistics.median(r[3] for r in rows)
            outside = statistics.median(r[1] - r[3] for r in rows)
            wall = statistics.median(times[c.name])
            print(
                f"| {c.name} | {wall_wait * 1e3:.0f} ms of {wall * 1e3:.0f} ms | "
                f"{cpu_wait * 1e3:.0f} ms | {outside * 1e3:.0f} ms |"
            )
    base_cpu = statistics.median(r[1] for r in waits[cases[0].name])
    print(f"| {cases[0].name} | - | - | {base_cpu * 1e3:.0f} ms |")
    print("\n| run | rank | traced peak above start | checkpoint bytes at most |")
    print("|---|---|---|---|")
    for c in cases:
        for rank, (peak, ckpt) in enumerate(memory[c.name][: max(c.ranks, c.copies)]):
            print(f"| {c.name} | {rank} | {mib(peak)} | {mib(ckpt)} |")
    goals(cases, ratios, memory)


def goals(cases: list[Case], ratios: dict[str, list[float]], memory: dict) -> None:
    """The issue's two targets, from the tables above: weak efficiency, checkpoints per rank."""
    base, strong, weak = cases[0], cases[2], cases[3]
    efficiency = 1 / statistics.median(ratios[weak.name])
    one = memory[base.name][0][1]
    per_rank = max(ckpt for _, ckpt in memory[strong.name][: strong.ranks])
    print("\n| target | measured | goal |")
    print("|---|---|---|")
    print(f"| weak-scaling efficiency, 2 ranks (wall) | {efficiency:.2f} | >= 0.8 |")
    print(
        f"| checkpoint bytes per rank, strong 2 ranks / one process | "
        f"{mib(per_rank)} / {mib(one)} = {per_rank / one:.2f} | "
        f"1 / ranks = {1 / strong.ranks:.2f} |"
    )


if __name__ == "__main__":
    main()
