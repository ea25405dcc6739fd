"""Checkpointed loops run SPMD under MPI: differentiable halo exchanges and sums over ranks.

Every rank runs the same program, the same scheme and the same driver on its own block of the
state. Communication inside a step is made of two autograd primitives, `exchange_halos` and
`allreduce`, whose VJPs communicate too; since every rank walks the same plan, the reverse sweeps
of all ranks exchange their cotangents in the same order. `grad` and `value_and_grad` give the
gradient of the global loss (the sum of the ranks' local losses) in one call.

No rank can hang on another's failure: every wait is a polled nonblocking request, and `spmd`
(which `grad` and `value_and_grad` enter for you) sends an exception raised on one rank to all
the others, where the next wait raises it. A while loop's condition is agreed across ranks with a
small collective (`checkpointed_while`, `agree`); ranks that disagree raise `CheckpointError`.

Needs ``mpi4py`` and an MPI library (``pip install "ckpt_transform[mpi]"``).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import pickle
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as onp
from autograd import value_and_grad as _ag_value_and_grad
from autograd.extend import Box, defjvp, defjvp_argnums, defvjp, defvjp_argnums, primitive
from autograd.tracer import getval

from ckpt_transform import checkpointed_while as _checkpointed_while
from ckpt_transform.errors import CheckpointError

try:
    from mpi4py import MPI
except ImportError as exc:  # pragma: no cover - the mpi extra is not installed
    raise ImportError(
        "ckpt_transform.mpi needs mpi4py and an MPI library: pip install 'ckpt_transform[mpi]' "
        "(or: pip install mpi4py mpich)"
    ) from exc

__all__ = [
    "agree",
    "allreduce",
    "checkpointed_while",
    "exchange_halos",
    "gather",
    "grad",
    "interior",
    "local_slices",
    "spmd",
    "value_and_grad",
]

# Tags of this module's point-to-point messages (the MPI standard guarantees tags up to 32767).
_TAG_ABORT = 32003  # an exception raised on one rank, sent to every other rank
# Halo data bound for the receiver's ghosts in direction k (0 <= k < 3^m, m axes with several
# ranks), and ghost cotangents bound for its edge cells in direction k: _TAG_HALO(_ADJOINT) + k.
_TAG_HALO = 32100
_TAG_HALO_ADJOINT = 32400
_MAX_REMOTE = 5  # 3^5 = 243 directions: both ranges stay below 32767

# Abort messages sent, kept referenced (with their buffers) until the process ends.
_SENT: list[Any] = []


# -- waiting without hanging ------------------------------------------------------------------


class _Guard:
    """An entered `spmd` block: its communicator, the ones waited on, aborts received."""

    def __init__(self, comm: Any) -> None:
        self.comm = comm
        self.used: dict[int, Any] = {}
        self.received = 0


# The `spmd` blocks entered on this rank, innermost last: a wait listens for their aborts.
_GUARDS: list[_Guard] = []
# Communicators whose point-to-point messages an error left out of step, with the reason.
_BROKEN: dict[int, str] = {}


def _usable(comm: Any) -> None:
    """Refuse a communicator an earlier error left out of step; note it as used by the block."""
    key = comm.py2f()
    if key in _BROKEN:
        raise CheckpointError(_BROKEN[key])
    for guard in _GUARDS:
        guard.used[key] = comm


def _abort_message() -> Any:
    """The payload of an abort message pending for an entered `spmd` block, or None."""
    status = MPI.Status()
    for guard in reversed(_GUARDS):
        if guard.comm.Iprobe(source=MPI.ANY_SOURCE, tag=_TAG_ABORT, status=status):
            guard.received += 1
            return guard.comm.recv(source=status.Get_source(), tag=_TAG_ABORT)
    return None


def _remote_error(payload: tuple[int, bytes | None, str]) -> BaseException:
    rank, pickled, text = payload
    error: Any = None
    if pickled is not None:
        with contextlib.suppress(Exception):
            error = pickle.loads(pickled)
    if not isinstance(error, Exception):
        error = RuntimeError(text)
    error.add_note(f"(raised on MPI rank {rank}; this rank stopped at its next communication)")
    error._ckpt_remote = True
    return error


def _wait(requests: list[Any], receives: int = 0, *, listen: bool = True) -> None:
    """Complete ``requests``, raising the error of another rank if one arrives meanwhile.

    Polls (Testall) rather than blocking in MPI_Waitall, so that a rank whose neighbour failed
    sees the neighbour's abort message instead of waiting forever. Spins for `_SPIN` seconds
    (a neighbour on another core answers within microseconds; in lock-step ranks one step's
    imbalance is well under a millisecond), then sleeps between polls, 50 us at first, doubling up
    to 0.2 ms, which leaves the CPU to the ranks (and other work) sharing it.
    The first ``receives`` requests are receives, cancelled when an abort arrives.
    ``listen=False`` ignores aborts (for the end of an `spmd` block, which counts them itself).
    """
    if MPI.Request.Testall(requests):
        return
    spin_until = time.perf_counter() + _SPIN
    delay = 5e-5
    while not MPI.Request.Testall(requests):
        payload = _abort_message() if listen and _GUARDS else None
        if payload is not None:
            for r in requests[:receives]:
                with contextlib.suppress(MPI.Exception):
                    r.Cancel()
            raise _remote_error(payload)
        if time.perf_counter() > spin_until:
            time.sleep(delay)
            delay = min(2 * delay, 2e-4)


# How long a wait polls without sleeping, in seconds. 1 ms, not less: a sleep costs its caller
# ~0.1 ms of latency each time, and with the 50 us spin first tried, two ranks in lock-step spent
# 30 % of a weak-scaling run asleep (efficiency 0.57 against 0.78 with 1 ms, 2 ranks on 2 cores).
_SPIN = 1e-3


@contextlib.contextmanager
def spmd(comm: Any) -> Iterator[None]:
    """A block that ends on every rank of ``comm`` when it raises on one.

    An exception raised in the block on one rank is sent to every other rank, where the next
    communication of this module (a halo exchange, an allreduce, a while condition), forward or
    reverse, raises the same exception, with a note naming the rank it came from (or, on a rank
    that finished the block, the block's end raises it). Without it a rank whose neighbour
    failed would wait for the neighbour forever.

    `grad` and `value_and_grad` enter it for you; enter it yourself around other distributed
    work. Every rank of ``comm`` enters and leaves it at the same point, like a collective call:
    the end of the block is a small allreduce that counts the ranks that failed.

    Parameters
    ----------
    comm
        The communicator whose ranks run the block (``MPI.COMM_WORLD`` or a Cartesian one).

    Notes
    -----
    After an error, halo messages a failed rank never received may still be queued: the
    communicators the block exchanged on are then refused (`CheckpointError`) by later calls of
    this module. Create a new one (``Create_cart``) to go on in the same run.
    """
    _check_comm(comm)
    guard = _Guard(comm)
    _GUARDS.append(guard)
    error: Exception | None = None
    try:
        yield
    except Exception as exc:
        error = exc
    finally:
        _GUARDS.remove(guard)
    local = error is not None and not hasattr(error, "_ckpt_remote")
    local = local and not hasattr(error, "_ckpt_sent")
    if local:
        _send_abort(comm, error)
        error._ckpt_sent = True  # type: ignore[union-attr]
    # Every rank reaches this point: one whose peer failed gets the abort at its next wait.
    flags = onp.array([int(local), int(error is not None)], dtype=onp.int64)
    total = onp.empty_like(flags)
    _wait([comm.Iallreduce(flags, total, op=MPI.SUM)], listen=False)
    # Collect the aborts still on their way (each was sent before its sender's allreduce), so
    # none is left to be mistaken for an error of a later block.
    first = None
    for _ in range(int(total[0]) - int(local) - guard.received):
        payload = comm.recv(source=MPI.ANY_SOURCE, tag=_TAG_ABORT)
        first = first or payload
    if total[1]:
        for key in guard.used:
            _BROKEN[key] = (
                "an earlier error interrupted the halo exchanges on this communicator, so its "
                "messages are out of step; create a new communicator (Create_cart) to go on"
            )
    if error is not None:
        raise error
    if first is not None:
        raise _remote_error(first)


def _send_abort(comm: Any, error: BaseException) -> None:
    try:
        pickled: bytes | None = pickle.dumps(error)
    except Exception:
        pickled = None
    payload = (comm.Get_rank(), pickled, f"{type(error).__name__}: {error}")
    for dest in range(comm.Get_size()):
        if dest != comm.Get_rank():
            # never waited on: the message is collected by the receiver's block end
            _SENT.append(comm.isend(payload, dest=dest, tag=_TAG_ABORT))


# -- halo exchange ----------------------------------------------------------------------------


def _check_cart(comm: Any, x: Any, width: int) -> int:
    """Check the arguments of `exchange_halos`; return the number of decomposed axes."""
    if not isinstance(comm, MPI.Cartcomm):
        raise TypeError(
            f"comm must be a Cartesian communicator, got {type(comm).__name__}; make one with "
            "MPI.COMM_WORLD.Create_cart(dims, periods=...) (dims from MPI.Compute_dims)"
        )
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be an int >= 1, got {width!r}")
    ndims = comm.Get_dim()
    shape = onp.shape(x)
    if len(shape) < ndims:
        raise ValueError(
            f"the block has {len(shape)} axes but the communicator decomposes {ndims} "
            f"(dims {list(comm.Get_topo()[0])}): the first {ndims} axes of x are the "
            "decomposed ones"
        )
    for axis in range(ndims):
        if shape[axis] < width:
            raise ValueError(
                f"axis {axis} of this rank's block has {shape[axis]} cells, fewer than the halo "
                f"width {width}: use fewer ranks along that axis or a narrower halo"
            )
    return ndims


def _local(comm: Any, low: int, high: int) -> bool:
    """True when both neighbours along an axis are this rank itself or nobody."""
    me = comm.Get_rank()
    return low in (me, MPI.PROC_NULL) and high in (me, MPI.PROC_NULL)


def _remote_axes(comm: Any) -> tuple[int, ...]:
    """The decomposed axes with more than one rank along them: those that send messages."""
    remote = []
    for axis in range(comm.Get_dim()):
        low, high = comm.Shift(axis, 1)  # the ranks before and after this one along the axis
        if not _local(comm, low, high):
            remote.append(axis)
    if len(remote) > _MAX_REMOTE:
        raise ValueError(
            f"the communicator has more than one rank along {len(remote)} axes; exchange_halos "
            f"supports at most {_MAX_REMOTE} (its message tags number the 3^axes directions)"
        )
    return tuple(remote)


@functools.lru_cache(maxsize=16)
def _directions(m: int) -> tuple[tuple[int, tuple[int, ...]], ...]:
    """The 3^m - 1 directions to the neighbours over m axes, each with its index.

    The index of the opposite direction is ``3^m - 1`` minus the index.
    """
    every = itertools.product((-1, 0, 1), repeat=m)
    return tuple((k, d) for k, d in enumerate(every) if any(d))


@functools.lru_cache(maxsize=128)
def _plan(shape: tuple[int, ...], ndims: int, w: int, lead: int, remote: tuple[int, ...]) -> tuple:
    """Where things are in an extended block of ``shape``, for the exchange over ``remote``.

    Returns (the owned cells; for each direction over the remote axes, its index, the ghost
    region there and the edge region of owned cells the neighbour there needs, spanning the
    owned cells along the other axes; for each of the other decomposed axes, in order, the
    axis and its four slabs (low ghosts, first owned, last owned, high ghosts), spanning the
    whole extended length along the remote axes and the earlier ones, the owned cells along the
    later ones). A function of sizes only, so it is cached: the exchange runs every step on the
    same shapes.
    """
    owned = tuple(
        slice(w, n - w) if lead <= a < lead + ndims else slice(None) for a, n in enumerate(shape)
    )
    regions = []
    for k, direction in _directions(len(remote)):
        ghost, edge = list(owned), list(owned)
        for axis, d in zip(remote, direction):
            i, n = lead + axis, shape[lead + axis] - 2 * w
            ghost[i] = (slice(0, w), owned[i], slice(n + w, n + 2 * w))[d + 1]
            edge[i] = (slice(w, 2 * w), owned[i], slice(n, n + w))[d + 1]
        regions.append((k, tuple(ghost), tuple(edge)))
    local = []
    index = list(owned)
    for axis in remote:
        index[lead + axis] = slice(None)
    for axis in (a for a in range(ndims) if a not in remote):
        i, n = lead + axis, shape[lead + axis] - 2 * w
        four = []
        for cut in (slice(0, w), slice(w, 2 * w), slice(n, n + w), slice(n + w, n + 2 * w)):
            index[i] = cut
            four.append(tuple(index))
        index[i] = slice(None)  # the later axes' slabs include this axis's ghosts
        local.append((axis, tuple(four)))
    return owned, tuple(regions), tuple(local)


def _neighbours(comm: Any, remote: tuple[int, ...]) -> list[int]:
    """The rank in each direction of `_directions` (PROC_NULL beyond a non-periodic edge)."""
    dims, periods, coords = comm.Get_topo()
    ranks = []
    for _, direction in _directions(len(remote)):
        where, outside = list(coords), False
        for axis, d in zip(remote, direction):
            c = where[axis] + d
            outside = outside or (not periods[axis] and not 0 <= c < dims[axis])
            where[axis] = c % dims[axis]
        ranks.append(MPI.PROC_NULL if outside else comm.Get_cart_rank(where))
    return ranks


def _exchange(out: onp.ndarray, comm: Any, plan: tuple, remote: tuple, fill: float) -> None:
    """Fill, in place, the ghosts of the extended block ``out``.

    Every neighbour over the axes with several ranks, diagonal ones included, at once: one
    message to and from each, all posted before one wait. Then the axes with one rank, in order,
    by copies within the block (each including the ghosts filled before it).
    """
    _, regions, local = plan
    if regions:
        ranks = _neighbours(comm, remote)
        top = len(regions)  # 3^m - 1: the opposite of direction k is top - k
        requests, received = [], []
        for (k, ghost, _), rank in zip(regions, ranks):
            if rank == MPI.PROC_NULL:  # beyond a non-periodic edge
                out[ghost] = fill
            else:
                buffer = onp.empty(out[ghost].shape, dtype=out.dtype)  # MPI needs it contiguous
                requests.append(comm.Irecv(buffer, source=rank, tag=_TAG_HALO + k))
                received.append((ghost, buffer))
        for (k, _, edge), rank in zip(regions, ranks):
            if rank != MPI.PROC_NULL:  # my edge is the ghost of the opposite direction there
                edge_cells = onp.ascontiguousarray(out[edge])
                requests.append(comm.Isend(edge_cells, dest=rank, tag=_TAG_HALO + top - k))
        _wait(requests, receives=len(received))
        for ghost, buffer in received:
            out[ghost] = buffer
    for axis, (ghost_low, first, last, ghost_high) in local:  # one rank along it: no messages
        periodic = comm.Shift(axis, 1)[0] != MPI.PROC_NULL
        out[ghost_low] = out[last] if periodic else fill
        out[ghost_high] = out[first] if periodic else fill


def _exchange_adjoint(g: onp.ndarray, comm: Any, plan: tuple, remote: tuple) -> None:
    """The transpose of `_exchange`, in place on the cotangent ``g`` of the extended block.

    The cotangents of the ghosts go back to the ranks that own those cells and are added to the
    cotangents of the owned cells they copied (the one-rank axes first, in reverse order, then
    every neighbour at once); the ghosts' own entries are left as they are (the caller drops
    them).
    """
    _, regions, local = plan
    for axis, (ghost_low, first, last, ghost_high) in reversed(local):
        if comm.Shift(axis, 1)[0] != MPI.PROC_NULL:  # periodic: my ghosts are my own cells
            g[last] += g[ghost_low]
            g[first] += g[ghost_high]
    if not regions:
        return
    ranks = _neighbours(comm, remote)
    top = len(regions)
    requests, received = [], []
    for (k, _, edge), rank in zip(regions, ranks):
        if rank != MPI.PROC_NULL:  # what that neighbour's ghosts owe my edge cells
            buffer = onp.empty(g[edge].shape, dtype=g.dtype)
            requests.append(comm.Irecv(buffer, source=rank, tag=_TAG_HALO_ADJOINT + k))
            received.append((edge, buffer))
    for (k, ghost, _), rank in zip(regions, ranks):
        if rank != MPI.PROC_NULL:  # a ghost filled with ``fill`` is a constant: dropped
            owed = onp.ascontiguousarray(g[ghost])
            requests.append(comm.Isend(owed, dest=rank, tag=_TAG_HALO_ADJOINT + top - k))
    _wait(requests, receives=len(received))
    for edge, buffer in received:
        g[edge] += buffer


def _extend(xs: Sequence[Any], comm: Any, width: int, fill: float, lead: int) -> onp.ndarray:
    """The blocks ``xs`` with their ghosts, filled from the neighbours, in one new array.

    ``lead`` is 0 for one block (``xs`` holds it alone) and 1 for several, packed along a new
    first axis, so that each message carries every field's slab at once.
    """
    first = onp.asarray(xs[0])
    ndims = comm.Get_dim()
    extended = tuple(n + 2 * width if a < ndims else n for a, n in enumerate(first.shape))
    shape = (len(xs), *extended) if lead else extended
    remote = _remote_axes(comm)
    plan = _plan(shape, ndims, width, lead, remote)
    owned = plan[0]
    # one allocation: the owned cells copied in once, each axis's ghosts filled in place
    out = onp.empty(shape, dtype=first.dtype)
    if lead:
        for i, x in enumerate(xs):
            out[i][owned[1:]] = x
    else:
        out[owned] = first
    _exchange(out, comm, plan, remote, fill)
    return out


@primitive
def _halos(x: Any, comm: Any, width: int, fill: float) -> onp.ndarray:
    _check_cart(comm, x, width)
    _usable(comm)
    return _extend((x,), comm, width, fill, 0)


def _halos_adjoint(
    g: Any, comm: Any, width: int, lead: int = 0, *, owned_by_us: bool = False
) -> onp.ndarray:
    ndims = comm.Get_dim()
    _usable(comm)
    if not owned_by_us:
        g = onp.array(g)  # a copy: the ghost cotangents are added into it in place
    remote = _remote_axes(comm)
    plan = _plan(g.shape, ndims, width, lead, remote)
    _exchange_adjoint(g, comm, plan, remote)
    return g[plan[0]]  # a view of the copy, which nothing else holds: no second copy


@primitive
def _halos_transpose(g: Any, comm: Any, width: int, lead: int) -> onp.ndarray:
    """The exchange's adjoint as a primitive of its own, so that a gradient can be differentiated.

    Linear in ``g``: its VJP is the exchange again (ghosts of a constant ``fill`` carry no
    derivative, so they are zero) and its JVP is itself applied to the tangent.
    """
    return _halos_adjoint(g, comm, width, lead)


def _halos_of(h: Any, comm: Any, width: int, lead: int) -> Any:
    """The exchange with zero ghosts, of one block (``lead`` 0) or of packed blocks (1)."""
    if lead:
        return _halos_packed(comm, width, 0.0, *[h[i] for i in range(len(h))])
    return _halos(h, comm, width, 0.0)


defvjp(
    _halos_transpose,
    lambda ans, g, comm, width, lead: lambda h: _halos_of(h, comm, width, lead),
)
defjvp(
    _halos_transpose, lambda t, ans, g, comm, width, lead: _halos_transpose(t, comm, width, lead)
)
defvjp(
    _halos,
    lambda ans, x, comm, width, fill: lambda g: _halos_transpose(g, comm, width, 0),
)
# Linear in x: the tangent of the ghosts is the exchange of the tangent, with zero ghosts where
# the values are the constant ``fill``.
defjvp(_halos, lambda g, ans, x, comm, width, fill: _halos(g, comm, width, 0.0))


@primitive
def _halos_packed(comm: Any, width: int, fill: float, *xs: Any) -> onp.ndarray:
    """Several fields' blocks with their ghosts, packed along a new first axis, one exchange."""
    _usable(comm)
    return _extend(xs, comm, width, fill, 1)


