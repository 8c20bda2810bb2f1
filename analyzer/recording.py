"""A recording in Python: ``open_recording(location)`` (no torch).

    >>> from analyzer import open_recording
    >>> rec = open_recording("run.zarr")            # directory, zip, HDF5 export or URL, as the CLI takes
    >>> rec.prompt, rec.words, rec.steps, rec.layers
    >>> ds = rec.dataset()                          # the labelled, lazy xarray.Dataset of the cond branch
    >>> ds.attention.sel(token="cat", step=10, layer=5)
    >>> rec.word_map("cat")                         # (frame, y, x): the word's map, as the CLI computes it
    >>> rec.word_map("cat", pixel_grid=True)        # (video_frame, height, width), aligned to the video
    >>> rec.plot_overlay("cat", frame=20)           # the frame with the word's map on top (matplotlib)
    >>> rec.statistics()                            # the report's numbers, as attention_statistics.json holds them

Nothing here computes a number of its own: the word maps and the statistics come from the
analyzer's one streaming pass (:func:`analyzer.streaming.run_pass`, :mod:`analyzer.statistics`),
so they equal what ``wan-analyze`` draws and writes for the same choices; the overlays are
drawn with :mod:`analyzer.overlays`, as the CLI's per-word views are. xarray is needed for
:meth:`Recording.dataset` and the maps (``pip install xarray``); matplotlib for the plot.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from analyzer import overlays, statistics
from analyzer.errors import AnalyzerError
from analyzer.options import Analysis, Options
from analyzer.reader import StoreView, Word
from analyzer.selection import Unit, select
from shared import schema
from shared.schema import Attr

if TYPE_CHECKING:
    import xarray

UPSAMPLING = ("bilinear", "nearest")  # bilinear: what the CLI's overlays draw


def open_recording(location: str | os.PathLike, storage_options: dict | None = None) -> Recording:
    """Open a store read-only (a directory, a zip, an HDF5 export or a URL, as ``wan-analyze`` takes).

    ``storage_options`` go to fsspec for a URL. Raises :class:`shared.store.StoreError` or
    :class:`analyzer.errors.AnalyzerError`, one line, for anything that is not a readable store.
    """
    return Recording(location, storage_options)


def _xarray():
    try:
        import xarray
    except ImportError:  # a test and notebook dependency, not one of the analyzer's
        raise ImportError("the labelled view of a recording needs xarray: pip install xarray") from None
    return xarray


class Recording:
    """A store opened for exploration: its description, its labelled arrays, word maps, overlays, statistics."""

    def __init__(self, location: str | os.PathLike, storage_options: dict | None = None):
        self.location = os.fspath(location)
        self.storage_options = storage_options
        self._views: dict[str, StoreView] = {}
        self._analyses: dict[tuple, Analysis] = {}
        self.view()  # validates the store: errors now, not on first use

    # --- what the store is -----------------------------------------------------------------
    def view(self, branch: str = schema.BRANCH_COND) -> StoreView:
        """The analyzer's :class:`StoreView` of one branch (opened once)."""
        if branch not in self._views:
            self._views[branch] = StoreView(self.location, branch, self.storage_options)
        return self._views[branch]

    @property
    def attrs(self) -> dict:
        """The root attributes (prompt, seed, model, latent grid, record options, status, ...)."""
        return dict(self.view().attrs)

    @property
    def prompt(self) -> str:
        return str(self.view().attrs.get(Attr.PROMPT, self.view().prompt))

    @property
    def status(self) -> str:
        return self.view().status

    @property
    def branches(self) -> list[str]:
        return list(self.view().branches)

    @property
    def words(self) -> list[str]:
        """The prompt's words (cond branch), in order; ``word_map`` takes one of them or its index."""
        return [w.text for w in self.view().words]

    @property
    def tokens(self) -> list[str]:
        """The token strings as the tokenizer spelled them (with its word marker)."""
        return list(self.view().tokens)

    @property
    def steps(self) -> list[int]:
        """The pipeline step indices of the complete steps."""
        return [s.index for s in self.view().complete_steps]

    @property
    def layers(self) -> list[int]:
        """The transformer block of each layer entry; [-1] for a store of the mean over layers."""
        return list(self.view().layer_blocks)

    @property
    def pixel_frames(self) -> list[tuple[int, int]]:
        """Per latent frame, the inclusive [first, last] pixel frame of the video it covers."""
        return list(self.view().pixel_frames)

    @property
    def video(self):
        """The decoded frames (video_frame, height, width, rgb) uint8, a lazy zarr array: indexing reads
        only the frames asked for. A frame never written reads as black; :meth:`frame` refuses it."""
        return self.view().video

    @property
    def video_written(self) -> np.ndarray:
        """(video_frame,) which frames of the video the store holds."""
        return np.asarray(self.view().video_written, dtype=bool)

    def frame(self, index: int) -> np.ndarray:
        """One frame (height, width, 3) uint8; AnalyzerError for a frame the store does not hold."""
        return np.asarray(self.view().read_video_frame(int(index)))

    # --- the labelled arrays ---------------------------------------------------------------
    def dataset(self, branch: str = schema.BRANCH_COND) -> xarray.Dataset:
        """The branch group as a lazy, labelled ``xarray.Dataset`` (dims step, layer, frame, y, x, token, head).

        A store of schema 1.3 carries its coordinates, and this is ``xr.open_zarr`` on it; an
        older store gets the same coordinates from its attributes. ``token`` is the token's text
        (not unique: ``.sel(token="a")`` returns every "a"); ``token_index`` is the unique label.
        """
        xr = _xarray()
        view = self.view(branch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no consolidated metadata": a live store is read as it is
            ds = xr.open_zarr(view.root.store, group=branch, consolidated=False)
        if schema.DIM_STEP not in ds.coords:  # schema 1.0-1.2: no coordinate arrays
            ds = ds.assign_coords(_coordinates_of(view))
        # The labels along an axis are small: in memory, so that groupby("word") and where(word == ...) work
        # when dask backs the data (xarray refuses to group by a lazy dask array).
        return ds.assign_coords({name: coord.load() for name, coord in ds.coords.items() if name not in ds.indexes})

    # --- word maps -------------------------------------------------------------------------
    def word_map(self, word: str | int, steps=None, layers=None, reduce: str = "sum", pixel_grid: bool = False, *,
                 branch: str = schema.BRANCH_COND, normalize: str | None = None,
                 upsample: str = "bilinear") -> xarray.DataArray:
        """The word's attention map: the mean over the chosen steps and layers of its sub-tokens' maps, reduced
        over the sub-tokens with ``reduce`` (sum, mean or max), as ``wan-analyze`` computes it.

        word: its text (case-insensitive, as ``--words``) or its index in :attr:`words`; a text that occurs
            more than once must be given by index. steps, layers: pipeline step indices and transformer blocks
            (a list or "0,5,10-20"); None = every complete step and every layer.
        normalize: None (default) gives the probabilities themselves; a ``--normalize`` mode (global, per-step,
            per-frame, per-word) gives the map in [0, 1] that the CLI's per-word views draw.
        pixel_grid: False: dims (frame, y, x) on the latent grid. True: dims (video_frame, height, width),
            one map per frame of the video: each frame takes the map of the latent frame that covers it
            (``pixel_frames``), upsampled to the video's size (``upsample``: "bilinear", what the CLI's
            overlays draw, or "nearest").
        """
        xr = _xarray()
        view = self.view(branch)
        unit, analysis = self._analysis(view, word, steps, layers, normalize or "global", reduce)
        index = analysis.units.index(unit)
        if normalize is None:
            maps = analysis.stats.unit_maps(reduction=reduce)[index].reshape(view.grid)
        else:
            maps = statistics.word_maps(analysis.stats, view.grid, reduce)[index]
        maps = maps.astype(np.float32)
        attrs = {"word": unit.label, "word_index": unit.index, "tokens": list(unit.tokens),
                 "steps": [s.index for s in analysis.steps], "layers": list(analysis.layer_blocks),
                 "reduce": reduce, "normalize": normalize or "none", "branch": branch}
        frames, height, width = view.grid
        if not pixel_grid:
            first, last = zip(*view.pixel_frames)
            return xr.DataArray(maps, dims=(schema.DIM_FRAME, schema.DIM_Y, schema.DIM_X), coords={
                schema.DIM_FRAME: np.arange(frames), schema.DIM_Y: np.arange(height), schema.DIM_X: np.arange(width),
                "frame_first_pixel": (schema.DIM_FRAME, np.asarray(first)),
                "frame_last_pixel": (schema.DIM_FRAME, np.asarray(last))}, name="word_map", attrs=attrs)
        count, video_height, video_width, _ = view.video.shape
        latent_of = overlays.latent_frame_of(view.pixel_frames, count)
        per_latent = [_upsample(maps[f], (video_width, video_height), upsample) for f in range(frames)]
        pixels = np.stack([per_latent[f] for f in latent_of]) if count else \
            np.zeros((0, video_height, video_width), np.float32)
        return xr.DataArray(pixels, dims=(schema.DIM_VIDEO_FRAME, schema.DIM_HEIGHT, schema.DIM_WIDTH), coords={
            schema.DIM_VIDEO_FRAME: np.arange(count), "latent_frame": (schema.DIM_VIDEO_FRAME, latent_of)},
            name="word_map", attrs={**attrs, "upsample": upsample})

    def plot_overlay(self, word: str | int, frame: int, ax=None, *, title: bool = True, **word_map_options):
        """Draw video frame ``frame`` with the word's map on top, as the CLI's per-word views draw it; return ``ax``.

        The map is the latent frame's that covers ``frame``, upsampled bilinearly, coloured and blended
        by :mod:`analyzer.overlays`. ``word_map_options`` go to :meth:`word_map` (steps, layers, reduce,
        branch, normalize: "global" unless given, as the CLI's default).
        """
        import matplotlib.pyplot as plt

        word_map_options.setdefault("normalize", "global")
        for name in ("pixel_grid", "upsample"):
            word_map_options.pop(name, None)
        latent = self.word_map(word, **word_map_options)
        view = self.view(word_map_options.get("branch", schema.BRANCH_COND))
        count = view.num_video_frames
        if not 0 <= int(frame) < count:
            raise AnalyzerError(f"frame {frame} does not exist; the video has frames 0..{count - 1}")
        latent_frame = int(overlays.latent_frame_of(view.pixel_frames, count)[int(frame)])
        heat = latent.values[latent_frame]
        if word_map_options.get("normalize") is None:
            heat = heat / max(float(latent.values.max()), 1e-30)
        _, height, width, _ = view.video.shape
        recorded = bool(view.video_written[int(frame)])
        picture = self.frame(frame) if recorded else np.full((height, width, 3), overlays.NOT_RECORDED_GREY, np.uint8)
        composed = overlays.blend(picture, overlays.heat_layer(np.clip(overlays.upsample(heat, (width, height)), 0, 1)))
        if not recorded:
            composed = overlays.mark_not_recorded(composed)
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 6 * height / max(width, 1)))
        ax.imshow(composed)
        ax.set_axis_off()
        if title:
            ax.set_title(f"{latent.attrs['word']}: frame {int(frame)} (latent {latent_frame})")
        return ax

    # --- the report's numbers --------------------------------------------------------------
    def analysis(self, **options) -> Analysis:
        """The analyzer's :class:`Analysis` for ``analyze()``'s choices (steps, layers, words, tokens,
        include_special, branch, normalize, word_reduction, skip_corrupt), from one streaming pass."""
        options = {k: v for k, v in options.items() if v is not None}
        opts = Options.of({**options, "progress": False})
        return self._run(select(self.view(opts.branch), opts))

    def statistics(self, **options) -> dict:
        """Every number of the report, as ``attention_statistics.json`` holds them (a dict: "tokens", "words",
        "steps" with each step's text entropy, shares and padding mass, "entropy", "padding", "heads", ...).

        The keywords are :meth:`analysis`'s, so the numbers equal those of ``wan-analyze`` with the same options.
        """
        from analyzer.outputs.statistics import statistics_document

        return statistics_document(self.analysis(**options))

    # --- internals -------------------------------------------------------------------------
    def _run(self, selection) -> Analysis:
        from analyzer.streaming import run_pass

        analysis, _ = run_pass(selection, {}, None, time.perf_counter())  # no per-step pictures: no encoders
        return analysis

    def _analysis(self, view: StoreView, word: str | int, steps, layers, normalize: str, reduce: str):
        """The word's unit and an analysis whose units are the CLI's (every word), with the word's among them."""
        if reduce not in statistics.WORD_REDUCTIONS:
            raise AnalyzerError(f"unknown reduction {reduce!r}; choose from {', '.join(statistics.WORD_REDUCTIONS)}")
        chosen = _word(view, word)
        unit = Unit(chosen.text, chosen.tokens, "word", chosen.index)
        key = (view.branch, _key(steps), _key(layers), normalize, reduce, unit)
        if key not in self._analyses:
            opts = Options.of({"steps": steps, "layers": layers, "branch": view.branch, "normalize": normalize,
                               "word_reduction": reduce, "progress": False, "include_special": False})
            try:
                selection = select(view, opts)
            except AnalyzerError:  # a prompt of only special words: the CLI would need --include-special
                selection = select(view, replace(opts, include_special=True))
            if unit not in selection.units:  # a special or punctuation word: shown by the CLI with --include-special
                selection = replace(selection, units=(*selection.units, unit))
            if len(self._analyses) >= 8:
                self._analyses.pop(next(iter(self._analyses)))
            self._analyses[key] = self._run(selection)
        return unit, self._analyses[key]


