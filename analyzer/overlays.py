"""Per-word maps laid over the decoded frames: the drawing of the word animations, contact sheet and segmentation map.

Latent frame f covers pixel frames ``pixel_frames[f]`` (0 -> [0, 0], f >= 1 -> [4f-3, 4f]);
its (H', W') map is upsampled bilinearly to the frame. Colours come from a 256-entry
lookup table, so a frame costs a few array operations and no matplotlib call.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw

from analyzer import palette, text
from analyzer.fonts import font

OVERLAY_ALPHA = 0.65
# A frame the store does not hold is drawn as this grey, labelled, never as a black frame
# (zarr reads a missing chunk back as zeros, which would look like a recorded dark scene).
NOT_RECORDED_GREY = 128
NOT_RECORDED_LABEL = "frame not recorded"
HEAT_COLORMAP = "turbo"
_HEAT_LUT = (colormaps[HEAT_COLORMAP](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.float32)
# distinct colours (analyzer.palette: 72, the first 60 at least 23 CIELAB units apart); beyond that they
# repeat, and the legend says so
SEGMENT_COLOUR_COUNT = palette.PALETTE_SIZE


def _segment_colours() -> np.ndarray:
    return palette.categorical(SEGMENT_COLOUR_COUNT)


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
    colours = _segment_colours()
    return tuple(int(c) for c in colours[unit % len(colours)])


def segment_overlay(frame: np.ndarray, winners: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``frame`` with each location tinted by the colour of its winning unit (nearest upsampling).

    Colours are looked up on the latent grid and the RGB picture is resized, so any number
    of units works (an 8-bit index picture would wrap above 256).
    """
    colours_ = _segment_colours()
    latent_colours = colours_[np.asarray(winners, dtype=np.int64) % len(colours_)]
    image = Image.fromarray(np.ascontiguousarray(latent_colours), mode="RGB").resize(size, Image.Resampling.NEAREST)
    colours = np.asarray(image).astype(np.float32)
    return np.clip(frame.astype(np.float32) * 0.45 + colours * 0.55 + 0.5, 0, 255).astype(np.uint8)


CAPTION_WIDE = 300  # frames at least this wide have the colour scale beside the caption, on its line


def caption_height(width: int) -> int:
    """The height of the caption strip above a word animation's frame ``width`` pixels wide."""
    return 20 if width >= CAPTION_WIDE else 34


def caption(frame: np.ndarray, line: str, short: str | None = None) -> Image.Image:
    """``frame`` with a caption strip above it and the overlay's colour scale (0 to 1): beside the caption on a
    wide frame, under it on a narrow one.

    ``short``, when given, is used where ``line`` does not fit; the font shrinks before anything is cut.
    """
    width = frame.shape[1]
    wide = width >= CAPTION_WIDE  # the colour scale beside the caption; on a narrow frame, on a line of its own
    strip_h = caption_height(width)
    image = Image.new("RGB", (width, frame.shape[0] + strip_h), "black")
    image.paste(Image.fromarray(frame), (0, strip_h))
    draw = ImageDraw.Draw(image)
    scale_w = 60 if wide else max(20, min(60, width - 40))
    room = width - 8 - (scale_w + 24 if wide else 0)
    shown, label_font = _fit(text.plain_label(line, 80), room)
    if label_font.getlength(shown) > room and short is not None:
        shown, label_font = _fit(text.plain_label(short, 80), room)
    while len(shown) > 4 and label_font.getlength(shown) > room:
        shown = shown[:-2] + "\u2026"
    draw.text((4, 10), shown, fill="white", font=label_font, anchor="lm")
    scale_font = font(11)
    ramp = np.linspace(0.0, 1.0, scale_w, dtype=np.float32)[None, :].repeat(8, axis=0)
    bar = blend(np.full((8, scale_w, 3), 128, dtype=np.uint8), heat_layer(ramp))
    left, middle = (width - scale_w - 14, 10) if wide else (16, 26)
    draw.text((left - 3, middle), "0", fill="white", font=scale_font, anchor="rm")
    image.paste(Image.fromarray(bar), (left, middle - 4))
    draw.text((left + scale_w + 3, middle), "1", fill="white", font=scale_font, anchor="lm")
    return image


def _fit(line: str, room: float):
    """``line`` and the largest font from 13 down to 9 pixels in which it fits ``room`` (the smallest if none)."""
    for size in (13, 12, 11, 10, 9):
        label_font = font(size)
        if label_font.getlength(line) <= room:
            break
    return line, label_font


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


