"""Malformed metadata, corrupt chunks and unusable output folders: one `Error:` line, never a traceback."""

from __future__ import annotations

import shutil
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest
import zarr
from analyzer_cli_helpers import assert_one_line_error, run
from synthetic_store import small_spec, write_store

from analyzer.errors import AnalyzerError
from analyzer.reader import StoreView
from analyzer.statistics import reduce_step
from shared import schema
from shared.schema import Attr, BranchAttr, GridKey


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("bad") / "store"
    write_store(path, small_spec())
    return path


def _copy(store, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(store, copy)
    return copy


def _grid_with(**changes) -> dict:
    grid = {GridKey.FRAMES: 4, GridKey.HEIGHT: 4, GridKey.WIDTH: 6, GridKey.VAE_SCALE_TEMPORAL: 4,
            GridKey.PIXEL_FRAMES: [[0, 0], [1, 4], [5, 8], [9, 12]]}
    grid.update(changes)
    return grid


@pytest.mark.parametrize("group, key, value, named", [
    ("cond", BranchAttr.WORDS, "a red cats", "cond/words"),
    ("cond", BranchAttr.WORDS, ["a", "red"], "cond/words"),
    ("cond", BranchAttr.NUM_KEYS, None, "cond/num_keys"),
    ("cond", BranchAttr.TOKENS, "abcdef", "cond/tokens"),
    ("", Attr.LATENT_GRID, "4x4x6", Attr.LATENT_GRID),
    ("", Attr.LATENT_GRID, _grid_with(**{GridKey.PIXEL_FRAMES: [[0]]}), "latent_grid.pixel_frames"),
    ("", Attr.LATENT_GRID, _grid_with(**{GridKey.PIXEL_FRAMES: [[0, 0], [1, 4]]}), "latent_grid.pixel_frames"),
])
def test_malformed_attribute_is_one_line(store, tmp_path, group, key, value, named):
    copy = _copy(store, tmp_path)
    root = zarr.open_group(copy, mode="r+")
    (root[group] if group else root).attrs[key] = value
    for args in ([copy, "-o", tmp_path / "out", "--quiet"], ["info", copy]):
        assert_one_line_error(run(*args), f"attribute {named}", "is malformed")


def test_pixel_frames_fallback_uses_the_stored_temporal_factor(store, tmp_path):
    copy = _copy(store, tmp_path)
    grid = _grid_with(**{GridKey.VAE_SCALE_TEMPORAL: 2})
    del grid[GridKey.PIXEL_FRAMES]
    zarr.open_group(copy, mode="r+").attrs[Attr.LATENT_GRID] = grid
    assert StoreView(copy).pixel_frames == [(0, 0), (1, 2), (3, 4), (5, 6)]


def _chunk(store, array_path: str, step: int):
    chunks = sorted(p for p in (store / array_path / "c" / str(step)).rglob("*") if p.is_file())
    assert chunks, f"no chunk of {array_path} at step {step}"
    return chunks[0]


@pytest.mark.parametrize("array", ["attention", "padding_mass"])
def test_corrupt_chunk_names_step_branch_and_array(store, tmp_path, array):
    copy = _copy(store, tmp_path)
    _chunk(copy, f"cond/{array}", 1).write_bytes(b"\x02\x01garbage, not a compressed chunk" * 4)
    assert_one_line_error(run(copy, "-o", tmp_path / "out", "--quiet", "--outputs", "report"),
                          f"cannot read cond/{array}", "at step 1", "branch cond")


def test_nan_padding_in_a_complete_step_fails_loudly(store, tmp_path):
    copy = _copy(store, tmp_path)
    padding = zarr.open_group(copy, mode="r+")[schema.padding_mass("cond").path]
    block = padding[1, 0]
    block[0, 0, 0] = np.nan
    padding[1, 0] = block
    assert_one_line_error(run(copy, "-o", tmp_path / "out", "--quiet"),
                          "cond/padding_mass at step 1: NaN at layer block 0, frame 0, y 0, x 0 although the step "
                          "is marked complete (chunk c/1/0/0/0/0)")


def test_missing_padding_chunk_is_not_shown_as_a_dash(store, tmp_path):
    copy = _copy(store, tmp_path)
    _chunk(copy, "cond/padding_mass", 2).unlink()  # reads back as the NaN fill value
    with pytest.raises(AnalyzerError, match=r"cond/padding_mass at step 2: NaN at layer block 0, frame 0, y 0, x 0 "
                                            r"although the step is marked complete \(its chunk c/2/0/0/0/0 is "
                                            r"missing: never written, or deleted\)"):
        view = StoreView(copy)
        reduce_step(view, view.read_raw(view.steps[2], [0, 1]))


def test_output_directory_that_cannot_be_made(store, tmp_path):
    (tmp_path / "file").write_text("x")
    assert_one_line_error(run(store, "-o", tmp_path / "file" / "out", "--quiet"), "cannot use output directory")


def test_worker_process_death_is_one_line(store, tmp_path, monkeypatch):
    import analyzer.run

    def broken(*args, **kwargs):
        raise BrokenProcessPool("A process in the process pool was terminated abruptly")

    monkeypatch.setattr(analyzer.run, "analyze", broken)
    assert_one_line_error(run(store, "-o", tmp_path / "out", "--quiet"), "worker process died")


def test_huge_step_range_is_intersected_with_the_recorded_steps(store, tmp_path):
    from analyzer.selection import parse_numbers

    assert parse_numbers("0-999999999", "step", [0, 1, 2]) == [0, 1, 2]
    assert parse_numbers("2,0-1", "step", range(10**6)) == [2, 0, 1]
    with pytest.raises(AnalyzerError, match="no step in '5-9' was recorded"):
        parse_numbers("5-9", "step", [0, 1, 2])
    result = run(store, "-o", tmp_path / "out", "--quiet", "--outputs", "report", "--steps", "1-999999999",
                 "--layers", "0-999999999")
    assert result.exit_code == 0, result.output
    assert "3 recorded (0-2); 2 analysed (1-2)" in (tmp_path / "out" / "attention_analysis_report.md").read_text()
