"""Reads of whole chunks of a local store straight into the result: the analyzer's hot path.

zarr-python reads each chunk through an asyncio task, a hop to a worker thread, a freshly
allocated decode buffer and a copy into the result. On the attention array (30 chunks of
1.9 MB a step) that costs three times the work itself: 123 ms of CPU a step against 40 ms
here, measured on the 480x832 benchmark store (``benchmarks/analyzer_speed.py``).

For the codec chain the schema writes (``bytes`` little-endian, ``blosc``, ``crc32c``) on a
local directory store, :func:`read_box` does the same work directly, in a few threads:
each key is fetched through the store (so :class:`shared.local_store.SafeLocalStore`'s
checks still apply), its crc32c checked with ``google_crc32c`` (what zarr's codec uses), the
blosc header's sizes checked against the chunk, and the chunk decompressed by numcodecs
into its place in the result. A missing chunk reads as the fill value, as in zarr. Any
other array or store (a zip, HDF5, a URL, another codec chain) is read by zarr:
:func:`supported` says which.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor

import google_crc32c
import numpy as np
from numcodecs import Blosc
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.chunk_grids import RegularChunkGrid

from shared.local_store import SafeLocalStore

_BLOSC = Blosc()  # decoding reads every parameter from the chunk's own header
_BLOSC_HEADER_BYTES = 16
_THREADS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
_pool: ThreadPoolExecutor | None = None


class ChunkError(ValueError):
    """A chunk that does not decode to what its array says (checksum, size, blosc header)."""


def supported(array) -> bool:
    """Whether :func:`read_box` can read ``array``: the schema's codec chain on a local directory store."""
    metadata = array.metadata
    if getattr(metadata, "zarr_format", None) != 3 or not isinstance(array.store, SafeLocalStore):
        return False
    if not isinstance(metadata.chunk_grid, RegularChunkGrid) or array.dtype.byteorder == ">":
        return False
    codecs = metadata.codecs
    return (len(codecs) == 3 and isinstance(codecs[0], BytesCodec) and isinstance(codecs[1], BloscCodec)
            and isinstance(codecs[2], Crc32cCodec))


def read_box(array, box: tuple[slice, ...], out: np.ndarray | None = None) -> np.ndarray:
    """``array[box]`` for a :func:`supported` array and a box of one step-1 slice per dimension.

    ``out``: where to put it (of the box's shape and the array's dtype), e.g. a buffer reused
    from step to step, which spares the page faults of a fresh one. Raises :class:`ChunkError`
    for a chunk that fails its checksum or does not decompress to its size, and the store's
    error for a key it refuses.
    """
    bounds = [s.indices(n) for s, n in zip(box, array.shape)]
    if len(bounds) != array.ndim or any(step != 1 for _, _, step in bounds):
        raise ValueError(f"read_box needs one step-1 slice per dimension, got {box}")
    starts = [start for start, _, _ in bounds]
    stops = [max(start, stop) for start, stop, _ in bounds]
    shape = tuple(stop - start for start, stop in zip(starts, stops))
    if out is None:
        out = np.empty(shape, dtype=array.dtype)
    elif out.shape != shape or out.dtype != array.dtype or not out.flags.c_contiguous:
        raise ValueError(f"out is {out.dtype}{out.shape}, the box needs a contiguous {array.dtype}{shape}")
    if out.size == 0:
        return out
    grid = [range(start // c, (stop - 1) // c + 1) for start, stop, c in zip(starts, stops, array.chunks)]
    jobs = list(itertools.product(*grid))
    read = _ChunkRead(array, starts, stops, out)
    if len(jobs) == 1:
        read(jobs[0])
    else:
        for _ in _threads().map(read, jobs):  # the results are None; map re-raises a chunk's error
            pass
    return out


class _ChunkRead:
    """Reads one chunk (by its grid coordinates) into its part of ``out``."""

    def __init__(self, array, starts: list[int], stops: list[int], out: np.ndarray):
        self.array, self.starts, self.stops, self.out = array, starts, stops, out
        self.chunk_shape = tuple(array.chunks)
        self.chunk_bytes = int(np.prod(self.chunk_shape)) * array.dtype.itemsize
        self.fill = array.metadata.fill_value
        self.prefix = f"{array.path}/" if array.path else ""

    def __call__(self, coords: tuple[int, ...]) -> None:
        source, target = [], []
        for coord, size, start, stop in zip(coords, self.chunk_shape, self.starts, self.stops):
            low, high = max(coord * size, start), min((coord + 1) * size, stop)
            source.append(slice(low - coord * size, high - coord * size))
            target.append(slice(low - start, high - start))
        place = self.out[tuple(target)]
        key = self.prefix + self.array.metadata.encode_chunk_key(coords)
        stored = self.array.store.get_sync(key, prototype=default_buffer_prototype())
        if stored is None:
            place[...] = self.fill
            return
        body = self._checked(key, stored.as_numpy_array())
        whole = place.shape == self.chunk_shape and place.flags.c_contiguous
        decoded = place if whole else np.empty(self.chunk_shape, dtype=self.out.dtype)
        _BLOSC.decode(body, out=decoded)
        if not whole:
            place[...] = decoded[tuple(source)]

    def _checked(self, key: str, data: np.ndarray) -> np.ndarray:
        """The blosc frame of a stored chunk, after its crc32c and its header's sizes are checked."""
        if len(data) < _BLOSC_HEADER_BYTES + 4:
            raise ChunkError(f"{key}: {len(data)} bytes, too short for a chunk")
        body = data[:-4]
        if google_crc32c.value(body) != int.from_bytes(data[-4:].tobytes(), "little"):
            raise ChunkError(f"{key}: crc32c checksum mismatch")
        header = body[:_BLOSC_HEADER_BYTES].tobytes()  # blosc1: nbytes at 4, blocksize at 8, cbytes at 12
        nbytes, cbytes = int.from_bytes(header[4:8], "little"), int.from_bytes(header[12:16], "little")
        if nbytes != self.chunk_bytes or cbytes != len(body):
            raise ChunkError(f"{key}: blosc frame of {cbytes} bytes for {nbytes}, expected {len(body)} for "
                             f"{self.chunk_bytes}")
        return body


def _threads() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:  # blosc and the checksum release the GIL: a few threads decode in parallel
        _pool = ThreadPoolExecutor(_THREADS, thread_name_prefix="wan-chunks")
    return _pool
