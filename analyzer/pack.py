"""``wan-analyze pack STORE OUT.zip``: a store as one file to send, in the layout every reader opens.

The zip holds the store's keys at its root (``zarr.json`` first in the listing), each
copied byte for byte, so every chunk keeps its crc32c checksum; the root metadata is
consolidated, so a reader gets all metadata from one member. Nothing but the store's
own keys goes in (no lock, reserve or half-written file).

A zip cannot rewrite a key, so only a store whose status is final is packed; with
``force`` a store still being recorded is packed as it is at that moment and marked
"interrupted" in the zip (the source is not touched). The copy takes the step and
video flags before the chunks: a step the copy calls complete had its chunks written
before its flag, so they are in the zip too.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import zarr
from tqdm.auto import tqdm
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import MemoryStore

from shared import schema
from shared.errors import describe
from shared.schema import Attr
from shared.store import StoreError, open_store, store_arrays, store_groups

# Written first: what says which steps and frames exist (see the module docstring).
_FLAGS_FIRST = (schema.STEP_COMPLETE.path, schema.VIDEO_WRITTEN.path)


@dataclass(frozen=True)
class Packed:
    path: Path
    keys: int
    bytes: int
    status: str  # the status inside the zip
    forced: bool  # a live recording, packed as it stood


def check_zip_output(out: str | os.PathLike) -> Path:
    """A new ``.zip`` path whose folder exists; StoreError otherwise. Never an existing file."""
    path = Path(out)
    if path.suffix.lower() != ".zip":
        raise StoreError(f"{out}: a pack is a .zip file; name the output NAME.zip")
    if os.path.lexists(path):
        raise StoreError(f"{out} already exists; choose another output (a pack never replaces a file)")
    if not path.parent.is_dir():
        raise StoreError(f"{out}: the folder {path.parent} does not exist")
    return path


def pack_store(location: str | os.PathLike, out: str | os.PathLike, *, force: bool = False,
               storage_options: dict | None = None, progress: bool = False) -> Packed:
    """Write the store at ``location`` (any location :func:`open_store` takes) to the new zip ``out``."""
    path = check_zip_output(out)
    root = open_store(location, storage_options)
    status = root.attrs[Attr.STATUS]
    forced = status not in schema.FINAL_STATUSES
    if forced and not force:
        raise StoreError(f"{location} is still being recorded (status {str(status)[:40]!r}), and a zip cannot be "
                         "updated later; pack it when it ends, or pass --force for a snapshot marked interrupted")
    specs = store_arrays(root.attrs.asdict())  # the schema's arrays only: nothing else in the folder goes in
    arrays = {spec.path: root[spec.path] for spec in specs}
    groups = store_groups(specs)
    store = root.store
    # The flags' bytes are read before anything else is listed or read: every step (frame) they call
    # complete (written) had its chunks written before its flag, so the listing below finds them.
    flags = {key: data for path in _FLAGS_FIRST if path in arrays
             for key in _chunk_keys(store, arrays[path]) if (data := _get(store, key)) is not None}
    chunk_keys = [key for path, array in sorted(arrays.items()) if path not in _FLAGS_FIRST
                  for key in _chunk_keys(store, array)]
    metadata = _metadata(store, groups + list(arrays), forced)

    partial = path.with_name(f".{path.name}.partial")
    written, created = 0, False
    try:
        with open(partial, "xb") as raw:
            created = True
            with zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED, allowZip64=True) as archive, \
                    tqdm(total=len(chunk_keys) + len(metadata) + len(flags), desc="pack", unit="key",
                         file=sys.stderr, disable=not progress) as bar:
                for key, data in [*metadata.items(), *flags.items()]:  # zarr.json first: the root at the start
                    archive.writestr(_member(key), data)
                    written += len(data)
                    bar.update(1)
                for key in chunk_keys:
                    data = _get(store, key)
                    if data is not None:  # a chunk listed but gone: as if never written
                        archive.writestr(_member(key), data)
                        written += len(data)
                    bar.update(1)
            raw.flush()
            os.fsync(raw.fileno())
        os.link(partial, path)  # never replaces a file that appeared meanwhile
    except FileExistsError:
        where = path if created else partial
        raise StoreError(f"{where} already exists (another pack writing, or one that was stopped); choose another "
                         "output, or remove it if no pack runs") from None
    except OSError as exc:
        raise StoreError(f"cannot write {out}: {describe(exc)}") from None
    finally:
        if created:  # only the file this call made: another pack's partial is not ours
            partial.unlink(missing_ok=True)
    final = schema.STATUS_INTERRUPTED if forced else str(status)
    return Packed(path, len(metadata) + len(chunk_keys), written, final, forced)


def _member(key: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(key, date_time=(1980, 1, 1, 0, 0, 0))  # the same store packs to the same bytes
    info.compress_type = zipfile.ZIP_STORED  # chunks are compressed already
    return info


def _get(store, key: str) -> bytes | None:
    buffer = sync(store.get(key, prototype=default_buffer_prototype()))
    return None if buffer is None else buffer.to_bytes()


def _chunk_keys(store, array: zarr.Array) -> list[str]:
    """The array's chunk keys that exist, from one listing of its prefix: only keys of its chunk grid
    (``c/i/j/...`` inside the grid), never a half-written ``.partial`` file or anything else left there."""
    prefix = f"{array.path}/"
    grid = [math.ceil(n / c) for n, c in zip(array.shape, array.chunks)]

    def in_grid(key: str) -> bool:
        parts = key[len(prefix):].split("/")
        return parts[0] == "c" and len(parts) == len(grid) + 1 and \
            all(p.isdigit() and int(p) < n for p, n in zip(parts[1:], grid))

    async def listing():
        return sorted([key async for key in store.list_prefix(prefix) if in_grid(key)])
    return sync(listing())


def _metadata(store, nodes: list[str], forced: bool) -> dict[str, bytes]:
    """Every ``zarr.json``, the root consolidated (and marked interrupted when ``forced``), root first."""
    memory = MemoryStore()
    for node in nodes:
        key = f"{node}/zarr.json" if node else "zarr.json"
        data = _get(store, key)
        if data is None:
            raise StoreError(f"the store lost {key} while it was being packed")
        sync(memory.set(key, default_buffer_prototype().buffer.from_bytes(data)))
    root = zarr.open_group(memory, mode="r+", zarr_format=3, use_consolidated=False)
    attributes = {}
    if forced:
        attributes = {Attr.STATUS: schema.STATUS_INTERRUPTED, Attr.INTERRUPTED_BY: "wan-analyze pack --force",
                      Attr.ERROR: "packed with --force while the recording ran: what was written after that moment "
                                  "is not in this copy"}
    root.attrs.update(attributes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # consolidated metadata is not in the v3 spec: known, and wanted
        zarr.consolidate_metadata(memory, zarr_format=3)
    keys = sorted((k for k in sync(_all_keys(memory))), key=lambda k: (k != "zarr.json", k))
    return {key: _get(memory, key) for key in keys}


async def _all_keys(store):
    return [key async for key in store.list()]
