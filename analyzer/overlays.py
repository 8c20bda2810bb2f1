"""Per-word maps laid over the decoded frames: the drawing of the word animations, contact sheet and segmentation map.

Latent frame f covers pixel frames ``pixel_frames[f]`` (0 -> [0, 0], f >= 1 -> [4f-3, 4f]);
its (H', W') map is upsampled bilinearly to the frame. Colours come from a 256-entry
lookup table, so a frame costs a few array operations and no matplotlib call.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw

from analyzer import text
from analyzer.fonts import font

OVERLAY_ALPHA = 0.65
# A frame the store does not hold is drawn as this grey, labelled, never as a black frame
# (zarr reads a missing chunk back as zeros, which would look like a recorded dark scene).
NOT_RECORDED_GREY = 128
NOT_RECORDED_LABEL = "frame not recorded"
_HEAT_LUT = (colormaps["turbo"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.float32)
# 60 distinct colours; beyond that they repeat, and the legend says so
_SEGMENT_COLOURS = (np.asarray([colormaps[name](i)[:3] for name in ("tab20", "tab20b", "tab20c") for i in range(20)])
                    * 255).astype(np.uint8)
SEGMENT_COLOUR_COUNT = len(_SEGMENT_COLOURS)


def latent_frame_of(pixel_frames: list[tuple[int, int]], num_video_frames: int) -> np.ndarray:
    """For each pixel frame of the video, the latent frame whose map describes it."""
    owner = np.full(num_video_frames, len(pixel_frames) - 1, dtype=np.int64)
    for f, (first, last) in reversed(list(enumerate(pixel_frames))):
        owner[max(first, 0):min(last, num_video_frames - 1) + 1] = f
    return owner


def overlay_size(height: int, width: int, max_width: int) -> tuple[int, int]:
    """(width, height) of overlay frames: the video's aspect, at most ``max_width`` wide."""
    if width <= max_width:
        return width, height
    return max_width, max(1, round(height * max_width / width))


