"""Check a whole store, chunk by chunk: what ``wan-analyze validate`` runs.

:func:`check_store` opens the store read-only (:func:`shared.store.open_store`: schema,
version, attributes, and every array's dims, dtype, codecs, shape and chunks) and then
looks at the chunks themselves: which steps are complete, whether the chunks that a
complete step, a written video frame or the store's fixed arrays need exist, and (unless
``quick``) decodes every chunk that exists, so that a flipped bit fails its crc32c. One
chunk is held at a time. Nothing is ever written. Every problem names the array and the
chunk key (zarr v3's, e.g. ``c/0/1/0/0/0/0``, the chunk's path under the array's folder).
"""

from __future__ import annotations

import itertools
import os
import sys
from dataclasses import dataclass, field

import numpy as np
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from shared import schema
from shared.errors import describe
from shared.ownership import LOCK_NAME
from shared.schema import Attr
from shared.store import RESERVE_NAME, StoreError, open_store, store_arrays, store_groups


@dataclass(frozen=True)
class CheckProblem:
    """One thing wrong: the array (or "store" for the whole), the chunk key ("" when none), and why, in one line."""

    array: str
    chunk: str
    reason: str

    def __str__(self) -> str:
        return f"{self.array} {self.chunk}: {self.reason}" if self.chunk else f"{self.array}: {self.reason}"


