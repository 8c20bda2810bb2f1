"""The picture of each step: its token x video-token heatmap, drawn during the streaming pass.

matplotlib draws the figure's frame once; each step's picture is that frame with the
step's colours, title and colour-bar values put in with numpy and PIL (see :class:`StepHeatmap`).
The outputs that use it (steps, montage, animation: :mod:`analyzer.outputs`) get each
picture as it is drawn, never re-rendered.

The pictures are palette images (:data:`PALETTE`: the colour map at :data:`LEVELS` levels and
:data:`GREYS` greys for the frame and its text). PIL writes a palette PNG in a fifth of the
time of an RGB one (2.5 against 12 ms for a 740 x 640 step picture), and the animation's GIF
frames need no quantising.
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageDraw

from analyzer import fonts, text
from analyzer.fonts import font
from shared.schema import Attr
from shared.words import token_text

EXPERT_NAMES = {0: "high-noise expert", 1: "low-noise expert", -1: "expert unknown"}
HEATMAP_INFO = "heatmap"  # the key of Image.info holding the step's matrix (rows x tokens), for the montage
MAX_TOKEN_LABELS = 96
COLORMAP = "viridis"
COLORBAR_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
_LUT = (matplotlib.colormaps[COLORMAP](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)

# The step pictures' 256 colours: the colour map at LEVELS evenly spaced levels (first and last
# exact), then GREYS greys from black to white for the axes and the anti-aliased text.
LEVELS = 240
GREYS = 256 - LEVELS
_GREY_VALUES = np.linspace(0, 255, GREYS).round().astype(np.uint8)
PALETTE = np.concatenate([_LUT[np.linspace(0, 255, LEVELS).round().astype(np.intp)],
                          np.repeat(_GREY_VALUES[:, None], 3, axis=1)]).astype(np.uint8)
BLACK = LEVELS
# the palette index of each grey value 0..255 (text drawn black on white in an "L" layer)
_GREY_INDEX = (LEVELS + np.round(np.arange(256) / 255 * (GREYS - 1))).astype(np.uint8)


def palette_image() -> Image.Image:
    """A 1x1 image carrying :data:`PALETTE`, for ``Image.quantize(palette=...)``."""
    image = Image.new("P", (1, 1))
    image.putpalette(PALETTE.tobytes())
    return image


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


def picture_width(n_tokens: int) -> float:
    """The step picture's width in inches (100 pixels each): 0.2 inch per token, so that up to 33 tokens
    fit the animation's 800-pixel frames unscaled."""
    return min(max(6.0, 1.4 + 0.2 * min(n_tokens, MAX_TOKEN_LABELS)), 26.0)