def _halos_packed_vjp(argnums: Sequence[int], ans: Any, args: tuple, kwargs: dict) -> Callable:
    comm, width = args[0], args[1]

    def vjp(g: Any) -> tuple:
        # The whole packed cotangent goes back, even if some fields get no gradient here: every
        # rank sends the same messages. The packed array never leaves `exchange_halos`, which
        # only hands out its views ``packed[i]``: their adjoints (slice assignments) add into a
        # zero array autograd allocates for this node alone, so ``g`` is ours to change in place.
        if isinstance(g, Box):  # a gradient being differentiated: the adjoint is traced too
            owned = _halos_transpose(g, comm, width, 1)
        else:
            mine = isinstance(g, onp.ndarray) and g.flags.writeable
            owned = _halos_adjoint(g, comm, width, 1, owned_by_us=mine)
        return tuple(owned[a - 3] for a in argnums)

    return vjp


def _halos_packed_jvp(
    argnums: Sequence[int], gs: Sequence[Any], ans: Any, args: tuple, kwargs: dict
) -> Any:
    comm, width = args[0], args[1]
    tangents: list[Any] = [onp.zeros_like(x) for x in args[3:]]
    for a, g in zip(argnums, gs):
        tangents[a - 3] = g
    return _halos_packed(comm, width, 0.0, *tangents)


