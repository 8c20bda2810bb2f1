"""Create and open wan-attention stores, and check that what is opened is one.

The recorder calls :func:`create_store`; every reader calls :func:`open_store`, which
refuses anything that is not a store this code can read, with a one-line
:class:`StoreError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import zarr
from zarr.codecs import BloscCodec, BloscShuffle

from shared import schema
from shared.schema import Attr


class StoreError(Exception):
    """A store is missing, unreadable, or not one this version understands. One line."""


# Chosen by measurement (benchmarks/compression.py on a 480x832, 81-frame recording, H200 host;
# README "Compression"): fp16 probabilities barely compress (1.2-1.3x with any codec), so the
# fastest codec wins. Blosc/LZ4 with bit-shuffle: ratio 1.23 against 1.27 for Blosc/Zstd-3,
# but 3.8x faster to write (1158 against 308 MB/s) and faster to read (441 against 383 MB/s).
ATTENTION_COMPRESSORS = (BloscCodec(cname="lz4", clevel=5, shuffle=BloscShuffle.bitshuffle),)
VIDEO_COMPRESSORS = (BloscCodec(cname="lz4", clevel=5, shuffle=BloscShuffle.shuffle),)


@dataclass(frozen=True)
class BranchLayout:
    """A branch ("cond" or "uncond") and the number of real tokens of its prompt."""

    name: str
    num_tokens: int


@dataclass(frozen=True)
class StoreLayout:
    """Everything that fixes the shapes of a store's arrays."""

    num_steps: int  # recorded steps
    layer_blocks: tuple[int, ...]  # transformer block per layer entry; (-1,) for the layer mean
    grid: tuple[int, int, int]  # (F', H', W')
    num_heads: int
    branches: tuple[BranchLayout, ...]
    video_shape: tuple[int, int, int, int]  # (frames, height, width, 3)
    attributes: dict = field(default_factory=dict)


def _create(group: zarr.Group, spec: schema.ArraySpec, shape, chunks, compressors="auto"):
    return group.create_array(spec.path, shape=shape, chunks=chunks, dtype=spec.dtype,
                              fill_value=spec.fill_value, dimension_names=spec.dims,
                              compressors=compressors)


def create_store(path: str | os.PathLike, layout: StoreLayout, overwrite: bool = False) -> zarr.Group:
    """Create an empty store at ``path`` with status "recording" and return its root group.

    Refuses an existing path unless ``overwrite``: a recording is never lost by accident.
    """
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise StoreError(f"{path} already exists; choose another output or pass --overwrite")
    root = zarr.open_group(path, mode="w" if overwrite else "w-", zarr_format=3)
    attrs = {
        Attr.SCHEMA: schema.SCHEMA_NAME,
        Attr.SCHEMA_VERSION: schema.SCHEMA_VERSION,
        Attr.STATUS: schema.STATUS_RECORDING,
        Attr.COMPRESSION: [c.to_dict() for c in ATTENTION_COMPRESSORS],
        **layout.attributes,
    }
    root.attrs.update(attrs)

    n_steps, n_layers = layout.num_steps, len(layout.layer_blocks)
    for spec in schema.STEP_ARRAYS:
        _create(root, spec, (n_steps,), (max(n_steps, 1),))
    blocks = _create(root, schema.LAYER_BLOCK, (n_layers,), (max(n_layers, 1),))
    blocks[:] = list(layout.layer_blocks)

    f, h, w = layout.grid
    for branch in layout.branches:
        t = branch.num_tokens
        root.require_group(branch.name)
        shape = (n_steps, n_layers, f, h, w, t)
        _create(root, schema.attention(branch.name), shape,
                schema.attention_chunks(shape, "float16"), ATTENTION_COMPRESSORS)
        shape = (n_steps, n_layers, f, h, w)
        _create(root, schema.padding_mass(branch.name), shape,
                schema.attention_chunks(shape, "float16"), ATTENTION_COMPRESSORS)
        per_head = (n_steps, n_layers, layout.num_heads)
        _create(root, schema.head_entropy(branch.name), per_head, (1, n_layers, layout.num_heads))
        _create(root, schema.head_padding_mass(branch.name), per_head, (1, n_layers, layout.num_heads))
        _create(root, schema.head_token_mass(branch.name), (*per_head, t), (1, n_layers, layout.num_heads, t))
        _create(root, schema.token_ids(branch.name), (t,), (t,))

    _create(root, schema.VIDEO, layout.video_shape, schema.video_chunks(layout.video_shape), VIDEO_COMPRESSORS)
    return root


