"""HDF5 round trips: ``wan-analyze export`` then reading the file as a store loses nothing.

Values (NaN included), dimensions, chunks, fill values and every attribute equal; chunks
never written stay absent; the analyzer's statistics are identical; h5py sees the
dimension scales; a damaged chunk is an error on read; the command refuses what it must
and leaves nothing behind.
"""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from synthetic_store import small_spec, write_store
from zarr.core.sync import sync

from analyzer import streaming
from analyzer.commands.export import export_command
from analyzer.export_hdf5 import export_hdf5
from analyzer.reader import StoreView
from analyzer.run import analyze, check_options
from analyzer.selection import select
from shared import schema
from shared.hdf5_store import JSON_ATTRIBUTES, SCALES_GROUP, Hdf5Store
from shared.store import StoreError, open_store

CASES = {
    "plain": {},
    "branches": {"branches": (schema.BRANCH_COND, schema.BRANCH_UNCOND)},
    "partial": {"complete": [True, False, True], "video_frames": [0, 1], "status": schema.STATUS_INTERRUPTED,
                "attributes": {schema.Attr.NOTES: None, schema.Attr.ERROR: "stopped by SIGTERM\u00e9"}},
    "layer_mean": {"layer_blocks": (-1,), "own": (0.7,)},
}


def _export(tmp_path, name: str):
    store = tmp_path / f"{name}.zarr"
    write_store(store, small_spec(**CASES[name]))
    h5 = export_hdf5(store, tmp_path / f"{name}.h5")
    return store, h5


@pytest.fixture(scope="module", params=sorted(CASES))
def exported(request, tmp_path_factory):
    return _export(tmp_path_factory.mktemp(request.param), request.param)


def _arrays(root: zarr.Group) -> dict[str, zarr.Array]:
    return {path: node for path, node in root.members(max_depth=None) if isinstance(node, zarr.Array)}


def _chunk_keys(array: zarr.Array) -> set[str]:
    async def keys():
        return {k async for k in array.store_path.store.list_prefix(f"{array.path}/c/")}
    return sync(keys())


def test_every_array_dim_attribute_and_chunk_survives(exported):
    store, h5 = exported
    source, copy = open_store(store), open_store(h5)
    assert copy.attrs.asdict() == source.attrs.asdict()
    groups = {path for path, node in source.members(max_depth=None) if isinstance(node, zarr.Group)}
    assert groups == {path for path, node in copy.members(max_depth=None) if isinstance(node, zarr.Group)}
    for path in groups:
        assert copy[path].attrs.asdict() == source[path].attrs.asdict(), path
    arrays, copies = _arrays(source), _arrays(copy)
    assert set(arrays) == set(copies) and SCALES_GROUP not in {p.split("/")[0] for p in copies}
    for path, array in arrays.items():
        other = copies[path]
        assert other.dtype == array.dtype and other.shape == array.shape and other.chunks == array.chunks, path
        assert other.metadata.dimension_names == array.metadata.dimension_names, path
        assert np.array_equal(np.asarray(other.fill_value), np.asarray(array.fill_value),
                              equal_nan=np.asarray(array.fill_value).dtype.kind == "f"), path
        assert other.attrs.asdict() == array.attrs.asdict(), path
        assert np.array_equal(other[...], array[...], equal_nan=array.dtype.kind == "f"), path
        # a chunk never written (a step not complete, a frame not written) is absent, not fill values
        assert _chunk_keys(other) == _chunk_keys(array), path


def test_absent_chunks_stay_absent(tmp_path):
    store, h5 = _export(tmp_path, "partial")
    copy = open_store(h5)
    attention = copy[schema.attention("cond").path]
    assert not sync((attention.store_path / attention.metadata.encode_chunk_key((1, 0, 0, 0, 0, 0))).exists())
    assert sync((attention.store_path / attention.metadata.encode_chunk_key((2, 0, 0, 0, 0, 0))).exists())
    video = copy[schema.VIDEO.path]
    assert [sync((video.store_path / video.metadata.encode_chunk_key((f, 0, 0, 0))).exists())
            for f in range(3)] == [True, True, False]
    with h5py.File(h5, "r") as f:
        assert f[schema.attention("cond").path].id.get_chunk_info_by_coord((2, 0, 0, 0, 0, 0)).size > 0
        assert f[schema.attention("cond").path].id.get_chunk_info_by_coord((1, 0, 0, 0, 0, 0)).byte_offset is None
    # and the analyzer sees what the store's reader sees: step 1 incomplete, frames 0-1 written
    a, b = StoreView(store, "cond"), StoreView(h5, "cond")
    assert [s.complete for s in a.steps] == [s.complete for s in b.steps] == [True, False, True]


def _analysis(location, **options):
    opts, _ = check_options({"progress": False, **options})
    analysis, _ = streaming.run_pass(select(StoreView(location, opts.branch), opts), {}, None, 0.0)
    return analysis


def _same(a, b, what):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), what
        for key in a:
            _same(a[key], b[key], f"{what}.{key}")
    elif a is None or isinstance(a, (int, float, str, bool)):
        assert a == b or (a != a and b != b), what
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=what)