defvjp_argnums(_halos_packed, _halos_packed_vjp)
defjvp_argnums(_halos_packed, _halos_packed_jvp)


def _fields(x: Any) -> bool:
    """True when ``x`` is a tuple or list of arrays (several fields), not one block.

    A tuple or list holding an array beside something else (a number, a nested list) is
    neither: it is refused rather than stacked into one block, which would silently return one
    padded array where fields were meant.
    """
    if not isinstance(x, (tuple, list)) or not x:
        return False
    arrays = [isinstance(f, (onp.ndarray, Box)) for f in x]
    if any(arrays) and not all(arrays):
        bad = arrays.index(False)
        raise TypeError(
            f"exchange_halos was given a {type(x).__name__} of fields whose member {bad} is a "
            f"{type(x[bad]).__name__}, not an array; give every field as an array"
        )
    return all(arrays)


def _check_fields(xs: Sequence[Any], comm: Any, width: int) -> None:
    for x in xs:
        _check_cart(comm, x, width)
    shapes = [onp.shape(x) for x in xs]
    dtypes = [onp.asarray(getval(x)).dtype for x in xs]
    if len(set(shapes)) > 1 or len(set(dtypes)) > 1:
        given = ", ".join(f"{s} {d}" for s, d in zip(shapes, dtypes))
        raise ValueError(
            f"the fields exchanged together must have one shape and one dtype (they travel in "
            f"one buffer), got {given}; exchange fields that differ in separate calls"
        )


