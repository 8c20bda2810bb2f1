"""Who is writing a store: an exclusive lock held for the whole recording, with its owner.

The lock is ``fcntl.flock`` on a file inside the store. The kernel drops it when the
process dies, however it dies (SIGKILL included), so a lock that can be taken again
is stale by construction: no guessing from pids or timestamps. The file also holds
the owner (host, pid, start time), so the message about a live or a stale lock can
say whose it is.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import socket
from pathlib import Path

LOCK_NAME = ".wan-attention.lock"


class LockHeld(Exception):
    """Another live process holds the store's lock. ``owner`` is its record (may be empty)."""

    def __init__(self, owner: dict):
        super().__init__(describe_owner(owner))
        self.owner = owner


def describe_owner(owner: dict) -> str:
    if not owner:
        return "an unknown process"
    return f"pid {owner.get('pid')} on host {owner.get('host')} (since {owner.get('started_at')})"


def read_owner(store_dir: str | os.PathLike) -> dict | None:
    """The owner record of the lock file, or None when there is no lock file (or it is unreadable)."""
    try:
        with open(Path(store_dir) / LOCK_NAME, "rb") as f:
            record = json.loads(f.read(4096) or b"{}")
        return record if isinstance(record, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def owner_record() -> dict:
    """This process as the owner of a recording: host, pid and start time."""
    return {"host": socket.gethostname(), "pid": os.getpid(),
            "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


class ObjectStoreClaim:
    """The stand-in for :class:`StoreLock` in object storage, which has no locks: the owner, recorded in the
    store's attributes, and nothing to release. A second recorder is kept out by the existing root metadata."""

    previous_owner = None
    held = True

    def __init__(self):
        self.owner = owner_record()

    def release(self) -> None:
        pass


class StoreLock:
    """The exclusive lock of one store directory, held from :meth:`acquire` to :meth:`release`."""

    def __init__(self, store_dir: str | os.PathLike):
        self.path = Path(store_dir) / LOCK_NAME
        self._fd: int | None = None
        self.previous_owner: dict | None = None  # the record a stale lock left, if any

    def acquire(self) -> "StoreLock":
        """Take the lock or raise :class:`LockHeld`; write this process as the owner."""
        for _ in range(5):
            # Read-only: a file held open for writing would stop the file system from being remounted.
            fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise LockHeld(read_owner(self.path.parent) or {}) from None
                raise
            # The holder unlinks the file when it releases; a lock on an unlinked file guards nothing.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                break
            os.close(fd)
        else:
            raise LockHeld({})
        self.previous_owner = read_owner(self.path.parent) or None
        record = owner_record()
        with open(self.path, "w") as f:  # the lock is ours: nobody else writes this file now
            f.write(json.dumps(record))
            f.flush()
            os.fsync(f.fileno())
        self.owner = record
        return self

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only or full file system: the kernel still drops the lock, which is what counts
        finally:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None
