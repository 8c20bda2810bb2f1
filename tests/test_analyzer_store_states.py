"""Stores that are still recording, stopped part-way, or hold the mean over layers."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner
from PIL import Image
from synthetic_store import owner_blocks, small_spec, write_store

from analyzer.cli import main
from analyzer.run import analyze
from shared import schema
from shared.schema import Attr


def test_partial_store_analyses_complete_steps_and_names_the_missing(tmp_path):
    owners = owner_blocks(5, (4, 4, 6), [1, 1, 2, 0])
    write_store(tmp_path / "store", small_spec(owners=owners, complete=[True, True, False, True, False],
                                              status=schema.STATUS_RECORDING, video_value=0))
    written = analyze(tmp_path / "store", tmp_path / "out", progress=False)
    report = written["report"].read_text()
    assert "Missing steps: steps 2, 4 missing (2 of 5 recorded)." in report
    assert "| Status | recording |" in report
    assert [p.name for p in written["steps"]] == ["attention_step_000.png", "attention_step_001.png",
                                                   "attention_step_003.png"]
    with Image.open(written["animation"]) as gif:
        assert gif.n_frames == 3
    assert "Status: recording: the store may still be being written" in report
    # no frame of the video was written: none is drawn as black, and the report says how they are drawn
    assert "The store holds no video frame (video\\_written): every frame of the per-word views is drawn as a " \
           "neutral grey background labelled \"frame not recorded\"" in report
    # NaN of the missing steps never reaches a number
    assert "nan" not in report.lower()


def test_partial_store_refuses_a_missing_step_by_name(tmp_path):
    write_store(tmp_path / "store", small_spec(complete=[True, False, True], status=schema.STATUS_RECORDING))
    result = CliRunner().invoke(main, [str(tmp_path / "store"), "-o", str(tmp_path / "out"), "--steps", "1"])
    assert result.exit_code == 1
    assert "step 1 is not complete in this store; complete steps: 0, 2" in result.output


def test_store_without_a_complete_step(tmp_path):
    write_store(tmp_path / "store", small_spec(complete=[False, False, False], status=schema.STATUS_RECORDING))
    result = CliRunner().invoke(main, [str(tmp_path / "store"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "has no complete step yet" in result.output
    info = CliRunner().invoke(main, ["info", str(tmp_path / "store")])
    assert info.exit_code == 0 and "complete: none; missing: 0-2" in info.output


def test_failed_store_reports_its_error(tmp_path):
    write_store(tmp_path / "store", small_spec(complete=[True, True, False], status=schema.STATUS_FAILED,
                                              attributes={Attr.ERROR: "CUDA out of memory | at step 2"}))
    report = analyze(tmp_path / "store", tmp_path / "out", progress=False, outputs="report")["report"].read_text()
    assert "| Status | failed: CUDA out of memory \\| at step 2 |" in report
    assert "Missing steps: step 2 missing (1 of 3 recorded)." in report


def test_layer_mean_store_has_no_layer_profile(tmp_path):
    write_store(tmp_path / "store", small_spec(layer_blocks=(-1,), own=(0.7,)))
    written = analyze(tmp_path / "store", tmp_path / "out", progress=False)
    assert "layers" not in written
    report = written["report"].read_text()
    assert "## Layer profile" not in report and "| Layers analysed | mean of layers |" in report
    result = CliRunner().invoke(main, [str(tmp_path / "store"), "-o", str(tmp_path / "o2"), "--layers", "0"])
    assert result.exit_code == 1 and "holds the mean over layers" in result.output


def test_nan_in_a_complete_step_fails_loudly(tmp_path):
    import zarr

    write_store(tmp_path / "store", small_spec())
    root = zarr.open_group(tmp_path / "store", mode="r+")
    att = root[schema.attention("cond").path]
    block = att[1, 0]
    block[0, 0, 0, 0] = np.nan
    att[1, 0] = block
    result = CliRunner().invoke(main, [str(tmp_path / "store"), "-o", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 1
    assert ("cond/attention at step 1: NaN at layer block 0, frame 0, y 0, x 0, token 0 although the step is marked "
            "complete (chunk c/1/0/0/0/0/0)") in result.output


def test_uncond_branch(tmp_path):
    write_store(tmp_path / "store", small_spec(branches=("cond", "uncond")))
    written = analyze(tmp_path / "store", tmp_path / "out", progress=False, branch="uncond", outputs="report")
    assert "branch uncond" in written["report"].read_text()
