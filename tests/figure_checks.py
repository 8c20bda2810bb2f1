"""Checks on drawn matplotlib figures, shared by the gallery test and the figure layout tests."""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.text import Text


def clipped(figure: Figure) -> list[str]:
    """What is drawn outside a drawn ``figure`` (one pixel of tolerance): its texts by name, tick labels aside,
    and the extent of everything drawn (tick labels outside the view limits are not drawn) as one entry."""
    renderer = figure.canvas.get_renderer()
    box = figure.bbox

    def outside(extent) -> bool:
        return (extent.x0 < box.x0 - 1 or extent.y0 < box.y0 - 1 or extent.x1 > box.x1 + 1
                or extent.y1 > box.y1 + 1)

    ticks = {id(t) for ax in figure.axes for t in ax.get_xticklabels() + ax.get_yticklabels()}
    problems = [repr(t.get_text()) for t in figure.findobj(Text)
                if id(t) not in ticks and t.get_visible() and t.get_text().strip()
                and outside(t.get_window_extent(renderer))]
    # what is drawn, ticks outside the view limits left out: the figure's tight box, in inches
    tight = figure.get_tightbbox(renderer).transformed(figure.dpi_scale_trans)
    if outside(tight):
        problems.append(f"drawn extent {tight.bounds} beyond the figure {box.bounds}")
    return problems