@dataclass
class CheckReport:
    """What :func:`check_store` found."""

    location: str
    quick: bool
    schema_version: str | None = None
    status: str | None = None
    steps_total: int = 0
    complete_steps: list[int] = field(default_factory=list)  # pipeline step indices of the complete steps
    video_frames: int = 0
    video_frames_written: int = 0
    arrays_checked: int = 0
    chunks_present: int = 0  # chunks found in the store
    chunks_checked: int = 0  # chunks decoded (0 with quick)
    bytes_checked: int = 0  # stored (compressed) bytes of the chunks decoded
    problems: list[CheckProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what is odd but not wrong (keys outside the schema)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def steps_complete(self) -> int:
        return len(self.complete_steps)


class _Keys:
    """Which keys exist: one listing of the store when it can list, else one question per key."""

    def __init__(self, store):
        self.store = store
        self.listed: set[str] | None = None
        protocol = getattr(getattr(store, "fs", None), "protocol", None)
        protocols = {protocol} if isinstance(protocol, str) else set(protocol or ())
        # A web server lists a folder only if it serves an index page, and then as HTML: never trusted
        if getattr(store, "supports_listing", False) and not protocols & {"http", "https"}:
            try:  # a zip lists its folders too ("cond/"): those are not keys
                self.listed = {key for key in sync(_collect(store.list())) if not key.endswith("/")}
            except Exception:  # noqa: BLE001 - a store that cannot list after all: ask per key
                self.listed = None

    def exists(self, key: str) -> bool:
        if self.listed is not None:
            return key in self.listed
        return bool(sync(self.store.exists(key)))


async def _collect(agen) -> list[str]:
    return [key async for key in agen]


def _chunk_coords(array) -> itertools.product:
    return itertools.product(*(range(-(-int(n) // int(c))) for n, c in zip(array.shape, array.chunks)))


def _full_key(array, key: str) -> str:
    prefix = str(array.store_path.path).strip("/")
    return f"{prefix}/{key}" if prefix else key


def _needed_chunks(array, spec: schema.ArraySpec, complete_positions: list[int], frames_written: np.ndarray,
                   any_complete: bool, step_names: dict[int, str]) -> dict[tuple[int, ...], str]:
    """The chunks (by grid coordinates) that must exist, with why: a complete step's, a written frame's, a fixed
    array's. Chunks of steps not complete and of frames not written may be absent (a partial recording)."""
    coords = list(_chunk_coords(array))
    if spec.dims and spec.dims[0] == schema.DIM_STEP and spec not in schema.STEP_ARRAYS:
        chunk = int(array.chunks[0])
        rows = {p // chunk: p for p in complete_positions}
        needed = {c: f"step {step_names.get(rows[c[0]], rows[c[0]])} is marked complete but this chunk is missing"
                  for c in coords if c[0] in rows}
    elif spec.path == schema.VIDEO.path:
        chunk = int(array.chunks[0])
        written = {int(i) // chunk: int(i) for i in np.flatnonzero(frames_written)}
        needed = {c: f"frame {written[c[0]]} is marked written but its chunk is missing"
                  for c in coords if c[0] in written}
    elif spec == schema.STEP_EXPERT:  # -1 (unknown expert) is its fill value: zarr may skip an all -1 chunk
        needed = {}
    elif spec in schema.STEP_ARRAYS:
        needed = {c: "steps are marked complete but this chunk is missing" for c in coords} if any_complete else {}
    elif spec.path == schema.VIDEO_WRITTEN.path:
        needed = {c: "frames are written but this chunk is missing" for c in coords} \
            if frames_written.any() else {}
    else:  # layers/block and token_ids: written when the store is created
        needed = {c: "written when the store is created, but missing" for c in coords}
    return needed


def _read_small(array, report: CheckReport, spec: schema.ArraySpec) -> np.ndarray | None:
    """A whole small array (step flags, video_written); None and a problem when it cannot be read."""
    try:
        return np.asarray(array[...])
    except Exception as exc:  # noqa: BLE001 - zarr and its codecs raise many types
        report.problems.append(CheckProblem(spec.path, _failing_key(array), f"cannot be read: {describe(exc)}"))
        return None


def _failing_key(array) -> str:
    for coords in _chunk_coords(array):
        try:
            array.get_block_selection(coords)
        except Exception:  # noqa: BLE001
            return array.metadata.encode_chunk_key(coords)
    return ""


def _steps(root, report: CheckReport) -> list[int]:
    """Read the step bookkeeping into the report; return the positions of the complete steps."""
    arrays = {spec.path: root[spec.path] for spec in schema.STEP_ARRAYS}
    n_steps = int(arrays[schema.STEP_COMPLETE.path].shape[0])
    report.steps_total = n_steps
    complete = _read_small(arrays[schema.STEP_COMPLETE.path], report, schema.STEP_COMPLETE)
    index = _read_small(arrays[schema.STEP_INDEX.path], report, schema.STEP_INDEX)
    if complete is None:
        return []
    options = root.attrs.asdict().get(Attr.RECORD_OPTIONS) or {}
    try:
        stride = max(1, int(options.get(schema.RecordOption.STEP_STRIDE, 1) or 1))
    except (TypeError, ValueError):
        stride = 1
    planned = schema.recorded_steps(n_steps * stride, stride)
    positions = [int(p) for p in np.flatnonzero(complete.astype(bool))]
    for p in positions:
        value = int(index[p]) if index is not None else -1
        report.complete_steps.append(value if value >= 0 else planned[p])
        if index is not None and value < 0:
            report.problems.append(CheckProblem(schema.STEP_INDEX.path, "",
                                                f"position {p} is {value} (never written) although the step is "
                                                "marked complete"))
    return positions


def _video_written(root, report: CheckReport) -> np.ndarray:
    frames = int(root[schema.VIDEO.path].shape[0])
    report.video_frames = frames
    if schema.VIDEO_WRITTEN.path in root:
        flags = _read_small(root[schema.VIDEO_WRITTEN.path], report, schema.VIDEO_WRITTEN)
        flags = np.zeros(frames, bool) if flags is None else flags.astype(bool)
        without_video = schema.video_left_out(root.attrs.asdict())  # `wan-analyze subset --no-video`
        if report.status == schema.STATUS_COMPLETE and not flags.all() and not without_video:
            report.problems.append(CheckProblem(
                schema.VIDEO_WRITTEN.path, "", f"{int((~flags).sum())} of {frames} frames are marked not written "
                                               "although the status is complete"))
    else:  # schema 1.0: the video was written just before the status became complete
        flags = np.full(frames, report.status == schema.STATUS_COMPLETE)
    report.video_frames_written = int(flags.sum())
    return flags


class _Decoder:
    """Decodes one chunk's stored bytes through the array's codec pipeline (crc32c included)."""

    def __init__(self, array):
        self.array = array
        self._async = getattr(array, "_async_array", None)

    def __call__(self, coords: tuple[int, ...], data) -> None:
        prototype = default_buffer_prototype()
        pipeline = getattr(self._async, "codec_pipeline", None)
        if pipeline is None:  # another zarr: read it again through the public API
            self.array.get_block_selection(coords)
            return
        spec = self._async.metadata.get_chunk_spec(coords, self._async.config, prototype)
        decoded = sync(pipeline.decode([(data, spec)]))
        chunk = decoded[0] if decoded else None
        if chunk is None:
            raise ValueError("decodes to nothing")
        values = chunk.as_numpy_array()
        if values.shape != tuple(spec.shape):
            raise ValueError(f"decodes to shape {list(values.shape)}, expected {list(spec.shape)}")


def _known_key(key: str, arrays: dict[str, object], groups: set[str]) -> bool:
    """Whether ``key`` belongs to the schema: a node's zarr.json or a chunk inside an array's grid."""
    if key in (LOCK_NAME, RESERVE_NAME):
        return True
    folder, _, name = key.rpartition("/")
    if name == "zarr.json" and (folder in arrays or folder in groups):
        return True
    for path, array in arrays.items():
        if key.startswith(path + "/c/") or key == path + "/c":
            parts = key[len(path) + 3:].split("/")
            try:
                coords = tuple(int(p) for p in parts)
            except ValueError:
                return False
            grid = [-(-int(n) // int(c)) for n, c in zip(array.shape, array.chunks)]
            return len(coords) == len(grid) and all(0 <= i < g for i, g in zip(coords, grid))
    return False


def check_store(location: str | os.PathLike, *, quick: bool = False, storage_options: dict | None = None,
                progress: bool = False) -> CheckReport:
    """Check the store at ``location`` (directory, zip, or URL); never writes.

    ``quick`` checks the metadata, the step flags and that the chunks a complete step
    needs exist, without decoding the chunks. A store that does not open (a metadata
    problem) is reported as one problem, and nothing more is checked.
    """
    location = os.fspath(location)
    report = CheckReport(location=location, quick=quick)
    try:
        root = open_store(location, storage_options)
    except StoreError as exc:
        report.problems.append(CheckProblem("store", "", str(exc)))
        return report
    attrs = root.attrs.asdict()
    report.schema_version = str(attrs.get(Attr.SCHEMA_VERSION))
    report.status = str(attrs.get(Attr.STATUS))
    specs = store_arrays(attrs)
    arrays = {spec.path: root[spec.path] for spec in specs}
    report.arrays_checked = len(arrays)

    positions = _steps(root, report)
    frames_written = _video_written(root, report)
    store = root.store_path.store
    keys = _Keys(store)
    if keys.listed is not None:
        groups = set(store_groups(specs))
        extra = sorted(k for k in keys.listed if not _known_key(k, arrays, groups))
        if extra:
            shown = ", ".join(extra[:10]) + (f" and {len(extra) - 10} more" if len(extra) > 10 else "")
            report.notes.append(f"{len(extra)} key(s) outside the schema: {shown}")

    total = sum(int(np.prod([-(-int(n) // int(c)) for n, c in zip(a.shape, a.chunks)], dtype=np.int64))
                for a in arrays.values())
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="wan-analyze validate", unit="chunk", file=sys.stderr, leave=False)
    try:
        for spec in specs:
            array = arrays[spec.path]
            _check_array(array, spec, keys, report, positions, frames_written, quick, bar)
    finally:
        if bar is not None:
            bar.close()
    seen: set[tuple[str, str]] = set()  # a chunk read twice (the step flags) is one problem
    unique = []
    for problem in report.problems:
        if problem.chunk and (problem.array, problem.chunk) in seen:
            continue
        seen.add((problem.array, problem.chunk))
        unique.append(problem)
    report.problems = unique
    return report


def _check_array(array, spec: schema.ArraySpec, keys: _Keys, report: CheckReport, positions: list[int],
                 frames_written: np.ndarray, quick: bool, bar) -> None:
    names = {p: (f"{i} (position {p})" if i != p else str(i)) for p, i in zip(positions, report.complete_steps)}
    needed = _needed_chunks(array, spec, positions, frames_written, bool(positions), names)
    decode = _Decoder(array)
    store_path = array.store_path
    for coords in _chunk_coords(array):
        key = array.metadata.encode_chunk_key(coords)
        full = _full_key(array, key)
        try:
            if quick:
                present = keys.exists(full)
                data = None
            elif keys.listed is not None and full not in keys.listed:
                present, data = False, None
            else:
                data = sync((store_path / key).get(prototype=default_buffer_prototype()))
                present = data is not None
        except Exception as exc:  # noqa: BLE001 - an unsafe key (a FIFO, a link out of the store), an I/O error
            report.problems.append(CheckProblem(spec.path, key, f"cannot be read: {describe(exc)}"))
            if bar is not None:
                bar.update(1)
            continue
        if not present:
            if coords in needed:
                report.problems.append(CheckProblem(spec.path, key, needed[coords]))
        else:
            report.chunks_present += 1
            if not quick:
                try:
                    decode(coords, data)
                    report.chunks_checked += 1
                    report.bytes_checked += len(data)
                except Exception as exc:  # noqa: BLE001 - a failed checksum, a broken codec stream, a bad size
                    report.problems.append(CheckProblem(spec.path, key, f"does not decode: {describe(exc)}"))
        if bar is not None:
            bar.update(1)
