"""``wan-analyze export STORE OUT.h5``: a store as one HDF5 file that loses nothing.

Every group and array of the store goes to the file under the same path, with the same
shape, data type, chunk shape and fill value; datasets are compressed (gzip level 1
after byte shuffle) and carry HDF5's fletcher32 checksum. Attributes that are a str,
int, float or bool are stored as themselves; any other value (a dict, a list, None) as
its JSON text, its name listed in the attribute ``_json_attributes``. Each named
dimension gets an HDF5 dimension label and a dimension scale (in the group
``_dimension_scales``: the step index for ``step``, the transformer block for ``layer``,
0, 1, 2, ... otherwise), so that h5py, xarray and HDFView see what each axis is.

The copy goes chunk by chunk and only the chunks the store has: memory holds one chunk
at a time, and a chunk never written (a step that did not complete, a frame of the
video that was not written) stays absent in the file, so :class:`shared.hdf5_store.Hdf5Store`
reads the export exactly as the store: ``open_store("run.h5")`` and ``wan-analyze run.h5``
work unchanged.

The file is written to a temporary name in the output's folder and renamed into place
at the end: a failure leaves nothing, and an existing file is never replaced.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import zarr
from tqdm import tqdm
from zarr.core.sync import sync

from shared import schema
from shared.errors import describe as reason
from shared.hdf5_store import DATA_TYPES, HDF5_RESERVED_ATTRIBUTES, JSON_ATTRIBUTES, SCALES_GROUP
from shared.schema import Attr
from shared.store import StoreError, open_store

EXTENSIONS = (".h5", ".hdf5")
GZIP_LEVEL = 1
# The HDF5 1.10 file format: its chunk indexes and object headers halve the size of a small export
# (the demo-like store: 75 against 140 kB); any HDF5 since 1.10 (2018) reads it.
LIBVER = ("v110", "v112")
# Names HDF5's dimension scales write on datasets, and the name listing the JSON attributes.
_RESERVED = frozenset({JSON_ATTRIBUTES, *HDF5_RESERVED_ATTRIBUTES, "CLASS", "NAME", "REFERENCE_LIST"})


def encode_attribute(value):
    """The HDF5 value of one attribute, and whether it is JSON text (for what has no HDF5 type of its own)."""
    if isinstance(value, (bool, np.bool_)):
        return np.bool_(value), False
    if isinstance(value, (int, np.integer)) and -2**63 <= int(value) < 2**63:
        return np.int64(value), False
    if isinstance(value, (float, np.floating)):
        return np.float64(value), False
    if isinstance(value, str) and "\x00" not in value:
        return value, False
    return json.dumps(value, allow_nan=True), True


def _write_attributes(obj, attributes: dict, where: str) -> None:
    as_json = []
    for name, value in attributes.items():
        if name in _RESERVED:
            raise StoreError(f"{where}: the attribute name {name!r} is reserved in an HDF5 export; cannot export it")
        encoded, is_json = encode_attribute(value)
        obj.attrs[name] = encoded
        if is_json:
            as_json.append(name)
    if as_json:
        obj.attrs[JSON_ATTRIBUTES] = json.dumps(as_json)


def _check_out(out: str | os.PathLike) -> Path:
    text = os.fspath(out)
    path = Path(text)
    if not text.lower().endswith(EXTENSIONS):
        raise StoreError(f"{text}: an HDF5 export is named .h5 or .hdf5")
    if os.path.lexists(path):
        raise StoreError(f"{text} already exists; choose another output (an export never replaces a file)")
    parent = path.parent
    if not parent.is_dir():
        raise StoreError(f"{text}: the folder {parent} does not exist")
    return path


def _existing_chunks(array: zarr.Array) -> list[tuple[int, ...]]:
    """The grid coordinates of the chunks the store holds for ``array``, from one listing."""
    shape = tuple(int(n) for n in array.shape)
    prefix = f"{array.path}/"

    async def keys() -> list[str]:
        return [k async for k in array.store_path.store.list_prefix(prefix)]

    grid = tuple(math.ceil(s / c) for s, c in zip(shape, array.chunks))
    separator = getattr(array.metadata.chunk_key_encoding, "separator", "/")
    coords = set()
    for key in sync(keys()):
        relative = key[len(prefix):]
        # zarr's own decode_chunk_key mis-parses "c/0/1" (3.1.6); a key counts when it encodes back to itself
        body = relative[1 + len(separator):] if relative.startswith("c" + separator) else relative
        try:
            coord = tuple(int(part) for part in body.split(separator))
        except ValueError:
            continue  # zarr.json, a temporary file
        if len(coord) == len(shape) and all(0 <= c < g for c, g in zip(coord, grid)) \
                and array.metadata.encode_chunk_key(coord) == relative:
            coords.add(coord)
    return sorted(coords)


def _scale_values(root: zarr.Group, dim: str, length: int) -> np.ndarray:
    source = {schema.DIM_STEP: schema.STEP_INDEX.path, schema.DIM_LAYER: schema.LAYER_BLOCK.path}.get(dim)
    if source is not None and source in root:
        values = np.asarray(root[source][:])
        if values.shape == (length,):
            return values
    return np.arange(length, dtype=np.int64)


class _Scales:
    """One dimension scale per (dimension name, length), made when a dataset first needs it."""

    def __init__(self, h5, root: zarr.Group):
        self.h5, self.root, self.made = h5, root, {}

    def attach(self, ds, dims) -> None:
        if not dims:
            return
        for axis, dim in enumerate(dims):
            if dim is None:
                continue
            ds.dims[axis].label = str(dim)
            length = int(ds.shape[axis])
            key = (str(dim), length)
            if key not in self.made:
                group = self.h5.require_group(SCALES_GROUP)
                name = str(dim).replace("/", "_") or "_"
                if name in group:
                    name = f"{name}_{length}"
                scale = group.create_dataset(name, data=_scale_values(self.root, str(dim), length))
                scale.make_scale(str(dim))
                self.made[key] = scale
            ds.dims[axis].attach_scale(self.made[key])


def _is_text(array: zarr.Array) -> bool:
    from zarr.core.dtype import VariableLengthUTF8

    return isinstance(array.metadata.data_type, VariableLengthUTF8)


def h5py_create_text(h5, path, shape, chunks, maxshape, dtype):
    """A dataset of fixed-length UTF-8 strings (HDF5 filters, fletcher32 included, refuse variable-length ones);
    its fill value is the empty string, as the store's."""
    return h5.create_dataset(path, shape=shape, dtype=dtype, chunks=chunks, maxshape=maxshape,
                             compression="gzip", compression_opts=GZIP_LEVEL, shuffle=True, fletcher32=True)


