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

from analyzer import heatmaps, output
from analyzer.options import MONTAGE_SCALES
from analyzer.outputs.registry import Context, Output, Plan, StepJob

MONTAGE = "attention_montage"
MAX_PANELS = 100
MAX_COLUMNS = 10
PANEL_ROWS = 96  # rows kept per step (the heatmap's rows averaged in blocks): the montage's panels are small
SCALES = MONTAGE_SCALES
COLORMAP = heatmaps.COLORMAP


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


def montage_figure(matrices: list[np.ndarray], labels: list[str], scale: str = "shared",
                   total: int | None = None, layers: str = "") -> Figure:
    """The grid of step heatmaps. matrices: (rows, tokens) each; labels: one per panel (its step)."""
    count = len(matrices)
    total = count if total is None else total
    n_columns = columns(count)
    n_rows = math.ceil(count / n_columns)
    panel_w = min(4.2, 20.0 / n_columns)
    panel_h = panel_w * 0.72
    width = max(7.5, n_columns * panel_w + 1.6)
    figure = Figure(figsize=(width, n_rows * (panel_h + 0.3) + 2.2), dpi=100, layout="constrained")
    axes = figure.subplots(n_rows, n_columns, squeeze=False)
    shared = scale != "per-panel"
    top = max((float(m.max()) for m in matrices if m.size), default=1.0) or 1.0
    image = None
    label_size = 11 if panel_w >= 3 else 9
    for i, ax in enumerate(axes.ravel()):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= count:
            ax.set_axis_off()
            continue
        matrix = matrices[i]
        if not shared:
            own = float(matrix.max()) if matrix.size else 0.0
            matrix = matrix / own if own > 0 else matrix
        image = ax.imshow(matrix, aspect="auto", interpolation="nearest", cmap=COLORMAP, vmin=0.0,
                          vmax=top if shared else 1.0)
        ax.set_title(labels[i], fontsize=label_size, pad=3)
    if image is not None:
        bar = figure.colorbar(image, ax=axes.ravel().tolist(), shrink=min(1.0, 0.35 + 0.15 * n_rows),
                              aspect=30)
        bar.set_label("attention weight (one scale for every panel)" if shared
                      else "fraction of the panel's own maximum", fontsize=10)
    subset = f", {count} of {total} steps evenly spaced" if count < total else ""
    figure.suptitle(f"Cross-attention of each analysed step{subset}: "
                    f"{'shared colour scale' if shared else 'each panel on its own scale'}", fontsize=13)
    how = ("How to read: one panel per denoising step, first at the top left. In each panel x = the text tokens "
           "in prompt order, y = the video tokens frame by frame (first latent frame at the top); brighter = more "
           "attention. Token names are on each step's own picture (attention_step_NNN).")
    if layers:
        how += f" Layers: {layers}."
    figure.supxlabel("\n".join(textwrap.wrap(how, max(60, int(width * 13)))), fontsize=9)
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