def _key(value):
    return value if value is None or isinstance(value, str) else tuple(value)


def _word(view: StoreView, word: str | int) -> Word:
    if isinstance(word, (int, np.integer)) and not isinstance(word, bool):
        if not 0 <= int(word) < len(view.words):
            raise AnalyzerError(f"word {int(word)} does not exist; the prompt has words 0..{len(view.words) - 1}")
        return view.words[int(word)]
    matches = [w for w in view.words if w.text.casefold() == str(word).casefold()]
    if not matches:
        raise AnalyzerError(f"word {word!r} is not in the prompt; its words are "
                            f"{', '.join(repr(w.text) for w in view.words)}")
    if len(matches) > 1:
        raise AnalyzerError(f"word {word!r} occurs {len(matches)} times (word indices "
                            f"{', '.join(str(w.index) for w in matches)}); pass its index")
    return matches[0]


def _upsample(latent_map: np.ndarray, size: tuple[int, int], how: str) -> np.ndarray:
    """An (H', W') map at ``size`` = (width, height): the CLI's bilinear upsampling, or nearest neighbour."""
    if how == "bilinear":
        return overlays.upsample(latent_map, size).astype(np.float32)
    if how != "nearest":
        raise AnalyzerError(f"unknown upsampling {how!r}; choose from {', '.join(UPSAMPLING)}")
    width, height = size
    rows = np.arange(height) * latent_map.shape[0] // max(height, 1)
    columns = np.arange(width) * latent_map.shape[1] // max(width, 1)
    return np.ascontiguousarray(latent_map[rows][:, columns], dtype=np.float32)