def exchange_halos(x: Any, comm: Any, width: int = 1, fill: float = 0.0) -> Any:
    """This rank's block extended by ``width`` ghost cells from its neighbours, differentiably.

    Parameters
    ----------
    x
        This rank's block of a field decomposed over the Cartesian communicator ``comm``; its
        first ``len(dims)`` axes are the decomposed ones (later axes, e.g. components, are not).
        Or a tuple (or list) of such blocks of one shape and dtype, several fields (the u and v
        of a velocity): they are exchanged together, one message per neighbour carrying every
        field's edge, which halves the messages and waits of two separate calls.
    comm
        ``MPI.COMM_WORLD.Create_cart(dims, periods=...)``.
    width
        Ghost cells on both sides of every decomposed axis (at most the block's size there).
    fill
        The ghost values at a non-periodic edge of the global domain.

    Returns
    -------
    ``x`` with ``2 * width`` more cells along each decomposed axis: the neighbours' edge values
    (periodic axes wrap around), ``fill`` beyond a non-periodic edge; corner ghosts hold the
    diagonal neighbours' values (``fill`` if beyond a non-periodic edge along any axis): the
    global field padded, cut around this block. Every neighbour, diagonal ones included, gets
    its message at once, and the rank waits once. For a tuple or list of fields, a tuple (or
    list) of the extended fields, each the same as its own call would give.

    Notes
    -----
    An autograd primitive. Its VJP is the transpose of the exchange: each ghost's cotangent is
    sent back to the rank that owns the cell and added to that cell's cotangent (one message per
    neighbour, all at once; for several fields, one message for all of them too). Forward mode
    (``make_jvp``) exchanges the tangent. Every rank of ``comm`` must call it, in the same
    order, as with any collective operation.
    """
    if not _fields(x):
        return _halos(x, comm, width, float(fill))
    _check_fields(x, comm, width)
    if len(x) == 1:
        extended = [_halos(x[0], comm, width, float(fill))]
    else:
        packed = _halos_packed(comm, width, float(fill), *x)
        extended = [packed[i] for i in range(len(x))]  # views; adjoint: slice assignments
    return tuple(extended) if isinstance(x, tuple) else extended


