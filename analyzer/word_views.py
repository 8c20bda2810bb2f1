"""The per-word stage shared by the words, word_sheet and segmentation outputs.

The video is read once, a frame at a time, and kept only at overlay size, so memory is
bounded by the overlay width, not by the recording's resolution. Each word is one job for
:class:`analyzer.encoders.Encoders` (a worker process on a big analysis), holding only that
word's frames: it writes the word's animation (``words``) and returns its contact-sheet
cells (``word_sheet``), whichever of the two the analysis writes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from analyzer import output, overlays, statistics, text
from analyzer.encoders import Encoders
from analyzer.options import Options
from analyzer.reader import StoreView
from analyzer.selection import Unit

if TYPE_CHECKING:  # the outputs package imports this module: importing it here would be a cycle
    from analyzer.outputs.registry import Context

WORDS_DIR = "words"  # the folder of the words output's animations
SHEET_CELL_WIDTH = 200


def read_small_video(view: StoreView, size: tuple[int, int]) -> np.ndarray:
    """Every frame resized to ``size`` (width, height); a frame the store does not hold is neutral grey.

    Which frames exist is ``view.video_written``; a frame marked written whose chunk is
    gone is an error (:meth:`StoreView.read_video_frame`), never a black frame.
    """
    count = view.num_video_frames
    small = np.full((count, size[1], size[0], 3), overlays.NOT_RECORDED_GREY, dtype=np.uint8)
    for p in np.flatnonzero(view.video_written):
        frame = np.asarray(view.read_video_frame(int(p)))
        if (frame.shape[1], frame.shape[0]) != size:  # halved by box averaging first (reducing_gap): a third cheaper
            frame = np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR, reducing_gap=1.0))
        small[p] = frame
    return small


def sheet_cell(frame: np.ndarray, recorded: bool) -> np.ndarray:
    """``frame`` at contact-sheet size, labelled "frame not recorded" after the resize (so the label stays legible)."""
    cell = np.asarray(output.fit_width(Image.fromarray(frame), SHEET_CELL_WIDTH))
    return cell if recorded else overlays.mark_not_recorded(cell)


def compose(video: np.ndarray, latent_of: np.ndarray, word_maps: np.ndarray, frames: list[int],
            out: np.ndarray | None = None) -> np.ndarray:
    """The word's map over ``frames`` of ``video``: (len(frames), h, w, 3) uint8, written into ``out`` if given.

    A latent frame's map is upsampled and coloured once and blended over the pixel frames it
    covers together (four of them, a few array operations in all).
    """
    count, height, width = len(frames), video.shape[1], video.shape[2]
    composed = np.empty((count, height, width, 3), dtype=np.uint8) if out is None else out
    frames = np.asarray(frames, dtype=np.int64)
    owners = latent_of[frames]
    start = 0
    while start < count:  # runs of frames with one latent frame (consecutive pixel frames share it)
        stop = start + 1
        while stop < count and owners[stop] == owners[start]:
            stop += 1
        layer = overlays.heat_layer(overlays.upsample(word_maps[owners[start]], (width, height)))
        composed[start:stop] = overlays.blend(video[frames[start:stop]], layer)
        start = stop
    return composed


def captions(label: str, width: int, written: np.ndarray, latent_of: np.ndarray) -> np.ndarray:
    """The caption strip of each frame of a word animation: the word, the frame, "not recorded", the latent frame."""
    long, short = [], []
    for p, latent in enumerate(latent_of):
        note = "" if written[p] else " (not recorded)"
        long.append(f"frame {p}{note} latent {latent}")
        short.append(f"f{p}{'*' if note else ''} L{latent}")
    return overlays.caption_strips(width, label, long, short)


def write_word_animation(video, written: np.ndarray, latent_of: np.ndarray, sampled: list[int],
                         word_maps: np.ndarray, label: str, path: Path | None, animation_format: str,
                         frame_ms: int) -> tuple[Path | None, list[np.ndarray]]:
    """Write one word's animation (unless ``path`` is None); return its path and its contact-sheet cells
    (frames ``sampled``).

    video: the overlay-size frames (count, h, w, 3), or the path of an .npy file holding them
    (a worker process maps it instead of receiving a copy). written: (count,) which frames
    the store holds; the others are grey and labelled "frame not recorded" under the map.
    word_maps: (F', H', W') in [0, 1].
    """
    if not isinstance(video, np.ndarray):
        video = np.load(video, mmap_mode="r")
    count, height, width = video.shape[:3]
    if path is None:  # the contact sheet alone: only its frames
        shown = sorted(set(sampled))
        composed = compose(video, latent_of, word_maps, shown)
        return None, [sheet_cell(composed[shown.index(p)], written[p]) for p in sampled]
    strip = overlays.caption_height(width)
    frames = np.empty((count, strip + height, width, 3), dtype=np.uint8)  # one array: quantised in a few calls
    frames[:, :strip] = captions(label, width, written, latent_of)
    body = frames[:, strip:]
    compose(video, latent_of, word_maps, list(range(count)), out=body)
    row = [sheet_cell(body[p], written[p]) for p in sampled]  # before the frame's own label, as the cell has its own
    for p in np.flatnonzero(~np.asarray(written, dtype=bool)):
        body[p] = overlays.mark_not_recorded(body[p])
    return output.save_animation(frames, path, animation_format, frame_ms), row


class WordViews:
    """The video at overlay size and one job per word; made once per analysis by :func:`word_views`.

    ``animations``: write each word's animation into ``out/words``; ``sheet``: keep each word's
    contact-sheet cells. With neither, only the video is read (the segmentation map's frames).
    """

    def __init__(self, view: StoreView, units: tuple[Unit, ...] | list[Unit], maps: np.ndarray | None,
                 options: Options, out: Path, encoders: Encoders, animations: bool, sheet: bool):
        """maps: (units, F', H', W') in [0, 1], already scaled (:func:`analyzer.statistics.word_maps`)."""
        self.units = list(units)
        self.count = view.num_video_frames
        self.written = np.asarray(view.video_written, dtype=bool)
        self._jobs: list = []
        self._scratch: tempfile.TemporaryDirectory | None = None
        if self.count == 0:
            return
        _, height, width, _ = view.video.shape
        self.size = overlays.overlay_size(height, width, options.overlay_width)
        self.small = read_small_video(view, self.size)
        self.latent_of = overlays.latent_frame_of(view.pixel_frames, self.count)
        self.sampled = overlays.sample_frames(self.count, options.sheet_frames)
        if not (animations or sheet):
            return
        directory = out / WORDS_DIR
        if animations:
            directory.mkdir(exist_ok=True)
        video = self.small
        try:
            if encoders.workers:
                self._scratch = tempfile.TemporaryDirectory(prefix="wan-analyze-")
                video = os.path.join(self._scratch.name, "video.npy")
                np.save(video, self.small)
            frame_ms = round(1000 / options.word_fps)
            for u, unit in enumerate(self.units):
                path = output.confined(directory, text.file_stem(unit.label, u, unit.kind)) if animations else None
                self._jobs.append(encoders.submit(write_word_animation, video, self.written, self.latent_of,
                                                  self.sampled if sheet else [], maps[u], unit.label, path,
                                                  options.animation_format, frame_ms))
        except BaseException:
            self.close()
            raise

    @property
    def column_labels(self) -> list[str]:
        """The contact sheets' column headings: the sampled frames and their latent frames."""
        wide = min(self.size[0], SHEET_CELL_WIDTH) >= 170  # room for the long label under each column
        return [f"frame {p} (latent {self.latent_of[p]})" if wide else f"{p} (L{self.latent_of[p]})"
                for p in self.sampled]

    def results(self) -> list[tuple[Path | None, list[np.ndarray]]]:
        """Each word's (animation, contact-sheet cells), waiting for its job; then the scratch folder goes."""
        try:
            return [job.result() for job in self._jobs]
        finally:
            self.close()

    def close(self) -> None:
        """Remove the scratch folder (the video shared with worker processes); safe to call twice."""
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def __enter__(self) -> "WordViews":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()


def word_views(ctx: Context) -> WordViews:
    """This analysis's per-word stage, made by the first of its outputs to render (closed with the analysis)."""

    def make() -> WordViews:
        analysis = ctx.analysis
        animations, sheet = ctx.selected("words"), ctx.selected("word_sheet")
        maps = (statistics.word_maps(analysis.stats, analysis.view.grid, analysis.options.word_reduction)
                if animations or sheet else None)
        views = WordViews(analysis.view, analysis.units, maps, ctx.options, ctx.out, ctx.encoders, animations, sheet)
        return ctx.closing.enter_context(views)

    return ctx.shared(WordViews, make)
