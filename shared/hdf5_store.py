"""An HDF5 file written by ``wan-analyze export``, read as a read-only Zarr v3 store.

:class:`Hdf5Store` presents the file's groups and chunked datasets as the keys of a
Zarr v3 store, so that ``zarr.open_group(Hdf5Store(path), mode="r")`` and everything
above it (``shared.store.validate``, the analyzer) read an export exactly as they read
the store it came from:

- ``zarr.json`` of a group: its HDF5 attributes, decoded (str, int, float and bool are
  stored natively; every other value as JSON, its name listed in the attribute
  :data:`JSON_ATTRIBUTES`);
- ``<array>/zarr.json``: shape, data type, the dataset's HDF5 chunk shape, fill value,
  dimension names (the labels of the HDF5 dimensions), attributes, and the codecs
  ``bytes`` (little endian) + ``crc32c``;
- ``<array>/c/i/j/...``: that chunk, read from HDF5, padded to the full chunk shape with
  the fill value and encoded, with a crc32c computed over exactly the bytes served. A
  chunk never written in the file is absent (None), as a missing chunk of a Zarr store:
  "step not complete" and "frame not written" survive the export.

The file is untrusted input. Only chunked datasets (neither virtual nor external, which
could read other files) with the filters the exporter uses are read, and each must carry
HDF5's fletcher32 checksum, which HDF5 verifies on every read: a corrupted chunk raises
an error, never returns wrong values. Chunk sizes are bounded by
:data:`shared.local_store.MAX_KEY_BYTES`, attributes by :data:`MAX_ATTRIBUTE_BYTES`, the
number of objects by :data:`MAX_OBJECTS`. h5py is not thread safe: every call into it
holds one lock.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import numpy as np

from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.storage._utils import _normalize_byte_range_index

from shared.local_store import MAX_KEY_BYTES

# The group that holds the dimension scales (HDF5's coordinate datasets): never a store array.
SCALES_GROUP = "_dimension_scales"
# An attribute listing (as a JSON list) the attributes whose value is JSON text.
JSON_ATTRIBUTES = "_json_attributes"
# Attributes that HDF5's dimension scales put on a dataset that uses them; never store attributes.
HDF5_RESERVED_ATTRIBUTES = frozenset({"DIMENSION_LIST", "DIMENSION_LABELS"})
MAX_ATTRIBUTE_BYTES = 1 << 20
MAX_OBJECTS = 10_000
MAX_ATTRIBUTES = 1_000
MAX_RANK = 32

# Data types a store holds, by their Zarr v3 name (numpy's).
DATA_TYPES = frozenset({"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                        "float16", "float32", "float64"})
# HDF5 filters read: deflate (1), shuffle (2), fletcher32 (3), h5py's lzf (32000).
FILTER_DEFLATE, FILTER_SHUFFLE, FILTER_FLETCHER32, FILTER_LZF = 1, 2, 3, 32000
ALLOWED_FILTERS = frozenset({FILTER_DEFLATE, FILTER_SHUFFLE, FILTER_FLETCHER32, FILTER_LZF})

_CODECS = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]
_TEXT_CODECS = [{"name": "vlen-utf8"}, {"name": "crc32c"}]
_CHUNK_KEY_ENCODING = {"name": "default", "configuration": {"separator": "/"}}


class Hdf5StoreError(OSError):
    """The HDF5 file is not one ``wan-analyze export`` writes, or a part of it cannot be read safely."""


@dataclass(frozen=True)
class _ArrayInfo:
    path: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype
    fill_value: object
    fletcher32_bit: int  # the bit of a chunk's filter mask that would say its checksum was skipped
    text: bool = False  # UTF-8 strings (an HDF5 variable-length string; zarr v3's "string" with vlen-utf8)


def _json_number(value: float):
    """A float as Zarr v3 spells it in JSON: a number, or "NaN" / "Infinity" / "-Infinity"."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _fill_json(dtype: np.dtype, value) -> object:
    scalar = np.asarray(value, dtype=dtype).item() if value is not None else None
    if scalar is None:
        return False if dtype.kind == "b" else 0
    if dtype.kind == "b":
        return bool(scalar)
    if dtype.kind in "iu":
        return int(scalar)
    return _json_number(float(scalar))


