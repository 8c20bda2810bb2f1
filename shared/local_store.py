"""A local Zarr store that writes durably and reads only what is safely a chunk.

Writing: zarr's own LocalStore already writes each key to a temporary file and renames
it into place, so a crash or a full disk never leaves a torn key. It does not fsync,
so after a power loss a step marked complete could point at data still in the page
cache. Here every key is fsynced before its rename: the recorder writes a step's
``complete`` flag only after that step's chunks are on disk.

Reading: a store is untrusted input. A chunk "file" that is a FIFO blocks a reader
forever, one that is a symlink to /dev/zero reads until memory runs out, and one that
leaves the store reads whatever it points at. Each key is checked to be a regular
file inside the store, of bounded size, before it is read.
"""

from __future__ import annotations

import asyncio
import os
import stat
import uuid
from pathlib import Path

from zarr.abc.store import ByteRequest
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.storage import LocalStore
from zarr.storage._local import _get

# No key of a store is larger: chunks are bounded by shared.schema.MAX_CHUNK_BYTES
# (a single frame may exceed it; 256 MiB holds an 8K RGB frame or a 16-bit 4K map).
MAX_KEY_BYTES = 256 * 2**20


class UnsafeKeyError(OSError):
    """A key of the store is not a regular file inside it, or is larger than any key can be."""


def _checked_path(root: Path, key: str) -> Path | None:
    """The path of ``key`` when it is safe to read; None when it does not exist."""
    path = root / key
    try:
        real = Path(os.path.realpath(path))
        info = os.stat(real)
    except (FileNotFoundError, NotADirectoryError):  # zarr probes "<file>/zarr.json" when it lists a folder
        return None
    root_real = Path(os.path.realpath(root))
    if real != root_real and root_real not in real.parents:
        raise UnsafeKeyError(f"{key} points outside the store (to {real})")
    if stat.S_ISDIR(info.st_mode):
        return None  # zarr asks for keys that may be folders; a folder is "no such key"
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeKeyError(f"{key} is not a regular file")
    if info.st_size > MAX_KEY_BYTES:
        raise UnsafeKeyError(f"{key} holds {info.st_size} bytes, more than any key of a store "
                             f"({MAX_KEY_BYTES})")
    return path


def _safe_get(root: Path, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None) -> Buffer | None:
    path = _checked_path(root, key)
    if path is None:
        return None
    try:
        return _get(path, prototype, byte_range)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _durable_put(path: Path, data, exclusive: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
    try:
        with open(partial, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if exclusive:
            os.link(partial, path)  # FileExistsError when it exists, as zarr's set_if_not_exists expects
            os.unlink(partial)
        else:
            os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


class SafeLocalStore(LocalStore):
    """LocalStore with fsynced writes and checked reads (see the module docstring)."""

    async def get(self, key: str, prototype: BufferPrototype | None = None,
                  byte_range: ByteRequest | None = None) -> Buffer | None:
        if not self._is_open:
            await self._open()
        return await asyncio.to_thread(_safe_get, self.root, key, prototype or default_buffer_prototype(),
                                       byte_range)

    async def get_partial_values(self, prototype: BufferPrototype, key_ranges) -> list[Buffer | None]:
        return [await self.get(key, prototype, byte_range) for key, byte_range in key_ranges]

    def get_sync(self, key: str, *, prototype: BufferPrototype | None = None,
                 byte_range: ByteRequest | None = None) -> Buffer | None:
        self._ensure_open_sync()
        return _safe_get(self.root, key, prototype or default_buffer_prototype(), byte_range)

    async def _set(self, key: str, value: Buffer, exclusive: bool = False) -> None:
        if not self._is_open:
            await self._open()
        self._check_writable()
        await asyncio.to_thread(_durable_put, self.root / key, value.as_buffer_like(), exclusive)

    def set_sync(self, key: str, value: Buffer) -> None:
        self._ensure_open_sync()
        self._check_writable()
        _durable_put(self.root / key, value.as_buffer_like(), False)
