"""montage: every analysed step's heatmap in one grid, on one colour scale, one label per panel.

Each step's picture carries its matrix (:data:`analyzer.heatmaps.HEATMAP_INFO`); the per-step
job keeps a row-reduced copy of it (small), and the montage draws them all as the step
pictures are drawn: palette indices put in with numpy (the colour map at
:data:`analyzer.heatmaps.LEVELS` levels, nearest-neighbour scaled), texts written with PIL.
One colour bar with round ticks, shared by every panel (``montage_scale`` "shared", the
default) or each panel on its own scale ("per-panel", the bar then reads as a fraction of
the panel's maximum). The grid adapts to the number of steps; beyond :data:`MAX_PANELS`
steps an evenly spaced subset is shown (first and last included) and the title says so.

A matplotlib figure with one Axes per panel cost 1.4-2 CPU seconds for 50 steps; this
picture costs a tenth of that, and its palette PNG is cheap to compress.
:func:`montage_picture` returns the picture with where each thing went (:class:`MontagePicture`),
so that tests can check the layout without reading pixels back.
"""

from __future__ import annotations

import math
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from analyzer import heatmaps, output
from analyzer.drawing import Box, fitted, line_height, nearest_cells, put_frame, write, write_upwards
from analyzer.fonts import font
from analyzer.options import MONTAGE_SCALES
from analyzer.outputs.registry import Context, Output, Plan, StepJob
from analyzer.ticks import round_ticks

MONTAGE = "attention_montage"
MAX_PANELS = 100
MAX_COLUMNS = 10
PANEL_ROWS = 96  # rows kept per step (the heatmap's rows averaged in blocks): the montage's panels are small
SCALES = MONTAGE_SCALES
COLORMAP = heatmaps.COLORMAP
# the layout, in pixels (what matplotlib's figure had at 100 dpi)
MARGIN = 10
TICK_LENGTH = 5
TICK_ROOM = 9  # the tick and the pad between it and its label
LABEL_GAP = 10
LABEL_PAD = 4  # between a panel's label and its frame
COLUMN_GAP = 12
ROW_GAP = 8
TITLE_GAP = 15
BAR_GAP = 25
BAR_WIDTH = 20
TITLE_PIXELS = 18
NOTE_PIXELS = 13
BAR_PIXELS = 14
LABEL_PIXELS = (15, 14)  # the labels' size over wide panels (300 pixels or more), and over narrower ones
SMALLEST_LABEL_PIXELS = 10  # labels shrink down to this to fit their panel, and are shortened beyond
# the palette: the colour map's levels, then greys from black to white (heatmaps.PALETTE)
WHITE = len(heatmaps.PALETTE) - 1



@dataclass(frozen=True)
class Panel:
    """One step's panel: its matrix's pixels (the black frame lies just outside ``box``) and its label."""

    label: str
    box: Box
    label_box: Box
    value_range: tuple[float, float]  # the values coloured with the colour map's first and last colour


@dataclass(frozen=True)
class MontagePicture:
    """The montage as drawn: the picture, and where each thing in it went."""

    image: Image.Image
    title: str
    panels: list[Panel]
    bar_box: Box
    ticks: list[tuple[float, str]]  # the colour bar's tick values and labels
    texts: list[tuple[str, Box]]  # every text drawn (the panels' labels included) and its ink's box


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


