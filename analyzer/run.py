"""``analyze(store, out_dir, **options)``: every picture and the report, in one streaming pass.

The attention array is read once, one step at a time (the next step is read while the
current one is summarised and drawn); everything after the pass works on the small
accumulators of :class:`analyzer.statistics.Accumulator` and on the video, one frame
at a time. Encoding the pictures (PNG, GIF, figures) goes to :class:`analyzer.encoders.Encoders`,
worker processes on a big analysis. The command line (:mod:`analyzer.cli`) is a thin
layer over this function.
"""

from __future__ import annotations

import numbers
import os
import sys
import time
from collections import deque
from contextlib import ExitStack
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
from tqdm import tqdm

from analyzer import output
from analyzer.choices import ANIMATION_FORMATS, IMAGE_FORMATS, NORMALISATIONS, OUTPUT_KINDS
from analyzer.encoders import Encoders
from analyzer.errors import AnalyzerError, StepError
from analyzer.heads import HeadStat, rank_heads
from analyzer.reader import Step, StoreView, iter_steps
from analyzer.selection import Unit, select_layers, select_steps, select_units
from analyzer.statistics import Accumulator

MAX_SHEET_FRAMES = 64
MAX_OVERLAY_WIDTH = 4096
MAX_HEATMAP_ROWS = 4096
MIN_FPS, MAX_FPS = 0.1, 100.0


