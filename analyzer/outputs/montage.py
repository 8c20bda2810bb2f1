"""montage: every analysed step's heatmap in one grid, each panel made at its cell size as the step is drawn."""

from __future__ import annotations

import math
from concurrent.futures import Future

from PIL import Image, ImageDraw

from analyzer import output, text
from analyzer.fonts import font
from analyzer.outputs.registry import Context, Output, Plan, StepJob

MONTAGE = "attention_montage"
MAX_WIDTH = 2400
MAX_PANEL_WIDTH = 800


def columns(count: int) -> int:
    return max(1, math.ceil(math.sqrt(count)))


def cell_width(count: int, max_width: int = MAX_WIDTH) -> int:
    """Width of each cell of a montage of ``count`` panels: known before any step is drawn."""
    return min(MAX_PANEL_WIDTH, max_width // columns(count))


def panel(image: Image.Image, index: int, width: int) -> Image.Image:
    """One step's panel at its cell size (an encoder job, on each step): what is kept per step stays small."""
    return output.fit_width(image, width)


def montage(panels: list[Image.Image], labels: list[str], max_width: int = MAX_WIDTH) -> Image.Image:
    """All step images in one grid, each with its label above it."""
    count = len(panels)
    n_columns = columns(count)
    rows = math.ceil(count / n_columns)
    cell_w = min(max(p.width for p in panels), max_width // n_columns)
    scaled = [output.fit_width(p, cell_w) for p in panels]
    cell_h = max(p.height for p in scaled)
    label_h = 22
    sheet = Image.new("RGB", (n_columns * cell_w, rows * (cell_h + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    label_font = font(14)
    for i, (scaled_panel, label) in enumerate(zip(scaled, labels)):
        x, y = (i % n_columns) * cell_w, (i // n_columns) * (cell_h + label_h)
        draw.text((x + 4, y + 3), text.plain_label(label, 60), fill="black", font=label_font)
        sheet.paste(scaled_panel, (x, y + label_h))
    return sheet


def _per_step(plan: Plan) -> StepJob:
    return panel, (cell_width(len(plan.selection.steps)),)


def _render(ctx: Context) -> Future:
    labels = [f"step {s.index}  t={s.timestep:.0f}" for s in ctx.analysis.stats.steps]
    return ctx.encoders.submit(output.save_image, montage(ctx.step_values["montage"], labels), ctx.out / MONTAGE,
                               ctx.options.image_format)


OUTPUT = Output("montage", "Montage of every analysed step", f"{MONTAGE}.<image format>", _render,
                per_step=_per_step)
