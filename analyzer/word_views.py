"""Write the per-word views: one animation per word, the contact sheet, the segmentation map.

The video is read once, a frame at a time, and kept only at overlay size, so memory is
bounded by the overlay width, not by the recording's resolution. Each word's animation
is built and written before the next one starts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from analyzer import output, overlays, text
from analyzer.reader import StoreView
from analyzer.selection import Unit

SHEET_CELL_WIDTH = 200


def read_small_video(view: StoreView, size: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """Every decoded frame resized to ``size`` (width, height), and whether the video is all zeros."""
    count = view.num_video_frames
    small = np.empty((count, size[1], size[0], 3), dtype=np.uint8)
    blank = True
    for p in range(count):
        frame = np.asarray(view.read_video_frame(p))
        blank = blank and not frame.any()
        if (frame.shape[1], frame.shape[0]) != size:
            frame = np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR))
        small[p] = frame
    return small, blank


def _cell(frame: np.ndarray, width: int) -> np.ndarray:
    if frame.shape[1] <= width:
        return frame
    height = max(1, round(frame.shape[0] * width / frame.shape[1]))
    return np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.BILINEAR))


def write_word_views(view: StoreView, units: list[Unit], maps: np.ndarray, winners: np.ndarray,
                     kinds: list[str], opts, out: Path) -> tuple[dict, bool]:
    """Write what ``kinds`` asks of "words" and "segmentation"; return (paths by kind, video is blank).

    maps: (units, F', H', W') in [0, 1], already normalised; winners: (F', H', W') unit indices.
    """
    count = view.num_video_frames
    if count == 0:
        return {}, True
    _, height, width, _ = view.video.shape
    size = overlays.overlay_size(height, width, opts.overlay_width)
    small, blank = read_small_video(view, size)
    latent_of = overlays.latent_frame_of(view.pixel_frames, count)
    sampled = overlays.sample_frames(count, opts.sheet_frames)
    wide = min(size[0], SHEET_CELL_WIDTH) >= 170  # room for the long label under each column
    column_labels = [f"frame {p} (latent {latent_of[p]})" if wide else f"{p} (L{latent_of[p]})" for p in sampled]
    written: dict = {}

    if "words" in kinds:
        directory = out / output.WORDS_DIR
        directory.mkdir(exist_ok=True)
        sheet_rows = []
        frame_ms = round(1000 / opts.word_fps)
        for u, unit in enumerate(units):
            frames, row, current, layer = [], [], -1, None
            for p in range(count):
                if latent_of[p] != current:
                    current = int(latent_of[p])
                    layer = overlays.heat_layer(overlays.upsample(maps[u, current], size))
                composed = overlays.blend(small[p], layer)
                frames.append(overlays.caption(composed, f"{text.one_line(unit.label)}   frame {p}  latent {current}"))
                if p in sampled:
                    row.append(_cell(composed, SHEET_CELL_WIDTH))
            stem = text.file_stem(unit.label, u, unit.kind)
            written.setdefault("words", []).append(
                output.save_animation(frames, directory / stem, opts.animation_format, frame_ms))
            sheet_rows.append(row)
        sheet = overlays.contact_sheet(sheet_rows, [u.label for u in units], column_labels)
        written["word_sheet"] = output.save_image(sheet, out / output.WORD_SHEET, opts.image_format)

    if "segmentation" in kinds:
        cells = [_cell(overlays.segment_overlay(small[p], winners[latent_of[p]], size), SHEET_CELL_WIDTH)
                 for p in sampled]
        top = overlays.contact_sheet([cells], ["winning word"], column_labels)
        legend = overlays.legend_strip([u.label for u in units], top.width)
        written["segmentation"] = output.save_image(overlays.stack_vertically(top, legend),
                                                    out / output.SEGMENTATION, opts.image_format)
    return written, blank