def decode_attribute(name: str, value, is_json: bool):
    """One HDF5 attribute as the JSON value it was in the store."""
    if is_json:
        if not isinstance(value, (str, bytes)):
            raise Hdf5StoreError(f"attribute {name[:80]!r} is listed as JSON but is not text")
        text = value.decode("utf-8") if isinstance(value, bytes) else value
        if len(text) > MAX_ATTRIBUTE_BYTES:
            raise Hdf5StoreError(f"attribute {name[:80]!r} holds more than {MAX_ATTRIBUTE_BYTES} bytes")
        return json.loads(text)
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str):
        if len(value) > MAX_ATTRIBUTE_BYTES:
            raise Hdf5StoreError(f"attribute {name[:80]!r} holds more than {MAX_ATTRIBUTE_BYTES} bytes")
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    raise Hdf5StoreError(f"attribute {name[:80]!r} is a {type(value).__name__}, not a value an export writes")


def _read_attributes(obj, reserved: frozenset[str]) -> dict:
    import h5py

    names = list(obj.attrs.keys())
    if len(names) > MAX_ATTRIBUTES:
        raise Hdf5StoreError(f"{obj.name} has {len(names)} attributes, more than an export writes")
    json_names: set[str] = set()
    if JSON_ATTRIBUTES in names:
        listed = decode_attribute(JSON_ATTRIBUTES, obj.attrs[JSON_ATTRIBUTES], True)
        if not isinstance(listed, list) or not all(isinstance(n, str) for n in listed):
            raise Hdf5StoreError(f"{obj.name}: attribute {JSON_ATTRIBUTES} is not a list of names")
        json_names = set(listed)
    result = {}
    for name in names:
        if name == JSON_ATTRIBUTES or name in reserved:
            continue
        attr_id = h5py.h5a.open(obj.id, name.encode("utf-8"))
        if attr_id.shape not in ((), None) and attr_id.shape != (1,):
            raise Hdf5StoreError(f"{obj.name}: attribute {name[:80]!r} is an array of shape {attr_id.shape}; "
                                 "an export writes only single values")
        if attr_id.get_storage_size() > MAX_ATTRIBUTE_BYTES:
            raise Hdf5StoreError(f"{obj.name}: attribute {name[:80]!r} holds more than {MAX_ATTRIBUTE_BYTES} bytes")
        value = obj.attrs[name]
        if isinstance(value, np.ndarray):
            value = value.reshape(-1)[0] if value.size == 1 else value
        result[name] = decode_attribute(name, value, name in json_names)
    return result


def _dataset_info(path: str, ds) -> _ArrayInfo:
    import h5py

    where = f"dataset {path}"
    dtype = np.dtype(ds.dtype)
    string = h5py.check_string_dtype(ds.dtype)
    text = string is not None and string.encoding == "utf-8" and string.length is not None
    if text:
        dtype = np.dtype(object)
    elif dtype.name not in DATA_TYPES or dtype.fields is not None:
        raise Hdf5StoreError(f"{where} has data type {dtype}, not one a store holds")
    shape = tuple(int(n) for n in ds.shape or ())
    if len(shape) > MAX_RANK:
        raise Hdf5StoreError(f"{where} has {len(shape)} dimensions")
    plist = ds.id.get_create_plist()
    if plist.get_layout() != h5py.h5d.CHUNKED or ds.chunks is None:
        raise Hdf5StoreError(f"{where} is not chunked (an export writes chunked datasets only)")
    if plist.get_external_count():
        raise Hdf5StoreError(f"{where} keeps its data in external files")
    chunks = tuple(int(c) for c in ds.chunks)
    stored_itemsize = int(string.length) if text else dtype.itemsize  # a fixed-length string: its declared length
    if len(chunks) != len(shape) or any(c < 1 for c in chunks) \
            or math.prod(chunks) * max(stored_itemsize, 1) > MAX_KEY_BYTES:
        raise Hdf5StoreError(f"{where} declares chunks of {list(chunks)}, beyond what a store holds")
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    unknown = [f for f in filters if f not in ALLOWED_FILTERS]
    if unknown:
        raise Hdf5StoreError(f"{where} uses HDF5 filters {unknown}, not those an export writes")
    if FILTER_FLETCHER32 not in filters:
        raise Hdf5StoreError(f"{where} has no fletcher32 checksum, which every dataset of an export carries")
    return _ArrayInfo(path, shape, chunks, dtype, "" if text else ds.fillvalue, 1 << filters.index(FILTER_FLETCHER32),
                      text)