def _coordinates_of(view: StoreView) -> dict:
    """The coordinates of schema 1.3, for a store that predates them: from its step arrays and attributes."""
    from shared.store import token_labels

    frames, height, width = view.grid
    words = [{"text": w.text, "tokens": list(w.tokens)} for w in view.words]
    texts, word_text, word_index = token_labels(len(view.tokens), {schema.BranchAttr.TOKENS: view.tokens,
                                                                   schema.BranchAttr.WORDS: words})
    first, last = zip(*view.pixel_frames) if view.pixel_frames else ((), ())
    return {
        schema.DIM_STEP: np.asarray([s.index for s in view.steps], dtype=np.int32),
        "timestep": (schema.DIM_STEP, np.asarray([s.timestep for s in view.steps], dtype=np.float32)),
        "sigma": (schema.DIM_STEP, np.asarray([s.sigma for s in view.steps], dtype=np.float32)),
        "expert": (schema.DIM_STEP, np.asarray([s.expert for s in view.steps], dtype=np.int8)),
        schema.DIM_LAYER: np.asarray(view.layer_blocks, dtype=np.int32),
        schema.DIM_FRAME: np.arange(frames, dtype=np.int32),
        "frame_first_pixel": (schema.DIM_FRAME, np.asarray(first, dtype=np.int32)),
        "frame_last_pixel": (schema.DIM_FRAME, np.asarray(last, dtype=np.int32)),
        schema.DIM_Y: np.arange(height, dtype=np.int32),
        schema.DIM_X: np.arange(width, dtype=np.int32),
        schema.DIM_TOKEN: np.asarray(texts, dtype=object),
        "word": (schema.DIM_TOKEN, np.asarray(word_text, dtype=object)),
        "word_index": (schema.DIM_TOKEN, np.asarray(word_index, dtype=np.int32)),
        "token_index": (schema.DIM_TOKEN, np.arange(len(texts), dtype=np.int32)),
    }
