"""``subset_store``: a smaller store of the same schema, cut from a store (``wan-analyze subset``).

Some steps, some layers (or their mean, as the recorder's ``--layer-mean`` stores it), one
branch or all, the maps re-rounded to fewer mantissa bits, with or without the video. The
result is a store like any other (the analyzer reads it as it reads a recording); its root
attribute ``subset_of`` says what it was cut from and how. Only complete steps are copied.

Memory stays bounded: one (step, layer) map is read at a time, and a layer mean is
accumulated per step in one float32 buffer. Nothing is written to the source. The output's
status becomes the source's only once everything is written; a failure leaves it "failed".
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

import numpy as np

from analyzer.errors import AnalyzerError
from analyzer.selection import parse_numbers
from analyzer.text import ranges
from shared import schema
from shared.errors import describe
from shared.precision import round_mantissa
from shared.schema import Attr, RecordOption, SubsetKey
from shared.store import BranchLayout, StoreError, StoreLayout, create_recording_store, finish, open_store

BRANCH_ALL = "all"
# What the new store's creation sets, or what is set only when the copy is done: never copied up front.
_NOT_COPIED = (Attr.SCHEMA, Attr.SCHEMA_VERSION, Attr.STATUS, Attr.OWNER, Attr.COMPRESSION, Attr.ERROR,
               Attr.INTERRUPTED_BY, Attr.ENDED_AT, Attr.SUBSET_OF)
_AT_THE_END = (Attr.ENDED_AT, Attr.ERROR, Attr.INTERRUPTED_BY)
_MAPS = ("attention", "padding_mass")
_HEADS = ("head_entropy", "head_token_mass", "head_padding_mass")


def _spec(name: str, branch: str) -> schema.ArraySpec:
    return getattr(schema, name)(branch)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _check_out(out: str) -> None:
    if out.lower().endswith(".zip"):
        raise StoreError(f"{out}: a subset is written as a store directory, not a zip; make the subset, then "
                         "`wan-analyze pack` it")


def _branches(available: list[str], branch: str | None) -> list[str]:
    if branch in (None, BRANCH_ALL):
        return list(available)
    if branch == schema.BRANCH_COND:
        return [schema.BRANCH_COND]
    if branch == schema.BRANCH_UNCOND:
        raise AnalyzerError("--branch uncond: a store always holds the cond branch, so a subset keeps cond or all "
                            "branches; use --branch cond or --branch all")
    raise AnalyzerError(f"unknown branch {branch!r}; choose cond or all")


def _steps(root, options: dict, wanted_spec) -> tuple[list[tuple[int, int]], list[int]]:
    """The (source position, pipeline index) of the complete steps chosen, and the chosen indices left out."""
    index = np.asarray(root[schema.STEP_INDEX.path][...])
    complete = np.asarray(root[schema.STEP_COMPLETE.path][...], dtype=bool)
    stride = int(options.get(RecordOption.STEP_STRIDE, 1) or 1)
    planned = schema.recorded_steps(len(index) * stride, stride)
    indices = [int(i) if i >= 0 else planned[p] for p, i in enumerate(index)]
    wanted = parse_numbers(wanted_spec, "step", indices)
    if wanted is None:
        wanted = indices
    else:
        unknown = [w for w in wanted if w not in indices]
        if unknown:
            raise AnalyzerError(f"step {unknown[0]} was not recorded; recorded steps: {ranges(indices)}")
    wanted = set(wanted)
    kept = [(p, i) for p, i in enumerate(indices) if i in wanted and complete[p]]
    left_out = sorted(i for p, i in enumerate(indices) if i in wanted and not complete[p])
    if not kept:
        raise AnalyzerError(f"none of the steps chosen is complete (complete steps: "
                            f"{ranges([i for p, i in enumerate(indices) if complete[p]])})")
    return kept, left_out


def _layers(blocks: list[int], wanted_spec) -> list[int]:
    """Positions along the source's layer axis."""
    wanted = parse_numbers(wanted_spec, "layer", blocks)
    if wanted is None:
        return list(range(len(blocks)))
    if any(b < 0 for b in blocks):
        raise AnalyzerError("this store holds the mean over layers (layer_reduction 'mean'); single layers cannot "
                            "be selected")
    position = {b: i for i, b in enumerate(blocks)}
    missing = [b for b in wanted if b not in position]
    if missing:
        raise AnalyzerError(f"layer {missing[0]} was not recorded; recorded blocks: {ranges(blocks)}")
    return sorted({position[b] for b in wanted})


def _video_written(root, status: str, frames: int) -> np.ndarray:
    if schema.VIDEO_WRITTEN.path in root:
        return np.asarray(root[schema.VIDEO_WRITTEN.path][...], dtype=bool)
    return np.full(frames, status == schema.STATUS_COMPLETE)  # a 1.0 store


