"""layers: the layer profile, each layer's share of its word attention (a store of separate layers only)."""

from __future__ import annotations

import math
from concurrent.futures import Future
from typing import TYPE_CHECKING

import numpy as np

from analyzer import fonts, output, text
from analyzer.outputs.registry import Context, Output

if TYPE_CHECKING:  # matplotlib is imported where figures are drawn (encoder processes), not with the module
    from matplotlib.figure import Figure

LAYER_PROFILE = "layer_profile"
# the hand-made layout, in inches
MARGIN = 0.1
TICK_ROOM = 0.1  # a tick and the pad between it and its label
LABEL_GAP = 0.06
BAR_GAP = 0.25
BAR_WIDTH = 0.18
SIN60 = math.sin(math.radians(60))
TITLE = "Layer profile: share of each layer's word attention (rows sum to 1)"


@fonts.collector_paused()  # thousands of objects, all kept until written: collecting would only cost
def layer_profile_figure(profile: np.ndarray, layer_blocks: list[int], unit_labels: list[str]) -> Figure:
    """Heatmap of each layer's attention share per word. profile: (layers, units), rows sum to 1.

    Laid out by hand from the labels' measured widths: a layout engine measures every label
    several times, which cost more than drawing the figure.
    """
    width = min(max(6.0, 2.5 + 0.45 * len(unit_labels)), 24.0)
    height = min(max(3.5, 1.8 + 0.28 * len(layer_blocks)), 18.0)
    words = [text.label(u, 16) for u in unit_labels]
    every = max(1, len(layer_blocks) // 30)
    blocks = [text.block_label(b, "block ") for b in layer_blocks[::every]]
    figure = fonts.LeanFigure(figsize=(width, height), dpi=100)
    ax = figure.add_axes((0, 0, 1, 1))
    image = ax.imshow(profile, aspect="auto", interpolation="nearest", cmap="viridis")
    ax.set_xticks(range(len(words)), words, rotation=60, ha="right")
    ax.set_yticks(range(0, len(layer_blocks), every), blocks, fontsize=8)
    ax.set_xlabel("word")
    ax.set_ylabel("layer")
    cax = figure.add_axes((0, 0, 1, 1))
    figure.colorbar(image, cax=cax, label="share")

    # a word's label, turned 60 degrees, reaches down w sin 60 + h cos 60 and left w cos 60 + h sin 60
    line = fonts.line_inches(10)
    drops = [fonts.text_inches(w, 10) * SIN60 + line * 0.5 for w in words] or [0.0]
    under = TICK_ROOM + max(drops) + LABEL_GAP + line
    bottom = MARGIN + under
    top = height - MARGIN - fonts.line_inches(11) - 0.1
    cax.set_position((0, bottom / height, BAR_WIDTH / width, (top - bottom) / height))
    bar_labels = fonts.tick_label_inches(cax.yaxis, 10)
    right = width - MARGIN - line - LABEL_GAP - bar_labels - TICK_ROOM - BAR_WIDTH - BAR_GAP
    beside = TICK_ROOM + max((fonts.text_inches(b, 8) for b in blocks), default=0.0)
    left = MARGIN + line + LABEL_GAP + beside
    # the first words' labels must not leave the figure: label i ends at left + (i + 0.5) / n of the axes' width
    for i, word in enumerate(words):
        along = (i + 0.5) / len(words)
        reach = fonts.text_inches(word, 10) * 0.5 + line * SIN60
        left = max(left, (MARGIN + reach - right * along) / (1 - along))
    ax.set_position((left / width, bottom / height, (right - left) / width, (top - bottom) / height))
    cax.set_position(((right + BAR_GAP) / width, bottom / height, BAR_WIDTH / width, (top - bottom) / height))
    # the title over the axes, unless that would take it past the figure's edge (a narrow figure, wide labels)
    half = fonts.text_inches(TITLE, 11) / 2
    centre = min(max((left + right) / 2, MARGIN + half), width - MARGIN - half)
    ax.set_title(TITLE, fontsize=11, x=(centre - left) / (right - left), y=1.0)
    ax.xaxis.set_label_coords(0.5, -(TICK_ROOM + max(drops) + LABEL_GAP) / (top - bottom))
    ax.yaxis.set_label_coords(-(beside + LABEL_GAP) / (right - left), 0.5)
    cax.yaxis.set_label_coords((BAR_WIDTH + TICK_ROOM + bar_labels + LABEL_GAP) / BAR_WIDTH, 0.5)
    return figure


def _render(ctx: Context) -> Future | None:
    analysis = ctx.analysis
    if analysis.layer_profile is None:  # one layer, or a store of the mean over layers: nothing to compare
        return None
    return ctx.encoders.submit(output.draw_and_save, layer_profile_figure,
                               (analysis.layer_profile, analysis.layer_blocks, [u.label for u in analysis.units]),
                               ctx.out / LAYER_PROFILE, ctx.options.image_format)


OUTPUT = Output("layers", "Layer profile", f"{LAYER_PROFILE}.<image format> (a store of separate layers)", _render)
