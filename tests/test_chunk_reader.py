"""shared.chunk_reader: the analyzer's direct chunk reads equal zarr's, and refuse what zarr would refuse.

The reader decodes whole chunks of the schema's codec chain (bytes, blosc, crc32c) on a
local store straight into the result; every read here is compared with zarr-python's own
read of the same selection, on arrays whose chunks do not divide their shape (edge chunks),
with missing chunks (the fill value) and through a reused output buffer.
"""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ZstdCodec

from analyzer.reader import _get
from shared import chunk_reader
from shared.local_store import SafeLocalStore

SHAPE, CHUNKS = (3, 4, 5, 6), (1, 2, 2, 6)


def _array(path, codecs=None, fill=np.nan, dtype="float16"):
    store = SafeLocalStore(str(path))
    compressors = codecs if codecs is not None else [BloscCodec(cname="lz4", shuffle="bitshuffle"), Crc32cCodec()]
    array = zarr.create_array(store, name="a", shape=SHAPE, chunks=CHUNKS, dtype=dtype, fill_value=fill,
                              serializer=BytesCodec(), compressors=compressors)
    values = np.random.default_rng(0).random(SHAPE).astype(dtype)
    array[...] = values
    return zarr.open_group(store, mode="r")["a"], values


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    return _array(tmp_path_factory.mktemp("chunks") / "s.zarr")


def test_supported_only_for_the_schema_chain_on_a_local_store(tmp_path, stored):
    array, _ = stored
    assert chunk_reader.supported(array)
    other, _ = _array(tmp_path / "zstd.zarr", codecs=[ZstdCodec()])
    assert not chunk_reader.supported(other)
    memory = zarr.create_array(zarr.storage.MemoryStore(), shape=SHAPE, chunks=CHUNKS, dtype="float16",
                               serializer=BytesCodec(), compressors=[BloscCodec(), Crc32cCodec()])
    assert not chunk_reader.supported(memory)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_every_box_equals_zarr(stored, data):
    array, _ = stored
    box = []
    for n in SHAPE:
        start = data.draw(st.integers(0, n - 1))
        box.append(slice(start, data.draw(st.integers(start + 1, n))))
    box = tuple(box)
    np.testing.assert_array_equal(chunk_reader.read_box(array, box), array[box])


def test_selections_as_the_reader_makes_them(stored):
    array, values = stored
    for selection in [(1, slice(0, 4)), 2, (slice(0, 2), 3), (-1,), (0, 1, slice(1, 4), 2)]:
        got = _get(array, selection)
        np.testing.assert_array_equal(got, array[selection])
        np.testing.assert_array_equal(got, values[selection])


def test_a_missing_chunk_reads_as_the_fill_value(tmp_path):
    array, values = _array(tmp_path / "m.zarr")
    (tmp_path / "m.zarr" / "a" / "c" / "1" / "1" / "0" / "0").unlink()
    got = chunk_reader.read_box(array, (slice(1, 2), slice(None), slice(None), slice(None)))
    assert np.isnan(got[0, 2:4, 0:2]).all()
    np.testing.assert_array_equal(got, array[1:2])


def test_a_reused_buffer_is_filled_whole(stored):
    array, values = stored
    spare = [np.full((4, 5, 6), 7, dtype=np.float16)]
    buffer = spare[0]
    got = _get(array, (2, slice(0, 4)), spare)
    assert np.shares_memory(got, buffer)
    np.testing.assert_array_equal(got, values[2])
    with pytest.raises(ValueError, match="the box needs"):
        chunk_reader.read_box(array, (slice(0, 1),) + (slice(None),) * 3, out=np.empty((2, 4, 5, 6), np.float16))


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "crc32c checksum mismatch"),
    (lambda b: b[:5], "too short for a chunk"),
])
def test_damaged_chunks_are_refused(tmp_path, damage, message):
    array, _ = _array(tmp_path / "d.zarr")
    key = tmp_path / "d.zarr" / "a" / "c" / "0" / "0" / "0" / "0"
    key.write_bytes(damage(key.read_bytes()))
    with pytest.raises(chunk_reader.ChunkError, match=message):
        chunk_reader.read_box(array, (slice(0, 1),) + (slice(None),) * 3)


def test_a_frame_of_the_wrong_size_is_refused(tmp_path):
    """A chunk whose blosc frame (checksum and all) decodes to another size than its array's chunk."""
    import google_crc32c
    from numcodecs import Blosc

    array, _ = _array(tmp_path / "w.zarr")
    frame = Blosc(cname="lz4").encode(np.zeros(7, dtype=np.float16).tobytes())
    key = tmp_path / "w.zarr" / "a" / "c" / "0" / "0" / "0" / "0"
    key.write_bytes(frame + google_crc32c.value(frame).to_bytes(4, "little"))
    with pytest.raises(chunk_reader.ChunkError, match="blosc frame"):
        chunk_reader.read_box(array, (slice(0, 1),) + (slice(None),) * 3)
