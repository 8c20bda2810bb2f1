"""A store opens from a directory and from a URL (served here by a real HTTP server on loopback)."""

from __future__ import annotations

import functools
import http.server
import threading

import numpy as np
import pytest
from synthetic_store import small_spec, write_store

from shared import schema
from shared.store import StoreError, open_store, stored_bytes


@pytest.fixture
def served(tmp_path):
    """``tmp_path`` over HTTP on 127.0.0.1; yields the base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_store_reads_the_same_over_http(tmp_path, served):
    write_store(tmp_path / "s.zarr", small_spec())
    local, remote = open_store(tmp_path / "s.zarr"), open_store(f"{served}/s.zarr")
    path = schema.attention("cond").path
    assert np.array_equal(local[path][:], remote[path][:], equal_nan=True)
    assert remote.attrs[schema.Attr.PROMPT] == local.attrs[schema.Attr.PROMPT]
    with pytest.raises(StoreError, match="not a readable Zarr store"):
        open_store(f"{served}/missing.zarr")


def test_stored_bytes_counts_every_chunk_file(tmp_path):
    write_store(tmp_path / "s.zarr", small_spec())
    root = open_store(tmp_path / "s.zarr")
    folder = tmp_path / "s.zarr" / "cond" / "attention"
    assert stored_bytes(root[schema.attention("cond").path]) == sum(p.stat().st_size for p in folder.rglob("*")
                                                                     if p.is_file())
    assert stored_bytes(root) > stored_bytes(root[schema.attention("cond").path])