def _create_dataset(h5, path: str, array: zarr.Array):
    shape = tuple(int(n) for n in array.shape)
    chunks = tuple(int(c) for c in array.chunks)
    maxshape = tuple(None if c > s else s for s, c in zip(shape, chunks))
    if _is_text(array) and shape:  # schema 1.3's text coordinates: HDF5 variable-length UTF-8 strings
        import h5py

        longest = max((len(str(v).encode("utf-8")) for v in np.asarray(array[...], dtype=object).ravel()), default=0)
        return h5py_create_text(h5, path, shape, chunks, maxshape, h5py.string_dtype("utf-8", max(longest, 1)))
    if not shape or np.dtype(array.dtype).name not in DATA_TYPES:
        raise StoreError(f"{path} is a {len(shape)}-d array of {array.dtype}; an HDF5 export holds arrays of "
                         "at least one axis of numbers or booleans")
    # HDF5 takes a chunk larger than the data only on an axis that may grow
    maxshape = tuple(None if c > s else s for s, c in zip(shape, chunks))
    dtype = np.dtype(array.dtype)
    return h5.create_dataset(path, shape=shape, dtype=dtype, chunks=chunks or None, maxshape=maxshape or None,
                             fillvalue=np.asarray(array.fill_value, dtype=dtype), compression="gzip",
                             compression_opts=GZIP_LEVEL, shuffle=True, fletcher32=True)


