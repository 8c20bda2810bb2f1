"""Image encoding in worker processes, for analyses large enough to pay for them.

Pillow's PNG and GIF encoders hold the GIL, and encoding (the per-step PNGs, the
per-word GIFs) is most of the analysis's work after the read itself, so threads
would run it one at a time. :class:`Encoders` hands such jobs to a process pool
when the analysis is big and the machine has cores to spare, and runs them in place
otherwise (small stores, one core): the results are the same files either way.

The workers start by forkserver (they must not inherit the reader's threads), which
imports the caller's main module (and the picture code, once, for every worker it forks):
so processes are used only when asked for.
``wan-analyze`` asks (``encoder_processes=None``: chosen from cores and work); Python
callers of :func:`analyzer.run.analyze` get in-place encoding unless they pass a count,
and then need the usual ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Executor, Future, ProcessPoolExecutor

# Below this many output pixels (frames x width x height of all animations and step
# pictures) starting worker processes costs more than it saves.
PROCESS_THRESHOLD_PIXELS = 50_000_000
MAX_WORKERS = 8
# What the workers' jobs import (the caller's main module, the picture code and matplotlib, which the main
# process does not import): a worker forked from a server that has imported them starts in milliseconds
# instead of importing matplotlib and zarr again.
WORKER_PRELOAD = ("__main__", "analyzer.outputs", "analyzer.word_views", "analyzer.streaming", "analyzer.lean_figure",
                  "matplotlib.backends.backend_agg")


def available_cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class Encoders:
    """Runs picklable jobs in worker processes, or in place; ``submit`` returns a Future either way."""

    def __init__(self, work_pixels: int, workers: int | None = None):
        cores = available_cores()
        if workers is None:
            workers = min(cores, MAX_WORKERS) if cores > 1 and work_pixels >= PROCESS_THRESHOLD_PIXELS else 0
        self.workers = workers
        self._pool: Executor | None = None
        if workers > 0:
            method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
            context = multiprocessing.get_context(method)
            if method == "forkserver":  # imported once in the server, inherited by every worker it forks
                context.set_forkserver_preload(list(WORKER_PRELOAD))
            self._pool = ProcessPoolExecutor(workers, mp_context=context)

    def submit(self, fn, *args, **kwargs) -> Future:
        if self._pool is not None:
            return self._pool.submit(fn, *args, **kwargs)
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # re-raised by result(), as a pool would
            future.set_exception(exc)
        return future

    def close(self, cancel: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=cancel)
            self._pool = None

    def __enter__(self) -> "Encoders":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(cancel=exc_type is not None)
