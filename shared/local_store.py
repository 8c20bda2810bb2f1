"""A local Zarr store that writes durably and reads only what is safely a chunk.

Writing: zarr's own LocalStore already writes each key to a temporary file and renames
it into place, so a crash or a full disk never leaves a torn key. It does not fsync,
so after a power loss a step marked complete could point at data still in the page
cache. Here every key is fsynced before its rename: the recorder writes a step's
``complete`` flag only after that step's chunks are on disk.

Stopping: zarr writes a node's metadata and its parents' as concurrent tasks, and when one
fails the others go on in zarr's event loop. A creation that failed would otherwise clean
up while those writes still land, and leave half a store behind. :meth:`SafeLocalStore.stop_writes`
refuses every write that has not started and waits for those under way, so what is on disk
after it is final.

Reading: a store is untrusted input. A chunk "file" that is a FIFO blocks a reader
forever, one that is a symlink to /dev/zero reads until memory runs out, and one that
leaves the store reads whatever it points at. Each key is checked to be a regular
file inside the store, of bounded size, before it is read.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import threading
import uuid
from pathlib import Path

from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.storage import LocalStore

# No key of a store is larger: chunks are bounded by shared.schema.MAX_CHUNK_BYTES
# (a single frame may exceed it; 256 MiB holds an 8K RGB frame or a 16-bit 4K map).
MAX_KEY_BYTES = 256 * 2**20


class UnsafeKeyError(OSError):
    """A key of the store is not a regular file inside it, or is larger than any key can be."""


class _KeyReader:
    """Reads keys of one store directory, each checked to be a regular file inside it, of bounded size.

    The file itself is opened without following a symlink and without blocking (a FIFO
    opens at once and is then refused), and checked on its open descriptor. Each folder
    on the way is checked once per reader and remembered: a chunk read costs one open and
    one fstat, where resolving every key's full path cost more than decompressing it. A
    symlink, to a folder or to the key itself, is followed only after ``realpath`` shows it
    stays inside the store.
    """

    def __init__(self, root: Path):
        self.root = root
        self._root_text = os.fspath(root)
        self._root_real = Path(os.path.realpath(root))
        self._folders_inside: set[str] = {""}

    def get(self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None) -> Buffer | None:
        folder = key.rpartition("/")[0]
        if folder not in self._folders_inside:  # a folder is remembered only once all above it passed
            parts = key.split("/")
            if ".." in parts:
                raise UnsafeKeyError(f"{key} points outside the store")
            for depth in range(1, len(parts)):
                if not self._folder_inside(key, "/".join(parts[:depth])):
                    return None
        path = f"{self._root_text}/{key}"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):  # zarr probes "<file>/zarr.json" when it lists a folder
            return None
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            fd = self._open_link(key, path)  # the key is a symlink: followed only to a file inside the store
            if fd is None:
                return None
        with os.fdopen(fd, "rb", buffering=0) as f:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                return None  # zarr asks for keys that may be folders; a folder is "no such key"
            if not stat.S_ISREG(info.st_mode):
                raise UnsafeKeyError(f"{key} is not a regular file")
            if info.st_size > MAX_KEY_BYTES:
                raise UnsafeKeyError(f"{key} holds {info.st_size} bytes, more than any key of a store "
                                     f"({MAX_KEY_BYTES})")
            return prototype.buffer.from_bytes(_read_range(f, info.st_size, byte_range))

    def _folder_inside(self, key: str, folder: str) -> bool:
        """Whether ``folder`` (of ``key``) exists as a folder; an UnsafeKeyError if it leads out of the store."""
        if folder in self._folders_inside:
            return True
        try:
            info = os.lstat(f"{self._root_text}/{folder}")
        except (FileNotFoundError, NotADirectoryError):
            return False
        if stat.S_ISLNK(info.st_mode):
            self._inside(key, f"{self._root_text}/{folder}")
            try:
                info = os.stat(f"{self._root_text}/{folder}")
            except (FileNotFoundError, NotADirectoryError):
                return False
        if not stat.S_ISDIR(info.st_mode):
            return False
        self._folders_inside.add(folder)
        return True

    def _open_link(self, key: str, path: str) -> int | None:
        real = self._inside(key, path)
        try:
            return os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _inside(self, key: str, path: str | Path) -> Path:
        real = Path(os.path.realpath(path))
        if real != self._root_real and self._root_real not in real.parents:
            raise UnsafeKeyError(f"{key} points outside the store (to {real})")
        return real


def _read_range(f, size: int, byte_range: ByteRequest | None) -> bytes:
    """The bytes of an open key that ``byte_range`` asks for (all of them for None), as zarr's LocalStore reads."""
    if byte_range is None:
        return f.read()
    if isinstance(byte_range, RangeByteRequest):
        f.seek(byte_range.start)
        return f.read(max(0, byte_range.end - byte_range.start))
    if isinstance(byte_range, OffsetByteRequest):
        f.seek(byte_range.offset)
    elif isinstance(byte_range, SuffixByteRequest):
        f.seek(max(0, size - byte_range.suffix))
    else:
        raise TypeError(f"Unexpected byte_range, got {byte_range}.")
    return f.read()


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


