"""wan-record's command line: the main job without a sub-command name, and one line per bad input."""

from __future__ import annotations

import pytest
import zarr
from click.testing import CliRunner

from recorder.cli import main
from shared import schema

SMALL = ["--height", "32", "--width", "48", "--frames", "9", "--steps", "2", "--device", "cpu",
         "--dtype", "float32"]


def _run(*args):
    return CliRunner().invoke(main, list(args))


def test_records_from_a_saved_model_directory(tiny_model_dir, tmp_path):
    out = tmp_path / "s.zarr"
    result = _run("--model", str(tiny_model_dir), "--prompt", "a red car", *SMALL, "--branch", "both", str(out))
    assert result.exit_code == 0, result.output
    root = zarr.open_group(out, mode="r")
    assert root.attrs[schema.Attr.STATUS] == schema.STATUS_COMPLETE
    assert root.attrs[schema.Attr.MODEL_ID] == str(tiny_model_dir)
    assert "uncond" in root


def test_frame_count_is_rounded_and_said(tiny_model_dir, tmp_path):
    out = tmp_path / "s.zarr"
    args = [a if a != "9" else "10" for a in SMALL]
    result = _run("--model", str(tiny_model_dir), "--prompt", "a red car", *args, str(out))
    assert result.exit_code == 0, result.output
    assert "num_frames 10 is not 4k+1; Wan generates 9 frames" in result.output
    root = zarr.open_group(out, mode="r")
    assert root.attrs[schema.Attr.NUM_FRAMES] == 9
    assert root.attrs[schema.Attr.NUM_FRAMES_REQUESTED] == 10
    assert root[schema.VIDEO.path].shape[0] == 9


@pytest.mark.parametrize("args, message, code", [
    (["--height", "40"], "height 40 is not a positive multiple of 16", 1),
    (["--width", "50"], "width 50 is not a positive multiple of 16", 1),
    (["--steps", "0"], "num_inference_steps must be at least 1", 1),
    (["--device", "cuda"], "torch sees no CUDA GPU", 1),
    (["--layers", "7"], "layers [7] do not exist", 1),
    (["--heads", "0,9"], "heads [9] do not exist", 1),
    (["--heads", "x"], "--heads must be comma-separated integers", 2),
    (["--step-stride", "0"], "step stride must be at least 1", 1),
    (["--branch", "both", "--guidance", "1.0"], "uncond branch needs guidance_scale > 1", 1),
])
def test_bad_inputs_give_one_line_and_an_exit_code(tiny_model_dir, tmp_path, args, message, code):
    out = tmp_path / "s.zarr"
    base = {a: b for a, b in zip(SMALL[::2], SMALL[1::2])}
    base.update({a: b for a, b in zip(args[::2], args[1::2])})
    flat = [x for pair in base.items() for x in pair]
    result = _run("--model", str(tiny_model_dir), "--prompt", "a red car", *flat, str(out))
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1


def test_unknown_model_path(tmp_path):
    result = _run("--model", str(tmp_path / "nope"), "--prompt", "x", *SMALL, str(tmp_path / "s.zarr"))
    assert result.exit_code == 1
    assert f"no model directory at {tmp_path / 'nope'}" in result.output


def test_directory_that_is_not_a_pipeline(tmp_path):
    (tmp_path / "empty").mkdir()
    result = _run("--model", str(tmp_path / "empty"), "--prompt", "x", *SMALL, str(tmp_path / "s.zarr"))
    assert result.exit_code == 1
    assert "has no model_index.json" in result.output


def test_existing_output_is_refused_and_left_alone(tiny_model_dir, tmp_path):
    out = tmp_path / "s.zarr"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    result = _run("--model", str(tiny_model_dir), "--prompt", "x", *SMALL, str(out))
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert (out / "keep.txt").read_text() == "precious"


def test_overwrite_replaces_an_existing_output(tiny_model_dir, tmp_path):
    out = tmp_path / "s.zarr"
    out.mkdir()
    result = _run("--model", str(tiny_model_dir), "--prompt", "x", *SMALL, "--overwrite", str(out))
    assert result.exit_code == 0, result.output
    assert zarr.open_group(out, mode="r").attrs[schema.Attr.STATUS] == schema.STATUS_COMPLETE


def test_tiny_model_command(tmp_path):
    result = _run("tiny-model", str(tmp_path / "m"), "--layers", "3", "--heads", "4", "--two-experts")
    assert result.exit_code == 0, result.output
    from recorder.loading import load_pipeline

    pipe = load_pipeline(str(tmp_path / "m"), dtype="float32", device="cpu")
    assert len(pipe.transformer.blocks) == 3 and pipe.transformer_2 is not None
    assert pipe.transformer.blocks[0].attn2.heads == 4
    again = _run("tiny-model", str(tmp_path / "m"))
    assert again.exit_code == 1 and "already exists" in again.output
