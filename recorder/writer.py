"""A background writer with a bounded queue, after TensorBoard's event writer.

The denoising loop hands over finished host buffers and goes on; one thread writes
them to the store. The queue is bounded, so a slow disk slows the loop down instead
of letting host memory grow with the number of steps. An exception in the thread is
raised again in the caller on the next ``submit``, ``flush`` or ``close``: a
recording never fails silently.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable

from shared.errors import describe

log = logging.getLogger(__name__)

_STOP = object()


class WriterError(RuntimeError):
    """The background writer failed; the original exception is the cause."""


class BackgroundWriter:
    """Runs submitted write jobs in order on one thread."""

    def __init__(self, max_pending: int = 8, name: str = "wan-attention-writer"):
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self.seconds_writing = 0.0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is _STOP:
                    return
                if self._error is None:  # after a failure, drain without writing
                    start = time.perf_counter()
                    job()
                    took = time.perf_counter() - start
                    self.seconds_writing += took
                    log.debug("write job took %.3f s; %d queued", took, self._queue.qsize())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, not swallowed
                self._error = exc
            finally:
                self._queue.task_done()

    @property
    def pending(self) -> int:
        """Jobs waiting in the queue (for a progress display)."""
        return self._queue.qsize()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise WriterError(f"writing the store failed: {describe(self._error)}") from self._error

    def submit(self, job: Callable[[], None]) -> None:
        """Queue ``job``; blocks while the queue is full. Raises if an earlier job failed."""
        self._raise_if_failed()
        if not self._thread.is_alive():
            raise WriterError("the writer thread is not running")
        self._queue.put(job)

    def flush(self) -> None:
        """Wait until every queued job has run; raise if one failed."""
        self._queue.join()
        self._raise_if_failed()

    def close(self) -> None:
        """Flush, stop the thread, and raise if any job failed."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        self._raise_if_failed()