@primitive
def _interior(p: Any, ndims: int, width: int) -> onp.ndarray:
    p = onp.asarray(p)
    return p[_plan(p.shape, ndims, width, 0, ())[0]]


@primitive
def _interior_adjoint(g: Any, shape: tuple, ndims: int, width: int) -> onp.ndarray:
    """``g`` padded with zeros to ``shape``; a primitive (linear in ``g``) so that a gradient
    through `interior` can be differentiated again."""
    out = onp.empty(shape, dtype=onp.result_type(g))
    owned, _, frame = _plan(out.shape, ndims, width, 0, ())
    out[owned] = g
    for _, (ghost_low, _, _, ghost_high) in frame:  # together, every cell outside ``owned``
        out[ghost_low] = 0
        out[ghost_high] = 0
    return out


defvjp(
    _interior,
    lambda ans, p, ndims, width: lambda g: _interior_adjoint(g, onp.shape(p), ndims, width),
)
defjvp(_interior, lambda g, ans, p, ndims, width: _interior(g, ndims, width))
defvjp(_interior_adjoint, lambda ans, g, shape, ndims, width: lambda h: _interior(h, ndims, width))
defjvp(
    _interior_adjoint,
    lambda t, ans, g, shape, ndims, width: _interior_adjoint(t, shape, ndims, width),
)