def subset_store(location, out, *, steps=None, layers=None, layer_mean: bool = False, branch: str | None = None,
                 mantissa_bits: int | None = None, video: bool = True, storage_options: dict | None = None,
                 progress: bool = False) -> Path:
    """Write the subset of the store at ``location`` to the new directory ``out``; return ``out``.

    steps, layers: pipeline step indices and transformer blocks ("0,5,10-20" or a list); None = all.
    layer_mean: store the mean over the chosen layers (as the recorder's layer mean: summed in float32,
        divided, cast to float16) instead of each layer. branch: "cond", "all" or None (= all).
    mantissa_bits: round the maps to this many float16 mantissa bits (at most what the store has).
    video: copy the video; without it, the video array is there but no frame is written.
    Raises StoreError (an unreadable source, an output that exists or is a zip) or AnalyzerError (a choice
    the store cannot satisfy), each one line.
    """
    location, out = os.fspath(location), os.fspath(out)
    _check_out(out)
    src = open_store(location, storage_options)
    attrs = src.attrs.asdict()
    options = dict(attrs.get(Attr.RECORD_OPTIONS) or {})
    branches = _branches([str(b) for b in options.get(RecordOption.BRANCHES, [schema.BRANCH_COND])], branch)
    current_bits = options.get(RecordOption.MANTISSA_BITS, schema.FLOAT16_MANTISSA_BITS)
    bits = current_bits if mantissa_bits is None else mantissa_bits
    if isinstance(bits, bool) or not isinstance(bits, int) or not 0 <= bits <= schema.FLOAT16_MANTISSA_BITS:
        raise AnalyzerError(f"mantissa bits must be a whole number 0..{schema.FLOAT16_MANTISSA_BITS}, got {bits!r}")
    if bits > current_bits:
        raise AnalyzerError(f"--mantissa-bits {bits}: this store keeps {current_bits} mantissa bits; a subset can "
                            "only keep as many or fewer")

    kept, left_out = _steps(src, options, steps)
    blocks = [int(b) for b in src[schema.LAYER_BLOCK.path][...]]
    layer_positions = _layers(blocks, layers)
    chosen_blocks = [blocks[i] for i in layer_positions]
    already_mean = any(b < 0 for b in blocks)
    mean = layer_mean and not already_mean
    out_blocks = (-1,) if (mean or already_mean) else tuple(chosen_blocks)
    averaged = list(options.get(RecordOption.LAYERS) or []) if already_mean else chosen_blocks

    stride = int(options.get(RecordOption.STEP_STRIDE, 1) or 1)
    kept_indices = [i for _, i in kept]
    out_stride = stride if kept_indices == schema.recorded_steps(len(kept) * stride, stride) else 1
    heads = options.get(RecordOption.HEADS)
    record = schema.record_options(averaged, heads=heads if isinstance(heads, list) else None,
                                   layer_mean=mean or already_mean, branches=tuple(branches),
                                   step_stride=out_stride, mantissa_bits=bits,
                                   query_chunk=options.get(RecordOption.QUERY_CHUNK))
    status = str(attrs.get(Attr.STATUS))
    subset_of = {
        SubsetKey.SOURCE: location, SubsetKey.SOURCE_STATUS: status, SubsetKey.STEPS: kept_indices,
        SubsetKey.STEPS_LEFT_OUT: left_out, SubsetKey.LAYERS: chosen_blocks if not already_mean else averaged,
        SubsetKey.LAYER_MEAN: mean or already_mean, SubsetKey.BRANCHES: branches, SubsetKey.MANTISSA_BITS: bits,
        SubsetKey.VIDEO: bool(video), SubsetKey.MADE_AT: _now(),
    }
    first = src[schema.attention(branches[0]).path]
    _, _, f, h, w, _ = first.shape
    video_array = src[schema.VIDEO.path]
    layout = StoreLayout(
        num_steps=len(kept), layer_blocks=out_blocks, grid=(int(f), int(h), int(w)),
        num_heads=int(src[schema.head_entropy(branches[0]).path].shape[2]),
        branches=tuple(BranchLayout(b, int(src[schema.attention(b).path].shape[-1]), src[b].attrs.asdict(),
                                    tuple(int(t) for t in src[schema.token_ids(b).path][...])) for b in branches),
        video_shape=tuple(int(n) for n in video_array.shape),
        step_indices=tuple(kept_indices),  # the step coordinate: the pipeline steps kept, whatever the stride
        attributes={**{k: v for k, v in attrs.items() if k not in _NOT_COPIED}, Attr.RECORD_OPTIONS: record,
                    Attr.SUBSET_OF: subset_of},
    )
    written = _video_written(src, status, int(video_array.shape[0])) if video else None

    store = create_recording_store(out, layout)  # StoreError when OUT exists or cannot be made
    try:
        _copy(src, store.root, kept, layer_positions, branches, mean, bits if bits < current_bits else None,
              written, progress)
        final = {**{k: attrs[k] for k in _AT_THE_END if k in attrs}, Attr.STATUS: status}
        if status not in schema.FINAL_STATUSES:  # cut from a live recording: a snapshot, never "recording" forever
            final.update({Attr.STATUS: schema.STATUS_INTERRUPTED, Attr.INTERRUPTED_BY: "wan-analyze subset",
                          Attr.ERROR: f"cut while the source was at status {status!r}: later steps are not here",
                          Attr.ENDED_AT: _now()})
        finish(store.root, final)  # status last, then the metadata consolidated for remote readers
    except BaseException as exc:
        try:  # as a recording ends: the copy's writes still under way end first, then the reserve makes room
            root = store.root_for_final_status()
            root.attrs.update({Attr.STATUS: schema.STATUS_FAILED, Attr.ENDED_AT: _now(),
                               Attr.ERROR: f"subset stopped: {describe(exc)}"})
        except Exception:  # noqa: BLE001 - a full disk: the status stays "recording", never "complete"
            pass
        raise
    finally:
        store.release()
    return Path(out)


