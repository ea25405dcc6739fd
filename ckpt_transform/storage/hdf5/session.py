"""One run's checkpoints in one HDF5 file: write behind, read ahead, release on close or error.

With ``background=True`` (the default) every h5py call of a session runs, in order, on one worker
thread. `put` checks the leaves, queues the write and returns; a `get` of a slot whose write is
still queued returns the leaves that were put; `prefetch` queues a read that a later `get` picks
up. Because the queue is first in, first out and a slot must be deleted before it is stored again
(which drops its read-ahead), a `get` never sees older data than the last `put`. An error in the
worker is raised as a `CheckpointError` by the next call of the session.

Memory: at most one state is held for I/O at any time beyond the caller's own, either a write in
flight or a read ahead. `put` waits for the previous write before queueing its own (and writes
through while a read ahead is held); `prefetch` waits for the write in flight. A write lets go of
the leaves put as soon as it has reached the file (in the worker, not at the session's next
call): a state written to disk near the end of the primal run is not held through the sweep.
"""

from __future__ import annotations

import concurrent.futures
import os
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ckpt_transform.errors import CheckpointError
from ckpt_transform.storage.base import StorageSession
from ckpt_transform.storage.hdf5.errors import io_error
from ckpt_transform.storage.hdf5.layout import CheckpointFile, encode
from ckpt_transform.storage.hdf5.paths import unregister
from ckpt_transform.storage.hdf5.worker import Inline, Worker
from ckpt_transform.storage.memory import leaf_nbytes

__all__ = ["HDF5Session"]

_MAX_PREFETCHED = 1  # reads ahead held at once


class _Write:
    """A write queued for a slot: the leaves put, held until the write has reached the file."""

    __slots__ = ("fut", "leaves")

    def __init__(self, fut: concurrent.futures.Future[Any], leaves: list[Any]) -> None:
        self.fut, self.leaves = fut, leaves
        # Run by the worker when the write is done (at once when it already is): the file has
        # the state now, and a `get` reads it from there.
        fut.add_done_callback(self._written)

    def _written(self, fut: concurrent.futures.Future[Any]) -> None:
        self.leaves = None


@dataclass
class _Resources:
    """What a session must release; shared with its finalizer, so it never refers to the session."""

    path: str
    key: str
    keep: bool
    file: CheckpointFile
    worker: Worker | Inline


