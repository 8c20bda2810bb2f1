"""The recorder's exceptions: each carries one line a person can act on."""

from __future__ import annotations


class RecordError(Exception):
    """An input the recorder cannot take, or a recording that could not finish. One line."""


class RecordInterrupted(RecordError):
    """A signal (SIGTERM, SIGINT, SIGHUP) stopped the recording after what was queued was flushed.

    ``exit_code`` is the shell's convention for death by that signal (128 + its number),
    so a batch scheduler sees the run as interrupted rather than failed or done.
    """

    def __init__(self, message: str, signal_name: str, exit_code: int):
        super().__init__(message)
        self.signal_name = signal_name
        self.exit_code = exit_code
