"""heads: the head ranking, every head sorted by its mean entropy (most focused first), and the layers x heads map."""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING

import numpy as np

from analyzer import fonts, output, text
from analyzer.outputs.registry import Context, Output
from analyzer.statistics import HeadStat
from analyzer.ticks import round_ticks
from shared.words import token_text

if TYPE_CHECKING:  # matplotlib is imported where figures are drawn (encoder processes), not with the module
    from matplotlib.figure import Figure

HEAD_RANKING = "head_ranking"
# the hand-made layout, in inches
MARGIN = 0.1
TICK_ROOM = 0.1  # a tick and the pad between it and its label
LABEL_GAP = 0.06
TITLE_GAP = 0.1
RANKING_WIDTH = 7.5  # the ranking's part of the figure's width; the layers x heads map has the rest
PANEL_GAP = 0.25
BAR_GAP = 0.15
BAR_WIDTH = 0.2
RANKED_SHOWN = 30  # bars in the ranking; with more heads, the most and least focused halves, the middle elided


def head_name(head: HeadStat) -> str:
    return f"{text.block_label(head.layer_block, 'block ')}, head {head.head}"


@fonts.collector_paused()  # thousands of objects, all kept until written: collecting would only cost
def head_figure(heads: list[HeadStat], entropy: np.ndarray, layer_blocks: list[int], tokens: list[str],
                words: dict[int, str] | None = None) -> Figure:
    """The ranking (sorted bars, each head named by layer and head, with its top token) beside the
    layers x heads map of the same entropies. heads: most focused first; entropy: (layers, heads);
    words: the word of each sub-word token, named beside a token that is only part of it.

    Laid out by hand from the labels' measured widths (a layout engine measures every label
    several times, which cost more than drawing the figure).
    """
    words = words or {}
    count = len(heads)
    if count > RANKED_SHOWN:
        half = RANKED_SHOWN // 2
        ranked = list(enumerate(heads[:half], start=1)) + [None] + \
            list(enumerate(heads[-half:], start=count - half + 1))
    else:
        ranked = list(enumerate(heads, start=1))
    rows = len(ranked)
    height = min(max(4.5, 1.6 + 0.26 * rows, 1.8 + 0.28 * len(layer_blocks)), 16.0)
    map_width = min(max(3.5, 1.8 + 0.3 * entropy.shape[1]), 9.0)
    width = RANKING_WIDTH + map_width
    labels = [f"{item[0]}. {head_name(item[1])}" if item else f"\u2026 {count - RANKED_SHOWN} more \u2026"
              for item in ranked]
    every = max(1, len(layer_blocks) // 30)
    block_labels = [text.block_label(b, "block ") for b in layer_blocks[::every]]
    finite_map = entropy[np.isfinite(entropy)]
    map_low, map_high = (float(finite_map.min()), float(finite_map.max())) if finite_map.size else (0.0, 1.0)
    if map_high <= map_low:
        map_low, map_high = map_low - 0.5, map_high + 0.5
    bar_ticks = round_ticks(map_high, 6, map_low)

    # inches: the suptitle and the axes' titles above; tick labels and an axis label below; the ranking takes
    # the first RANKING_WIDTH, the map (its block labels, the map, its colour bar) the rest
    top = height - MARGIN - fonts.line_inches(11) - TITLE_GAP - fonts.line_inches(10) - TITLE_GAP
    bottom = MARGIN + fonts.line_inches(10) + LABEL_GAP + fonts.line_inches(10) + TICK_ROOM
    bars_left = MARGIN + max(fonts.text_inches(label, 8) for label in labels) + TICK_ROOM
    map_left = RANKING_WIDTH + max(fonts.text_inches(label, 7) for label in block_labels) + TICK_ROOM
    bar_labels = max(fonts.text_inches(label, 10) for _, label in bar_ticks)
    bar_x = width - MARGIN - fonts.line_inches(10) - LABEL_GAP - bar_labels - TICK_ROOM - BAR_WIDTH
    figure = fonts.LeanFigure(figsize=(width, height), dpi=100)

    def axes(left: float, right: float):
        return figure.add_axes((left / width, bottom / height, (right - left) / width, (top - bottom) / height))

    bars = axes(bars_left, RANKING_WIDTH - PANEL_GAP)
    grid = axes(map_left, bar_x - BAR_GAP)
    y = np.arange(rows)
    values = np.array([item[1].entropy if item else np.nan for item in ranked], dtype=np.float64)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    span = high - low if high > low else max(abs(high) * 0.01, 1e-3)
    left, right = low - 0.1 * span, high + 0.6 * span  # the axis spans the entropies, so close heads still differ
    bars.hlines(y, left, values, color="tab:blue", alpha=0.35, linewidth=2)
    bars.plot(values, y, "o", color="tab:blue")
    bars.set_yticks(y, labels, fontsize=8)
    bars.set_ylim(rows - 0.5, -0.5)
    for i, item in enumerate(ranked):
        if item is None:
            continue
        head = item[1]
        piece = token_text(tokens[head.top_token]) if 0 <= head.top_token < len(tokens) else "?"
        word = words.get(head.top_token, piece)
        token = text.label(piece, 14) + (f" (of \u201c{text.label(word, 16)}\u201d)" if word != piece else "")
        bars.text(head.entropy + 0.04 * span, i, f"{head.entropy:.3f}  top token: {token}", va="center", fontsize=7)
    bars.set_xlim(left, right)
    bars.grid(axis="x", alpha=0.3)
    shown = "every head" if count <= RANKED_SHOWN else f"the {RANKED_SHOWN // 2} most and least focused of {count}"
    _label(bars, "mean entropy over all keys (nats)", top - bottom)
    bars.set_title(f"Ranking, {shown} (1 = most focused)", fontsize=10, y=1.0)

    image = grid.imshow(entropy, aspect="auto", interpolation="nearest", cmap="viridis_r", vmin=map_low,
                        vmax=map_high)
    grid.set_xticks(range(entropy.shape[1]), [str(h) for h in range(entropy.shape[1])], fontsize=7)
    grid.set_yticks(range(0, len(layer_blocks), every), block_labels, fontsize=7)
    _label(grid, "head", top - bottom)
    grid.set_title("Every head by layer", fontsize=10, y=1.0)
    cax = axes(bar_x, bar_x + BAR_WIDTH)
    colorbar = figure.colorbar(image, cax=cax)
    colorbar.set_ticks([v for v, _ in bar_ticks], labels=[t for _, t in bar_ticks])
    colorbar.set_label("mean entropy (nats)")
    cax.yaxis.set_label_coords((BAR_WIDTH + TICK_ROOM + bar_labels + LABEL_GAP) / BAR_WIDTH, 0.5)
    figure.suptitle("Head ranking by mean entropy over all keys, pad keys included (nats; lower = more focused)",
                    fontsize=11, y=1 - MARGIN / height, va="top")
    return figure


def _label(ax, label: str, axes_height: float) -> None:
    """The x axis label under one line of 10-point tick labels, placed by hand (matplotlib would measure them)."""
    ax.set_xlabel(label)
    ax.xaxis.set_label_coords(0.5, -(TICK_ROOM + fonts.line_inches(10) + LABEL_GAP) / axes_height)


def _render(ctx: Context) -> Future:
    entropy = ctx.analysis.stats.head_means()["entropy"]
    return ctx.encoders.submit(output.draw_and_save, head_figure,
                               (list(ctx.analysis.heads), entropy, ctx.analysis.layer_blocks,
                                list(ctx.analysis.view.tokens),
                                {t: w.text for w in ctx.analysis.view.words for t in w.tokens}),
                               ctx.out / HEAD_RANKING, ctx.options.image_format)


OUTPUT = Output("heads", "Head ranking (mean entropy per head)", f"{HEAD_RANKING}.<image format>", _render)