def interior(p: Any, comm: Any, width: int = 1) -> Any:
    """A block without its ghost cells: ``width`` cells cut from both ends of each decomposed axis.

    The inverse of the extension `exchange_halos` makes, for the pattern "apply the one-process
    step to the block with its ghosts, keep the interior". Differentiable; its VJP pads the
    cotangent with zeros (one assignment, and zeros written on the ghost frame only). Slicing the
    block by hand (``p[1:-1, 1:-1]``) gives the same values and, since the package gives basic
    slicing a slice-assignment adjoint, a derivative nearly as cheap.

    Parameters
    ----------
    p
        A block with ghost cells, as `exchange_halos` returns it.
    comm
        The Cartesian communicator the block is decomposed over (only its number of dims is used).
    width
        The ghost width to remove.
    """
    ndims = comm.Get_dim()
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be an int >= 1, got {width!r}")
    shape = onp.shape(p)
    if len(shape) < ndims or any(shape[a] <= 2 * width for a in range(ndims)):
        raise ValueError(
            f"a block of shape {shape} has no interior inside {width} ghost cells on each side "
            f"of its first {ndims} axes"
        )
    return _interior(p, ndims, width)


# -- sums over ranks --------------------------------------------------------------------------


def _sum_over_ranks(x: Any, comm: Any) -> Any:
    _usable(comm)
    arr = onp.asarray(x)
    out = onp.empty_like(arr)
    _wait([comm.Iallreduce(arr, out, op=MPI.SUM)])
    return out if onp.ndim(x) else out.dtype.type(out)


@primitive
def _allreduce(x: Any, comm: Any) -> Any:
    return _sum_over_ranks(x, comm)


defvjp(_allreduce, lambda ans, x, comm: lambda g: _allreduce(g, comm))  # self-adjoint
defjvp(_allreduce, lambda g, ans, x, comm: _allreduce(g, comm))


