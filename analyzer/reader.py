"""Read a store for analysis: its description, and its attention one step at a time.

Everything here goes through :mod:`shared.schema` names; nothing else in the analyzer
touches the Zarr layout. The attention array is never read whole: :func:`iter_steps`
reads one step (the selected layers of it) while the caller works on the previous one.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from analyzer.arrays import HALF_INVALID, column_sums, half_to_single
from analyzer.errors import AnalyzerError
from shared import grid as latent
from shared import schema
from shared.schema import Attr, BranchAttr, GridKey, RecordOption
from shared.store import open_store


@dataclass(frozen=True)
class Step:
    """One entry of the store's step axis."""

    position: int  # along the store's step axis
    index: int  # the pipeline's step index
    timestep: float
    sigma: float
    expert: int  # 0, 1, or -1 when unknown
    complete: bool


@dataclass(frozen=True)
class Word:
    """A prompt word: consecutive sub-word tokens merged, as the recorder grouped them."""

    index: int
    text: str
    tokens: tuple[int, ...]
    special: bool
    punctuation: bool


@dataclass(frozen=True)
class StepData:
    """What the analysis needs from one step, reduced over the selected layers in the reader thread.

    attention: (queries, tokens) float32, mean over the selected layers.
    padding: (queries,) float32, mean padding mass over the selected layers.
    layer_token_mass: (layers, tokens) float64, mean over queries of each layer's attention.
    layer_padding: (layers,) float64, mean padding mass of each layer.
    """

    step: Step
    attention: np.ndarray
    padding: np.ndarray
    layer_token_mass: np.ndarray
    layer_padding: np.ndarray


