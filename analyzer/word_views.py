"""Write the per-word views: one animation per word, the contact sheet, the segmentation map.

The video is read once, a frame at a time, and kept only at overlay size, so memory is
bounded by the overlay width, not by the recording's resolution. Each word's animation
is one job for :class:`analyzer.encoders.Encoders` (a worker process on a big analysis),
holding only that word's frames.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from analyzer import output, overlays, text
from analyzer.encoders import Encoders
from analyzer.reader import StoreView
from analyzer.selection import Unit

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
        if (frame.shape[1], frame.shape[0]) != size:
            frame = np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR))
        small[p] = frame
    return small


def _cell(frame: np.ndarray, width: int) -> np.ndarray:
    if frame.shape[1] <= width:
        return frame
    height = max(1, round(frame.shape[0] * width / frame.shape[1]))
    return np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.BILINEAR))


def _labelled(frame: np.ndarray, recorded: bool) -> np.ndarray:
    return frame if recorded else overlays.mark_not_recorded(frame)


def write_word_animation(video, written: np.ndarray, latent_of: np.ndarray, sampled: list[int],
                         word_maps: np.ndarray, label: str, path: Path, animation_format: str,
                         frame_ms: int) -> tuple[Path, list[np.ndarray]]:
    """Write one word's animation; return its path and its contact-sheet cells (frames ``sampled``).

    video: the overlay-size frames (count, h, w, 3), or the path of an .npy file holding them
    (a worker process maps it instead of receiving a copy). written: (count,) which frames
    the store holds; the others are grey and labelled "frame not recorded" under the map.
    word_maps: (F', H', W') in [0, 1].
    """
    if not isinstance(video, np.ndarray):
        video = np.load(video, mmap_mode="r")
    size = (video.shape[2], video.shape[1])
    frames, row, current, layer = [], [], -1, None
    for p in range(video.shape[0]):
        if latent_of[p] != current:
            current = int(latent_of[p])
            layer = overlays.heat_layer(overlays.upsample(word_maps[current], size))
        composed = overlays.blend(video[p], layer)
        note = "" if written[p] else " (not recorded)"
        frames.append(overlays.caption(_labelled(composed, written[p]),
                                       f"{text.one_line(label)}   frame {p}{note}  latent {current}"))
        if p in sampled:  # labelled after the resize, so the label stays legible in the sheet
            row.append(_labelled(_cell(composed, SHEET_CELL_WIDTH), written[p]))
    return output.save_animation(frames, path, animation_format, frame_ms), row


class WordViews:
    """The per-word views of one analysis: :meth:`start` queues the animations, :meth:`finish` writes the rest.

    Between the two the caller can draw its other pictures while the animations are encoded.
    """

    def __init__(self, view: StoreView, units: list[Unit], maps: np.ndarray, winners: np.ndarray,
                 kinds: list[str], opts, out: Path, encoders: Encoders):
        """maps: (units, F', H', W') in [0, 1], already normalised; winners: (F', H', W') unit indices."""
        self.units, self.winners, self.kinds, self.opts, self.out = units, winners, kinds, opts, out
        self.count = view.num_video_frames
        self.written = np.asarray(view.video_written, dtype=bool)
        self._jobs: list = []
        self._scratch: tempfile.TemporaryDirectory | None = None
        if self.count == 0:
            return
        _, height, width, _ = view.video.shape
        self.size = overlays.overlay_size(height, width, opts.overlay_width)
        self.small = read_small_video(view, self.size)
        self.latent_of = overlays.latent_frame_of(view.pixel_frames, self.count)
        self.sampled = overlays.sample_frames(self.count, opts.sheet_frames)
        if "words" not in kinds:
            return
        directory = out / output.WORDS_DIR
        directory.mkdir(exist_ok=True)
        video = self.small
        try:
            if encoders.workers:
                self._scratch = tempfile.TemporaryDirectory(prefix="wan-analyze-")
                video = os.path.join(self._scratch.name, "video.npy")
                np.save(video, self.small)
            frame_ms = round(1000 / opts.word_fps)
            for u, unit in enumerate(units):
                path = output.confined(directory, text.file_stem(unit.label, u, unit.kind))
                self._jobs.append(encoders.submit(write_word_animation, video, self.written, self.latent_of,
                                                  self.sampled, maps[u], unit.label, path, opts.animation_format,
                                                  frame_ms))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Remove the scratch folder (the video shared with worker processes); safe to call twice."""
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def __enter__(self) -> "WordViews":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def finish(self) -> dict:
        """Wait for the animations; write the contact sheet and the segmentation map. Returns paths by kind."""
        try:
            return self._finish()
        finally:
            self.close()

    def _finish(self) -> dict:
        if self.count == 0:
            return {}
        wide = min(self.size[0], SHEET_CELL_WIDTH) >= 170  # room for the long label under each column
        column_labels = [f"frame {p} (latent {self.latent_of[p]})" if wide else f"{p} (L{self.latent_of[p]})"
                         for p in self.sampled]
        labels = [u.label for u in self.units]
        written: dict = {}
        if "words" in self.kinds:
            results = [job.result() for job in self._jobs]
            written["words"] = [path for path, _ in results]
            sheet = overlays.contact_sheet([row for _, row in results], labels, column_labels)
            written["word_sheet"] = output.save_image(sheet, self.out / output.WORD_SHEET, self.opts.image_format)
        if "segmentation" in self.kinds:
            cells = [_labelled(_cell(overlays.segment_overlay(self.small[p], self.winners[self.latent_of[p]],
                                                              self.size), SHEET_CELL_WIDTH), self.written[p])
                     for p in self.sampled]
            top = overlays.contact_sheet([cells], ["winning word"], column_labels)
            legend = overlays.legend_strip(labels, top.width)
            written["segmentation"] = output.save_image(overlays.stack_vertically(top, legend),
                                                        self.out / output.SEGMENTATION, self.opts.image_format)
        return written
