"""The picture of each step: its token x video-token heatmap, drawn during the streaming pass.

matplotlib draws the figure's frame once; each step's picture is that frame with the
step's colours, title and colour-bar values put in by PIL (see :class:`StepHeatmap`).
The outputs that use it (steps, montage, animation: :mod:`analyzer.outputs`) get each
picture as it is drawn, never re-rendered.
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageDraw

from analyzer import text
from analyzer.fonts import font
from shared.schema import Attr
from shared.words import token_text

EXPERT_NAMES = {0: "high-noise expert", 1: "low-noise expert", -1: "expert unknown"}
HEATMAP_INFO = "heatmap"  # the key of Image.info holding the step's matrix (rows x tokens), for the montage
MAX_TOKEN_LABELS = 96
COLORMAP = "viridis"
COLORBAR_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
_LUT = (matplotlib.colormaps[COLORMAP](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)


def two_experts(attrs: dict, experts=()) -> bool:
    """Whether the model has two experts (Wan 2.2): the store names a boundary, or a step ran on expert 1.

    Wan 2.1 has one transformer: ``steps/expert`` is 0 everywhere and ``expert_boundary`` is null,
    and no picture names an expert there.
    """
    return attrs.get(Attr.EXPERT_BOUNDARY) is not None or any(int(e) == 1 for e in experts)


def expert_name(expert: int) -> str:
    return EXPERT_NAMES.get(expert, f"expert {expert}")


def step_title(index: int, timestep: float, expert: int, two_experts: bool | None = None) -> str:
    """A step picture's title; the expert only when the model is known to have two (``two_experts``)."""
    title = f"step {index}   t = {timestep:.1f}"
    return f"{title}   {expert_name(expert)}" if two_experts else title


def layer_label(blocks: list[int]) -> str:
    """The heatmaps' description of the layers shown."""
    if blocks == [-1]:
        return f"{text.block_label(-1)} (as recorded)"
    if len(blocks) == 1:
        return f"layer: block {blocks[0]}"
    return f"mean over {len(blocks)} layers (blocks {blocks[0]}..{blocks[-1]})"


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
        colorbar.ax.tick_params(length=0)  # PIL draws each step's round ticks where its values fall
        every = max(1, math.ceil(n_tokens / MAX_TOKEN_LABELS))
        ticks = list(range(0, n_tokens, every))
        ax.set_xticks(ticks, [text.label(token_text(tokens[t]) or tokens[t], 16) for t in ticks], rotation=90,
                      fontsize=8)
        ax.set_xlabel("text token (key)")

        frames, height, width_ = grid
        frame_rows = np.searchsorted(row_starts, np.arange(frames) * height * width_, side="right") - 1
        shown = list(range(0, frames, max(1, math.ceil(frames / 24))))
        ax.set_yticks([frame_rows[f] - 0.5 for f in shown], [f"f{f}" for f in shown], fontsize=7)
        ax.set_ylabel(f"video token (latent frame, y, x); {n_rows} row means\n{layer_label}", fontsize=9)
        ax.set_title(step_title(0, 1000.0, 1, True), fontsize=10)  # reserves the title's room in the layout
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
        """The heatmap of ``matrix``, coloured from 0 to its maximum, with round colour-bar ticks.

        The matrix rides along in ``Image.info`` (:data:`HEATMAP_INFO`) for the montage, which
        draws every step on one colour scale.
        """
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
        for value, label in round_ticks(top if top > 0 else 1.0):
            y = c_lower - value / scale * (c_lower - c_upper)
            draw.line((c_right, y, c_right + 4, y), fill="black")
            draw.text((c_right + 8, y), label, fill="black", font=self.tick_font, anchor="lm")
        out.info[HEATMAP_INFO] = np.asarray(matrix, dtype=np.float32)
        return out


def round_ticks(top: float, count: int = 5) -> list[tuple[float, str]]:
    """Round values from 0 to ``top`` (at most ``count`` + 1 of them) and their labels, as matplotlib picks them."""
    values = [v for v in MaxNLocator(nbins=count, steps=[1, 2, 2.5, 5, 10]).tick_values(0.0, top)
              if -1e-12 <= v <= top * (1 + 1e-9)]
    step = values[1] - values[0] if len(values) > 1 else top
    digits = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    if step > 0 and round(step, digits) != round(step, digits + 1):
        digits += 1
    return [(v, f"{v:.{digits}f}") for v in values]


def _pixel_box(ax, canvas) -> tuple[int, int, int, int]:
    """(left, upper, right, lower) of an axes in image pixels (matplotlib counts y from the bottom)."""
    bbox = ax.get_window_extent(renderer=canvas.get_renderer())
    height = canvas.get_width_height()[1]
    return round(bbox.x0), round(height - bbox.y1), round(bbox.x1), round(height - bbox.y0)