@dataclass(frozen=True)
class Options:
    """What to analyse and what to write. Every field is a keyword of :func:`analyze`.

    steps, layers: pipeline step indices and transformer blocks ("0,5,10-20" or a list); None = all.
    words, tokens: entries of the per-word views (comma list or list); None = every prompt word.
    outputs: which of OUTPUT_KINDS to write; None = all.
    normalisation: colour scale of the word overlays: global, per-step, per-frame or per-word.
    encoder_processes: worker processes for picture encoding. 0 (the default for Python
        callers) encodes in this process, so a script needs no ``if __name__ == "__main__"``
        guard; None picks a count from the cores and the work (what ``wan-analyze`` does).
    skip_corrupt: a step that fails a check (a value that is no probability, an unreadable
        chunk, NaN in a step marked complete) is left out and listed in the report, instead
        of stopping the analysis.
    """

    steps: str | list[int] | None = None
    layers: str | list[int] | None = None
    words: str | list[str] | None = None
    tokens: str | list[str] | None = None
    include_special: bool = False
    branch: str = "cond"
    outputs: str | list[str] | None = None
    image_format: str = "png"
    animation_format: str = "gif"
    normalisation: str = "global"
    sheet_frames: int = 8
    overlay_width: int = 320
    heatmap_rows: int = 256
    step_fps: float = 2.0
    word_fps: float = 8.0
    overwrite: bool = False
    progress: bool = True
    encoder_processes: int | None = 0
    skip_corrupt: bool = False

    def kinds(self) -> list[str]:
        if self.outputs is None:
            return list(OUTPUT_KINDS)
        kinds = self.outputs.split(",") if isinstance(self.outputs, str) else list(self.outputs)
        kinds = [k.strip() for k in kinds if k.strip()]
        unknown = [k for k in kinds if k not in OUTPUT_KINDS]
        if unknown or not kinds:
            raise AnalyzerError(f"unknown output {unknown[0] if unknown else '(none)'!r}; "
                                f"choose from {', '.join(OUTPUT_KINDS)}")
        return kinds

    def check(self) -> None:
        choices = (("image format", self.image_format, IMAGE_FORMATS),
                   ("animation format", self.animation_format, ANIMATION_FORMATS),
                   ("normalisation", self.normalisation, NORMALISATIONS))
        for what, value, allowed in choices:
            if value not in allowed:
                raise AnalyzerError(f"unknown {what} {value!r}; choose from {', '.join(allowed)}")
        # Bounds keep every picture drawable in bounded memory and time: a billion sheet
        # frames or a 10^8-pixel-wide overlay is a typo, not a wish.
        for what, value, low, high in (("sheet frames", self.sheet_frames, 1, MAX_SHEET_FRAMES),
                                       ("overlay width", self.overlay_width, 16, MAX_OVERLAY_WIDTH),
                                       ("heatmap rows", self.heatmap_rows, 2, MAX_HEATMAP_ROWS)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
                raise AnalyzerError(f"{what} must be a whole number between {low} and {high}, got {value!r}")
        for what, value in (("step frame rate (--step-fps)", self.step_fps),
                            ("word frame rate (--word-fps)", self.word_fps)):
            # "not low <= x <= high" is also true for NaN
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not MIN_FPS <= value <= MAX_FPS:
                raise AnalyzerError(f"{what} must be between {MIN_FPS:g} and {MAX_FPS:g} frames per second, "
                                    f"got {value!r}")


@dataclass
class Analysis:
    """Everything the report needs, gathered by :func:`analyze`."""

    view: StoreView
    options: Options
    steps: list[Step]
    layers: list[int]
    units: list[Unit]
    stats: Accumulator
    heads: list[HeadStat] = field(default_factory=list)
    segment_share: np.ndarray | None = None  # (units,) fraction of locations each unit wins
    layer_profile: np.ndarray | None = None  # (layers, units)
    skipped: list[StepError] = field(default_factory=list)  # with skip_corrupt: the steps left out, and why
    seconds: float = 0.0

    @property
    def layer_blocks(self) -> list[int]:
        return [self.view.layer_blocks[i] for i in self.layers]


def analyze(store_location: str | os.PathLike, out_dir: str | os.PathLike, **options) -> dict:
    """Analyse a store (directory, .zip or URL) into ``out_dir``; return the written paths by kind.

    Keys: "report", "steps" (list), "montage", "animation", "words" (list), "word_sheet",
    "segmentation", "padding", "layer_profile", "heads"; only those written are present.
    Raises :class:`shared.store.StoreError` for an unreadable store and
    :class:`analyzer.errors.AnalyzerError` for any other input it cannot use.
    """
    from analyzer import heatmaps, overlays, plots, report

    start = time.perf_counter()
    names = {f.name for f in fields(Options)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise TypeError(f"analyze() got unknown options: {', '.join(unknown)}")
    opts = Options(**options)
    opts.check()
    kinds = opts.kinds()
    output.check_directory(out_dir, store_location)

    view = StoreView(store_location, opts.branch)
    steps = select_steps(view, opts.steps)
    layers = select_layers(view, opts.layers)
    units = select_units(view, opts.words, opts.tokens, opts.include_special)
    out = output.prepare_directory(out_dir, opts.overwrite)

    frames, height, width = view.grid
    stats = Accumulator(frames * height * width, len(view.tokens), [u.tokens for u in units], opts.heatmap_rows,
                        step_normalised=opts.normalisation == "per-step")
    analysis = Analysis(view, opts, steps, layers, units, stats)
    written: dict = {}

    draw_steps = any(k in kinds for k in ("steps", "montage", "animation"))
    # the pool is shut down first, then the word views' scratch folder goes, even on error
    with ExitStack() as scratch, \
            Encoders(_output_pixels(view, opts, kinds, len(steps), len(units)), opts.encoder_processes) as encoders:
        panels, frames_of_steps = _stream_steps(analysis, kinds, out, encoders, written) if draw_steps else \
            _stream_steps_without_pictures(analysis)
        _check_some_step_left(analysis)

        # the word animations are the longest job: start them first, draw the rest meanwhile
        raw = stats.unit_maps("global").reshape(len(units), frames, height, width)
        winners = np.argmax(raw, axis=0)  # (F', H', W') winning unit of each location
        analysis.segment_share = np.bincount(winners.ravel(), minlength=len(units)) / winners.size
        word_views = None
        if "words" in kinds or "segmentation" in kinds:
            from analyzer.word_views import WordViews

            maps = overlays.normalise(stats.unit_maps(opts.normalisation).reshape(raw.shape), opts.normalisation)
            word_views = scratch.enter_context(WordViews(view, units, maps, winners, kinds, opts, out, encoders))
            del maps

        pending = {}
        if "montage" in kinds:
            labels = [f"step {s.index}  t={s.timestep:.0f}" for s in stats.steps]
            pending["montage"] = encoders.submit(output.save_image, heatmaps.montage(panels, labels),
                                                 out / output.MONTAGE, opts.image_format)
        if "animation" in kinds:
            pending["animation"] = encoders.submit(output.save_animation, frames_of_steps, out / output.ANIMATION,
                                                   opts.animation_format, round(1000 / opts.step_fps))
        panels, frames_of_steps = [], []

        if "heads" in kinds or "report" in kinds:
            means = stats.head_means()
            analysis.heads = rank_heads(means["entropy"], means["token_mass"], means["padding"],
                                        analysis.layer_blocks)
            if "heads" in kinds:
                pending["heads"] = encoders.submit(plots.draw_and_save, plots.head_figure,
                                                   (means["entropy"], analysis.layer_blocks),
                                                   out / output.HEAD_RANKING, opts.image_format)
        if "padding" in kinds:
            pending["padding"] = encoders.submit(plots.draw_and_save, plots.padding_figure,
                                                 ([s.index for s in stats.steps], stats.padding_by_step_layer(),
                                                  analysis.layer_blocks), out / output.PADDING, opts.image_format)
        if view.layers_separate and len(layers) > 1:
            profile = stats.layer_profile() @ stats.membership.astype(np.float64)  # (L, U)
            analysis.layer_profile = profile / np.maximum(profile.sum(axis=1, keepdims=True), 1e-30)
            if "layers" in kinds:
                pending["layer_profile"] = encoders.submit(plots.draw_and_save, plots.layer_profile_figure,
                                                           (analysis.layer_profile, analysis.layer_blocks,
                                                            [u.label for u in units]),
                                                           out / output.LAYER_PROFILE, opts.image_format)
        for kind, job in pending.items():
            written[kind] = job.result()
        if word_views is not None:
            written.update(word_views.finish())

    analysis.seconds = time.perf_counter() - start
    if "report" in kinds:
        written["report"] = report.write_report(analysis, written, out / output.REPORT)
    return written


def _stream_steps(analysis: Analysis, kinds: list[str], out: Path, encoders: Encoders,
                  written: dict) -> tuple[list, list]:
    """The streaming pass with the per-step pictures; returns the montage panels and the animation frames.

    Each step's picture is drawn here and encoded by ``encoders``; at most a few
    pictures per worker wait to be encoded. What is kept per step is small: the montage
    panel at its cell size (known from the number of steps) and the animation frame as a PNG.
    """
    from analyzer import heatmaps

    opts, stats = analysis.options, analysis.stats
    renderer = heatmaps.StepHeatmap(analysis.view.tokens, stats.row_starts, analysis.view.grid,
                                    _layer_label(analysis))
    montage_width = heatmaps.montage_cell_width(len(analysis.steps)) if "montage" in kinds else None
    jobs: deque = deque()
    panels, frames, paths = [], [], []

    def collect(job) -> None:
        path, panel, frame = job.result()
        if path is not None:
            paths.append(path)
        if panel is not None:
            panels.append(panel)
        if frame is not None:
            frames.append(frame)

    for summary, heatmap in _summaries(analysis):
        image = renderer.render(heatmap, heatmaps.step_title(summary.index, summary.timestep, summary.expert))
        jobs.append(encoders.submit(heatmaps.save_step_picture, image, out / output.STEP.format(index=summary.index),
                                    opts.image_format, "steps" in kinds, montage_width, "animation" in kinds))
        while len(jobs) > 2 * max(encoders.workers, 1):
            collect(jobs.popleft())
    while jobs:
        collect(jobs.popleft())
    if "steps" in kinds:
        written["steps"] = paths
    return panels, frames


def _stream_steps_without_pictures(analysis: Analysis) -> tuple[list, list]:
    for _ in _summaries(analysis):
        pass
    return [], []


def _summaries(analysis: Analysis):
    """Read every selected step once, add it to the statistics, yield its summary and heatmap; shows progress.

    With ``skip_corrupt`` a step that fails a check is recorded in ``analysis.skipped`` and
    left out; afterwards ``analysis.steps`` holds the steps analysed.
    """
    bar = tqdm(total=len(analysis.steps), desc="wan-analyze", unit="step", file=sys.stderr,
               disable=not analysis.options.progress, leave=False)

    def skip(error: StepError) -> None:
        analysis.skipped.append(error)
        bar.update(1)

    with bar:
        for data in iter_steps(analysis.view, analysis.steps, analysis.layers,
                               on_skip=skip if analysis.options.skip_corrupt else None):
            yield analysis.stats.add(data)
            bar.update(1)
    skipped = {e.step.position for e in analysis.skipped}
    analysis.steps = [s for s in analysis.steps if s.position not in skipped]


def _check_some_step_left(analysis: Analysis) -> None:
    """With every selected step skipped there is nothing to draw: that is an error, not an empty report."""
    if analysis.stats.count == 0:
        first = analysis.skipped[0]
        raise AnalyzerError(f"{analysis.view.location}: every selected step is corrupt "
                            f"({len(analysis.skipped)} skipped); the first: {first.reason}")


def _output_pixels(view: StoreView, opts: Options, kinds: list[str], steps: int, units: int) -> int:
    """Roughly how many pixels the pictures of this analysis hold: what decides on worker processes."""
    from analyzer.overlays import overlay_size

    _, height, width, _ = view.video.shape
    overlay_w, overlay_h = overlay_size(height, width, opts.overlay_width)
    pixels = 0
    if "words" in kinds:
        pixels += units * view.num_video_frames * overlay_w * overlay_h
    if any(k in kinds for k in ("steps", "montage", "animation")):
        pixels += steps * 800 * 640
    return pixels


def _layer_label(analysis: Analysis) -> str:
    """The heatmaps' description of the layers shown."""
    from analyzer.text import block_label

    blocks = analysis.layer_blocks
    if blocks == [-1]:
        return f"{block_label(-1)} (as recorded)"
    if len(blocks) == 1:
        return f"layer: block {blocks[0]}"
    return f"mean over {len(blocks)} layers (blocks {blocks[0]}..{blocks[-1]})"