def test_statistics_identical(exported):
    store, h5 = exported
    for branch in open_store(store).attrs[schema.Attr.RECORD_OPTIONS][schema.RecordOption.BRANCHES]:
        _statistics_identical(store, h5, branch)


def _statistics_identical(store, h5, branch):
    a, b = _analysis(store, branch=branch), _analysis(h5, branch=branch)
    assert a.steps == b.steps and a.skipped == b.skipped and a.heads == b.heads
    _same(a.winners, b.winners, "winners")
    _same(a.segment_share, b.segment_share, "segment_share")
    _same(a.layer_profile, b.layer_profile, "layer_profile")
    for name in ("token_mass", "spatial_entropy", "steps_won", "location_win_share", "modal_winner",
                 "winner_stability", "unit_maps", "head_means", "padding_by_step_layer"):
        _same(getattr(a.stats, name)(), getattr(b.stats, name)(), name)


def test_wan_analyze_reads_the_export(tmp_path):
    store, h5 = _export(tmp_path, "branches")
    written = analyze(h5, tmp_path / "out", outputs="steps,words", progress=False)
    expected = analyze(store, tmp_path / "out_zarr", outputs="steps,words", progress=False)
    assert written.keys() == expected.keys() and written


def test_h5py_sees_scales_labels_and_filters(tmp_path):
    store, h5 = _export(tmp_path, "partial")
    with h5py.File(h5, "r") as f:
        attention = f[schema.attention("cond").path]
        assert [d.label for d in attention.dims] == list(schema.attention("cond").dims)
        step_scale = attention.dims[0][0]
        assert step_scale.name.startswith(f"/{SCALES_GROUP}/")
        # the step scale is the step index (-1 where the step never completed), the layer scale the blocks
        assert list(step_scale[...]) == [0, -1, 2]
        assert list(attention.dims[1][0][...]) == [0, 3]
        assert list(f[schema.VIDEO.path].dims[0][0][...]) == list(range(13))
        assert attention.compression == "gzip" and attention.shuffle and attention.fletcher32
        assert attention.chunks == open_store(store)[schema.attention("cond").path].chunks
        # dicts, lists and None are JSON text, named in _json_attributes; plain values are themselves
        assert schema.Attr.LATENT_GRID in f.attrs[JSON_ATTRIBUTES] and schema.Attr.NOTES in f.attrs[JSON_ATTRIBUTES]
        assert f.attrs[schema.Attr.SEED] == 42 and f.attrs[schema.Attr.PROMPT] == "a red cats."