def allreduce(x: Any, comm: Any) -> Any:
    """The sum of ``x`` over the ranks of ``comm``, differentiable.

    Parameters
    ----------
    x
        A float or an array of the same shape on every rank.
    comm
        The communicator to sum over.

    Notes
    -----
    The result is the same on every rank. Its VJP is the allreduce of the cotangent: each rank's
    cotangent is that rank's share of the total, which is how reverse mode sees a value every
    rank uses. So do not seed every rank with 1 on an allreduced loss (that counts it once per
    rank): differentiate the rank's local loss with `grad`, which sums it over ranks for you.
    """
    return _allreduce(x, comm)


# -- while loops ------------------------------------------------------------------------------


def _gather_flags(flag: bool, comm: Any) -> onp.ndarray:
    _usable(comm)
    mine = onp.array([1 if flag else 0], dtype=onp.int8)
    every = onp.empty(comm.Get_size(), dtype=onp.int8)
    _wait([comm.Iallgather(mine, every)])
    return every


def _ranks(flags: onp.ndarray, value: int) -> str:
    ranks = [int(r) for r in onp.flatnonzero(flags == value)]
    return ("rank " if len(ranks) == 1 else "ranks ") + ", ".join(map(str, ranks))


def agree(flag: Any, comm: Any, iteration: int | None = None) -> bool:
    """``flag`` (a while loop's condition on this rank), checked to be the same on every rank.

    Write ``while agree(cond, comm):`` in a distributed while loop (decorated or not) so that no
    rank runs a step its neighbours do not: a small allgather of one byte per rank.

    Parameters
    ----------
    flag
        The condition as this rank sees it.
    comm
        The communicator whose ranks run the loop.
    iteration
        The loop's iteration count, when the loop keeps one: the error then names it.

    Raises
    ------
    CheckpointError
        On every rank, naming the ranks where the condition is true and those where it is false,
        when they differ.
    """
    value = bool(flag)
    flags = _gather_flags(value, comm)
    if flags.min() != flags.max():
        after = "" if iteration is None else f" after {iteration} iterations"
        raise CheckpointError(
            f"the while condition differs across ranks{after}: true on {_ranks(flags, 1)} "
            f"(they would run more iterations), false on {_ranks(flags, 0)} (they end the "
            "loop); every rank must end the loop after the same number of iterations (decide "
            "it from a value every rank shares, e.g. an allreduce)"
        )
    return value


class _AgreedCondition:
    """A while condition evaluated on every rank and checked to agree, counting iterations.

    The driver evaluates the condition once per state of the primal run, in order (states 0,
    1, 2, ...), so the number of calls before the loop ends is the state's index. Later calls
    come from recomputations in the reverse sweep, where the condition held on every rank.
    """

    def __init__(self, cond: Callable[..., Any], comm: Any) -> None:
        self.cond, self.comm = cond, comm
        self.calls = 0
        self.ended_after: int | None = None

    def __call__(self, state: Any, *params: Any) -> bool:
        value = bool(self.cond(state, *params))
        flags = _gather_flags(value, self.comm)
        if flags.min() != flags.max():
            if self.ended_after is None:
                k = self.calls
                raise CheckpointError(
                    f"the while loop ran a different number of iterations on different ranks: "
                    f"{_ranks(flags, 0)} ended it after {k} iterations, while on "
                    f"{_ranks(flags, 1)} the condition still held (at least {k + 1} "
                    "iterations); every rank must run the same number of iterations (decide the "
                    "condition from a value every rank shares, e.g. an allreduce)"
                )
            raise CheckpointError(
                f"the while condition held on every rank for the {self.ended_after} iterations "
                f"of the primal run, but when the reverse sweep recomputed a state it was false "
                f"on {_ranks(flags, 0)}: the condition must be a deterministic function of the "
                "state and parameters"
            )
        if self.ended_after is None:
            if value:
                self.calls += 1
            else:
                self.ended_after = self.calls
        return value


def checkpointed_while(
    cond: Callable[..., Any],
    step: Callable[..., Any],
    state: Any,
    scheme: Any,
    *,
    comm: Any,
    params: Sequence[Any] = (),
    **options: Any,
) -> Any:
    """`ckpt_transform.checkpointed_while` with the condition agreed across the ranks of ``comm``.

    Each evaluation of ``cond`` is followed by a one-byte allgather; if the ranks disagree, every
    rank raises `CheckpointError` naming the iteration counts, instead of one rank waiting in a
    halo exchange for a neighbour that has left the loop. Other arguments and ``options``
    (``progress``, ``report``, ``return_stats``) as in `ckpt_transform.checkpointed_while`.
    """
    _check_comm(comm)
    agreed = _AgreedCondition(cond, comm)
    return _checkpointed_while(agreed, step, state, scheme, params=params, **options)


# -- the gradient of the global loss ----------------------------------------------------------


