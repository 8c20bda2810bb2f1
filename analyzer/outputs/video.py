"""video: the store's video as ``video.mp4`` (H.264, yuv420p), read and encoded one frame at a time.

A frame the store does not hold (see ``video_written``) is the neutral grey of the per-word
views, labelled "frame not recorded"; an odd width or height is padded by one row or column
(never scaled), as H.264 in yuv420p needs. The frame rate is the store's (``fps`` among its
attributes, when a recorder wrote one), else Wan's 16 frames per second.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from analyzer import output, overlays
from analyzer.options import MAX_FPS, MIN_FPS, Selection
from analyzer.outputs.registry import Context, Output
from analyzer.reader import StoreView

VIDEO = "video.mp4"
DEFAULT_FPS = 16.0  # Wan 2.1 and 2.2 write their videos at 16 frames per second
FPS_ATTRIBUTES = ("fps", "frame_rate")


def video_fps(view: StoreView) -> float:
    """The store's frame rate, if its attributes name one in range, else :data:`DEFAULT_FPS`."""
    for name in FPS_ATTRIBUTES:
        value = view.attrs.get(name)
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and MIN_FPS <= value <= MAX_FPS:
            return float(value)
    return DEFAULT_FPS


def video_frames(view: StoreView) -> Iterator[np.ndarray]:
    """Every frame of the store's video in order, read one at a time; a frame not written is grey and labelled."""
    _, height, width, _ = view.video.shape
    written = np.asarray(view.video_written, dtype=bool)
    grey = None
    for p in range(view.num_video_frames):
        if written[p]:
            yield np.asarray(view.read_video_frame(p))
        else:
            if grey is None:
                grey = overlays.mark_not_recorded(np.full((height, width, 3), overlays.NOT_RECORDED_GREY,
                                                          dtype=np.uint8))
            yield grey


def write_video(view: StoreView, path: Path) -> Path | None:
    """Write the store's video to ``path`` as MP4; None (nothing written) when the store holds no frame of it."""
    if view.num_video_frames == 0 or not np.asarray(view.video_written, dtype=bool).any():
        return None
    return output.write_mp4(video_frames(view), path, video_fps(view))


def _render(ctx: Context) -> Future:
    # written in this process (it reads the store), in a thread, while the encoder processes work
    return ctx.in_background(lambda: write_video(ctx.analysis.view, ctx.out / VIDEO))


def _work_pixels(selection: Selection) -> int:
    return 0  # encoded here, not by the encoder pool


def _report(analysis, path: Path, link) -> list[str]:
    view = analysis.view
    return [f"[{path.name}]({link(path)}): the store's {view.num_video_frames} frames at {video_fps(view):g} "
            f"frames per second (H.264)."]


OUTPUT = Output("video", "The video", f"{VIDEO} (H.264; frames not recorded drawn grey)", _render,
                work_pixels=_work_pixels, report=_report)
