"""Read a store for analysis: its description, and its attention one step at a time, as stored.

Everything here goes through :mod:`shared.schema` names; nothing else in the analyzer
touches the Zarr layout. The attention array is never read whole: :meth:`StoreView.read_raw`
reads one step (the selected layers of it); :mod:`analyzer.streaming` runs those reads
ahead of the reduction (:func:`analyzer.statistics.reduce_step`) and of the caller. This
module only reads: the values are checked and reduced elsewhere.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np
from zarr.core.sync import sync

from analyzer.errors import AnalyzerError, StepError
from analyzer.text import ranges
from shared import chunk_reader
from shared import grid as latent
from shared import schema
from shared.schema import Attr, BranchAttr, GridKey, RecordOption
from shared.store import open_store

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from analyzer.integrity import Problem


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
class RawStep:
    """One step as stored: attention (L, Q, T) and padding (L, Q) float16, per-head summaries, the layers read."""

    step: Step
    layers: list[int]
    attention: np.ndarray
    padding: np.ndarray
    heads: dict[str, np.ndarray]
    buffer: np.ndarray  # what ``attention`` is a view of, as read: reused once the step is released


# At most this many buffers of released steps wait for reuse (the streaming pass has about as many in flight).
SPARE_BUFFERS = 4


# The per-head summaries, by the name statistics.StepData.heads and the head ranking use.
def _head_specs(branch: str) -> dict[str, schema.ArraySpec]:
    return {"entropy": schema.head_entropy(branch), "token_mass": schema.head_token_mass(branch),
            "padding": schema.head_padding_mass(branch)}


class StoreView:
    """A validated store, opened read-only, seen through one branch."""

    def __init__(self, location: str | os.PathLike, branch: str = schema.BRANCH_COND,
                 storage_options: dict | None = None):
        self.location = os.fspath(location)
        self.storage_options = storage_options  # for what reads the store again (the viewer)
        self.root = open_store(self.location, storage_options)  # StoreError on anything that is not a readable store
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
        # open_store has checked that the version is readable
        self.version: tuple[int, int] = schema.version_tuple(self.attrs.get(Attr.SCHEMA_VERSION))

        self.attention = self.root[schema.attention(branch).path]
        self._spare_attention: list[np.ndarray] = []  # buffers of released steps (see release)
        self.padding = self.root[schema.padding_mass(branch).path]
        self.head_arrays = {name: self.root[spec.path] for name, spec in _head_specs(branch).items()}
        self.head_paths = {name: array_path(array) for name, array in self.head_arrays.items()}
        self.video = self.root[schema.VIDEO.path]
        n_steps, n_layers, frames, height, width, n_tokens = self.attention.shape
        self.grid: tuple[int, int, int] = (frames, height, width)

        self.steps = self._read_steps(n_steps)
        self.layer_blocks: list[int] = self._read_layer_blocks(n_layers)
        with self._attribute(f"{Attr.RECORD_OPTIONS}.{RecordOption.MANTISSA_BITS}"):
            bits = self.record_options.get(RecordOption.MANTISSA_BITS, schema.FLOAT16_MANTISSA_BITS)
            if isinstance(bits, bool) or not isinstance(bits, int) or not 0 <= bits <= schema.FLOAT16_MANTISSA_BITS:
                raise ValueError(f"{str(bits)[:40]!r} is not a number of mantissa bits "
                                 f"0..{schema.FLOAT16_MANTISSA_BITS}")
            self.mantissa_bits: int = bits
        self.token_ids: list[int] = self._read_token_ids(n_tokens)
        self.video_written, self.video_written_source = self._read_video_written()

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

    def _read_array(self, array, name: str, selection=slice(None), what: str = "", step: Step | None = None,
                    spare: list[np.ndarray] | None = None):
        """Read ``array[selection]``; a corrupt or unreadable chunk becomes one line naming the array and chunk.

        The error is a :class:`StepError` (what ``--skip-corrupt`` skips) when ``step`` is given.
        A failed read is retried chunk by chunk to find the chunk at fault (zarr's message
        does not name it); the key is the store's own, e.g. ``c/3/0/0/0/0/0`` for zarr v3's
        default encoding, the path of the chunk's file under the array's folder.
        """
        try:
            return _get(array, selection, spare)
        except Exception as exc:  # zarr and its codecs raise many types (RuntimeError from blosc, ValueError, OSError)
            key, chunk_exc = _failing_chunk(array, selection)
            exc = chunk_exc or exc
            chunk = f" chunk {key}" if key is not None else ""
            where = f" {what}" if what else ""
            reason = f"cannot read {name}{chunk}{where}: {type(exc).__name__}: {' '.join(str(exc).split())}"
            if step is not None:
                raise StepError(self.location, step, reason) from None
            raise AnalyzerError(f"{self.location}: {reason}") from None

    def _read_steps(self, n_steps: int) -> list[Step]:
        arrays = {spec.path: self._read_array(self.root[spec.path], spec.path) for spec in schema.STEP_ARRAYS}
        with self._attribute(f"{Attr.RECORD_OPTIONS}.{RecordOption.STEP_STRIDE}"):
            stride = int(self.record_options.get(RecordOption.STEP_STRIDE, 1) or 1)
        # The step each position was planned for (a step never written has index -1). From the
        # step axis, not from num_inference_steps, which a damaged store may give as anything.
        planned = schema.recorded_steps(n_steps * stride, stride)
        steps = []
        for p in range(n_steps):
            index = int(arrays[schema.STEP_INDEX.path][p])
            steps.append(Step(
                position=p,
                index=index if index >= 0 else planned[p],
                timestep=float(arrays[schema.STEP_TIMESTEP.path][p]),
                sigma=float(arrays[schema.STEP_SIGMA.path][p]),
                expert=int(arrays[schema.STEP_EXPERT.path][p]),
                complete=bool(arrays[schema.STEP_COMPLETE.path][p]),
            ))
        self.step_problems = _step_problems(steps, arrays[schema.STEP_INDEX.path])
        return steps

    def _read_layer_blocks(self, n_layers: int) -> list[int]:
        """layers/block, refused when an entry is no block: the fill value -2 means its chunk is gone."""
        spec = schema.LAYER_BLOCK
        blocks = [int(b) for b in self._read_array(self.root[spec.path], spec.path)]
        if len(blocks) != n_layers:
            raise AnalyzerError(f"{self.location}: {spec.path} has {len(blocks)} entries but "
                                f"{schema.attention(self.branch).path} has {n_layers} layers")
        for entry, block in enumerate(blocks):
            if block == spec.fill_value:  # otherwise every layer would silently read as "mean of layers"
                raise AnalyzerError(f"{self.location}: {spec.path} entry {entry} is {block}, the fill value: its "
                                    f"chunk was never written, or was deleted")
            if block < -1:
                raise AnalyzerError(f"{self.location}: {spec.path} entry {entry} is {block}, neither a transformer "
                                    f"block (>= 0) nor -1 (the mean over layers)")
        return blocks

    def _read_token_ids(self, n_tokens: int) -> list[int]:
        """The branch's tokenizer ids, written when the store is created: -1, the fill value, means a lost chunk."""
        spec = schema.token_ids(self.branch)
        ids = np.asarray(self._read_array(self.root[spec.path], spec.path))
        if ids.shape != (n_tokens,):
            raise AnalyzerError(f"{self.location}: {spec.path} has shape {list(ids.shape)}, expected [{n_tokens}]")
        lost = np.flatnonzero(ids < 0)
        if lost.size:
            raise AnalyzerError(f"{self.location}: {spec.path} entry {lost[0]} is {ids[lost[0]]}, the fill value: "
                                f"its chunk was never written, or was deleted")
        return ids.tolist()

    def _read_video_written(self) -> tuple[np.ndarray, str]:
        """Which frames of the video exist, and what says so.

        Since 1.1 the recorder marks each frame once its chunk is written; a 1.0 store wrote
        its video only at the very end, just before its status became "complete". So a
        complete store has every frame: flags that say otherwise are damage, not a partial video.
        """
        count = self.num_video_frames
        spec = schema.VIDEO_WRITTEN
        if not (self.version >= schema.VIDEO_WRITTEN_SINCE and spec.path in self.root):
            return np.full(count, self.status == schema.STATUS_COMPLETE), f"status {self.status!r} of a 1.0 store"
        array = self.root[spec.path]
        flags = np.asarray(self._read_array(array, spec.path), dtype=bool)
        if flags.shape != (count,):
            raise AnalyzerError(f"{self.location}: {spec.path} has shape {list(flags.shape)}, expected [{count}]")
        if self.status == schema.STATUS_COMPLETE and not flags.all() and not schema.video_left_out(self.attrs):
            key = _chunk_key(array, (0,))
            lost = f": its chunk {key} is missing (deleted)" if not _key_exists(array, key) else ""
            raise AnalyzerError(f"{self.location}: {spec.path} marks frames {ranges(np.flatnonzero(~flags).tolist())} "
                                f"as not written although the status is complete{lost}")
        return flags, spec.path

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

    def read_raw(self, step: Step, layers: list[int]) -> RawStep:
        """The selected layer entries of one step as stored; a StepError if the step cannot be used.

        Raises before reading when the step's bookkeeping is wrong (see :func:`_step_problems`).
        """
        problem = self.step_problems.get(step.position)
        if problem is not None:
            raise StepError(self.location, step, problem)
        layer_sel = _as_selection(layers)
        where = f"at step {step.index} (branch {self.branch})"
        selection = (step.position, layer_sel)
        att = self._read_array(self.attention, schema.attention(self.branch).path, selection, where, step,
                               self._spare_attention)
        pad = self._read_array(self.padding, schema.padding_mass(self.branch).path, selection, where, step)
        heads = {name: np.asarray(self._read_array(array, array_path(array), selection, where, step), dtype=np.float64)
                 for name, array in self.head_arrays.items()}
        log.debug("read step %d (position %d) of %s: %d layer entries, %d attention values", step.index,
                  step.position, self.branch, att.shape[0], att.size)
        return RawStep(step, list(layers), att.reshape(att.shape[0], -1, att.shape[-1]), pad.reshape(pad.shape[0], -1),
                       heads, att)

    def release(self, raw: RawStep) -> None:
        """Hand back a step read by :meth:`read_raw` that nobody uses any more: the next read reuses its buffer.

        Reusing the few buffers in flight spares the page faults of a fresh 60 MB array per step
        (a fifth of the read's CPU on a 480x832 store).
        """
        if len(self._spare_attention) < SPARE_BUFFERS:
            self._spare_attention.append(raw.buffer)

    def with_chunk(self, problem: Problem, raw: RawStep) -> str:
        """The problem's message, with the chunk that holds the bad value (and whether that chunk exists)."""
        if problem.layer is None:
            return problem.message
        array = self.attention if problem.array == "attention" else self.padding
        frame = problem.query // (self.grid[1] * self.grid[2])
        index = (raw.step.position, raw.layers[problem.layer], frame) + (0,) * (array.ndim - 3)
        key = _chunk_key(array, index)
        if problem.not_a_number and not _key_exists(array, key):
            return f"{problem.message} (its chunk {key} is missing: never written, or deleted)"
        return f"{problem.message} (chunk {key})"

    def read_video_frame(self, index: int) -> np.ndarray:
        """One decoded RGB frame (height, width, 3) uint8 of a frame marked written; AnalyzerError otherwise.

        A written frame whose chunk is missing is corruption, not a black frame: zarr would
        read the missing chunk back as its fill value, zeros.
        """
        path = schema.VIDEO.path
        if not self.video_written[index]:
            raise AnalyzerError(f"{self.location}: video frame {index} was not recorded ({self.video_written_source})")
        frame = self._read_array(self.video, path, index, f"frame {index}")
        if not frame.any():  # a black frame, or a missing chunk read back as zeros: only then ask which
            key = _chunk_key(self.video, (index, 0, 0, 0))
            if not _key_exists(self.video, key):
                raise AnalyzerError(f"{self.location}: {path} frame {index} is marked written "
                                    f"({self.video_written_source}) but its chunk {key} is missing: the store is "
                                    f"corrupt")
        return frame

    @property
    def num_video_frames(self) -> int:
        return int(self.video.shape[0])


