"""The classic per-step pictures: token x video-token heatmaps, their montage and GIF.

One matplotlib figure is built once and reused for every step (only the image data,
colour limits and title change), because laying a figure out costs more than drawing it.
The montage and GIF are assembled with PIL from the rendered steps, never re-rendered.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # no display on a laptop over ssh, and no GUI toolkit import
import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from analyzer import text  # noqa: E402
from analyzer.fonts import font  # noqa: E402

EXPERT_NAMES = {0: "high-noise expert", 1: "low-noise expert", -1: "expert unknown"}
MAX_TOKEN_LABELS = 96


def step_title(index: int, timestep: float, expert: int) -> str:
    return f"step {index}   t = {timestep:.1f}   {EXPERT_NAMES.get(expert, f'expert {expert}')}"


class StepHeatmap:
    """Renders one step's (rows x tokens) matrix as a labelled heatmap image."""

    def __init__(self, tokens: list[str], row_starts: np.ndarray, grid: tuple[int, int, int], layer_label: str):
        n_tokens, n_rows = len(tokens), len(row_starts)
        width = min(max(6.0, 1.6 + 0.22 * min(n_tokens, MAX_TOKEN_LABELS)), 26.0)
        self.figure = Figure(figsize=(width, 6.4), dpi=100)
        self.canvas = FigureCanvasAgg(self.figure)
        ax = self.figure.add_subplot()
        self.image = ax.imshow(np.zeros((n_rows, n_tokens), dtype=np.float32), aspect="auto",
                               interpolation="nearest", cmap="viridis", vmin=0.0, vmax=1.0)
        self.figure.colorbar(self.image, ax=ax, label="attention weight", fraction=0.05, pad=0.02)
        every = max(1, math.ceil(n_tokens / MAX_TOKEN_LABELS))
        ticks = list(range(0, n_tokens, every))
        ax.set_xticks(ticks, [text.label(tokens[t], 16) for t in ticks], rotation=90, fontsize=8)
        ax.set_xlabel("text token (key)")

        frames, height, width_ = grid
        per_frame = height * width_
        frame_rows = np.searchsorted(row_starts, np.arange(frames) * per_frame, side="right") - 1
        f_every = max(1, math.ceil(frames / 24))
        shown = list(range(0, frames, f_every))
        ax.set_yticks([frame_rows[f] - 0.5 for f in shown], [f"f{f}" for f in shown], fontsize=7)
        ax.set_ylabel(f"video token (latent frame, y, x); {n_rows} row means\n{layer_label}", fontsize=9)
        self.title = ax.set_title(step_title(0, 0.0, 0), fontsize=10)
        self.figure.tight_layout()

    def render(self, matrix: np.ndarray, title: str) -> Image.Image:
        """The heatmap of ``matrix`` with its own colour scale (0 to its maximum)."""
        self.image.set_data(matrix)
        top = float(matrix.max()) if matrix.size else 1.0
        self.image.set_clim(0.0, top if top > 0 else 1.0)
        self.title.set_text(title)
        self.canvas.draw()
        return Image.fromarray(np.asarray(self.canvas.buffer_rgba())[..., :3].copy())


def thumbnail(image: Image.Image, max_width: int) -> Image.Image:
    if image.width <= max_width:
        return image.copy()
    height = round(image.height * max_width / image.width)
    return image.resize((max_width, height), Image.Resampling.LANCZOS)


def montage(panels: list[Image.Image], labels: list[str], max_width: int = 2400) -> Image.Image:
    """All step images in one grid, each with its label above it."""
    count = len(panels)
    columns = max(1, math.ceil(math.sqrt(count)))
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
