"""``from analyzer import open_recording``: the Python API over a store (no torch).

A planted pattern (one word owning the top-left corner of latent frame 2) must land on the
pixel frames that latent frame covers and on the top-left corner of the video; the word maps
must equal the analyzer's own (what ``wan-analyze`` draws) and an independent numpy sum.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr

from analyzer import open_recording
from analyzer.errors import AnalyzerError
from analyzer.options import Options
from analyzer.reader import StoreView
from analyzer.selection import select
from analyzer.statistics import word_maps
from analyzer.streaming import run_pass
from shared import schema
from shared.schema import Attr
from synthetic_store import Synthetic, owner_blocks, write_store

xr = pytest.importorskip("xarray")

ROOT = Path(__file__).resolve().parent.parent
TOKENS = ["\u2581a", "\u2581red", "\u2581cat", "s", "\u2581on", "\u2581a", "\u2581mat", "</s>"]
WORDS = ["a", "red", "cats", "on", "a", "mat", "</s>"]
GRID = (4, 4, 6)  # video: 13 frames of 64 x 96; latent frame 2 covers pixel frames 5-8


def _planted() -> Synthetic:
    """ "red" owns everything but the top-left corner (rows 0-1, columns 0-2) of latent frame 2, which "cat" owns."""
    owners = owner_blocks(3, GRID, [1, 1, 1, 1])
    owners[:, 2, :2, :3] = 2
    owners[1, 0] = 6  # step 1: "mat" owns latent frame 0, so the steps differ
    return Synthetic(owners=owners, tokens=TOKENS, prompt="a red cats on a mat")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("api") / "store.zarr"
    write_store(path, _planted())
    return path


@pytest.fixture(scope="module")
def rec(store):
    return open_recording(store)


def test_what_the_recording_is(rec):
    assert rec.prompt == "a red cats on a mat"
    assert rec.words == WORDS
    assert rec.steps == [0, 1, 2] and rec.layers == [0, 3]
    assert rec.attrs[Attr.SCHEMA_VERSION] == schema.SCHEMA_VERSION
    assert rec.pixel_frames == [(0, 0), (1, 4), (5, 8), (9, 12)]
    assert rec.video.shape == (13, 64, 96, 3) and rec.video_written.all()
    assert rec.frame(3).shape == (64, 96, 3)


def test_dataset_is_the_labelled_store(rec, store):
    ds = rec.dataset()
    raw = zarr.open_group(store, mode="r")["cond/attention"]
    np.testing.assert_array_equal(ds.attention.sel(token="cat", step=1, layer=3).values, raw[1, 1, ..., 2])
    assert ds.word.values.tolist() == ["a", "red", "cats", "cats", "on", "a", "mat", "</s>"]


def _numpy_word_map(store, tokens, steps=(0, 1, 2), layers=(0, 1)) -> np.ndarray:
    """Independently: the mean over steps of the layer-mean maps of the word's tokens, summed over them."""
    att = np.asarray(zarr.open_group(store, mode="r")["cond/attention"][...], dtype=np.float64)
    picked = att[list(steps)][:, list(layers)][..., list(tokens)]
    return picked.mean(axis=1).mean(axis=0).sum(axis=-1)


def test_word_map_sums_the_sub_tokens(rec, store):
    latent = rec.word_map("cats")
    assert latent.dims == ("frame", "y", "x") and latent.shape == GRID
    assert latent.attrs["tokens"] == [2, 3] and latent.frame_first_pixel.values.tolist() == [0, 1, 5, 9]
    np.testing.assert_allclose(latent.values, _numpy_word_map(store, (2, 3)), rtol=1e-5, atol=1e-6)
    one_step = rec.word_map("mat", steps=[1], layers=[3])
    np.testing.assert_allclose(one_step.values, _numpy_word_map(store, (6,), steps=(1,), layers=(1,)),
                               rtol=1e-5, atol=1e-6)