def array_path(array) -> str:
    """The array's path inside the store ("cond/head_entropy"), as messages name it."""
    return str(array.path).strip("/")


def _step_problems(steps: list[Step], raw_index: np.ndarray) -> dict[int, str]:
    """What is wrong with the bookkeeping of each complete step, by position; steps without a problem are absent.

    A complete step has its index, timestep and sigma written; two complete steps with one
    index would draw their pictures over each other.
    """
    problems: dict[int, str] = {}
    positions_of: dict[int, list[int]] = defaultdict(list)
    for step in steps:
        if not step.complete:
            continue
        if raw_index[step.position] < 0:
            problems[step.position] = (f"{schema.STEP_INDEX.path} at position {step.position} is "
                                       f"{int(raw_index[step.position])} (never written) although the step is "
                                       f"marked complete")
        else:
            positions_of[step.index].append(step.position)
        for spec, value in ((schema.STEP_TIMESTEP, step.timestep), (schema.STEP_SIGMA, step.sigma)):
            if not math.isfinite(value):
                shown = "NaN" if math.isnan(value) else value
                problems.setdefault(step.position, f"{spec.path} at step {step.index} is {shown} although the step "
                                                   f"is marked complete")
    for index, positions in positions_of.items():
        if len(positions) > 1:
            for position in positions:
                problems.setdefault(position, f"{schema.STEP_INDEX.path}: step {index} is recorded at positions "
                                              f"{', '.join(str(p) for p in positions)}, each marked complete")
    return problems


