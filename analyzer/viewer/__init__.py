"""``wan-analyze view``: the store in one browser page, inline (:func:`write_viewer`) or served (:func:`serve`)."""

from analyzer.viewer.page import write_viewer

__all__ = ["write_viewer"]