def _copy(src, dst, kept, layer_positions, branches, mean: bool, bits: int | None, written, progress: bool) -> None:
    """Copy the chosen steps (then mark each complete) and the video's written frames."""
    from tqdm import tqdm

    def writable(path: str):  # a chunk equal to the fill value is still written: its absence would mean "lost"
        return dst[path].with_config({"write_empty_chunks": True})

    maps = {(name, b): (src[_spec(name, b).path], writable(_spec(name, b).path)) for name in _MAPS for b in branches}
    heads = {(name, b): (src[_spec(name, b).path], writable(_spec(name, b).path)) for name in _HEADS for b in branches}
    step_arrays = {spec.path: (src[spec.path], writable(spec.path)) for spec in schema.STEP_ARRAYS}
    # schema 1.3: each branch's timestep, sigma and expert coordinates, copied from the root step arrays
    step_coordinates = [(root_spec.path, writable(coord.path)) for b in branches
                        for coord, root_spec in zip(schema.step_coordinates(b),
                                                    (schema.STEP_TIMESTEP, schema.STEP_SIGMA, schema.STEP_EXPERT))
                        if coord.path in dst]
    frames = [] if written is None else [int(i) for i in np.flatnonzero(written)]
    bar = tqdm(total=len(kept) + len(frames), desc="wan-analyze subset", unit="step", file=sys.stderr,
               disable=not progress, leave=False)
    with bar:
        for position, (source, _) in enumerate(kept):
            for (name, _branch), (a, b) in maps.items():
                if mean:
                    total = None
                    for layer in layer_positions:
                        values = np.asarray(a[source, layer], dtype=np.float32)
                        total = values if total is None else np.add(total, values, out=total)
                        del values
                    total /= np.float32(len(layer_positions))
                    b[position, 0] = _rounded(total.astype(np.float16), bits)
                    del total
                else:
                    for slot, layer in enumerate(layer_positions):
                        b[position, slot] = _rounded(np.asarray(a[source, layer]), bits)
            for (name, _branch), (a, b) in heads.items():
                values = np.asarray(a[source], dtype=np.float32)[layer_positions]
                if mean:
                    total = values[0].copy()
                    for layer in range(1, len(layer_positions)):
                        total += values[layer]
                    values = (total / np.float32(len(layer_positions)))[None]
                b[position] = values
            for spec in schema.STEP_ARRAYS:
                if spec is not schema.STEP_COMPLETE:
                    a, b = step_arrays[spec.path]
                    b[position] = a[source]
            for root_path, b in step_coordinates:
                b[position] = step_arrays[root_path][0][source]
            step_arrays[schema.STEP_COMPLETE.path][1][position] = True  # last: the step's chunks are written
            bar.update(1)
        a, b = src[schema.VIDEO.path], writable(schema.VIDEO.path)
        flags = np.zeros(int(a.shape[0]), dtype=bool)
        out_flags = writable(schema.VIDEO_WRITTEN.path)  # written even when all False: present, not lost
        for frame in frames:
            b[frame] = a[frame]
            flags[frame] = True
            out_flags[:] = flags  # after the frame's chunk, as the recorder does
            bar.update(1)
        out_flags[:] = flags


def _rounded(values: np.ndarray, bits: int | None) -> np.ndarray:
    return values if bits is None else round_mantissa(values, bits)
