"""The picture of each step: its token x video-token heatmap, drawn during the streaming pass.

The picture's frame (axes, token and frame labels, axis labels, colour bar) is drawn once,
with numpy and PIL; each step's picture is that frame with the step's colours, title and
colour-bar values put in (see :class:`StepHeatmap`). The outputs that use it (steps, montage,
animation: :mod:`analyzer.outputs`) get each picture as it is drawn, never re-rendered.
No matplotlib: drawing the frame with it cost the analyzer's main process about a CPU
second before the first step, and importing it a third of a second more.

The pictures are palette images (:data:`PALETTE`: the colour map at :data:`LEVELS` levels and
:data:`GREYS` greys for the frame and its text). PIL writes a palette PNG in a fifth of the
time of an RGB one (2.5 against 12 ms for a 740 x 640 step picture), and the animation's GIF
frames need no quantising.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from analyzer import colour_tables, text
from analyzer.drawing import (Box, darken, fitted, line_height, nearest_cells, put_frame, rotated, write,
                              write_upwards)
from analyzer.fonts import font
from analyzer.ticks import round_ticks
from shared.schema import Attr
from shared.words import token_text

EXPERT_NAMES = {0: "high-noise expert", 1: "low-noise expert", -1: "expert unknown"}
HEATMAP_INFO = "heatmap"  # the key of Image.info holding the step's matrix (rows x tokens), for the montage
MAX_TOKEN_LABELS = 96
COLORMAP = "viridis"
_LUT = colour_tables.lut(COLORMAP)


# the layout, in pixels (what matplotlib's figure had at 100 dpi)
HEIGHT = 640
MARGIN = 10
TICK_LENGTH = 4  # the tick marks, outside the frame
TICK_PAD = 3  # between a tick mark and its label
LABEL_GAP = 8  # between tick labels and their axis's label
TITLE_GAP = 6  # between the title's descender line and the axes' frame
BAR_GAP = 15  # between the axes and the colour bar
BAR_WIDTH = 25
VALUE_PAD = 8  # from the colour bar's frame to its values: the tick mark and a gap
WIDEST_VALUE = "0.00000"  # the colour-bar values' room; a wider set of values is set smaller (render)
TITLE_PIXELS = 14
VALUE_PIXELS = 14
SMALLEST_VALUE_PIXELS = 8
AXIS_LABEL_PIXELS = 14  # the x label and the colour bar's label
Y_LABEL_PIXELS = 13  # two lines, so a little smaller
TICK_LABEL_PIXELS = 11  # the token and frame labels

# The step pictures' 256 colours: the colour map at LEVELS evenly spaced levels (first and last
# exact), then GREYS greys from black to white for the axes and the anti-aliased text.
LEVELS = 240
GREYS = 256 - LEVELS
_GREY_VALUES = np.linspace(0, 255, GREYS).round().astype(np.uint8)
PALETTE = np.concatenate([_LUT[np.linspace(0, 255, LEVELS).round().astype(np.intp)],
                          np.repeat(_GREY_VALUES[:, None], 3, axis=1)]).astype(np.uint8)
BLACK = LEVELS
# the palette index of each grey value 0..255 (text drawn black on white in an "L" layer)
GREY_INDEX = (LEVELS + np.round(np.arange(256) / 255 * (GREYS - 1))).astype(np.uint8)


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

    The frame (axes, token and frame labels, axis labels, colour bar) is drawn once, here, into
    :attr:`template` (palette indices); each step then only puts its matrix's palette indices into
    the axes (numpy) and writes the title and colour-bar values with PIL. Where each thing went is
    kept: :attr:`box` (the matrix's pixels; the black frame lies just outside), :attr:`colorbar_box`
    (framed the same way), :attr:`texts` (every text drawn here and its ink's box), and the rooms
    :meth:`render` writes in (:attr:`title_room`, :attr:`value_room`), so that tests can check the
    layout without reading pixels back.
    """

    def __init__(self, tokens: list[str], row_starts: np.ndarray, grid: tuple[int, int, int], layer_label: str):
        n_tokens, n_rows = len(tokens), len(row_starts)
        shown_tokens = list(range(0, n_tokens, max(1, math.ceil(n_tokens / MAX_TOKEN_LABELS))))
        token_labels = [text.plain_label(token_text(tokens[t]) or tokens[t], 16) for t in shown_tokens]
        frames, height, width = grid
        # the row holding each latent frame's first video token: its tick goes at that row's top
        frame_rows = np.searchsorted(row_starts, np.arange(frames) * height * width, side="right") - 1
        shown_frames = list(range(0, frames, max(1, math.ceil(frames / 24))))
        y_label = [f"video token (latent frame, y, x); {n_rows} row means", text.plain_label(layer_label, 80)]
        y_face = fitted(y_label, Y_LABEL_PIXELS, HEIGHT - 2 * MARGIN)

        self._lay_out(round(picture_width(n_tokens) * 100), token_labels, [f"f{f}" for f in shown_frames],
                      len(y_label) * line_height(y_face))
        left, upper, right, lower = self.box
        # nearest-neighbour scaling of the matrix onto the axes: how often each row and column repeats
        self._row_repeats = _repeats(n_rows, lower - upper)
        self._column_repeats = _repeats(n_tokens, right - left)

        # the texts and tick marks black on white in one grey layer that becomes the palette's greys
        layer = Image.new("L", (self._width, HEIGHT), 255)
        self.texts: list[tuple[str, Box]] = self._token_axis(layer, shown_tokens, token_labels)
        self.texts += self._frame_axis(layer, [int(frame_rows[f]) for f in shown_frames], shown_frames)
        self.texts += write_upwards(layer, y_label, y_face, MARGIN, (upper + lower) // 2, MARGIN)
        axis_face = font(AXIS_LABEL_PIXELS)
        self.texts += write_upwards(layer, ["attention weight"], axis_face,
                                    self._width - MARGIN - line_height(axis_face), (upper + lower) // 2, MARGIN)
        self.template = self._coloured(layer)
        self.title_font = font(TITLE_PIXELS)

    def _lay_out(self, width: int, token_labels: list[str], frame_labels: list[str], y_label_height: int) -> None:
        """Where everything goes: from the left, the y label, the frame labels and their ticks, the axes, the
        colour bar, its values, its label; from the top, the title, the axes, the token labels reading upwards
        under their ticks, the x label. The axes take what the texts leave."""
        tick_face, axis_line = font(TICK_LABEL_PIXELS), line_height(font(AXIS_LABEL_PIXELS))
        value_width = math.ceil(font(VALUE_PIXELS).getlength(WIDEST_VALUE))
        label_length = max((math.ceil(tick_face.getlength(label)) for label in token_labels), default=0) + 2
        frame_width = max(math.ceil(tick_face.getlength(label)) for label in frame_labels)
        left = MARGIN + y_label_height + LABEL_GAP + frame_width + TICK_PAD + TICK_LENGTH + 1
        upper = MARGIN + line_height(font(TITLE_PIXELS)) + TITLE_GAP
        lower = HEIGHT - MARGIN - axis_line - LABEL_GAP - label_length - TICK_PAD - TICK_LENGTH - 1
        bar_right = width - MARGIN - axis_line - LABEL_GAP - value_width - VALUE_PAD - 1
        right = bar_right - BAR_WIDTH - BAR_GAP
        value_half = math.ceil(line_height(font(VALUE_PIXELS)) / 2) + 1  # a value is centred on its tick
        self._width = width
        self.box: Box = (left, upper, right, lower)
        self.colorbar_box: Box = (bar_right - BAR_WIDTH, upper, bar_right, lower)
        self.title_room: Box = (left, upper - TITLE_GAP - line_height(font(TITLE_PIXELS)), right, upper - TITLE_GAP)
        self.value_room: Box = (bar_right + 1, upper - value_half, bar_right + 1 + VALUE_PAD + value_width,
                                lower + value_half)

    def _token_axis(self, layer: Image.Image, shown: list[int], labels: list[str]) -> list[tuple[str, Box]]:
        """The shown tokens' tick marks under the axes, each at its column's middle, and their labels."""
        left, _, right, lower = self.box
        edges = left + np.concatenate([[0], np.cumsum(self._column_repeats)])
        columns = [(int(edges[t]), int(edges[t + 1])) for t in shown]  # each shown token's pixels
        draw = ImageDraw.Draw(layer)
        for start, end in columns:
            draw.line(((start + end - 1) // 2, lower + 1, (start + end - 1) // 2, lower + TICK_LENGTH), fill=0)
        texts = _write_token_labels(layer, labels, [(start + end) / 2 for start, end in columns],
                                    font(TICK_LABEL_PIXELS), lower + 1 + TICK_LENGTH + TICK_PAD)
        under = ((left + right) // 2, HEIGHT - MARGIN)
        return texts + [write(draw, "text token (key)", font(AXIS_LABEL_PIXELS), under, "md")]

    def _frame_axis(self, layer: Image.Image, first_rows: list[int], frames: list[int]) -> list[tuple[str, Box]]:
        """The frames' tick marks left of the axes, at the top of each one's first row, and their labels "f0"...;
        a frame whose tick would crowd the last one labelled (rows shared or thin) goes without."""
        left, upper, _, _ = self.box
        row_tops = upper + np.concatenate([[0], np.cumsum(self._row_repeats)])
        ticks = [int(row_tops[row]) for row in first_rows]
        draw, texts = ImageDraw.Draw(layer), []
        for y, frame in _spaced(ticks, TICK_LABEL_PIXELS + 2, list(zip(ticks, frames))):
            draw.line((left - 1 - TICK_LENGTH, y, left - 2, y), fill=0)
            texts.append(write(draw, f"f{frame}", font(TICK_LABEL_PIXELS),
                                (left - 1 - TICK_LENGTH - TICK_PAD, y + 0.5), "rm"))
        return texts

    def _coloured(self, layer: Image.Image) -> np.ndarray:
        """The frame in palette indices: the grey layer's ink as greys, the axes' black frame, the colour bar."""
        pixels = GREY_INDEX[np.asarray(layer)]
        put_frame(pixels, self.box, BLACK)
        bar_left, upper, bar_right, lower = self.colorbar_box
        levels = np.round(np.linspace(LEVELS - 1, 0, lower - upper)).astype(np.uint8)  # the first at the bottom
        pixels[upper:lower, bar_left:bar_right] = levels[:, None]
        put_frame(pixels, self.colorbar_box, BLACK)
        return pixels

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

        # the text: black on white in grey layers over the strips where it goes, put in as palette greys
        title_bottom = self.title_room[3]
        layer = Image.new("L", (pixels.shape[1], title_bottom), 255)
        ImageDraw.Draw(layer).text(((left + right) / 2, title_bottom), title, fill=0, font=self.title_font,
                                   anchor="md")
        _ink(pixels, 0, 0, layer)
        self._put_values(pixels, scale)

        picture = Image.fromarray(pixels)
        picture.putpalette(PALETTE.tobytes())
        picture.info[HEATMAP_INFO] = np.asarray(matrix, dtype=np.float32)
        return picture

    def _put_values(self, pixels: np.ndarray, scale: float) -> None:
        """The colour bar's round values from 0 to ``scale``, each with its tick mark where it falls on the bar."""
        _, bar_upper, _, bar_lower = self.colorbar_box
        room_left, room_upper, room_right, room_lower = self.value_room
        ticks = round_ticks(scale)
        face = _value_font(tuple(label for _, label in ticks), room_right - room_left - VALUE_PAD)
        layer = Image.new("L", (room_right - room_left, room_lower - room_upper), 255)
        draw = ImageDraw.Draw(layer)
        for value, label in ticks:
            y = round(bar_lower - 1 - value / scale * (bar_lower - bar_upper - 1)) - room_upper
            draw.line((0, y, TICK_LENGTH - 1, y), fill=0)
            draw.text((VALUE_PAD, y + 0.5), label, fill=0, font=face, anchor="lm")
        _ink(pixels, room_upper, room_left, layer)


def _repeats(count: int, pixels: int) -> np.ndarray:
    """How many of ``pixels`` each of ``count`` cells covers, nearest-neighbour (as PIL's NEAREST resize)."""
    return np.bincount(nearest_cells(count, pixels), minlength=count)


def _ink(pixels: np.ndarray, top: int, left: int, layer: Image.Image) -> None:
    """Put the ink of a grey ``layer`` (black on white) into ``pixels`` at (top, left), as palette greys."""
    grey = np.asarray(layer)
    inked = grey < 255
    region = pixels[top:top + grey.shape[0], left:left + grey.shape[1]]
    region[inked] = GREY_INDEX[grey[inked]]


@lru_cache(maxsize=256)
def _value_font(labels: tuple[str, ...], room: int):
    """The colour-bar values' font (:func:`_fitted`), kept: steps often share their values, and measuring
    them costs nearly a tenth of the rest of a step's picture."""
    return fitted(list(labels), VALUE_PIXELS, room, SMALLEST_VALUE_PIXELS)


def _spaced(positions: list[int], gap: int, items: list) -> list:
    """The ``items`` (at increasing ``positions``) kept so that each is at least ``gap`` beyond the last kept:
    frames that share a row, or rows too thin for a label each, get one label."""
    kept, last = [], None
    for position, item in zip(positions, items):
        if last is None or position - last >= gap:
            kept.append(item)
            last = position
    return kept


def _write_token_labels(layer: Image.Image, labels: list[str], centres: list[float], face,
                        upper: int) -> list[tuple[str, Box]]:
    """The token labels reading upwards, each centred on its column, their last letters at ``upper`` (under the
    axes) as matplotlib sets turned tick labels: all set in one strip as wide as the picture is tall, turned once."""
    length = max((math.ceil(face.getlength(label)) for label in labels), default=0) + 2
    strip = Image.new("L", (length, layer.width), 255)
    draw = ImageDraw.Draw(strip)
    texts = []
    for label, centre in zip(labels, centres):
        if label:
            label, box = write(draw, label, face, (length - 1, centre), "rm")
            texts.append((label, rotated(box, length, 0, upper)))
    darken(layer, strip.transpose(Image.Transpose.ROTATE_90), (0, upper))
    return texts