def montage_picture(matrices: list[np.ndarray], labels: list[str], scale: str = "shared",
                    total: int | None = None, layers: str = "") -> MontagePicture:
    """The grid of step heatmaps. matrices: (rows, tokens) each; labels: one per panel (its step)."""
    count = len(matrices)
    total = count if total is None else total
    shared = scale != "per-panel"
    n_columns = columns(count)
    n_rows = max(1, math.ceil(count / n_columns))
    panel_w = min(420, 2000 // n_columns)
    panel_h = round(panel_w * 0.72)  # before the colour bar's room narrows the panels: the rows keep their height
    width = max(750, n_columns * panel_w + 160)
    top = _shared_top(matrices)

    title_lines = _wrap(_title(count, total, shared), font(TITLE_PIXELS), width - 2 * MARGIN)
    note_lines = _wrap(_how_to_read(layers), font(NOTE_PIXELS), width - 2 * MARGIN)
    bar_top = top if shared else 1.0
    ticks = [(float(value), label) for value, label in round_ticks(bar_top)]
    bar_label = "attention weight (one scale for every panel)" if shared else "fraction of the panel's own maximum"

    tick_w = max(math.ceil(font(BAR_PIXELS).getlength(label)) for _, label in ticks)
    bar_room = BAR_GAP + BAR_WIDTH + TICK_ROOM + tick_w + LABEL_GAP + line_height(font(BAR_PIXELS)) + MARGIN
    panel_w = min(panel_w, (width - MARGIN - bar_room - (n_columns - 1) * COLUMN_GAP) // n_columns)
    label_font, labels = _fitted_labels(labels, panel_w, LABEL_PIXELS[0] if panel_w >= 300 else LABEL_PIXELS[1])
    label_band = line_height(label_font) + LABEL_PAD + 2

    head = MARGIN + len(title_lines) * line_height(font(TITLE_PIXELS)) + TITLE_GAP
    row = label_band + panel_h + ROW_GAP
    foot = len(note_lines) * line_height(font(NOTE_PIXELS)) + 2 * MARGIN
    height = head + n_rows * row + foot
    grid_w = n_columns * panel_w + (n_columns - 1) * COLUMN_GAP
    left = max(MARGIN, (width - bar_room - grid_w) // 2)

    # the texts first, black on white in one grey layer that becomes the palette's greys; then the colours
    layer = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(layer)
    texts = _write_lines(draw, title_lines, font(TITLE_PIXELS), width // 2, MARGIN)
    texts += _write_lines(draw, note_lines, font(NOTE_PIXELS), width // 2,
                          height - MARGIN - len(note_lines) * line_height(font(NOTE_PIXELS)))
    boxes, label_boxes = [], []
    for i in range(count):
        r, c = divmod(i, n_columns)
        x, y = left + c * (panel_w + COLUMN_GAP), head + r * row + label_band
        boxes.append((x, y, x + panel_w, y + panel_h))
        label_boxes.append(write(draw, labels[i], label_font, (x + panel_w // 2, y - 1 - LABEL_PAD), "md")[1])
    texts += zip(labels, label_boxes)

    grid_h = n_rows * row - label_band - ROW_GAP
    bar_h = round(grid_h * min(1.0, 0.35 + 0.15 * n_rows))
    bar_x = left + grid_w + BAR_GAP
    bar_y = head + label_band + (grid_h - bar_h) // 2
    bar_box = (bar_x, bar_y, bar_x + BAR_WIDTH, bar_y + bar_h)
    texts += _write_ticks(draw, ticks, bar_top, bar_box)
    texts += write_upwards(layer, [bar_label], font(BAR_PIXELS), bar_x + BAR_WIDTH + TICK_ROOM + tick_w + LABEL_GAP,
                           bar_y + bar_h // 2, MARGIN)

    pixels = heatmaps.GREY_INDEX[np.asarray(layer)]
    panels = []
    for matrix, label, box, label_box in zip(matrices, labels, boxes, label_boxes):
        own = _finite_max(matrix)
        value_top = top if shared else (own if own > 0 else 1.0)
        _put_panel(pixels, box, matrix, value_top)
        panels.append(Panel(label, box, label_box, (0.0, value_top)))
    _put_bar(pixels, bar_box)

    image = Image.fromarray(pixels)
    image.putpalette(heatmaps.PALETTE.tobytes())
    return MontagePicture(image, "\n".join(title_lines), panels, bar_box, ticks, texts)


def save_montage(matrices: list[np.ndarray], labels: list[str], scale: str, total: int, layers: str,
                 path: Path, image_format: str) -> Path:
    """Draw the montage (:func:`montage_picture`) and write it: an encoder job, so it is drawn there."""
    return output.save_image(montage_picture(matrices, labels, scale, total, layers).image, path, image_format)


def _title(count: int, total: int, shared: bool) -> str:
    subset = f", {count} of {total} steps evenly spaced" if count < total else ""
    return (f"Cross-attention of each analysed step{subset}: "
            f"{'shared colour scale' if shared else 'each panel on its own scale'}")


def _how_to_read(layers: str) -> str:
    how = ("How to read: one panel per denoising step, first at the top left. In each panel x = the text tokens "
           "in prompt order, y = the video tokens frame by frame (first latent frame at the top); brighter = more "
           "attention. Token names are on each step's own picture (attention_step_NNN).")
    return f"{how} Layers: {layers}." if layers else how


def _shared_top(matrices: list[np.ndarray]) -> float:
    """The top of the shared scale: the largest value of any panel (1 if there is none above 0)."""
    return max((_finite_max(m) for m in matrices), default=0.0) or 1.0


def _finite_max(matrix: np.ndarray) -> float:
    """The largest finite value of ``matrix`` (0 if it has none): an unrecorded (NaN) cell sets no scale."""
    finite = np.isfinite(matrix)
    values = matrix if finite.all() else matrix[finite]
    return max(float(values.max()), 0.0) if values.size else 0.0


def _put_panel(pixels: np.ndarray, box: Box, matrix: np.ndarray, top: float) -> None:
    """Put ``matrix`` coloured from 0 to ``top``, nearest-neighbour scaled, into ``box`` and frame it in black."""
    left, upper, right, lower = box
    if matrix.size:
        levels = np.clip(np.nan_to_num(matrix * ((heatmaps.LEVELS - 1) / top), nan=0.0) + 0.5,
                         0, heatmaps.LEVELS - 1).astype(np.uint8)
        levels[np.isnan(matrix)] = WHITE  # left blank, as matplotlib left a NaN cell
        pixels[upper:lower, left:right] = levels[np.ix_(nearest_cells(matrix.shape[0], lower - upper),
                                                        nearest_cells(matrix.shape[1], right - left))]
    put_frame(pixels, box, heatmaps.BLACK)


def _put_bar(pixels: np.ndarray, box: Box) -> None:
    """The colour bar: the colour map from its first colour at the bottom to its last at the top, framed."""
    left, upper, right, lower = box
    levels = np.round(np.linspace(heatmaps.LEVELS - 1, 0, lower - upper)).astype(np.uint8)
    pixels[upper:lower, left:right] = levels[:, None]
    put_frame(pixels, box, heatmaps.BLACK)


def _wrap(text: str, face, width: int) -> list[str]:
    """``text`` broken at spaces into lines at most ``width`` pixels wide (a longer word keeps its own line)."""
    lines: list[str] = []
    for word in text.split():
        if lines and face.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def _fitted_labels(labels: list[str], room: int, size: int):
    """The labels' font, the largest from ``size`` down at which every label fits ``room`` pixels (its panel's
    width: labels over neighbouring panels then never touch), and the labels, any still too wide shortened."""
    face = fitted(labels, size, room, SMALLEST_LABEL_PIXELS)
    return face, [_shortened(label, face, room) for label in labels]


def _shortened(label: str, face, room: int) -> str:
    while len(label) > 1 and face.getlength(label) > room:
        label = label[:-2] + "\u2026"
    return label


def _write_lines(draw: ImageDraw.ImageDraw, lines: list[str], face, centre: int, top: int) -> list[tuple[str, Box]]:
    """Lines centred on ``centre``, the first one's ascender at ``top``."""
    step = line_height(face)
    return [write(draw, line, face, (centre, top + i * step), "ma") for i, line in enumerate(lines)]


def _write_ticks(draw: ImageDraw.ImageDraw, ticks: list[tuple[float, str]], top: float,
                 bar_box: Box) -> list[tuple[str, Box]]:
    """The colour bar's ticks (outward, on its right) and their values, where the values fall on the bar."""
    _, upper, right, lower = bar_box
    texts = []
    for value, label in ticks:
        y = round(lower - 1 - value / top * (lower - upper - 1))
        draw.line((right + 1, y, right + TICK_LENGTH, y), fill=0)
        texts.append(write(draw, label, font(BAR_PIXELS), (right + TICK_ROOM, y), "lm"))
    return texts


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
    return ctx.encoders.submit(save_montage, matrices, labels, scale, len(steps),
                               heatmaps.layer_label(analysis.layer_blocks), ctx.out / MONTAGE,
                               ctx.options.image_format)


OUTPUT = Output("montage", "Montage of every analysed step", f"{MONTAGE}.<image format>", _render,
                per_step=_per_step)