def _get(array, selection, spare: list[np.ndarray] | None = None):
    """``array[selection]``; a local store's chunks decoded in place (``shared.chunk_reader``), into a buffer
    taken from ``spare`` when one there has the right size."""
    box = _as_box(array, selection)
    if box is not None and chunk_reader.supported(array):  # the hot path: whole chunks, decoded in place
        cut, dropped = box
        shape = _box_shape(cut, array)
        out = _take_spare(spare, shape, array.dtype)
        return chunk_reader.read_box(array, cut, out).reshape([n for n, d in zip(shape, dropped) if not d])
    if isinstance(selection, tuple) and len(selection) == 2 and not isinstance(selection[1], slice):
        return array.get_orthogonal_selection(selection)
    return array[selection]


def _take_spare(spare: list[np.ndarray] | None, shape: list[int], dtype) -> np.ndarray | None:
    """A buffer from ``spare`` of this size and dtype, as this shape, or None; one of another size is dropped."""
    while spare:
        try:
            buffer = spare.pop()
        except IndexError:  # another thread took the last one
            return None
        if buffer.dtype == dtype and buffer.size == math.prod(shape) and buffer.flags.c_contiguous:
            return buffer.reshape(shape)
    return None


def _as_box(array, selection) -> tuple[tuple[slice, ...], list[bool]] | None:
    """``selection`` (integers and step-1 slices) as one slice per dimension, and which integers to drop; else None."""
    parts = selection if isinstance(selection, tuple) else (selection,)
    if len(parts) > array.ndim:
        return None
    box, dropped = [], []
    for part, size in zip(parts + (slice(None),) * (array.ndim - len(parts)), array.shape):
        if isinstance(part, (int, np.integer)) and not isinstance(part, bool):
            index = int(part) + size if part < 0 else int(part)
            if not 0 <= index < size:
                return None  # zarr raises its own IndexError
            box.append(slice(index, index + 1))
            dropped.append(True)
        elif isinstance(part, slice) and part.step in (None, 1):
            box.append(part)
            dropped.append(False)
        else:
            return None
    return tuple(box), dropped


