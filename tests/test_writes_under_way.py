"""What a failed write leaves under way: zarr's other writes of the same call go on in its event loop.

zarr writes a node's metadata and, as concurrent tasks, its parents' (``set_if_not_exists``),
and a region's chunks as concurrent tasks too. When one write fails, the others go on.

- A creation that fails leaves nothing behind: CI once saw a real full disk leave ``zarr.json``
  and ``cond/zarr.json``, which landed after the clean-up.
- A recording that fails writes its final status after every data write: none takes the room
  the reserve frees for it, or lands after it.

``SafeLocalStore.stop_writes`` waits for the writes under way and refuses the rest.
"""

from __future__ import annotations

import errno
import os
import threading
import time

import numpy as np
import pytest
from zarr.core.buffer import default_buffer_prototype

from shared import local_store, schema
from shared.local_store import SafeLocalStore, WritesStopped
from shared.store import RESERVE_NAME, BranchLayout, StoreError, StoreLayout, create_recording_store

LAYOUT = StoreLayout(num_steps=2, layer_blocks=(0,), grid=(1, 2, 2), num_heads=1,
                     branches=(BranchLayout("cond", 3),), video_shape=(1, 16, 16, 3))


def _bytes(data: bytes):
    return default_buffer_prototype().buffer.from_bytes(data)


class _FailOneHoldAnother:
    """Writes under ``out`` where ``failing`` fails with ENOSPC while ``held``, started beside it, lands 0.3 s after.

    The failing write waits until the held one is under way, and the held one until the
    failure: without ``stop_writes`` it would land after whatever follows the failure.
    ``written`` lists the keys written, in order.
    """

    def __init__(self, out, failing: str, held: str, held_exclusive: bool | None = None):
        self.out, self.failing, self.held, self.held_exclusive = out, failing, held, held_exclusive
        self.original = local_store._durable_put
        self.held_entered, self.failed, self.held_ended = threading.Event(), threading.Event(), threading.Event()
        self.written: list[str] = []

    def __call__(self, path, data, exclusive):
        key = path.relative_to(self.out).as_posix()
        if key == self.failing:
            assert self.held_entered.wait(5)
            self.failed.set()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        held = key == self.held and self.held_exclusive in (None, exclusive)
        if held:
            self.held_entered.set()
            assert self.failed.wait(5)
            time.sleep(0.3)
        try:
            self.original(path, data, exclusive)
            self.written.append(key)
        finally:
            if held:
                self.held_ended.set()


def test_a_failed_creation_waits_for_the_parent_writes_zarr_still_has_under_way(tmp_path, monkeypatch):
    out = tmp_path / "s.zarr"
    # cond/zarr.json, written exclusive, is a parent of cond/attention, written beside it
    writes = _FailOneHoldAnother(out, "cond/attention/zarr.json", "cond/zarr.json", held_exclusive=True)
    monkeypatch.setattr(local_store, "_durable_put", writes)
    with pytest.raises(StoreError, match="cannot create the store .*No space left on device"):
        create_recording_store(out, LAYOUT)
    # with stop_writes this has happened (or been refused) already; without it, it lands now
    assert writes.held_ended.wait(5), "the parent write this test delays never came: zarr's creation order changed"
    assert not out.exists(), sorted(str(p.relative_to(out)) for p in out.rglob("*"))


def test_a_failed_recording_writes_its_status_after_the_writes_zarr_still_has_under_way(tmp_path, monkeypatch):
    out = tmp_path / "s.zarr"
    layout = StoreLayout(**{**LAYOUT.__dict__, "video_shape": (2, 16, 16, 3)})  # two frames: two chunks, one call
    store = create_recording_store(out, layout)
    writes = _FailOneHoldAnother(out, "video/c/0/0/0/0", "video/c/1/0/0/0")
    monkeypatch.setattr(local_store, "_durable_put", writes)
    video = store.root[schema.VIDEO.path].with_config({"write_empty_chunks": True})
    with pytest.raises(OSError, match="No space left"):
        video[:] = np.ones(layout.video_shape, dtype=np.uint8)
    root = store.root_for_final_status()
    assert not (out / RESERVE_NAME).exists()  # freed for the status, once nothing else can take the room
    root.attrs.update({schema.Attr.STATUS: schema.STATUS_FAILED})
    store.release()
    assert writes.held_ended.is_set()  # it landed before the status, not after
    assert writes.written[-2:] == ["video/c/1/0/0/0", "zarr.json"], writes.written
    with pytest.raises(WritesStopped):  # the data path takes no more writes
        video[1] = np.zeros(layout.video_shape[1:], dtype=np.uint8)


def test_stop_writes_waits_for_a_write_under_way_and_refuses_later_ones(tmp_path, monkeypatch):
    store = SafeLocalStore(tmp_path)
    original = local_store._durable_put
    entered, release = threading.Event(), threading.Event()

    def slow_put(path, data, exclusive):
        entered.set()
        assert release.wait(5)
        original(path, data, exclusive)

    monkeypatch.setattr(local_store, "_durable_put", slow_put)
    writer = threading.Thread(target=store.set_sync, args=("a", _bytes(b"first")))
    writer.start()
    assert entered.wait(5)
    assert store.stop_writes(timeout=0.1) is False  # the write is still under way
    release.set()
    writer.join(5)
    assert store.stop_writes(timeout=5) is True
    assert (tmp_path / "a").read_bytes() == b"first"  # a write that had started finishes whole

    monkeypatch.setattr(local_store, "_durable_put", original)
    with pytest.raises(WritesStopped):
        store.set_sync("b", _bytes(b"second"))
    assert sorted(os.listdir(tmp_path)) == ["a"]  # the refused write left no file, not even a partial one


def test_a_store_that_was_not_stopped_writes_as_before(tmp_path):
    store = SafeLocalStore(tmp_path)
    store.set_sync("x/y", _bytes(b"data"))
    assert (tmp_path / "x" / "y").read_bytes() == b"data"
    assert store.stop_writes(timeout=1) is True  # nothing under way: returns at once