def _dimension_names(ds) -> list[str] | None:
    labels = [str(d.label) for d in ds.dims]
    return labels if labels and all(labels) else None


class Hdf5Store(Store):
    """A read-only Zarr v3 store over an HDF5 file written by ``wan-analyze export``."""

    supports_writes: bool = False
    supports_deletes: bool = False
    supports_listing: bool = True
    supports_partial_writes: bool = False

    def __init__(self, path: str | os.PathLike, *, read_only: bool = True) -> None:
        if not read_only:
            raise ValueError("an HDF5 export is read only")
        super().__init__(read_only=True)
        self.path = os.fspath(path)
        self._lock = threading.RLock()
        self._file = None
        self._metadata: dict[str, bytes] | None = None  # "path/zarr.json" -> document
        self._arrays: dict[str, _ArrayInfo] = {}
        self._children: dict[str, list[str]] = {}  # group path -> child names

    # --- the file and its index -----------------------------------------------------
    def _h5(self):
        import h5py

        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return self._file

    def _index(self) -> dict[str, bytes]:
        with self._lock:
            if self._metadata is None:
                self._build_index()
            return self._metadata

    def _build_index(self) -> None:
        import h5py

        f = self._h5()
        names: list[str] = []

        def visit(name: str, obj) -> None:
            if name == SCALES_GROUP or name.startswith(SCALES_GROUP + "/"):
                return None
            names.append(name)
            if len(names) > MAX_OBJECTS:
                raise Hdf5StoreError(f"{self.path} holds more than {MAX_OBJECTS} objects")
            return None

        f.visititems(visit)
        metadata: dict[str, bytes] = {}
        arrays: dict[str, _ArrayInfo] = {}
        children: dict[str, list[str]] = {"": []}
        metadata["zarr.json"] = self._group_document(f)
        for name in sorted(names):
            obj = f[name]
            parent, _, leaf = name.rpartition("/")
            if leaf in ("zarr.json", "c", "", ".", "..") or leaf.startswith("__"):
                raise Hdf5StoreError(f"{self.path}: the name {name[:200]!r} cannot be a Zarr node")
            children.setdefault(parent, []).append(leaf)
            if isinstance(obj, h5py.Group):
                children.setdefault(name, [])
                metadata[f"{name}/zarr.json"] = self._group_document(obj)
            elif isinstance(obj, h5py.Dataset):
                info = _dataset_info(name, obj)
                arrays[name] = info
                metadata[f"{name}/zarr.json"] = self._array_document(info, obj)
            else:
                raise Hdf5StoreError(f"{self.path}: {name[:200]!r} is neither a group nor a dataset")
        self._arrays, self._children, self._metadata = arrays, children, metadata

    @staticmethod
    def _group_document(group) -> bytes:
        attrs = _read_attributes(group, frozenset())
        return json.dumps({"zarr_format": 3, "node_type": "group", "attributes": attrs}, allow_nan=True).encode()

    @staticmethod
    def _array_document(info: _ArrayInfo, ds) -> bytes:
        doc = {
            "zarr_format": 3,
            "node_type": "array",
            "shape": list(info.shape),
            "data_type": "string" if info.text else info.dtype.name,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(info.chunks)}},
            "chunk_key_encoding": _CHUNK_KEY_ENCODING,
            "fill_value": "" if info.text else _fill_json(info.dtype, info.fill_value),
            "codecs": _TEXT_CODECS if info.text else _CODECS,
            "attributes": _read_attributes(ds, HDF5_RESERVED_ATTRIBUTES),
            "dimension_names": _dimension_names(ds),
            "storage_transformers": [],
        }
        return json.dumps(doc, allow_nan=True).encode()

    # --- keys -----------------------------------------------------------------------
    def _chunk_of(self, key: str) -> tuple[_ArrayInfo, tuple[int, ...]] | None:
        """The array and chunk coordinates ``key`` names, or None when it names no chunk."""
        self._index()
        if key.endswith("/c") and key[:-2] in self._arrays and not self._arrays[key[:-2]].shape:
            return self._arrays[key[:-2]], ()  # the one chunk of a 0-d array
        # no node is named "c" (see _build_index): the array's path is what precedes the first "/c/"
        path, sep, rest = key.partition("/c/")
        info = self._arrays.get(path) if sep else None
        if info is None:
            return None
        parts = rest.split("/")
        if len(parts) != len(info.shape) or not all(p.isdigit() and len(p) < 19 for p in parts):
            return None
        coords = tuple(int(p) for p in parts)
        if any(c * n >= s for c, n, s in zip(coords, info.chunks, info.shape)):
            return None
        return info, coords

    def _chunk_info(self, info: _ArrayInfo, coords: tuple[int, ...]):
        """HDF5's record of the chunk: None when it was never written."""
        ds = self._h5()[info.path]
        if not info.shape:
            return None
        offset = tuple(c * n for c, n in zip(coords, info.chunks))
        stored = ds.id.get_chunk_info_by_coord(offset)
        if stored.byte_offset is None or stored.size == 0:
            return None
        return stored

    def _read_chunk(self, info: _ArrayInfo, coords: tuple[int, ...]) -> bytes | None:
        with self._lock:
            stored = self._chunk_info(info, coords)
            if stored is None:
                return None
            if stored.filter_mask & info.fletcher32_bit:
                raise Hdf5StoreError(f"{self.path}: chunk {list(coords)} of {info.path} skips its checksum")
            if stored.size > MAX_KEY_BYTES:
                raise Hdf5StoreError(f"{self.path}: chunk {list(coords)} of {info.path} holds {stored.size} bytes, "
                                     f"more than any chunk of a store ({MAX_KEY_BYTES})")
            box = tuple(slice(c * n, min((c + 1) * n, s)) for c, n, s in zip(coords, info.chunks, info.shape))
            try:
                data = self._h5()[info.path][box]
            except OSError as exc:  # fletcher32 or a filter failed: the chunk is corrupt
                raise Hdf5StoreError(f"{self.path}: chunk {list(coords)} of {info.path} is unreadable "
                                     f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        if info.text:
            from numcodecs import VLenUTF8

            values = np.full(info.chunks, "", dtype=object)  # an edge chunk padded with the fill value, ""
            values[tuple(slice(0, n) for n in data.shape)] = np.vectorize(
                lambda v: v.decode("utf-8") if isinstance(v, bytes) else str(v), otypes=[object])(data)
            raw = bytes(VLenUTF8().encode(values))
            import google_crc32c

            return raw + np.uint32(google_crc32c.value(raw)).tobytes()
        data = np.asarray(data, dtype=info.dtype)
        if data.shape != info.chunks:  # an edge chunk: padded to the full chunk shape, as Zarr stores it
            full = np.full(info.chunks, info.fill_value, dtype=info.dtype)
            full[tuple(slice(0, n) for n in data.shape)] = data
            data = full
        raw = np.ascontiguousarray(data, dtype=info.dtype.newbyteorder("<")).tobytes()
        import google_crc32c

        return raw + np.uint32(google_crc32c.value(raw)).tobytes()

    def _get_sync(self, key: str) -> bytes | None:
        metadata = self._index()
        if key in metadata:
            return metadata[key]
        chunk = self._chunk_of(key)
        if chunk is None:
            return None
        return self._read_chunk(*chunk)

    def _exists_sync(self, key: str) -> bool:
        metadata = self._index()
        if key in metadata:
            return True
        chunk = self._chunk_of(key)
        if chunk is None:
            return False
        with self._lock:
            return self._chunk_info(*chunk) is not None

    def _chunk_keys(self, info: _ArrayInfo) -> list[str]:
        with self._lock:
            ds = self._h5()[info.path]
            if not info.shape:
                return []
            keys: list[str] = []

            def add(stored) -> None:
                if stored.byte_offset is not None and stored.size:
                    coords = (o // n for o, n in zip(stored.chunk_offset, info.chunks))
                    keys.append(f"{info.path}/c/" + "/".join(str(c) for c in coords))

            try:
                ds.id.chunk_iter(add)
            except (AttributeError, NotImplementedError):  # an HDF5 older than 1.14
                for i in range(ds.id.get_num_chunks()):
                    add(ds.id.get_chunk_info(i))
            return keys

    def _all_keys(self, prefix: str = "") -> list[str]:
        keys = [k for k in self._index() if k.startswith(prefix)]
        for path, info in self._arrays.items():
            if (path + "/").startswith(prefix) or prefix.startswith(path + "/"):
                keys += [k for k in self._chunk_keys(info) if k.startswith(prefix)]
        return keys

    def _list_dir(self, prefix: str) -> list[str]:
        self._index()
        prefix = prefix.rstrip("/")
        if prefix in self._children:
            return ["zarr.json", *self._children[prefix]]
        if prefix in self._arrays:
            return ["zarr.json", "c"] if self._chunk_keys(self._arrays[prefix]) else ["zarr.json"]
        start = prefix + "/"
        return sorted({k[len(start):].split("/")[0] for k in self._all_keys(start)})

    # --- the Store interface --------------------------------------------------------
    def with_read_only(self, read_only: bool = True) -> Hdf5Store:
        return type(self)(self.path, read_only=read_only)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Hdf5Store) and other.path == self.path

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.path))

    def __str__(self) -> str:
        return f"hdf5://{self.path}"

    def __repr__(self) -> str:
        return f"Hdf5Store({self.path!r})"

    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
            self._metadata = None
        super().close()

    async def get(self, key: str, prototype: BufferPrototype | None = None,
                  byte_range: ByteRequest | None = None) -> Buffer | None:
        if prototype is None:
            prototype = default_buffer_prototype()
        if not self._is_open:
            await self._ensure_open()
        raw = await asyncio.to_thread(self._get_sync, key)
        if raw is None:
            return None
        value = prototype.buffer.from_bytes(raw)
        if byte_range is None:
            return value
        start, stop = _normalize_byte_range_index(value, byte_range)
        return prototype.buffer.from_buffer(value[start:stop])

    async def get_partial_values(self, prototype: BufferPrototype,
                                 key_ranges: Iterable[tuple[str, ByteRequest | None]]) -> list[Buffer | None]:
        return [await self.get(key, prototype, byte_range) for key, byte_range in key_ranges]

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._exists_sync, key)

    async def getsize(self, key: str) -> int:
        def size() -> int | None:
            metadata = self._index()
            if key in metadata:
                return len(metadata[key])
            chunk = self._chunk_of(key)
            if chunk is None or not self._exists_sync(key):
                return None
            info = chunk[0]
            if info.text:  # variable-length: the encoded chunk's own length
                return len(self._get_sync(key) or b"")
            return math.prod(info.chunks) * info.dtype.itemsize + 4

        result = await asyncio.to_thread(size)
        if result is None:
            raise FileNotFoundError(key)
        return result

    async def set(self, key: str, value: Buffer) -> None:
        self._check_writable()

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        self._check_writable()

    async def delete(self, key: str) -> None:
        self._check_writable()

    async def list(self) -> AsyncIterator[str]:
        for key in await asyncio.to_thread(self._all_keys, ""):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        for key in await asyncio.to_thread(self._all_keys, prefix):
            yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        for key in await asyncio.to_thread(self._list_dir, prefix):
            yield key