def _box_shape(box: tuple[slice, ...], array) -> list[int]:
    return [len(range(*s.indices(n))) for s, n in zip(box, array.shape)]


def _chunk_key(array, index: tuple[int, ...]) -> str:
    """The store key (relative to the array) of the chunk holding element ``index``."""
    return array.metadata.encode_chunk_key(tuple(int(i) // int(c) for i, c in zip(index, array.chunks)))


def _key_exists(array, key: str) -> bool:
    return bool(sync((array.store_path / key).exists()))


def _chunks_touched(array, selection) -> Iterator[tuple[int, ...]]:
    """The chunk grid coordinates a read of ``array[selection]`` touches (ints, slices, index arrays)."""
    parts = selection if isinstance(selection, tuple) else (selection,)
    per_axis = []
    for axis, (size, chunk) in enumerate(zip(array.shape, array.chunks)):
        part = parts[axis] if axis < len(parts) else slice(None)
        indices = range(*part.indices(size)) if isinstance(part, slice) else np.atleast_1d(part)
        per_axis.append(sorted({(int(i) % size) // int(chunk) for i in indices}) if size else [])
    return itertools.product(*per_axis)


def _failing_chunk(array, selection) -> tuple[str | None, Exception | None]:
    """The key of the first chunk of the selection that cannot be read, with its error; (None, None) if none."""
    try:
        for coords in _chunks_touched(array, selection):
            try:
                array.get_block_selection(coords)
            except Exception as exc:  # the same many types as the read that failed
                return array.metadata.encode_chunk_key(coords), exc
    except Exception:  # an array too broken to walk: the caller still has the first error
        pass
    return None, None


def _as_selection(layers: list[int]):
    """A slice when the layers are contiguous (one plain read), else an index array."""
    if list(layers) == list(range(layers[0], layers[0] + len(layers))):
        return slice(layers[0], layers[0] + len(layers))
    return np.asarray(layers)