class StepHeatmap:
    """Renders one step's (rows x tokens) matrix as a labelled heatmap image, each with its own colour scale.

    matplotlib draws the frame once (axes, token labels, colour bar); each step then only
    puts its matrix's palette indices into the axes (numpy) and writes the title and
    colour-bar values with PIL. A full matplotlib draw per step would cost ten times the read
    of that step.
    """

    @fonts.collector_paused()  # the frame's figure: thousands of objects, all kept until drawn
    def __init__(self, tokens: list[str], row_starts: np.ndarray, grid: tuple[int, int, int], layer_label: str):
        n_tokens, n_rows = len(tokens), len(row_starts)
        figure = fonts.LeanFigure(figsize=(picture_width(n_tokens), 6.4), dpi=100)
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
        rgb = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3])
        self.template = np.asarray(rgb.quantize(palette=palette_image(), dither=Image.Dither.NONE)).copy()
        self.box = left, upper, right, lower = _pixel_box(ax, canvas)
        self.colorbar_box = _pixel_box(colorbar.ax, canvas)
        # nearest-neighbour scaling of the matrix onto the axes: how often each row and column repeats
        self._row_repeats = _repeats(n_rows, lower - upper)
        self._column_repeats = _repeats(n_tokens, right - left)
        self.title_font = font(14)
        self.tick_font = font(14)

    def render(self, matrix: np.ndarray, title: str) -> Image.Image:
        """The heatmap of ``matrix``, coloured from 0 to its maximum, with round colour-bar ticks.

        The matrix rides along in ``Image.info`` (:data:`HEATMAP_INFO`) for the montage, which
        draws every step on one colour scale.
        """
        top = float(matrix.max()) if matrix.size else 0.0
        scale = top if top > 0 else 1.0
        levels = np.clip(matrix * ((LEVELS - 1) / scale) + 0.5, 0, LEVELS - 1).astype(np.uint8)
        pixels = self.template.copy()
        left, upper, right, lower = self.box
        pixels[upper:lower, left:right] = np.repeat(np.repeat(levels, self._row_repeats, axis=0),
                                                    self._column_repeats, axis=1)
        pixels[[upper - 1, lower], left - 1:right + 1] = BLACK  # the axes' frame
        pixels[upper - 1:lower + 1, [left - 1, right]] = BLACK

        # the text: black on white in grey layers over the strips where it goes, put in as palette greys
        width = pixels.shape[1]
        layer = Image.new("L", (width, upper - 1), 255)
        ImageDraw.Draw(layer).text(((left + right) / 2, upper - 6), title, fill=0, font=self.title_font, anchor="md")
        _ink(pixels, 0, 0, layer)
        c_left, c_upper, c_right, c_lower = self.colorbar_box
        strip_top, strip_bottom = max(0, c_upper - 10), min(pixels.shape[0], c_lower + 10)
        layer = Image.new("L", (width - c_right, strip_bottom - strip_top), 255)
        draw = ImageDraw.Draw(layer)
        for value, label in round_ticks(scale):
            y = c_lower - strip_top - value / scale * (c_lower - c_upper)
            draw.line((0, y, 4, y), fill=0)
            draw.text((8, y), label, fill=0, font=self.tick_font, anchor="lm")
        _ink(pixels, strip_top, c_right, layer)

        picture = Image.fromarray(pixels)
        picture.putpalette(PALETTE.tobytes())
        picture.info[HEATMAP_INFO] = np.asarray(matrix, dtype=np.float32)
        return picture


def round_ticks(top: float, count: int = 5, bottom: float = 0.0) -> list[tuple[float, str]]:
    """Round values from ``bottom`` to ``top`` (at most ``count`` + 1 of them) and their labels, as matplotlib
    picks them; the labels have as many decimals as the step between them needs."""
    values = [v for v in MaxNLocator(nbins=count, steps=[1, 2, 2.5, 5, 10]).tick_values(bottom, top)
              if bottom - 1e-12 - abs(bottom) * 1e-9 <= v <= top + 1e-12 + abs(top) * 1e-9]
    step = values[1] - values[0] if len(values) > 1 else abs(top - bottom) or abs(top)
    digits = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    if step > 0 and round(step, digits) != round(step, digits + 1):
        digits += 1
    return [(v, f"{v:.{digits}f}") for v in values]


def _repeats(count: int, pixels: int) -> np.ndarray:
    """How many of ``pixels`` each of ``count`` cells covers, nearest-neighbour (as PIL's NEAREST resize)."""
    source = ((np.arange(pixels) + 0.5) * (count / pixels)).astype(np.intp)
    return np.bincount(np.minimum(source, count - 1), minlength=count)


def _ink(pixels: np.ndarray, top: int, left: int, layer: Image.Image) -> None:
    """Put the ink of a grey ``layer`` (black on white) into ``pixels`` at (top, left), as palette greys."""
    grey = np.asarray(layer)
    inked = grey < 255
    region = pixels[top:top + grey.shape[0], left:left + grey.shape[1]]
    region[inked] = _GREY_INDEX[grey[inked]]


def _pixel_box(ax, canvas) -> tuple[int, int, int, int]:
    """(left, upper, right, lower) of an axes in image pixels (matplotlib counts y from the bottom)."""
    bbox = ax.get_window_extent(renderer=canvas.get_renderer())
    height = canvas.get_width_height()[1]
    return round(bbox.x0), round(height - bbox.y1), round(bbox.x1), round(height - bbox.y0)