def contact_sheet(cells: list[list[np.ndarray]], row_labels: list[str], column_labels: list[str],
                  heading: str = "") -> Image.Image:
    """A grid of equally sized frames with a label column on the left, a header row and an optional heading line
    (what the columns are)."""
    cell_h, cell_w = cells[0][0].shape[:2]
    label_font, heading_font = font(13), font(14)
    widest = max((label_font.getlength(text.plain_label(label, 22)) for label in row_labels), default=0)
    label_w, gap = max(90, int(widest) + 12), 2
    heading_h = 24 if heading else 0
    header_h = 22
    width = max(label_w + len(column_labels) * (cell_w + gap),
                int(heading_font.getlength(text.plain_label(heading, 200))) + 12 if heading else 0)
    height = heading_h + header_h + len(row_labels) * (cell_h + gap)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    if heading:
        draw.text((6, 4), text.plain_label(heading, 200), fill="black", font=heading_font)
    for c, label in enumerate(column_labels):
        shown = text.plain_label(label, 30)
        while len(shown) > 4 and label_font.getlength(shown) > cell_w - 6:
            shown = shown[:-2] + "\u2026"
        draw.text((label_w + c * (cell_w + gap) + 3, heading_h + 4), shown, fill="black", font=label_font)
    for r, (label, row) in enumerate(zip(row_labels, cells)):
        y = heading_h + header_h + r * (cell_h + gap)
        draw.text((4, y + cell_h // 2), text.plain_label(label, 22), fill="black", font=label_font, anchor="lm")
        for c, cell in enumerate(row):
            sheet.paste(Image.fromarray(cell), (label_w + c * (cell_w + gap), y))
    return sheet


SCALE_NOTES = {
    "global": "one scale for every word and frame: 1 = the largest value of any word's step-mean map",
    "per-step": "one scale for every word and frame: 1 = the largest value of any word's step-mean map",
    "per-word": "each word (row) on its own scale: 1 = that word's largest value",
    "per-frame": "each word's latent frame on its own scale: 1 = its largest value there",
}


def scale_note(normalize: str) -> str:
    """What 0 and 1 of the overlays' colour scale mean under ``--normalize``."""
    return (f"Colour = word map, 0 (frame shows through) to 1 (--normalize {normalize}: "
            f"{SCALE_NOTES.get(normalize, normalize)})")


def heat_scale_strip(width: int, note: str, low: str = "0", high: str = "1") -> Image.Image:
    """The overlays' colour scale as a horizontal bar, with its two ends and what they mean.

    The colour is laid over the frame with an opacity that grows with the value, so low
    values show the frame itself (drawn here over mid grey to match).
    """
    label_font = font(13)
    bar_w = max(120, min(360, width - 24))
    ramp = np.linspace(0.0, 1.0, bar_w, dtype=np.float32)[None, :].repeat(14, axis=0)
    grey = np.full((14, bar_w, 3), 128, dtype=np.uint8)
    bar = blend(grey, heat_layer(ramp))
    note = text.plain_label(note, 160)
    height = 14 + 18 + 22
    strip_w = max(width, int(label_font.getlength(note)) + 12, bar_w + 12)
    strip = Image.new("RGB", (strip_w, height), "white")
    draw = ImageDraw.Draw(strip)
    draw.text((6, 3), note, fill="black", font=label_font)
    strip.paste(Image.fromarray(bar), (6, 22))
    draw.rectangle((5, 21, 6 + bar_w, 36), outline="black")
    draw.text((6, 38), low, fill="black", font=label_font)
    draw.text((6 + bar_w, 38), high, fill="black", font=label_font, anchor="ra")
    return strip


def legend_strip(labels: list[str], width: int) -> Image.Image:
    """Colour swatches with their word, wrapped over as many lines as ``width`` needs."""
    label_font = font(14)
    entries, x, y, line_h = [], 6, 6, 24
    for unit, label in enumerate(labels):
        shown = text.plain_label(label, 24)
        entry_w = 26 + int(label_font.getlength(shown)) + 16
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
        draw.rectangle((ex, ey + 2, ex + 18, ey + 18), fill=segment_colour(unit), outline="black")
        draw.text((ex + 24, ey + 10), shown, fill="black", font=label_font, anchor="lm")
    if note is not None:
        draw.text((6, y + 1), note, fill="black", font=label_font)
    return strip


def stack_vertically(top: Image.Image, *rest: Image.Image) -> Image.Image:
    """The pictures one under the other, left-aligned on white."""
    parts = (top, *rest)
    sheet = Image.new("RGB", (max(p.width for p in parts), sum(p.height for p in parts)), "white")
    y = 0
    for part in parts:
        sheet.paste(part, (0, y))
        y += part.height
    return sheet
