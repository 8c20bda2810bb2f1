"""montage: every analysed step's heatmap in one grid, on one colour scale, one label per panel.

Each step's picture carries its matrix (:data:`analyzer.heatmaps.HEATMAP_INFO`); the per-step
job keeps a row-reduced copy of it (small), and the montage draws them all with matplotlib:
one colour bar with round ticks, shared by every panel (``montage_scale`` "shared", the
default) or each panel on its own scale ("per-panel", the bar then reads as a fraction of
the panel's maximum). The grid adapts to the number of steps; beyond :data:`MAX_PANELS`
steps an evenly spaced subset is shown (first and last included) and the title says so.
"""

from __future__ import annotations

import math
import textwrap
from concurrent.futures import Future

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from analyzer import fonts, heatmaps, output
from analyzer.options import MONTAGE_SCALES
from analyzer.outputs.registry import Context, Output, Plan, StepJob

MONTAGE = "attention_montage"
MAX_PANELS = 100
MAX_COLUMNS = 10
PANEL_ROWS = 96  # rows kept per step (the heatmap's rows averaged in blocks): the montage's panels are small
SCALES = MONTAGE_SCALES
COLORMAP = heatmaps.COLORMAP
# the hand-made layout, in inches and points
MARGIN = 0.1
TICK_ROOM = 0.1  # a tick and the pad between it and its label
LABEL_GAP = 0.1
COLUMN_GAP = 0.12
ROW_GAP = 0.08
TITLE_GAP = 0.15
BAR_GAP = 0.25
BAR_WIDTH = 0.2
TITLE_POINTS = 13
NOTE_POINTS = 9
BAR_POINTS = 10


def columns(count: int) -> int:
    """Columns of a montage of ``count`` panels: near square, a little wider than tall, at most MAX_COLUMNS."""
    return max(1, min(count, MAX_COLUMNS, math.ceil(math.sqrt(count * 1.4))))


def panel(image, index: int, rows: int = PANEL_ROWS) -> np.ndarray:
    """One step's matrix, its rows averaged down to at most ``rows`` (an encoder job, on each step)."""
    matrix = np.asarray(image.info[heatmaps.HEATMAP_INFO], dtype=np.float32)
    if matrix.shape[0] <= rows:
        return matrix
    starts = np.linspace(0, matrix.shape[0], rows + 1).astype(np.int64)
    return np.add.reduceat(matrix, starts[:-1], axis=0) / np.diff(starts)[:, None]


def shown_positions(count: int, limit: int = MAX_PANELS) -> list[int]:
    """Which of ``count`` panels are shown: all, or ``limit`` evenly spaced ones, first and last included."""
    if count <= limit:
        return list(range(count))
    return sorted({int(round(x)) for x in np.linspace(0, count - 1, limit)})