def _check_comm(comm: Any) -> None:
    if not isinstance(comm, MPI.Comm):
        raise TypeError(
            f"comm must be an MPI communicator (MPI.COMM_WORLD or one made from it), got {comm!r}"
        )


def _argnums(argnum: int | Sequence[int]) -> tuple[int, ...]:
    return (argnum,) if isinstance(argnum, int) else tuple(argnum)


def _check_replicated(argnum: int | Sequence[int], replicated: int | Sequence[int]) -> tuple:
    nums = _argnums(argnum)
    rep = _argnums(replicated)
    stray = [r for r in rep if r not in nums]
    if stray:
        raise ValueError(
            f"replicated={replicated!r} names arguments {stray} that are not differentiated "
            f"(argnum={argnum!r}); replicated must be a subset of argnum"
        )
    return rep


def value_and_grad(
    fun: Callable[..., Any],
    argnum: int | Sequence[int],
    comm: Any,
    *,
    replicated: int | Sequence[int] = (),
) -> Callable[..., tuple[Any, Any]]:
    """Like `grad`, returning ``(global loss, gradient)``; the loss is the sum over ranks."""
    _check_comm(comm)
    rep = _check_replicated(argnum, replicated)
    nums = _argnums(argnum)
    inner = _ag_value_and_grad(fun, argnum)

    def wrapped(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
        with spmd(comm):
            value, g = inner(*args, **kwargs)
            value = _sum_over_ranks(value, comm)
            if rep:
                g = list(g) if isinstance(argnum, (tuple, list)) else [g]
                for j, a in enumerate(nums):
                    if a in rep:
                        g[j] = _tree_sum(g[j], comm)
                g = tuple(g) if isinstance(argnum, (tuple, list)) else g[0]
        return value, g

    return wrapped


def grad(
    fun: Callable[..., Any],
    argnum: int | Sequence[int],
    comm: Any,
    *,
    replicated: int | Sequence[int] = (),
) -> Callable[..., Any]:
    """The gradient of the global loss, the sum over ranks of ``fun``'s local loss.

    Parameters
    ----------
    fun
        ``fun(*args) -> float``: this rank's share of the loss, computed from its blocks of the
        distributed arguments (exchanging halos as it needs) and the replicated ones.
    argnum
        The argument(s) to differentiate, as in `autograd.grad` (an int or a tuple).
    comm
        The communicator whose ranks each hold a share.
    replicated
        Those of ``argnum`` that hold the same value on every rank (a viscosity, a coefficient):
        their gradient is summed over ranks, so every rank gets the full gradient. The others
        are distributed: each rank gets the gradient with respect to its own block.

    Returns
    -------
    A function of ``fun``'s arguments returning the gradient (a tuple when ``argnum`` is).

    Notes
    -----
    Each rank seeds its local loss with 1 and runs the reverse sweep; the VJPs of
    `exchange_halos` return ghost cotangents to their owners, so a block's gradient is that of
    the global loss. The call runs inside `spmd`: an error on one rank ends it on every rank.
    """
    vg = value_and_grad(fun, argnum, comm, replicated=replicated)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return vg(*args, **kwargs)[1]

    return wrapped


def _tree_sum(g: Any, comm: Any) -> Any:
    if isinstance(g, (tuple, list)):
        return type(g)(_tree_sum(v, comm) for v in g)
    if isinstance(g, dict):
        return {k: _tree_sum(v, comm) for k, v in g.items()}
    return _sum_over_ranks(g, comm)


# -- blocks of a global array -----------------------------------------------------------------


def local_slices(comm: Any, shape: Sequence[int]) -> tuple[slice, ...]:
    """The slices of a global array of ``shape`` that this rank of ``comm`` owns.

    Each decomposed axis of length n over d ranks is cut into d contiguous blocks, the first
    ``n % d`` of them one cell longer (the split `numpy.array_split` makes).
    """
    dims, _, coords = comm.Get_topo()
    slices = []
    for n, d, c in zip(shape, dims, coords):
        base, extra = divmod(int(n), int(d))
        start = c * base + min(c, extra)
        slices.append(slice(start, start + base + (1 if c < extra else 0)))
    return tuple(slices)


def gather(x: Any, comm: Any, shape: Sequence[int], root: int = 0) -> onp.ndarray | None:
    """The global array of ``shape`` assembled from every rank's block, on ``root`` (else None).

    ``shape`` is the global array's whole shape (the decomposed axes first, as for
    `exchange_halos`); blocks are placed by `local_slices`. A blocking collective, for results.
    """
    x = onp.asarray(x)
    parts = comm.gather((local_slices(comm, shape), x), root=root)
    if comm.Get_rank() != root:
        return None
    out = onp.empty(tuple(shape), dtype=x.dtype)
    for slices, block in parts:
        out[slices] = block
    return out
