"""The font of PIL-drawn labels: matplotlib's bundled DejaVu Sans, so PIL and matplotlib pictures match.

It also measures text for the figures laid out by hand (:func:`text_inches`,
:func:`tick_label_inches`): asking matplotlib for a text's extent costs a few milliseconds
(it lays the text out), PIL a few microseconds. And the figures are built and drawn more
cheaply (:class:`analyzer.lean_figure.LeanFigure`, also reached here as ``fonts.LeanFigure``, and
:func:`collector_paused`). Nothing here imports matplotlib: the analyzer's main process draws
only with PIL, and only the figures (drawn in the encoder processes) need it.
"""

from __future__ import annotations

import gc
import importlib.util
import os
from contextlib import contextmanager
from functools import lru_cache

from PIL import ImageFont

_MEASURE_PIXELS = 72  # the size text is measured at; widths scale with the size
_MEASURE_MARGIN = 1.06  # matplotlib hints and kerns a little differently: measured widths agree within 4 %


@lru_cache(maxsize=None)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans at ``size`` pixels (PIL's built-in font if FreeType is unavailable)."""
    try:
        return ImageFont.truetype(_dejavu_sans(), size)
    except (OSError, ImportError):
        return ImageFont.load_default()


@lru_cache(maxsize=1)
def _dejavu_sans() -> str:
    """The DejaVu Sans file matplotlib ships, found without importing matplotlib (a third of a second in the
    analyzer's main process, which draws only with PIL); matplotlib's own font search if it is not there."""
    spec = importlib.util.find_spec("matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, "mpl-data", "fonts", "ttf", "DejaVuSans.ttf")
        if os.path.isfile(path):
            return path
    from matplotlib import font_manager

    return font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"), fallback_to_default=True)


def text_inches(text: str, points: float) -> float:
    """The width in inches of the widest line of ``text`` at ``points`` (a little generous), as a figure sets it."""
    measure = font(_MEASURE_PIXELS)
    widest = max((measure.getlength(line) for line in text.split("\n")), default=0.0)
    return widest * points / _MEASURE_PIXELS ** 2 * _MEASURE_MARGIN


def line_inches(points: float, lines: int = 1) -> float:
    """The height in inches of ``lines`` lines at ``points`` (matplotlib's line spacing, 1.2)."""
    return lines * points * 1.2 / 72


def tick_label_inches(axis, points: float) -> float:
    """The width in inches of the widest tick label a matplotlib ``axis`` will draw, from its locator and
    formatter (no drawing, no text layout)."""
    labels = axis.get_major_formatter().format_ticks(axis.get_majorticklocs())
    return max((text_inches(label, points) for label in labels), default=0.0)


@contextmanager
def collector_paused():
    """Python's cyclic garbage collector off for a while (on again after, if it was on).

    Building and drawing a figure makes over a thousand container objects per axes, all
    alive until the figure is written: each 700 of them start a collection, and the full
    ones walk every object of the process. For a figure of 50 axes (the montage, when matplotlib
    drew it) that was half the time to build it. Nothing is lost: cycles are collected once the
    collector runs again.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def __getattr__(name: str):
    # LeanFigure is a matplotlib Figure: matplotlib is imported when the first figure is made, not with this module
    if name == "LeanFigure":
        from analyzer.lean_figure import LeanFigure

        return LeanFigure
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
