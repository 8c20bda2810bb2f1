"""Schema 1.3: every branch group carries its coordinates, so xarray labels the axes with nothing else.

The labelled reads (``xr.open_zarr(store, group="cond")``) are checked against direct zarr
reads of the same arrays; tensorstore still reads every numeric array; the stores of older
schemas (no coordinates) still open and analyse.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr

from analyzer.run import analyze
from analyzer.subset import subset_store
from shared import schema
from shared.schema import Attr
from shared.store import StoreError, open_store
from synthetic_store import small_spec, write_store

xr = pytest.importorskip("xarray")

# "a" twice: a token text that is not unique
TOKENS = ["\u2581a", "\u2581red", "\u2581cat", "s", "\u2581on", "\u2581a", "\u2581mat", "</s>"]


def _spec(**overrides):
    spec = small_spec(**overrides)
    spec.tokens = TOKENS
    spec.owners = np.where(spec.owners == 0, 4, spec.owners)  # "on" owns what "a" owned
    return spec


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("labelled") / "store.zarr"
    write_store(path, _spec())
    return path


def _open(path, group="cond"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no consolidated metadata on a synthetic store: xarray says so
        # chunks=None: lazy numpy-backed arrays, so that groupby("word") works whether or not dask is installed
        # (with dask, xarray makes every coordinate a dask array and refuses to group by it; rec.dataset()
        # loads the coordinates for that reason)
        return xr.open_zarr(path, group=group, consolidated=False, chunks=None)


def test_every_axis_is_labelled(store):
    ds = _open(store)
    attention = ds.attention
    assert attention.dims == (schema.DIM_STEP, schema.DIM_LAYER, schema.DIM_FRAME, schema.DIM_Y, schema.DIM_X,
                              schema.DIM_TOKEN)
    assert list(ds.indexes) == ["step", "layer", "frame", "y", "x", "token"] or \
        set(ds.indexes) == {"step", "layer", "frame", "y", "x", "token"}
    assert ds.step.values.tolist() == [0, 1, 2]
    assert ds.layer.values.tolist() == [0, 3]
    assert ds.token.values.tolist() == ["a", "red", "cat", "s", "on", "a", "mat", "</s>"]
    assert ds.word.values.tolist() == ["a", "red", "cats", "cats", "on", "a", "mat", "</s>"]
    assert ds.token_index.values.tolist() == list(range(len(TOKENS)))
    assert ds.word_index.values.tolist() == [0, 1, 2, 2, 3, 4, 5, 6]
    assert ds.frame_first_pixel.values.tolist() == [0, 1, 5, 9]
    assert ds.frame_last_pixel.values.tolist() == [0, 4, 8, 12]
    root = zarr.open_group(store, mode="r")
    for name in ("timestep", "sigma", "expert"):
        assert name in attention.coords  # a coordinate, not a data variable
        np.testing.assert_array_equal(ds[name].values, root[f"steps/{name}"][:])
    assert set(ds.data_vars) == {"attention", "padding_mass", "head_entropy", "head_token_mass",
                                 "head_padding_mass", "token_ids"}


def test_sel_by_token_step_layer_equals_zarr(store):
    root = zarr.open_group(store, mode="r")
    raw = root["cond/attention"]
    picked = _open(store).attention.sel(token="cat", step=1, layer=3)
    assert picked.dims == ("frame", "y", "x")
    np.testing.assert_array_equal(picked.values, raw[1, 1, :, :, :, 2])
    assert float(picked.timestep) == float(root["steps/timestep"][1])


def test_a_repeated_token_text_selects_every_occurrence(store):
    raw = zarr.open_group(store, mode="r")["cond/attention"]
    both = _open(store).attention.sel(token="a", step=0, layer=0)
    assert both.sizes["token"] == 2 and both.token_index.values.tolist() == [0, 5]
    np.testing.assert_array_equal(both.values, raw[0, 0][..., [0, 5]])
    one = _open(store).attention.isel(token=5).sel(step=0, layer=0)  # the unique label: the position
    np.testing.assert_array_equal(one.values, raw[0, 0, ..., 5])


def test_sel_by_word_and_groupby_word(store):
    raw = np.asarray(zarr.open_group(store, mode="r")["cond/attention"][...], dtype=np.float64)
    ds = _open(store)
    cats = ds.attention.where(ds.word == "cats", drop=True)
    assert cats.token.values.tolist() == ["cat", "s"]
    summed = ds.attention.astype("float64").groupby("word").sum()
    np.testing.assert_allclose(summed.sel(word="cats").values, raw[..., 2] + raw[..., 3])
    np.testing.assert_allclose(summed.sel(word="a").values, raw[..., 0] + raw[..., 5])  # both "a" words
    by_index = ds.attention.astype("float64").groupby("word_index").sum()  # each word of the prompt apart
    np.testing.assert_allclose(by_index.sel(word_index=4).values, raw[..., 5])


def test_step_coordinate_of_a_strided_store(store, tmp_path):
    sub = subset_store(store, tmp_path / "sub.zarr", steps="0,2")
    root = zarr.open_group(sub, mode="r")
    ds = _open(sub)
    assert ds.step.values.tolist() == [0, 2]
    np.testing.assert_array_equal(ds.attention.sel(step=2, layer=0, token="mat").values,
                                  root["cond/attention"][1, 0, ..., 6])
    np.testing.assert_array_equal(ds.timestep.values, root["steps/timestep"][:])
    assert ds.expert.values.tolist() == root["steps/expert"][:].tolist()


def test_recorded_stride_plans_the_step_coordinate(tmp_path):
    options = schema.record_options([0, 3], step_stride=5)
    path = tmp_path / "strided.zarr"
    write_store(path, _spec(attributes={Attr.RECORD_OPTIONS: options, Attr.NUM_INFERENCE_STEPS: 15}))
    assert _open(path).step.values.tolist() == [0, 5, 10]


def test_layer_mean_and_uncond_branch(tmp_path):
    path = tmp_path / "mean.zarr"
    write_store(path, _spec(layer_blocks=(-1,), own=(0.6,), branches=(schema.BRANCH_COND, schema.BRANCH_UNCOND)))
    ds = _open(path, "uncond")
    assert ds.layer.values.tolist() == [-1]
    raw = zarr.open_group(path, mode="r")["uncond/attention"]
    np.testing.assert_array_equal(ds.attention.sel(layer=-1, step=2, token="red").values, raw[2, 0, ..., 1])


def test_store_opened_by_open_store_feeds_xarray(store):
    """The store object of any location (here a directory) is what xarray opens: zip, HDF5 and URLs alike."""
    root = open_store(store)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(root.store, group="cond", consolidated=False)
    assert ds.token.values.tolist()[2] == "cat"


def test_tensorstore_reads_every_numeric_array(store):
    ts = pytest.importorskip("tensorstore")
    root = zarr.open_group(store, mode="r")
    attrs = root.attrs.asdict()
    from shared.store import store_arrays

    text = []
    for spec in store_arrays(attrs):
        if spec.dtype == schema.TEXT:  # zarr v3 variable-length strings: tensorstore has no such data type
            text.append(spec.path)
            with pytest.raises(ValueError):
                ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(store / spec.path)}}).result()
            continue
        array = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(store / spec.path)}},
                        read=True).result()
        np.testing.assert_array_equal(array.read().result(), root[spec.path][...])
    assert text == ["cond/token", "cond/word"]


def test_validate_checks_coordinate_shapes(tmp_path):
    path = tmp_path / "store.zarr"
    write_store(path, _spec())
    root = zarr.open_group(path, mode="r+")
    del root["cond/frame_last_pixel"]
    root.create_array("cond/frame_last_pixel", shape=(3,), chunks=(3,), dtype="int32", fill_value=-1,
                      dimension_names=("frame",), compressors=zarr.open_group(path)["cond/frame"].compressors)
    with pytest.raises(StoreError, match="cond/frame_last_pixel has shape \\[3\\], expected \\[4\\]"):
        open_store(path)
    del root["cond/frame_last_pixel"]
    with pytest.raises(StoreError, match="lacks the array cond/frame_last_pixel"):
        open_store(path)


@pytest.mark.parametrize("version", ["1.0", "1.2"])
def test_an_older_store_without_coordinates_still_analyses(tmp_path, version):
    path = tmp_path / "old.zarr"
    write_store(path, _spec())
    root = zarr.open_group(path, mode="r+")
    for spec in schema.coordinate_arrays(schema.BRANCH_COND):
        del root[spec.path]
    if version == "1.0":
        del root[schema.VIDEO_WRITTEN.path]
    root.attrs[Attr.SCHEMA_VERSION] = version
    open_store(path)
    written = analyze(path, tmp_path / "out", outputs="statistics", progress=False)
    files = written["statistics"] if isinstance(written["statistics"], list) else [written["statistics"]]
    doc = json.loads(next(Path(p) for p in files if str(p).endswith(".json")).read_text())
    assert doc["analysis"]["steps_analysed"] == [0, 1, 2]


def test_coordinate_arrays_carry_checksums_and_the_data_arrays_name_them(store):
    root = zarr.open_group(store, mode="r")
    assert root["cond/attention"].attrs["coordinates"].split() == [
        "timestep", "sigma", "expert", "frame_first_pixel", "frame_last_pixel", "word", "word_index", "token_index"]
    assert root["cond/head_entropy"].attrs["coordinates"].split() == ["timestep", "sigma", "expert"]
    for spec in schema.coordinate_arrays("cond"):
        codecs = [type(c).__name__ for c in root[spec.path].metadata.codecs]
        assert "Crc32cCodec" in codecs, spec.path


def test_a_recording_is_labelled(tiny_pipe, small_request, tmp_path):
    """The recorder's store: token texts from the tokenizer, steps (strided) and their timesteps written."""
    pytest.importorskip("torch")
    from recorder.capture import CaptureConfig
    from recorder.record import record

    path = tmp_path / "s.zarr"
    record(tiny_pipe, small_request, path, CaptureConfig(branches=("cond", "uncond"), step_stride=2),
           show_progress=False)
    root = zarr.open_group(path, mode="r")
    for branch in ("cond", "uncond"):
        ds = _open(path, branch)
        tokens = root[branch].attrs["tokens"]
        assert ds.token.values.tolist() == [t.replace("\u2581", "") for t in tokens]
        assert ds.step.values.tolist() == [0, 2] == root["steps/index"][:].tolist()
        for name in ("timestep", "sigma", "expert"):
            np.testing.assert_array_equal(ds[name].values, root[f"steps/{name}"][:])
        assert np.isfinite(ds.timestep.values).all()
        words = root[branch].attrs["words"]
        assert ds.word.values.tolist() == [next(w["text"] for w in words if t in w["tokens"])
                                           for t in range(len(tokens))]
        cat = ds.attention.sel(token="cat", step=2) if "cat" in ds.token.values else None
        if cat is not None:
            assert cat.sizes["layer"] == len(root["layers/block"][:])
    open_store(path)


def test_groupby_word_through_the_api_with_dask_installed(store):
    pytest.importorskip("dask")
    from analyzer import open_recording

    raw = np.asarray(zarr.open_group(store, mode="r")["cond/attention"][...], dtype=np.float64)
    ds = open_recording(store).dataset()
    assert ds.attention.chunks is not None  # dask-backed data
    summed = ds.attention.astype("float64").groupby("word").sum()
    np.testing.assert_allclose(summed.sel(word="cats").values, raw[..., 2] + raw[..., 3])