def test_planted_corner_lands_on_its_pixel_frames_and_corner(rec):
    latent = rec.word_map("cats")
    assert np.unravel_index(int(np.argmax(latent.values)), GRID)[0] == 2
    for upsample in ("nearest", "bilinear"):
        pixels = rec.word_map("cats", pixel_grid=True, upsample=upsample, normalize="per-word")
        assert pixels.dims == ("video_frame", "height", "width") and pixels.shape == (13, 64, 96)
        assert pixels.latent_frame.values.tolist() == [0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
        high = pixels.values > 0.5
        assert high[5:9].all(axis=0)[:20, :40].all()  # the corner (32 x 48 pixels), away from the blurred edge
        assert not high[5:9, 40:, :].any() and not high[5:9, :, 56:].any()
        assert not high[:5].any() and not high[9:].any()  # only the pixel frames of latent frame 2
        assert np.array_equal(pixels.values[5], pixels.values[8])
    nearest = rec.word_map("cats", pixel_grid=True, upsample="nearest")
    np.testing.assert_array_equal(nearest.values[6, :32, :48], np.full((32, 48), latent.values[2, 0, 0]))
    np.testing.assert_array_equal(nearest.values[6, 32:, :], np.full((32, 96), latent.values[2, 3, 5]))


@pytest.mark.parametrize("normalize", ["global", "per-step", "per-frame", "per-word"])
@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
def test_word_map_equals_the_cli_word_maps(rec, store, normalize, reduce):
    """What ``wan-analyze --normalize N --word-reduction R`` draws for the word: statistics.word_maps of its pass."""
    view = StoreView(store)
    selection = select(view, Options.of({"normalize": normalize, "word_reduction": reduce, "progress": False}))
    analysis, _ = run_pass(selection, {}, None, 0.0)
    cli = word_maps(analysis.stats, view.grid, reduce)
    for w, unit in enumerate(selection.units):
        if unit.label == "a":
            continue  # twice in the prompt: by index below
        np.testing.assert_array_equal(rec.word_map(unit.label, normalize=normalize, reduce=reduce).values,
                                      cli[w].astype(np.float32))
    np.testing.assert_array_equal(rec.word_map(4, normalize=normalize, reduce=reduce).values,
                                  cli[[u.index for u in selection.units].index(4)].astype(np.float32))
    raw = analysis.stats.unit_maps(reduction=reduce)
    np.testing.assert_array_equal(rec.word_map("cats", reduce=reduce).values,
                                  raw[[u.label for u in selection.units].index("cats")].reshape(GRID).astype(np.float32))


def test_word_choices_are_checked(rec):
    with pytest.raises(AnalyzerError, match="occurs 2 times .*0, 4"):
        rec.word_map("a")
    with pytest.raises(AnalyzerError, match="not in the prompt"):
        rec.word_map("dog")
    with pytest.raises(AnalyzerError, match="unknown reduction"):
        rec.word_map("cats", reduce="median")
    with pytest.raises(AnalyzerError, match="step 7 was not recorded"):
        rec.word_map("cats", steps=[7])
    assert rec.word_map("</s>").attrs["tokens"] == [7]  # a special word: as --include-special shows it


def test_plot_overlay_draws_the_cli_overlay(rec, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    ax = rec.plot_overlay("cats", frame=6)
    image = ax.get_images()[0].get_array()
    assert image.shape == (64, 96, 3)
    corner, elsewhere = image[5:25, 5:40].astype(int), image[45:, 60:].astype(int)
    assert np.abs(corner - 128).sum(axis=-1).min() > 40  # coloured by the map
    assert np.abs(elsewhere - 128).max() < 5  # the grey frame, nearly untouched
    assert ax.get_title() == "cats: frame 6 (latent 2)"
    path = tmp_path / "overlay.png"
    ax.figure.savefig(path)
    assert path.stat().st_size > 0
    with pytest.raises(AnalyzerError, match="frame 13 does not exist"):
        rec.plot_overlay("cats", frame=13)


def test_statistics_are_the_reports_numbers(rec, store, tmp_path):
    from analyzer.run import analyze

    stats = rec.statistics()
    written = analyze(store, tmp_path / "out", outputs="statistics", progress=False)
    files = written["statistics"] if isinstance(written["statistics"], list) else [written["statistics"]]
    cli = json.loads(next(Path(p) for p in files if str(p).endswith(".json")).read_text())
    assert json.loads(json.dumps(stats)) == cli
    assert [s["index"] for s in stats["steps"]] == [0, 1, 2]
    assert {"text_entropy", "padding_mass", "top_words"} <= set(stats["steps"][0])
    assert rec.statistics(steps="1")["analysis"]["steps_analysed"] == [1]


def test_an_older_store_gets_its_coordinates_from_attributes(tmp_path):
    path = tmp_path / "old.zarr"
    write_store(path, _planted())
    root = zarr.open_group(path, mode="r+")
    for spec in schema.coordinate_arrays(schema.BRANCH_COND):
        del root[spec.path]
    root.attrs[Attr.SCHEMA_VERSION] = "1.2"
    ds = open_recording(path).dataset()
    raw = root["cond/attention"]
    np.testing.assert_array_equal(ds.attention.sel(token="cat", step=2, layer=0).values, raw[2, 0, ..., 2])
    assert ds.word.values.tolist()[2:4] == ["cats", "cats"] and ds.timestep.values.tolist()[0] == 1000.0


def test_other_locations_open(store, tmp_path):
    from analyzer.pack import pack_store

    packed = tmp_path / "store.zip"
    pack_store(store, packed)
    rec = open_recording(packed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = rec.dataset()
    raw = zarr.open_group(store, mode="r")["cond/attention"]
    np.testing.assert_array_equal(ds.attention.sel(token="mat", step=0, layer=0).values, raw[0, 0, ..., 6])


def test_the_example_script_runs(store, tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "python_api.py"), str(store),
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "overlay:" in result.stdout and (tmp_path / "statistics.json").is_file()
    assert list(tmp_path.glob("overlay_*.png"))


def test_importing_the_api_needs_no_torch():
    code = "import sys, analyzer; analyzer.open_recording; import analyzer.recording; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.stdout.strip() == "False", result.stderr