def test_a_flipped_byte_is_an_error_not_values(tmp_path):
    store, h5 = _export(tmp_path, "plain")
    path = schema.attention("cond").path
    with h5py.File(h5, "r") as f:
        info = f[path].id.get_chunk_info_by_coord((1, 0, 0, 0, 0, 0))
    with open(h5, "r+b") as f:
        f.seek(info.byte_offset + info.size // 2)
        byte = f.read(1)
        f.seek(info.byte_offset + info.size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    copy = open_store(h5)  # the metadata is intact
    np.testing.assert_array_equal(copy[path][0], open_store(store)[path][0])  # other chunks read
    with pytest.raises(Exception, match="unreadable|checksum|filter"):
        copy[path][1]
    with pytest.raises(Exception):
        analyze(h5, tmp_path / "out", outputs="steps", progress=False)


def test_an_export_of_an_export_is_the_same(tmp_path):
    store, h5 = _export(tmp_path, "partial")
    again = export_hdf5(h5, tmp_path / "again.hdf5")
    source, copy = open_store(store), open_store(again)
    assert copy.attrs.asdict() == source.attrs.asdict()
    for path, array in _arrays(source).items():
        assert np.array_equal(copy[path][...], array[...], equal_nan=array.dtype.kind == "f"), path
        assert _chunk_keys(copy[path]) == _chunk_keys(array), path


def test_store_adapter_is_read_only(tmp_path):
    _, h5 = _export(tmp_path, "plain")
    with pytest.raises(ValueError):
        zarr.open_group(Hdf5Store(h5), mode="a", zarr_format=3).attrs["x"] = 1
    root = zarr.open_group(Hdf5Store(h5), mode="r", zarr_format=3)
    with pytest.raises(ValueError):
        root[schema.STEP_INDEX.path][0] = 5


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial"))


def test_cli_exports_and_refuses(tmp_path):
    store = tmp_path / "run.zarr"
    write_store(store, small_spec())
    runner = CliRunner()
    result = runner.invoke(export_command, [str(store), str(tmp_path / "run.h5"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert open_store(tmp_path / "run.h5").attrs[schema.Attr.SCHEMA] == schema.SCHEMA_NAME
    before = (tmp_path / "run.h5").read_bytes()

    cases = {
        "exists": ([str(store), str(tmp_path / "run.h5")], "already exists"),
        "extension": ([str(store), str(tmp_path / "run.zarr2")], ".h5 or .hdf5"),
        "missing": ([str(tmp_path / "nothing.zarr"), str(tmp_path / "x.h5")], "no store"),
        "not a store": ([str(tmp_path / "run.h5.txt"), str(tmp_path / "y.h5")], "not a readable"),
        "no folder": ([str(store), str(tmp_path / "nowhere" / "z.h5")], "does not exist"),
    }
    (tmp_path / "run.h5.txt").write_text("hello")
    for name, (args, message) in cases.items():
        result = runner.invoke(export_command, args)
        assert result.exit_code != 0, name
        assert message in result.output, (name, result.output)
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, name
    assert (tmp_path / "run.h5").read_bytes() == before  # never replaced
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "y.h5").exists()
    assert _leftovers(tmp_path) == []


def test_a_failure_leaves_nothing(tmp_path, monkeypatch):
    store = tmp_path / "run.zarr"
    write_store(store, small_spec())
    from analyzer import export_hdf5 as module

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(module, "_place", broken)
    with pytest.raises(StoreError, match="No space left on device"):
        export_hdf5(store, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists() and _leftovers(tmp_path) == []

    # a chunk of the store that fails its checksum: one line, nothing left
    chunk = store / schema.attention("cond").path / "c" / "1" / "0" / "0" / "0" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    monkeypatch.undo()
    with pytest.raises(StoreError, match="cannot export"):
        export_hdf5(store, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists() and _leftovers(tmp_path) == []


def test_lock_and_reserve_files_are_not_copied(tmp_path):
    store = tmp_path / "run.zarr"
    write_store(store, small_spec())
    extra = {p.name for p in store.iterdir() if p.name.startswith(".")}
    h5 = export_hdf5(store, tmp_path / "run.h5")
    with h5py.File(h5, "r") as f:
        names = set()
        f.visit(names.add)
    assert not any(name.split("/")[-1] in extra | {".wan-attention.lock", ".wan-attention.reserve"} for name in names)


def test_sizes_zarr_and_h5(tmp_path, capsys):
    """The demo-like synthetic store, as a directory and as an HDF5 export (printed, for the record)."""
    store, h5 = _export(tmp_path, "branches")
    zarr_bytes = sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(store) for n in names
                     if not n.startswith(".wan-attention"))
    with capsys.disabled():
        print(f"\nsynthetic store: zarr {zarr_bytes} bytes, h5 {os.path.getsize(h5)} bytes")
    assert os.path.getsize(h5) > 0


@pytest.mark.parametrize("damage, message", [
    ("contiguous", "not chunked"),
    ("no_checksum", "fletcher32"),
    ("big_attribute", "more than"),
    ("array_attribute", "an array of shape"),
    ("virtual", "not chunked"),
])
def test_hdf5_files_an_export_never_writes_are_refused(tmp_path, damage, message):
    _, h5 = _export(tmp_path, "plain")
    path = schema.STEP_SIGMA.path
    with h5py.File(h5, "r+") as f:
        if damage == "contiguous":
            del f[path]
            f.create_dataset(path, data=np.zeros(3, dtype=np.float32))
        elif damage == "no_checksum":
            del f[path]
            f.create_dataset(path, data=np.zeros(3, dtype=np.float32), chunks=(3,))
        elif damage == "big_attribute":
            f.attrs["huge"] = "x" * (2 << 20)
        elif damage == "array_attribute":
            f[schema.BRANCH_COND].attrs["table"] = np.zeros((4, 4))
        elif damage == "virtual":
            del f[path]
            layout = h5py.VirtualLayout(shape=(3,), dtype=np.float32)
            layout[:] = h5py.VirtualSource(str(tmp_path / "elsewhere.h5"), "data", shape=(3,))
            f.create_virtual_dataset(path, layout, fillvalue=0.0)
    with pytest.raises(StoreError, match=message) as caught:
        open_store(h5)
    assert "\n" not in str(caught.value)


def test_chunks_read_concurrently_through_one_lock(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    store, h5 = _export(tmp_path, "branches")
    source, copy = open_store(store), open_store(h5)
    path = schema.attention("uncond").path
    expected = source[path][...]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda s: copy[path][s % 3], range(48)))
    for s, values in enumerate(results):
        np.testing.assert_array_equal(values, expected[s % 3])


def test_attribute_values_of_every_kind_round_trip(tmp_path):
    odd = {"none": None, "nested": {"a": [1, 2.5, None, "x"]}, "big": 2**70, "nul": "a\x00b", "nan": float("nan"),
           "flag": False, "count": -3, "text": "\u00e9\u2581", "empty": [], "number": 1e-300}
    store = tmp_path / "run.zarr"
    write_store(store, small_spec(attributes={"extra": odd, **{f"x_{k}": v for k, v in odd.items()}}))
    h5 = export_hdf5(store, tmp_path / "run.h5")
    source, copy = open_store(store).attrs.asdict(), open_store(h5).attrs.asdict()
    assert source.keys() == copy.keys()
    for key, value in source.items():
        assert type(copy[key]) is type(value), key
        assert copy[key] == value or (value != value and copy[key] != copy[key]), key
