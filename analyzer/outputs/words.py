"""words: one animation per word, its map laid over every video frame (see :mod:`analyzer.word_views`).

Naming it writes the contact sheet too (``word_sheet``, the same maps over sampled frames),
as ``--outputs words`` always has; ``word_sheet`` may be named alone.
"""

from __future__ import annotations

from pathlib import Path

from analyzer import overlays
from analyzer.options import Analysis, Selection
from analyzer.outputs.registry import Context, Later, Output
from analyzer.text import markdown as md
from analyzer.word_views import WORDS_DIR, word_views


def _render(ctx: Context) -> Later | None:
    views = word_views(ctx)
    if views.count == 0:  # a store without video frames: nothing to lay the maps over
        return None
    return Later(lambda: [path for path, _ in views.results()])


def _work_pixels(selection: Selection) -> int:
    _, height, width, _ = selection.view.video.shape
    overlay_w, overlay_h = overlays.overlay_size(height, width, selection.options.overlay_width)
    return len(selection.units) * selection.view.num_video_frames * overlay_w * overlay_h


def _report(analysis: Analysis, paths: list[Path], link) -> list[str]:
    return [f"- [{md(u.label)}]({link(p)})" for u, p in zip(analysis.units, paths)]


OUTPUT = Output("words", "Per-word animations",
                f"{WORDS_DIR}/word_NNN_<word>.<animation format> (token_NNN_<token> for --tokens), one per word; "
                f"with word_sheet",
                _render, work_pixels=_work_pixels, report=_report, includes=("word_sheet",))