def disk_bytes(path: str | os.PathLike) -> int:
    """Bytes a local store (or any folder of it) takes on disk: the sum of its files' sizes."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def _open_zarr(location: str) -> zarr.Group:
    if "://" in location:
        from zarr.storage import FsspecStore

        return zarr.open_group(FsspecStore.from_url(location, read_only=True), mode="r")
    if not os.path.exists(location):
        raise StoreError(f"no store at {location}")
    if os.path.isfile(location):
        from zarr.storage import ZipStore

        return zarr.open_group(ZipStore(location, mode="r"), mode="r")
    return zarr.open_group(location, mode="r")


def open_store(location: str | os.PathLike) -> zarr.Group:
    """Open a store read-only (directory, .zip file, or fsspec URL) and validate it.

    Raises :class:`StoreError` with one line when it is missing, not a Zarr group, of
    another schema or a newer major version, or lacks a documented array or attribute.
    """
    location = os.fspath(location)
    try:
        root = _open_zarr(location)
    except StoreError:
        raise
    except Exception as exc:  # zarr raises several types for "not a group"; the user needs one line
        raise StoreError(f"{location} is not a readable Zarr store ({type(exc).__name__}: {exc})") from exc
    validate(root, location)
    return root


def validate(root: zarr.Group, location: str = "store") -> None:
    """Check schema name, version, attributes and arrays; raise StoreError on the first problem."""
    attrs = root.attrs.asdict()
    name = attrs.get(Attr.SCHEMA)
    if name != schema.SCHEMA_NAME:
        raise StoreError(f"{location} is not a wan-attention store (schema attribute is {name!r})")
    version = str(attrs.get(Attr.SCHEMA_VERSION, ""))
    try:
        major = int(version.split(".")[0])
    except ValueError:
        raise StoreError(f"{location} has an unreadable schema_version {version!r}") from None
    if major > schema.SCHEMA_MAJOR:
        raise StoreError(f"{location} uses schema version {version}, newer than this reader's "
                         f"{schema.SCHEMA_VERSION}; upgrade wan-attention")
    missing = [key for key in schema.REQUIRED_ROOT_ATTRS if key not in attrs]
    if missing:
        raise StoreError(f"{location} lacks root attributes: {', '.join(missing)}")
    options = attrs[Attr.RECORD_OPTIONS]
    branches = options.get(schema.RecordOption.BRANCHES) if isinstance(options, dict) else None
    if not isinstance(branches, list) or schema.BRANCH_COND not in branches \
            or not set(branches) <= set(schema.BRANCHES):
        raise StoreError(f"{location}: record_options.branches is {branches!r}, expected ['cond'] or "
                         "['cond', 'uncond']")
    expected = [*schema.STEP_ARRAYS, schema.LAYER_BLOCK, schema.VIDEO]
    for branch in branches:
        expected += schema.branch_arrays(branch)
    for spec in expected:
        try:
            array = root[spec.path]
        except KeyError:
            raise StoreError(f"{location} lacks the array {spec.path}") from None
        if tuple(array.metadata.dimension_names or ()) != spec.dims:
            raise StoreError(f"{location}: {spec.path} has dimensions {array.metadata.dimension_names}, "
                             f"expected {spec.dims}")
    for branch in branches:
        battrs = root[branch].attrs.asdict()
        missing = [key for key in schema.REQUIRED_BRANCH_ATTRS if key not in battrs]
        if missing:
            raise StoreError(f"{location}: group {branch} lacks attributes: {', '.join(missing)}")
