"""The classic per-step pictures: token x video-token heatmaps, their montage and GIF.

matplotlib draws the figure's frame once; each step's picture is that frame with the
step's colours, title and colour-bar values put in by PIL (see :class:`StepHeatmap`).
The montage and GIF are assembled with PIL from the rendered steps, never re-rendered.
"""

from __future__ import annotations

import io
import math

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from analyzer import text
from analyzer.fonts import font

EXPERT_NAMES = {0: "high-noise expert", 1: "low-noise expert", -1: "expert unknown"}
MAX_TOKEN_LABELS = 96
COLORMAP = "viridis"
COLORBAR_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
ANIMATION_WIDTH = 800
MONTAGE_WIDTH = 2400
_LUT = (matplotlib.colormaps[COLORMAP](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)


def step_title(index: int, timestep: float, expert: int) -> str:
    return f"step {index}   t = {timestep:.1f}   {EXPERT_NAMES.get(expert, f'expert {expert}')}"


class StepHeatmap:
    """Renders one step's (rows x tokens) matrix as a labelled heatmap image, each with its own colour scale.

    matplotlib draws the frame once (axes, token labels, colour bar); each step then only
    pastes its coloured matrix into the axes and writes the title and colour-bar values
    with PIL. A full matplotlib draw per step would cost ten times the read of that step.
    """

    def __init__(self, tokens: list[str], row_starts: np.ndarray, grid: tuple[int, int, int], layer_label: str):
        n_tokens, n_rows = len(tokens), len(row_starts)
        width = min(max(6.0, 1.6 + 0.22 * min(n_tokens, MAX_TOKEN_LABELS)), 26.0)
        figure = Figure(figsize=(width, 6.4), dpi=100)
        canvas = FigureCanvasAgg(figure)
        ax = figure.add_subplot()
        image = ax.imshow(np.zeros((n_rows, n_tokens), dtype=np.float32), aspect="auto",
                          interpolation="nearest", cmap=COLORMAP, vmin=0.0, vmax=1.0)
        colorbar = figure.colorbar(image, ax=ax, label="attention weight", fraction=0.05, pad=0.02)
        colorbar.set_ticks(list(COLORBAR_FRACTIONS), labels=["0.00000"] * len(COLORBAR_FRACTIONS))
        every = max(1, math.ceil(n_tokens / MAX_TOKEN_LABELS))
        ticks = list(range(0, n_tokens, every))
        ax.set_xticks(ticks, [text.label(tokens[t], 16) for t in ticks], rotation=90, fontsize=8)
        ax.set_xlabel("text token (key)")

        frames, height, width_ = grid
        frame_rows = np.searchsorted(row_starts, np.arange(frames) * height * width_, side="right") - 1
        shown = list(range(0, frames, max(1, math.ceil(frames / 24))))
        ax.set_yticks([frame_rows[f] - 0.5 for f in shown], [f"f{f}" for f in shown], fontsize=7)
        ax.set_ylabel(f"video token (latent frame, y, x); {n_rows} row means\n{layer_label}", fontsize=9)
        ax.set_title(step_title(0, 1000.0, -1), fontsize=10)  # reserves the title's room in the layout
        figure.tight_layout()
        ax.set_title("")
        # invisible, not removed: the colour bar's label keeps its place beside the values PIL writes
        colorbar.ax.tick_params(labelcolor="none")
        canvas.draw()
        self.template = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy())
        self.box = _pixel_box(ax, canvas)
        self.colorbar_box = _pixel_box(colorbar.ax, canvas)
        self.title_font = font(14)
        self.tick_font = font(14)

    def render(self, matrix: np.ndarray, title: str) -> Image.Image:
        """The heatmap of ``matrix``, coloured from 0 to its maximum."""
        top = float(matrix.max()) if matrix.size else 0.0
        scale = top if top > 0 else 1.0
        index = np.clip(matrix / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
        left, upper, right, lower = self.box
        picture = Image.fromarray(_LUT[index]).resize((right - left, lower - upper), Image.Resampling.NEAREST)
        out = self.template.copy()
        out.paste(picture, (left, upper))
        draw = ImageDraw.Draw(out)
        draw.rectangle((left - 1, upper - 1, right, lower), outline="black")
        draw.text(((left + right) / 2, upper - 6), title, fill="black", font=self.title_font, anchor="md")
        c_left, c_upper, c_right, c_lower = self.colorbar_box
        for fraction in COLORBAR_FRACTIONS:
            y = c_lower - fraction * (c_lower - c_upper)
            draw.text((c_right + 8, y), f"{fraction * top:.3g}", fill="black", font=self.tick_font, anchor="lm")
        return out


def _pixel_box(ax, canvas) -> tuple[int, int, int, int]:
    """(left, upper, right, lower) of an axes in image pixels (matplotlib counts y from the bottom)."""
    bbox = ax.get_window_extent(renderer=canvas.get_renderer())
    height = canvas.get_width_height()[1]
    return round(bbox.x0), round(height - bbox.y1), round(bbox.x1), round(height - bbox.y0)


def thumbnail(image: Image.Image, max_width: int) -> Image.Image:
    if image.width <= max_width:
        return image.copy()
    height = round(image.height * max_width / image.width)
    # bilinear: the panels shrink by a few percent, where Lanczos costs twice as much for nothing
    return image.resize((max_width, height), Image.Resampling.BILINEAR)


def save_step_picture(image: Image.Image, path, image_format: str, save: bool, montage_width: int | None,
                      animation: bool) -> tuple[object, Image.Image | None, bytes | None]:
    """Write one step's picture (if ``save``); return (path or None, montage panel or None, animation frame or None).

    The montage panel is already at its cell size and the animation frame is a lightly
    compressed PNG, so what the caller keeps per step is small whatever the number of steps.
    A job for :class:`analyzer.encoders.Encoders`: encoding is the costly part of a step.
    """
    from analyzer import output

    written = output.save_image(image, path, image_format) if save else None
    panel = thumbnail(image, montage_width) if montage_width else None
    frame = None
    if animation:
        buffer = io.BytesIO()
        thumbnail(image, ANIMATION_WIDTH).save(buffer, format="PNG", compress_level=1)
        frame = buffer.getvalue()
    return written, panel, frame


def montage_columns(count: int) -> int:
    return max(1, math.ceil(math.sqrt(count)))


def montage_cell_width(count: int, panel_width: int = ANIMATION_WIDTH, max_width: int = MONTAGE_WIDTH) -> int:
    """Width of each cell of a montage of ``count`` panels: known before any step is drawn."""
    return min(panel_width, max_width // montage_columns(count))


def montage(panels: list[Image.Image], labels: list[str], max_width: int = MONTAGE_WIDTH) -> Image.Image:
    """All step images in one grid, each with its label above it."""
    count = len(panels)
    columns = montage_columns(count)
    rows = math.ceil(count / columns)
    cell_w = min(max(p.width for p in panels), max_width // columns)
    scaled = [thumbnail(p, cell_w) for p in panels]
    cell_h = max(p.height for p in scaled)
    label_h = 22
    sheet = Image.new("RGB", (columns * cell_w, rows * (cell_h + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    label_font = font(14)
    for i, (panel, label) in enumerate(zip(scaled, labels)):
        x, y = (i % columns) * cell_w, (i // columns) * (cell_h + label_h)
        draw.text((x + 4, y + 3), text.plain_label(label, 60), fill="black", font=label_font)
        sheet.paste(panel, (x, y + label_h))
    return sheet
