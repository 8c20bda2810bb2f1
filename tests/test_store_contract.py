"""A recorded store reopens with plain zarr, with every documented array, dimension and attribute."""

from __future__ import annotations

import pytest
import zarr

from recorder.capture import CaptureConfig
from recorder.record import record
from shared import schema
from shared.store import StoreError, create_store, open_store


@pytest.fixture
def store(tiny_pipe, small_request, tmp_path):
    return record(tiny_pipe, small_request, tmp_path / "s.zarr", CaptureConfig(branches=("cond", "uncond")),
                  show_progress=False, model_id="tiny").store


def test_every_documented_array_and_attribute_is_present(store, small_request):
    root = zarr.open_group(store, mode="r")  # plain zarr, no project code
    specs = [*schema.STEP_ARRAYS, schema.LAYER_BLOCK, schema.VIDEO]
    for branch in schema.BRANCHES:
        specs += schema.branch_arrays(branch)
    for spec in specs:
        array = root[spec.path]
        assert tuple(array.metadata.dimension_names) == spec.dims, spec.path
        assert str(array.dtype) == spec.dtype, spec.path
    attrs = root.attrs.asdict()
    for key in schema.REQUIRED_ROOT_ATTRS + (schema.Attr.TIMING, schema.Attr.ENDED_AT, schema.Attr.EXPERT_BOUNDARY,
                                              schema.Attr.SCHEDULER_SHIFT, schema.Attr.TRANSFORMER_CONFIG):
        assert key in attrs, key
    assert attrs[schema.Attr.SCHEMA] == schema.SCHEMA_NAME
    assert attrs[schema.Attr.STATUS] == schema.STATUS_COMPLETE
    assert attrs[schema.Attr.PROMPT] == small_request.prompt
    assert set(attrs[schema.Attr.TIMING]) == {"generation_s", "capture_s", "write_s", "total_s"}
    grid = attrs[schema.Attr.LATENT_GRID]
    assert (grid["frames"], grid["height"], grid["width"]) == (3, 2, 3)
    assert grid["pixel_frames"] == [[0, 0], [1, 4], [5, 8]]
    for branch in schema.BRANCHES:
        battrs = root[branch].attrs.asdict()
        for key in schema.REQUIRED_BRANCH_ATTRS:
            assert key in battrs, (branch, key)
        assert battrs[schema.BranchAttr.NUM_KEYS] == 512
        assert battrs[schema.BranchAttr.PAD_KEYS_COLLAPSED] is True
        assert len(battrs[schema.BranchAttr.TOKENS]) == root[schema.token_ids(branch).path].shape[0]
        assert battrs[schema.BranchAttr.TOKENS][-1] == "</s>"
    words = [w["text"] for w in root["cond"].attrs[schema.BranchAttr.WORDS] if not w["special"]]
    assert words == ["A", "cat", "walks", "on", "the", "grass", ",", "under", "a", "cloudy", "sky", "."]
    assert open_store(store) is not None


def test_attention_chunks_hold_one_step_and_layer(store):
    array = zarr.open_group(store, mode="r")[schema.attention("cond").path]
    assert array.chunks[:2] == (1, 1)
    assert array.chunks[2:] == array.shape[2:]
    assert array.fill_value != array.fill_value  # NaN: an unwritten step never reads as zero attention


def test_open_store_refuses_other_schemas_and_newer_versions(store, tmp_path):
    root = zarr.open_group(store, mode="r+")
    root.attrs[schema.Attr.SCHEMA_VERSION] = f"{schema.SCHEMA_MAJOR + 1}.0"
    with pytest.raises(StoreError, match="newer"):
        open_store(store)
    root.attrs[schema.Attr.SCHEMA_VERSION] = schema.SCHEMA_VERSION
    root.attrs[schema.Attr.SCHEMA] = "something-else"
    with pytest.raises(StoreError, match="not a wan-attention store"):
        open_store(store)
    with pytest.raises(StoreError, match="no store"):
        open_store(tmp_path / "missing")
    (tmp_path / "junk").write_bytes(b"not a zip")
    with pytest.raises(StoreError, match="not a readable Zarr store"):
        open_store(tmp_path / "junk")


def test_create_store_refuses_an_existing_path(tmp_path):
    from shared.store import BranchLayout, StoreLayout

    layout = StoreLayout(1, (0,), (1, 1, 1), 1, (BranchLayout("cond", 1),), (1, 16, 16, 3))
    (tmp_path / "taken").mkdir()
    with pytest.raises(StoreError, match="already exists"):
        create_store(tmp_path / "taken", layout)
