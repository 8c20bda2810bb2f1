"""Checks on drawn pictures, shared by the gallery test and the figure layout tests: matplotlib figures, and
the PIL pictures that record where they put their texts."""

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


def boxes_overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Whether two (left, upper, right, lower) pixel boxes, right and lower exclusive, share a pixel."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def drawn_text_problems(picture) -> list[str]:
    """What is wrong with the texts of a picture drawn with PIL that records where it put them (the montage's
    ``MontagePicture``): a text not inside the picture with a pixel to spare, two texts sharing a pixel, a text
    on a panel, the colour bar or their frames."""
    width, height = picture.image.size
    texts = picture.texts
    problems = [f"{text!r} at {box} leaves the {width}x{height} picture" for text, box in texts
                if box[0] < 1 or box[1] < 1 or box[2] > width - 1 or box[3] > height - 1]
    problems += [f"{a!r} overlaps {b!r}" for i, (a, box_a) in enumerate(texts) for b, box_b in texts[i + 1:]
                 if boxes_overlap(box_a, box_b)]
    framed = [(f"panel {p.label!r}", p.box) for p in picture.panels] + [("colour bar", picture.bar_box)]
    framed = [(name, (left - 1, upper - 1, right + 1, lower + 1)) for name, (left, upper, right, lower) in framed]
    problems += [f"{text!r} is drawn on the {name}" for text, box in texts for name, area in framed
                 if boxes_overlap(box, area)]
    return problems


def laid_out_text_problems(size: tuple[int, int], texts: list[tuple[str, tuple[int, int, int, int]]],
                           areas: list[tuple[str, tuple[int, int, int, int]]]) -> list[str]:
    """What is wrong with the texts of a picture that records where it put them, whatever the picture: a text not
    inside the ``size`` (width, height) picture with a pixel to spare, two texts sharing a pixel, a text on one of
    the named ``areas`` (what else the picture drew, or keeps room for)."""
    width, height = size
    problems = [f"{text!r} at {box} leaves the {width}x{height} picture" for text, box in texts
                if box[0] < 1 or box[1] < 1 or box[2] > width - 1 or box[3] > height - 1]
    problems += [f"{a!r} overlaps {b!r}" for i, (a, box_a) in enumerate(texts) for b, box_b in texts[i + 1:]
                 if boxes_overlap(box_a, box_b)]
    problems += [f"{text!r} is drawn on the {name}" for text, box in texts for name, area in areas
                 if boxes_overlap(box, area)]
    return problems


def step_picture_areas(picture) -> list[tuple[str, tuple[int, int, int, int]]]:
    """What a step picture's frame (``heatmaps.StepHeatmap``) draws besides texts, with their frames and tick
    marks, then the rooms its ``render()`` writes in (the last two)."""
    from analyzer.heatmaps import TICK_LENGTH

    left, upper, right, lower = picture.box
    bar_left, bar_upper, bar_right, bar_lower = picture.colorbar_box
    return [("axes", (left - 1, upper - 1, right + 1, lower + 1)),
            ("colour bar", (bar_left - 1, bar_upper - 1, bar_right + 1, bar_lower + 1)),
            ("ticks on the left", (left - 1 - TICK_LENGTH, upper - 1, left - 1, lower + 1)),
            ("ticks below", (left - 1, lower + 1, right + 1, lower + 1 + TICK_LENGTH)),
            ("title's room", picture.title_room), ("values' room", picture.value_room)]


def step_picture_problems(picture) -> list[str]:
    """What is wrong with the layout of a step picture's frame: its texts (:func:`laid_out_text_problems`) against
    everything else it draws and the rooms left for each step's title and colour-bar values, and those rooms
    against the rest."""
    size = picture.template.shape[1], picture.template.shape[0]
    areas = step_picture_areas(picture)
    return laid_out_text_problems(size, picture.texts, areas) + laid_out_text_problems(size, areas[-2:], areas[:-2])