def _copy(root: zarr.Group, h5, progress: bool) -> None:
    members = sorted(root.members(max_depth=None), key=lambda m: m[0])
    if any(path.split("/")[0] == SCALES_GROUP for path, _ in members):
        raise StoreError(f"the store has a node named {SCALES_GROUP}, which an HDF5 export keeps for its scales")
    _write_attributes(h5, root.attrs.asdict(), "the root group")
    arrays = []
    for path, node in members:
        if isinstance(node, zarr.Group):
            group = h5.require_group(path)
            _write_attributes(group, node.attrs.asdict(), path)
        else:
            ds = _create_dataset(h5, path, node)
            _write_attributes(ds, node.attrs.asdict(), path)
            arrays.append((node, ds, _existing_chunks(node)))
    scales = _Scales(h5, root)
    for node, ds, _ in arrays:
        scales.attach(ds, node.metadata.dimension_names)
    total = sum(len(chunks) for _, _, chunks in arrays)
    with tqdm(total=total, desc="wan-analyze export", unit="chunk", file=sys.stderr, disable=not progress,
              leave=False) as bar:
        for node, ds, chunks in arrays:
            for coord in chunks:
                box = tuple(slice(c * n, min((c + 1) * n, s)) for c, n, s in zip(coord, node.chunks, node.shape))
                values = node[box]
                ds[box] = np.asarray([str(v).encode("utf-8") for v in np.asarray(values, dtype=object).ravel()],
                                     dtype=ds.dtype).reshape(np.shape(values)) if _is_text(node) else values
                bar.update(1)


def export_hdf5(location: str | os.PathLike, out: str | os.PathLike, *, storage_options: dict | None = None,
                progress: bool = False) -> Path:
    """Write the store at ``location`` (directory, zip, URL or HDF5 export) to the new HDF5 file ``out``.

    Raises :class:`shared.store.StoreError` with one line for an unreadable store or an
    output that exists, is not named ``.h5``/``.hdf5`` or cannot be written; nothing is
    left at ``out`` (nor beside it) after a failure.
    """
    import h5py

    target = _check_out(out)
    root = open_store(location, storage_options)
    status = root.attrs[Attr.STATUS]
    if status not in schema.FINAL_STATUSES:  # the copy would say "recording" forever, and could miss chunks
        raise StoreError(f"{location} is still being recorded (status {str(status)[:40]!r}); export it when it "
                         "ends (or `wan-analyze subset` it now: a subset of a live recording is marked interrupted)")
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    try:
        try:
            with h5py.File(temporary, "w", track_order=True, libver=LIBVER) as h5:
                _copy(root, h5, progress)
            with open(temporary, "rb+") as f:
                os.fsync(f.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temporary, 0o666 & ~umask)  # as any new file, not mkstemp's 0600
            _place(temporary, target)
        except FileExistsError:
            raise StoreError(f"{os.fspath(out)} already exists; choose another output (an export never replaces "
                             "a file)") from None
        except StoreError:
            raise
        except OSError as exc:
            raise StoreError(f"cannot export to {os.fspath(out)}: {reason(exc)}") from None
        except Exception as exc:  # a chunk of the store that fails its checksum, an unreadable array: one line
            raise StoreError(f"cannot export {os.fspath(location)}: {reason(exc)}") from None
    finally:
        try:
            os.unlink(temporary)
        except OSError:
            pass
    return target


def _place(temporary: str, target: Path) -> None:
    """Give the finished file its name, never replacing one that appeared there meanwhile."""
    try:
        os.link(temporary, target)  # FileExistsError when something is there
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: the check and the rename are not one step there
        if os.path.lexists(target):
            raise FileExistsError(target) from None
        os.rename(temporary, target)