class StoreView:
    """A validated store, opened read-only, seen through one branch."""

    def __init__(self, location: str | os.PathLike, branch: str = schema.BRANCH_COND):
        self.location = os.fspath(location)
        self.root = open_store(self.location)  # StoreError on anything that is not a readable store
        with self._attribute("(root attributes)"):
            self.attrs: dict = self.root.attrs.asdict()
        with self._attribute(Attr.RECORD_OPTIONS):
            self.record_options: dict = dict(self.attrs.get(Attr.RECORD_OPTIONS) or {})
            branches = self.record_options.get(RecordOption.BRANCHES, [schema.BRANCH_COND])
            if isinstance(branches, str):
                raise ValueError(f"branches is the string {branches!r}, not a list")
            self.branches: list[str] = [str(b) for b in branches]
        if branch not in self.branches:
            raise AnalyzerError(f"branch {branch!r} was not recorded; this store has {', '.join(self.branches)}")
        self.branch = branch
        self.status: str = str(self.attrs.get(Attr.STATUS))

        self.attention = self.root[schema.attention(branch).path]
        self.padding = self.root[schema.padding_mass(branch).path]
        self.video = self.root[schema.VIDEO.path]
        n_steps, n_layers, frames, height, width, n_tokens = self.attention.shape
        self.grid: tuple[int, int, int] = (frames, height, width)

        self.steps = self._read_steps(n_steps)
        self.layer_blocks: list[int] = [int(b) for b in self._read_array(self.root[schema.LAYER_BLOCK.path],
                                                                          schema.LAYER_BLOCK.path)]
        if len(self.layer_blocks) != n_layers:
            raise AnalyzerError(f"{self.location}: layers/block has {len(self.layer_blocks)} entries but "
                                f"{schema.attention(branch).path} has {n_layers} layers")

        with self._attribute(f"{branch} (group attributes)"):
            battrs = self.root[branch].attrs.asdict()
        with self._attribute(f"{branch}/{BranchAttr.PROMPT}"):
            self.prompt: str = str(battrs[BranchAttr.PROMPT])
        with self._attribute(f"{branch}/{BranchAttr.TOKENS}"):
            raw_tokens = battrs[BranchAttr.TOKENS]
            if isinstance(raw_tokens, str):
                raise ValueError(f"a string, not a list: {raw_tokens[:40]!r}")
            self.tokens: list[str] = [str(t) for t in raw_tokens]
        if len(self.tokens) != n_tokens:
            raise AnalyzerError(f"{self.location}: group {branch} names {len(self.tokens)} tokens but its "
                                f"attention has {n_tokens}")
        with self._attribute(f"{branch}/{BranchAttr.WORDS}"):
            self.words = self._read_words(battrs[BranchAttr.WORDS], n_tokens)
        with self._attribute(f"{branch}/{BranchAttr.NUM_KEYS}"):
            self.num_keys = int(battrs[BranchAttr.NUM_KEYS])

        with self._attribute(Attr.LATENT_GRID):
            grid_attrs = dict(self.attrs.get(Attr.LATENT_GRID) or {})
            declared = tuple(grid_attrs.get(k) for k in (GridKey.FRAMES, GridKey.HEIGHT, GridKey.WIDTH))
        if declared != self.grid:
            raise AnalyzerError(f"{self.location}: latent_grid says {declared} but the attention grid is {self.grid}")
        with self._attribute(f"{Attr.LATENT_GRID}.{GridKey.PIXEL_FRAMES}"):
            spans = grid_attrs.get(GridKey.PIXEL_FRAMES)
            if not spans:
                factor = int(grid_attrs.get(GridKey.VAE_SCALE_TEMPORAL) or 4)
                spans = latent.pixel_frames_of_latent(frames, factor)
            self.pixel_frames: list[tuple[int, int]] = [(int(a), int(b)) for a, b in spans]
            if len(self.pixel_frames) != frames:
                raise ValueError(f"{len(self.pixel_frames)} spans for {frames} latent frames")

    @contextmanager
    def _attribute(self, name: str):
        """Turn a malformed attribute (wrong type, missing key, bad shape) into one AnalyzerError naming it."""
        try:
            yield
        except AnalyzerError:
            raise
        except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
            reason = f"missing key {exc}" if isinstance(exc, KeyError) else " ".join(str(exc).split())
            raise AnalyzerError(f"{self.location}: attribute {name} is malformed: {reason}") from None

    def _read_array(self, array, name: str, selection=slice(None), what: str = "") -> np.ndarray:
        """Read ``array[selection]``; a corrupt or unreadable chunk becomes an AnalyzerError naming it."""
        try:
            if isinstance(selection, tuple) and len(selection) == 2 and not isinstance(selection[1], slice):
                return array.get_orthogonal_selection(selection)
            return array[selection]
        except Exception as exc:  # zarr and its codecs raise many types (RuntimeError from blosc, ValueError, OSError)
            where = f" {what}" if what else ""
            raise AnalyzerError(f"{self.location}: cannot read {name}{where}: {type(exc).__name__}: "
                                f"{' '.join(str(exc).split())}") from None

    def _read_steps(self, n_steps: int) -> list[Step]:
        arrays = {spec.path: self._read_array(self.root[spec.path], spec.path) for spec in schema.STEP_ARRAYS}
        with self._attribute(f"{Attr.RECORD_OPTIONS}.{RecordOption.STEP_STRIDE}"):
            stride = int(self.record_options.get(RecordOption.STEP_STRIDE, 1) or 1)
        steps = []
        for p in range(n_steps):
            index = int(arrays[schema.STEP_INDEX.path][p])
            steps.append(Step(
                position=p,
                # a step never written has index -1; the stride says which step it was meant to be
                index=index if index >= 0 else p * stride,
                timestep=float(arrays[schema.STEP_TIMESTEP.path][p]),
                sigma=float(arrays[schema.STEP_SIGMA.path][p]),
                expert=int(arrays[schema.STEP_EXPERT.path][p]),
                complete=bool(arrays[schema.STEP_COMPLETE.path][p]),
            ))
        return steps

    def _read_words(self, raw_words: list, n_tokens: int) -> list[Word]:
        if not isinstance(raw_words, (list, tuple)):
            raise TypeError(f"expected a list of words, got {type(raw_words).__name__}")
        words = []
        for i, raw in enumerate(raw_words):
            if not isinstance(raw, dict):
                raise TypeError(f"word {i} is a {type(raw).__name__}, not a mapping")
            tokens = tuple(int(t) for t in raw.get("tokens", ()))
            if not tokens or any(not 0 <= t < n_tokens for t in tokens):
                raise AnalyzerError(f"{self.location}: word {i} of group {self.branch} has token indices "
                                    f"{list(tokens)} outside 0..{n_tokens - 1}")
            words.append(Word(i, str(raw.get("text", "")), tokens, bool(raw.get("special", False)),
                              bool(raw.get("punctuation", False))))
        return words

    @property
    def complete_steps(self) -> list[Step]:
        return [s for s in self.steps if s.complete]

    @property
    def missing_steps(self) -> list[Step]:
        return [s for s in self.steps if not s.complete]

    @property
    def layers_separate(self) -> bool:
        """Whether each layer entry is one transformer block (not the mean over layers)."""
        return all(b >= 0 for b in self.layer_blocks)

    def read_raw(self, step: Step, layers: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """The selected layer entries of one step as stored: attention (L, Q, T) and padding (L, Q), float16."""
        layer_sel = _as_selection(layers, len(self.layer_blocks))
        where = f"at step {step.index} (branch {self.branch})"
        att = self._read_array(self.attention, schema.attention(self.branch).path, (step.position, layer_sel), where)
        pad = self._read_array(self.padding, schema.padding_mass(self.branch).path, (step.position, layer_sel),
                               where)
        return att.reshape(att.shape[0], -1, att.shape[-1]), pad.reshape(pad.shape[0], -1)

    def reduce(self, step: Step, att: np.ndarray, pad: np.ndarray) -> StepData:
        """Average a step over its layers, keeping each layer's token mass; raise if it holds NaN.

        Each layer is decoded from float16 into one reused float32 buffer (see
        :func:`analyzer.arrays.half_to_single`): converting the whole step at once would
        double the memory, and numpy's own cast is the slowest step of the pass.
        """
        n_layers, n_queries, n_tokens = att.shape
        total = np.zeros((n_queries, n_tokens), dtype=np.float32)
        layer_token_mass = np.empty((n_layers, n_tokens), dtype=np.float64)
        buffer = np.empty((n_queries, n_tokens), dtype=np.float32)
        for layer in range(n_layers):
            if att.dtype == np.float16:
                half_to_single(att[layer], buffer)
            else:
                np.copyto(buffer, att[layer])
            total += buffer
            layer_token_mass[layer] = column_sums(buffer) / n_queries
        total /= np.float32(n_layers)
        # decoded NaN / inf land at or above HALF_INVALID, and stay there in the mean
        if not total.max(initial=0.0) < HALF_INVALID / n_layers or not np.isfinite(total).all():
            raise AnalyzerError(f"{self.location}: step {step.index} is marked complete but its "
                                f"{self.branch} attention holds NaN")
        layer_padding = pad.sum(axis=1, dtype=np.float64) / n_queries
        # NaN (a padding chunk never written) and inf survive the sums over queries
        if not np.isfinite(layer_padding).all():
            raise AnalyzerError(f"{self.location}: step {step.index} is marked complete but its "
                                f"{self.branch} padding_mass holds NaN")
        padding = np.add.reduce(pad, axis=0, dtype=np.float32) / np.float32(n_layers)
        return StepData(step, total, padding, layer_token_mass, layer_padding)

    def read_step(self, step: Step, layers: list[int]) -> StepData:
        """Read the selected layer entries of one step and reduce them (:meth:`read_raw` then :meth:`reduce`)."""
        return self.reduce(step, *self.read_raw(step, layers))

    def read_head_arrays(self, positions: list[int], layers: list[int]) -> dict[str, np.ndarray]:
        """Per-head summaries of the given steps and layers: small arrays, read whole."""
        layer_sel = _as_selection(layers, len(self.layer_blocks))
        out = {}
        for name, spec in (("entropy", schema.head_entropy(self.branch)),
                           ("token_mass", schema.head_token_mass(self.branch)),
                           ("padding", schema.head_padding_mass(self.branch))):
            array = self.root[spec.path]
            out[name] = np.stack([np.asarray(self._read_array(array, spec.path, (p, layer_sel), f"at position {p}"),
                                             dtype=np.float64) for p in positions])
        return out

    def read_video_frame(self, index: int) -> np.ndarray:
        """One decoded RGB frame (height, width, 3) uint8; all zeros until the recorder wrote the video."""
        return self._read_array(self.video, schema.VIDEO.path, index, f"frame {index}")

    @property
    def num_video_frames(self) -> int:
        return int(self.video.shape[0])


def _as_selection(layers: list[int], total: int):
    """A slice when the layers are contiguous (one plain read), else an index array."""
    if layers == list(range(layers[0], layers[0] + len(layers))):
        return slice(layers[0], layers[0] + len(layers))
    return np.asarray(layers)


def iter_steps(view: StoreView, steps: list[Step], layers: list[int], ahead: int = 3) -> Iterator[StepData]:
    """Yield each step's reduced data in order, as a three-stage pipeline.

    One thread reads (and decompresses) steps, a second reduces them over layers, and the
    caller works on the step yielded; at most ``ahead`` steps are in flight besides the
    caller's, so memory stays bounded whatever the store's size, and the wall time is
    close to the slowest stage rather than to the sum of all three.
    """
    if not steps:
        return
    with ThreadPoolExecutor(1, thread_name_prefix="wan-analyze-read") as readers, \
            ThreadPoolExecutor(1, thread_name_prefix="wan-analyze-reduce") as reducers:
        def start(step: Step) -> Future:
            raw = readers.submit(view.read_raw, step, layers)
            return reducers.submit(lambda: view.reduce(step, *raw.result()))

        pending = deque(start(step) for step in steps[:ahead])
        following = iter(steps[ahead:])
        try:
            while pending:
                data = pending.popleft().result()
                step = next(following, None)
                if step is not None:
                    pending.append(start(step))
                yield data
        finally:
            for future in pending:  # the caller stopped early: do not read what nobody will use
                future.cancel()
