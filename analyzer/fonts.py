"""The font of PIL-drawn labels: matplotlib's bundled DejaVu Sans, so PIL and matplotlib pictures match.

It also measures text for the figures laid out by hand (:func:`text_inches`,
:func:`tick_label_inches`): asking matplotlib for a text's extent costs a few milliseconds
(it lays the text out), PIL a few microseconds. And the figures are built and drawn more
cheaply (:class:`LeanFigure`, :func:`collector_paused`).
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from functools import lru_cache

import matplotlib
from matplotlib import font_manager
from matplotlib.figure import Figure
from PIL import ImageFont

_MEASURE_PIXELS = 72  # the size text is measured at; widths scale with the size
_MEASURE_MARGIN = 1.06  # matplotlib hints and kerns a little differently: measured widths agree within 4 %


@lru_cache(maxsize=None)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans at ``size`` pixels (PIL's built-in font if FreeType is unavailable)."""
    try:
        path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"), fallback_to_default=True)
        return ImageFont.truetype(path, size)
    except (OSError, ImportError):
        return ImageFont.load_default()


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
    ones walk every object of the process. For the montage's 50 panels that was half the
    time to build it. Nothing is lost: cycles are collected once the collector runs again.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class LeanFigure(Figure):
    """A matplotlib figure drawn more cheaply, to the same picture.

    Its text is drawn without FreeType hinting: matplotlib 3.11 renders each glyph on its own,
    and unhinted a text costs half as much, while at these sizes (7 to 13 points at 100 dpi)
    it looks the same. And it is drawn with the collector paused (:func:`collector_paused`).
    """

    def draw(self, renderer):
        with collector_paused(), matplotlib.rc_context({"text.hinting": "no_hinting"}):
            return super().draw(renderer)
