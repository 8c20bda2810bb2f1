"""Exceptions as one line: what a store's ``error`` attribute and both command lines show."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, whitespace collapsed (for our own one-line errors)."""
    lines = [" ".join(line.split()) for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def describe(exc: BaseException) -> str:
    """A foreign exception as a person reads it: an OS error by its cause ("No space left on device"),
    anything else as ``Type: first line``."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {first_line(exc)}" if lines else type(exc).__name__
