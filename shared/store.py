"""Create and open wan-attention stores, and check that what is opened is one.

The recorder calls :func:`create_recording_store`, which never replaces anything but
a store of this schema that no live process is writing, and holds the store's lock
until the recording ends. Every reader calls :func:`open_store`, which refuses, with
a one-line :class:`StoreError`, anything that is not a store this code can read, or
whose declared shapes are not sane, before anything is allocated from them.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BloscCodec, BloscShuffle, Crc32cCodec, ZstdCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from shared import schema
from shared.errors import describe as reason
from shared.local_store import MAX_KEY_BYTES, SafeLocalStore
from shared.locations import LocationError, fsspec_store, is_url
from shared.ownership import LOCK_NAME, LockHeld, ObjectStoreClaim, StoreLock, describe_owner, read_owner
from shared.schema import Attr


class StoreError(Exception):
    """A store is missing, unreadable, not one this version understands, or cannot be created. One line."""


# A crc32c checksum after compression, on every array: a flipped bit is an error on read,
# never a wrong picture. It costs 4 bytes per chunk and a few GB/s of CPU.
CHECKSUM = Crc32cCodec()
# Chosen by measurement (benchmarks/compression.py on a 480x832, 81-frame recording, H200 host;
# README "Compression"): fp16 probabilities barely compress (1.2-1.3x with any codec), so the
# fastest codec wins. Blosc/LZ4 with bit-shuffle: ratio 1.23 against 1.27 for Blosc/Zstd-3,
# but 3.8x faster to write (1158 against 308 MB/s) and faster to read (441 against 383 MB/s).
ATTENTION_COMPRESSORS = (BloscCodec(cname="lz4", clevel=5, shuffle=BloscShuffle.bitshuffle), CHECKSUM)
VIDEO_COMPRESSORS = (BloscCodec(cname="lz4", clevel=5, shuffle=BloscShuffle.shuffle), CHECKSUM)
SMALL_COMPRESSORS = (ZstdCodec(level=0), CHECKSUM)

# What a sane store can declare. Real recordings are far inside these (Wan 720p, 81 frames,
# 50 steps, 40 layers, 40 heads, 512 keys); a shape beyond them is an edited or hostile store.
MAX_STEPS = 10_000
MAX_LAYERS = 1_024
MAX_HEADS = 1_024
MAX_TOKENS = 4_096
MAX_VIDEO_FRAMES = 100_001
MAX_VIDEO_SIDE = 16_384
# One (step, layer) map, F' x H' x W' x tokens: the analyzer keeps a few arrays of this size
# (float32 sums, int32 win counts), so this bounds its memory at a few GiB. The largest Wan
# recordings are far below: 720p x 81 frames x 512 tokens is 3.9e7 values, TI2V-5B's
# 704x1280 x 121 frames x 512 tokens 5.6e7.
MAX_MAP_VALUES = 2**27

@dataclass(frozen=True)
class BranchLayout:
    """A branch ("cond" or "uncond"), the number of real tokens of its prompt, and its group attributes."""

    name: str
    num_tokens: int
    attributes: dict = field(default_factory=dict)  # its TOKENS and WORDS (when given) label the token axis
    token_ids: tuple[int, ...] | None = None


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
    # The pipeline step of each position on the step axis (the ``step`` coordinate); None: the planned
    # steps, 0, k, 2k, ... for the step_stride k of the record options.
    step_indices: tuple[int, ...] | None = None


def _create(group: zarr.Group, spec: schema.ArraySpec, shape, chunks, compressors=SMALL_COMPRESSORS,
            attributes: dict | None = None):
    return group.create_array(spec.path, shape=shape, chunks=chunks, dtype=_zarr_dtype(spec.dtype),
                              fill_value=spec.fill_value, dimension_names=spec.dims,
                              compressors=compressors, attributes=attributes)


def _zarr_dtype(dtype: str):
    """The data type zarr is given for a spec's dtype: ``schema.TEXT`` is zarr v3's variable-length UTF-8."""
    return str if dtype == schema.TEXT else dtype


def _dtype_matches(array: zarr.Array, dtype: str) -> bool:
    if dtype == schema.TEXT:
        from zarr.core.dtype import VariableLengthUTF8

        return isinstance(array.metadata.data_type, VariableLengthUTF8)
    return np.dtype(array.dtype) == np.dtype(dtype)


@dataclass(frozen=True)
class StorageOptions:
    """How the maps are stored, whatever was captured: float16 rounded to ``mantissa_bits`` (10 = lossless)."""

    mantissa_bits: int = schema.FLOAT16_MANTISSA_BITS

    def __post_init__(self):
        if isinstance(self.mantissa_bits, bool) or not isinstance(self.mantissa_bits, int) \
                or not 0 <= self.mantissa_bits <= schema.FLOAT16_MANTISSA_BITS:
            raise ValueError(f"mantissa bits must be an integer 0..{schema.FLOAT16_MANTISSA_BITS} (--mantissa-bits), "
                             f"got {self.mantissa_bits!r}")


@dataclass
class RecordingStore:
    """A store being recorded: its root group, and the lock that keeps anyone else out until :meth:`release`."""

    root: zarr.Group
    path: str
    lock: StoreLock | ObjectStoreClaim
    replaced: str | None = None  # what --overwrite replaced, for the recorder to say

    def root_for_final_status(self) -> zarr.Group:
        """The root to write a stopped recording's final status through, with the reserve freed for it.

        A write that failed left zarr's other writes of the same call under way (see
        :mod:`shared.local_store`). They end, or are refused, before the reserve is freed, so
        none takes the room meant for the status, and none lands after the status. The
        status then goes through a fresh store on the same directory.
        """
        root, data = self.root, self.root.store
        # Object storage is left as it is: it has no reserve, and a late chunk of a step never marked complete
        # is never read.
        if isinstance(data, SafeLocalStore):
            try:
                root = zarr.open_group(SafeLocalStore(self.path), mode="r+", zarr_format=3, use_consolidated=False)
            except Exception:  # noqa: BLE001 - unreadable root metadata: the status write says what is wrong
                pass
            else:
                data.stop_writes()
        try:
            self.free_reserve()
        except OSError:
            pass  # a read-only file system: the status write says so
        return root

    def free_reserve(self) -> None:
        """Give back the space set aside at creation, so that a full disk can still take the final status."""
        if not is_url(self.path):  # object storage has no disk to fill, and no reserve
            (Path(self.path) / RESERVE_NAME).unlink(missing_ok=True)

    def release(self) -> None:
        try:
            self.free_reserve()
        except OSError:
            pass  # a read-only file system: nothing more can be written or removed
        self.lock.release()


# Space set aside when a store is created and freed when it ends: on a disk that fills
# up during the recording, it is what lets the store still be marked "failed" with the reason.
RESERVE_NAME = ".wan-attention.reserve"
RESERVE_BYTES = 1 << 20


def _set_aside(directory: Path) -> None:
    with open(directory / RESERVE_NAME, "wb") as f:
        f.write(bytes(RESERVE_BYTES))
        f.flush()
        os.fsync(f.fileno())


def _check_name(text: str) -> None:
    if not text.strip():
        raise StoreError("the output path is empty; name a new directory for the store")
    if text.rstrip("/").lower().endswith(".zip"):
        raise StoreError(f"{text}: a store is recorded into a directory (or s3://...), never a zip, which cannot "
                         f"rewrite its keys; record to {text.rstrip('/')[:-4]}.zarr, then "
                         f"`wan-analyze pack {text.rstrip('/')[:-4]}.zarr {text.rstrip('/')}`")


def _target(path: str | os.PathLike) -> Path:
    """The directory a new store goes to; refuses paths no store may take."""
    text = os.fspath(path)
    _check_name(text)
    real = Path(os.path.realpath(text))
    cwd = Path(os.path.realpath(os.getcwd()))
    if real == cwd or real in cwd.parents:
        raise StoreError(f"{text} is the working directory or one of its parents; name a new directory for the store")
    return Path(text)


def _store_attributes(directory: Path) -> dict | None:
    """The root attributes of the Zarr group in ``directory``, or None when it holds none that can be read."""
    try:
        with open(directory / "zarr.json", "rb") as f:
            meta = json.loads(f.read(1 << 20))
        attrs = meta.get("attributes") if isinstance(meta, dict) else None
        return attrs if isinstance(attrs, dict) else None
    except (OSError, ValueError):
        return None


def _is_ours(directory: Path) -> bool:
    """Whether ``directory`` is a wan-attention store, or the start of one (its lock file, with an owner)."""
    attrs = _store_attributes(directory)
    return (attrs or {}).get(Attr.SCHEMA) == schema.SCHEMA_NAME or bool(read_owner(directory))


def _lock_is_held(directory: Path) -> dict | None:
    """The owner of a live lock on ``directory``, or None when no live process holds it."""
    import fcntl

    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    except OSError:
        return read_owner(directory) or {}
    finally:
        os.close(fd)


def _check_replaceable(directory: Path, shown: str) -> None:
    if directory.is_symlink() or not directory.is_dir():
        raise StoreError(f"{shown} exists and is not a wan-attention store; --overwrite replaces only a store "
                         "this tool wrote")
    if not _is_ours(directory) and any(os.scandir(directory)):  # an empty directory holds nothing to lose
        raise StoreError(f"{shown} is not a wan-attention store; --overwrite replaces only a store this tool "
                         "wrote, never another directory")
    owner = _lock_is_held(directory)
    if owner is not None:
        raise StoreError(f"{shown} is being recorded by {describe_owner(owner)}; it cannot be replaced while "
                         "that recording runs")


def check_output(path: str | os.PathLike, overwrite: bool = False, storage_options: dict | None = None) -> None:
    """Refuse, before any work, an output that :func:`create_recording_store` would refuse."""
    if is_url(path):
        _check_name(os.fspath(path))
        _check_remote_replaceable(_remote(os.fspath(path), storage_options), os.fspath(path), overwrite)
        return
    if storage_options:
        raise StoreError(f"{os.fspath(path)}: --storage-option applies to URLs (s3://, ...), not to a local path")
    target = _target(path)
    if os.path.lexists(target):
        if not overwrite:
            raise StoreError(f"{os.fspath(path)} already exists; choose another output or pass --overwrite")
        _check_replaceable(target, os.fspath(path))


# Top-level names of a store: only these are removed when a store is replaced.
_STORE_NAMES = frozenset({"zarr.json", *schema.BRANCHES,
                          *(spec.path.split("/")[0] for spec in (*schema.STEP_ARRAYS, schema.LAYER_BLOCK,
                                                                 schema.VIDEO, schema.VIDEO_WRITTEN))})


def _remove_store_keys(directory: Path) -> None:
    """Empty a store about to be replaced: its own names and its interrupted writes, nothing else."""
    for entry in os.scandir(directory):
        if entry.name in _STORE_NAMES and entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        elif entry.name in _STORE_NAMES or entry.name == RESERVE_NAME or entry.name.endswith(".partial"):
            os.unlink(entry.path)


def create_recording_store(path: str | os.PathLike, layout: StoreLayout, overwrite: bool = False,
                           storage_options: dict | None = None) -> RecordingStore:
    """Create an empty store at ``path`` with status "recording", locked until the caller releases it.

    Creation is atomic with respect to other creators: the directory is made with one
    ``mkdir``, so of two recorders started on one new path exactly one wins. An existing
    path is refused unless ``overwrite``, and even then only a wan-attention store that
    no live process is writing is replaced. Every failure is a one-line StoreError.

    A URL (``s3://bucket/run.zarr``, with fsspec ``storage_options``) records into object
    storage: see :func:`_create_remote`.
    """
    shown = os.fspath(path)
    if is_url(shown):
        return _create_remote(shown, layout, overwrite, storage_options)
    if storage_options:
        raise StoreError(f"{shown}: --storage-option applies to URLs (s3://, ...), not to a local path")
    target = _target(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(target)
        created = True
    except FileExistsError:
        if not overwrite:
            raise StoreError(f"{shown} already exists; choose another output or pass --overwrite") from None
        created = False
    except OSError as exc:
        raise StoreError(f"cannot create the store {shown}: {reason(exc)}") from None
    if not created:
        _check_replaceable(target, shown)
    lock = StoreLock(target)
    try:
        lock.acquire()
    except LockHeld as exc:
        raise StoreError(f"{shown} is being recorded by {exc}; choose another output") from None
    except OSError as exc:
        if created:
            _remove_empty(target)
        raise StoreError(f"cannot lock the store {shown}: {reason(exc)}") from None
    local = None
    try:
        replaced = None
        if not created:
            status = (_store_attributes(target) or {}).get(Attr.STATUS)
            replaced = (f"replaced a recording left at status {status!r} by {describe_owner(lock.previous_owner)}, "
                        "which is no longer running") if lock.previous_owner else f"replaced a store (status {status!r})"
            _remove_store_keys(target)
        _set_aside(target)
        local = SafeLocalStore(target)
        root = _create_layout(zarr.create_group(local, zarr_format=3,
                                                attributes=_initial_attributes(layout, lock.owner)), layout)
    except BaseException as exc:
        if local is not None:
            local.stop_writes()  # zarr's other writes of the failed node are still landing: none after this
        _undo_creation(target, created)
        lock.release()
        if created:
            _remove_empty(target)
        if isinstance(exc, OSError):
            raise StoreError(f"cannot create the store {shown}: {reason(exc)}") from None
        raise
    return RecordingStore(root, shown, lock, replaced)


def _remote(url: str, storage_options: dict | None):
    try:
        return fsspec_store(url, storage_options, read_only=False)
    except LocationError as exc:
        raise StoreError(str(exc)) from None


def _remote_attributes(store, url: str) -> dict | None:
    """The root attributes of the store at ``url``; None when nothing is there; {} when it is not a Zarr group."""
    try:
        raw = sync(store.get("zarr.json", prototype=default_buffer_prototype()))
        keys = sync(_first_key(store)) if raw is None else "zarr.json"
    except Exception as exc:  # a wrong endpoint, no credentials, no bucket: one line, before any work
        raise StoreError(f"cannot reach {url}: {reason(exc)}") from None
    if keys is None:
        return None
    if raw is None:
        return {}
    try:
        attrs = json.loads(raw.to_bytes()[: 1 << 20]).get("attributes")
    except (ValueError, AttributeError):
        return {}
    return attrs if isinstance(attrs, dict) else {}


async def _first_key(store):
    async for key in store.list():
        return key
    return None


def _check_remote_replaceable(store, url: str, overwrite: bool) -> dict | None:
    """Refuse a URL that holds anything unless ``overwrite`` and it is a finished wan-attention store."""
    attrs = _remote_attributes(store, url)
    if attrs is None:
        return None
    if not overwrite:
        raise StoreError(f"{url} already exists; choose another output or pass --overwrite")
    if attrs.get(Attr.SCHEMA) != schema.SCHEMA_NAME:
        raise StoreError(f"{url} holds objects that are not a wan-attention store; --overwrite replaces only a "
                         "store this tool wrote")
    if attrs.get(Attr.STATUS) not in schema.FINAL_STATUSES:
        # object storage has no lock that dies with its process: a live recording cannot be told from a dead one
        raise StoreError(f"{url} is at status {str(attrs.get(Attr.STATUS))[:40]!r} and object storage cannot tell "
                         f"whether its recorder ({describe_owner(attrs.get(Attr.OWNER) or {})}) still runs; if it "
                         "does not, delete the store and record again, or choose another output")
    return attrs


def _is_store_key(key: str) -> bool:
    """Whether ``key`` is one a store of any version writes: a schema node's zarr.json, or a chunk of a schema
    array. Object storage has no folders to remove whole, and a user's ``video/clip.mp4`` beside a store is not
    the store's."""
    arrays = {spec.path for spec in (*schema.STEP_ARRAYS, schema.LAYER_BLOCK, schema.VIDEO, schema.VIDEO_WRITTEN)}
    for branch in schema.BRANCHES:
        arrays |= {spec.path for spec in (*schema.branch_arrays(branch), *schema.coordinate_arrays(branch))}
    nodes = {"", *arrays, *(path.rsplit("/", 1)[0] for path in arrays if "/" in path)}
    return key in {f"{node}/zarr.json" if node else "zarr.json" for node in nodes} or \
        any(key.startswith(f"{array}/c/") for array in arrays)


def _remove_remote_store_keys(store) -> None:
    """Delete the store's own keys under the URL (its metadata and chunks), the root zarr.json last, nothing else."""
    async def remove():
        keys = sorted([key async for key in store.list() if _is_store_key(key)], key=lambda k: k == "zarr.json")
        for key in keys:
            await store.delete(key)
    sync(remove())


def _create_remote(url: str, layout: StoreLayout, overwrite: bool, storage_options: dict | None) -> RecordingStore:
    """A new store in object storage. Each object is written whole or not at all (a PUT is atomic), so the
    complete flags mean there what they mean on disk. There is no lock: the store's existing root metadata
    keeps a second recorder out, and ``owner`` records who wrote it."""
    store = _remote(url, storage_options)
    previous = _check_remote_replaceable(store, url, overwrite)
    claim = ObjectStoreClaim()
    try:
        if previous is not None:
            _remove_remote_store_keys(store)
        root = _create_layout(zarr.create_group(store, zarr_format=3,  # our keys are gone; never delete_dir
                                                attributes=_initial_attributes(layout, claim.owner)), layout)
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"cannot create the store {url}: {reason(exc)}") from None
    replaced = None if previous is None else f"replaced a store (status {previous.get(Attr.STATUS)!r})"
    return RecordingStore(root, url, claim, replaced)


