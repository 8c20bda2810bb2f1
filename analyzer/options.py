"""What an analysis is asked (:class:`Options`), what it covers (:class:`Selection`) and what its
streaming pass found (:class:`Analysis`): the values every later stage reads.

A low module: it imports nothing of the analyzer at run time (the types it names are for
type checkers only), so the command line builds its choices from it without reading a
store or importing matplotlib, and every output module imports it typed.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from analyzer.errors import AnalyzerError

if TYPE_CHECKING:  # types only, so that this module stays below every other one
    import numpy as np

    from analyzer.errors import StepError
    from analyzer.reader import Step, StoreView
    from analyzer.selection import Unit
    from analyzer.statistics import Accumulator, HeadStat

IMAGE_FORMATS = ("png", "jpg", "webp")
ANIMATION_FORMATS = ("gif", "webp", "mp4")
# The colour scale of the per-word overlays (--normalize); applied in one place, statistics.word_maps.
NORMALIZE_MODES = ("global", "per-step", "per-frame", "per-word")
# The montage's colour scale (--montage-scale): one for every panel, so panels compare, or each its own.
MONTAGE_SCALES = ("shared", "per-panel")
# How a word's map is made from its sub-token maps (--word-reduction); applied in statistics.Accumulator.reduce_units.
# The default is max: a word's map is that of its most attended piece, so a word neither gains from being split
# into more tokens (as with sum) nor loses for a weakly attended piece such as a plural "s" (as with mean), and the
# overlays agree with the segmentation, which always uses max.
WORD_REDUCTIONS = ("max", "mean", "sum")
DEFAULT_WORD_REDUCTION = "max"

MAX_SHEET_FRAMES = 64
MAX_OVERLAY_WIDTH = 4096
MAX_HEATMAP_ROWS = 4096
MIN_FPS, MAX_FPS = 0.1, 100.0


@dataclass(frozen=True)
class Options:
    """What to analyse and what to write. Every field is a keyword of :func:`analyzer.run.analyze`.

    steps, layers: pipeline step indices and transformer blocks ("0,5,10-20" or a list); None = all.
    words, tokens: entries of the per-word views (comma list or list); None = every prompt word.
    outputs: which output kinds to write (names of :mod:`analyzer.outputs`, comma list or list); None = all.
    normalize: colour scale of the per-word overlays, one of NORMALIZE_MODES (see statistics.word_maps).
    word_reduction: how a word's map (the overlays, the contact sheet, the layer profile) is made from its
        sub-token maps, one of WORD_REDUCTIONS: max (the default), mean or sum. The segmentation always
        uses max, so that no word wins for being split into more tokens.
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
    normalize: str = "global"
    montage_scale: str = "shared"
    word_reduction: str = DEFAULT_WORD_REDUCTION
    sheet_frames: int = 8
    overlay_width: int = 320
    heatmap_rows: int = 256
    step_fps: float = 2.0
    word_fps: float = 8.0
    overwrite: bool = False
    progress: bool = True
    encoder_processes: int | None = 0
    skip_corrupt: bool = False

    @classmethod
    def of(cls, options: Mapping) -> Options:
        """The options of ``analyze(**options)``, checked: a TypeError for an unknown name, an AnalyzerError for
        a value out of range. (The output names are the registry's to check: :func:`analyzer.run.check_options`.)"""
        unknown = sorted(set(options) - {f.name for f in fields(cls)})
        if unknown:
            raise TypeError(f"unknown analyzer options: {', '.join(unknown)}")
        checked = cls(**options)
        checked.check()
        return checked

    def check(self) -> None:
        choices = (("image format", self.image_format, IMAGE_FORMATS),
                   ("animation format", self.animation_format, ANIMATION_FORMATS),
                   ("normalize mode (--normalize)", self.normalize, NORMALIZE_MODES),
                   ("montage scale (--montage-scale)", self.montage_scale, MONTAGE_SCALES),
                   ("word reduction (--word-reduction)", self.word_reduction, WORD_REDUCTIONS))
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


@dataclass(frozen=True)
class Selection:
    """What one analysis covers, fixed before the store's attention is read.

    steps: the complete steps chosen, in store order; layers: positions along the layer axis;
    units: the entries of the per-word views.
    """

    view: StoreView
    options: Options
    steps: tuple[Step, ...]
    layers: tuple[int, ...]
    units: tuple[Unit, ...]

    @property
    def layer_blocks(self) -> list[int]:
        return [self.view.layer_blocks[i] for i in self.layers]


@dataclass(frozen=True)
class Analysis:
    """The result of the streaming pass, made once when it ends: what every output and the report read.

    steps: the steps analysed (the selection's, less those ``--skip-corrupt`` left out);
    stats: the accumulated statistics (:class:`analyzer.statistics.Accumulator`, no longer added to);
    heads: every head, most focused first; layer_profile: (layers, units) share of each layer's word
    attention, rows summing to 1, or None (one layer, or a store of the layer mean);
    winners: (F', H', W') the segmentation's winning unit of each location; segment_share: (units,)
    the fraction of locations each unit wins; started: ``time.perf_counter()`` when the analysis began.
    """

    selection: Selection
    steps: tuple[Step, ...]
    stats: Accumulator
    heads: tuple[HeadStat, ...]
    layer_profile: np.ndarray | None
    winners: np.ndarray
    segment_share: np.ndarray
    skipped: tuple[StepError, ...] = field(default=())
    started: float = 0.0

    @property
    def view(self) -> StoreView:
        return self.selection.view

    @property
    def options(self) -> Options:
        return self.selection.options

    @property
    def units(self) -> tuple[Unit, ...]:
        return self.selection.units

    @property
    def layer_blocks(self) -> list[int]:
        return self.selection.layer_blocks
