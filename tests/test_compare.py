"""``wan-analyze compare A B -o OUT``: two tiny stores side by side, on the same grid and on different grids."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from synthetic_store import owner_blocks, small_spec, write_store

from analyzer import open_recording
from analyzer.commands.compare import compare_command
from analyzer.compare import frame_correspondence, resample


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    a, b, c = root / "a.zarr", root / "b.zarr", root / "c.zarr"
    write_store(a, small_spec())
    # same grid, another "seed": red owns frames 2-3 instead of 0-1, a little more focused
    owners = owner_blocks(3, (4, 4, 6), [0, 2, 1, 1])
    write_store(b, small_spec(owners=owners, own=(0.7, 0.8), attributes={"seed": 7}))
    # another grid (2 x 3 x 4) and a prompt with words of its own: "the", "red", "dog"
    write_store(c, small_spec(owners=owner_blocks(3, (2, 3, 4), [1, 2]), prompt="the red dog.",
                              tokens=["\u2581the", "\u2581red", "\u2581dog", ".", "</s>"]))
    return {"a": a, "b": b, "c": c}


def test_same_grid(stores, tmp_path):
    out = tmp_path / "ab"
    result = CliRunner().invoke(compare_command, [str(stores["a"]), str(stores["b"]), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "shared words a, red, cats" in result.output and "resampled" not in result.output
    doc = json.loads((out / "comparison.json").read_text())
    assert doc["grids_match"] and doc["resampling"] is None
    assert doc["shared_words"] == ["a", "red", "cats"]
    # the maps' numbers are word_map's (reduce="sum"), differences A - B
    rec_a, rec_b = open_recording(stores["a"]), open_recording(stores["b"])
    red_a, red_b = rec_a.word_map("red").values, rec_b.word_map("red").values
    red = doc["maps"][1]
    assert red["text"] == "red"
    assert red["mean_abs_difference"] == pytest.approx(float(np.abs(red_a - red_b).mean()), rel=1e-6)
    assert red["max_a"] == pytest.approx(float(red_a.max()), rel=1e-6)
    # statistics of both and their differences
    sa, sb = rec_a.statistics(), rec_b.statistics()
    words = {w["text"]: w for w in doc["words"]}
    share = lambda stats, text: next(w["share"] for w in stats["words"] if w["text"] == text)
    assert words["red"]["share_a"] == pytest.approx(share(sa, "red"))
    assert words["red"]["share_difference"] == pytest.approx(share(sa, "red") - share(sb, "red"))
    assert doc["steps"]["steps"] == [0, 1, 2]
    step0 = doc["steps"]["rows"][0]
    assert step0["text_entropy_difference"] == pytest.approx(sa["steps"][0]["text_entropy"]
                                                             - sb["steps"][0]["text_entropy"])
    assert doc["statistics"]["a"]["words"] == json.loads(json.dumps(sa["words"]))
    for figure in doc["maps"]:
        assert (out / figure["figure"]).stat().st_size > 0
    report = (out / "comparison_report.md").read_text()
    assert "grids match" in report and "compare\\_001\\_red.png" in report

    # a non-empty OUT is refused (one line, exit 1) unless --overwrite
    again = CliRunner().invoke(compare_command, [str(stores["a"]), str(stores["b"]), "-o", str(out)])
    assert again.exit_code == 1 and "not empty" in again.output and len(again.output.strip().splitlines()) == 1
    again = CliRunner().invoke(compare_command, [str(stores["a"]), str(stores["b"]), "-o", str(out), "--overwrite"])
    assert again.exit_code == 0, again.output


def test_different_grids_resample_b_and_say_so(stores, tmp_path):
    out = tmp_path / "ac"
    result = CliRunner().invoke(compare_command, [str(stores["a"]), str(stores["c"]), "-o", str(out),
                                                  "--frames", "2"])
    assert result.exit_code == 0, result.output
    assert "shared words red" in result.output and "B resampled onto A's grid" in result.output
    doc = json.loads((out / "comparison.json").read_text())
    assert not doc["grids_match"]
    assert doc["resampling"]["from_grid"] == [2, 3, 4] and doc["resampling"]["to_grid"] == [4, 4, 6]
    assert doc["resampling"]["frame_of_b"] == [0, 0, 1, 1] and doc["shown_frames"] == [0, 3]
    assert doc["shared_words"] == ["red"]
    # "red" in C owns latent frame 0 (mapped to A's frames 0-1); in A it owns frames 0-1 as well
    red_c = resample(open_recording(stores["c"]).word_map("red").values.astype(np.float64), (4, 4, 6))
    red_a = open_recording(stores["a"]).word_map("red").values
    assert doc["maps"][0]["mean_abs_difference"] == pytest.approx(float(np.abs(red_a - red_c).mean()), rel=1e-6)
    report = (out / "comparison_report.md").read_text()
    assert "The latent grids differ" in report and "resampled" in report
    assert "different steps" not in report


def test_resampling_helpers():
    assert frame_correspondence(4, 2) == [0, 0, 1, 1]
    assert frame_correspondence(1, 5) == [0]
    maps = np.arange(2 * 2 * 2, dtype=np.float64).reshape(2, 2, 2)
    same = resample(maps, (2, 2, 2))
    assert np.array_equal(same, maps)
    constant = resample(np.full((3, 2, 3), 0.25), (5, 4, 6))
    assert constant.shape == (5, 4, 6) and np.allclose(constant, 0.25)


def test_compare_cli_errors(stores, tmp_path):
    runner = CliRunner()
    result = runner.invoke(compare_command, [str(stores["a"]), str(tmp_path / "missing.zarr"), "-o",
                                             str(tmp_path / "o")])
    assert result.exit_code == 1 and "no store" in result.output
    assert not (tmp_path / "o").exists()  # nothing is created for a store that does not open
    result = runner.invoke(compare_command, [str(stores["a"]), str(stores["b"]), "-o", str(stores["a"] / "x")])
    assert result.exit_code == 1 and "inside the store" in result.output
    result = runner.invoke(compare_command, [str(stores["a"]), str(stores["b"])])
    assert result.exit_code == 2
