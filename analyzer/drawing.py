"""Text and frames on the palette pictures drawn with PIL (the step pictures, the montage).

Texts are written black on white into a grey ("L") layer that the picture later maps onto its
palette's greys; each write returns the text with the box its ink may cover, so that tests can
check a layout (inside the picture, texts apart) without reading pixels back.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from analyzer.fonts import font

Box = tuple[int, int, int, int]  # (left, upper, right, lower) in image pixels, right and lower exclusive


def line_height(face) -> int:
    """The height of one line of ``face``: its ascent and descent."""
    ascent, descent = face.getmetrics()
    return ascent + descent


def write(draw: ImageDraw.ImageDraw, text: str, face, at: tuple[float, float], anchor: str) -> tuple[str, Box]:
    """Write ``text`` in black at ``at`` (PIL's ``anchor``); return it with its ink's box."""
    draw.text(at, text, fill=0, font=face, anchor=anchor)
    left, upper, right, lower = draw.textbbox(at, text, font=face, anchor=anchor)
    # outwards: text set at a fraction of a pixel inks the pixels it touches
    return text, (math.floor(left), math.floor(upper), math.ceil(right), math.ceil(lower))


def fitted(lines: list[str], size: int, room: int, smallest: int = 8):
    """The font, the largest from ``size`` down to ``smallest`` pixels, at which every line fits ``room``
    (the smallest when none does)."""
    for pixels in range(size, smallest - 1, -1):
        face = font(pixels)
        if all(face.getlength(line) <= room for line in lines):
            break
    return face


def write_upwards(layer: Image.Image, lines: list[str], face, left: int, middle: int,
                  margin: int) -> list[tuple[str, Box]]:
    """``lines`` reading upwards, the first on the left, from ``left``, centred on ``middle`` but kept
    ``margin`` pixels inside the picture."""
    step = line_height(face)
    strip = Image.new("L", (max(math.ceil(face.getlength(line)) for line in lines) + 2, step * len(lines)), 255)
    draw = ImageDraw.Draw(strip)
    boxes = [write(draw, line, face, (strip.width / 2, i * step), "ma")[1] for i, line in enumerate(lines)]
    upright = strip.transpose(Image.Transpose.ROTATE_90)
    upper = min(max(margin, middle - upright.height // 2), layer.height - margin - upright.height)
    darken(layer, upright, (left, upper))
    return [(line, rotated(box, strip.width, left, upper)) for line, box in zip(lines, boxes)]


def rotated(box: Box, strip_width: int, left: int, upper: int) -> Box:
    """Where ``box`` of a strip ``strip_width`` wide lands once the strip is turned a quarter to the left
    (reading upwards) and put at (left, upper)."""
    box_left, box_upper, box_right, box_lower = box
    return left + box_upper, upper + strip_width - box_right, left + box_lower, upper + strip_width - box_left


def darken(layer: Image.Image, part: Image.Image, at: tuple[int, int]) -> None:
    """Put ``part`` (black on white) into ``layer`` at ``at``, over what is there rather than instead of it."""
    box = (at[0], at[1], at[0] + part.width, at[1] + part.height)
    layer.paste(ImageChops.darker(layer.crop(box), part), box)


def put_frame(pixels: np.ndarray, box: Box, colour: int) -> None:
    """A one-pixel frame of palette index ``colour`` just outside ``box``."""
    left, upper, right, lower = box
    pixels[[upper - 1, lower], left - 1:right + 1] = colour
    pixels[upper - 1:lower + 1, [left - 1, right]] = colour


def nearest_cells(count: int, pixels: int) -> np.ndarray:
    """Which of ``count`` cells each of ``pixels`` shows when the cells are scaled onto them nearest-neighbour
    (as PIL's NEAREST resize)."""
    return np.minimum(((np.arange(pixels) + 0.5) * (count / pixels)).astype(np.intp), count - 1)
