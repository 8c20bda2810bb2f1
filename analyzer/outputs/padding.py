"""padding: the attention that went to the pad keys, per step and per step and layer."""

from __future__ import annotations

import math
from concurrent.futures import Future
from typing import TYPE_CHECKING

import numpy as np

from analyzer import fonts, output, text
from analyzer.outputs.registry import Context, Output

if TYPE_CHECKING:  # matplotlib is imported where figures are drawn (encoder processes), not with the module
    from matplotlib.figure import Figure

PADDING = "padding_mass"
# the hand-made layout, in inches
MARGIN = 0.1
TICK_ROOM = 0.1  # a tick and the pad between it and its label
LABEL_GAP = 0.06
TITLE_GAP = 0.1
HALF_LABEL = 0.15  # the last step's tick label reaches past the axes' right end by half its width
LINE_SHARE = 0.38  # of the height for the two axes, the line's; the map gets more, each of its rows has a label
BAR_GAP = 0.25
BAR_WIDTH = 0.18


@fonts.collector_paused()  # thousands of objects, all kept until written: collecting would only cost
def padding_figure(step_indices: list[int], padding: np.ndarray, layer_blocks: list[int]) -> Figure:
    """Mean padding mass per step (line) and per step and layer (heatmap, when there are several layers).

    padding: (steps, layers). Laid out by hand from the labels' measured widths: a layout
    engine measures every label several times, which cost more than drawing the figure.
    """
    several = padding.shape[1] > 1
    width, height = 9.0, 6.5 if several else 3.8
    figure = fonts.LeanFigure(figsize=(width, height), dpi=100)
    line = figure.add_axes((0, 0, 1, 1))
    line.plot(step_indices, padding.mean(axis=1), marker="o", color="tab:red")
    from matplotlib.ticker import MaxNLocator  # imported where the figure is drawn

    line.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers: no tick at 0.5
    line.grid(alpha=0.3)
    line.set_xlabel("step")
    line.set_ylabel("mean padding mass")
    line.set_title("Attention that went to the pad keys (mean over queries and layers)", y=1.0)
    # the bands, top down: the line's title, the line, its ticks and label; the map's title, the map, its ticks
    # and label. Heights first: how many ticks an axis gets, and so how wide its labels are, follows its height.
    line_top = height - MARGIN - fonts.line_inches(12) - TITLE_GAP
    under_line = TICK_ROOM + fonts.line_inches(10) + LABEL_GAP + fonts.line_inches(10)
    if not several:
        _place(line, 0, width, under_line + MARGIN, line_top, width, height)
        left = _left_of(line, 10)
        _place(line, left, width - MARGIN - HALF_LABEL, under_line + MARGIN, line_top, width, height)
        _label_coords(line, TICK_ROOM + fonts.line_inches(10), left - MARGIN - fonts.line_inches(10) - LABEL_GAP,
                      width, height)
        return figure

    grid = figure.add_axes((0, 0, 1, 1))
    image = grid.imshow(padding.T, aspect="auto", interpolation="nearest", cmap="magma",
                        extent=(-0.5, len(step_indices) - 0.5, len(layer_blocks) - 0.5, -0.5))
    every = max(1, math.ceil(len(step_indices) / 25))
    grid.set_xticks(range(0, len(step_indices), every), [str(i) for i in step_indices[::every]], fontsize=7)
    rows = max(1, math.ceil(len(layer_blocks) / 30))
    grid.set_yticks(range(0, len(layer_blocks), rows),
                    [text.block_label(b, "block ") for b in layer_blocks[::rows]], fontsize=7)
    grid.set_xlabel("step")
    grid.set_ylabel("layer")
    grid.set_title("Per layer and step", fontsize=10, y=1.0)
    cax = figure.add_axes((0, 0, 1, 1))
    figure.colorbar(image, cax=cax, label="padding mass")

    under_map = TICK_ROOM + fonts.line_inches(7) + LABEL_GAP + fonts.line_inches(10) + MARGIN
    map_title = fonts.line_inches(10) + TITLE_GAP
    line_bottom = line_top - LINE_SHARE * (line_top - under_line - map_title - under_map)
    map_top = line_bottom - under_line - map_title
    _place(line, 0, width, line_bottom, line_top, width, height)
    _place(cax, 0, BAR_WIDTH, under_map, map_top, width, height)
    left = max(_left_of(line, 10), _left_of(grid, 7))
    bar_labels = fonts.tick_label_inches(cax.yaxis, 10)
    map_right = width - MARGIN - fonts.line_inches(10) - LABEL_GAP - bar_labels - TICK_ROOM - BAR_WIDTH - BAR_GAP
    _place(line, left, width - MARGIN - HALF_LABEL, line_bottom, line_top, width, height)
    _place(grid, left, map_right, under_map, map_top, width, height)
    _place(cax, map_right + BAR_GAP, map_right + BAR_GAP + BAR_WIDTH, under_map, map_top, width, height)
    beside = left - MARGIN - fonts.line_inches(10) - LABEL_GAP
    _label_coords(line, TICK_ROOM + fonts.line_inches(10), beside, width, height)
    _label_coords(grid, TICK_ROOM + fonts.line_inches(7), beside, width, height)
    cax.yaxis.set_label_coords((BAR_WIDTH + TICK_ROOM + bar_labels + LABEL_GAP) / BAR_WIDTH, 0.5)
    return figure


def _left_of(ax, points: float) -> float:
    """The room left of ``ax`` for its y label and tick labels (``points`` high), in inches."""
    return MARGIN + fonts.line_inches(10) + LABEL_GAP + fonts.tick_label_inches(ax.yaxis, points) + TICK_ROOM


def _place(ax, left: float, right: float, bottom: float, top: float, width: float, height: float) -> None:
    """Put ``ax`` at a box given in inches."""
    ax.set_position((left / width, bottom / height, (right - left) / width, (top - bottom) / height))


def _label_coords(ax, below: float, beside: float, width: float, height: float) -> None:
    """Place the axis labels by hand, past ``below`` inches of x tick room and ``beside`` inches of y tick room
    (matplotlib would measure every tick label to find the place)."""
    box = ax.get_position()
    ax.xaxis.set_label_coords(0.5, -(below + LABEL_GAP) / (box.height * height))
    ax.yaxis.set_label_coords(-(beside + LABEL_GAP) / (box.width * width), 0.5)


def _render(ctx: Context) -> Future:
    stats = ctx.analysis.stats
    return ctx.encoders.submit(output.draw_and_save, padding_figure,
                               ([s.index for s in stats.steps], stats.padding_by_step_layer(),
                                ctx.analysis.layer_blocks), ctx.out / PADDING, ctx.options.image_format)


OUTPUT = Output("padding", "Padding mass per step and layer", f"{PADDING}.<image format>", _render)
