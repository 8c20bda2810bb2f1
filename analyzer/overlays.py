"""Per-word maps laid over the decoded frames: the drawing of the word animations, contact sheet and segmentation map.

Latent frame f covers pixel frames ``pixel_frames[f]`` (0 -> [0, 0], f >= 1 -> [4f-3, 4f]);
its (H', W') map is upsampled bilinearly to the frame. Colours come from a 256-entry
lookup table, so a frame costs a few array operations and no matplotlib call.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from analyzer import colour_tables, palette, text
from analyzer.fonts import font

OVERLAY_ALPHA = 0.65
# A frame the store does not hold is drawn as this grey, labelled, never as a black frame
# (zarr reads a missing chunk back as zeros, which would look like a recorded dark scene).
NOT_RECORDED_GREY = 128
NOT_RECORDED_LABEL = "frame not recorded"
HEAT_COLORMAP = "turbo"
# Blending is fixed-point in 1/256ths (uint16): within one grey level of float, at half its cost.
_ONE = 256
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


def _heat_tables() -> tuple[np.ndarray, np.ndarray]:
    """For each of 256 heat levels, in 1/256ths: its colour premultiplied by its opacity (plus the blend's
    rounding, added once here rather than to every frame), and the frame's remaining weight, repeated for the three
    channels. As (256,) records of three uint16, so one ``np.take`` gathers a whole pixel."""
    level = np.arange(256) / 255.0
    alpha = np.round(level * OVERLAY_ALPHA * _ONE).astype(np.uint16)[:, None]
    colours = colour_tables.lut(HEAT_COLORMAP).astype(np.uint16) * alpha + _ONE // 2  # level i is entry i
    keep = np.repeat(_ONE - alpha, 3, axis=1)
    return tuple(np.ascontiguousarray(t, dtype=np.uint16).view("V6").ravel() for t in (colours, keep))


_HEAT_COLOUR, _HEAT_KEEP = _heat_tables()


def heat_layer(heat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The colour (premultiplied by its opacity) and the frame's remaining weight for ``heat`` in [0, 1].

    Heat is taken in 256 levels; both are (..., 3) uint16 in 1/256ths, summing to 256 per
    pixel, so a blend never overflows. The weight is repeated for each channel because numpy
    multiplies two arrays of one layout several times faster than it broadcasts a last axis
    of 1 against 3. Computed once per latent frame and reused for the pixel frames it covers.
    """
    level = (np.clip(np.asarray(heat, dtype=np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return tuple(np.take(t, level).view(np.uint16).reshape(*level.shape, 3) for t in (_HEAT_COLOUR, _HEAT_KEEP))


def blend(frames: np.ndarray, layer: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``frames`` (..., h, w, 3) uint8 (one frame or a stack) under a :func:`heat_layer`; zero heat leaves a frame
    as it is."""
    colour, keep = layer
    mixed = np.multiply(frames, keep, dtype=np.uint16)  # at most 255 * 256: no overflow
    mixed += colour
    mixed >>= 8
    return mixed.astype(np.uint8)


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


CAPTION_SIZES = (13, 12, 11, 10, 9)  # the caption's font sizes, tried largest first


def _scale_width(width: int) -> int:
    return 60 if width >= CAPTION_WIDE else max(20, min(60, width - 40))


@lru_cache(maxsize=16)
def _caption_base(width: int) -> np.ndarray:
    """The caption strip without its text: black, with the overlay's colour scale (0 to 1) beside the caption on a
    wide frame, under it on a narrow one. The same for every frame of that width, so drawn once."""
    wide = width >= CAPTION_WIDE
    scale_w = _scale_width(width)
    image = Image.new("RGB", (width, caption_height(width)), "black")
    draw = ImageDraw.Draw(image)
    scale_font = font(11)
    ramp = np.linspace(0.0, 1.0, scale_w, dtype=np.float32)[None, :].repeat(8, axis=0)
    bar = blend(np.full((8, scale_w, 3), 128, dtype=np.uint8), heat_layer(ramp))
    left, middle = (width - scale_w - 14, 10) if wide else (16, 26)
    draw.text((left - 3, middle), "0", fill="white", font=scale_font, anchor="rm")
    image.paste(Image.fromarray(bar), (left, middle - 4))
    draw.text((left + scale_w + 3, middle), "1", fill="white", font=scale_font, anchor="lm")
    array = np.asarray(image)
    array.flags.writeable = False  # shared by every caption of this width
    return array


@lru_cache(maxsize=4096)
def _text_length(line: str, size: int) -> float:
    return font(size).getlength(line)


@lru_cache(maxsize=4096)
def _text_mask(line: str, size: int, height: int) -> np.ndarray:
    """``line`` in white on black at ``size``, its middle at y = 10 like the caption's: (height, w) uint8.

    White antialiased text on black is its own coverage, so it is laid onto a black strip
    with a maximum, not drawn again: a word animation's frames share these (frame numbers
    repeat for every word), and drawing text is what a caption used to cost.
    """
    image = Image.new("L", (int(_text_length(line, size)) + 3, height), 0)
    ImageDraw.Draw(image).text((1, 10), line, fill=255, font=font(size), anchor="lm")
    mask = np.asarray(image)
    mask.flags.writeable = False
    return mask


def _caption_layout(label: str, forms: list[list[str]], room: float) -> tuple[str, list[str], int]:
    """(label, suffixes, font size) of one animation's captions: the first form (a list of suffixes) and the
    largest size in which every line fits ``room``; if none does, the last form at the smallest size with the
    label shortened (the suffixes carry the frame numbers, so they are never cut)."""
    for suffixes in forms:
        for size in CAPTION_SIZES:
            widest = max((_text_length(s, size) for s in set(suffixes)), default=0.0)
            if _text_length(label + " ", size) + widest <= room:
                return label, suffixes, size
    suffixes, size = forms[-1], CAPTION_SIZES[-1]
    widest = max((_text_length(s, size) for s in set(suffixes)), default=0.0)
    while len(label) > 2 and _text_length(label + " ", size) + widest > room:
        label = label[:-2] + "\u2026"
    return label, suffixes, size


def caption_strips(width: int, label: str, suffixes: list[str], short_suffixes: list[str] | None = None) -> np.ndarray:
    """The caption strips of an animation's frames, (len(suffixes), caption_height(width), width, 3) uint8: frame i
    captioned ``label`` and ``suffixes[i]``, beside (wide frame) or over (narrow) the overlay's colour scale.

    All frames share one font and form, so the caption does not jump from frame to frame: the
    largest font (13 down to 9 pixels) in which the widest line fits; ``short_suffixes``, when
    given, where no size fits; then the label is shortened with an ellipsis.
    """
    height = caption_height(width)
    room = width - 8 - (_scale_width(width) + 24 if width >= CAPTION_WIDE else 0)
    forms = [suffixes] + ([short_suffixes] if short_suffixes is not None else [])
    shown, suffixes, size = _caption_layout(text.plain_label(label, 60), forms, room)
    head = Image.fromarray(_caption_base(width))
    ImageDraw.Draw(head).text((4, 10), shown, fill="white", font=font(size), anchor="lm")
    strips = np.repeat(np.asarray(head)[None], len(suffixes), axis=0)
    x = 3 + round(_text_length(shown + " ", size))  # the masks start one pixel before their text
    end = max(x, 4 + int(room))
    for strip, suffix in zip(strips, suffixes):
        mask = _text_mask(suffix, size, height)[:, : end - x]
        target = strip[:, x:x + mask.shape[1]]
        np.maximum(target, mask[..., None], out=target)
    return strips


def mark_not_recorded(frame: np.ndarray) -> np.ndarray:
    """``frame`` (h, w, 3) uint8 with the "frame not recorded" label in a dark band across its middle.

    One line when it fits the frame's width, else two ("frame not" over "recorded"), at the
    largest font (a twelfth of the width, 8 to 14 pixels) that fits; a frame too narrow even
    for two lines at 8 pixels gets them cut at its edges.
    """
    height, width = frame.shape[:2]
    lines, size = _not_recorded_layout(width)
    label_font = font(size)
    image = Image.fromarray(np.ascontiguousarray(frame))
    draw = ImageDraw.Draw(image)
    band = (len(lines) + 1) * size
    top = max(0, height // 2 - band // 2)
    draw.rectangle((0, top, width, min(height, top + band)), fill=(40, 40, 40))
    for i, line in enumerate(lines):
        draw.text((width / 2, top + (i + 1) * size), line, fill="white", font=label_font, anchor="mm")
    return np.asarray(image)


@lru_cache(maxsize=64)
def _not_recorded_layout(width: int) -> tuple[tuple[str, ...], int]:
    """The lines and font size of the "frame not recorded" label on a frame ``width`` pixels wide."""
    largest = max(8, min(14, width // 12))
    first, _, last = NOT_RECORDED_LABEL.rpartition(" ")
    for lines in ((NOT_RECORDED_LABEL,), (first, last)):
        for size in range(largest, 7, -1):
            if max(font(size).getlength(line) for line in lines) <= width - 4:
                return lines, size
    return (first, last), 8


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
