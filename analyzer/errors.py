"""The exceptions the analyzer raises for input it cannot use."""

from __future__ import annotations


class AnalyzerError(Exception):
    """Bad input for an analysis (unknown step, layer, word or token; unusable output dir). One line."""


class StepError(AnalyzerError):
    """One step of a store cannot be used: a bad value, an unreadable chunk, NaN where it was marked complete.

    ``--skip-corrupt`` skips such a step (the report says why); otherwise it aborts the analysis.
    ``reason`` is the message without the store's location, for the report's list.
    """

    def __init__(self, location: str, step, reason: str):
        super().__init__(f"{location}: {reason}")
        self.step = step
        self.reason = reason
