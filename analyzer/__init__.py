"""wan-analyze: pictures and a report from a store, without torch.

In Python, ``from analyzer import open_recording`` (see :mod:`analyzer.recording`).
"""

__all__ = ["Recording", "open_recording"]


def __getattr__(name: str):
    # imported on first use: ``import analyzer.cli`` (and every other module) stays as light as before
    if name in __all__:
        from analyzer import recording

        return getattr(recording, name)
    raise AttributeError(f"module 'analyzer' has no attribute {name!r}")
