"""The one exception the analyzer raises for input it cannot use."""

from __future__ import annotations


class AnalyzerError(Exception):
    """Bad input for an analysis (unknown step, layer, word or token; unusable output dir). One line."""
