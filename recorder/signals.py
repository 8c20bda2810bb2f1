"""Turn the signals that stop a job into one clean stop of the recording.

A batch scheduler ends a job with SIGTERM (SLURM at the time limit, Kubernetes on
eviction), a terminal with SIGINT (Ctrl-C) or SIGHUP (the session closed). The first
of them raises :class:`StopRequested` in the main thread, at the next Python bytecode
of the denoising loop; the recorder then flushes what is queued and marks the store
"interrupted". Any later signal while that cleanup runs is noted and ignored: a second
Ctrl-C must not abandon a half-flushed queue (SIGKILL remains for that).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class StopRequested(BaseException):
    """Raised in the main thread by the first stop signal. A BaseException, like KeyboardInterrupt,
    so that no ``except Exception`` on the way (the pipeline's, a library's) swallows it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class SignalGuard:
    """While active, the first stop signal raises StopRequested; later ones are only counted."""

    def __init__(self):
        self.received: list[int] = []
        self.cleaning_up = False

    def _handle(self, signum, _frame) -> None:
        self.received.append(signum)
        if not self.cleaning_up and len(self.received) == 1:
            raise StopRequested(signum)

    def cleanup(self) -> None:
        """From here on, signals no longer raise: the caller is flushing and closing."""
        self.cleaning_up = True


@contextmanager
def stop_on_signals():
    """Install the guard for the duration of the block, then put back the previous handlers.

    Outside the main thread (where Python cannot install handlers) the guard is inert.
    """
    guard = SignalGuard()
    if threading.current_thread() is not threading.main_thread():
        yield guard
        return
    previous = {signum: signal.signal(signum, guard._handle) for signum in STOP_SIGNALS}
    try:
        yield guard
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