def finish(root: zarr.Group, attributes: dict) -> bool:
    """Set the final attributes of a store (status last among them), then consolidate its metadata.

    Consolidated metadata puts every group's and array's metadata in the root ``zarr.json``,
    so that a remote reader (and xarray) gets all of it in one request. It is written after
    every other attribute, and rewritten on every later change of status, so it is never
    behind the store. Local readers do not use it (they read a live recording as it is).

    Returns whether the metadata could be consolidated: on a disk that filled up it may
    not, and then the store has none (the attribute update drops an old copy), which
    costs a remote reader more requests but never gives it a wrong answer.
    """
    root.attrs.update(attributes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "consolidated metadata is not part of the v3 spec": known, and wanted
            zarr.consolidate_metadata(root.store, path=root.path or "", zarr_format=3)
    except Exception:  # noqa: BLE001 - see above: the status is written, the copy is an optimisation
        return False
    return True


def _undo_creation(target: Path, created: bool) -> None:
    """After a failed creation, remove what it wrote (never anything else); best effort on a broken disk."""
    try:
        (target / RESERVE_NAME).unlink(missing_ok=True)
        if created:
            _remove_store_keys(target)
    except OSError:
        pass


def _remove_empty(directory: Path) -> None:
    try:
        (directory / LOCK_NAME).unlink(missing_ok=True)
        directory.rmdir()
    except OSError:
        pass  # not empty (someone else's files arrived) or not writable: leave it


def create_store(path: str | os.PathLike, layout: StoreLayout, overwrite: bool = False,
                 storage_options: dict | None = None) -> zarr.Group:
    """Create an empty store and return its root group, without holding its lock (tests, benchmarks)."""
    store = create_recording_store(path, layout, overwrite, storage_options)
    store.release()
    return store.root


def _initial_attributes(layout: StoreLayout, owner: dict) -> dict:
    return {
        Attr.SCHEMA: schema.SCHEMA_NAME,
        Attr.SCHEMA_VERSION: schema.SCHEMA_VERSION,
        Attr.STATUS: schema.STATUS_RECORDING,
        Attr.OWNER: owner,
        Attr.COMPRESSION: [c.to_dict() for c in ATTENTION_COMPRESSORS],
        **layout.attributes,
    }


def _coordinates_attribute(branch: str, spec: schema.ArraySpec) -> dict:
    """The ``coordinates`` attribute of a data array: its non-index coordinates, for xarray (CF)."""
    return {schema.COORDINATES_ATTRIBUTE: " ".join(schema.auxiliary_coordinates(branch, spec.dims))}


def _step_indices(layout: StoreLayout) -> list[int]:
    if layout.step_indices is not None:
        if len(layout.step_indices) != layout.num_steps:
            raise ValueError(f"{len(layout.step_indices)} step indices for {layout.num_steps} steps")
        return [int(i) for i in layout.step_indices]
    options = layout.attributes.get(Attr.RECORD_OPTIONS)
    stride = options.get(schema.RecordOption.STEP_STRIDE, 1) if isinstance(options, dict) else 1
    stride = stride if isinstance(stride, int) and not isinstance(stride, bool) and stride >= 1 else 1
    return schema.recorded_steps(layout.num_steps * stride, stride)


def _pixel_spans(layout: StoreLayout) -> list[tuple[int, int]]:
    """The pixel frames each latent frame covers: the latent_grid attribute's, or Wan's rule (factor 4)."""
    from shared.grid import pixel_frames_of_latent

    frames = layout.grid[0]
    grid = layout.attributes.get(Attr.LATENT_GRID)
    grid = grid if isinstance(grid, dict) else {}
    spans = grid.get(schema.GridKey.PIXEL_FRAMES)
    try:
        spans = [(int(a), int(b)) for a, b in spans]
        if len(spans) == frames:
            return spans
    except (TypeError, ValueError):
        pass
    factor = grid.get(schema.GridKey.VAE_SCALE_TEMPORAL)
    factor = factor if isinstance(factor, int) and not isinstance(factor, bool) and factor >= 1 else 4
    return [(int(a), int(b)) for a, b in pixel_frames_of_latent(frames, factor)]


def token_labels(num_tokens: int, attributes: dict) -> tuple[list[str], list[str], list[int]]:
    """(token text, word text, word index) per token, from a branch's TOKENS and WORDS attributes.

    Without them (a layout that names no tokens) every text is "" and every token its own word.
    """
    tokens = attributes.get(schema.BranchAttr.TOKENS)
    texts = [schema.token_text(t) for t in tokens] if isinstance(tokens, (list, tuple)) \
        and len(tokens) == num_tokens else [""] * num_tokens
    word_text, word_index = [""] * num_tokens, list(range(num_tokens))
    words = attributes.get(schema.BranchAttr.WORDS)
    if isinstance(words, (list, tuple)):
        for w, word in enumerate(words):
            if not isinstance(word, dict):
                continue
            for t in word.get("tokens") or ():
                if isinstance(t, int) and 0 <= t < num_tokens:
                    word_text[t], word_index[t] = str(word.get("text", "")), w
    return texts, word_text, word_index


def _create_coordinates(root: zarr.Group, layout: StoreLayout, branch: BranchLayout) -> None:
    """A branch's coordinate arrays (schema 1.3): all but the per-step ones are known, and written, now."""
    f, h, w = layout.grid
    texts, word_text, word_index = token_labels(branch.num_tokens, branch.attributes)
    spans = _pixel_spans(layout)
    values = {
        schema.step_coordinate: _step_indices(layout),
        schema.layer_coordinate: list(layout.layer_blocks),
        schema.frame_coordinate: list(range(f)),
        schema.frame_first_pixel: [a for a, _ in spans],
        schema.frame_last_pixel: [b for _, b in spans],
        schema.y_coordinate: list(range(h)),
        schema.x_coordinate: list(range(w)),
        schema.token_coordinate: texts,
        schema.word_coordinate: word_text,
        schema.word_index_coordinate: word_index,
        schema.token_index_coordinate: list(range(branch.num_tokens)),
    }
    values = {make(branch.name).path: v for make, v in values.items()}
    lengths = {schema.DIM_STEP: layout.num_steps, schema.DIM_LAYER: len(layout.layer_blocks), schema.DIM_FRAME: f,
               schema.DIM_Y: h, schema.DIM_X: w, schema.DIM_TOKEN: branch.num_tokens}
    for spec in schema.coordinate_arrays(branch.name):
        n = lengths[spec.dims[0]]
        array = _create(root, spec, (n,), (max(n, 1),))
        if spec.path in values and n:
            # written even when equal to the fill value: an absent chunk would mean "lost"
            array.with_config({"write_empty_chunks": True})[:] = np.asarray(
                values[spec.path], dtype=object if spec.dtype == schema.TEXT else spec.dtype)


def _create_layout(root: zarr.Group, layout: StoreLayout) -> zarr.Group:
    n_steps, n_layers = layout.num_steps, len(layout.layer_blocks)
    for spec in schema.STEP_ARRAYS:
        _create(root, spec, (n_steps,), (max(n_steps, 1),))
    blocks = _create(root, schema.LAYER_BLOCK, (n_layers,), (max(n_layers, 1),))
    blocks[:] = list(layout.layer_blocks)

    f, h, w = layout.grid
    for branch in layout.branches:
        t = branch.num_tokens
        name = branch.name
        root.create_group(name, attributes=branch.attributes)
        coords = {spec.path: _coordinates_attribute(name, spec) for spec in schema.branch_arrays(name)}
        shape = (n_steps, n_layers, f, h, w, t)
        spec = schema.attention(name)
        _create(root, spec, shape, schema.attention_chunks(shape, "float16"), ATTENTION_COMPRESSORS, coords[spec.path])
        shape = (n_steps, n_layers, f, h, w)
        spec = schema.padding_mass(name)
        _create(root, spec, shape, schema.attention_chunks(shape, "float16"), ATTENTION_COMPRESSORS, coords[spec.path])
        per_head = (n_steps, n_layers, layout.num_heads)
        for spec in (schema.head_entropy(name), schema.head_padding_mass(name)):
            _create(root, spec, per_head, (1, n_layers, layout.num_heads), attributes=coords[spec.path])
        spec = schema.head_token_mass(name)
        _create(root, spec, (*per_head, t), (1, n_layers, layout.num_heads, t), attributes=coords[spec.path])
        spec = schema.token_ids(name)
        ids = _create(root, spec, (t,), (t,), attributes=coords[spec.path])
        if branch.token_ids is not None:
            ids[:] = np.asarray(branch.token_ids, dtype=np.int32)
        _create_coordinates(root, layout, branch)

    _create(root, schema.VIDEO, layout.video_shape, schema.video_chunks(layout.video_shape), VIDEO_COMPRESSORS)
    frames = layout.video_shape[0]
    _create(root, schema.VIDEO_WRITTEN, (frames,), (max(frames, 1),))
    return root


def stored_bytes(node: zarr.Group | zarr.Array) -> int:
    """Bytes an array, or every array of a group, takes in its store (chunks and metadata), as zarr counts them."""
    if isinstance(node, zarr.Array):
        return node.nbytes_stored()
    return sum(member.nbytes_stored() for _, member in node.members(max_depth=None)
               if isinstance(member, zarr.Array))


def _zip_members(location: str) -> list[str]:
    """The member names of a zip; refuses one whose members expand beyond what any key of a store holds."""
    try:
        with zipfile.ZipFile(location) as archive:
            for info in archive.infolist():
                if info.file_size > MAX_KEY_BYTES:
                    raise StoreError(f"{location}: zip member {info.filename[:200]!r} expands to {info.file_size} "
                                     f"bytes, more than any key of a store ({MAX_KEY_BYTES}); refusing it")
            return archive.namelist()
    except zipfile.BadZipFile as exc:
        raise StoreError(f"{location} is not a readable Zarr store: neither a store directory nor a zip ({exc})") from None


def _open_zip(location: str) -> zarr.Group:
    """A zip in either layout: the store's keys at the root (``pack``), or one folder holding them (``zip -r``)."""
    members = _zip_members(location)
    if "zarr.json" in members:
        from zarr.storage import ZipStore

        return zarr.open_group(ZipStore(location, mode="r"), mode="r", zarr_format=3)
    folders = sorted({name.split("/")[0] for name in members if name.count("/") == 1 and name.endswith("/zarr.json")})
    if len(folders) != 1:
        what = f"holds {len(folders)} stores ({', '.join(repr(f[:80]) for f in folders[:5])}); unzip it" if folders \
            else "holds no zarr.json, neither at its root nor in one folder"
        raise StoreError(f"{location} is not a readable Zarr store: the zip {what}")
    from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper
    from fsspec.implementations.zip import ZipFileSystem
    from zarr.storage import FsspecStore

    store = FsspecStore(AsyncFileSystemWrapper(ZipFileSystem(location), asynchronous=True), path=folders[0],
                        read_only=True)
    return zarr.open_group(store, mode="r", zarr_format=3)


def _open_zarr(location: str, storage_options: dict | None = None) -> zarr.Group:
    if is_url(location):
        try:
            store = fsspec_store(location, storage_options, read_only=True)
        except LocationError as exc:
            raise StoreError(str(exc)) from None
        # a remote store's metadata in one request: the consolidated copy that a finished recording has
        return zarr.open_group(store, mode="r", zarr_format=3)
    if storage_options:
        raise StoreError(f"{location}: --storage-option applies to URLs (s3://, gs://, https://), not to a local path")
    if not os.path.exists(location):
        raise StoreError(f"no store at {location}")
    if os.path.isfile(location):
        if is_hdf5(location):
            from shared.hdf5_store import Hdf5Store

            return zarr.open_group(Hdf5Store(location), mode="r", zarr_format=3)
        return _open_zip(location)
    if not os.path.isdir(location):
        raise StoreError(f"{location} is neither a directory nor a file")
    # a local directory is read as it is now, never through a consolidated copy that a live recording outdates
    return zarr.open_group(SafeLocalStore(location, read_only=True), mode="r", zarr_format=3, use_consolidated=False)


def is_hdf5(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an HDF5 file (``wan-analyze export``), by its signature."""
    try:
        with open(path, "rb") as f:
            return f.read(8) == HDF5_SIGNATURE
    except OSError:
        return False


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def open_store(location: str | os.PathLike, storage_options: dict | None = None) -> zarr.Group:
    """Open a store read-only (directory, zip, HDF5 export, or fsspec URL) and validate it.

    ``storage_options`` go to fsspec for a URL (credentials, ``endpoint_url``, ...).
    Raises :class:`StoreError` with one line when it is missing, not a Zarr group, of
    another schema or a newer major version, or lacks a documented array or attribute.
    """
    location = os.fspath(location)
    try:
        root = _open_zarr(location, storage_options)
    except StoreError:
        raise
    except Exception as exc:  # zarr raises several types for "not a group"; the user needs one line
        raise StoreError(f"{location} is not a readable Zarr store ({reason(exc)})") from None
    try:
        validate(root, location)
    except StoreError:
        raise
    except Exception as exc:  # an attribute of the wrong type, an unreadable group: still one line
        raise StoreError(f"{location} is not a readable wan-attention store ({reason(exc)})") from None
    return root


def validate(root: zarr.Group, location: str = "store") -> None:
    """Check schema, version, attributes, and every array's type, codecs, shape and chunks.

    Raises StoreError on the first problem. Shapes are checked against each other, the
    root attributes and absolute bounds, so that no reader allocates from a shape that
    an edited or hostile store declares.
    """
    attrs = root.attrs.asdict()
    name = attrs.get(Attr.SCHEMA)
    if name != schema.SCHEMA_NAME:
        raise StoreError(f"{location} is not a wan-attention store (schema attribute is {str(name)[:80]!r})")
    version_text = str(attrs.get(Attr.SCHEMA_VERSION, ""))
    try:
        version = schema.version_tuple(version_text)
    except ValueError:
        raise StoreError(f"{location} has an unreadable schema_version {version_text[:40]!r}") from None
    if version[0] > schema.SCHEMA_MAJOR:
        raise StoreError(f"{location} uses schema version {version_text}, newer than this reader's "
                         f"{schema.SCHEMA_VERSION}; upgrade wan-attention")
    missing = [key for key in schema.REQUIRED_ROOT_ATTRS if key not in attrs]
    if missing:
        raise StoreError(f"{location} lacks root attributes: {', '.join(missing)}")
    if attrs[Attr.STATUS] not in (schema.STATUS_RECORDING, *schema.FINAL_STATUSES):
        raise StoreError(f"{location} has an unknown status {str(attrs[Attr.STATUS])[:40]!r}")
    options = attrs[Attr.RECORD_OPTIONS]
    branches = options.get(schema.RecordOption.BRANCHES) if isinstance(options, dict) else None
    if not isinstance(branches, list) or schema.BRANCH_COND not in branches \
            or not set(branches) <= set(schema.BRANCHES) or len(set(branches)) != len(branches):
        raise StoreError(f"{location}: record_options.branches is {str(branches)[:80]}, expected ['cond'] or "
                         "['cond', 'uncond']")
    checksummed = version >= schema.VIDEO_WRITTEN_SINCE  # 1.1 brought both
    arrays = {spec.path: _checked_array(root, spec, location, checksummed) for spec in store_arrays(attrs)}
    _check_shapes(arrays, branches, attrs, location)
    for branch in branches:
        battrs = root[branch].attrs.asdict()
        missing = [key for key in schema.REQUIRED_BRANCH_ATTRS if key not in battrs]
        if missing:
            raise StoreError(f"{location}: group {branch} lacks attributes: {', '.join(missing)}")


def store_arrays(attrs: dict) -> list[schema.ArraySpec]:
    """The arrays a store with these root attributes has (its version and branches decide), once validated."""
    expected = [*schema.STEP_ARRAYS, schema.LAYER_BLOCK, schema.VIDEO]
    if schema.version_tuple(attrs[Attr.SCHEMA_VERSION]) >= schema.VIDEO_WRITTEN_SINCE:
        expected.append(schema.VIDEO_WRITTEN)
    coordinates = schema.version_tuple(attrs[Attr.SCHEMA_VERSION]) >= schema.COORDINATES_SINCE
    for branch in attrs[Attr.RECORD_OPTIONS][schema.RecordOption.BRANCHES]:
        expected += schema.branch_arrays(branch)
        if coordinates:
            expected += schema.coordinate_arrays(branch)
    return expected


def store_groups(arrays: list[schema.ArraySpec]) -> list[str]:
    """The groups that hold ``arrays``, the root ("") first."""
    parents = {"/".join(spec.path.split("/")[:i]) for spec in arrays for i in range(1, spec.path.count("/") + 1)}
    return ["", *sorted(parents)]


def _checked_array(root: zarr.Group, spec: schema.ArraySpec, location: str, checksummed: bool):
    """Open one array and check its metadata against the spec; StoreError naming it otherwise."""
    try:
        array = root[spec.path]
        dims = tuple(array.metadata.dimension_names or ())
        dtype = np.dtype(array.dtype)
        dtype_ok = _dtype_matches(array, spec.dtype)
        chunks = tuple(int(c) for c in array.chunks)
        codecs = [type(c).__name__ for c in array.metadata.codecs]
    except KeyError:
        raise StoreError(f"{location} lacks the array {spec.path}") from None
    except Exception as exc:  # zarr rejects edited metadata with many types; the reader needs one line
        raise StoreError(f"{location}: the metadata of {spec.path} is unreadable ({reason(exc)})") from None
    if dims != spec.dims:
        raise StoreError(f"{location}: {spec.path} has dimensions {list(dims)}, expected {list(spec.dims)}")
    if not dtype_ok:
        raise StoreError(f"{location}: {spec.path} has data type {dtype}, expected {spec.dtype}")
    if any(c < 1 for c in chunks) or int(np.prod(chunks, dtype=np.float64)) * dtype.itemsize > MAX_KEY_BYTES:
        raise StoreError(f"{location}: {spec.path} declares chunks of {list(chunks)}, beyond what a store holds")
    if checksummed and type(CHECKSUM).__name__ not in codecs:
        raise StoreError(f"{location}: {spec.path} has no crc32c checksum, which every array of schema "
                         f"{schema.VIDEO_WRITTEN_SINCE[0]}.{schema.VIDEO_WRITTEN_SINCE[1]} and later carries")
    return array


def _check_shapes(arrays: dict, branches: list[str], attrs: dict, location: str) -> None:
    """Every shape agrees with the others, with the root attributes, and with the bounds above."""
    def fail(what: str):
        raise StoreError(f"{location}: {what}")

    def shape_of(spec: schema.ArraySpec) -> tuple[int, ...]:
        shape = tuple(int(n) for n in arrays[spec.path].shape)
        if len(shape) != len(spec.dims) or any(n < 0 for n in shape):
            fail(f"{spec.path} has shape {list(shape)}, expected {len(spec.dims)} axes ({', '.join(spec.dims)})")
        return shape

    steps = {shape_of(spec) for spec in schema.STEP_ARRAYS}
    if len(steps) != 1:
        fail(f"the step arrays disagree on the number of steps: {sorted(s[0] for s in steps)}")
    (n_steps,), = steps
    (n_layers,) = shape_of(schema.LAYER_BLOCK)
    frames, height, width, rgb = shape_of(schema.VIDEO)
    for value, bound, what in ((n_steps, MAX_STEPS, "recorded steps"), (n_layers, MAX_LAYERS, "layers"),
                               (frames, MAX_VIDEO_FRAMES, "video frames"), (height, MAX_VIDEO_SIDE, "video height"),
                               (width, MAX_VIDEO_SIDE, "video width")):
        if value > bound:
            fail(f"{value} {what} is more than any recording has (at most {bound})")
    if rgb != 3:
        fail(f"{schema.VIDEO.path} has {rgb} colour channels, expected 3")
    declared = tuple(attrs.get(k) for k in (Attr.NUM_FRAMES, Attr.HEIGHT, Attr.WIDTH))
    if declared != (frames, height, width):
        fail(f"{schema.VIDEO.path} has shape {[frames, height, width]} (frames, height, width) but the attributes "
             f"say {list(declared)}")
    if schema.VIDEO_WRITTEN.path in arrays and shape_of(schema.VIDEO_WRITTEN) != (frames,):
        fail(f"{schema.VIDEO_WRITTEN.path} has shape {list(shape_of(schema.VIDEO_WRITTEN))}, expected [{frames}]")
    if tuple(arrays[schema.VIDEO.path].chunks) != schema.video_chunks((frames, height, width, rgb)):
        fail(f"{schema.VIDEO.path} has chunks {list(arrays[schema.VIDEO.path].chunks)}, not one frame per chunk")

    grids = set()
    for branch in branches:
        attention = shape_of(schema.attention(branch))
        s, l, f, h, w, t = attention
        grids.add((f, h, w))
        if (s, l) != (n_steps, n_layers):
            fail(f"{schema.attention(branch).path} has {s} steps and {l} layers, but the step arrays have {n_steps} "
                 f"and layers/block {n_layers}")
        if t > MAX_TOKENS or f > frames or h > height or w > width or f * h * w * t > MAX_MAP_VALUES:
            fail(f"{schema.attention(branch).path} declares a map of {f} x {h} x {w} x {t} tokens, beyond the "
                 f"video ({frames} x {height} x {width}) or the bounds of any recording")
        expected = {
            schema.padding_mass(branch): attention[:5],
            schema.token_ids(branch): (t,),
        }
        heads = shape_of(schema.head_entropy(branch))
        if heads[:2] != (s, l) or heads[2] > MAX_HEADS:
            fail(f"{schema.head_entropy(branch).path} has shape {list(heads)}, expected [{s}, {l}, heads <= {MAX_HEADS}]")
        expected[schema.head_padding_mass(branch)] = heads
        expected[schema.head_token_mass(branch)] = (*heads, t)
        if schema.step_coordinate(branch).path in arrays:  # schema 1.3
            lengths = {schema.DIM_STEP: s, schema.DIM_LAYER: l, schema.DIM_FRAME: f, schema.DIM_Y: h, schema.DIM_X: w,
                       schema.DIM_TOKEN: t}
            expected.update({spec: (lengths[spec.dims[0]],) for spec in schema.coordinate_arrays(branch)})
        for spec, shape in expected.items():
            if shape_of(spec) != shape:
                fail(f"{spec.path} has shape {list(shape_of(spec))}, expected {list(shape)}")
        for spec in (schema.attention(branch), schema.padding_mass(branch)):
            chunks = tuple(arrays[spec.path].chunks)
            if chunks != schema.attention_chunks(shape_of(spec), spec.dtype):
                fail(f"{spec.path} has chunks {list(chunks)}, not the schema's "
                     f"{list(schema.attention_chunks(shape_of(spec), spec.dtype))}")
    if len(grids) > 1:
        fail(f"the branches disagree on the latent grid: {sorted(grids)}")