class WritesStopped(OSError):
    """A write reached a store after :meth:`SafeLocalStore.stop_writes`; it wrote nothing."""


class _WriteGate:
    """Counts the writes under way in one store and, once closed, refuses the ones that have not started.

    It is entered in the thread that touches the disk, not in the coroutine that sent it
    there: a coroutine can be cancelled while its thread still writes.
    """

    def __init__(self):
        self._changed = threading.Condition()
        self._running = 0
        self._closed = False

    def put(self, path: Path, data, exclusive: bool) -> None:
        with self._changed:
            if self._closed:
                raise WritesStopped(errno.ECANCELED, "the store stopped taking writes", os.fspath(path))
            self._running += 1
        try:
            _durable_put(path, data, exclusive)  # looked up at each call: the crash tests replace it
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()

    def close(self, timeout: float) -> bool:
        with self._changed:
            self._closed = True
            return self._changed.wait_for(lambda: self._running == 0, timeout)


class SafeLocalStore(LocalStore):
    """LocalStore with fsynced writes, checked reads, and a way to stop writing (see the module docstring)."""

    @property
    def _write_gate(self) -> _WriteGate:
        gate = self.__dict__.get("_gate")
        if gate is None:  # made on first write, as the reader is; setdefault is atomic if two threads race here
            gate = self.__dict__.setdefault("_gate", _WriteGate())
        return gate

    def stop_writes(self, timeout: float = 60.0) -> bool:
        """Refuse every later write and wait for those under way; whether they all ended within ``timeout``."""
        return self._write_gate.close(timeout)

    @property
    def _key_reader(self) -> _KeyReader:
        reader = self.__dict__.get("_checked_reader")
        if reader is None:  # made on first read: zarr builds stores through several constructors
            reader = self.__dict__["_checked_reader"] = _KeyReader(self.root)
        return reader

    async def get(self, key: str, prototype: BufferPrototype | None = None,
                  byte_range: ByteRequest | None = None) -> Buffer | None:
        if not self._is_open:
            await self._open()
        return await asyncio.to_thread(self._key_reader.get, key, prototype or default_buffer_prototype(), byte_range)

    async def get_partial_values(self, prototype: BufferPrototype, key_ranges) -> list[Buffer | None]:
        return [await self.get(key, prototype, byte_range) for key, byte_range in key_ranges]

    def get_sync(self, key: str, *, prototype: BufferPrototype | None = None,
                 byte_range: ByteRequest | None = None) -> Buffer | None:
        self._ensure_open_sync()
        return self._key_reader.get(key, prototype or default_buffer_prototype(), byte_range)

    async def _set(self, key: str, value: Buffer, exclusive: bool = False) -> None:
        if not self._is_open:
            await self._open()
        self._check_writable()
        await asyncio.to_thread(self._write_gate.put, self.root / key, value.as_buffer_like(), exclusive)

    def set_sync(self, key: str, value: Buffer) -> None:
        self._ensure_open_sync()
        self._check_writable()
        self._write_gate.put(self.root / key, value.as_buffer_like(), False)