def upsample(latent_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of an (H', W') map to ``size`` = (width, height)."""
    image = Image.fromarray(np.ascontiguousarray(latent_map, dtype=np.float32), mode="F")
    return np.asarray(image.resize(size, Image.Resampling.BILINEAR))


def heat_layer(heat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The colour (premultiplied by its opacity) and the frame's remaining weight for ``heat`` in [0, 1].

    Computed once per latent frame and reused for the pixel frames it covers.
    """
    index = np.clip(heat * 255.0, 0, 255).astype(np.uint8)
    alpha = (OVERLAY_ALPHA * heat)[..., None].astype(np.float32)
    return _HEAT_LUT[index] * alpha, 1.0 - alpha


def blend(frame: np.ndarray, layer: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``frame`` (h, w, 3) uint8 under a :func:`heat_layer`; zero heat leaves the frame as it is."""
    colour, keep = layer
    return np.clip(frame * keep + colour + 0.5, 0, 255).astype(np.uint8)


def segment_colour(unit: int) -> tuple[int, int, int]:
    return tuple(int(c) for c in _SEGMENT_COLOURS[unit % len(_SEGMENT_COLOURS)])


def segment_overlay(frame: np.ndarray, winners: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``frame`` with each location tinted by the colour of its winning unit (nearest upsampling).

    Colours are looked up on the latent grid and the RGB picture is resized, so any number
    of units works (an 8-bit index picture would wrap above 256).
    """
    latent_colours = _SEGMENT_COLOURS[np.asarray(winners, dtype=np.int64) % len(_SEGMENT_COLOURS)]
    image = Image.fromarray(np.ascontiguousarray(latent_colours), mode="RGB").resize(size, Image.Resampling.NEAREST)
    colours = np.asarray(image).astype(np.float32)
    return np.clip(frame.astype(np.float32) * 0.45 + colours * 0.55 + 0.5, 0, 255).astype(np.uint8)


def caption(frame: np.ndarray, line: str) -> Image.Image:
    """``frame`` with a one-line caption strip above it."""
    label_font = font(13)
    image = Image.new("RGB", (frame.shape[1], frame.shape[0] + 20), "black")
    image.paste(Image.fromarray(frame), (0, 20))
    ImageDraw.Draw(image).text((4, 3), text.plain_label(line, 80), fill="white", font=label_font)
    return image


def mark_not_recorded(frame: np.ndarray) -> np.ndarray:
    """``frame`` (h, w, 3) uint8 with the "frame not recorded" label in a dark band across its middle."""
    height, width = frame.shape[:2]
    size = max(8, min(14, width // 12))
    label_font = font(size)
    image = Image.fromarray(np.ascontiguousarray(frame))
    draw = ImageDraw.Draw(image)
    top = max(0, height // 2 - size)
    draw.rectangle((0, top, width, min(height, top + 2 * size)), fill=(40, 40, 40))
    text_width = label_font.getlength(NOT_RECORDED_LABEL)
    draw.text((max(2, (width - text_width) / 2), top + size / 2 - 1), NOT_RECORDED_LABEL, fill="white",
              font=label_font)
    return np.asarray(image)


def sample_frames(num_video_frames: int, count: int) -> list[int]:
    """``count`` pixel frames spread evenly over the video, first and last included."""
    return sorted({int(round(x)) for x in np.linspace(0, num_video_frames - 1, max(1, count))})


def contact_sheet(cells: list[list[np.ndarray]], row_labels: list[str], column_labels: list[str]) -> Image.Image:
    """A grid of equally sized frames with a label column on the left and a header row."""
    cell_h, cell_w = cells[0][0].shape[:2]
    label_w, header_h, gap = 150, 22, 2
    width = label_w + len(column_labels) * (cell_w + gap)
    height = header_h + len(row_labels) * (cell_h + gap)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    label_font = font(13)
    for c, label in enumerate(column_labels):
        draw.text((label_w + c * (cell_w + gap) + 4, 4), text.plain_label(label, 30), fill="black", font=label_font)
    for r, (label, row) in enumerate(zip(row_labels, cells)):
        y = header_h + r * (cell_h + gap)
        draw.text((4, y + cell_h // 2 - 8), text.plain_label(label, 18), fill="black", font=label_font)
        for c, cell in enumerate(row):
            sheet.paste(Image.fromarray(cell), (label_w + c * (cell_w + gap), y))
    return sheet


def legend_strip(labels: list[str], width: int) -> Image.Image:
    """Colour swatches with their word, wrapped over as many lines as ``width`` needs."""
    label_font = font(13)
    entries, x, y, line_h = [], 6, 6, 22
    for unit, label in enumerate(labels):
        shown = text.plain_label(label, 24)
        entry_w = 22 + int(label_font.getlength(shown)) + 16
        if x + entry_w > width and x > 6:
            x, y = 6, y + line_h
        entries.append((unit, shown, x, y))
        x += entry_w
    note = None
    if len(labels) > SEGMENT_COLOUR_COUNT:
        note = (f"{len(labels)} words, {SEGMENT_COLOUR_COUNT} colours: colours repeat every "
                f"{SEGMENT_COLOUR_COUNT} words")
        y += line_h
    strip = Image.new("RGB", (width, y + line_h + 4), "white")
    draw = ImageDraw.Draw(strip)
    for unit, shown, ex, ey in entries:
        draw.rectangle((ex, ey + 2, ex + 14, ey + 16), fill=segment_colour(unit), outline="black")
        draw.text((ex + 20, ey + 1), shown, fill="black", font=label_font)
    if note is not None:
        draw.text((6, y + 1), note, fill="black", font=label_font)
    return strip


def stack_vertically(top: Image.Image, bottom: Image.Image) -> Image.Image:
    sheet = Image.new("RGB", (max(top.width, bottom.width), top.height + bottom.height), "white")
    sheet.paste(top, (0, 0))
    sheet.paste(bottom, (0, top.height))
    return sheet
