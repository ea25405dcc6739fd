"""Failures end the run on every rank, never in a hang.

Run as ``mpiexec -n N python failures.py MODE DIR``.

MODE ``while``: ranks whose while loops would run different numbers of iterations (the
functional form with `ckpt_transform.mpi.checkpointed_while`, traced and untraced, and a decorated
loop with ``while agree(...)``): every rank catches `CheckpointError` and writes
``rank R caught CheckpointError: ...`` to ``DIR/rank-R.txt``; then a fresh communicator still
computes a sum.

MODE ``forward`` / ``reverse``: the step raises ``ValueError`` on the last rank only, in the
primal run or in the reverse sweep's recomputation. Nothing is caught: every rank must end with
that ``ValueError`` (its traceback on stderr, a line in ``DIR/rank-R.txt``) instead of waiting
for the failed rank.
"""

from __future__ import annotations

import sys

import autograd.numpy as np
from mpi4py import MPI

from ckpt_transform import (
    CheckpointError,
    OnlineR2,
    Revolve,
    checkpoint_struct,
    checkpointed_for,
    mpi,
)

WORLD = MPI.COMM_WORLD
RANK, SIZE = WORLD.Get_rank(), WORLD.Get_size()
MODE, OUT = sys.argv[1], sys.argv[2]


def say(line):
    """One line of this rank's report: to its own file (stdout of ranks interleaves)."""
    with open(f"{OUT}/rank-{RANK}.txt", "a") as f:
        f.write(line + "\n")


def new_comm():
    return WORLD.Create_cart([SIZE], periods=[True])


def step(state, i, nu, comm):
    u, k = state
    p = mpi.exchange_halos(u, comm)
    return (u + nu * (p[:-2] + p[2:] - 2 * u), k + 1)


def report(case, error):
    say(f"rank {RANK} caught {type(error).__name__} in {case}: {error}")


def while_mode():
    u0 = np.linspace(0.0, 1.0, 6) + RANK

    # 1. the functional form, differentiated: rank r would run 3 + r iterations
    comm = new_comm()

    def loss(u, nu):
        u, _ = mpi.checkpointed_while(
            lambda s, nu, comm: s[1] < 3 + RANK,
            step,
            (u, 0),
            OnlineR2(2),
            comm=comm,
            params=(nu, comm),
        )
        return np.sum(u**2)

    try:
        mpi.grad(loss, (0, 1), comm, replicated=1)(u0, 0.1)
        say(f"rank {RANK}: no error in functional")
    except CheckpointError as error:
        report("functional", error)

    # 2. the same loop untraced
    comm = new_comm()
    try:
        with mpi.spmd(comm):
            mpi.checkpointed_while(
                lambda s, nu, comm: s[1] < 3 + RANK,
                step,
                (u0, 0),
                Revolve(2, steps=3),
                comm=comm,
                params=(0.1, comm),
            )
        say(f"rank {RANK}: no error in untraced")
    except CheckpointError as error:
        report("untraced", error)

    # 3. a decorated while loop whose condition goes through agree()
    comm = new_comm()

    @checkpoint_struct(OnlineR2(2))
    def decorated(u, nu):
        k = 0
        while mpi.agree(k < 3 + RANK, comm, k):
            u = u + nu * (mpi.exchange_halos(u, comm)[2:] - u)
            k = k + 1
        return np.sum(u**2)

    try:
        mpi.grad(decorated, 0, comm)(u0, 0.1)
        say(f"rank {RANK}: no error in decorated")
    except CheckpointError as error:
        report("decorated", error)

    # 4. the communicator an error interrupted is refused; a new one works
    try:
        mpi.allreduce(1.0, comm)
    except CheckpointError as error:
        report("reuse", error)
    comm = new_comm()
    total = mpi.allreduce(float(RANK), comm)
    say(f"rank {RANK}: a new communicator sums {total}")


def raise_mode(where):
    comm = new_comm()
    calls = [0]
    fail_at = 4 if where == "forward" else 10  # the primal run takes 8 steps

    def failing_step(u, i, nu):
        calls[0] += 1
        if RANK == SIZE - 1 and calls[0] == fail_at:
            raise ValueError(f"step {i} failed on rank {RANK}")
        return u + nu * (mpi.exchange_halos(u, comm)[2:] - u)

    def loss(u, nu):
        return np.sum(checkpointed_for(failing_step, u, 8, Revolve(2), params=(nu,)) ** 2)

    mpi.grad(loss, 0, comm)(np.linspace(0.0, 1.0, 6), 0.1)
    say(f"rank {RANK}: finished without an error")


def excepthook(kind, error, tb):
    say(f"rank {RANK} ends with {kind.__name__}: {str(error).splitlines()[0]}")
    sys.__excepthook__(kind, error, tb)


sys.excepthook = excepthook

if MODE == "while":
    while_mode()
else:
    raise_mode(MODE)