def _close_and_remove(res: _Resources) -> list[BaseException]:
    """Close the file, remove it unless kept, free the path; return what went wrong."""
    errors: list[BaseException] = []
    try:
        res.file.close()
    except Exception as exc:
        # A failed flush matters only for a file that is kept.
        if res.keep:
            errors.append(io_error(res.path, "closing", exc))
    if not res.keep:
        try:
            os.unlink(res.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            errors.append(
                CheckpointError(
                    f"HDF5Storage: cannot remove checkpoint file {res.path!r}: {exc}; remove it "
                    "by hand"
                )
            )
    unregister(res.key)
    return errors


def _release(res: _Resources) -> list[BaseException]:
    """End a session: after the queued jobs, close (and remove) the file; stop the worker.

    Called by `HDF5Session.close`, or by the session's finalizer when it is garbage-collected
    or the interpreter exits. If the garbage collector runs it on the worker thread itself, the
    release is queued behind the current job instead of waited for.
    """
    done = res.worker.submit(_close_and_remove, res)
    res.worker.stop()
    if res.worker.on_worker():
        return []
    if res.worker.thread is not None:
        res.worker.thread.join()
    try:
        return done.result()
    except Exception as exc:  # pragma: no cover - _close_and_remove catches its errors
        return [exc]


def _release_quietly(res: _Resources) -> None:
    # Finalizer path: nobody is left to catch an error.
    try:
        _release(res)
    except Exception:  # pragma: no cover - defensive
        pass


class HDF5Session(StorageSession):
    """The checkpoints of one run, in one HDF5 file (see `HDF5Storage`).

    Attributes
    ----------
    path : str
        Absolute path of the file (a temporary one when the storage's path is None).
    keep : bool
        Whether the file stays after `close`.
    temporary : bool
        Whether the file is a temporary file made for this session.
    """

    def __init__(
        self,
        path: str,
        *,
        temporary: bool,
        keep: bool,
        compression: str | int | None,
        checksum: bool,
        background: bool,
        key: str,
    ) -> None:
        self.path = path
        self.keep = keep
        self.temporary = temporary
        self._held: dict[int, int] = {}  # slot -> step, as the caller sees it
        self._pending: dict[int, _Write] = {}
        self._prefetched: dict[int, concurrent.futures.Future[Any]] = {}
        # Queued writes and frees, oldest first: (future, what it does, slot or None).
        self._queued: deque[tuple[concurrent.futures.Future[Any], str, int | None]] = deque()
        self._broken: CheckpointError | None = None
        self._closed = False
        file = CheckpointFile(path, compression, checksum)
        worker: Worker | Inline
        if background:
            worker = Worker(f"ckpt_transform-hdf5 {os.path.basename(path)}")
        else:
            worker = Inline()
        self._file = file
        self._worker = worker
        self._res = _Resources(path=path, key=key, keep=keep, file=file, worker=worker)
        self._finalizer = weakref.finalize(self, _release_quietly, self._res)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("failed" if self._broken else "open")
        return (
            f"<HDF5Session {self.path!r} {state}: {len(self._held)} slot(s) held, keep={self.keep}>"
        )

    @property
    def closed(self) -> bool:
        """Whether `close` has been called."""
        return self._closed

    # -- bookkeeping --------------------------------------------------------------------------

    def _fail(self, exc: BaseException, doing: str) -> CheckpointError:
        err = io_error(self.path, doing, exc)
        if self._broken is None:
            self._broken = err
        return err

    def _reap(self) -> None:
        """Forget finished jobs; raise the first error among them."""
        while self._queued and self._queued[0][0].done():
            fut, doing, slot = self._queued.popleft()
            if slot is not None:
                pending = self._pending.get(slot)
                if pending is not None and pending.fut is fut:
                    del self._pending[slot]
            if fut.cancelled():
                continue
            exc = fut.exception()
            if exc is not None:
                raise self._fail(exc, doing) from exc

    def _check(self, what: str) -> None:
        if self._closed:
            raise CheckpointError(
                f"HDF5Storage: cannot {what}: the session on {self.path!r} is closed (its run "
                "has ended); open a new one with storage.session()"
            )
        if self._broken is not None:
            raise CheckpointError(
                f"HDF5Storage: cannot {what}: an earlier operation on {self.path!r} failed, so "
                f"the run cannot go on. The failure: {self._broken}"
            ) from self._broken
        self._reap()

    def _queue(
        self, doing: str, slot: int | None, fn: Callable[..., Any], *args: Any
    ) -> concurrent.futures.Future[Any]:
        fut = self._worker.submit(fn, *args)
        self._queued.append((fut, doing, slot))
        return fut

    def _wait_for_writes(self) -> None:
        # Wait until no write (a job with a slot) is unfinished; frees and flushes hold no data.
        while True:
            self._reap()
            writes = [f for f, _, slot in self._queued if slot is not None and not f.done()]
            if not writes:
                return
            concurrent.futures.wait(writes)

    def _drop_prefetch(self, slot: int) -> None:
        fut = self._prefetched.pop(slot, None)
        if fut is not None:
            fut.cancel()

    # -- the interface ------------------------------------------------------------------------

    def put(self, slot: int, step: int, leaves: Sequence[Any], structure: str) -> int:
        """Write ``leaves`` (the state at ``step``) to the free ``slot``; return their bytes.

        The bytes are those of the values (as `ArrayStorage` counts them), not of the file.
        """
        self._check(f"put slot {slot}")
        # The memory budget: at most one state is held for I/O, a write in flight or a read
        # ahead. The state being put is the caller's now; an earlier one would be extra.
        self._wait_for_writes()
        if type(slot) is not int or slot < 0 or type(step) is not int:
            raise CheckpointError(
                f"HDF5Storage.put needs a slot >= 0 and a step as ints, got slot={slot!r}, "
                f"step={step!r}"
            )
        if not isinstance(structure, str):
            raise CheckpointError(
                f"HDF5Storage.put needs the structure as a str, got {type(structure).__name__}"
            )
        held = self._held.get(slot)
        if held is not None:
            raise CheckpointError(
                f"slot {slot} already holds the checkpoint of step {held}; delete it before "
                f"storing step {step} there"
            )
        leaves = list(leaves)
        encoded = [encode(leaf, i) for i, leaf in enumerate(leaves)]
        nbytes = sum(leaf_nbytes(leaf) for leaf in leaves)
        self._drop_prefetch(slot)
        self._held[slot] = step
        doing = f"writing slot {slot} (step {step}) to"
        fut = self._queue(doing, slot, self._file.write, slot, step, encoded, structure)
        self._pending[slot] = _Write(fut, leaves)
        del leaves, encoded  # the write holds them until it is done, then nothing does
        if self._prefetched:  # a read ahead holds a state already: write through
            self._wait_for_writes()
        return nbytes

    def get(self, slot: int) -> tuple[int, list[Any]]:
        """Return ``(step, leaves)`` held in ``slot``, equal in value, dtype, shape and type."""
        self._check(f"get slot {slot}")
        step = self._held.get(slot)
        if step is None:
            raise CheckpointError(
                f"slot {slot} holds no checkpoint (held: {sorted(self._held)}); a restore must "
                "follow a store to the same slot"
            )
        pending = self._pending.get(slot)
        leaves = None if pending is None else pending.leaves
        if leaves is not None:  # still queued for writing: these are the leaves put
            self._drop_prefetch(slot)
            return step, list(leaves)
        fut = self._prefetched.pop(slot, None)
        if fut is None:
            fut = self._worker.submit(self._file.read, slot)
        concurrent.futures.wait([fut])
        self._reap()  # an earlier failed write explains more than this read can
        exc = fut.exception()
        if exc is not None:
            raise self._fail(exc, f"reading slot {slot} from") from exc
        return step, fut.result()

    def delete(self, slot: int) -> None:
        """Free ``slot``: its group stays in the file, marked free, for the next put."""
        self._check(f"delete slot {slot}")
        if self._held.pop(slot, None) is None:
            raise CheckpointError(
                f"slot {slot} holds no checkpoint to delete (held: {sorted(self._held)})"
            )
        # A write still queued goes ahead (the file shows every checkpoint that was stored);
        # the leaves it holds are no longer the caller's business.
        self._pending.pop(slot, None)
        self._drop_prefetch(slot)
        self._queue(f"freeing slot {slot} in", None, self._file.free, slot)
        self._reap()

    def prefetch(self, slot: int) -> None:
        """Start reading ``slot`` in the background, so that the next ``get(slot)`` is quick.

        A hint: ignored for a slot that holds nothing (yet) or is already being read ahead, and
        by ``background=False``. A slot whose write is still queued is read after that write.
        """
        self._check(f"prefetch slot {slot}")
        if self._worker.thread is None or slot not in self._held or slot in self._prefetched:
            return
        self._wait_for_writes()  # the memory budget (see `put`): one state held for I/O
        while len(self._prefetched) >= _MAX_PREFETCHED:
            oldest = next(iter(self._prefetched))
            self._drop_prefetch(oldest)
        self._prefetched[slot] = self._worker.submit(self._file.read, slot)

    def flush(self) -> None:
        """Wait until every queued write has reached the file, and flush it to disk."""
        self._check("flush")
        self._queue("flushing", None, self._file.flush)
        concurrent.futures.wait([job[0] for job in self._queued])
        self._reap()

    def close(self) -> None:
        """End the session (idempotent): finish queued writes, close the file, remove it unless
        ``keep=True``. Raises a `CheckpointError` if a queued write had failed unnoticed, or the
        file cannot be removed."""
        if self._finalizer.detach() is None:
            self._closed = True
            return
        self._closed = True
        self._pending.clear()
        self._prefetched.clear()
        errors = _release(self._res)
        if self._broken is None:
            for fut, doing, _ in self._queued:
                if not fut.cancelled() and fut.exception() is not None:
                    errors.insert(0, self._fail(fut.exception(), doing))  # type: ignore[arg-type]
                    break
        self._queued.clear()
        if errors:
            raise errors[0]

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
            return
        # An exception is already on its way: clean up, and do not hide it behind another.
        try:
            self.close()
        except CheckpointError:
            pass
