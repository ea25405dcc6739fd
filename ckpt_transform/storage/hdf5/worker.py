"""The worker that runs a session's file operations in order: on one thread, or in the caller.

With a thread, writes go behind and reads ahead of the steps' computation; the session
(`ckpt_transform.storage.hdf5.session`) decides what to queue and how much data may wait.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Inline", "Worker"]


class Worker:
    """One daemon thread that runs submitted jobs in submission order."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # The thread gets the queue, not self: nothing it holds refers back to the session.
        self.thread = threading.Thread(target=Worker._run, args=(self._jobs,), name=name)
        self.thread.daemon = True
        self.thread.start()

    @staticmethod
    def _run(jobs: queue.SimpleQueue[Any]) -> None:
        while True:
            job = jobs.get()
            if job is None:
                return
            fut, fn, args = job
            # Drop the job's references (the leaves of a write) as soon as it is done.
            del job
            if fut.set_running_or_notify_cancel():
                try:
                    result = fn(*args)
                except BaseException as exc:
                    fut.set_exception(exc)
                else:
                    fut.set_result(result)
                    del result
            del fut, fn, args

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._jobs.put((fut, fn, args))
        return fut

    def stop(self) -> None:
        self._jobs.put(None)

    def on_worker(self) -> bool:
        return threading.current_thread() is self.thread


class Inline:
    """Runs each job at once in the caller (``background=False``)."""

    thread = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        fut.set_running_or_notify_cancel()
        try:
            fut.set_result(fn(*args))
        except Exception as exc:
            fut.set_exception(exc)
        return fut

    def stop(self) -> None:
        pass

    def on_worker(self) -> bool:
        return False