@fonts.collector_paused()  # some 65 000 objects, all kept until written: collecting would only cost
def montage_figure(matrices: list[np.ndarray], labels: list[str], scale: str = "shared",
                   total: int | None = None, layers: str = "") -> Figure:
    """The grid of step heatmaps. matrices: (rows, tokens) each; labels: one per panel (its step).

    Laid out by hand from the texts' measured sizes: a layout engine would measure every
    panel's extent again and again, which cost more than drawing the whole figure.
    """
    count = len(matrices)
    total = count if total is None else total
    n_columns = columns(count)
    n_rows = math.ceil(count / n_columns)
    panel_w = min(4.2, 20.0 / n_columns)
    panel_h = panel_w * 0.72
    width = max(7.5, n_columns * panel_w + 1.6)
    shared = scale != "per-panel"
    top = max((float(m.max()) for m in matrices if m.size), default=1.0) or 1.0
    label_size = 11 if panel_w >= 3 else 9

    subset = f", {count} of {total} steps evenly spaced" if count < total else ""
    title = (f"Cross-attention of each analysed step{subset}: "
             f"{'shared colour scale' if shared else 'each panel on its own scale'}")
    how = ("How to read: one panel per denoising step, first at the top left. In each panel x = the text tokens "
           "in prompt order, y = the video tokens frame by frame (first latent frame at the top); brighter = more "
           "attention. Token names are on each step's own picture (attention_step_NNN).")
    if layers:
        how += f" Layers: {layers}."
    how = "\n".join(textwrap.wrap(how, max(60, int(width * 13))))
    ticks = heatmaps.round_ticks(top if shared else 1.0)
    bar_label = "attention weight (one scale for every panel)" if shared else "fraction of the panel's own maximum"

    # inches: the title band, the rows (each a title over its panel), the note; the colour bar on the right
    head = MARGIN + fonts.line_inches(TITLE_POINTS, title.count("\n") + 1) + TITLE_GAP
    title_band = fonts.line_inches(label_size) + 0.06
    row = title_band + panel_h + ROW_GAP
    foot = fonts.line_inches(NOTE_POINTS, how.count("\n") + 1) + 2 * MARGIN
    height = head + n_rows * row + foot
    tick_w = max(fonts.text_inches(label, BAR_POINTS) for _, label in ticks)
    bar_room = BAR_GAP + BAR_WIDTH + TICK_ROOM + tick_w + LABEL_GAP + fonts.line_inches(BAR_POINTS) + MARGIN
    panel_w = min(panel_w, (width - MARGIN - bar_room - (n_columns - 1) * COLUMN_GAP) / n_columns)
    grid_w = n_columns * panel_w + (n_columns - 1) * COLUMN_GAP
    left = max(MARGIN, (width - bar_room - grid_w) / 2)

    figure = fonts.LeanFigure(figsize=(width, height), dpi=100)
    image = None
    for i, matrix in enumerate(matrices):
        r, c = divmod(i, n_columns)
        x = left + c * (panel_w + COLUMN_GAP)
        y = height - head - r * row - title_band - panel_h
        ax = figure.add_axes((x / width, y / height, panel_w / width, panel_h / height))
        ax.xaxis.set_major_locator(NullLocator())  # the title is the panel's only label
        ax.yaxis.set_major_locator(NullLocator())
        ax.xaxis.set_visible(False)
        ax.yaxis.set_visible(False)
        if not shared:
            own = float(matrix.max()) if matrix.size else 0.0
            matrix = matrix / own if own > 0 else matrix
        image = ax.imshow(matrix, aspect="auto", interpolation="nearest", cmap=COLORMAP, vmin=0.0,
                          vmax=top if shared else 1.0)
        ax.set_title(labels[i], fontsize=label_size, pad=3, y=1.0)  # y given: no search for the title's place
    if image is not None:
        grid_h = n_rows * row - title_band - ROW_GAP
        bar_h = grid_h * min(1.0, 0.35 + 0.15 * n_rows)
        bar_y = height - head - title_band - (grid_h + bar_h) / 2
        bar_x = left + grid_w + BAR_GAP
        cax = figure.add_axes((bar_x / width, bar_y / height, BAR_WIDTH / width, bar_h / height))
        bar = figure.colorbar(image, cax=cax)
        bar.set_ticks([value for value, _ in ticks], labels=[label for _, label in ticks], fontsize=BAR_POINTS)
        bar.set_label(bar_label, fontsize=BAR_POINTS)
        cax.yaxis.set_label_coords((BAR_WIDTH + TICK_ROOM + tick_w + LABEL_GAP) / BAR_WIDTH, 0.5)
    figure.suptitle(title, fontsize=TITLE_POINTS, y=1 - MARGIN / height, va="top")
    figure.supxlabel(how, fontsize=NOTE_POINTS, y=MARGIN / height, va="bottom")
    return figure


def _per_step(plan: Plan) -> StepJob:
    return panel, (PANEL_ROWS,)


def _render(ctx: Context) -> Future:
    analysis = ctx.analysis
    steps = analysis.stats.steps
    named = heatmaps.two_experts(analysis.view.attrs, [s.expert for s in steps])
    shown = shown_positions(len(steps))
    matrices = [ctx.step_values["montage"][p] for p in shown]
    labels = []
    for p in shown:
        s = steps[p]
        label = f"step {s.index} \u00b7 t={s.timestep:.0f}"
        labels.append(f"{label} \u00b7 {heatmaps.expert_name(s.expert).replace(' expert', '')}" if named else label)
    scale = getattr(ctx.options, "montage_scale", "shared")
    return ctx.encoders.submit(output.draw_and_save, montage_figure,
                               (matrices, labels, scale, len(steps), heatmaps.layer_label(analysis.layer_blocks)),
                               ctx.out / MONTAGE, ctx.options.image_format)


OUTPUT = Output("montage", "Montage of every analysed step", f"{MONTAGE}.<image format>", _render,
                per_step=_per_step)
