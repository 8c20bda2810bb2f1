"""A matplotlib figure drawn more cheaply, to the same picture (reached as ``analyzer.fonts.LeanFigure``).

In a module of its own so that importing :mod:`analyzer.fonts` (the PIL font, text
measurement) does not import matplotlib: the analyzer's main process draws only with PIL.
"""

from __future__ import annotations

import matplotlib
from matplotlib.figure import Figure

from analyzer.fonts import collector_paused


class LeanFigure(Figure):
    """A matplotlib figure drawn more cheaply, to the same picture.

    Its text is drawn without FreeType hinting: matplotlib 3.11 renders each glyph on its own,
    and unhinted a text costs half as much, while at these sizes (7 to 13 points at 100 dpi)
    it looks the same. And it is drawn with the collector paused (:func:`collector_paused`).
    """

    def draw(self, renderer):
        with collector_paused(), matplotlib.rc_context({"text.hinting": "no_hinting"}):
            return super().draw(renderer)
